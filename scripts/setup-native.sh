#!/usr/bin/env bash
# scripts/setup-native.sh [--gpu [--cuda|--no-cuda]] — make the native TensorFlow backend
# (@tensorflow/tfjs-node, or with --gpu @tensorflow/tfjs-node-gpu) usable without reaching storage.googleapis.com.
#
# tfjs-node's own install script downloads libtensorflow from a Google host. Instead we take
# the same TensorFlow C API from the `tensorflow-cpu` wheel on PyPI (libtensorflow_cc.so.2 +
# libtensorflow_framework.so.2 + C headers), lay it out in node_modules/@tensorflow/tfjs-node/deps
# the way its binding.gyp expects, and build the N-API addon from source with node-pre-gyp/node-gyp
# against the locally installed Node headers (--nodedir, no header download).
#
# The result (deps/ + lib/napi-v*/tfjs_binding.node) is cached in .cache/tfjs-node-<v>-tf<v>/, so
# after a fresh `npm ci` a rerun only hard-links (or copies) it back in.
#
# --gpu builds @tensorflow/tfjs-node-gpu the same way against the CUDA 12 build of TensorFlow
# (PyPI's `tensorflow` wheel), in .cache/tfjs-node-gpu-<v>-tf<v>/ (see scripts/setup-native-gpu.sh):
#   --cuda     also lay out CUDA 12 / cuDNN 9 from the nvidia-*-cu12 wheels (~2.7 GB); the default
#              when an NVIDIA device exists. Without them the build loads and runs on the CPU only.
#   --no-cuda  never fetch them
#
# Exit status: 0 = native backend verified working, or intentionally skipped (DT_SKIP_NATIVE=1, or
# tfjs-node not installed); non-zero = failed (caller should fall back to wasm).
#
# Env:
#   DT_SKIP_NATIVE=1       do nothing, exit 0
#   DT_NODEDIR=<dir>       Node install prefix holding include/node/node_api.h (default: autodetect)
#   TF_CPP_MIN_LOG_LEVEL   passed to the verify step (default 2 here)
set -euo pipefail

log() { echo "[setup-native] $*"; }
die() {
  echo "[setup-native] ERROR: $*" >&2
  echo "[setup-native] native tensorflow backend NOT available (use the wasm fallback)" >&2
  exit 1
}

if [[ "${DT_SKIP_NATIVE:-}" == "1" ]]; then
  log "DT_SKIP_NATIVE=1 set: skipping native tfjs-node setup"
  exit 0
fi

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# DT_NATIVE_ROOT: the folder whose node_modules/ holds tfjs-node (`durable-train setup-native` sets it
# to the project the package is installed in); DT_NATIVE_CACHE: where builds and wheels are kept.
ROOT="${DT_NATIVE_ROOT:-$(cd "$SCRIPT_DIR/.." && pwd)}"
cd "$ROOT"
CACHE_DIR="${DT_NATIVE_CACHE:-.cache}"
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$ROOT/$1" ;; esac; }
START_NS=$(date +%s%N)
elapsed() { echo "$(( ($(date +%s%N) - START_NS) / 1000000 ))ms"; }

TF_VERSION=2.21.0
TFJS_GPU_VERSION=4.22.0
WHEEL_DIR="$CACHE_DIR/wheels"
GPU=0 CUDA=auto
for arg in "$@"; do
  case "$arg" in --gpu) GPU=1 ;; --cuda) CUDA=1 ;; --no-cuda) CUDA=0 ;;
    *) die "unknown argument '$arg' (expected --gpu, --cuda, --no-cuda)" ;; esac
done
[[ $GPU == 1 || $CUDA == auto ]] || die "--cuda/--no-cuda only go with --gpu"
[[ $CUDA != auto ]] || { CUDA=0; [[ -e /dev/nvidia0 || -e /proc/driver/nvidia/version ]] && CUDA=1; }

command -v node >/dev/null 2>&1 || die "node not found on PATH"

if [[ $GPU == 1 ]]; then
  NAME=@tensorflow/tfjs-node-gpu
  PREFIX="$CACHE_DIR/tfjs-node-gpu-${TFJS_GPU_VERSION}-tf${TF_VERSION}"
  PKG="$PREFIX/node_modules/$NAME"
  REQUIRE="$(abspath "$PKG")"  # not resolvable by name: it is outside node_modules
  PIP_NAME=tensorflow
  source "$SCRIPT_DIR/setup-native-gpu.sh"
  fetch_gpu_package
else
  NAME=@tensorflow/tfjs-node
  PKG=node_modules/$NAME
  REQUIRE=$NAME
  PIP_NAME=tensorflow-cpu
  if [[ ! -d "$PKG" ]]; then
    log "note: $PKG is not installed; nothing to do (install npm deps first; wasm fallback applies)"
    exit 0
  fi
fi
mkdir -p "$CACHE_DIR"

# Loads with the `tensorflow` backend, registered with the project's own tfjs (one tfjs-core).
quick_check() {
  TF_CPP_MIN_LOG_LEVEL=2 node -e "
    const tf = require('$REQUIRE');
    if (tf.getBackend() !== 'tensorflow') process.exit(3);
    const core = (p) => require.resolve('@tensorflow/tfjs-core', p && {paths: [p]});
    if (core('$(abspath "$PKG")') !== core()) process.exit(4);" >/dev/null 2>&1
}
# .cache/tfjs-node-gpu-path: what src/training/backend.ts reads to find the GPU build.
done_ok() { [[ $GPU == 0 ]] || echo "$PKG" >"$CACHE_DIR/tfjs-node-gpu-path"; exit 0; }
[[ $GPU == 1 ]] || cuda_complete() { false; }
# The TensorFlow part works (TOUCHED_PKG=0): a failed CUDA fetch must not remove it.
finish() { TOUCHED_PKG=0; [[ $CUDA == 0 ]] || install_cuda; done_ok; }

TFJS_NODE_VERSION=$(node -p "require('$(abspath "$PKG")/package.json').version")
[[ "$TFJS_NODE_VERSION" == "4.22.0" ]] ||
  log "warning: $NAME $TFJS_NODE_VERSION found; this script was validated with 4.22.0"
if [[ $GPU == 1 ]]; then CACHE="$PREFIX/build"; else CACHE="$CACHE_DIR/tfjs-node-${TFJS_NODE_VERSION}-tf${TF_VERSION}"; fi

# 1. Already working (e.g. installed the normal way with internet access, or a previous run)?
if quick_check && { [[ $CUDA == 0 ]] || cuda_complete; }; then
  log "$NAME already loads with the 'tensorflow' backend; nothing to do"
  done_ok
fi

# Serialize concurrent runs (the same node_modules/cache would be written).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE_DIR/.setup-native.lock"
  flock 9
  # Another run may have finished the job while we waited.
  if quick_check && { [[ $CUDA == 0 ]] || cuda_complete; }; then
    log "$NAME now loads (set up by a concurrent run); nothing to do"
    done_ok
  fi
fi

# Where tfjs-node's dist/index.js will look for the addon (node-pre-gyp's find(), which picks the
# best N-API version listed in its package.json, e.g. lib/napi-v8/tfjs_binding.node).
ADDON_REL=$(node -e "
  const path = require('path'); const pkg = path.resolve('$PKG');
  const npg = require(require.resolve('@mapbox/node-pre-gyp', {paths: [pkg]}));
  console.log(path.relative(pkg, npg.find(path.join(pkg, 'package.json'))));") ||
  die "cannot resolve @mapbox/node-pre-gyp from $PKG (npm deps incomplete?)"

STAGE=""
TOUCHED_PKG=0
cleanup() {
  local rc=$?
  [[ -n "$STAGE" && -d "$STAGE" ]] && rm -rf "$STAGE"
  if [[ $rc -ne 0 && $TOUCHED_PKG -eq 1 ]]; then
    # Leave tfjs-node as it was (no half-built addon that could confuse the fallback logic).
    rm -rf "${PKG:?}/deps" "${PKG:?}/lib" "${PKG:?}/build" "${PKG:?}"/build-tmp-napi-v*
  fi
  exit "$rc"
}
trap cleanup EXIT

# Hard-link a tree (instant, no extra disk for the ~850MB of libs); copy if linking fails.
link_or_copy() {
  local src=$1 dst=$2
  rm -rf "$dst"
  if ! cp -al "$src" "$dst" 2>/dev/null; then
    rm -rf "$dst"
    cp -a "$src" "$dst"
  fi
}

verify() {
  local out
  if out=$(DT_GPU=$GPU TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}" node -e "
    (async () => {
      const tf = require('$REQUIRE');
      const backend = tf.getBackend();
      if (process.env.DT_GPU === '1') console.log('gpu device listed: ' + tf.backend().isUsingGpuDevice);
      console.log('backend: ' + backend);
      if (backend !== 'tensorflow') throw new Error('expected backend tensorflow, got ' + backend);
      const c = tf.matMul(tf.tensor2d([[1, 2], [3, 4]]), tf.tensor2d([[5, 6], [7, 8]])).arraySync();
      if (JSON.stringify(c) !== '[[19,22],[43,50]]') throw new Error('matMul wrong: ' + JSON.stringify(c));
      console.log('matMul ok: ' + JSON.stringify(c));
      const m = tf.sequential();
      m.add(tf.layers.dense({inputShape: [4], units: 8, activation: 'relu'}));
      m.add(tf.layers.dense({units: 1}));
      m.compile({optimizer: 'adam', loss: 'meanSquaredError'});
      const h = await m.fit(tf.randomNormal([32, 4]), tf.randomNormal([32, 1]),
                            {epochs: 1, batchSize: 16, verbose: 0});
      const loss = h.history.loss[0];
      if (!Number.isFinite(loss)) throw new Error('fit loss not finite: ' + loss);
      console.log('sequential fit ok: 1 epoch, loss=' + loss.toFixed(4));
    })().catch(e => { console.error(e && e.stack || e); process.exit(1); });" 2>&1); then
    grep -E '^(backend|gpu device|matMul|sequential)' <<<"$out" | sed 's/^/[setup-native]   /'
    return 0
  fi
  echo "[setup-native] verification output:" >&2
  sed 's/^/[setup-native]   | /' <<<"$out" | tail -n 40 >&2
  return 1
}

cache_complete() {
  [[ -f "$CACHE/.complete" && -f "$CACHE/$ADDON_REL" &&
     -f "$CACHE/deps/lib/libtensorflow_cc.so.2" && -f "$CACHE/deps/lib/libtensorflow_framework.so.2" &&
     -f "$CACHE/deps/include/tensorflow/c/c_api.h" ]]
}

# 2. Warm path: restore from cache.
if cache_complete; then
  log "restoring cached build from $CACHE"
  TOUCHED_PKG=1
  link_or_copy "$CACHE/deps" "$PKG/deps"
  link_or_copy "$CACHE/lib" "$PKG/lib"
  if verify; then
    log "OK: $NAME ready (restored from cache in $(elapsed))"
    finish
  fi
  log "cached build failed verification; discarding cache and rebuilding"
  rm -rf "$CACHE" "${PKG:?}/deps" "${PKG:?}/lib"
fi

# 3. Cold path: build from the tensorflow(-cpu) wheel.
[[ "$(uname -s)" == Linux && "$(uname -m)" == x86_64 ]] ||
  die "unsupported platform $(uname -s)/$(uname -m): only Linux x86_64 ($PIP_NAME manylinux wheel)"
for t in python3 make g++; do
  command -v "$t" >/dev/null 2>&1 || die "build tool '$t' not found (need python3, make, g++)"
done

# node-gyp: the one bundled with npm (node-pre-gyp honours npm_config_node_gyp).
if [[ -z "${npm_config_node_gyp:-}" || ! -f "${npm_config_node_gyp}" ]]; then
  npm_config_node_gyp=""
  cands=()
  if command -v npm >/dev/null 2>&1; then
    cands+=("$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")/node_modules/node-gyp/bin/node-gyp.js")
  fi
  cands+=("node_modules/node-gyp/bin/node-gyp.js"
          "$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js")
  for c in "${cands[@]}"; do
    if [[ -f "$c" ]]; then npm_config_node_gyp=$(readlink -f "$c"); break; fi
  done
  [[ -n "$npm_config_node_gyp" ]] || die "node-gyp not found (expected the copy bundled with npm)"
fi
export npm_config_node_gyp

# Node headers: use the local install (node-gyp cannot download them offline).
NODE_VER=$(node -p 'process.versions.node')
NODEDIR="${DT_NODEDIR:-${npm_config_nodedir:-$(node -p "require('path').resolve(process.execPath, '..', '..')")}}"
GYP_NODEDIR_ARGS=()
if [[ -f "$NODEDIR/include/node/node_api.h" && -f "$NODEDIR/include/node/common.gypi" ]]; then
  GYP_NODEDIR_ARGS=("--nodedir=$NODEDIR")
elif [[ -f "$HOME/.cache/node-gyp/$NODE_VER/include/node/node_api.h" ]]; then
  NODEDIR="$HOME/.cache/node-gyp/$NODE_VER (node-gyp header cache)"
else
  die "Node $NODE_VER headers not found at $NODEDIR/include/node (set DT_NODEDIR=<prefix>)"
fi
log "tools: $(g++ --version | head -n1), node-gyp $(node "$npm_config_node_gyp" --version), node headers: $NODEDIR"

# The wheel (any CPython tag works: the C API libs don't depend on the Python ABI).
shopt -s nullglob
find_wheel() { local w=("$WHEEL_DIR/${PIP_NAME//-/_}-$TF_VERSION"-*manylinux*_x86_64.whl); echo "${w[0]:-}"; }
WHEEL=$(find_wheel)
if [[ -z "$WHEEL" ]]; then
  log "downloading $PIP_NAME==$TF_VERSION wheel from PyPI into $WHEEL_DIR (tensorflow-cpu ~260MB, tensorflow ~570MB)"
  mkdir -p "$WHEEL_DIR"
  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_27_x86_64 -d "$WHEEL_DIR" "$PIP_NAME==$TF_VERSION" ||
    die "pip download of $PIP_NAME==$TF_VERSION failed"
  WHEEL=$(find_wheel)
  [[ -n "$WHEEL" ]] || die "pip download finished but no ${PIP_NAME//-/_}-$TF_VERSION manylinux x86_64 wheel in $WHEEL_DIR"
fi
log "using wheel $WHEEL"

STAGE="$CACHE.tmp.$$"
rm -rf "$STAGE"
mkdir -p "$STAGE/deps/lib" "$STAGE/deps/include"

log "extracting libtensorflow_cc.so.2, libtensorflow_framework.so.2 and the C API headers"
python3 - "$WHEEL" "$STAGE/deps" "$PKG" <<'PY' || die "extracting from $WHEEL failed (corrupt wheel? delete it and rerun)"
import glob, os, re, shutil, sys, zipfile
wheel, deps, pkg = sys.argv[1:4]
z = zipfile.ZipFile(wheel)
names = set(z.namelist())
for lib in ("libtensorflow_cc.so.2", "libtensorflow_framework.so.2"):
    src = "tensorflow/" + lib
    if src not in names:
        sys.exit(f"{src} not in wheel")
    with z.open(src) as fi, open(os.path.join(deps, "lib", lib), "wb") as fo:
        shutil.copyfileobj(fi, fo, 1 << 20)
# Headers: transitive closure of the TF headers the binding includes (+ binding.gyp's two).
P = "tensorflow/include/"
inc = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)
roots = {"tensorflow/c/c_api.h", "tensorflow/c/eager/c_api.h"}
for f in glob.glob(os.path.join(pkg, "binding", "*")):
    roots.update(h for h in inc.findall(open(f, errors="replace").read()) if P + h in names)
seen, stack = set(), list(roots)
while stack:
    h = stack.pop()
    if h in seen or P + h not in names:
        continue  # system / std headers are not in the wheel
    seen.add(h)
    stack.extend(inc.findall(z.read(P + h).decode("utf-8", "replace")))
if "tensorflow/c/c_api.h" not in seen:
    sys.exit("tensorflow/include/tensorflow/c/c_api.h not in wheel")
for h in sorted(seen):
    dst = os.path.join(deps, "include", h)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with open(dst, "wb") as fo:
        fo.write(z.read(P + h))
print(f"[setup-native]   {len(seen)} headers extracted")
PY
# binding.gyp links -ltensorflow -ltensorflow_framework against deps/lib. libtensorflow_cc.so.2
# exports the C/eager C API (TF_*, TFE_*); its SONAME is libtensorflow_cc.so.2, so the addon
# records NEEDED libtensorflow_cc.so.2 and that real file must stay in deps/lib.
# libtensorflow.so.2.9.1 is the name tfjs-node's install.js tests for: with it present an
# accidental `npm rebuild` won't wipe deps/ to re-download.
(
  cd "$STAGE/deps/lib"
  ln -sf libtensorflow_cc.so.2 libtensorflow.so
  ln -sf libtensorflow_cc.so.2 libtensorflow.so.2
  ln -sf libtensorflow_cc.so.2 libtensorflow.so.2.9.1
  ln -sf libtensorflow_framework.so.2 libtensorflow_framework.so
)

TOUCHED_PKG=1
rm -rf "${PKG:?}/lib" "${PKG:?}/build" "${PKG:?}"/build-tmp-napi-v*
link_or_copy "$STAGE/deps" "$PKG/deps"

NPG=$(node -p "require.resolve('@mapbox/node-pre-gyp/bin/node-pre-gyp', {paths: [require('path').resolve('$PKG')]})")
log "building tfjs_binding from source (node-pre-gyp install --build-from-source); log: $CACHE/build.log"
if ! (cd "$PKG" && node "$NPG" install --build-from-source "${GYP_NODEDIR_ARGS[@]}") >"$STAGE/build.log" 2>&1; then
  echo "[setup-native] first errors:" >&2
  grep -m 8 -E '(error|ERR!)' "$STAGE/build.log" | sed 's/^/[setup-native]   | /' >&2 || true
  echo "[setup-native] build output (tail):" >&2
  tail -n 12 "$STAGE/build.log" | sed 's/^/[setup-native]   | /' >&2
  cp "$STAGE/build.log" "$CACHE_DIR/tfjs-node-build-failed.log" 2>/dev/null || true
  die "node-pre-gyp/node-gyp build of tfjs_binding failed (full log: $CACHE_DIR/tfjs-node-build-failed.log)"
fi
rm -rf "$PKG"/build-tmp-napi-v* "$CACHE_DIR/tfjs-node-build-failed.log"  # node-pre-gyp's object dir
nwarn=$(grep -c 'warning:' "$STAGE/build.log" || true)
[[ "$nwarn" == 0 ]] || log "note: $nwarn compiler warning(s) in the build log"

ADDON="$PKG/$ADDON_REL"
[[ -f "$ADDON" ]] || die "build reported success but $ADDON_REL is missing (node-pre-gyp module_path mismatch?)"
# The addon's RUNPATH ($ORIGIN/../../deps/lib from binding.gyp) must resolve the TF libs.
LDD=$(ldd "$ADDON" 2>&1) || die "ldd $ADDON failed: $LDD"
if grep -q 'not found' <<<"$LDD"; then
  die "unresolved shared libraries for $ADDON_REL: $(grep 'not found' <<<"$LDD" | tr -s ' \t' ' ')"
fi
grep -q 'deps/lib/libtensorflow_cc.so.2' <<<"$LDD" ||
  die "libtensorflow_cc.so.2 not resolved from deps/lib: $(grep tensorflow <<<"$LDD" | tr -s ' \t' ' ')"
log "built $ADDON_REL; ldd resolves libtensorflow_cc/framework from deps/lib"

log "verifying"
verify || die "the freshly built addon failed verification"

# Commit to the cache (atomic rename of the staging dir).
mkdir -p "$STAGE/lib"
cp -a "$PKG/lib/." "$STAGE/lib/"
cat >"$STAGE/.complete" <<EOF
$NAME=$TFJS_NODE_VERSION
$PIP_NAME=$TF_VERSION
wheel=$(basename "$WHEEL")
addon=$ADDON_REL
built-with-node=$NODE_VER
built-at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
EOF
rm -rf "$CACHE"
mv "$STAGE" "$CACHE"
STAGE=""
log "cached result in $CACHE"
log "OK: $NAME ready (built in $(elapsed))"
finish
