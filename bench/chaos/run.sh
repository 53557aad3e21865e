#!/usr/bin/env bash
# Chaos under load, at the issue's size: 50 users mid-conversation on two Berth replicas while,
# in turn, Redis, a replica, dockerd, a sandbox (OOM) and the sandbox MCP server fail.
#
#   bash bench/chaos/run.sh                       # 50 users, every scenario
#   USERS=20 SCENARIOS=replica-kill,dockerd-restart bash bench/chaos/run.sh
#   CHAOS_LIVE_RESTORE=1 SCENARIOS=dockerd-restart bash bench/chaos/run.sh   # dockerd with live-restore
#
# Needs root (it runs a dockerd of its own: nothing else on the host is touched), redis-server,
# node with tests/e2e's packages, the berth-sandbox image in the host's daemon, and a build
# (BERTH_BUILD_DIR, default build/release). Prints one line per scenario and writes the figures
# to bench/results/chaos/chaos-<stamp>.json. Exit 0 only if every scenario met its goals:
# no session lost, no history lost, no container leaked, no limiter slot leaked, every affected
# user working again, and recovery p95 under RECOVER_P95_GOAL_MS (5000).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
[[ -d "$ROOT/tests/e2e/node_modules/socket.io-client" ]] || (cd "$ROOT/tests/e2e" && timeout 900 npm ci --no-audit --no-fund --loglevel=error)
export BERTH_BUILD_DIR=${BERTH_BUILD_DIR:-$ROOT/build/release}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec timeout --kill-after=60 3600 node "$ROOT/bench/chaos/chaos.mjs"
