#!/usr/bin/env bash
# Builds one libFuzzer target with clang (libFuzzer + ASan + UBSan) and runs it for a
# bounded time, starting from its committed seed corpus (tests/fuzz/corpus/TARGET,
# which also holds every input that ever crashed: replayed first, on every run). Any
# crash, sanitizer report or leak fails the run.
#   Usage: run.sh SOURCE_DIR TARGET SECONDS [OUT_DIR]
# TARGET: frames | reader | topology | token | bridge | api. OUT_DIR (kept) gets the binary, the
# grown corpus and any crashing input; without it a temporary directory is used.
set -euo pipefail
source_dir="$(cd "$1" && pwd)"
target="$2"
seconds="${3:-15}"
if [ -n "${4:-}" ]; then
  work="$4"
  mkdir -p "$work"
else
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work/include" "$work/corpus"
ln -sfn "$source_dir" "$work/include/switchboard"

common=(common/error.cpp common/utf8.cpp common/message_map.cpp common/msgpack_reader.cpp)
case "$target" in
  frames)   sources=(transport/codec.cpp actors/store_protocol.cpp); libs=() ;;
  reader)   sources=(transport/codec.cpp); libs=() ;;
  # toml++ as Switchboard links it: Debian's shared library (its CMake target sets these).
  topology) sources=(router/topology.cpp router/host_port.cpp transport/codec.cpp transport/curve.cpp
                     transport/key_file.cpp)
            libs=(-DTOML_HEADER_ONLY=0 -DTOML_SHARED_LIB=1 -ltomlplusplus -lzmq -lsodium) ;;
  token)    sources=(transport/token.cpp transport/key_file.cpp); libs=(-lsodium) ;;
  bridge)   sources=(actors/bridge/client_request.cpp actors/bridge/json_codec.cpp transport/codec.cpp
                     transport/presence_codec.cpp); libs=() ;;
  api)      sources=(actors/api/api_request.cpp actors/grants.cpp actors/bridge/json_codec.cpp transport/codec.cpp
                     transport/presence_codec.cpp); libs=() ;;
  *) echo "run.sh: unknown target '$target' (frames, reader, topology, token, bridge, api)" >&2; exit 2 ;;
esac
flags=(-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -DMSGPACK_NO_BOOST -I"$work/include")
files=()
for f in "${common[@]}" "${sources[@]}" "tests/fuzz/${target}_fuzz.cpp"; do files+=("$source_dir/$f"); done
clang++ "${flags[@]}" "${files[@]}" "${libs[@]}" -o "$work/${target}_fuzz"

cp "$source_dir/tests/fuzz/corpus/$target/"* "$work/corpus/"
# malloc_limit: no single allocation may exceed 64 MiB for inputs of at most 64 KiB.
"$work/${target}_fuzz" -max_total_time="$seconds" -rss_limit_mb=1024 -malloc_limit_mb=64 -max_len=65536 \
  -artifact_prefix="$work/" -print_final_stats=1 "$work/corpus" 2>"$work/log" || {
  tail -60 "$work/log"
  echo "run.sh: $target crashed; the input is $work/crash-* (add it to tests/fuzz/corpus/$target/ once fixed)"
  exit 1
}
runs="$(grep -oE 'stat::number_of_executed_units:[[:space:]]+[0-9]+' "$work/log" | grep -oE '[0-9]+$')"
rss="$(grep -oE 'stat::peak_rss_mb:[[:space:]]+[0-9]+' "$work/log" | grep -oE '[0-9]+$')"
cov="$(grep -oE 'cov: [0-9]+' "$work/log" | tail -1 | grep -oE '[0-9]+$')"
echo "fuzz $target: ${runs} inputs in ${seconds}s ($((runs / seconds))/s), coverage ${cov:-?} edges, peak ${rss} MB:" \
     "no crash, no sanitizer report"
echo "1 passed, 0 failed"
