"""Take a graph-route run's trained weights back to Keras: a `.keras` file and a servable SavedModel.

A run on a trainable SavedModel (`model: { kind: "savedmodel" }`) exports its model as
`<run>/model/model.json` (format `durable-train/savedmodel-weights@1`: the variables' names, dtypes,
shapes and offsets) and `weights.bin` (their raw bytes, as int32 words). This rebuilds the Keras
model the SavedModel was exported from (the same `--model` and `--factory-kwargs` given to
export_trainable_savedmodel.py), writes the trained weights into it bit for bit, and saves it:

  python tools/keras_from_run.py --model digits.keras --run runs/mnist-1 \\
      --out-keras digits-trained.keras --out-savedmodel digits-serving

`--run` is a run folder (its `model/` export) or a checkpoint folder (`<run>/checkpoints/<step>`).
The SavedModel has a `serving_default` signature (Keras `model.export`), loadable with
`tf.saved_model.load` or TensorFlow Serving. A tabular run's input transform (`preprocessing.json`:
imputation, scaling, one-hot columns) is not a Keras layer: it is copied beside each output
(`<out>.preprocessing.json`, `<out-savedmodel>/assets.extra/preprocessing.json`) and inputs must be
encoded with it before they reach the model, as the trainer did.
"""
import argparse
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_trainable_savedmodel import _codec, _keras, _load_model, _tf  # noqa: E402

WEIGHTS_FORMAT = "durable-train/savedmodel-weights@1"


def read_run_weights(run: str):
    """(layout, int32 words, preprocessing path or None) of a run's export or a checkpoint folder."""
    import numpy as np

    folder = os.path.join(run, "model") if os.path.isfile(os.path.join(run, "model", "model.json")) else run
    description_file = os.path.join(folder, "model.json")
    if not os.path.isfile(description_file):
        raise SystemExit(f"No model.json in {run} or {run}/model: expected a run folder or a checkpoint folder")
    with open(description_file) as f:
        description = json.load(f)
    if description.get("format") != WEIGHTS_FORMAT:
        raise SystemExit(
            f"{description_file} is format {description.get('format')!r}, not {WEIGHTS_FORMAT!r}: "
            "an eager-route run's model.json loads with tf.loadLayersModel (TensorFlow.js) instead"
        )
    with open(os.path.join(folder, "weights.bin"), "rb") as f:
        words = np.frombuffer(f.read(), dtype="<i4")
    layout = description["variables"]
    need = sum(v["words"] for v in layout)
    if words.size != need:
        raise SystemExit(f"{folder}/weights.bin has {words.size} words, model.json describes {need}")
    pre = os.path.join(folder, "preprocessing.json")
    return layout, words, pre if os.path.isfile(pre) else None


def assign_weights(model, layout, words):
    """Writes the words into the model's variables, in the exporter's order, checking each fits."""
    tf = _tf()
    variables = list(model.variables)
    if len(variables) != len(layout):
        raise SystemExit(f"The model has {len(variables)} variables, the run's weights {len(layout)}: pass the --model the SavedModel was exported from")
    for v, spec in zip(variables, layout):
        shape = [int(d) for d in v.shape]
        if shape != spec["shape"] or str(v.dtype) != spec["dtype"]:
            raise SystemExit(
                f"Variable {v.path} is {v.dtype}{shape}, the run's {spec['name']} is {spec['dtype']}{spec['shape']}: "
                "pass the --model (and --factory-kwargs) the SavedModel was exported from"
            )
        chunk = tf.constant(words[spec["offset"] : spec["offset"] + spec["words"]], dtype=tf.int32)
        v.assign(_codec(spec["dtype"])[2](chunk, spec["shape"]))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="the .keras file or module:function the SavedModel was exported from")
    p.add_argument("--factory-kwargs", default="{}", help="JSON keyword arguments for the factory (as at export)")
    p.add_argument("--run", required=True, help="a run folder (its model/ export) or a checkpoint folder")
    p.add_argument("--out-keras", default=None, help="write the trained model as a .keras file")
    p.add_argument("--out-savedmodel", default=None, help="write a servable SavedModel (serving_default) to this folder (replaced)")
    a = p.parse_args(argv)
    if not a.out_keras and not a.out_savedmodel:
        raise SystemExit("Nothing to write: give --out-keras, --out-savedmodel or both")

    _keras()
    layout, words, preprocessing = read_run_weights(a.run)
    model = _load_model(a.model, json.loads(a.factory_kwargs))
    assign_weights(model, layout, words)
    if a.out_keras:
        model.save(a.out_keras)
        if preprocessing:
            shutil.copyfile(preprocessing, a.out_keras + ".preprocessing.json")
        print(f"wrote {a.out_keras}")
    if a.out_savedmodel:
        if os.path.exists(a.out_savedmodel):
            shutil.rmtree(a.out_savedmodel)
        model.export(a.out_savedmodel, format="tf_saved_model", verbose=False)
        if preprocessing:
            os.makedirs(os.path.join(a.out_savedmodel, "assets.extra"), exist_ok=True)
            shutil.copyfile(preprocessing, os.path.join(a.out_savedmodel, "assets.extra", "preprocessing.json"))
        print(f"wrote {a.out_savedmodel} (serving_default)")


if __name__ == "__main__":
    main()
