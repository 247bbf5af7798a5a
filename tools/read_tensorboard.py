"""Reads TensorBoard event files with TensorBoard's own reader and prints their scalars as JSON.

    python tools/read_tensorboard.py <logdir>
    -> {"<run>": {"<tag>": [[step, value, wall_time], ...]}, ...}, "_files": n, "_records": n}

Used by the tests (test/tensorboard*.test.ts) to check what durable-train writes against
metrics.jsonl. Every record's framing CRCs are verified first with TensorBoard's masked_crc32c, so a
file TensorBoard would silently skip fails here loudly.
"""
import json
import os
import struct
import sys

from tensorboard.backend.event_processing import event_multiplexer
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c


def check_framing(path):
    n = 0
    with open(path, "rb") as f:
        data = f.read()
    at = 0
    while at < len(data):
        header = data[at:at + 8]
        (length,) = struct.unpack("<Q", header)
        (crc_len,) = struct.unpack("<I", data[at + 8:at + 12])
        if crc_len != masked_crc32c(header):
            raise SystemExit(f"{path}: bad length CRC at byte {at}")
        body = data[at + 12:at + 12 + length]
        (crc_body,) = struct.unpack("<I", data[at + 12 + length:at + 16 + length])
        if crc_body != masked_crc32c(body):
            raise SystemExit(f"{path}: bad data CRC at byte {at}")
        at += 16 + length
        n += 1
    return n


def main(logdir):
    files = records = 0
    for root, _, names in os.walk(logdir):
        for name in names:
            if "tfevents" in name:
                files += 1
                records += check_framing(os.path.join(root, name))
    mux = event_multiplexer.EventMultiplexer(size_guidance={"scalars": 0})
    mux.AddRunsFromDirectory(logdir)
    mux.Reload()
    out = {"_files": files, "_records": records}
    for run, tags in sorted(mux.Runs().items()):
        out[run] = {
            tag: [[e.step, e.value, e.wall_time] for e in mux.Scalars(run, tag)]
            for tag in sorted(tags.get("scalars", []))
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
