#!/usr/bin/env bash
# Runs Berth's whole test suite: unit (also under ASan/UBSan), integration (real redis-server,
# dockerd, nginx), the official Engine.IO/Socket.IO conformance suites, end-to-end tests with the
# official socket.io-client, browser tests (Chromium + playwright-core) and the compose deployment.
# Prerequisite: scripts/install.sh has run. Exit code 0 only if every suite passed.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PRESET=${BERTH_PRESET:-release}
BUILD="$ROOT/build/$PRESET"
export ROOT PRESET BUILD
export BERTH_BUILD_DIR="$BUILD" BERTH_REQUIRE_DOCKER=1
ARTIFACTS="$ROOT/tests/e2e/artifacts"
export ARTIFACTS
mkdir -p "$ARTIFACTS"
passed=0 failed=0 failed_names=()

# step NAME LIMIT_S COMMAND...: runs one suite (a command or a function of this file) with a
# time limit, records its outcome, never aborts the run. A suite that hangs is killed with its
# whole process group (servers it started included) and counted as failed, so CI always ends.
step() {
  local name=$1 limit=$2; shift 2
  printf '\n==================== %s\n' "$name"
  local t0=$SECONDS rc=0
  export -f $(compgen -A function)  # the suites below are functions of this file
  timeout -k 20 "$limit" bash -c '"$@"' step "$@" || rc=$?
  if [ "$rc" -eq 0 ]; then passed=$((passed + 1)); echo "---- $name: ok ($((SECONDS - t0)) s)"; return 0; fi
  [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && echo "---- $name: killed after its limit of $limit s"
  failed=$((failed + 1)); failed_names+=("$name"); echo "---- $name: FAILED ($((SECONDS - t0)) s)"
  return 1
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Starts a server command in the background and waits until PORT answers; sets SERVER_PID.
start_server() {  # start_server PORT LOGFILE COMMAND...
  local port=$1 logfile=$2; shift 2
  "$@" >"$logfile" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "server did not start; log:" >&2; tail -20 "$logfile" >&2; return 1
}
stop_server() { [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null; wait "${SERVER_PID:-}" 2>/dev/null; SERVER_PID=; }

build() {
  cmake --preset "$PRESET" >/dev/null && cmake --build --preset "$PRESET"
}

unit_tests() { ctest --test-dir "$BUILD" -L unit --output-on-failure -j2 --timeout 120; }

sanitized_unit_tests() {
  cmake --preset asan-ubsan >/dev/null && cmake --build --preset asan-ubsan --target unit_tests &&
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
      ctest --test-dir "$ROOT/build/asan-ubsan" -L unit --output-on-failure -j2 --timeout 300
}

# The Asio shells' component tests (the user session with Redis and dockerd included) under
# ASan/UBSan: lifetimes across coroutines, timers and sockets are where such bugs live.
sanitized_component_tests() {
  bash scripts/services.sh docker || return 1
  cmake --preset asan-ubsan >/dev/null && cmake --build --preset asan-ubsan --target component_tests &&
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
      ctest --test-dir "$ROOT/build/asan-ubsan" -L component --output-on-failure --timeout 600
}

integration_tests() {
  bash scripts/services.sh docker || return 1
  ctest --test-dir "$BUILD" -L 'component|integration' --output-on-failure --timeout 600
}

conformance() {
  local port; port=$(free_port)
  start_server "$port" "$ARTIFACTS/conformance-server.log" "$BUILD/src/conformance/berth-conformance-server" "$port" || return 1
  ../shared/conformance/run.sh 127.0.0.1 "$port"
  local rc=$?
  stop_server
  return $rc
}

# The same conformance suites against a ThreadSanitizer build running on 4 threads: raising
# THREADS is a tested switch, not a hope.
conformance_tsan() {
  cmake --preset tsan -DBERTH_SKIP_DIRS="${BERTH_TSAN_SKIP:-}" >/dev/null &&
    cmake --build --preset tsan --target berth-conformance-server || return 1
  local port; port=$(free_port)
  TSAN_OPTIONS="halt_on_error=1 exitcode=66" THREADS=4 start_server "$port" "$ARTIFACTS/conformance-tsan.log" \
    "$ROOT/build/tsan/src/conformance/berth-conformance-server" "$port" || return 1
  RETRIES=2 ../shared/conformance/run.sh 127.0.0.1 "$port"
  local rc=$?
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "server died (TSan report?):"; tail -40 "$ARTIFACTS/conformance-tsan.log"; rc=1; }
  stop_server
  grep -q "WARNING: ThreadSanitizer" "$ARTIFACTS/conformance-tsan.log" && { grep -A30 "WARNING: ThreadSanitizer" "$ARTIFACTS/conformance-tsan.log" | head -60; rc=1; }
  return $rc
}

e2e_socketio() {
  [ -x tests/e2e/socketio/run.sh ] || { echo "tests/e2e/socketio/run.sh missing"; return 1; }
  BERTH_E2E_SERVER_CMD="env DIAGNOSTICS_NAMESPACE=/diagnostics ENABLE_CONTAINER_POOL=false RECOVERY_MAX_DISCONNECTION_MS=0 $BUILD/src/app/berth" \
    BERTH_E2E_NAMESPACE=/diagnostics tests/e2e/socketio/run.sh
}

# The agent flow through the real gateway: socket.io-client -> berth -> Redis, dockerd, sandbox.
e2e_agent() {
  # runsc.test.mjs skips where dockerd has no runsc runtime (services.sh registers it unless the
  # host has a daemon.json of its own); CI sets BERTH_REQUIRE_RUNSC=1 (.ci/run), so it runs there.
  (cd tests/e2e && node --test --test-force-exit --test-concurrency=1 --test-reporter=spec agent/)
}

# The capacity harness at CI size (bench/capacity/README.md), so it cannot rot: its own tests,
# then the guide's flow (disconnect without session:end) for 20 users at 2/s from each generator
# (the light one, then Artillery) against a fresh berth + redis; fails on > 1 % errors, on a
# broken harness, or if the disconnected sessions' containers are not reaped (idle timeout 5 s)
# and removed. Every container it caused carries its own berth.replica label and is removed.
capacity_bench() {
  node --test bench/capacity/stats.test.mjs || return 1
  GENERATOR=both RAMP_RATE=0 RAMP_S=0 RATE=2 DURATION_S=10 THINK_MS=500 SAMPLE_S=2 \
    POOL_MIN_SIZE=5 SESSION_IDLE_TIMEOUT_MS=5000 REAP_WAIT_S=60 MAX_ERROR_RATE=0.01 \
    OUT_DIR="$ARTIFACTS/capacity" timeout 600 bash bench/capacity/run.sh
}

# bench/socketio at CI size, so it cannot rot: berth, socket.io on ws and socket.io on uWebSockets.js
# each hold 300 idle websockets and echo for 2 s (the figures are not judged here: bench/socketio).
# Fails if a server does not start, connects < 90 % or holds < 50 % of them, or echoes nothing; a
# uWS binary that cannot load on this Node is reported and skipped (run.sh).
socketio_bench() {
  # The ci preset builds no benchmark: the load tool (one file, no project library) on its own.
  cmake -S bench/socketio -B "$BUILD/bench-socketio" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null &&
    ninja -C "$BUILD/bench-socketio" >/dev/null || return 1
  IDLE=300 SETTLE=1 HOLD=2 ECHO_CLIENTS=16 WARMUP=1 ECHO_SECONDS=2 BENCH_NICE=0 CHECK=1 RESULTS=- \
    SKIP_BUILD=1 BUILD_DIR="$BUILD" bash bench/socketio/run.sh || return 1
  # What recovery costs with the state in Redis, at CI size: fails unless every socket recovers.
  BUILD_DIR="$BUILD" timeout 120 node bench/socketio/recovery_cost.mjs 20 5 16
}

# Chaos under load at CI size (bench/chaos runs 50 users): 10 users on two replicas while Redis,
# a replica, dockerd, a sandbox (OOM) and the MCP server fail in turn; no session, history,
# container or limiter slot may be lost. dockerd runs with live-restore, as docs/DEPLOYMENT.md
# asks: without it a restart stops every sandbox, and that variant stays in bench/chaos.
chaos() {
  (cd tests/chaos && CHAOS_LIVE_RESTORE=1 BERTH_CHAOS_USERS=10 \
    BERTH_CHAOS_SCENARIOS=redis-restart,replica-kill,dockerd-restart,sandbox-oom,mcp-kill \
    node --test --test-force-exit --test-reporter=spec chaos.test.mjs)
}

# The chat UI in Debian's Chromium against berth + Redis + dockerd (the local model).
e2e_browser() {
  (cd tests/e2e && node support/run-with-berth.mjs LLM_PROVIDER=local -- node --test --test-force-exit --test-concurrency=1 browser/)
}

step build 2400 build || { echo "build failed"; echo "suites: 0 passed, 1 failed"; exit 1; }
step unit 600 unit_tests
step "unit (asan+ubsan)" 2400 sanitized_unit_tests
# libFuzzer targets of tests/fuzz, 5 s each (the clang build is most of the time; docs/HARDENING.md).
step "fuzz (libFuzzer)" 600 bash scripts/fuzz.sh
step "component and integration" 1800 integration_tests
step "component (asan+ubsan)" 1800 sanitized_component_tests
step conformance 600 conformance
step "conformance (tsan, 4 threads)" 1800 conformance_tsan
step "e2e socket.io-client" 600 e2e_socketio
step "e2e agent flow" 1800 e2e_agent
step "browser (chromium)" 900 e2e_browser
step "chaos (10 users)" 900 chaos
step "bench: capacity (CI size)" 900 capacity_bench
step "bench: socketio (CI size)" 300 socketio_bench
step "deploy: nginx stickiness" 600 bash tests/deploy/nginx_sticky.sh
step "deploy: .env.example in sync" 120 bash tests/deploy/check_config_sync.sh
# Prometheus config, recording/alert rules and their unit tests (Debian's promtool).
monitoring_rules() {
  promtool check config monitoring/prometheus.yml && promtool check rules monitoring/rules/*.yml &&
    promtool test rules monitoring/tests/*.yml
}
step "deploy: monitoring rules (promtool)" 300 monitoring_rules
# The compose stacks (scale: Redis, 4 replicas, nginx; single with the pool off), images built
# offline around the binaries tested above. BERTH_DEPLOY_TESTS=0 skips it.
compose_deployment() {
  BERTH_PREBUILT_DIR="$BUILD" bash tests/deploy/compose_e2e.sh
}
[ "${BERTH_DEPLOY_TESTS:-1}" = "1" ] && step "compose deployment" 1800 compose_deployment
# The scale stack's `sentinel` profile: the Redis master killed under load (~2 min, images above).
[ "${BERTH_DEPLOY_TESTS:-1}" = "1" ] && step "compose: Redis failover (sentinel)" 900 env BERTH_E2E_SKIP_BUILD=1 bash tests/deploy/sentinel_e2e.sh

leftover=$(docker ps -aq --filter label=berth.test=1 2>/dev/null | wc -l)
if [ "$leftover" -gt 0 ]; then
  echo "test containers left behind: $leftover"; failed=$((failed + 1)); failed_names+=("container cleanup")
  docker rm -f $(docker ps -aq --filter label=berth.test=1) >/dev/null 2>&1
fi
echo
[ ${#failed_names[@]} -gt 0 ] && echo "failed suites: ${failed_names[*]}"
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
