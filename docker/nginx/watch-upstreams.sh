#!/bin/sh
# nginx front for scaled Berth replicas (docker-compose.scale.yml mounts this script; it works in
# the official and in the offline nginx image).
# Why: `hash $binary_remote_addr consistent` places each upstream peer on the hash ring by its
# *name*. A single `server app:3000` line that DNS expands into N replica addresses gives N peers
# with the same name, i.e. colliding ring points, and each worker may then order them
# differently: the same client would hop between replicas. So this wrapper renders the mounted
# /etc/nginx/nginx.conf into /etc/nginx/nginx.berth.conf with every `server NAME:PORT ...;` line
# (NAME in $UPSTREAM_NAMES) replaced by one `server ADDRESS:PORT ...;` line per address of NAME,
# runs nginx on that file, and re-renders + reloads whenever the addresses change (a replica
# killed, restarted with a new address, or `--scale app=N`). Only the clients of a replica that
# left move; a reload keeps open connections on the old workers until they close.
#   UPSTREAM_NAMES (default "app"), UPSTREAM_CHECK_INTERVAL seconds (default 5)
set -eu
names=${UPSTREAM_NAMES:-app}
interval=${UPSTREAM_CHECK_INTERVAL:-5}
src=${NGINX_CONF:-/etc/nginx/nginx.conf}
out=/etc/nginx/nginx.berth.conf
log() { echo "watch-upstreams: $*" >&2; }

addresses() {  # NAME -> sorted IPv4 addresses, space separated
  getent ahostsv4 "$1" 2>/dev/null | awk '{ print $1 }' | sort -u | tr '\n' ' '
}
snapshot() {  # "name=a b c;name2=..." for change detection
  for n in $names; do printf '%s=%s;' "$n" "$(addresses "$n")"; done
}
render() {  # expands the server lines of every name into $out.tmp; fails if a name has no address
  cp "$src" "$out.tmp"
  for n in $names; do
    a=$(addresses "$n")
    [ -n "$a" ] || return 1
    awk -v name="$n" -v addrs="$a" '
      {
        line = $0
        if (match(line, "^[ \t]*server[ \t]+" name ":[0-9]+[ \t;]")) {
          indent = line; sub(/[^ \t].*$/, "", indent)
          rest = line; sub("^[ \t]*server[ \t]+" name ":", "", rest)   # "3000 params;"
          n = split(addrs, ip, " ")
          for (i = 1; i <= n; i++) printf "%sserver %s:%s\n", indent, ip[i], rest
          next
        }
        print
      }' "$out.tmp" >"$out.tmp2" && mv "$out.tmp2" "$out.tmp"
  done
  mv "$out.tmp" "$out"
}

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
  now=$(snapshot)
  [ "$now" = "$last" ] && continue
  # A name without addresses (every replica down) keeps the last ring: nginx answers 502 itself.
  if render && nginx -t -q -c "$out"; then
    log "upstreams changed: $now; reloading nginx"
    nginx -c "$out" -s reload
    last=$now
  fi
done
wait "$pid"
