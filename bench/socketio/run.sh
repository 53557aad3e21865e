#!/usr/bin/env bash
# Socket.IO benchmark: berth-conformance-server vs two socket.io@4.8 peers, all with the same contract
# ("/" namespace: "message" -> "message-back", "message-with-ack" -> ack; ping 300/200 ms,
# peer/contract.mjs): `ws` = socket.io on Node's http server + ws (peer/node-echo.mjs), `uws` =
# socket.io attached to uWebSockets.js (peer/uws-echo.mjs). Measured in one run, one server after
# the other, by berth-sio-load (sio_load.cpp), so every figure is a side-by-side ratio:
#   1. idle: N websocket clients held while answering pings -> server RSS per connection. If a
#      server cannot hold N, smaller N are tried (a fresh server each time) and the largest held
#      is reported.
#   2. echo: C closed-loop clients for T seconds on a fresh server -> msgs/s, p50/p99, msgs per
#      server CPU-second.
# Prints a side-by-side table and writes it to RESULTS.md (RESULTS=path to change, RESULTS=- for none).
#
# Environment (defaults): BUILD_DIR=build-bench  IDLE=20000  PEER_IDLE=$IDLE  HOLD=5  SETTLE=3
#   ECHO_CLIENTS=64  ECHO_SECONDS=10  WARMUP=2  PAYLOAD=32  EVENT=ack|message
#   POLL_CLIENTS=32  POLL_SECONDS=$ECHO_SECONDS (3. polling: official socket.io-client over HTTP
#     long-polling only, closed loop of acks, polling_load.mjs; POLL_CLIENTS=0 skips it)
#   PEERS=ws,uws (which peers to run, comma-separated; a peer that cannot start, e.g. the uWS
#     binary does not load on this Node/glibc, is reported and skipped, the run goes on)
#   CHECK=0 (1: exit 1 unless every server connected >= 90 % and held >= 50 % of its first idle try
#     and echoed; CI uses it: a check that the run works, not of the figures, loose enough for a
#     loaded host where a 200 ms pong deadline can be missed)
#   PIN=0 (1: servers on CPU $SERVER_CPU=0, the load tool on $CLIENT_CPU=1, via taskset)
#   BENCH_NICE=-10 (scheduler priority of this run's own autogroup; 0 leaves it alone)
#   SKIP_BUILD=1 (use existing binaries; the peers' npm packages are still installed if missing)
#   BERTH_COMMIT (what RESULTS.md names as berth's source; default this checkout's HEAD)
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
POLL_CLIENTS=${POLL_CLIENTS:-32}
POLL_SECONDS=${POLL_SECONDS:-$ECHO_SECONDS}
BENCH_NICE=${BENCH_NICE:--10}
RESULTS=${RESULTS:-$HERE/RESULTS.md}
PEERS=${PEERS:-ws,uws}
PIN=${PIN:-0}
CHECK=${CHECK:-0}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
IFS=, read -r -a PEER_LIST <<<"$PEERS"
for p in "${PEER_LIST[@]}"; do
  [[ $p == ws || $p == uws ]] || { echo "PEERS: unknown peer '$p' (ws, uws)" >&2; exit 2; }
done
SERVER_PIN=() CLIENT_PIN=()
if [[ $PIN == 1 ]]; then SERVER_PIN=(taskset -c "$SERVER_CPU") CLIENT_PIN=(taskset -c "$CLIENT_CPU"); fi

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
fi
if [[ ${#PEER_LIST[@]} -gt 0 && ( ! -d "$HERE/peer/node_modules/socket.io" ||
      ! -d "$HERE/peer/node_modules/@trufflesuite/uws-js-unofficial" ) ]]; then
  (cd "$HERE/peer" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) ||
    echo "note: npm ci in $HERE/peer failed; a peer without its packages will not start" >&2
fi
[[ -x "$LOAD" ]] || LOAD=$BUILD/bench-socketio/berth-sio-load
for f in "$BERTH_SERVER" "$LOAD"; do [[ -x "$f" ]] || { echo "missing $f" >&2; exit 1; }; done

# ---------------------------------------------------------------- servers
# start_server NAME: starts it on a free port (port 0), sets SERVER_PID and SERVER_PORT; returns 1
# (its log on stderr) if it does not start.
start_server() {
  local name=$1 log=$WORK/$1.server.log
  case $name in
    berth) LOG_LEVEL=warn "${SERVER_PIN[@]}" "$BERTH_SERVER" 0 >"$log" 2>&1 & ;;
    # bufferutil/utf-8-validate are in node_modules only as uWS's optional dependencies: keep `ws`
    # as a plain `npm i socket.io` install runs it (and as the earlier figures measured it).
    ws) WS_NO_BUFFER_UTIL=1 WS_NO_UTF_8_VALIDATE=1 "${SERVER_PIN[@]}" node "$HERE/peer/node-echo.mjs" 0 >"$log" 2>&1 & ;;
    uws) "${SERVER_PIN[@]}" node "$HERE/peer/uws-echo.mjs" 0 >"$log" 2>&1 & ;;
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
  stop_server
  return 1
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
    start_server "$name" || exit 1
    echo "== $name: idle $target clients (port $SERVER_PORT, pid $SERVER_PID)" >&2
    "${CLIENT_PIN[@]}" "$LOAD" --port "$SERVER_PORT" --pid "$SERVER_PID" --label "$name" --idle "$target" --settle "$SETTLE" \
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
  start_server "$name" || exit 1
  echo "== $name: echo $ECHO_CLIENTS clients x ${ECHO_SECONDS}s (port $SERVER_PORT, pid $SERVER_PID)" >&2
  "${CLIENT_PIN[@]}" "$LOAD" --port "$SERVER_PORT" --pid "$SERVER_PID" --label "$name" --idle 0 --echo-clients "$ECHO_CLIENTS" \
    --warmup "$WARMUP" --echo-seconds "$ECHO_SECONDS" --payload "$PAYLOAD" --event "$EVENT" >"$WORK/$name.echo" || true
  stop_server
}

poll_run() {
  local name=$1
  start_server "$name" || exit 1
  echo "== $name: polling $POLL_CLIENTS clients x ${POLL_SECONDS}s (port $SERVER_PORT, pid $SERVER_PID)" >&2
  "${CLIENT_PIN[@]}" timeout $((POLL_SECONDS + WARMUP + 60)) node "$HERE/polling_load.mjs" --port "$SERVER_PORT" --pid "$SERVER_PID" \
    --clients "$POLL_CLIENTS" --warmup "$WARMUP" --seconds "$POLL_SECONDS" --payload "$PAYLOAD" >"$WORK/$name.poll" || true
  stop_server
}

# A peer whose uWS binary does not load here (Node ABI, glibc) is reported and left out; any other
# failure to start is an error.
PEERS_RUN=() PEERS_SKIPPED=()
for p in "${PEER_LIST[@]}"; do
  if start_server "$p"; then
    stop_server
    PEERS_RUN+=("$p")
  elif reason=$(grep -m1 'uws binary unavailable' "$WORK/$p.server.log"); then
    echo "note: peer $p skipped ($reason); the run goes on without it" >&2
    PEERS_SKIPPED+=("$p: $reason")
  else
    exit 1
  fi
done
COLS=(berth "${PEERS_RUN[@]}")

LOAD_AVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
idle_ladder berth "$IDLE"
for p in "${PEERS_RUN[@]}"; do idle_ladder "$p" "$PEER_IDLE"; done
for name in "${COLS[@]}"; do echo_run "$name"; done
if (( POLL_CLIENTS > 0 )); then for name in "${COLS[@]}"; do poll_run "$name"; done; fi
LOAD_AVG_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
fmt() { awk -v v="$1" -v d="${2:-0}" 'BEGIN { if (v == "") print "-"; else printf "%.*f", d, v }'; }
per_ping() {
  awk -v c="$(get "$1" idle_hold_server_cpu_pct)" -v p="$(get "$1" idle_hold_pings_per_s)" \
    'BEGIN { if (c == "" || p == "" || p == 0) print "-"; else printf "%.1f", c / 100 * 1e6 / p }'
}
kb() { awk -v v="$1" 'BEGIN { if (v == "") print "-"; else printf "%.0f", v / 1024 }'; }
# kernel (stime) or user part of the server CPU per echo message, in us
us_part() {
  awk -v t="$(get "$1" echo_server_cpu_us_per_msg)" -v s="$(get "$1" echo_server_sys_share_pct)" -v part="$2" \
    'BEGIN { if (t == "" || s == "") print ""; else printf "%.2f", (part == "sys" ? t * s / 100 : t * (100 - s) / 100) }'
}
# berth / PEER msgs per server CPU-second (echo over websocket; `poll` as $2: over polling)
ratio() {
  local phase=${2:-echo}
  awk -v a="$(get "$WORK/berth.$phase" ${phase}_msgs_per_server_cpu_s)" -v b="$(get "$WORK/$1.$phase" ${phase}_msgs_per_server_cpu_s)" \
    'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2fx", a / b }'
}
title() {
  case $1 in
    berth) echo "berth" ;;
    ws) echo "socket.io@4.8 on ws" ;;
    uws) echo "socket.io@4.8 on uWS" ;;
  esac
}
# row LABEL CELL-COMMAND...: one cell per server in COLS; the cell command gets $WORK/<server> as
# its last argument
row() {
  local label=$1; shift
  printf '| %-46s ' "$label"
  local c
  for c in "${COLS[@]}"; do printf '| %24s ' "$("$@" "$WORK/$c")"; done
  printf '|\n'
}
c_first() { get "$2.idle.first" "$1"; }
c_conn() { echo "$(get "$1.idle.first" idle_connected) / $(get "$1.idle.first" idle_held)"; }
c_held() { echo "$(get "$1.idle" idle_held) of $(get "$1.idle" idle_target)"; }
c_rss() { echo "$(kb "$(get "$1.idle" idle_rss0_kb)") -> $(kb "$(get "$1.idle" idle_rss_held_kb)")"; }
c_idle() { fmt "$(get "$2.idle" "$1")"; }
c_ping() { per_ping "$1.idle"; }
c_hb() { echo "$(get "$1.idle" ping_interval_ms)/$(get "$1.idle" ping_timeout_ms)"; }
c_echo() { fmt "$(get "$3.echo" "$1")" "$2"; }
c_raw() { get "$2.echo" "$1"; }
c_lat() { echo "$(get "$1.echo" echo_p50_us) / $(get "$1.echo" echo_p99_us) / $(get "$1.echo" echo_p999_us)"; }
c_split() { echo "$(fmt "$(us_part "$1.echo" usr)" 1) / $(fmt "$(us_part "$1.echo" sys)" 1)"; }
c_ratio() { local n=${1##*/}; [[ $n == berth ]] && echo "" || ratio "$n"; }
c_poll() { fmt "$(get "$3.poll" "$1")" "$2"; }
c_poll_lat() { echo "$(get "$1.poll" poll_p50_us) / $(get "$1.poll" poll_p99_us)"; }
c_poll_ratio() { local n=${1##*/}; [[ $n == berth ]] && echo "" || ratio "$n" poll; }

table() {
  printf '| %-46s ' ""
  local c
  for c in "${COLS[@]}"; do printf '| %24s ' "$(title "$c")"; done
  printf '|\n|%s' "------------------------------------------------"
  for c in "${COLS[@]}"; do printf '|%s' "--------------------------"; done
  printf '|\n'
  row "idle: clients attempted (first try)" c_first idle_target
  row "idle: connected / held after ${HOLD}s (first try)" c_conn
  row "idle: largest N held (>= 99.5 %)" c_held
  row "idle: server RSS before -> held (MB)" c_rss
  row "idle: server RSS per connection (bytes)" c_idle idle_bytes_per_conn
  row "idle: pings answered per second" c_idle idle_hold_pings_per_s
  row "idle: server CPU while holding (%)" c_idle idle_hold_server_cpu_pct
  row "idle: server CPU per ping round trip (us)" c_ping
  row "heartbeat seen by clients (ms)" c_hb
  row "echo: clients (closed loop, $EVENT, ${PAYLOAD} B)" c_raw echo_clients_ready
  row "echo: msgs/s" c_echo echo_msgs_per_s 0
  row "echo: latency p50 / p99 / p99.9 (us)" c_lat
  row "echo: server CPU (% of one core)" c_echo echo_server_cpu_pct 0
  row "echo: load-tool CPU (% of one core)" c_echo echo_client_cpu_pct 0
  row "echo: server CPU per msg (us)" c_echo echo_server_cpu_us_per_msg 1
  row "echo: of which user / kernel (us per msg)" c_split
  row "echo: msgs per server CPU-second" c_echo echo_msgs_per_server_cpu_s 0
  row "echo: berth / this server, msgs per CPU-s" c_ratio
  if (( POLL_CLIENTS > 0 )); then
    row "polling: clients (socket.io-client, acks)" c_poll poll_clients 0
    row "polling: msgs/s" c_poll poll_msgs_per_s 0
    row "polling: latency p50 / p99 (us)" c_poll_lat
    row "polling: server CPU (% of one core)" c_poll poll_server_cpu_pct 0
    row "polling: server CPU per msg (us)" c_poll poll_server_cpu_us_per_msg 1
    row "polling: msgs per server CPU-second" c_poll poll_msgs_per_server_cpu_s 0
    row "polling: berth / this server, msgs per CPU-s" c_poll_ratio
  fi
}

# Goals of issue 18 (this run measures one client count and one payload; the issue asks for 100 and
# 1,000 clients with 64 B and 1 KB payloads: run with ECHO_CLIENTS / PAYLOAD for each).
goals() {
  local B=$WORK/berth
  awk -v per="$(get $B.idle idle_bytes_per_conn)" -v held="$(get $B.idle idle_held)" \
      -v first="$(get $B.idle.first idle_held)" -v target="$IDLE" \
      -v ru="$(ratio uws)" -v rw="$(ratio ws)" \
      -v pb="$(get $B.echo echo_p99_us)" -v pu="$(get "$WORK/uws.echo" echo_p99_us)" -v pw="$(get "$WORK/ws.echo" echo_p99_us)" \
      -v kb_="$(us_part $B.echo sys)" -v ku="$(us_part "$WORK/uws.echo" sys)" \
      -v clients="$ECHO_CLIENTS" -v payload="$PAYLOAD" \
      -v pr_u="$( ((POLL_CLIENTS > 0)) && ratio uws poll)" -v pr_w="$( ((POLL_CLIENTS > 0)) && ratio ws poll)" 'BEGIN {
    sub(/x$/, "", ru); sub(/x$/, "", rw)
    printf "Echo at %d clients, %d B (one of the issue'"'"'s four points):\n", clients, payload
    if (ru == "-") print "- berth >= 1.5x socket.io-on-uWS msgs per server CPU-second: NOT MEASURED (uws peer not run)"
    else printf "- berth >= 1.5x socket.io-on-uWS msgs per server CPU-second: %s (%.2fx)\n", (ru >= 1.5) ? "MET" : "MISSED", ru
    if (rw == "-") print "- berth >= 3x socket.io-on-ws msgs per server CPU-second: NOT MEASURED (ws peer not run)"
    else printf "- berth >= 3x socket.io-on-ws msgs per server CPU-second: %s (%.2fx)\n", (rw >= 3) ? "MET" : "MISSED", rw
    best = ""; others = ""
    if (pu != "") { best = pu; others = "uWS " pu " us" }
    if (pw != "") { if (best == "" || pw + 0 < best + 0) best = pw; others = others (others == "" ? "" : ", ") "ws " pw " us" }
    if (others == "") print "- p99 no worse than either peer: NOT MEASURED"
    else printf "- p99 no worse than either peer: %s (berth %s us; %s)\n", (pb != "" && pb + 0 <= best + 0) ? "MET" : "MISSED", pb, others
    if (ku == "") print "- kernel time per message at or below uWS: NOT MEASURED"
    else printf "- kernel time per message at or below uWS: %s (berth %.1f us, uWS %.1f us)\n", (kb_ + 0 <= ku + 0) ? "MET" : "MISSED", kb_, ku
    printf "- <= 3 KB (3072 B) per idle websocket at 19,900 held: %s (%.0f B at %d held; first try %d of %d)\n",
      (per != "" && per <= 3072 && held >= 19900) ? "MET" : "MISSED", per, held, first, target
    if (pr_u == "" && pr_w == "") print "- polling transport, msgs per CPU-second against both peers: NOT MEASURED (POLL_CLIENTS=0)"
    else printf "- polling transport, msgs per CPU-second against both peers: measured (berth / uWS %s, berth / ws %s)\n", pr_u, pr_w
  }'
}

echo
table
echo
goals
for s in "${PEERS_SKIPPED[@]}"; do echo "- peer skipped: $s"; done
cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
pkg_version() { node -p "require('$HERE/peer/node_modules/$1/package.json').version" 2>/dev/null || echo '?'; }
if [[ "$RESULTS" != "-" ]]; then
  {
    echo "# Socket.IO benchmark results (generated by bench/socketio/run.sh)"
    echo
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- Machine: $(nproc) CPUs, $cpu_model, $(uname -sr), $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo) RAM;" \
      "load average at start $LOAD_AVG_START, at end $LOAD_AVG_END (the machine is shared)"
    echo "- Servers: berth-conformance-server (${BERTH_COMMIT:-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')}," \
      "Release, $BERTH_SERVER built $(date -u -r "$BERTH_SERVER" '+%Y-%m-%d %H:%M UTC')) and" \
      "node $(node --version) + socket.io $(pkg_version socket.io) (engine.io $(pkg_version engine.io)) on ws $(pkg_version ws)" \
      "and on uWebSockets.js $(pkg_version @trufflesuite/uws-js-unofficial) (@trufflesuite/uws-js-unofficial);" \
      "each a single process, ping 300/200 ms"
    echo "- Run: IDLE=$IDLE PEER_IDLE=$PEER_IDLE HOLD=$HOLD ECHO_CLIENTS=$ECHO_CLIENTS ECHO_SECONDS=$ECHO_SECONDS" \
      "PAYLOAD=$PAYLOAD EVENT=$EVENT POLL_CLIENTS=$POLL_CLIENTS POLL_SECONDS=$POLL_SECONDS PEERS=$PEERS PIN=$PIN BENCH_NICE=$BENCH_NICE, nofile limit $NOFILE"
    for s in "${PEERS_SKIPPED[@]}"; do echo "- Peer skipped: $s"; done
    echo
    table
    echo
    echo "Method, limits of this machine (fd hard limit 20000, 300/200 ms heartbeat, shared CPU) and"
    echo "profiles of where berth's memory and CPU go: see README.md in this folder."
    echo
    echo "Goals (issue 18):"
    echo
    goals
    echo
    echo "Raw key=value output of berth-sio-load (and polling_load.mjs):"
    echo
    for c in "${COLS[@]}"; do
      for f in $c.idle.first $c.idle $c.echo $c.poll; do
        echo "<details><summary>$f</summary>"
        echo
        echo '```'
        cat "$WORK/$f" 2>/dev/null || true
        echo '```'
        echo "</details>"
      done
    done
  } >"$RESULTS"
  echo
  echo "wrote $RESULTS"
fi
# CHECK=1 (CI's short run): every server connected >= 90 % and held >= 50 % of its first idle try
# (a client that stopped answering pings would lose them all), echoed messages, and (unless
# POLL_CLIENTS=0) carried messages over polling.
if [[ $CHECK == 1 ]]; then
  bad=0
  for c in "${COLS[@]}"; do
    t=$(get "$WORK/$c.idle.first" idle_target) n=$(get "$WORK/$c.idle.first" idle_connected)
    h=$(get "$WORK/$c.idle.first" idle_held) m=$(get "$WORK/$c.echo" echo_msgs)
    pm=$( ((POLL_CLIENTS > 0)) && get "$WORK/$c.poll" poll_msgs || echo skipped)
    if [[ -z "$t" || -z "$n" || -z "$h" || -z "$m" || -z "$pm" || "$pm" == 0 ]] || (( n * 10 < t * 9 || h * 2 < t || m == 0 )); then
      echo "CHECK: $c: idle connected ${n:-?} / held ${h:-?} of ${t:-?}, echo msgs ${m:-?}, polling msgs ${pm:-?}" >&2
      bad=1
    fi
  done
  rm -rf "$WORK"
  exit $bad
fi
rm -rf "$WORK"
