#!/usr/bin/env bash
# Builds the libFuzzer targets in tests/fuzz with clang (ASan+UBSan) and runs each for
# FUZZ_SECONDS (default 20). Only the pure protocol cores are linked: no sockets, no Asio.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=build/fuzz
SECONDS_EACH=${FUZZ_SECONDS:-20}
mkdir -p "$OUT"
CXX=${FUZZ_CXX:-clang++}
SRCS="src/engineio/packet.cpp src/engineio/websocket_codec.cpp src/engineio/session_fsm.cpp src/socketio/packet.cpp src/core/random.cpp"
# The SSE parser and the provider codecs (pure: berth_llm_core).
SRCS="$SRCS src/llm/sse.cpp src/llm/codec_common.cpp src/llm/openai_codec.cpp src/llm/anthropic_codec.cpp src/llm/gemini_codec.cpp src/core/errors.cpp src/core/logging.cpp"
for target in tests/fuzz/*_fuzz.cpp; do
  name=$(basename "$target" .cpp)
  $CXX -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Iinclude \
    $(pkg-config --cflags spdlog) "$target" $SRCS -lcrypto $(pkg-config --libs spdlog) -o "$OUT/$name"
  mkdir -p "$OUT/corpus-$name"
  # Seeds kept in the repo (tests/fuzz/corpus/<target>/) start the run; new finds go to build/.
  seeds=""
  [ -d "tests/fuzz/corpus/$name" ] && seeds="tests/fuzz/corpus/$name"
  echo "== $name (${SECONDS_EACH}s)"
  "$OUT/$name" -max_total_time="$SECONDS_EACH" -max_len=4096 -print_final_stats=1 "$OUT/corpus-$name" $seeds 2>&1 |
    grep -E "stat::number_of_executed_units|ERROR|SUMMARY|crash" || true
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "$name found a failure"; exit 1; }
done
echo "fuzz: all targets ran clean"
