#!/usr/bin/env bash
# End-to-end test of the compose deployment (issue 6), on this machine's dockerd, no registry:
#  1. builds every image offline (scripts/build-images.sh: base, redis, nginx, berth, sandbox);
#  2. brings up docker-compose.scale.yml + docker-compose.offline.yml under the project name
#     berth-deploy-e2e (Redis, 4 app replicas, nginx on a free port, the placeholder), waits for
#     health, checks the seed's commands (docker exec mcp-redis redis-cli INFO stats, docker logs
#     mcp-nginx, /health, /stats/pool, `logs app | grep ContainerPool`);
#  3. runs tests/deploy/flow.mjs through nginx: polling-only and websocket clients do the tool
#     flow, the replica serving them is `docker kill`ed, they resume the same session, container
#     and files on another replica; their history is in Redis;
#  4. brings the stack down and asserts that no berth.managed container of its replicas and no
#     network of the project is left;
#  5. rollback: docker-compose.yml with ENABLE_CONTAINER_POOL=false passes the tool flow;
#  6. bad input: an invalid pool setting, a wrong Redis URL, a missing Docker socket each stop
#     Berth quickly with one line naming the cause.
# Needs: docker, docker-compose (v1, Debian) or docker compose v2, node, curl, debootstrap (for
# the base image), socket.io-client in tests/e2e/node_modules or client/node_modules.
# Prints 'N passed, N failed'; exit 0 only if all passed. Cleans up on every exit path.
# Env: BERTH_E2E_SKIP_BUILD=1 (use existing images), BERTH_E2E_KEEP=1 (leave the stack up).
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
P=berth-deploy-e2e
P1=berth-deploy-e2e-single
ART=${BERTH_E2E_ARTIFACTS:-$ROOT/tests/e2e/artifacts/deploy}
mkdir -p "$ART"
passed=0 failed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
fail() { echo "FAILED: $*"; failed=$((failed + 1)); }
t_start=$SECONDS
step_t0=$SECONDS
timing() { echo "---- $1: $((SECONDS - step_t0)) s"; step_t0=$SECONDS; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

if docker compose version >/dev/null 2>&1; then DC=(docker compose); else DC=(docker-compose --compatibility); fi
command -v node >/dev/null || { echo "node missing"; echo "0 passed, 1 failed"; exit 1; }

export LLM_PROVIDER=local ORPHAN_REAP_INTERVAL_MS=${ORPHAN_REAP_INTERVAL_MS:-5000} POOL_MIN_SIZE=${POOL_MIN_SIZE:-2} POOL_MAX_SIZE=${POOL_MAX_SIZE:-20} \
       CONTAINER_MEMORY=${CONTAINER_MEMORY:-128m} SESSION_IDLE_TIMEOUT_MS=${SESSION_IDLE_TIMEOUT_MS:-120000} \
       REDIS_MAXMEMORY=${REDIS_MAXMEMORY:-128mb} APP_MEMORY_LIMIT=${APP_MEMORY_LIMIT:-512m}
NGINX_PORT=$(free_port); export NGINX_PORT
# No NOFILE_LIMIT: the compose files demand no ulimits (Berth raises its own soft limit).
PROMETHEUS_PORT=$(free_port); export PROMETHEUS_PORT
# Find a replica change within a second or two (watch-upstreams' default is 5 s).
export UPSTREAM_CHECK_INTERVAL=${UPSTREAM_CHECK_INTERVAL:-1}
SCALE=("${DC[@]}" -p "$P" -f docker-compose.scale.yml -f docker-compose.offline.yml --profile monitoring)
SINGLE=("${DC[@]}" -p "$P1" -f docker-compose.yml)
replicas_file="$ART/replica-ids"
: >"$replicas_file"

leftover_managed() {  # berth.managed containers owned by the replicas this test started
  local ids="" r
  while read -r r; do
    [ -n "$r" ] && ids+=" $(docker ps -aq --filter label=berth.managed=true --filter "label=berth.replica=$r")"
  done <"$replicas_file"
  echo $ids
}
record_replicas() {  # app container hostnames = Berth's default REPLICA_ID
  local proj=$1 service=$2 id
  for id in $(docker ps -aq --filter "label=com.docker.compose.project=$proj" --filter "label=com.docker.compose.service=$service"); do
    docker inspect -f '{{.Config.Hostname}}' "$id" >>"$replicas_file"
  done
  sort -u -o "$replicas_file" "$replicas_file"
}
cleanup() {
  [ "${BERTH_E2E_KEEP:-0}" = 1 ] && { echo "BERTH_E2E_KEEP=1: stack $P left up"; return; }
  "${SCALE[@]}" logs --no-color >"$ART/scale-stack.log" 2>&1 || true
  "${SCALE[@]}" down -v --remove-orphans -t 20 >/dev/null 2>&1 || true
  "${SINGLE[@]}" down -v --remove-orphans -t 20 >/dev/null 2>&1 || true
  local left; left=$(leftover_managed)
  [ -n "$left" ] && docker rm -f $left >/dev/null 2>&1
  docker rm -f berth-deploy-e2e-nosocket >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Fixed container names (mcp-redis, mcp-nginx) must be free.
for n in mcp-redis mcp-nginx mcp-prometheus; do
  owner=$(docker inspect -f '{{index .Config.Labels "com.docker.compose.project"}}' "$n" 2>/dev/null || true)
  if [ -n "$owner" ] && [ "$owner" != "$P" ]; then echo "container $n belongs to project '$owner': stop that stack first"; echo "0 passed, 1 failed"; exit 1; fi
done

# 0. the checks that need neither Docker nor the gateway
bash tests/deploy/check_config_sync.sh >"$ART/config-sync.log" 2>&1 && ok "config sync (.env.example, compose)" || fail "config sync: $(grep FAILED "$ART/config-sync.log" | head -3)"
bash tests/deploy/nginx_sticky.sh >"$ART/nginx-sticky.log" 2>&1 && ok "nginx.conf with local backends" || fail "nginx_sticky: $(grep FAILED "$ART/nginx-sticky.log" | head -3)"

# 1. images
if [ "${BERTH_E2E_SKIP_BUILD:-0}" != 1 ]; then
  if bash scripts/build-images.sh; then ok "images built offline"; else fail "image build"; echo "$passed passed, $failed failed"; exit 1; fi
fi
timing "build images"

# 2. scale stack
"${SCALE[@]}" config -q && ok "scale compose config valid" || fail "scale compose config"
if "${SCALE[@]}" up -d >"$ART/scale-up.log" 2>&1; then ok "scale stack up (project $P)"; else fail "scale stack up: $(tail -5 "$ART/scale-up.log")"; fi
record_replicas "$P" app
healthy=0
for _ in $(seq 1 180); do
  code=$(curl -s -o "$ART/health.json" -w '%{http_code}' --max-time 3 "http://127.0.0.1:$NGINX_PORT/health" || true)
  [ "$code" = 200 ] && { healthy=1; break; }
  sleep 1
done
[ "$healthy" = 1 ] && ok "GET /health through nginx is 200" || fail "stack not healthy within 180 s (last: ${code:-none})"
timing "stack up + healthy"
napp=$(docker ps -q --filter "label=com.docker.compose.project=$P" --filter label=com.docker.compose.service=app --filter health=healthy | wc -l)
[ "$napp" = 4 ] && ok "4 app replicas healthy" || fail "healthy app replicas: $napp (want 4)"
"${SCALE[@]}" ps >"$ART/ps.txt" 2>&1; cat "$ART/ps.txt"
docker exec mcp-redis redis-cli INFO stats | grep '^total_connections_received:' >/dev/null && ok "docker exec mcp-redis redis-cli INFO stats" || fail "redis INFO stats"
[ "$(docker exec mcp-redis redis-cli CONFIG GET appendonly | tail -1)" = yes ] && ok "Redis AOF on" || fail "Redis AOF"
docker logs mcp-nginx 2>&1 | grep 'GET /health' >/dev/null && ok "docker logs mcp-nginx shows requests" || fail "nginx logs"
for _ in $(seq 1 60); do
  pool=$(curl -s --max-time 5 "http://127.0.0.1:$NGINX_PORT/stats/pool")
  node -e 'const p=JSON.parse(process.argv[1]); process.exit(p.cluster.totals.replicas===4&&p.cluster.totals.idle===4*Number(process.argv[2])?0:1)' "$pool" "$POOL_MIN_SIZE" 2>/dev/null && break
  sleep 1
done
node -e 'const p=JSON.parse(process.argv[1]); for (const k of ["idle","active","total","maxPoolSize","minPoolSize"]) if (typeof p[k]!=="number") process.exit(1); const c=p.cluster; if (c.totals.replicas!==4||c.replicas.length!==4||c.totals.idle!==4*Number(process.argv[2])||!c.replicas.every(r=>r.replica&&r.updatedMs>0)) process.exit(1)' "$pool" "$POOL_MIN_SIZE" \
  && ok "/stats/pool: guide fields + cluster of 4: $(cut -c1-200 <<<"$pool")" || fail "/stats/pool: $pool"
# Prometheus (monitoring profile) finds the 4 replicas through DNS by itself.
prom() { curl -s --max-time 5 "http://127.0.0.1:$PROMETHEUS_PORT/api/v1/$1"; }
up4=0
for _ in $(seq 1 120); do
  v=$(prom 'query?query=berth:replicas_up:count' | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{console.log(JSON.parse(s).data.result[0].value[1])}catch{console.log("")}})')
  [ "$v" = 4 ] && { up4=1; break; }
  sleep 1
done
[ "$up4" = 1 ] && ok "Prometheus scrapes all 4 replicas (dns_sd on app): berth:replicas_up:count = 4" || fail "Prometheus replicas up: '${v:-}'"
prom 'query?query=redis_memory_max_bytes' | grep -q '"value"' && ok "Prometheus sees Redis memory (redis exporter)" || fail "no redis_memory_max_bytes in Prometheus"
# (grep reads the whole stream: with `grep -q` and pipefail, the writer's SIGPIPE fails the check.)
"${SCALE[@]}" logs --no-color app >"$ART/app-logs.txt" 2>&1
for line in "\[ContainerPool\] Initializing with min=$POOL_MIN_SIZE, max=$POOL_MAX_SIZE" \
            "\[ContainerPool\] Warming up $POOL_MIN_SIZE containers" \
            "\[ContainerPool\] Initialized with $POOL_MIN_SIZE idle containers" '\[Phase 2\] Container pooling enabled'; do
  n=$(grep -c "$line" "$ART/app-logs.txt")
  [ "$n" -ge 4 ] && ok "logs app | grep ContainerPool: '$line' from $n replicas" || fail "'$line' in app logs $n times (want 4)"
done

# The seed's Artillery scenario (with callId captured) from this one host, through nginx: new
# sessions must spread over the 4 replicas (nginx no longer hashes the client address).
ready_counts() { local id; for id in $(docker ps -q --filter "label=com.docker.compose.project=$P" --filter label=com.docker.compose.service=app); do
  echo "$(docker inspect -f '{{.Config.Hostname}}' "$id") $(docker logs "$id" 2>&1 | grep -c ' ready (')"; done; }
ready_counts >"$ART/ready-before.txt"
if OUT_DIR="$ART/artillery" MAX_ERROR_RATE=${ARTILLERY_MAX_ERROR_RATE:-0.1} ARRIVAL_RATE=${ARTILLERY_RATE:-2} DURATION=${ARTILLERY_DURATION:-20} timeout 600 \
     bash bench/artillery/run.sh "http://127.0.0.1:$NGINX_PORT" >"$ART/artillery.log" 2>&1; then
  ok "artillery scenario through nginx: $(grep -iE 'error rate|completed' "$ART/artillery.log" | tr -s ' ' | head -2 | tr '\n' ';')"
else
  fail "artillery scenario: $(tail -5 "$ART/artillery.log")"
fi
cat "$ART/artillery.log"
ready_counts >"$ART/ready-after.txt"
split=$(awk 'NR==FNR { b[$1] = $2; next } { d = $2 - b[$1]; n[$1] = d; t += d } END { for (r in n) printf "%s %d %.0f\n", r, n[r], t ? 100 * n[r] / t : 0 }' \
        "$ART/ready-before.txt" "$ART/ready-after.txt" | sort)
echo "sessions per replica (replica, sessions, %):"; echo "$split" | tee "$ART/artillery-split.txt"
if [ "$(echo "$split" | wc -l)" = 4 ] && echo "$split" | awk '{ if ($3 < 15 || $3 > 35) bad = 1 } END { exit bad }'; then
  ok "Artillery sessions from one host spread over 4 replicas, each 15-35 %: $(echo "$split" | awk '{printf "%s%%, ", $3}')"
else fail "Artillery split: $(echo "$split" | tr '\n' ';')"; fi
timing "artillery"

# 3. tool flow through nginx, kill the serving replica, resume
BERTH_URL="http://127.0.0.1:$NGINX_PORT" KILL_CMD="bash $ROOT/tests/deploy/kill_replica.sh $P" \
  HISTORY_LEN_CMD="docker exec mcp-redis redis-cli LLEN" \
  timeout 600 node tests/deploy/flow.mjs | tee "$ART/flow-scale.log"
[ "${PIPESTATUS[0]}" = 0 ] && ok "flow.mjs through nginx (polling, websocket, kill + resume, history in Redis)" || fail "flow.mjs (scale)"
# The kill must show in Prometheus as an alert (dns_sd drops the dead target; the rule compares
# with the last 15 minutes).
fired=0
for _ in $(seq 1 150); do
  prom alerts | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{process.exit(JSON.parse(s).data.alerts.some(a=>a.labels.alertname==="BerthReplicaDown"&&a.state==="firing")?0:1)}catch{process.exit(1)}})' && { fired=1; break; }
  sleep 1
done
[ "$fired" = 1 ] && ok "Prometheus fires BerthReplicaDown after the kill" || fail "BerthReplicaDown did not fire within 150 s: $(prom alerts | cut -c1-300)"
# The killed replica's idle pool containers are orphans now: a live replica reaps them once the
# dead one's heartbeat has expired (containers a session still references are kept).
dead=$(sed -n 's/^kill_replica: .*(replica \(.*\))$/\1/p' "$ART/flow-scale.log" | head -1)
if [ -n "$dead" ]; then
  for _ in $(seq 1 120); do
    [ -z "$(docker ps -aq --filter label=berth.managed=true --filter "label=berth.replica=$dead")" ] && break
    sleep 1
  done
  left=$(docker ps -aq --filter label=berth.managed=true --filter "label=berth.replica=$dead" | wc -l)
  [ "$left" = 0 ] && ok "orphans of the killed replica $dead reaped by the live ones" || fail "$left orphan containers of $dead not reaped in 120 s"
else
  fail "no killed replica found in the flow log"
fi
timing "flow + kill/resume"


# 4. down: nothing left behind
record_replicas "$P" app
"${SCALE[@]}" down -v --remove-orphans -t 20 >"$ART/scale-down.log" 2>&1 && ok "scale stack down" || fail "scale stack down"
left=$(leftover_managed)
[ -z "$left" ] && ok "no berth.managed container left" || fail "berth.managed containers left: $left"
nets=$(docker network ls -q --filter "label=com.docker.compose.project=$P")
[ -z "$nets" ] && ok "no network of $P left" || fail "networks left: $nets"
timing "down"

# 5. rollback: single instance without the pool
PORT=$(free_port)
if PORT=$PORT ENABLE_CONTAINER_POOL=false REDIS_IMAGE=berth/redis:offline "${SINGLE[@]}" up -d >"$ART/single-up.log" 2>&1; then
  ok "single stack up with ENABLE_CONTAINER_POOL=false"; else fail "single up: $(tail -5 "$ART/single-up.log")"; fi
record_replicas "$P1" app
for _ in $(seq 1 120); do curl -sf --max-time 3 "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 1; done
BERTH_URL="http://127.0.0.1:$PORT" POLLING_CLIENTS=1 WS_CLIENTS=1 timeout 300 node tests/deploy/flow.mjs | tee "$ART/flow-single.log"
[ "${PIPESTATUS[0]}" = 0 ] && ok "rollback (pool off): tool flow" || fail "rollback tool flow"
timing "rollback flow"

# 6. bad input fails fast with one line naming the cause
bad() {  # bad NAME GREP ENV...: single berth container must exit and log a matching line
  local name=$1 pattern=$2; shift 2
  "${SINGLE[@]}" rm -sf app >/dev/null 2>&1
  env "$@" PORT="$PORT" REDIS_IMAGE=berth/redis:offline "${SINGLE[@]}" up -d --no-deps app >/dev/null 2>&1
  # docker logs on the container id: compose v1's own `logs` costs seconds per call.
  local id found=0 running=true
  id=$("${SINGLE[@]}" ps -q app)
  for _ in $(seq 1 60); do
    docker logs "$id" 2>&1 | grep -iE "$pattern" >/dev/null && { found=1; break; }
    sleep 1
  done
  [ "$found" = 1 ] && ok "$name: $(docker logs "$id" 2>&1 | grep -iE "$pattern" | head -1 | cut -c1-160)" \
    || fail "$name: no line matching /$pattern/"
  # Fails fast: the process exits (compose may restart it; it never stays up serving).
  for _ in $(seq 1 30); do
    running=$(docker inspect -f '{{.State.Running}} {{.RestartCount}}' "$id" 2>/dev/null)
    case "$running" in "true 0") sleep 1 ;; *) break ;; esac
  done
  case "$running" in "true 0") fail "$name: Berth still running" ;; *) ok "$name: Berth exited ($running)" ;; esac
}
bad "invalid pool setting" 'POOL_MIN_SIZE' POOL_MIN_SIZE=abc
bad "wrong Redis URL" 'redis.*(fail|error|unreach|resolv|refused|down)' REDIS_URL=redis://no-such-redis:6379
docker run -d --name berth-deploy-e2e-nosocket --label berth.test=1 -e REDIS_URL=redis://127.0.0.1:1 "${BERTH_IMAGE:-berth:latest}" >/dev/null 2>&1
ns=0
for _ in $(seq 1 60); do docker logs berth-deploy-e2e-nosocket 2>&1 | grep -i 'docker.sock\|docker socket' >/dev/null && { ns=1; break; }; sleep 1; done
for _ in $(seq 1 60); do [ "$(docker inspect -f '{{.State.Running}}' berth-deploy-e2e-nosocket 2>/dev/null)" = true ] || break; sleep 1; done
[ "$(docker inspect -f '{{.State.Running}}' berth-deploy-e2e-nosocket 2>/dev/null)" = false ] && ok "no Docker socket: Berth exits" || fail "no Docker socket: Berth still running after 60 s"
[ "$ns" = 1 ] && ok "no Docker socket: $(docker logs berth-deploy-e2e-nosocket 2>&1 | grep -i 'docker' | head -1 | cut -c1-160)" || fail "no socket: no clear line"
timing "bad input"
"${SINGLE[@]}" down -v --remove-orphans -t 20 >/dev/null 2>&1

# 7. the operator guide's commands, verbatim, on both stacks (port 3000, project berth-guide-e2e)
if [ "${BERTH_GUIDE_TESTS:-1}" = 1 ]; then
  BERTH_E2E_ARTIFACTS="$ART" timeout 2400 bash tests/deploy/guide_commands.sh 2>&1 | tee "$ART/guide.log"
  [ "${PIPESTATUS[0]}" = 0 ] && ok "guide commands: $(tail -1 "$ART/guide.log")" || fail "guide commands: $(grep FAILED "$ART/guide.log" | head -5 | tr '\n' ';')"
  timing "guide commands"
fi

echo "compose e2e total: $((SECONDS - t_start)) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
