#!/usr/bin/env bash
# attn-mlir set-up, build, demo and tests.
#
#   ./run.sh demo   install what is missing, build, and run the main job:
#                   every attention layer of all-MiniLM-L6-v2 on real
#                   sentences, compiled by attn-mlir, against the model's own
#                   output (prints the per-layer max abs error)
#   ./run.sh test   install what is missing, build, and run every test
#   ./run.sh build  install what is missing and build only
#
# Environment: BUILD_DIR (default build), JOBS (default: number of cores).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
JOBS=${JOBS:-$(nproc)}

APT_PACKAGES=(libmlir-22-dev mlir-22-tools llvm-22-dev llvm-22-tools clang-22
              cmake ninja-build ccache libgtest-dev nlohmann-json3-dev
              libcli11-dev python3-dev python3-numpy python3-pytest
              pybind11-dev)

install_deps() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
  fi
}

build() {
  install_deps
  if [ ! -f "$BUILD_DIR/build.ninja" ]; then
    cmake -G Ninja -S "$ROOT" -B "$BUILD_DIR" \
      -DCMAKE_BUILD_TYPE=Release \
      -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
      -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
      -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
      -DPython3_EXECUTABLE=/usr/bin/python3
  fi
  cmake --build "$BUILD_DIR" -j "$JOBS"
}

demo() {
  build
  "$ROOT/examples/minilm/run_minilm.sh" "$BUILD_DIR/bin/attn-run"
}

tests() {
  build
  ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS"
}

case "${1:-}" in
  demo) demo ;;
  test) tests ;;
  build) build ;;
  *) sed -n '2,12p' "$0"; exit 2 ;;
esac
