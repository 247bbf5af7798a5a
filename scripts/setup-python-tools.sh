#!/usr/bin/env bash
# Python tools the tests read runs with: TensorBoard's own event reader (and, with --mlflow, a
# real MLflow tracking server; with --sklearn, scikit-learn, whose package ships the tabular
# datasets tools/sklearn_tabular.py writes as CSV for the tabular accuracy test and bench).
# Installed from PyPI into a virtualenv in .cache/py (git-ignored), once; prints the venv's python
# path on stdout. Pinned so that a test reads with a known reader.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.cache/py"
TENSORBOARD_VERSION=2.21.0
MLFLOW_VERSION=3.17.2
SKLEARN_VERSION=1.9.1
log() { echo "[setup-python-tools] $*" >&2; }

want=("tensorboard==$TENSORBOARD_VERSION")
[[ " $* " == *" --mlflow "* ]] && want+=("mlflow==$MLFLOW_VERSION")
[[ " $* " == *" --sklearn "* ]] && want+=("scikit-learn==$SKLEARN_VERSION")
# One stamp per pinned package: asking for another one later installs only that one.
missing=()
for pkg in "${want[@]}"; do [[ -f "$VENV/.installed-$pkg" ]] || missing+=("$pkg"); done
if [[ ${#missing[@]} -gt 0 ]]; then
  [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
  log "installing ${missing[*]} into .cache/py"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${want[@]}" >&2
  for pkg in "${want[@]}"; do touch "$VENV/.installed-$pkg"; done
fi
echo "$VENV/bin/python"
