#!/usr/bin/env bash
# Installs Switchboard into a temporary prefix with `cmake --install`, builds
# examples/embed against that installed tree with find_package(Switchboard), and
# runs it twice on one data directory (the second run sees the first run's message).
set -euo pipefail
source_dir="$1"
build_dir="$2"
cxx_flags="${3:-}"  # the flags the library was built with (sanitizers must match)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cmake --install "$build_dir" --prefix "$work/prefix" >/dev/null
cmake -S "$source_dir/examples/embed" -B "$work/build" -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_CXX_FLAGS="$cxx_flags" >/dev/null
cmake --build "$work/build" -j2 >/dev/null
test -f "$work/prefix/include/switchboard/client/client.hpp"
test -f "$work/prefix/lib/cmake/Switchboard/SwitchboardConfig.cmake" || test -f "$work/prefix"/lib/*/cmake/Switchboard/SwitchboardConfig.cmake

first="$("$work/build/embed_example" "$work/data")"
echo "$first"
grep -q "posted seq 1" <<<"$first"
second="$("$work/build/embed_example" "$work/data")"
echo "$second"
grep -q "posted seq 2" <<<"$second"
grep -q "history holds 2 message(s)" <<<"$second"
echo "1 passed, 0 failed"
