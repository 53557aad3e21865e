#!/usr/bin/env bash
# The scale stack with the `sentinel` profile (docs/SCALING.md, "Redis high availability"):
# Redis master + replica + three sentinels, 2 app replicas pointed at the sentinels, nginx.
#  1. up (images from scripts/build-images.sh; BERTH_E2E_SKIP_BUILD=1 uses what is there);
#  2. the sentinels name the master by host name, /health shows sentinel mode and the master;
#  3. tests/deploy/redis_failover.mjs through nginx: users chat, `docker kill mcp-redis`, every
#     session resumes (sessions lost, client errors, time to recover in its SUMMARY line);
#  4. after the kill: the replica is the master, /health says so and counts the failover;
#  5. down; no berth.managed container of its replicas left.
# Prints 'N passed, N failed'; exit 0 only if all passed. Cleans up on every exit path.
# Env: BERTH_E2E_SKIP_BUILD=1, BERTH_E2E_KEEP=1 (leave the stack up), SENTINEL_DOWN_AFTER_MS (2000),
# REDIS_IMAGE / NGINX_IMAGE / BERTH_IMAGE / SANDBOX_IMAGE (the offline builds' tags by default).
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
P=berth-sentinel-e2e
ART=${BERTH_E2E_ARTIFACTS:-$ROOT/tests/e2e/artifacts/deploy-sentinel}
mkdir -p "$ART"
passed=0 failed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
fail() { echo "FAILED: $*"; failed=$((failed + 1)); }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
if docker compose version >/dev/null 2>&1; then DC=(docker compose); else DC=(docker-compose --compatibility); fi

export COMPOSE_PROFILES=sentinel
export REDIS_SENTINELS=redis-sentinel-1:26379,redis-sentinel-2:26379,redis-sentinel-3:26379
export SENTINEL_DOWN_AFTER_MS=${SENTINEL_DOWN_AFTER_MS:-2000}
export APP_REPLICAS=${APP_REPLICAS:-2} LLM_PROVIDER=local POOL_MIN_SIZE=${POOL_MIN_SIZE:-4} POOL_MAX_SIZE=${POOL_MAX_SIZE:-12} \
       CONTAINER_MEMORY=${CONTAINER_MEMORY:-128m} REDIS_MAXMEMORY=${REDIS_MAXMEMORY:-128mb} APP_MEMORY_LIMIT=${APP_MEMORY_LIMIT:-512m} \
       UPSTREAM_CHECK_INTERVAL=${UPSTREAM_CHECK_INTERVAL:-1} \
       MAX_HISTORY_TOKENS=10000000 \
       SOCKET_EVENTS_PER_SECOND=0 USER_EVENTS_PER_SECOND=0 LLM_TOKENS_PER_USER_PER_MINUTE=0
# No trimming: every answered turn must be in the resumed history. Users chat as fast as the local
# model answers: over a socket's 20 events/s, a user's 40, and the LLM tokens a user may spend.
NGINX_PORT=$(free_port); export NGINX_PORT
hard=$(ulimit -Hn); [ "$hard" = unlimited ] && hard=65536
export NOFILE_LIMIT=${NOFILE_LIMIT:-$(( hard < 65536 ? hard : 65536 ))}
# The offline images (scripts/build-images.sh) by default; tags can be overridden so this test
# does not take images another checkout is testing (BERTH_IMAGE too, read by the compose file).
export REDIS_IMAGE=${REDIS_IMAGE:-berth/redis:offline} NGINX_IMAGE=${NGINX_IMAGE:-berth/nginx:offline}
STACK=("${DC[@]}" -p "$P" -f docker-compose.scale.yml)
replicas=()

cleanup() {
  [ "${BERTH_E2E_KEEP:-0}" = 1 ] && { echo "BERTH_E2E_KEEP=1: stack $P left up"; return; }
  "${STACK[@]}" logs --no-color >"$ART/stack.log" 2>&1 || true
  "${STACK[@]}" down -v --remove-orphans -t 20 >/dev/null 2>&1 || true
  local r left
  for r in "${replicas[@]}"; do
    left=$(docker ps -aq --filter label=berth.managed=true --filter "label=berth.replica=$r")
    [ -n "$left" ] && docker rm -f $left >/dev/null 2>&1
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for n in mcp-redis mcp-nginx; do  # fixed container names must be free
  owner=$(docker inspect -f '{{index .Config.Labels "com.docker.compose.project"}}' "$n" 2>/dev/null || true)
  if [ -n "$owner" ] && [ "$owner" != "$P" ]; then echo "container $n belongs to project '$owner': stop that stack first"; echo "0 passed, 1 failed"; exit 1; fi
done

if [ "${BERTH_E2E_SKIP_BUILD:-0}" != 1 ]; then
  bash scripts/build-images.sh || { fail "image build"; echo "$passed passed, $failed failed"; exit 1; }
fi
t0=$SECONDS
if "${STACK[@]}" up -d >"$ART/up.log" 2>&1; then ok "stack up with profile sentinel"; else fail "stack up: $(tail -5 "$ART/up.log")"; fi
for id in $(docker ps -aq --filter "label=com.docker.compose.project=$P" --filter label=com.docker.compose.service=app); do
  replicas+=("$(docker inspect -f '{{.Config.Hostname}}' "$id")")
done
healthy=0
for _ in $(seq 1 180); do
  code=$(curl -s -o "$ART/health.json" -w '%{http_code}' --max-time 3 "http://127.0.0.1:$NGINX_PORT/health/ready" || true)
  [ "$code" = 200 ] && { healthy=1; break; }
  sleep 1
done
[ "$healthy" = 1 ] && ok "ready through nginx after $((SECONDS - t0)) s" || fail "not ready within 180 s (last: ${code:-none})"
addr=$("${STACK[@]}" exec -T redis-sentinel-1 redis-cli -p 26379 sentinel get-master-addr-by-name mymaster 2>/dev/null | tr '\n' ':')
[ "$addr" = "redis:6379:" ] && ok "sentinels name the master by host name (redis:6379)" || fail "sentinel master address: '$addr'"
node -e 'const h=JSON.parse(require("fs").readFileSync(process.argv[1])); process.exit(h.redis.sentinel===true && h.redis.master==="redis:6379" ? 0 : 1)' "$ART/health.json" \
  && ok "/health: sentinel mode, master redis:6379" || fail "/health redis: $(cat "$ART/health.json")"

BERTH_URL="http://127.0.0.1:$NGINX_PORT" KILL_CMD="docker kill mcp-redis" USERS=${USERS:-6} \
  timeout 300 node tests/deploy/redis_failover.mjs | tee "$ART/failover.log"
[ "${PIPESTATUS[0]}" = 0 ] && ok "redis_failover.mjs: master killed under load, every session resumed" || fail "redis_failover.mjs"

addr=$("${STACK[@]}" exec -T redis-sentinel-2 redis-cli -p 26379 sentinel get-master-addr-by-name mymaster 2>/dev/null | tr '\n' ':')
[ "$addr" = "redis-replica:6379:" ] && ok "the replica was promoted (redis-replica:6379)" || fail "master after the kill: '$addr'"
promoted=0
for id in $(docker ps -q --filter "label=com.docker.compose.project=$P" --filter label=com.docker.compose.service=app); do
  h=$(docker exec "$id" bash -c 'exec 3<>/dev/tcp/127.0.0.1/3000 2>/dev/null && printf "GET /health HTTP/1.0\r\n\r\n" >&3 && cat <&3' 2>/dev/null | tail -1)
  node -e 'const h=JSON.parse(process.argv[1]); process.exit(h.redis.master==="redis-replica:6379" && h.redis.failovers===1 ? 0 : 1)' "$h" 2>/dev/null \
    && promoted=$((promoted + 1)) || echo "replica $id /health: $h"
done
[ "$promoted" = "$APP_REPLICAS" ] && ok "every app replica uses the new master and counted 1 failover" || fail "$promoted of $APP_REPLICAS replicas on the new master"
echo "---- $((SECONDS - t0)) s"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
