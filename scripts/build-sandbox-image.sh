#!/bin/sh
# Builds the sandbox image (default berth-sandbox:latest) offline in seconds: the static busybox of
# the host and, when BERTH_SANDBOX_BIN names an existing file, the berth-sandbox binary are copied
# into a temporary build context for docker/sandbox/Dockerfile.rootfs (FROM scratch: no base image
# needed). docker/sandbox/Dockerfile builds the same image from source for `docker compose --build`.
# Usage: scripts/build-sandbox-image.sh [TAG]  (or SANDBOX_IMAGE=TAG).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
tag=${1:-${SANDBOX_IMAGE:-berth-sandbox:latest}}
busybox=${BUSYBOX:-/bin/busybox}

if ! file_is_static=$(ldd "$busybox" 2>&1); then :; fi
case "$file_is_static" in
  *"not a dynamic executable"*|*"statically linked"*) ;;
  *) echo "build-sandbox-image: $busybox is not static (install busybox-static)" >&2; exit 1 ;;
esac

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT INT TERM
mkdir -p "$ctx/rootfs/bin" "$ctx/rootfs/etc" "$ctx/rootfs/usr/local/bin"
cp "$busybox" "$ctx/rootfs/bin/busybox"
chmod 0755 "$ctx/rootfs/bin/busybox"
cp "$here/docker/sandbox/rootfs/etc/passwd" "$here/docker/sandbox/rootfs/etc/group" "$ctx/rootfs/etc/"
if [ -n "${BERTH_SANDBOX_BIN:-}" ] && [ -f "${BERTH_SANDBOX_BIN}" ]; then
  cp "$BERTH_SANDBOX_BIN" "$ctx/rootfs/usr/local/bin/berth-sandbox"
  chmod 0755 "$ctx/rootfs/usr/local/bin/berth-sandbox"
  echo "build-sandbox-image: including berth-sandbox from $BERTH_SANDBOX_BIN"
else
  echo "build-sandbox-image: BERTH_SANDBOX_BIN not set or missing; image without berth-sandbox"
fi
cp "$here/docker/sandbox/Dockerfile.rootfs" "$ctx/Dockerfile"
docker build -q -t "$tag" "$ctx"
echo "build-sandbox-image: built $tag"
