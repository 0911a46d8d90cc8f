#!/usr/bin/env bash
# Builds the frame fuzzer with clang (libFuzzer + ASan + UBSan) and runs it for a
# bounded time from a seed corpus of valid frames. Any crash, sanitizer report or
# leak fails the test. Usage: run.sh SOURCE_DIR SECONDS
set -euo pipefail
source_dir="$1"
seconds="${2:-20}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/include" "$work/corpus"
ln -s "$source_dir" "$work/include/switchboard"

flags=(-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -DMSGPACK_NO_BOOST -I"$work/include")
sources=("$source_dir/common/error.cpp" "$source_dir/common/utf8.cpp" "$source_dir/transport/codec.cpp"
         "$source_dir/actors/store_protocol.cpp" "$source_dir/tests/fuzz/frame_fuzz.cpp")
clang++ "${flags[@]}" "${sources[@]}" -o "$work/frame_fuzz"

# Seeds: one valid frame of each kind, so the fuzzer starts inside the grammar.
/usr/bin/python3 - "$work/corpus" <<'PY'
import msgpack, sys, os
d = sys.argv[1]
seeds = [
  {"v": 1, "op": "publish", "id": 7, "room": "general", "user": "ann", "cmid": "c1", "body": "hello"},
  {"v": 1, "op": "history", "id": 8, "room": "general", "limit": 20, "before": 9},
  {"v": 1, "op": "rooms", "id": 9, "user": "ann"},
  {"v": 1, "op": "publish", "id": 7, "room": "general", "seq": 4, "ts": 1, "duplicate": False},
  {"v": 1, "op": "history", "id": 8, "messages": [{"room": "r", "seq": 1, "user": "u", "ts": 2, "body": "b", "cmid": "c"}], "more": True},
  {"v": 1, "op": "error", "id": 3, "code": "not_member", "message": "no"},
  {"v": 1, "op": "message", "room": "r", "seq": 1, "user": "u", "ts": 2, "body": "b", "cmid": "c"},
  {"op": "append", "batch": 2, "after": 1, "records": [[0, "r", "ann", 5], [3, "r", 1, "ann", 5, "b", "c"]]},
  {"op": "read", "corr": 1, "reply_id": 2, "room": "r", "mode": 1, "seq": 5, "limit": 10},
]
for i, s in enumerate(seeds):
    open(os.path.join(d, f"seed{i}"), "wb").write(msgpack.packb(s, use_bin_type=True))
PY

# malloc_limit: no single allocation may exceed 64 MiB for frames of at most 64 KiB.
"$work/frame_fuzz" -max_total_time="$seconds" -rss_limit_mb=1024 -malloc_limit_mb=64 -max_len=65536 \
  -artifact_prefix="$work/" -print_final_stats=1 "$work/corpus" 2>"$work/log" || { tail -60 "$work/log"; exit 1; }
grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$work/log"
runs="$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$work/log" | grep -oE '[0-9]+$')"
echo "fuzzed ${runs} frames for ${seconds}s: no crash, no sanitizer report"
echo "1 passed, 0 failed"
