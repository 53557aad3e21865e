#!/usr/bin/env bash
# Checks nginx/nginx.conf with the host's nginx and real sockets on 127.0.0.1 (no Docker, no
# Berth binary): the config is copied with the upstream `app:3000` replaced by N local backends
# (tests/deploy/sticky_backend.py) and nginx listening on a free port. Asserts:
#   1. `nginx -t` accepts the file (upstream, listen, log and pid lines substituted only);
#   2. the same client address always reaches the same backend (20 requests each, 12 addresses
#      127.0.0.2..13 as sources) and the addresses spread over more than one backend;
#   3. when one backend dies, only its clients move (consistent hash) and nobody gets an error;
#   4. /health is proxied (answered by a backend) and is 502 when every backend is down;
#   5. a WebSocket handshake passes through (101 with the backend's Sec-WebSocket-Accept).
# Exit 0 only if all hold. Prints 'N passed, N failed'.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
command -v nginx >/dev/null || { echo "nginx not installed (apt-get install nginx)"; exit 1; }
command -v curl >/dev/null || { echo "curl not installed"; exit 1; }
work=$(mktemp -d /tmp/berth-nginx-test.XXXXXX)
pids=()
cleanup() {
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
passed=0 failed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
fail() { echo "FAILED: $*"; failed=$((failed + 1)); }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {  # bounded: 50 x 0.1 s
  for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  return 1
}

nb=3
ports=() servers=""
for i in $(seq 1 $nb); do
  p=$(free_port); ports+=("$p")
  python3 "$here/sticky_backend.py" "b$i" "$p" & pids+=($!)
  servers+="        server 127.0.0.1:$p max_fails=1 fail_timeout=10s;\n"
done
for p in "${ports[@]}"; do wait_port "$p" || { echo "backend on $p did not start"; exit 1; }; done
front=$(free_port)

# The real config with only the environment-specific parts replaced.
sed -e "s#^\( *\)server app:3000 .*#__SERVERS__#" \
    -e "s#listen 80 reuseport;#listen 127.0.0.1:$front;#" \
    -e "s#^error_log .*#error_log $work/error.log warn;\npid $work/nginx.pid;#" \
    -e "s#access_log /dev/stdout berth;#access_log $work/access.log berth;#" \
    -e "s#^worker_processes auto;#worker_processes 2;#" \
    -e "s#worker_rlimit_nofile 16384;#worker_rlimit_nofile 4096;#" \
    -e "s#worker_connections 8192;#worker_connections 1024;#" \
    "$root/nginx/nginx.conf" | awk -v s="$servers" '{ if ($0 == "__SERVERS__") printf "%s", s; else print }' > "$work/nginx.conf"
for d in client_body proxy fastcgi uwsgi scgi; do mkdir -p "$work/$d"; done
printf 'client_body_temp_path %s/client_body;\nproxy_temp_path %s/proxy;\nfastcgi_temp_path %s/fastcgi;\nuwsgi_temp_path %s/uwsgi;\nscgi_temp_path %s/scgi;\n' \
  "$work" "$work" "$work" "$work" "$work" > "$work/temps.conf"
sed -i "s#^http {#http {\n    include $work/temps.conf;#" "$work/nginx.conf"
grep -q "server 127.0.0.1:${ports[0]}" "$work/nginx.conf" || { echo "substitution failed"; cat "$work/nginx.conf"; exit 1; }

if out=$(nginx -t -q -c "$work/nginx.conf" -p "$work" 2>&1); then ok "nginx -t accepts nginx/nginx.conf"; else fail "nginx -t: $out"; fi
nginx -c "$work/nginx.conf" -p "$work" || { echo "nginx did not start"; cat "$work/error.log"; exit 1; }
wait_port "$front" || { echo "nginx not listening"; exit 1; }

who() { curl -s --max-time 5 --interface "$1" "http://127.0.0.1:$front${2:-/socket.io/?EIO=4&transport=polling}" | awk '{print $1}'; }

declare -A owner
sticky=1
for i in $(seq 2 13); do
  src=127.0.0.$i
  first=$(who "$src")
  [ -n "$first" ] || { sticky=0; echo "  $src: no answer"; continue; }
  for _ in $(seq 1 20); do [ "$(who "$src")" = "$first" ] || sticky=0; done
  owner[$src]=$first
done
[ "$sticky" = 1 ] && ok "each client address stays on one backend (20 requests x 12 addresses)" || fail "stickiness"
distinct=$(printf '%s\n' "${owner[@]}" | sort -u | wc -l)
[ "$distinct" -ge 2 ] && ok "client addresses spread over $distinct of $nb backends" || fail "all clients on one backend"

hdr=$(curl -s --max-time 5 "http://127.0.0.1:$front/socket.io/?EIO=4&transport=polling")
echo "$hdr" | grep -q "upgrade=- connection=-" && ok "plain requests carry no Upgrade/Connection: upgrade" || fail "headers: $hdr"
echo "$hdr" | grep -q "xff=127.0.0.1" && ok "X-Forwarded-For carries the client address" || fail "X-Forwarded-For: $hdr"

h=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$front/health")
body=$(curl -s --max-time 5 "http://127.0.0.1:$front/health")
[ "$h" = 200 ] && [[ "$body" == b* ]] && ok "/health answered by a backend ($body)" || fail "/health: $h $body"

key=$(head -c 16 /dev/urandom | base64)
expect=$(printf '%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11' "$key" | sha1sum | awk '{print $1}' | xxd -r -p | base64)
ws=$(curl -s -i --max-time 3 --http1.1 -H "Connection: Upgrade" -H "Upgrade: websocket" -H "Sec-WebSocket-Version: 13" \
     -H "Sec-WebSocket-Key: $key" "http://127.0.0.1:$front/socket.io/?EIO=4&transport=websocket" 2>/dev/null | tr -d '\r')
if echo "$ws" | head -1 | grep -q " 101 " && echo "$ws" | grep -qi "^sec-websocket-accept: $expect" && echo "$ws" | grep -qi "^upgrade: websocket"; then
  ok "WebSocket upgrade passes through (101, accept key matches)"
else fail "WebSocket upgrade: $(echo "$ws" | head -5 | tr '\n' '|')"; fi

# Kill the backend that owns 127.0.0.2; its clients move, everyone else stays, no errors.
victim=${owner[127.0.0.2]}
vi=${victim#b}
kill "${pids[$((vi - 1))]}"; wait "${pids[$((vi - 1))]}" 2>/dev/null
moved_ok=1 stayed_ok=1
for src in "${!owner[@]}"; do
  now=$(who "$src")
  if [ "${owner[$src]}" = "$victim" ]; then
    { [ -n "$now" ] && [ "$now" != "$victim" ]; } || moved_ok=0
  else
    [ "$now" = "${owner[$src]}" ] || { stayed_ok=0; echo "  $src moved ${owner[$src]} -> $now"; }
  fi
done
[ "$moved_ok" = 1 ] && ok "clients of the dead backend $victim are served by another one" || fail "failover"
[ "$stayed_ok" = 1 ] && ok "clients of live backends did not move (consistent hash)" || fail "consistent hash"

for i in "${!pids[@]}"; do kill "${pids[$i]}" 2>/dev/null; done
wait "${pids[@]}" 2>/dev/null
h=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$front/health")
[ "$h" = 502 ] && ok "/health is 502 when every backend is down (never a static 200)" || fail "/health with no backend: $h"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
