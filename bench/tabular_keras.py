"""The Keras reference for bench/tabular.ts: an MLP of the same shape as durable-train's `mlp`
(Dense(h, relu) ... Dense(classes, softmax), Glorot-uniform kernels, zero biases), Adam,
categorical crossentropy, trained for the same number of steps and batch size on the same
train/test split of a CSV, on features standardized with the TRAINING split's mean and population
standard deviation (what sklearn's StandardScaler does; a constant column is scaled by 1).

    .cache/pyref-venv/bin/python bench/tabular_keras.py --csv wine.csv --label target \
        --hidden 32 --lr 0.003 --batch 32 --steps 400 --seeds 1,2,3,4,5 [--stratify] [--normalize none]

The split is durable-train's rule (src/training/tabular.ts): data row n (1-based) is a test row
when floor(n*f) > floor((n-1)*f), counted within each class with --stratify. Batches are drawn
from a fresh random order per pass (Keras' own shuffling), `train_on_batch` per step. Prints one
JSON line: test accuracy per seed and their mean, plus the versions used.
"""
import argparse
import csv
import json
import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402


def is_test_row(n, f):
    return math.floor(n * f) > math.floor((n - 1) * f)


def load(path, label, f, stratify):
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], [r for r in rows[1:] if r]
    li = header.index(label)
    labels = [r[li] for r in body]
    classes = sorted(set(labels), key=lambda v: (float(v), v))
    x = np.array([[float(v) for k, v in enumerate(r) if k != li] for r in body], dtype=np.float64)
    y = np.array([classes.index(v) for v in labels])
    seen, test = {}, []
    for k, lab in enumerate(labels):
        n = k + 1
        if stratify:
            n = seen.get(lab, 0) + 1
            seen[lab] = n
        test.append(is_test_row(n, f))
    test = np.array(test)
    return x[~test], y[~test], x[test], y[test], len(classes)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--csv", required=True)
    p.add_argument("--label", required=True)
    p.add_argument("--hidden", default="32")
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--seeds", default="1,2,3,4,5")
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--stratify", action="store_true")
    p.add_argument("--normalize", choices=["standard", "none"], default="standard")
    a = p.parse_args()

    xtr, ytr, xte, yte, k = load(a.csv, a.label, a.test_fraction, a.stratify)
    if a.normalize == "standard":
        mean, std = xtr.mean(axis=0), xtr.std(axis=0)
        std[std == 0] = 1
        xtr, xte = (xtr - mean) / std, (xte - mean) / std
    xtr, xte = xtr.astype(np.float32), xte.astype(np.float32)
    ytr1 = keras.utils.to_categorical(ytr, k)
    hidden = [int(h) for h in a.hidden.split(",") if h]
    accuracies = []
    for seed in [int(s) for s in a.seeds.split(",")]:
        keras.utils.set_random_seed(seed)
        model = keras.Sequential([keras.Input((xtr.shape[1],)), *[keras.layers.Dense(h, activation="relu") for h in hidden], keras.layers.Dense(k, activation="softmax")])
        model.compile(optimizer=keras.optimizers.Adam(a.lr), loss="categorical_crossentropy")
        rng = np.random.default_rng(seed)
        order, at = rng.permutation(len(xtr)), 0
        for _ in range(a.steps):
            if at + a.batch > len(order):
                order, at = rng.permutation(len(xtr)), 0
            idx = order[at : at + a.batch]
            at += a.batch
            model.train_on_batch(xtr[idx], ytr1[idx])
        pred = model.predict(xte, verbose=0).argmax(axis=1)
        accuracies.append(float((pred == yte).mean()))
    print(json.dumps({
        "csv": os.path.basename(a.csv), "normalize": a.normalize, "accuracies": accuracies,
        "mean": float(np.mean(accuracies)), "train": int(len(xtr)), "test": int(len(xte)),
        "tensorflow": tf.__version__, "keras": keras.__version__,
    }))


if __name__ == "__main__":
    main()
