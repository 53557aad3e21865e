#!/usr/bin/env bash
# Runs the socket.io-client end-to-end suite (node:test). Installs nothing: run `npm ci` in
# tests/e2e first. Environment: BERTH_E2E_SERVER_CMD, BERTH_BUILD_DIR, BERTH_E2E_NAMESPACE,
# BERTH_E2E_SLACK_MS (see lib.mjs). Exit code 0 only if every test passed.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
E2E=$(dirname "$HERE")
if [ ! -d "$E2E/node_modules/socket.io-client" ] || [ ! -d "$E2E/node_modules/ws" ]; then
  echo "socket.io-client / ws missing: run 'npm ci' in $E2E first" >&2
  exit 2
fi
cd "$E2E" || exit 2
echo "socket.io e2e: server=${BERTH_E2E_SERVER_CMD:-conformance server in ${BERTH_BUILD_DIR:-build/debug}}" \
     "namespace=${BERTH_E2E_NAMESPACE:-/}"
# One file at a time: the timing assertions (ping timeout) should not compete for the 2 CPUs.
exec node --test --test-force-exit --test-concurrency=1 --test-reporter=spec "$HERE"/*.test.mjs
