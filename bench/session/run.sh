#!/usr/bin/env bash
# Session benchmarks, side by side: the per-user limiter (berth-session-bench, its own
# redis-server) and connect -> system:ready latency (ready_latency.mjs: berth + redis-server +
# dockerd, a warm pool). BERTH_BUILD_DIR: a build with targets berth and berth-session-bench
# (default build/release). Extra arguments go to berth-session-bench; env knobs of the node
# script (USERS, RATE, POOL_MIN_SIZE, ...) pass through.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=$(realpath "${BERTH_BUILD_DIR:-build/release}")
echo "== per-user limiter: $build/bench/session/berth-session-bench $*"
"$build/bench/session/berth-session-bench" "$@"
echo "== connect -> system:ready (users=${USERS:-200}, rate=${RATE:-20}/s)"
BERTH_BUILD_DIR="$build" node bench/session/ready_latency.mjs
