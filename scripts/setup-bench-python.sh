#!/usr/bin/env bash
# The reference Python the benchmarks compare against: TensorFlow 2.21 (CPU) with Keras 3, for the
# Keras columns of `npm run bench` and bench/tabular.ts and for exporting the trainable SavedModels
# of the graph-route columns. Installed from PyPI into .cache/py-bench (git-ignored), once, reusing
# the tensorflow-cpu wheel scripts/setup-native.sh already downloaded into .cache/wheels; prints the
# venv's python path on stdout. pyarrow (pinned) writes the Parquet fixtures of
# scripts/make-format-fixtures.py beside TensorFlow's TFRecords. test/keras-roundtrip.e2e.test.ts uses it (CI installs it); $DT_PYTHON overrides it in the benchmarks.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.cache/py-bench"
TF_VERSION=2.21.0
PYARROW_VERSION=26.0.1
STAMP="$VENV/.installed-tensorflow-cpu==$TF_VERSION"
ARROW_STAMP="$VENV/.installed-pyarrow==$PYARROW_VERSION"
log() { echo "[setup-bench-python] $*" >&2; }

if [[ ! -f "$STAMP" ]]; then
  [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
  log "installing tensorflow-cpu==$TF_VERSION (with Keras 3) into .cache/py-bench"
  mkdir -p "$ROOT/.cache/wheels"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    --find-links "$ROOT/.cache/wheels" "tensorflow-cpu==$TF_VERSION" >&2
  touch "$STAMP"
fi
if [[ ! -f "$ARROW_STAMP" ]]; then
  log "installing pyarrow==$PYARROW_VERSION into .cache/py-bench"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "pyarrow==$PYARROW_VERSION" >&2
  touch "$ARROW_STAMP"
fi
echo "$VENV/bin/python"
