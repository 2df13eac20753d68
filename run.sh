#!/usr/bin/env bash
# attn-mlir set-up, build, demo and tests.
#
#   ./run.sh demo   install what is missing, build, and run the main job:
#                   every attention layer of all-MiniLM-L6-v2 on real
#                   sentences, compiled by attn-mlir, against the model's own
#                   output (prints the per-layer max abs error)
#   ./run.sh test   install what is missing, build, and run every test
#   ./run.sh build  install what is missing and build only
#   ./run.sh sanitize   build with AddressSanitizer + UBSan (build-asan) and
#                   run the C++ tests, the C API test and the lit suite there
#   ./run.sh fuzz [SECONDS]  build the libFuzzer targets (build-asan) and run
#                   each (spec parser, .npy reader, attn-opt) for SECONDS
#                   (default 60) from the corpora in test/fuzz/corpus
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
              pybind11-dev python3-venv)

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

# configure_and_build DIR [CMAKE_ARGS...]: configures DIR once, then builds.
configure_and_build() {
  local dir=$1
  shift
  install_deps
  if [ ! -f "$dir/build.ninja" ]; then
    cmake -G Ninja -S "$ROOT" -B "$dir" \
      -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
      -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
      -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
      -DPython3_EXECUTABLE=/usr/bin/python3 "$@"
  fi
  cmake --build "$dir" -j "$JOBS"
}

build() {
  configure_and_build "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release
}

demo() {
  build
  "$ROOT/examples/minilm/run_minilm.sh" "$BUILD_DIR/bin/attn-run"
}

tests() {
  build
  ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS"
}

ASAN_DIR=${ASAN_DIR:-$ROOT/build-asan}
# Leaks are not checked: runtimes of the tests are deliberately never
# destroyed (static kernels at exit), and MLIR's statics live to the end.
# allow_user_poisoning=0: Debian's libMLIR/libLLVM are not instrumented, but
# our instrumented code inlines LLVM's BumpPtrAllocator, which poisons the
# slabs it allocates and unpoisons what it hands out; libMLIR's own copy
# then hands out memory of such a slab without unpoisoning it, a false
# use-after-poison (seen in attn-fuzz-opt on MLIR's attribute storage).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:allow_user_poisoning=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

build_asan() {
  configure_and_build "$ASAN_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DATTN_ENABLE_PYTHON=OFF -DATTN_SANITIZE=ON -DATTN_FUZZERS=ON
}

sanitize() {
  build_asan
  # The Python extension is not built here (an instrumented extension needs
  # the ASan runtime preloaded into python).
  ctest --test-dir "$ASAN_DIR" --output-on-failure -j "$JOBS" -E '^python'
}

fuzz() {
  local seconds=${1:-60}
  build_asan
  local out="$ASAN_DIR/fuzz"
  for target in spec npy opt; do
    local corpus=mlir
    [ "$target" = spec ] && corpus=spec
    [ "$target" = npy ] && corpus=npy
    mkdir -p "$out/$target"
    cp -n "$ROOT/test/fuzz/corpus/$corpus/"* "$out/$target/"
    echo "== attn-fuzz-$target for ${seconds}s"
    (cd "$out" && "$ASAN_DIR/bin/attn-fuzz-$target" -max_total_time="$seconds" \
       -max_len=65536 -rss_limit_mb=4096 -timeout=30 -print_final_stats=1 \
       "$out/$target")
  done
}

case "${1:-}" in
  demo) demo ;;
  test) tests ;;
  build) build ;;
  sanitize) sanitize ;;
  fuzz) fuzz "${2:-60}" ;;
  *) sed -n '2,17p' "$0"; exit 2 ;;
esac
