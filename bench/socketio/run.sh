#!/usr/bin/env bash
# Socket.IO benchmark: berth-conformance-server vs the Node socket.io@4.8 peer (peer/node-echo.mjs),
# same contract ("/" namespace: "message" -> "message-back", "message-with-ack" -> ack; ping
# 300/200 ms), measured in one run by berth-sio-load (sio_load.cpp):
#   1. idle: N websocket clients held while answering pings -> server RSS per connection. If a
#      server cannot hold N, smaller N are tried (a fresh server each time) and the largest held
#      is reported.
#   2. echo: C closed-loop clients for T seconds on a fresh server -> msgs/s, p50/p99, msgs per
#      server CPU-second.
# Prints a side-by-side table and writes it to RESULTS.md (RESULTS=path to change, RESULTS=- for none).
#
# Environment (defaults): BUILD_DIR=build-bench  IDLE=20000  PEER_IDLE=$IDLE  HOLD=5  SETTLE=3
#   ECHO_CLIENTS=64  ECHO_SECONDS=10  WARMUP=2  PAYLOAD=32  EVENT=ack|message
#   BENCH_NICE=-10 (scheduler priority of this run's own autogroup; 0 leaves it alone)
#   SKIP_BUILD=1 (use existing binaries)
# Loopback only; every wait is bounded; servers started here are stopped on exit.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build-bench}
IDLE=${IDLE:-20000}
PEER_IDLE=${PEER_IDLE:-$IDLE}
HOLD=${HOLD:-5}
SETTLE=${SETTLE:-3}
ECHO_CLIENTS=${ECHO_CLIENTS:-64}
ECHO_SECONDS=${ECHO_SECONDS:-10}
WARMUP=${WARMUP:-2}
PAYLOAD=${PAYLOAD:-32}
EVENT=${EVENT:-ack}
BENCH_NICE=${BENCH_NICE:--10}
RESULTS=${RESULTS:-$HERE/RESULTS.md}

# A benchmark on a shared 2-core machine: run in our own scheduler autogroup (setsid) and give it
# priority over background builds so the 200 ms ping deadlines measure the servers, not the queue.
if [[ "$BENCH_NICE" != 0 && -z "${BERTH_BENCH_SESSION:-}" ]]; then
  export BERTH_BENCH_SESSION=1
  exec setsid --wait "$0" "$@"
fi
if [[ "$BENCH_NICE" != 0 ]]; then
  echo "$BENCH_NICE" > /proc/self/autogroup 2>/dev/null || echo "note: could not set autogroup nice" >&2
fi

# Sockets: one fd per connection in the server and in the client.
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
NOFILE=$(ulimit -n)

WORK=$(mktemp -d /tmp/berth-bench-socketio.XXXXXX)
SERVER_PID=""
cleanup() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT

# ---------------------------------------------------------------- build
BERTH_SERVER=$BUILD/src/conformance/berth-conformance-server
LOAD=$BUILD/bench/socketio/berth-sio-load
if [[ -z "${SKIP_BUILD:-}" ]]; then
  if [[ ! -f "$BUILD/build.ninja" ]]; then
    cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
  fi
  ninja -C "$BUILD" -j2 berth-conformance-server >/dev/null
  if ninja -C "$BUILD" -t targets all 2>/dev/null | grep -q '^berth-sio-load:'; then
    ninja -C "$BUILD" -j2 berth-sio-load >/dev/null
  else  # bench/CMakeLists.txt does not include socketio/ yet: build the tool on its own
    LOAD=$BUILD/bench-socketio/berth-sio-load
    cmake -S "$HERE" -B "$BUILD/bench-socketio" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
    ninja -C "$BUILD/bench-socketio" -j2 >/dev/null
  fi
  if [[ ! -d "$HERE/peer/node_modules/socket.io" ]]; then
    (cd "$HERE/peer" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
fi
[[ -x "$LOAD" ]] || LOAD=$BUILD/bench-socketio/berth-sio-load
for f in "$BERTH_SERVER" "$LOAD"; do [[ -x "$f" ]] || { echo "missing $f" >&2; exit 1; }; done

# ---------------------------------------------------------------- servers
# start_server NAME: starts it on a free port (port 0), sets SERVER_PID and SERVER_PORT.
start_server() {
  local name=$1 log=$WORK/$1.server.log
  case $name in
    berth) LOG_LEVEL=warn "$BERTH_SERVER" 0 >"$log" 2>&1 & ;;
    node) node "$HERE/peer/node-echo.mjs" 0 >"$log" 2>&1 & ;;
  esac
  SERVER_PID=$!
  SERVER_PORT=""
  for _ in $(seq 100); do
    SERVER_PORT=$(grep -o 'listening on 127\.0\.0\.1:[0-9]*' "$log" | head -1 | cut -d: -f2 || true)
    [[ -n "$SERVER_PORT" ]] && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "$name server did not start:" >&2
  cat "$log" >&2
  exit 1
}
stop_server() {
  cleanup
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

get() { grep -m1 "^$2=" "$1" 2>/dev/null | cut -d= -f2- || true; }

# idle_ladder NAME N: tries N, 3N/4, N/2, N/4, N/8 idle clients (fresh server each) until one is
# held (>= 99.5 %); leaves $WORK/NAME.idle (best) and $WORK/NAME.idle.first (the N attempt).
idle_ladder() {
  local name=$1 n=$2 first=1
  for frac in 4 3 2 1 0.5; do
    local target
    target=$(awk -v n="$n" -v f="$frac" 'BEGIN { printf "%d", n * f / 4 }')
    (( target >= 100 )) || break
    start_server "$name"
    echo "== $name: idle $target clients (port $SERVER_PORT, pid $SERVER_PID)" >&2
    "$LOAD" --port "$SERVER_PORT" --pid "$SERVER_PID" --label "$name" --idle "$target" --settle "$SETTLE" \
      --hold "$HOLD" --echo-clients 0 >"$WORK/$name.idle.try" || true
    stop_server
    [[ $first == 1 ]] && cp "$WORK/$name.idle.try" "$WORK/$name.idle.first"
    first=0
    local held
    held=$(get "$WORK/$name.idle.try" idle_held)
    cp "$WORK/$name.idle.try" "$WORK/$name.idle"
    if [[ -n "$held" ]] && (( held * 1000 >= target * 995 )); then return 0; fi
  done
}

echo_run() {
  local name=$1
  start_server "$name"
  echo "== $name: echo $ECHO_CLIENTS clients x ${ECHO_SECONDS}s (port $SERVER_PORT, pid $SERVER_PID)" >&2
  "$LOAD" --port "$SERVER_PORT" --pid "$SERVER_PID" --label "$name" --idle 0 --echo-clients "$ECHO_CLIENTS" \
    --warmup "$WARMUP" --echo-seconds "$ECHO_SECONDS" --payload "$PAYLOAD" --event "$EVENT" >"$WORK/$name.echo" || true
  stop_server
}

LOAD_AVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
idle_ladder berth "$IDLE"
idle_ladder node "$PEER_IDLE"
echo_run berth
echo_run node
LOAD_AVG_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
B=$WORK/berth N=$WORK/node
fmt() { awk -v v="$1" -v d="${2:-0}" 'BEGIN { if (v == "") print "-"; else printf "%.*f", d, v }'; }
row() { printf '| %-44s | %24s | %24s |\n' "$1" "$2" "$3"; }
per_ping() {
  awk -v c="$(get "$1" idle_hold_server_cpu_pct)" -v p="$(get "$1" idle_hold_pings_per_s)" \
    'BEGIN { if (c == "" || p == "" || p == 0) print "-"; else printf "%.1f", c / 100 * 1e6 / p }'
}
kb() { awk -v v="$1" 'BEGIN { if (v == "") print "-"; else printf "%.0f", v / 1024 }'; }
ratio=$(awk -v a="$(get $B.echo echo_msgs_per_server_cpu_s)" -v b="$(get $N.echo echo_msgs_per_server_cpu_s)" \
  'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2fx", a / b }')

table() {
  row "" "berth" "node socket.io@4.8"
  echo "|----------------------------------------------|--------------------------|--------------------------|"
  row "idle: clients attempted (first try)" "$(get $B.idle.first idle_target)" "$(get $N.idle.first idle_target)"
  row "idle: connected / held after ${HOLD}s (first try)" \
    "$(get $B.idle.first idle_connected) / $(get $B.idle.first idle_held)" \
    "$(get $N.idle.first idle_connected) / $(get $N.idle.first idle_held)"
  row "idle: largest N held (>= 99.5 %)" "$(get $B.idle idle_held) of $(get $B.idle idle_target)" \
    "$(get $N.idle idle_held) of $(get $N.idle idle_target)"
  row "idle: server RSS before -> held (MB)" \
    "$(kb "$(get $B.idle idle_rss0_kb)") -> $(kb "$(get $B.idle idle_rss_held_kb)")" \
    "$(kb "$(get $N.idle idle_rss0_kb)") -> $(kb "$(get $N.idle idle_rss_held_kb)")"
  row "idle: server RSS per connection (bytes)" "$(fmt "$(get $B.idle idle_bytes_per_conn)")" \
    "$(fmt "$(get $N.idle idle_bytes_per_conn)")"
  row "idle: pings answered per second" "$(fmt "$(get $B.idle idle_hold_pings_per_s)")" \
    "$(fmt "$(get $N.idle idle_hold_pings_per_s)")"
  row "idle: server CPU while holding (%)" "$(fmt "$(get $B.idle idle_hold_server_cpu_pct)")" \
    "$(fmt "$(get $N.idle idle_hold_server_cpu_pct)")"
  row "idle: server CPU per ping round trip (us)" "$(per_ping $B.idle)" "$(per_ping $N.idle)"
  row "heartbeat seen by clients (ms)" \
    "$(get $B.idle ping_interval_ms)/$(get $B.idle ping_timeout_ms)" "$(get $N.idle ping_interval_ms)/$(get $N.idle ping_timeout_ms)"
  row "echo: clients (closed loop, $EVENT)" "$(get $B.echo echo_clients_ready)" "$(get $N.echo echo_clients_ready)"
  row "echo: msgs/s" "$(fmt "$(get $B.echo echo_msgs_per_s)")" "$(fmt "$(get $N.echo echo_msgs_per_s)")"
  row "echo: latency p50 / p99 / p99.9 (us)" \
    "$(get $B.echo echo_p50_us) / $(get $B.echo echo_p99_us) / $(get $B.echo echo_p999_us)" \
    "$(get $N.echo echo_p50_us) / $(get $N.echo echo_p99_us) / $(get $N.echo echo_p999_us)"
  row "echo: server CPU (% of one core)" "$(fmt "$(get $B.echo echo_server_cpu_pct)")" \
    "$(fmt "$(get $N.echo echo_server_cpu_pct)")"
  row "echo: load-tool CPU (% of one core)" "$(fmt "$(get $B.echo echo_client_cpu_pct)")" \
    "$(fmt "$(get $N.echo echo_client_cpu_pct)")"
  row "echo: server CPU per msg (us) / kernel share" \
    "$(fmt "$(get $B.echo echo_server_cpu_us_per_msg)" 1) / $(fmt "$(get $B.echo echo_server_sys_share_pct)")%" \
    "$(fmt "$(get $N.echo echo_server_cpu_us_per_msg)" 1) / $(fmt "$(get $N.echo echo_server_sys_share_pct)")%"
  row "echo: msgs per server CPU-second" "$(fmt "$(get $B.echo echo_msgs_per_server_cpu_s)")" \
    "$(fmt "$(get $N.echo echo_msgs_per_server_cpu_s)")"
  row "echo: berth / node msgs per server CPU-s" "$ratio" ""
}

goals() {
  local per held p99b p99n
  per=$(get $B.idle idle_bytes_per_conn); held=$(get $B.idle.first idle_held)
  p99b=$(get $B.echo echo_p99_us); p99n=$(get $N.echo echo_p99_us)
  awk -v per="$per" -v held="${held:-0}" -v target="$IDLE" -v r="${ratio%x}" -v pb="$p99b" -v pn="$p99n" 'BEGIN {
    printf "- berth <= 5 KB (5120 B) per idle connection: %s (%.0f B)\n", (per != "" && per <= 5120) ? "MET" : "MISSED", per
    printf "- berth >= 3x the peer msgs per server CPU-second: %s (%s)\n", (r != "-" && r >= 3) ? "MET" : "MISSED", r "x"
    printf "- ... at equal or better p99: %s (%s us vs %s us)\n", (pb != "" && pn != "" && pb <= pn) ? "MET" : "MISSED", pb, pn
    printf "- berth holds %d idle connections: %s (%d held)\n", target, (held >= target) ? "MET" : "MISSED", held
  }'
}

echo
table
echo
goals
cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
if [[ "$RESULTS" != "-" ]]; then
  {
    echo "# Socket.IO benchmark results (generated by bench/socketio/run.sh)"
    echo
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- Machine: $(nproc) CPUs, $cpu_model, $(uname -sr), $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo) RAM;" \
      "load average at start $LOAD_AVG_START, at end $LOAD_AVG_END (the machine is shared)"
    echo "- Servers: berth-conformance-server ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), Release) and" \
      "node $(node --version) + socket.io $(node -p "require('$HERE/peer/node_modules/socket.io/package.json').version" 2>/dev/null || echo '?')," \
      "both single process, ping 300/200 ms"
    echo "- Run: IDLE=$IDLE PEER_IDLE=$PEER_IDLE HOLD=$HOLD ECHO_CLIENTS=$ECHO_CLIENTS ECHO_SECONDS=$ECHO_SECONDS" \
      "PAYLOAD=$PAYLOAD EVENT=$EVENT BENCH_NICE=$BENCH_NICE, nofile limit $NOFILE"
    echo
    table
    echo
    echo "Method, limits of this machine (fd hard limit 20000, 300/200 ms heartbeat, shared CPU) and"
    echo "profiles of where berth's memory and CPU go: see README.md in this folder."
    echo
    echo "Goals (issue 2, item 8):"
    echo
    goals
    echo
    echo "Raw key=value output of berth-sio-load:"
    echo
    for f in berth.idle.first berth.idle berth.echo node.idle.first node.idle node.echo; do
      echo "<details><summary>$f</summary>"
      echo
      echo '```'
      cat "$WORK/$f" 2>/dev/null || true
      echo '```'
      echo "</details>"
    done
  } >"$RESULTS"
  echo
  echo "wrote $RESULTS"
fi
rm -rf "$WORK"
