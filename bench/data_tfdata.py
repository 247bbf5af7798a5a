"""tf.data reading the shards bench/data.ts wrote, the reference for its input pipeline.

    python bench/data_tfdata.py --files '/tmp/x/part-*.jsonl.gz' --batch 128 --steps 600 --window 16384

Tabular JSONL.gz (`{"pixels":[784 numbers],"y":d}` per line, scripts/make-tabular-shards.ts): the
idiomatic tf.data pipeline, all in the graph: shard files in a shuffled order, read by
TextLineDataset (GZIP) with parallel interleaved reads, shuffled in a buffer of `--window` lines,
batched, then parsed as a batch (tf.strings split and to_number), prefetched (AUTOTUNE).

Images (`--format tar --size S`: WebDataset tar shards of `<key>.jpg` + `<key>.cls`,
scripts/make-image-shards.ts): tf.data has no tar reader, so a Python generator reads each shard with
the standard library's tarfile (shard files in a shuffled order, one after another) and yields the
JPEG bytes and class; then a shuffle buffer of `--window` samples, tf.io.decode_jpeg (3 channels),
scaled to [0, 1] and flattened, in a parallel map (AUTOTUNE), batched, prefetched. The model is the
bench CNN (src/training/models.ts `cnn`: conv 8, pool, conv 16, pool, dense 64, dense 10) on
S × S × 3.

Prints one JSON line with examples/s of
  pipeline:  the pipeline alone (iterate `--steps` batches, after a warm-up of 10);
  train:     Keras fit() on the pipeline (the same MLP as bench/keras_bench.py), `--steps` steps;
  memory:    Keras fit() on the same rows held in memory (the first shard, cached), `--steps` steps:
             train vs memory is tf.data's own data stall.
"""
import argparse
import glob
import json
import os
import random
import tarfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

AUTOTUNE = tf.data.AUTOTUNE
PREFIX = '{"pixels":['


def parse_batch(lines):
    parts = tf.strings.split(tf.strings.substr(lines, len(PREFIX), -1), '],"y":').to_tensor(shape=[None, 2])
    pixels = parts[:, 0]
    label = tf.strings.to_number(tf.strings.regex_replace(parts[:, 1], "}", ""), tf.int32)
    x = tf.strings.to_number(tf.strings.split(pixels, ","), tf.float32).to_tensor(shape=[None, 784])
    return x, tf.one_hot(label, 10)


def dataset(files, batch, window, seed):
    ds = tf.data.Dataset.from_tensor_slices(files).shuffle(len(files), seed=seed)
    ds = ds.interleave(
        lambda f: tf.data.TextLineDataset(f, compression_type="GZIP"),
        cycle_length=2,
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
    ds = ds.shuffle(window, seed=seed).repeat()
    return ds.batch(batch, drop_remainder=True).map(parse_batch, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


def tar_samples(files, seed):
    """(jpeg bytes, class) of every sample of `files`, file order shuffled per pass, for ever."""
    rng = random.Random(seed)

    def gen():
        order = list(files)
        while True:
            rng.shuffle(order)
            for f in order:
                with tarfile.open(f, "r:*") as t:
                    image, label = {}, {}
                    for m in t:
                        if not m.isfile():
                            continue
                        base = os.path.basename(m.name)
                        k, _, ext = base.partition(".")
                        data = t.extractfile(m).read()
                        if ext in ("jpg", "jpeg", "png"):
                            image[k] = data
                        elif ext == "cls":
                            label[k] = int(data)
                        if k in image and k in label:
                            yield image.pop(k), label.pop(k)

    return gen


def image_dataset(files, batch, window, seed, size, repeat=True):
    ds = tf.data.Dataset.from_generator(
        tar_samples(files, seed),
        output_signature=(tf.TensorSpec((), tf.string), tf.TensorSpec((), tf.int32)),
    )
    ds = ds.shuffle(window, seed=seed)

    def decode(jpeg, label):
        x = tf.cast(tf.io.decode_jpeg(jpeg, channels=3), tf.float32) / 255.0
        return tf.reshape(x, [size * size * 3]), tf.one_hot(label, 10)

    ds = ds.map(decode, num_parallel_calls=AUTOTUNE)
    return ds.batch(batch, drop_remainder=True).prefetch(AUTOTUNE)


def build(size=None):
    if size is not None:
        return keras.Sequential([
            keras.Input((size * size * 3,)),
            keras.layers.Reshape((size, size, 3)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ])
    return keras.Sequential([
        keras.Input((784,)),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])


def fit_rate(ds, steps, batch, size=None):
    keras.utils.set_random_seed(1)
    model = build(size)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy")
    marks = {}

    class Clock(keras.callbacks.Callback):
        # Timed from the end of the 10th (warm-up) step to the end of training, in one fit().
        def on_train_batch_end(self, b, logs=None):
            if b == 9:
                marks["start"] = time.perf_counter()

        def on_train_end(self, logs=None):
            marks["end"] = time.perf_counter()

    model.fit(ds, steps_per_epoch=steps + 10, epochs=1, verbose=0, shuffle=False, callbacks=[Clock()])
    return steps * batch / (marks["end"] - marks["start"])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--files", required=True, help="a glob of local paths or gs:// URIs")
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--window", type=int, default=16384)
    p.add_argument("--modes", default="pipeline,train,memory")
    p.add_argument("--format", default="jsonl", choices=["jsonl", "tar"])
    p.add_argument("--size", type=int, help="image side (--format tar)")
    a = p.parse_args()
    if a.format == "tar":
        if not a.size:
            raise SystemExit("--format tar needs --size")
    size = a.size if a.format == "tar" else None

    def make(fs):
        return image_dataset(fs, a.batch, a.window, 1, a.size) if size else dataset(fs, a.batch, a.window, 1)

    files = sorted(tf.io.gfile.glob(a.files) if a.files.startswith("gs://") else glob.glob(a.files))
    if not files:
        raise SystemExit(f"no files match {a.files}")
    out = {"tensorflow": tf.__version__, "files": len(files), "threads": os.cpu_count()}
    modes = a.modes.split(",")
    if "pipeline" in modes:
        it = iter(make(files))
        for _ in range(10):
            next(it)
        start = time.perf_counter()
        for _ in range(a.steps):
            next(it)
        out["pipeline"] = a.steps * a.batch / (time.perf_counter() - start)
    if "train" in modes:
        out["train"] = fit_rate(make(files), a.steps, a.batch, size)
    if "memory" in modes:
        per_shard = 10000 if not size else sum(1 for n in tarfile.open(files[0]).getnames() if n.endswith(".cls"))
        rows = make(files[:1]).take(max(1, per_shard // a.batch)).cache()
        list(rows)  # fill the cache
        out["memory"] = fit_rate(rows.repeat(), a.steps, a.batch, size)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
