#!/usr/bin/env bash
# Installs everything Berth needs on Debian 12 (as root), builds it, and with --start runs it.
#   bash scripts/install.sh            # packages, npm modules, build, sandbox image
#   bash scripts/install.sh --start    # ... then start dockerd if needed and run Berth on :3000
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
START=0
[ "${1:-}" = "--start" ] && START=1
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
log() { printf '\n==> %s\n' "$*"; }

log "apt packages"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null
PKGS=(build-essential cmake ninja-build ccache pkg-config git curl ca-certificates
      libboost1.81-all-dev libhiredis-dev nlohmann-json3-dev libspdlog-dev libssl-dev
      libgtest-dev libgmock-dev clang libclang-rt-14-dev redis-server redis-sentinel docker.io docker-compose nginx busybox-static openssl procps iproute2 python3
      debootstrap prometheus runsc)
command -v node >/dev/null 2>&1 || PKGS+=(nodejs npm)
[ "${BERTH_BROWSER_TESTS:-1}" = "1" ] && PKGS+=(chromium)
$SUDO apt-get install -y -q --no-install-recommends "${PKGS[@]}" >/dev/null

log "npm modules (socket.io client bundle, test clients)"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1  # tests drive Debian's chromium; artillery must not fetch one
for dir in client tests/e2e bench/artillery bench/socketio/peer; do
  [ -f "$dir/package.json" ] || continue
  if [ -f "$dir/package-lock.json" ]; then (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error);
  else (cd "$dir" && npm install --no-audit --no-fund --loglevel=error); fi
done

log "docker daemon"
bash scripts/services.sh docker

log "build (preset ${BERTH_PRESET:-release})"
cmake --preset "${BERTH_PRESET:-release}" >/dev/null
cmake --build --preset "${BERTH_PRESET:-release}"

log "sandbox image"
if [ -x scripts/build-sandbox-image.sh ]; then
  BERTH_SANDBOX_BIN=$(find "build/${BERTH_PRESET:-release}" -name berth-sandbox -type f -perm -u+x | head -n1) \
    bash scripts/build-sandbox-image.sh
fi

if [ "$START" = 1 ]; then
  log "starting Redis and Berth on :${PORT:-3000} (Ctrl-C stops Berth)"
  bash scripts/services.sh redis
  exec "build/${BERTH_PRESET:-release}/src/app/berth"
fi
log "done: start Berth with build/${BERTH_PRESET:-release}/src/app/berth"
