#!/usr/bin/env bash
# Installs the build into a fresh prefix, then configures, builds and runs
# examples/capi-install against it (find_package(AttnMLIR)), outside the
# source tree: the C API works from an installed copy.
#   install-and-link.sh BUILD_DIR SOURCE_DIR C_COMPILER
set -euo pipefail
build=$1 source=$2 cc=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
test -x "$work/prefix/bin/attn-run" && test -x "$work/prefix/bin/attn-opt"
test -f "$work/prefix/include/attn-c/attn.h"
cmake -S "$source/examples/capi-install" -B "$work/example" -G Ninja \
  -DCMAKE_C_COMPILER="$cc" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/example" >/dev/null
"$work/example/attn-capi-example"
"$work/prefix/bin/attn-run" --help >/dev/null
