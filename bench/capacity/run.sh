#!/usr/bin/env bash
# Capacity benchmark of Berth at the deployment guide's shape (issue 13). One command:
#
#   bash bench/capacity/run.sh                      # rate mode, CI size, own berth + redis
#   SHAPE=guide bash bench/capacity/run.sh          # the guide: 50/s x 60 s, then 100/s x 300 s
#   MODE=soak bash bench/capacity/run.sh            # 30 min at RATE (1/s), sampled every 30 s
#   MODE=concurrency USERS=2000 HOLD_S=300 bash bench/capacity/run.sh
#   TARGET=http://127.0.0.1:3000 bash bench/capacity/run.sh   # the scale stack's nginx (or any running berth)
#   GENERATOR=both bash bench/capacity/run.sh       # the light generator, then Artillery, same settings
#
# What one user does (both generators): connect (Socket.IO, namespace /), wait for system:ready,
# emit `message` "List all files in /workspace" (ack), wait for tool:approval_required, think
# THINK_MS, emit tool:approval {callId, approved:true} (ack), wait for tool:output of that callId
# and agent:response, disconnect WITHOUT session:end. README.md explains every figure.
#
# Settings (environment; defaults in brackets):
#   MODE [rate]            rate | soak | concurrency | calibrate (the generators alone, against
#                          lib/fake-berth.mjs: CAL_RATES ["10,25,50,100"] CAL_DURATION_S [20])
#   GENERATOR [light]      light (socket.io-client, many users per process) | artillery | both
#   TARGET []              empty: start an own berth (BERTH_BIN, or build/release|ci|debug) with its
#                          own redis-server on free loopback ports; else a running berth or nginx URL
#   TRANSPORT [websocket]  websocket | polling-upgrade (polling first, then the upgrade, as browsers)
#   THINK_MS [5000; concurrency 1000]   pause between tool:approval_required and the approval
#   READY_TIMEOUT_MS / TURN_TIMEOUT_MS / CONNECT_TIMEOUT_MS [30000 / 30000 / 20000] per awaited step
#   rate:  RAMP_RATE [1] RAMP_S [10] then RATE [2] DURATION_S [30]; MAX_USERS cap; SHAPE=guide
#   soak:  RATE [1] DURATION_S [1800] SAMPLE_S [30]; fails if a sampled series grows without bound
#   concurrency: USERS [20] CONNECT_RATE [5/s] HOLD_S [30] MSG_INTERVAL_MS [5000]
#   SAMPLE_S [5; soak 30]  host sampling period
#   MAX_ERROR_RATE [0.01]  failed/started above it fails the run; READY_P95_MAX_MS [off]
#   REAP_WAIT_S [0]        after the run, wait up to this long for the disconnected sessions to be
#                          reaped (containers back to the pool's own), reported
#   CONTAINER_GUARD [3000] abort the run if the target's containers exceed this (protects the host)
#   own berth only: POOL_MIN_SIZE [10; concurrency min(USERS,100)] POOL_MAX_SIZE [max(100, USERS+20)]
#     MAX_CONTAINERS [max(1000, USERS+100)]
#     SESSION_IDLE_TIMEOUT_MS [60000] SESSION_DETACH_GRACE_MS [min(30000, idle/2)] CONTAINER_MEMORY [64m]
#     ACQUIRE_TIMEOUT_MS [READY_TIMEOUT_MS - 5000]
#     REDIS_MAXMEMORY [512mb] WARM [1: wait for POOL_MIN_SIZE prepared idle containers, WARM_TIMEOUT_S 900]
#     BERTH_SET ["K=V K=V": any other Berth variable, e.g. "POOL_RECYCLE=true SESSION_DETACH_GRACE_MS=5000"]
#     BERTH_LOG_LEVEL [warn]
#   BENCH_NICE [-10]       scheduler priority of this run's own autogroup (Berth, Redis, the
#                          generator) over the sandboxes' containerd-shims, ~0.5 ms of CPU per second
#                          each while idle: 2,000 of them take a core, and with equal shares Redis
#                          answers past Berth's 2 s timeout. 0 leaves it alone (as a host without
#                          such priority would be: see docs/DEPLOYMENT.md)
#   OUT_DIR [bench/results/capacity]   result JSON (+ berth log, artillery script/report per run)
#   ALLOW_NON_LOOPBACK [0]             targets must be loopback unless 1
# Exit 0 only if every run passed (see the verdict line). Everything is bounded in time; the
# own berth's containers (label berth.managed=true and its unique berth.replica) are removed at the end.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

command -v node >/dev/null || { echo "run.sh: node is required" >&2; exit 2; }
if [[ ! -d "$ROOT/tests/e2e/node_modules/socket.io-client" && ! -d "$ROOT/bench/artillery/node_modules/socket.io-client" ]]; then
  echo "installing socket.io-client (npm ci in tests/e2e) ..." >&2
  (cd "$ROOT/tests/e2e" && timeout 900 npm ci --no-audit --no-fund --loglevel=error)
fi
if [[ "${GENERATOR:-light}" != light && ! -x "$ROOT/bench/artillery/node_modules/.bin/artillery" ]]; then
  echo "installing artillery (npm ci in bench/artillery) ..." >&2
  (cd "$ROOT/bench/artillery" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 timeout 900 npm ci --no-audit --no-fund --loglevel=error)
fi
# Thousands of sockets in one process (generator and berth alike).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# Our own scheduler autogroup (setsid), with priority over the sandboxes (BENCH_NICE above).
BENCH_NICE=${BENCH_NICE:--10}
if [[ "$BENCH_NICE" != 0 && -z "${BERTH_BENCH_SESSION:-}" ]]; then
  export BERTH_BENCH_SESSION=1 BENCH_NICE
  exec setsid --wait "$0" "$@"
fi
if [[ "$BENCH_NICE" != 0 ]]; then
  echo "$BENCH_NICE" > /proc/self/autogroup 2>/dev/null || echo "note: could not set autogroup nice" >&2
fi

# The planned length bounds the whole command (+ 30 min for warm-up, reaping and cleanup);
# on the bound, SIGTERM makes capacity.mjs stop the generator, report and clean up.
bound=$(awk -v d="${DURATION_S:-1800}" -v r="${RAMP_S:-60}" -v h="${HOLD_S:-300}" -v u="${USERS:-20}" \
  -v c="${CONNECT_RATE:-1}" -v w="${REAP_WAIT_S:-0}" -v g="${SHAPE:-}" \
  'BEGIN { if (c <= 0) c = 1; b = d + r + h + u / c + w + 1800; if (g == "guide") b += 360; printf "%d", b }')
if [[ "${MODE:-rate}" == calibrate ]]; then
  exec timeout --kill-after=30 3600 node "$HERE/calibrate.mjs"
fi
exec timeout --kill-after=300 "$bound" node "$HERE/capacity.mjs"
