#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (CMake preset "fuzz": clang, ASan + UBSan, one target
# per decoder of untrusted bytes) and runs each for FUZZ_SECONDS, FUZZ_JOBS at a time, starting
# from its committed seed corpus tests/fuzz/corpus/<target>/. Prints one line per target: runs,
# execs/s, coverage (cov = edges, ft = features), corpus size, crashes (crash/leak/timeout/oom
# artifacts). Exit code 0 only if no target found anything.
#
#   bash scripts/fuzz.sh                          # CI: 5 s per target, 2 at a time (~50 s + the build)
#   FUZZ_SECONDS=600 FUZZ_JOBS=2 bash scripts/fuzz.sh   # what bench/fuzz/run.sh does
#   FUZZ_TARGETS="resp_fuzz jwt_fuzz" bash scripts/fuzz.sh
#
# Environment: FUZZ_SECONDS (5), FUZZ_JOBS (2), FUZZ_TARGETS (all), FUZZ_OUT (build/fuzz/runs:
# per target its log, new corpus entries and artifacts), FUZZ_MAX_LEN (4096).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export FUZZ_SECONDS=${FUZZ_SECONDS:-5}
FUZZ_JOBS=${FUZZ_JOBS:-2}
export FUZZ_MAX_LEN=${FUZZ_MAX_LEN:-4096}
export FUZZ_OUT=${FUZZ_OUT:-$ROOT/build/fuzz/runs}
export FUZZ_BIN=$ROOT/build/fuzz/tests/fuzz FUZZ_SEEDS=$ROOT/tests/fuzz/corpus
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$ROOT}

command -v clang++ >/dev/null || { echo "fuzz: clang++ missing (scripts/install.sh installs clang)"; exit 1; }
cmake --preset fuzz >/dev/null && cmake --build --preset fuzz >/dev/null || {
  echo "fuzz: build failed"; cmake --build --preset fuzz 2>&1 | grep -E "error|FAILED" | head -20; exit 1; }

targets=${FUZZ_TARGETS:-$(cd tests/fuzz && ls ./*_fuzz.cpp | sed 's#^\./##; s#\.cpp$##')}
mkdir -p "$FUZZ_OUT"

run_one() {  # run_one TARGET: one bounded libFuzzer run (wall time: FUZZ_SECONDS + a margin)
  local t=$1 dir=$FUZZ_OUT/$1
  rm -rf "$dir" && mkdir -p "$dir/corpus" "$dir/artifacts"
  mkdir -p "$FUZZ_SEEDS/$t"
  timeout --kill-after=30 $((FUZZ_SECONDS + 120)) "$FUZZ_BIN/$t" -max_total_time="$FUZZ_SECONDS" -max_len="$FUZZ_MAX_LEN" \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$dir/artifacts/" \
    "$dir/corpus" "$FUZZ_SEEDS/$t" >"$dir/log" 2>&1
  echo $? >"$dir/rc"
}
export -f run_one
printf '%s\n' $targets | xargs -P "$FUZZ_JOBS" -I{} bash -c 'run_one "$1"' _ {}

failed=0
printf '%-22s %12s %9s %7s %8s %8s %8s\n' target runs execs/s cov ft corpus crashes
for t in $targets; do
  dir=$FUZZ_OUT/$t
  runs=$(grep -oE 'stat::number_of_executed_units: +[0-9]+' "$dir/log" | tail -1 | grep -oE '[0-9]+$')
  eps=$(grep -oE 'stat::average_exec_per_sec: +[0-9]+' "$dir/log" | tail -1 | grep -oE '[0-9]+$')
  last=$(grep -E '^#[0-9]+.*cov: ' "$dir/log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' <<<"$last" | grep -oE '[0-9]+'); ft=$(grep -oE 'ft: [0-9]+' <<<"$last" | grep -oE '[0-9]+')
  corp=$(grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' <<<"$last" | sed 's/corp: //')
  crashes=$(find "$dir/artifacts" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
  rc=$(cat "$dir/rc" 2>/dev/null || echo 1)
  printf '%-22s %12s %9s %7s %8s %8s %8s\n' "$t" "${runs:--}" "${eps:--}" "${cov:--}" "${ft:--}" "${corp:--}" "$crashes"
  if [ "$rc" != 0 ] || [ "$crashes" != 0 ]; then
    failed=$((failed + 1))
    echo "  $t: exit $rc; log $dir/log; artifacts:"; ls "$dir/artifacts" | sed 's/^/    /'
    grep -E 'ERROR|SUMMARY|==[0-9]+==' "$dir/log" | head -8 | sed 's/^/    /'
  fi
done
[ "$failed" -eq 0 ] && echo "fuzz: all $(wc -w <<<"$targets") targets ran clean (${FUZZ_SECONDS}s each)" || echo "fuzz: $failed targets failed"
[ "$failed" -eq 0 ]
