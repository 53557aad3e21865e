#!/usr/bin/env bash
# Starts the local services Berth and its tests use, if they are not running yet.
#   bash scripts/services.sh docker   # dockerd (waits for /var/run/docker.sock)
#   bash scripts/services.sh redis    # redis-server on 127.0.0.1:6379
set -euo pipefail
for svc in "$@"; do
  case "$svc" in
    docker)
      if ! docker version >/dev/null 2>&1; then
        # Docker holds ~12 descriptors per running sandbox (its stdio FIFOs, the MCP exec's, the
        # attach socket, the log): a shell's soft limit (often 1024) would cap the host at ~80
        # sandboxes. systemd's docker.service raises it; started by hand, take the hard limit.
        ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
        (dockerd >/tmp/berth-dockerd.log 2>&1 &)
        for _ in $(seq 1 120); do docker version >/dev/null 2>&1 && break; sleep 0.5; done
        docker version >/dev/null 2>&1 || { echo "dockerd did not start: see /tmp/berth-dockerd.log" >&2; exit 1; }
      fi ;;
    redis)
      if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
        redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save '' --appendonly no >/dev/null
        for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.1; done
      fi ;;
    *) echo "unknown service: $svc" >&2; exit 2 ;;
  esac
done
