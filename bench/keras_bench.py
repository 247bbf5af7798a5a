"""Keras on TensorFlow (Python): the same models, data, optimizer and batch size as bench/run.ts.

    python bench/keras_bench.py --model mlp --batch 128 --steps 1000 --data /tmp/dir

Trains with model.train_on_batch in a loop (Keras compiles the step with tf.function, and with
XLA when jit_compile resolves to it) on the MNIST digits that bench/run.ts wrote as raw float32
(x.bin: N x 784, y.bin: N x 10 one-hot), in a fresh random order per pass, and prints one JSON
line: ms per step over the timed steps, after untimed warm-up steps (tracing and compilation).
"""
import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402


def build(name):
    if name == "mlp":
        layers = [
            keras.Input((784,)),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    elif name == "cnn":
        # src/training/models.ts `cnn` with its defaults: filters [8, 16], denseUnits [64].
        layers = [
            keras.Input((784,)),
            keras.layers.Reshape((28, 28, 1)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    else:
        raise SystemExit(f"unknown model {name!r}")
    return keras.Sequential(layers)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--data", required=True)
    a = p.parse_args()

    x = np.fromfile(os.path.join(a.data, "x.bin"), dtype=np.float32).reshape(-1, 784)
    y = np.fromfile(os.path.join(a.data, "y.bin"), dtype=np.float32).reshape(-1, 10)
    keras.utils.set_random_seed(1)
    model = build(a.model)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy")
    rng = np.random.default_rng(1)
    order = rng.permutation(len(x))
    pos = 0

    def batch():
        nonlocal order, pos
        if pos + a.batch > len(order):
            order = rng.permutation(len(x))
            pos = 0
        idx = order[pos : pos + a.batch]
        pos += a.batch
        return x[idx], y[idx]

    for _ in range(a.warmup):
        model.train_on_batch(*batch())
    start = time.perf_counter()
    loss = None
    for _ in range(a.steps):
        loss = model.train_on_batch(*batch())
    ms = (time.perf_counter() - start) * 1000 / a.steps
    print(json.dumps({
        "msPerStep": ms,
        "loss": float(np.asarray(loss).reshape(-1)[0]),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "jitCompile": bool(getattr(model, "jit_compile", False)),
        "threads": [tf.config.threading.get_intra_op_parallelism_threads(), tf.config.threading.get_inter_op_parallelism_threads()],
    }))


if __name__ == "__main__":
    main()
