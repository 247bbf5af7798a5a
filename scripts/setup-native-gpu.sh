# shellcheck shell=bash
# Sourced by scripts/setup-native.sh --gpu (uses its log, die, link_or_copy, NAME, PKG, CACHE).
#
# tfjs-node-gpu is not an npm dependency (npm would run its install script, which downloads
# libtensorflow 2.9.1 for CUDA 11.2 from a Google host). npm pack fetches the package alone into
# .cache/tfjs-node-gpu-<v>-tf<v>/node_modules/, where src/training/backend.ts finds it through
# .cache/tfjs-node-gpu-path. Its dependencies (the same as tfjs-node's) resolve from the project's
# node_modules up the tree, so it registers its backend with the project's own tfjs.
#
# CUDA 12 and cuDNN 9 come from PyPI's nvidia-*-cu12 wheels, laid out in deps/nvidia/<lib>/lib
# beside deps/lib/: libtensorflow's RUNPATH ($ORIGIN/../nvidia/<lib>/lib) is where its dlopen calls
# look, so no LD_LIBRARY_PATH is needed. TensorFlow opens them only once libcuda.so.1 (the NVIDIA
# driver's) has loaded: a machine without a GPU never touches them.

fetch_gpu_package() {
  node -e "require.resolve('@tensorflow/tfjs'); require.resolve('@mapbox/node-pre-gyp')" 2>/dev/null ||
    die "@tensorflow/tfjs and @mapbox/node-pre-gyp must be in node_modules (npm ci first): $NAME uses the project's"
  [[ -f "$PKG/package.json" ]] && return
  log "fetching $NAME@$TFJS_GPU_VERSION with npm pack into $PKG"
  mkdir -p "$CACHE_DIR/npm" "$PKG"
  local tgz
  tgz=$(cd "$CACHE_DIR/npm" && npm pack --silent "$NAME@$TFJS_GPU_VERSION") || die "npm pack $NAME@$TFJS_GPU_VERSION failed"
  tar -xzf "$CACHE_DIR/npm/$tgz" -C "$PKG" --strip-components=1 || die "extracting $CACHE_DIR/npm/$tgz failed"
}

# What pip resolved on 2026-12-02 for the ranges tensorflow[and-cuda]==2.21.0 asks for, pinned.
CUDA_WHEELS=(
  nvidia-cublas-cu12==12.9.3.13
  nvidia-cuda-cupti-cu12==12.8.90
  nvidia-cuda-nvcc-cu12==12.9.86
  nvidia-cuda-nvrtc-cu12==12.9.86
  nvidia-cuda-runtime-cu12==12.9.79
  nvidia-cudnn-cu12==9.28.0.42
  nvidia-cufft-cu12==11.4.1.4
  nvidia-curand-cu12==10.3.10.19
  nvidia-cusolver-cu12==11.7.5.82
  nvidia-cusparse-cu12==12.5.10.65
  nvidia-nccl-cu12==2.32.3
  nvidia-nvjitlink-cu12==12.9.86
)
# The libraries TensorFlow's GPU support dlopens (<folder under nvidia/>:<soname>).
CUDA_DLOPENED=(cuda_runtime:libcudart.so.12 cublas:libcublas.so.12 cublas:libcublasLt.so.12
  cufft:libcufft.so.11 cusolver:libcusolver.so.11 cusparse:libcusparse.so.12 cudnn:libcudnn.so.9
  nccl:libnccl.so.2 cuda_cupti:libcupti.so.12)
CUDA_WHEEL_DIR="$CACHE_DIR/wheels/cuda12"

cuda_complete() { [[ -f "$CACHE/deps/nvidia/.complete" && -f "$PKG/deps/nvidia/.complete" ]]; }

install_cuda() {
  local t0 stage
  t0=$(date +%s)
  if [[ ! -f "$CACHE/deps/nvidia/.complete" ]]; then
    log "downloading ${#CUDA_WHEELS[@]} CUDA 12 / cuDNN 9 wheels (~2.7 GB) into $CUDA_WHEEL_DIR"
    mkdir -p "$CUDA_WHEEL_DIR"
    # The wheels carry several manylinux tags; pip matches none of them unless each is listed.
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.11 \
      --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      --platform manylinux_2_12_x86_64 --platform manylinux2010_x86_64 \
      -d "$CUDA_WHEEL_DIR" "${CUDA_WHEELS[@]}" >"$CUDA_WHEEL_DIR/download.log" 2>&1 ||
      die "pip download of the CUDA wheels failed: $(tail -n 3 "$CUDA_WHEEL_DIR/download.log" | tr '\n' ' ')"
    log "CUDA wheels there after $(( $(date +%s) - t0 )) s; extracting their libraries"
    stage="$CACHE/deps/nvidia.tmp.$$"
    rm -rf "$stage"
    python3 - "$stage" "$CUDA_WHEEL_DIR" "${CUDA_WHEELS[@]}" <<'PY' || die "extracting the CUDA wheels failed"
import glob, os, shutil, sys, zipfile
stage, wheel_dir, reqs = sys.argv[1], sys.argv[2], sys.argv[3:]
for req in reqs:
    name, version = req.split("==")
    found = glob.glob(os.path.join(wheel_dir, f"{name.replace('-', '_')}-{version}-*.whl"))
    if not found:
        sys.exit(f"no wheel for {req} in {wheel_dir}")
    with zipfile.ZipFile(found[0]) as z:
        for info in z.infolist():
            n = info.filename
            # Libraries and tools (ptxas, libdevice) only: no headers, no Python glue.
            if not n.startswith("nvidia/") or n.endswith("/") or "/include/" in n or n.endswith(".py") or "__pycache__" in n:
                continue
            dst = os.path.join(stage, n[len("nvidia/"):])
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with z.open(info) as fi, open(dst, "wb") as fo:
                shutil.copyfileobj(fi, fo, 1 << 20)
            mode = (info.external_attr >> 16) & 0o777
            os.chmod(dst, mode or 0o644)
PY
    printf '%s\n' "${CUDA_WHEELS[@]}" >"$stage/.complete"
    rm -rf "$CACHE/deps/nvidia"
    mv "$stage" "$CACHE/deps/nvidia"
  fi
  link_or_copy "$CACHE/deps/nvidia" "$PKG/deps/nvidia"
  # Where the RUNPATH leads, each library TensorFlow opens must be, with its own needs met (but
  # libcuda.so.1, which only the NVIDIA driver provides).
  local entry lib missing
  for entry in "${CUDA_DLOPENED[@]}"; do
    lib="$PKG/deps/lib/../nvidia/${entry%%:*}/lib/${entry#*:}"
    [[ -f "$lib" ]] || die "CUDA library ${entry#*:} missing at $lib"
    missing=$(ldd "$lib" 2>&1 | grep 'not found' | grep -v 'libcuda\.so\.1' || true)
    [[ -z "$missing" ]] || die "${entry#*:} has unresolved libraries: $(tr -s ' \t\n' ' ' <<<"$missing")"
  done
  log "CUDA 12 / cuDNN 9 laid out in $PKG/deps/nvidia (${#CUDA_DLOPENED[@]} libraries resolve) in $(( $(date +%s) - t0 )) s"
}
