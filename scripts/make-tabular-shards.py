"""Writes JSON Lines rows read from standard input as one Parquet file with pyarrow (the writer of
scripts/make-tabular-shards.ts --format parquet): `pixels` a fixed-size list<float32>[784], `y` int64,
snappy pages (pyarrow's default, what BigQuery and Spark exports use too).

    python scripts/make-tabular-shards.py OUT.parquet < rows.jsonl
"""
import json
import sys

import pyarrow as pa
import pyarrow.parquet as pq


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    rows = [json.loads(line) for line in sys.stdin if line.strip()]
    table = pa.table({
        "pixels": pa.array([r["pixels"] for r in rows], pa.list_(pa.float32(), 784)),
        "y": pa.array([r["y"] for r in rows], pa.int64()),
    })
    pq.write_table(table, sys.argv[1], compression="snappy")


if __name__ == "__main__":
    main()
