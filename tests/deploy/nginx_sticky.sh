#!/usr/bin/env bash
# Checks nginx/nginx.conf, rendered by docker/nginx/watch-upstreams.sh exactly as in the scale
# stack, with the host's nginx and real sockets on 127.0.0.1 (no Docker, no Berth binary): the
# `app` replicas are N local backends (tests/deploy/sticky_backend.py) given to the renderer as
# UPSTREAM_ENDPOINTS_app, nginx listens on a free port. Asserts:
#   1. `nginx -t` accepts the rendered file (listen, log and pid lines substituted only);
#   2. new handshakes (no sid) from ONE client address spread over every backend;
#   3. a request whose sid carries a backend's prefix (8 hex of SHA-256("IP:PORT"), what Berth
#      issues) always reaches that backend: polling GET and POST, from any client address, and
#      the WebSocket upgrade (101 with the backend's Sec-WebSocket-Accept and its frame);
#   4. an unknown prefix falls back to the shared group (answered, never an nginx error);
#   5. the access log holds neither sids nor query strings;
#   6. when one backend dies, new handshakes still all succeed and other backends' sids stay put;
#   7. /health is proxied (answered by a backend) and is 502 when every backend is down.
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
route_key() { printf '%s' "$1" | sha256sum | cut -c1-8; }

nb=3
ports=() endpoints="" keys=()
for i in $(seq 1 $nb); do
  p=$(free_port); ports+=("$p")
  python3 "$here/sticky_backend.py" "b$i" "$p" & pids+=($!)
  endpoints+="127.0.0.1:$p "
  keys+=("$(route_key "127.0.0.1:$p")")
done
for p in "${ports[@]}"; do wait_port "$p" || { echo "backend on $p did not start"; exit 1; }; done
front=$(free_port)

# The real config rendered by the real script, then only the environment-specific parts replaced.
UPSTREAM_ENDPOINTS_app="$endpoints" NGINX_CONF="$root/nginx/nginx.conf" \
  sh "$root/docker/nginx/watch-upstreams.sh" --render "$work/rendered.conf" || { echo "render failed"; exit 1; }
sed -e "s#listen 80 reuseport;#listen 127.0.0.1:$front;#" \
    -e "s#^error_log .*#error_log $work/error.log warn;\npid $work/nginx.pid;#" \
    -e "s#access_log /dev/stdout berth;#access_log $work/access.log berth;#" \
    -e "s#access_log /var/log/nginx/access.log berth;#access_log $work/access2.log berth;#" \
    -e "s#^worker_processes auto;#worker_processes 2;#" \
    -e "s#worker_rlimit_nofile 16384;#worker_rlimit_nofile 4096;#" \
    -e "s#worker_connections 8192;#worker_connections 1024;#" \
    "$work/rendered.conf" > "$work/nginx.conf"
for d in client_body proxy fastcgi uwsgi scgi; do mkdir -p "$work/$d"; done
printf 'client_body_temp_path %s/client_body;\nproxy_temp_path %s/proxy;\nfastcgi_temp_path %s/fastcgi;\nuwsgi_temp_path %s/uwsgi;\nscgi_temp_path %s/scgi;\n' \
  "$work" "$work" "$work" "$work" "$work" > "$work/temps.conf"
sed -i "s#^http {#http {\n    include $work/temps.conf;#" "$work/nginx.conf"
for k in "${keys[@]}"; do
  grep -q "upstream berth_r_$k " "$work/nginx.conf" && grep -q "$k berth_r_$k;" "$work/nginx.conf" \
    || { echo "render: no route for $k"; cat "$work/nginx.conf"; exit 1; }
done

if out=$(nginx -t -q -c "$work/nginx.conf" -p "$work" 2>&1); then ok "nginx -t accepts the rendered nginx/nginx.conf"; else fail "nginx -t: $out"; fi
nginx -c "$work/nginx.conf" -p "$work" || { echo "nginx did not start"; cat "$work/error.log"; exit 1; }
wait_port "$front" || { echo "nginx not listening"; exit 1; }

# who SRC [QUERY] [curl args...]: the name of the backend that answered (empty on an nginx error)
who() {
  local src=$1 q=${2:-EIO=4&transport=polling}; shift 2 2>/dev/null || shift $#
  curl -s --max-time 5 --interface "$src" "$@" "http://127.0.0.1:$front/socket.io/?$q" | awk '/^b[0-9]/ {print $1}'
}

# 2. new handshakes from one address spread
declare -A count
for _ in $(seq 1 30); do b=$(who 127.0.0.2); count[${b:-none}]=$(( ${count[${b:-none}]:-0} + 1 )); done
spread="b1=${count[b1]:-0} b2=${count[b2]:-0} b3=${count[b3]:-0} none=${count[none]:-0}"
if [ "${count[none]:-0}" = 0 ] && [ "${count[b1]:-0}" -ge 5 ] && [ "${count[b2]:-0}" -ge 5 ] && [ "${count[b3]:-0}" -ge 5 ]; then
  ok "30 new handshakes from one address spread over all $nb backends ($spread)"
else fail "handshakes from one address: $spread"; fi

# 3. sids stick to the backend that their prefix names, whatever the client address
sticky=1
for i in $(seq 1 $nb); do
  sid="${keys[$((i - 1))]}$(head -c 15 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
  for n in $(seq 1 10); do
    src=127.0.0.$(( 2 + n % 5 ))
    [ "$(who "$src" "EIO=4&transport=polling&sid=$sid")" = "b$i" ] || { sticky=0; echo "  GET sid of b$i from $src went elsewhere"; }
    [ "$(who "$src" "EIO=4&transport=polling&sid=$sid" -X POST --data-raw '4hello')" = "b$i" ] || { sticky=0; echo "  POST sid of b$i went elsewhere"; }
  done
done
[ "$sticky" = 1 ] && ok "sids reach the backend named by their prefix (GET + POST, 10 each x $nb, 5 client addresses)" || fail "sid routing"

hdr=$(curl -s --max-time 5 "http://127.0.0.1:$front/socket.io/?EIO=4&transport=polling")
echo "$hdr" | grep -q "upgrade=- connection=-" && ok "plain requests carry no Upgrade/Connection: upgrade" || fail "headers: $hdr"
echo "$hdr" | grep -q "xff=127.0.0.1" && ok "X-Forwarded-For carries the client address" || fail "X-Forwarded-For: $hdr"

# WebSocket upgrade with a sid of b2: 101 from b2 (its frame carries its name)
key=$(head -c 16 /dev/urandom | base64)
expect=$(printf '%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11' "$key" | sha1sum | awk '{print $1}' | xxd -r -p | base64)
ws=$(curl -s -i --max-time 3 --http1.1 -H "Connection: Upgrade" -H "Upgrade: websocket" -H "Sec-WebSocket-Version: 13" \
     -H "Sec-WebSocket-Key: $key" "http://127.0.0.1:$front/socket.io/?EIO=4&transport=websocket&sid=${keys[1]}AAAAAAAAAAAAAAAAAAAA" 2>/dev/null | tr -d '\r' | tr -d '\000' )
if echo "$ws" | head -1 | grep -q " 101 " && echo "$ws" | grep -qi "^sec-websocket-accept: $expect" && echo "$ws" | grep -q "b2"; then
  ok "WebSocket upgrade with a sid reaches its backend (101 from b2, accept key matches)"
else fail "WebSocket upgrade: $(echo "$ws" | head -5 | tr '\n' '|')"; fi

# 4. unknown prefix -> the shared group
b=$(who 127.0.0.2 "EIO=4&transport=polling&sid=ffffffffAAAAAAAAAAAAAAAAAAAA")
[[ "$b" == b[0-9] ]] && ok "unknown sid prefix falls back to the shared group ($b)" || fail "unknown prefix: '$b'"

# 5. no sid or query string in the access log
sleep 0.2
if [ -s "$work/access2.log" ] && ! grep -q 'sid=\|EIO=\|?' "$work/access2.log" && grep -q "route=${keys[0]}" "$work/access2.log"; then
  ok "access log: $(wc -l <"$work/access2.log") lines, paths without query strings, route prefix only"
else fail "access log: $(grep -m2 'sid=\|?' "$work/access2.log")"; fi

h=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$front/health")
body=$(curl -s --max-time 5 "http://127.0.0.1:$front/health")
[ "$h" = 200 ] && [[ "$body" == b* ]] && ok "/health answered by a backend ($body)" || fail "/health: $h $body"

# 6. kill b1: new handshakes all succeed on b2/b3; b2's and b3's sids stay put
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null
errors=0 on_dead=0
for _ in $(seq 1 20); do
  b=$(who 127.0.0.3)
  [ -z "$b" ] && errors=$((errors + 1))
  [ "$b" = b1 ] && on_dead=$((on_dead + 1))
done
[ "$errors" = 0 ] && [ "$on_dead" = 0 ] && ok "backend b1 killed: 20 new handshakes all answered by live backends" || fail "after kill: $errors errors, $on_dead on b1"
stay=1
for i in 2 3; do
  sid="${keys[$((i - 1))]}BBBBBBBBBBBBBBBBBBBB"
  for _ in $(seq 1 5); do [ "$(who 127.0.0.4 "EIO=4&transport=polling&sid=$sid")" = "b$i" ] || stay=0; done
done
[ "$stay" = 1 ] && ok "sessions of live backends did not move" || fail "live sessions moved"
dead=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$front/socket.io/?EIO=4&transport=polling&sid=${keys[0]}CCCCCCCCCCCCCCCCCCCC")
[ "$dead" = 502 ] && ok "a sid of the dead backend gets 502 (the client reconnects without it)" || fail "dead backend's sid: $dead"

for i in "${!pids[@]}"; do kill "${pids[$i]}" 2>/dev/null; done
wait "${pids[@]}" 2>/dev/null
h=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$front/health")
[ "$h" = 502 ] && ok "/health is 502 when every backend is down (never a static 200)" || fail "/health with no backend: $h"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
