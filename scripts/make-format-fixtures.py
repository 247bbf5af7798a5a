"""Writes TFRecord and Parquet shards with the real writers (TensorFlow's TFRecordWriter and
tf.train.Example, pyarrow's ParquetWriter), for the `sharded` dataset's format tests.

Python from scripts/setup-bench-python.sh (TensorFlow 2.21 and pyarrow, pinned):

  PY=$(bash scripts/setup-bench-python.sh)
  $PY scripts/make-format-fixtures.py fixtures test/fixtures/formats
      the small committed fixtures (test/data-formats.test.ts reads them with no Python): records of
      every feature kind and column type, plus expected.json, the values as this script wrote them.
  $PY scripts/make-format-fixtures.py mnist ROWS.json OUT_DIR PER_SHARD
      ROWS.json ([{"pixels": [784 numbers], "label": n}, ...], as test/helpers/mnist-shards.ts makes
      them) as OUT_DIR/part-NNNNN.tfrecord.gz and OUT_DIR/part-NNNNN.parquet, PER_SHARD rows each
      (test/data-formats.e2e.test.ts compares their training with the same rows' JSONL shards).
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import tensorflow as tf  # noqa: E402


def floats(v):
    return tf.train.Feature(float_list=tf.train.FloatList(value=v))


def ints(v):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=v))


def strings(v):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[s.encode("utf-8") for s in v]))


def write_tfrecords(path, examples, gzip):
    options = tf.io.TFRecordOptions(compression_type="GZIP" if gzip else "")
    with tf.io.TFRecordWriter(path, options) as w:
        for e in examples:
            w.write(e.SerializeToString())


def fixtures(out):
    os.makedirs(out, exist_ok=True)
    rows = []
    for i in range(5):
        rows.append({
            "x": [0.5 * i, -1.25, 3.0 + i / 8],
            "n": [i, -7 - i],
            "one": [i * 2.5],
            "label": i % 3,
            "name": ["cat", "dog", "bird"][i % 3],
            "score": 0.25 * i,
        })
    examples = [
        tf.train.Example(features=tf.train.Features(feature={
            "x": floats(r["x"]), "n": ints(r["n"]), "one": floats(r["one"]),
            "label": ints([r["label"]]), "name": strings([r["name"]]), "score": floats([r["score"]]),
        }))
        for r in rows
    ]
    write_tfrecords(os.path.join(out, "small.tfrecord"), examples, gzip=False)
    write_tfrecords(os.path.join(out, "small.tfrecord.gz"), examples, gzip=True)
    # A record whose features vary in length (the second has 2 values of `x`, not 3).
    ragged = [
        tf.train.Example(features=tf.train.Features(feature={"x": floats([1, 2, 3]), "label": ints([0])})),
        tf.train.Example(features=tf.train.Features(feature={"x": floats([1, 2]), "label": ints([1])})),
    ]
    write_tfrecords(os.path.join(out, "ragged.tfrecord"), ragged, gzip=False)

    table = pa.table({
        "a": pa.array([r["x"][0] for r in rows], pa.float64()),
        "b": pa.array([r["n"][0] for r in rows], pa.int32()),
        "c": pa.array([r["n"][1] for r in rows], pa.int64()),
        "f": pa.array([r["score"] for r in rows], pa.float32()),
        "v": pa.array([r["x"] for r in rows], pa.list_(pa.float32(), 3)),
        "w": pa.array([r["n"] for r in rows], pa.list_(pa.float64())),
        "s": pa.array([r["name"] for r in rows], pa.string()),
        "label": pa.array([r["label"] for r in rows], pa.int64()),
        "ts": pa.array([1_700_000_000_000 + i for i in range(5)], pa.timestamp("ms")),
    })
    # Two row groups, so reading crosses a row-group boundary.
    pq.write_table(table, os.path.join(out, "small.parquet"), row_group_size=3, compression="snappy")
    pq.write_table(table.select(["v", "label"]), os.path.join(out, "gzip.parquet"), compression="gzip")
    pq.write_table(table.select(["v", "label"]), os.path.join(out, "lz4.parquet"), compression="lz4")
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({"rows": rows, "writers": {"tensorflow": tf.__version__, "pyarrow": pa.__version__}}, f, indent=1)
        f.write("\n")


def mnist(rows_json, out, per_shard):
    with open(rows_json) as f:
        rows = json.load(f)
    os.makedirs(out, exist_ok=True)
    for k, start in enumerate(range(0, len(rows), per_shard)):
        part = rows[start:start + per_shard]
        examples = [
            tf.train.Example(features=tf.train.Features(feature={"pixels": floats(r["pixels"]), "y": ints([r["label"]])}))
            for r in part
        ]
        write_tfrecords(os.path.join(out, f"part-{k:05d}.tfrecord.gz"), examples, gzip=True)
        table = pa.table({
            "pixels": pa.array([r["pixels"] for r in part], pa.list_(pa.float32(), 784)),
            "y": pa.array([r["label"] for r in part], pa.int64()),
        })
        pq.write_table(table, os.path.join(out, f"part-{k:05d}.parquet"), compression="snappy")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "fixtures":
        fixtures(sys.argv[2])
    elif len(sys.argv) == 5 and sys.argv[1] == "mnist":
        mnist(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(__doc__)
