#!/bin/sh
# Berth container entrypoint. Started as root (the image default), it finds the group that owns
# the mounted Docker socket, drops to user berth (10001) with that group as a supplementary group,
# and execs the command (berth). Started as non-root (`--user`), it execs the command as is.
set -eu
sock=${DOCKER_HOST:-unix:///var/run/docker.sock}
sock=${sock#unix://}
if [ "$(id -u)" = 0 ]; then
  groups=berth
  if [ -S "$sock" ]; then
    gid=$(stat -c %g "$sock")
    groups="berth,$gid"
  else
    echo "berth-entrypoint: Docker socket $sock is not mounted (add -v /var/run/docker.sock:$sock)" >&2
  fi
  exec setpriv --reuid=berth --regid=berth --groups="$groups" --no-new-privs -- "$@"
fi
exec "$@"
