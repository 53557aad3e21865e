#!/usr/bin/env bash
# Artillery load scenario for Berth (issue #6): each virtual user connects over Socket.IO
# (Engine.IO v4 / Socket.IO v5, Artillery's built-in socketio engine), waits for system:ready,
# sends a message that makes the local provider call a tool, approves that call by its captured
# callId, waits for tool:output and agent:response, then ends its session.
#
#   bash bench/artillery/run.sh [TARGET_URL]        # CI size: 1 VU/s for 20 s (20 VUs)
#   ARRIVAL_RATE=20 DURATION=60 MAX_VUSERS=400 bash bench/artillery/run.sh http://localhost:3000   # full size
#
# Environment (defaults):
#   TARGET (http://127.0.0.1:3000, the scale stack's nginx; the first argument wins)
#   ARRIVAL_RATE=1  DURATION=20  MAX_VUSERS=50 (cap on VUs alive at once)
#   MAX_ERROR_RATE=0 (fraction of failed VUs tolerated; above it the script exits 1, as when no VU completed)
#   OUT_DIR=<repo>/bench/results/artillery  (report-<stamp>.json, artillery-<stamp>.log, summary-<stamp>.md)
#   READY_TIMEOUT_MS=30000 TURN_TIMEOUT_MS=30000 END_ACK_TIMEOUT_MS=5000 KEEP_SESSIONS=0 (processor.mjs)
#   ALLOW_NON_LOOPBACK=0 (the target must be 127.0.0.0/8, localhost or [::1] unless set to 1)
# Everything is bounded: npm ci 15 min, the target's readiness 60 s, artillery DURATION + 3 min.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

export TARGET=${1:-${TARGET:-http://127.0.0.1:3000}}
TARGET=${TARGET%/}
export ARRIVAL_RATE=${ARRIVAL_RATE:-1}
export DURATION=${DURATION:-20}
export MAX_VUSERS=${MAX_VUSERS:-50}
export MAX_ERROR_RATE=${MAX_ERROR_RATE:-0}
export READY_TIMEOUT_MS=${READY_TIMEOUT_MS:-30000}
export TURN_TIMEOUT_MS=${TURN_TIMEOUT_MS:-30000}
export END_ACK_TIMEOUT_MS=${END_ACK_TIMEOUT_MS:-5000}
OUT_DIR=${OUT_DIR:-$ROOT/bench/results/artillery}
# Artillery must not phone home (no network here beyond the package registry).
export ARTILLERY_DISABLE_TELEMETRY=true

for v in ARRIVAL_RATE DURATION MAX_VUSERS; do
  [[ "${!v}" =~ ^[0-9]+$ && "${!v}" -gt 0 ]] || { echo "run.sh: $v must be a positive integer, got '${!v}'" >&2; exit 2; }
done

host=$(sed -E 's#^[a-z]+://##; s#/.*$##; s#^\[([^]]*)\].*$#\1#; s#:[0-9]+$##' <<<"$TARGET")
if [[ "${ALLOW_NON_LOOPBACK:-0}" != 1 && ! "$host" =~ ^(127\.[0-9]+\.[0-9]+\.[0-9]+|localhost|::1)$ ]]; then
  echo "run.sh: refusing non-loopback target '$TARGET' (set ALLOW_NON_LOOPBACK=1 for a stack you own)" >&2
  exit 2
fi

# ---- dependencies (node_modules is not committed; the lock pins artillery)
if [[ ! -x "$HERE/node_modules/.bin/artillery" ]]; then
  echo "installing artillery (npm ci) ..."
  # artillery pulls in playwright, whose postinstall would download a browser: not needed here.
  (cd "$HERE" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 timeout 900 npm ci --no-audit --no-fund --loglevel=error)
fi

# ---- the target must be up
ready=""
for _ in $(seq 60); do
  code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$TARGET/health/ready" || true)
  [[ "$code" == 200 ]] && { ready=1; break; }
  sleep 1
done
[[ -n "$ready" ]] || { echo "run.sh: $TARGET/health/ready did not answer 200 within 60 s (last: ${code:-none})" >&2; exit 1; }

mkdir -p "$OUT_DIR"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
report=$OUT_DIR/report-$stamp.json
log=$OUT_DIR/artillery-$stamp.log
summary=$OUT_DIR/summary-$stamp.md

echo "artillery: $TARGET  arrival ${ARRIVAL_RATE}/s for ${DURATION}s (max ${MAX_VUSERS} VUs at once)"
limit=$((DURATION + 180))
rc=0
(cd "$HERE" && timeout --kill-after=10 "$limit" ./node_modules/.bin/artillery run scenario.yml -o "$report") >"$log" 2>&1 || rc=$?
if [[ $rc -ne 0 || ! -s "$report" ]]; then
  tail -40 "$log" >&2
  echo "run.sh: artillery exited $rc (124 = over the ${limit}s bound); log: $log" >&2
  exit 1
fi

{
  echo "# Artillery run $stamp"
  echo
  echo "target $TARGET, arrival ${ARRIVAL_RATE}/s for ${DURATION}s, max ${MAX_VUSERS} VUs at once, artillery $(node -p "require('$HERE/node_modules/artillery/package.json').version" 2>/dev/null || echo '?')"
  echo
} >"$summary"
sum_rc=0
(cd "$HERE" && node summarize.mjs "$report" "$summary.body") || sum_rc=$?
cat "$summary.body" >>"$summary" 2>/dev/null || true
rm -f "$summary.body"
echo "report: $report"
echo "summary: $summary"
exit $sum_rc
