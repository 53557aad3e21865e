#!/bin/sh
# nginx front for scaled Berth replicas (docker-compose.scale.yml mounts this script; it works in
# the official and in the offline nginx image).
# Why: nginx resolves `server app:3000` once, and routing a session back to the replica that
# holds it needs one upstream per replica. So this wrapper renders the mounted
# /etc/nginx/nginx.conf into /etc/nginx/nginx.berth.conf:
#   - every `server NAME:PORT ...;` line (NAME in $UPSTREAM_NAMES) becomes one `server ADDRESS:PORT
#     ...;` line per address of NAME (the least_conn group for new handshakes);
#   - `# @berth-routes NAME:PORT` becomes one map entry `KEY berth_r_KEY;` per address, and
#   - `# @berth-route-upstreams NAME:PORT` one `upstream berth_r_KEY { server ADDRESS:PORT; }`,
#     KEY being the first 8 hex of SHA-256("ADDRESS:PORT"): the prefix Berth puts on the
#     Engine.IO sids it issues (src/app/app.cpp, route_key; ROUTE_ADDRESS overrides the address);
# runs nginx on that file, and re-renders + reloads whenever the addresses change (a replica
# killed, restarted with a new address, or `--scale app=N`). A reload keeps open connections on
# the old workers until they close.
# The access log file is made a regular file (the images link it to stdout) and truncated when
# it grows above ACCESS_LOG_MAX_MB (nginx also logs to stdout: `docker logs mcp-nginx`).
#   UPSTREAM_NAMES (default "app"), UPSTREAM_CHECK_INTERVAL seconds (default 5),
#   ACCESS_LOG_MAX_MB (default 100), NGINX_CONF (default /etc/nginx/nginx.conf).
# Tests: `watch-upstreams.sh --render OUT` renders once and exits; UPSTREAM_ENDPOINTS_<NAME>="IP:PORT
# ..." replaces the DNS lookup of NAME (tests/deploy/nginx_sticky.sh).
set -eu
names=${UPSTREAM_NAMES:-app}
interval=${UPSTREAM_CHECK_INTERVAL:-5}
src=${NGINX_CONF:-/etc/nginx/nginx.conf}
out=/etc/nginx/nginx.berth.conf
access_log=/var/log/nginx/access.log
max_log_bytes=$(( ${ACCESS_LOG_MAX_MB:-100} * 1024 * 1024 ))
render_only=0
if [ "${1:-}" = "--render" ]; then render_only=1; out=${2:?--render OUT}; fi
log() { echo "watch-upstreams: $*" >&2; }

endpoints() {  # NAME PORT -> sorted "IP:PORT" list, space separated
  override=$(eval "printf '%s' \"\${UPSTREAM_ENDPOINTS_$1:-}\"")
  if [ -n "$override" ]; then printf '%s ' $override; return; fi
  getent ahostsv4 "$1" 2>/dev/null | awk -v port="$2" '{ print $1 ":" port }' | sort -u | tr '\n' ' '
}
snapshot() {  # "name=a b c;name2=..." for change detection
  for n in $names; do printf '%s=%s;' "$n" "$(endpoints "$n" 0)"; done
}
route_key() { printf '%s' "$1" | sha256sum | cut -c1-8; }
keyed() {  # "IP:PORT ..." -> "IP:PORT=KEY ..."
  for e in $1; do printf '%s=%s ' "$e" "$(route_key "$e")"; done
}
render() {  # renders $src into $out; fails if a name has no address
  cp "$src" "$out.tmp"
  for n in $names; do
    port=$(sed -n "s/^[[:space:]]*server[[:space:]][[:space:]]*$n:\([0-9][0-9]*\)[[:space:];].*/\1/p" "$out.tmp" | head -n1)
    [ -n "$port" ] || port=$(sed -n "s/^[[:space:]]*# @berth-routes[[:space:]][[:space:]]*$n:\([0-9][0-9]*\).*/\1/p" "$out.tmp" | head -n1)
    [ -n "$port" ] || continue
    eps=$(endpoints "$n" "$port")
    [ -n "$eps" ] || return 1
    awk -v name="$n" -v eps="$(keyed "$eps")" '
      BEGIN { n = split(eps, e, " "); for (i = 1; i <= n; i++) { split(e[i], kv, "="); ep[i] = kv[1]; key[i] = kv[2] } }
      {
        line = $0
        indent = line; sub(/[^ \t].*$/, "", indent)
        if (match(line, "^[ \t]*server[ \t]+" name ":[0-9]+[ \t;]")) {
          rest = line; sub("^[ \t]*server[ \t]+" name ":[0-9]+", "", rest)   # " params;"
          for (i = 1; i <= n; i++) printf "%sserver %s%s\n", indent, ep[i], rest
          next
        }
        if (match(line, "^[ \t]*# @berth-routes[ \t]+" name ":")) {
          for (i = 1; i <= n; i++) printf "%s%s berth_r_%s;\n", indent, key[i], key[i]
          next
        }
        if (match(line, "^[ \t]*# @berth-route-upstreams[ \t]+" name ":")) {
          for (i = 1; i <= n; i++)
            printf "%supstream berth_r_%s { server %s; keepalive 16; }\n", indent, key[i], ep[i]
          next
        }
        print
      }' "$out.tmp" >"$out.tmp2" && mv "$out.tmp2" "$out.tmp"
  done
  mv "$out.tmp" "$out"
}

if [ "$render_only" = 1 ]; then render; exit; fi

# The images link access.log to /dev/stdout, which `docker exec ... cat` cannot read back.
if [ -L "$access_log" ] || [ ! -e "$access_log" ]; then rm -f "$access_log"; : >"$access_log"; fi

# nginx refuses to start while an upstream host is unknown: wait (bounded) for the replicas.
tries=0
until render; do
  tries=$((tries + 1))
  if [ "$tries" -gt 120 ]; then log "'$names' did not resolve within 120 s"; exit 1; fi
  sleep 1
done
last=$(snapshot)
log "upstreams: $last"

nginx -c "$out" -g 'daemon off;' &
pid=$!
trap 'kill -QUIT "$pid" 2>/dev/null; wait "$pid"; exit 0' TERM INT QUIT
while kill -0 "$pid" 2>/dev/null; do
  sleep "$interval" &
  wait $! || true
  if [ "$(wc -c <"$access_log" 2>/dev/null || echo 0)" -gt "$max_log_bytes" ]; then
    : >"$access_log"  # nginx appends (O_APPEND): writing continues at the new end
    log "access log over ${ACCESS_LOG_MAX_MB:-100} MB: truncated"
  fi
  now=$(snapshot)
  [ "$now" = "$last" ] && continue
  # A name without addresses (every replica down) keeps the last config: nginx answers 502 itself.
  if render && nginx -t -q -c "$out"; then
    log "upstreams changed: $now; reloading nginx"
    nginx -c "$out" -s reload
    last=$now
  fi
done
wait "$pid"
