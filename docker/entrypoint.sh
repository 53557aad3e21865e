#!/bin/sh
# Berth container entrypoint. Started as root (the image default), it finds the group that owns
# the mounted Docker socket, drops to user berth (10001) with that group as a supplementary group,
# and execs the command (berth). Started as non-root (`--user`), it execs the command as is.
set -eu
host=${DOCKER_HOST:-unix:///var/run/docker.sock}
sock=
case "$host" in unix://*) sock=${host#unix://} ;; esac
# A container without the socket is a deployment mistake, not an outage: fail fast and say so.
# (A daemon that goes away later is reported by /health and retried by the pool.)
if [ -n "$sock" ] && [ ! -S "$sock" ] && [ "$1" = berth ]; then
  echo "berth-entrypoint: Docker socket $sock is not mounted (add -v /var/run/docker.sock:$sock)" >&2
  exit 78
fi
if [ "$(id -u)" = 0 ]; then
  groups=berth
  [ -n "$sock" ] && groups="berth,$(stat -c %g "$sock")"
  exec setpriv --reuid=berth --regid=berth --groups="$groups" --no-new-privs -- "$@"
fi
exec "$@"
