#!/usr/bin/env bash
# Builds anjeon with `--features cuda` on a machine without a GPU, to show the CUDA build
# compiles (a separate check; the README's test command does not run it).
#
# nvcc, the CUDA headers and libraries come from NVIDIA's PyPI wheels, installed once under
# the cache. The CUDA 12 nvcc wheels on PyPI carry only ptxas, so this takes the CUDA 13
# ones, which carry nvcc itself (they install into nvidia/cu13/).
#
#   benches/cuda-check.sh            # cargo build --features cuda (about 25 min on 2 cores)
#   CUDA_CHECK=check benches/cuda-check.sh   # cargo check only (about 13 min)
#
# Environment: ANJEON_CACHE_DIR (default .cache), CUDA_COMPUTE_CAP (default 90, an H100),
# CUDA_TARGET_DIR (default target/cuda, so the normal build is left alone).
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${ANJEON_CACHE_DIR:-$PWD/.cache}"
py="$cache/cuda/py13"
root="$py/nvidia/cu13"
if [ ! -x "$root/bin/nvcc" ] || ! ls "$root"/lib/libnvrtc.so.* >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check --no-deps --upgrade --target "$py" \
    "nvidia-cuda-nvcc==13.5.37" "nvidia-cuda-runtime==13.5.37" "nvidia-cuda-crt==13.5.37" \
    "nvidia-nvvm==13.5.37" "nvidia-cuda-nvrtc==13.5.37" "nvidia-cuda-cccl==13.3.5.0.6" \
    "nvidia-cublas==13.10.0.20" "nvidia-curand==10.4.5.25"
fi
"$root/bin/nvcc" --version | tail -2

# the runtime libraries have versioned names only; the linker wants the plain ones
for lib in "$root"/lib/lib*.so.*; do
  plain="${lib%%.so.*}.so"
  [ -e "$plain" ] || ln -s "$(basename "$lib")" "$plain"
done

# The driver library (libcuda) comes with the GPU driver, never from PyPI. To link without
# one, build a stub as the toolkit's lib/stubs/libcuda.so is: every driver entry point that
# cudarc declares, doing nothing, under the driver's soname; the real library replaces it
# when the binary runs on a machine with a GPU.
stubs="$cache/cuda/stubs"
if [ ! -e "$stubs/libcuda.so" ]; then
  cudarc=$(cargo metadata --locked --format-version 1 --features cuda |
    python3 -c 'import json, sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"] == "cudarc"))')
  mkdir -p "$stubs"
  grep -ohE "fn cu[A-Za-z0-9_]+\(" "$(dirname "$cudarc")/src/driver/sys/mod.rs" |
    sed -E 's/fn (cu[A-Za-z0-9_]+)\(/void \1(void) {}/' | sort -u > "$stubs/libcuda.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stubs/libcuda.so" "$stubs/libcuda.c"
fi

export CUDA_ROOT="$root" CUDA_PATH="$root" CUDA_TOOLKIT_ROOT_DIR="$root"
export PATH="$root/bin:$PATH"
export LIBRARY_PATH="$root/lib:$stubs${LIBRARY_PATH:+:$LIBRARY_PATH}"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
# cudarc picks its bindings by version; 13.4 is the newest it knows (nvcc is 13.5)
export CUDARC_CUDA_VERSION="${CUDARC_CUDA_VERSION:-13040}"
export CARGO_TARGET_DIR="${CUDA_TARGET_DIR:-$PWD/target/cuda}"

start=$(date +%s)
case "${CUDA_CHECK:-build}" in
  check) cargo check --locked --features cuda --lib --bin anjeon ;;
  *) cargo build --locked --features cuda --bin anjeon ;;
esac
echo "the CUDA build compiles ($(( $(date +%s) - start )) s, compute capability $CUDA_COMPUTE_CAP)"
