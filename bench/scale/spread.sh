#!/usr/bin/env bash
# Load spread and per-part cost on the scale stack, from ONE client host (issue 15):
#   bash bench/scale/spread.sh            # 220 users at 3 new users/s (the issue's measurement)
#   ARRIVAL_RATE=1 DURATION=20 bash bench/scale/spread.sh   # quick
# Brings up docker-compose.scale.yml + docker-compose.offline.yml as project berth-bench-spread
# (nginx on a free loopback port, images from scripts/build-images.sh), runs the Artillery
# scenario (bench/artillery) through nginx, and reports:
#   - sessions per replica (from each replica's "ready" log lines) and their share;
#   - resident memory of each replica at rest and after the run, of idle sandbox containers,
#     of Redis per session (used_memory delta over the sessions created, KEEP_SESSIONS=1 so the
#     sessions stay in Redis while measured);
# into bench/results/scale/spread-<stamp>.md. Tears the stack down on exit.
# Env: ARRIVAL_RATE (3), DURATION (73), MAX_VUSERS (400), POOL_MIN_SIZE (5), POOL_MAX_SIZE (100),
#      BERTH_IMAGE / SANDBOX_IMAGE (berth:latest / berth-sandbox:latest).
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
P=berth-bench-spread
export ARRIVAL_RATE=${ARRIVAL_RATE:-3} DURATION=${DURATION:-73} MAX_VUSERS=${MAX_VUSERS:-400}
export LLM_PROVIDER=local POOL_MIN_SIZE=${POOL_MIN_SIZE:-5} POOL_MAX_SIZE=${POOL_MAX_SIZE:-100} \
       CONTAINER_MEMORY=${CONTAINER_MEMORY:-128m} APP_MEMORY_LIMIT=${APP_MEMORY_LIMIT:-1g} \
       SESSION_IDLE_TIMEOUT_MS=${SESSION_IDLE_TIMEOUT_MS:-600000}
NGINX_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'); export NGINX_PORT
if docker compose version >/dev/null 2>&1; then DC=(docker compose); else DC=(docker-compose --compatibility); fi
S=("${DC[@]}" -p "$P" -f docker-compose.scale.yml -f docker-compose.offline.yml)
OUT=${OUT_DIR:-$ROOT/bench/results/scale}
mkdir -p "$OUT"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
report=$OUT/spread-$stamp.md
replicas_file=$(mktemp)
cleanup() {
  "${S[@]}" down -v --remove-orphans -t 20 >/dev/null 2>&1
  local r ids=""
  while read -r r; do [ -n "$r" ] && ids+=" $(docker ps -aq --filter label=berth.managed=true --filter "label=berth.replica=$r")"; done <"$replicas_file"
  [ -n "${ids// /}" ] && docker rm -f $ids >/dev/null 2>&1
  rm -f "$replicas_file"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
for n in mcp-redis mcp-nginx; do
  docker inspect "$n" >/dev/null 2>&1 && { echo "container $n exists: stop that stack first"; exit 1; }
done

"${S[@]}" up -d >"$OUT/up-$stamp.log" 2>&1 || { tail -5 "$OUT/up-$stamp.log"; exit 1; }
apps() { docker ps -q --filter "label=com.docker.compose.project=$P" --filter label=com.docker.compose.service=app; }
for id in $(apps); do docker inspect -f '{{.Config.Hostname}}' "$id" >>"$replicas_file"; done
for _ in $(seq 1 240); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://127.0.0.1:$NGINX_PORT/stats/pool")" = 200 ] &&
    curl -s "http://127.0.0.1:$NGINX_PORT/stats/pool" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const c=JSON.parse(s).cluster;process.exit(c.totals.replicas===4&&c.totals.idle===4*Number(process.env.POOL_MIN_SIZE)?0:1)})' && break
  sleep 1
done
rss() { docker stats --no-stream --format '{{.Name}} {{.MemUsage}}' "$@" | awk '{print $1, $2}'; }
ready_counts() { local id; for id in $(apps); do echo "$(docker inspect -f '{{.Config.Hostname}}' "$id") $(docker logs "$id" 2>&1 | grep -c ' ready (')"; done; }
rest_apps=$(rss $(apps))
idle_sandboxes=$(docker ps -q --filter label=berth.managed=true --filter "label=berth.replica=$(head -1 "$replicas_file")")
sandbox_rss=$(rss $idle_sandboxes | head -5)
redis_before=$(docker exec mcp-redis redis-cli INFO memory | tr -d '\r' | sed -n 's/^used_memory:\(.*\)$/\1/p')
ready_counts >"$OUT/ready-before-$stamp.txt"

KEEP_SESSIONS=1 OUT_DIR="$OUT/artillery-$stamp" MAX_ERROR_RATE=1 bash bench/artillery/run.sh "http://127.0.0.1:$NGINX_PORT" >"$OUT/artillery-$stamp.log" 2>&1
art_rc=$?
ready_counts >"$OUT/ready-after-$stamp.txt"
redis_after=$(docker exec mcp-redis redis-cli INFO memory | tr -d '\r' | sed -n 's/^used_memory:\(.*\)$/\1/p')
sessions_in_redis=$(docker exec mcp-redis redis-cli ZCARD berth:sessions | tr -d '\r')
load_apps=$(rss $(apps))
split=$(awk 'NR==FNR { b[$1] = $2; next } { d = $2 - b[$1]; n[$1] = d; t += d } END { for (r in n) printf "| %s | %d | %.1f %% |\n", r, n[r], t ? 100 * n[r] / t : 0 }' \
        "$OUT/ready-before-$stamp.txt" "$OUT/ready-after-$stamp.txt" | sort)
{
  echo "# Spread over replicas, $stamp (commit $(git rev-parse --short HEAD 2>/dev/null))"
  echo
  echo "Artillery from one host through nginx: ${ARRIVAL_RATE} new users/s for ${DURATION} s (exit $art_rc); 4 replicas, POOL_MIN_SIZE=$POOL_MIN_SIZE."
  echo
  echo "| replica | sessions | share |"; echo "|---|---|---|"; echo "$split"
  echo
  echo "Artillery summary:"; echo; grep -E 'vusers\.(created|completed|failed)|error rate|errors\.' "$OUT/artillery-$stamp.log" | sed 's/^/    /' | head -12
  echo
  echo "Replica memory at rest (docker stats):"; echo; echo "$rest_apps" | sed 's/^/    /'
  echo "Replica memory after the run, sessions kept:"; echo; echo "$load_apps" | sed 's/^/    /'
  echo "Idle sandbox containers:"; echo; echo "$sandbox_rss" | sed 's/^/    /'
  echo
  echo "Redis used_memory: $redis_before -> $redis_after bytes with $sessions_in_redis sessions in berth:sessions"
  [ "${sessions_in_redis:-0}" -gt 0 ] && echo "= $(( (redis_after - redis_before) / sessions_in_redis )) bytes per session (session hash + history of one tool turn + index)"
} >"$report"
cat "$report"
