#!/usr/bin/env python3
"""Export a Keras 3 model, its optimizer and its loss as a *trainable SavedModel* for durable-train.

The SavedModel has these signatures (all under the `serve` tag), which durable-train's graph
route (src/training/savedmodel/, through tfjs-node's SavedModel runner) calls:

  serve(x)                   -> {predictions}               inference (also `serving_default`)
  train_step(x, y)           -> {loss: float32 scalar}      one optimizer step (mean loss over the batch)
  eval_step(x, y)            -> {loss: sum, <metric>: sum}  per-batch SUMS; durable-train divides by the examples
  get_state()                -> {model: int32[M], optimizer: int32[O]}
  set_state(model, optimizer)-> {iterations: int32 scalar}
  set_learning_rate(learning_rate) -> {learning_rate: float32 scalar}

State travels as the raw little-endian bytes of every variable (model.variables, then
optimizer.variables), bit-cast to int32 words: float32 weights are bitwise what they are in
TensorFlow, and int64 variables (the optimizer's `iterations`, seed-generator states) survive
exactly although tfjs has no int64. Beside saved_model.pb it writes `durable-train.json`, the
metadata durable-train validates when a run starts (input shapes, metrics, optimizer, the
learning-rate variable, the layout of the state).

Usage (any TensorFlow >= 2.16 with Keras 3):

  python tools/export_trainable_savedmodel.py --model my_model.keras --out ./exported \
      [--optimizer adam] [--learning-rate 0.001] [--loss categorical_crossentropy] \
      [--metrics accuracy] [--input-shape 784] [--target-shape 10] [--seed 1]

  python tools/export_trainable_savedmodel.py --model my_pkg.models:build_mlp \
      --factory-kwargs '{"hidden": [128]}' --out ./exported ...

See tools/README.md for a worked example.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FORMAT = "durable-train/trainable-savedmodel@1"
METADATA_FILE = "durable-train.json"
ENDPOINTS = ("serve", "train_step", "eval_step", "get_state", "set_state", "set_learning_rate")


def _tf():
    import tensorflow as tf

    return tf


def _keras():
    import keras

    if keras.backend.backend() != "tensorflow":
        raise SystemExit("Set KERAS_BACKEND=tensorflow: the export traces TensorFlow graphs")
    return keras


# --- state packing: every variable <-> int32 words, bit for bit -------------------------------

def _codec(dtype: str):
    """(words per element, pack(tensor)->int32 tensor, unpack(int32 tensor, shape)->tensor)."""
    tf = _tf()
    dt = tf.as_dtype(dtype)
    if dt in (tf.float32, tf.int32, tf.uint32):
        return 1, (lambda t: tf.bitcast(t, tf.int32) if dt != tf.int32 else t), (
            lambda w, shape: tf.reshape(tf.bitcast(w, dt) if dt != tf.int32 else w, shape)
        )
    if dt in (tf.int64, tf.uint64, tf.float64):
        return 2, (lambda t: tf.bitcast(t, tf.int32)), (
            lambda w, shape: tf.reshape(tf.bitcast(tf.reshape(w, [-1, 2]), dt), shape)
        )
    if dt in (tf.float16, tf.bfloat16):
        return 1, (lambda t: tf.cast(tf.bitcast(t, tf.int16), tf.int32)), (
            lambda w, shape: tf.reshape(tf.bitcast(tf.cast(w, tf.int16), dt), shape)
        )
    if dt in (tf.bool, tf.int8, tf.uint8, tf.int16, tf.uint16):
        return 1, (lambda t: tf.cast(t, tf.int32)), (lambda w, shape: tf.reshape(tf.cast(w, dt), shape))
    raise SystemExit(f"Variable dtype {dtype} cannot be exported (no exact int32 encoding)")


def _describe(variables):
    """Static layout of a list of variables in the packed int32 vector."""
    out, offset = [], 0
    for v in variables:
        shape = [int(d) for d in v.shape]
        words_per, _, _ = _codec(str(v.dtype))
        size = 1
        for d in shape:
            size *= d
        words = size * words_per
        out.append({"name": v.path, "shape": shape, "dtype": str(v.dtype), "offset": offset, "words": words})
        offset += words
    return out, offset


def _pack(variables):
    tf = _tf()
    parts = [tf.reshape(_codec(str(v.dtype))[1](v.value), [-1]) for v in variables]
    return tf.concat(parts, axis=0) if parts else tf.zeros([0], tf.int32)


def _unpack_assign(variables, layout, words):
    for v, spec in zip(variables, layout):
        chunk = words[spec["offset"] : spec["offset"] + spec["words"]]
        v.assign(_codec(spec["dtype"])[2](chunk, spec["shape"]))


# --- metrics: per-batch sums, exact over a whole eval set -----------------------------------

CLASSIFICATION_METRICS = ("accuracy", "acc")
REGRESSION_METRICS = ("mae", "mse", "rmse")


def _per_example_metric(name: str, loss_name: str):
    """A metric as a per-example value whose sum over the eval set, divided by the examples, is the
    metric (durable-train divides; for `rmse` it also takes the square root of that mean)."""
    tf = _tf()
    if name in ("mae", "mse", "rmse"):
        if name == "mae":
            return lambda y, p: tf.reduce_mean(tf.abs(y - p), axis=-1)
        return lambda y, p: tf.reduce_mean(tf.square(y - p), axis=-1)
    if name not in CLASSIFICATION_METRICS:
        raise SystemExit(f"Unsupported metric {name!r}: this exporter knows {', '.join(CLASSIFICATION_METRICS + REGRESSION_METRICS)}")
    if "sparse" in loss_name:
        return lambda y, p: tf.cast(tf.equal(tf.cast(tf.reshape(y, [-1]), tf.int64), tf.argmax(p, -1)), tf.float32)
    if "binary" in loss_name:
        return lambda y, p: tf.reduce_mean(tf.cast(tf.equal(y > 0.5, p > 0.5), tf.float32), axis=-1)
    return lambda y, p: tf.cast(tf.equal(tf.argmax(y, -1), tf.argmax(p, -1)), tf.float32)


def is_classification_loss(loss_name: str) -> bool:
    return "crossentropy" in loss_name.lower().replace("_", "")


def loss_from_output(model) -> str:
    """The loss the model's output layer decides: softmax -> categorical_crossentropy, a sigmoid ->
    binary_crossentropy. Anything else (a linear output: regression, or logits) is the user's to say."""
    layer = model.layers[-1]
    activation = getattr(getattr(layer, "activation", None), "__name__", None)
    if activation == "softmax":
        return "categorical_crossentropy"
    if activation == "sigmoid":
        return "binary_crossentropy"
    raise SystemExit(
        f"--loss is required: the model's output layer `{layer.name}` (activation {activation or 'none'}) does not decide it. "
        "For regression say e.g. --loss mean_squared_error --metrics mae; for logits, a loss with from_logits"
    )


def default_metrics(loss_name: str) -> list:
    return ["accuracy"] if is_classification_loss(loss_name) else ["mae"]


# --- the export ------------------------------------------------------------------------------

def export_trainable_savedmodel(
    model,
    optimizer,
    loss: str,
    out_dir: str,
    *,
    input_shape=None,
    target_shape=None,
    metrics=("accuracy",),
    endpoints=ENDPOINTS,
    loss_reduction: str = "mean",
    notes: dict | None = None,
):
    """Writes the trainable SavedModel and its metadata to `out_dir`. Returns the metadata.

    `endpoints` and `loss_reduction` exist so that tests can export deliberately broken models
    (a missing endpoint, a per-example loss); leave them at their defaults.
    """
    tf = _tf()
    keras = _keras()

    if input_shape is None:
        input_shape = list(model.input_shape[1:])
    input_shape = [int(d) for d in input_shape]
    if not model.built:
        model.build((None, *input_shape))
    if target_shape is None:
        target_shape = list(model.output_shape[1:])
    target_shape = [int(d) for d in target_shape]

    optimizer = keras.optimizers.get(optimizer)
    optimizer.build(model.trainable_variables)
    lr_var = getattr(optimizer, "_learning_rate", None)
    if not isinstance(lr_var, keras.Variable):
        raise SystemExit(
            "The optimizer's learning rate must be a plain float (a keras.Variable), not a schedule: "
            "durable-train changes it from the workflow (ReduceLROnPlateau)"
        )
    loss_name = loss if isinstance(loss, str) else type(loss).__name__
    per_example_loss = keras.losses.get(loss)  # a function: (y_true, y_pred) -> per-example loss
    metric_fns = {m: _per_example_metric(m, loss_name.lower()) for m in metrics}

    model_vars = list(model.variables)
    opt_vars = list(optimizer.variables)
    model_layout, model_words = _describe(model_vars)
    opt_layout, opt_words = _describe(opt_vars)
    lr_name = next(v.path for v in opt_vars if v is lr_var)
    iterations_name = next((v.path for v in opt_vars if v is optimizer.iterations), None)

    x_spec = tf.TensorSpec([None, *input_shape], tf.float32, name="x")
    y_spec = tf.TensorSpec([None, *target_shape], tf.float32, name="y")

    def train_step(x, y):
        with tf.GradientTape() as tape:
            pred = model(x, training=True)
            per_example = per_example_loss(y, pred)
            loss_value = tf.reduce_mean(per_example) if loss_reduction == "mean" else per_example
            total = tf.reduce_mean(per_example) + (tf.add_n(model.losses) if model.losses else 0.0)
        grads = tape.gradient(total, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return {"loss": loss_value}

    def serve(x):
        return {"predictions": model(x, training=False)}

    def eval_step(x, y):
        pred = model(x, training=False)
        out = {"loss": tf.reduce_sum(per_example_loss(y, pred))}
        for name, fn in metric_fns.items():
            out[name] = tf.reduce_sum(fn(y, pred))
        return out

    def get_state():
        return {"model": _pack(model_vars), "optimizer": _pack(opt_vars)}

    def set_state(model_words_in, optimizer_words_in):
        _unpack_assign(model_vars, model_layout, model_words_in)
        _unpack_assign(opt_vars, opt_layout, optimizer_words_in)
        # tfjs has no int64: the step counter comes back as int32.
        return {"iterations": tf.cast(optimizer.iterations, tf.int32)}

    def set_learning_rate(learning_rate):
        lr_var.assign(tf.cast(learning_rate, lr_var.dtype))
        return {"learning_rate": tf.cast(lr_var.value, tf.float32)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(optimizer)
    sigs = {
        # Registered first, so `serving_default` is inference (TF Serving never trains by accident).
        "serve": (serve, [x_spec]),
        "train_step": (train_step, [x_spec, y_spec]),
        "eval_step": (eval_step, [x_spec, y_spec]),
        "get_state": (get_state, []),
        "set_state": (
            set_state,
            [tf.TensorSpec([model_words], tf.int32, name="model"), tf.TensorSpec([opt_words], tf.int32, name="optimizer")],
        ),
        "set_learning_rate": (set_learning_rate, [tf.TensorSpec([], tf.float32, name="learning_rate")]),
    }
    for name in ENDPOINTS:
        if name in endpoints:
            fn, spec = sigs[name]
            archive.add_endpoint(name, tf.function(fn, input_signature=spec, autograph=False))
    archive.write_out(out_dir, verbose=False)

    metadata = {
        "format": FORMAT,
        "endpoints": [e for e in ENDPOINTS if e in endpoints],
        "inputs": {"x": {"shape": [None, *input_shape], "dtype": "float32"}, "y": {"shape": [None, *target_shape], "dtype": "float32"}},
        "loss": loss_name,
        "metrics": ["loss", *metric_fns.keys()],
        "optimizer": {
            "class": type(optimizer).__name__,
            "config": json.loads(json.dumps(optimizer.get_config(), default=str)),
            "learningRateVariable": lr_name,
            "iterationsVariable": iterations_name,
        },
        "state": {
            "encoding": "int32 words: raw little-endian bytes of each variable (bitcast)",
            "model": {"words": model_words, "variables": model_layout},
            "optimizer": {"words": opt_words, "variables": opt_layout},
        },
        "exportedWith": {"tensorflow": tf.__version__, "keras": keras.__version__},
        **({"notes": notes} if notes else {}),
    }
    with open(os.path.join(out_dir, METADATA_FILE), "w") as f:
        json.dump(metadata, f, indent=1)
        f.write("\n")
    return metadata


def _load_model(spec: str, factory_kwargs: dict):
    keras = _keras()
    if spec.endswith(".keras") or spec.endswith(".h5"):
        return keras.saving.load_model(spec, compile=False)
    if ":" not in spec:
        raise SystemExit(f"--model must be a .keras file or module:function, got {spec!r}")
    module_name, fn_name = spec.split(":", 1)
    sys.path.insert(0, os.getcwd())
    factory = getattr(importlib.import_module(module_name), fn_name)
    return factory(**factory_kwargs)


def _optimizer_from_args(name_or_json: str, learning_rate: float | None):
    keras = _keras()
    if name_or_json.lstrip().startswith("{"):
        opt = keras.optimizers.deserialize(json.loads(name_or_json))
    else:
        opt = keras.optimizers.get(name_or_json)
    if learning_rate is not None:
        opt.learning_rate = learning_rate
    return opt


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a .keras file, or module:function returning a keras.Model")
    p.add_argument("--factory-kwargs", default="{}", help="JSON keyword arguments for the factory")
    p.add_argument("--out", required=True, help="directory to write the SavedModel into (replaced)")
    p.add_argument("--optimizer", default="adam", help="Keras optimizer name or serialized JSON config (default adam)")
    p.add_argument("--learning-rate", type=float, default=None, help="initial learning rate (the run's config overrides it)")
    p.add_argument("--loss", default=None, help="Keras loss name; required unless the output layer decides it (softmax: categorical_crossentropy, sigmoid: binary_crossentropy)")
    p.add_argument("--metrics", default=None, help="comma-separated eval metrics: accuracy, mae, mse, rmse, or '' for none (default: accuracy for a cross-entropy loss, else mae)")
    p.add_argument("--input-shape", default=None, help="shape of one example, e.g. 784 or 28,28,1 (default: the model's)")
    p.add_argument("--target-shape", default=None, help="shape of one target, e.g. 10 (default: the model's output)")
    p.add_argument("--seed", type=int, default=None, help="keras.utils.set_random_seed before building (initial weights)")
    p.add_argument("--skip-endpoint", action="append", default=[], help=argparse.SUPPRESS)  # test fixtures only
    p.add_argument("--per-example-loss", action="store_true", help=argparse.SUPPRESS)  # test fixtures only
    a = p.parse_args(argv)

    keras = _keras()
    if a.seed is not None:
        keras.utils.set_random_seed(a.seed)
    model = _load_model(a.model, json.loads(a.factory_kwargs))
    shape = lambda s: None if s is None else [int(d) for d in s.split(",") if d.strip()]
    import shutil

    if os.path.exists(a.out):
        shutil.rmtree(a.out)
    loss = a.loss if a.loss else loss_from_output(model)
    metrics = default_metrics(loss) if a.metrics is None else [m for m in a.metrics.split(",") if m]
    meta = export_trainable_savedmodel(
        model,
        _optimizer_from_args(a.optimizer, a.learning_rate),
        loss,
        a.out,
        input_shape=shape(a.input_shape),
        target_shape=shape(a.target_shape),
        metrics=metrics,
        endpoints=[e for e in ENDPOINTS if e not in a.skip_endpoint],
        loss_reduction="none" if a.per_example_loss else "mean",
    )
    st = meta["state"]
    print(
        f"wrote {a.out}: endpoints {', '.join(meta['endpoints'])}; "
        f"{len(st['model']['variables'])} model + {len(st['optimizer']['variables'])} optimizer variables "
        f"({4 * (st['model']['words'] + st['optimizer']['words'])} bytes of state)"
    )


if __name__ == "__main__":
    main()
