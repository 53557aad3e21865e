#!/usr/bin/env bash
# Starts the local services Berth and its tests use, if they are not running yet.
#   bash scripts/services.sh docker   # dockerd (waits for /var/run/docker.sock)
#   bash scripts/services.sh redis    # redis-server on 127.0.0.1:6379
set -euo pipefail

# gVisor (docs/SANDBOX.md): with Debian's runsc installed and no daemon.json of the operator's,
# registers it as the runtime "runsc" (SANDBOX_RUNTIME=runsc) and has a running dockerd reload
# its runtimes (SIGHUP, no restart). On a cgroup v1 host runsc can only run with --ignore-cgroups,
# i.e. without the sandboxes' memory and pids limits; cgroup v2 hosts keep them.
register_runsc() {
  command -v runsc >/dev/null 2>&1 || return 0
  docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"' && return 0
  [ -e /etc/docker/daemon.json ] && { echo "note: /etc/docker/daemon.json exists; runsc not registered" >&2; return 0; }
  local args='"--network=none"'
  [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] || args+=', "--ignore-cgroups"'
  mkdir -p /etc/docker
  printf '{"runtimes": {"runsc": {"path": "%s", "runtimeArgs": [%s]}}}\n' "$(command -v runsc)" "$args" >/etc/docker/daemon.json
  pkill -HUP -x dockerd || true
  for _ in $(seq 1 50); do docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"' && return 0; sleep 0.1; done
  echo "note: dockerd did not load the runsc runtime" >&2
}

for svc in "$@"; do
  case "$svc" in
    docker)
      if ! docker version >/dev/null 2>&1; then
        # Docker holds 7 descriptors per running sandbox (both ends of its stdio FIFOs and the
        # attach socket): a shell's soft limit (often 1024) would cap the host at ~140 sandboxes.
        # systemd's docker.service raises it; started by hand, take the hard limit.
        ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
        (dockerd >/tmp/berth-dockerd.log 2>&1 &)
        for _ in $(seq 1 120); do docker version >/dev/null 2>&1 && break; sleep 0.5; done
        docker version >/dev/null 2>&1 || { echo "dockerd did not start: see /tmp/berth-dockerd.log" >&2; exit 1; }
      fi
      register_runsc ;;
    redis)
      if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
        redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save '' --appendonly no >/dev/null
        for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.1; done
      fi ;;
    *) echo "unknown service: $svc" >&2; exit 2 ;;
  esac
done
