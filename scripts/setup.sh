#!/usr/bin/env bash
# Installs everything durable-train needs on a bare machine, caching under .cache/ (git-ignored)
# so that the second run takes seconds. Prefers what is already there.
#   1. npm packages           (npm ci --ignore-scripts: no install script may download from elsewhere)
#   2. native TensorFlow      (scripts/setup-native.sh: tfjs-node built against PyPI's tensorflow-cpu)
#   3. Temporal dev server    (TEMPORAL_CLI_PATH, PATH, .cache/bin, else go install temporal CLI v1.5.1)
#   4. GCS emulator           (FAKE_GCS_SERVER_PATH, PATH, .cache/bin, else go install fake-gcs-server v1.55.1)
# Flags: --server-only (only 1 and 3), --quiet
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SERVER_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --server-only) SERVER_ONLY=1 ;;
  esac
done
log() { echo "[setup] $*" >&2; }
mkdir -p .cache/bin

# 1. npm packages: reinstall only when package-lock.json changed since the last install.
LOCK_HASH="$(sha256sum package-lock.json | cut -c1-16)"
if [[ -L node_modules ]]; then
  # A checkout that borrows another's install (a git worktree): npm ci would empty the shared one.
  log "node_modules is a symlink to a shared install: not reinstalling it here"
elif [[ ! -f node_modules/.dt-lock-hash || "$(cat node_modules/.dt-lock-hash)" != "$LOCK_HASH" ]]; then
  log "installing npm packages (npm ci --ignore-scripts)"
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2
  echo "$LOCK_HASH" > node_modules/.dt-lock-hash
fi

# Go builds go to .cache/bin; module and build caches stay in Go's own (per-user) folders.
go_install() { # name module@version
  local name="$1" module="$2"
  if ! command -v go >/dev/null 2>&1; then
    log "ERROR: $name is not installed and Go is not available to build it ($module)."
    log "       Install Go, or put $name on PATH, or set its *_PATH variable."
    return 1
  fi
  log "building $name with go install $module (first run only)"
  GOBIN="$ROOT/.cache/bin" GOFLAGS=-mod=mod go install "$module" >&2
}

find_tool() { # name env-var module@version
  local name="$1" var="$2" module="$3" path="${!2:-}"
  if [[ -n "$path" && -x "$path" ]]; then echo "$path"; return; fi
  if [[ -x ".cache/bin/$name" ]]; then echo "$ROOT/.cache/bin/$name"; return; fi
  if path="$(command -v "$name" 2>/dev/null)"; then echo "$path"; return; fi
  go_install "$name" "$module"
  echo "$ROOT/.cache/bin/$name"
}

# 3. Temporal CLI (the dev server). Later tags carry replace directives that go install refuses.
TEMPORAL="$(find_tool temporal TEMPORAL_CLI_PATH github.com/temporalio/cli/cmd/temporal@v1.5.1)"
echo "$TEMPORAL" > .cache/temporal-path

if [[ "$SERVER_ONLY" == 0 ]]; then
  # 2. Native TensorFlow; on failure the trainer falls back to wasm (and says so in every run).
  if ! bash scripts/setup-native.sh >&2; then
    log "native TensorFlow could not be set up: training will use the wasm backend"
  fi
  # 4. GCS emulator, for the tests.
  FAKE_GCS="$(find_tool fake-gcs-server FAKE_GCS_SERVER_PATH github.com/fsouza/fake-gcs-server@v1.55.1)"
  echo "$FAKE_GCS" > .cache/fake-gcs-server-path
fi
log "ready"
