#!/usr/bin/env bash
# Long fuzzing run: every libFuzzer target of tests/fuzz for FUZZ_MINUTES (default 10) each,
# FUZZ_JOBS at a time (default 1; 2 on an otherwise idle 2-core machine), through
# scripts/fuzz.sh. Prints per target execs/s, coverage (cov/ft), corpus size and crashes, with the
# date and commit, and keeps the report in bench/results/fuzz/report-<stamp>.txt.
#
#   bash bench/fuzz/run.sh                       # 13 targets x 10 min, one at a time (~2 h 15)
#   FUZZ_MINUTES=10 FUZZ_JOBS=2 bash bench/fuzz/run.sh
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
FUZZ_MINUTES=${FUZZ_MINUTES:-10}
[[ "$FUZZ_MINUTES" =~ ^[0-9]+$ && "$FUZZ_MINUTES" -gt 0 ]] || { echo "FUZZ_MINUTES must be a positive integer" >&2; exit 2; }
stamp=$(date -u +%Y%m%dT%H%M%SZ)
OUT_DIR=${OUT_DIR:-$ROOT/bench/results/fuzz}
mkdir -p "$OUT_DIR"
report=$OUT_DIR/report-$stamp.txt
{
  echo "# berth fuzz run $stamp"
  echo "commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (with local changes)')," \
       "$(clang++ --version | head -1), ${FUZZ_MINUTES} min per target, ${FUZZ_JOBS:-1} at a time, $(nproc) cores"
  FUZZ_SECONDS=$((FUZZ_MINUTES * 60)) FUZZ_JOBS=${FUZZ_JOBS:-1} FUZZ_OUT=$OUT_DIR/runs-$stamp bash "$ROOT/scripts/fuzz.sh"
} 2>&1 | tee "$report"
rc=${PIPESTATUS[0]}
echo "report: $report"
exit "$rc"
