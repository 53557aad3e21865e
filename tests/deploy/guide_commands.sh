#!/usr/bin/env bash
# Runs the operator guide's commands (../shared/guide/PHASE2_DEPLOYMENT_GUIDE.md) as written,
# against the stack each one addresses, and checks that each shows what the guide says:
#   A. Option 1 (docker-compose.yml, the guide's .env: pool on, min 10, max 100): down, up --build,
#      `logs app | grep "ContainerPool"` (the four lines, in order), `exec app ls -la
#      /var/run/docker.sock`, `exec app env | grep ...`, /stats/pool, `docker exec mcp-redis
#      redis-cli INFO memory|ping|MONITOR`, `docker stats --no-stream`, `logs -f app`, and a user
#      over MAX_REQUESTS_PER_USER whose refusal shows as "Too many concurrent requests";
#   B. rollback "From Container Pooling Only" (ENABLE_CONTAINER_POOL=false, down, up -d);
#   C. Option 2 (docker-compose.scale.yml, min 5, max 50): down, up --build, ps (1 Redis, 4 apps,
#      nginx, placeholder), curl /health, `docker logs mcp-nginx -f`, `logs app -f`, INFO stats,
#      `docker exec mcp-nginx cat /var/log/nginx/access.log | wc -l`, /stats/pool with the cluster,
#      the troubleshooting commands (ps app, ps redis, restart redis, restart);
#   D. rollback "From Horizontal Scaling" (scale down, single up): Redis data survives.
# `-f` (follow) commands run under `timeout` (long enough for Compose v1 to start on a busy host). `docker` is a wrapper first on PATH (so `timeout
# docker ...` uses it too): `docker compose ...` runs Compose v2 when present and Debian's
# `docker-compose --compatibility` (v1) otherwise, adding -T to `exec` when stdin is not a
# terminal (v1 does not detect that itself); anything else goes to the real docker.
# Deviations, all in the environment, none in a command: LLM_PROVIDER=local (no real key here),
# REDIS_IMAGE/NGINX_IMAGE = the offline images (no registry), small CONTAINER_MEMORY, and
# COMPOSE_PROJECT_NAME=berth-guide-e2e so cleanup never touches another stack. The guide's
# `.env` edits are made as exported variables (compose reads both; the shell wins), so a
# developer's own .env is never overwritten. The Artillery section is bench/artillery (the
# guide's file lacks the callId capture and runs 6 minutes at 100 users/s).
# Needs: port 3000 free (waits up to GUIDE_PORT_WAIT=600 s for it), images from
# scripts/build-images.sh, BERTH_PREBUILT_DIR=<cmake build dir> (so `--build` packages those
# binaries instead of compiling for 20 minutes), node + socket.io-client (tests/e2e).
# Prints 'N passed, N failed'; exit 0 only if all passed. Cleans up on every exit path.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
ART=${BERTH_E2E_ARTIFACTS:-$ROOT/tests/e2e/artifacts/deploy}/guide
mkdir -p "$ART"
passed=0 failed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
fail() { echo "FAILED: $*"; failed=$((failed + 1)); }
n=0

shim=$(mktemp -d /tmp/berth-guide-shim.XXXXXX)
real_docker=$(command -v docker)
cat >"$shim/docker" <<EOF
#!/usr/bin/env bash
if [ "\${1:-}" = compose ] && ! "$real_docker" compose version >/dev/null 2>&1; then
  shift
  # v1 wants a subcommand's options before its arguments (\`logs -f app\`); v2 also takes
  # \`logs app -f\`, as the guide writes it.
  args=() sub="" opts=() pos=() prev=""
  for a in "\$@"; do
    if [ -z "\$sub" ]; then
      args+=("\$a")
      case "\$prev" in -f|--file|-p|--project-name|--profile|--env-file) prev=""; continue ;; esac
      case "\$a" in
        -f|--file|-p|--project-name|--profile|--env-file) prev=\$a ;;
        -*) ;;
        *) sub=\$a; [ "\$a" = exec ] && [ ! -t 0 ] && args+=(-T) ;;
      esac
    elif [ "\$sub" = logs ] && [ "\${a#-}" != "\$a" ]; then opts+=("\$a")
    else pos+=("\$a"); fi
  done
  exec docker-compose --compatibility "\${args[@]}" "\${opts[@]}" "\${pos[@]}"
fi
exec "$real_docker" "\$@"
EOF
chmod +x "$shim/docker"
export PATH="$shim:$PATH"

# Start from the defaults: nothing a calling script exported (pool sizes, REDIS_MAXMEMORY, ...)
# may leak into what the guide's commands show.
for v in $(grep -oE '^(# )?[A-Z][A-Z0-9_]*=' .env.example | sed 's/^# //; s/=$//') REDIS_MAXMEMORY NGINX_PORT \
         PROMETHEUS_PORT APP_REPLICAS; do [ "$v" = SANDBOX_IMAGE ] || unset "$v"; done
export COMPOSE_PROJECT_NAME=berth-guide-e2e
export REDIS_IMAGE=${REDIS_IMAGE:-berth/redis:offline} NGINX_IMAGE=${NGINX_IMAGE:-berth/nginx:offline}
export LLM_PROVIDER=local CONTAINER_MEMORY=${CONTAINER_MEMORY:-128m} APP_MEMORY_LIMIT=${APP_MEMORY_LIMIT:-512m}
export ORPHAN_REAP_INTERVAL_MS=5000 UPSTREAM_CHECK_INTERVAL=1
[ -f .env ] && echo "note: ./.env exists; the variables below override it"

# run NAME COMMAND: one guide command, output in $ART/NN.txt and in $out
run() {
  n=$((n + 1))
  local f; f=$(printf '%s/%02d.txt' "$ART" "$n")
  printf '$ %s\n' "$2" >"$f"
  out=$(bash -c "$2" 2>&1)
  rc=$?
  printf '%s\n' "$out" >>"$f"
}
# expect NAME COMMAND EGREP: the command succeeds and its output matches
expect() {
  run "$1" "$2"
  if [ "$rc" = 0 ] && grep -Eq -- "$3" <<<"$out"; then ok "$1: \`$2\` -> $(grep -Em1 -- "$3" <<<"$out" | cut -c1-120)"
  else fail "$1: \`$2\` (rc $rc) did not show /$3/: $(tail -3 <<<"$out" | tr '\n' '|' | cut -c1-300)"; fi
}
wait_health() {  # wait_health SECONDS: GET localhost:3000/health is 200
  local i code=""
  for i in $(seq 1 "$1"); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 http://localhost:3000/health || true)
    [ "$code" = 200 ] && return 0
    sleep 1
  done
  echo "health: last code ${code:-none}"; return 1
}
wait_logs() {  # wait_logs SECONDS EGREP COUNT [FILE...]: app logs show EGREP at least COUNT times
  local i
  for i in $(seq 1 "$1"); do
    [ "$(docker compose "${@:4}" logs --no-color app 2>&1 | grep -Ec -- "$2")" -ge "$3" ] && return 0
    sleep 1
  done
  return 1
}
replicas_file=$ART/replica-ids
: >"$replicas_file"
record_replicas() {
  local id
  for id in $(command docker ps -aq --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" --filter label=com.docker.compose.service=app); do
    command docker inspect -f '{{.Config.Hostname}}' "$id" >>"$replicas_file"
  done
  sort -u -o "$replicas_file" "$replicas_file"
}
prebuilt_staged=0
cleanup() {
  record_replicas
  docker compose -f docker-compose.scale.yml logs --no-color >"$ART/stack.log" 2>&1 || true
  docker compose -f docker-compose.scale.yml down -v --remove-orphans -t 20 >/dev/null 2>&1 || true
  docker compose down -v --remove-orphans -t 20 >/dev/null 2>&1 || true
  local r ids=""
  while read -r r; do
    [ -n "$r" ] && ids+=" $(command docker ps -aq --filter label=berth.managed=true --filter "label=berth.replica=$r")"
  done <"$replicas_file"
  [ -n "${ids// /}" ] && command docker rm -f $ids >/dev/null 2>&1
  [ "$prebuilt_staged" = 1 ] && rm -rf docker/prebuilt
  rm -rf "$shim"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The guide's URLs are localhost:3000 and its containers mcp-redis / mcp-nginx: wait for them.
for i in $(seq 1 "${GUIDE_PORT_WAIT:-600}"); do
  busy=$(ss -Hltn 'sport = :3000' | wc -l)
  owner=$(command docker ps -q --filter name='^mcp-(redis|nginx)$' | wc -l)
  [ "$busy" = 0 ] && [ "$owner" = 0 ] && break
  [ $((i % 30)) = 1 ] && echo "waiting for port 3000 / mcp-redis / mcp-nginx to be free ..."
  sleep 1
done
if [ "$busy" != 0 ] || [ "$owner" != 0 ]; then fail "port 3000 or mcp-redis/mcp-nginx still busy"; echo "$passed passed, $failed failed"; exit 1; fi

# `up --build` packages the tested binaries (docker/Dockerfile and docker/sandbox/Dockerfile
# take docker/prebuilt/ when present) instead of compiling Berth inside the image.
if [ -n "${BERTH_PREBUILT_DIR:-}" ]; then
  mkdir -p docker/prebuilt && prebuilt_staged=1
  strip --strip-unneeded -o docker/prebuilt/berth "$BERTH_PREBUILT_DIR/src/app/berth" &&
    strip --strip-unneeded -o docker/prebuilt/berth-sandbox "$BERTH_PREBUILT_DIR/src/sandbox/berth-sandbox" &&
    sh docker/runtime-packages.sh docker/prebuilt/berth >docker/prebuilt/runtime-packages || { fail "staging prebuilt binaries"; exit 1; }
fi

# ---- A. Option 1: container pooling only ------------------------------------------------------
export ENABLE_CONTAINER_POOL=true POOL_MIN_SIZE=10 POOL_MAX_SIZE=100 POOL_IDLE_TIMEOUT_MS=900000
expect "A1 restart (down)" "docker compose down" '.*'
expect "A2 restart (up --build)" "docker compose up -d --build" '.*'
record_replicas
wait_health 180 && ok "single stack healthy on localhost:3000" || fail "single stack not healthy"
wait_logs 120 'Initialized with 10 idle containers' 1 || fail "pool did not finish warming within 120 s"
expect "A3 verify pool" 'docker compose logs app | grep "ContainerPool"' 'Initialized with 10 idle containers'
if awk '/\[Phase 2\] Container pooling enabled/ && s == 0 { s = 1 } /Initializing with min=10, max=100/ && s == 1 { s = 2 }
        /Warming up 10 containers\.\.\./ && s == 2 { s = 3 } /Initialized with 10 idle containers/ && s == 3 { s = 4 }
        END { exit s == 4 ? 0 : 1 }' <<<"$out"; then ok "the guide's four ContainerPool lines, in its order"
else fail "ContainerPool lines: $(tr '\n' '|' <<<"$out" | cut -c1-400)"; fi
expect "A4 socket mounted" "docker compose exec app ls -la /var/run/docker.sock" '^s.* /var/run/docker.sock$'
expect "A5 pool env" "docker compose exec app env | grep ENABLE_CONTAINER_POOL" '^ENABLE_CONTAINER_POOL=true$'
expect "A6 Redis URL" "docker compose exec app env | grep REDIS_URL" '^REDIS_URL=redis://redis:6379$'
run "A7 env has no blanks" "docker compose exec app env"
blanks=$(grep -E '^[A-Z][A-Z0-9_]*=$' <<<"$out" | tr -d '=' | grep -vxE 'CORS_ORIGINS|LLM_MODEL|GEMINI_API_KEY|OPENAI_API_KEY|ANTHROPIC_API_KEY|AUTH_JWT_SECRET|AUTH_JWT_AUDIENCE|AUTH_JWT_ISSUER|TRUSTED_PROXIES|LLM_CA_FILE|MCP_CONFIG_FILE|DIAGNOSTICS_NAMESPACE|REDIS_SENTINELS|REDIS_SENTINEL_PASSWORD|REDIS_PASSWORD|SANDBOX_RUNTIME' | tr '\n' ' ')
[ "$rc" = 0 ] && [ -z "$blanks" ] && grep -q '^POOL_MIN_SIZE=10$' <<<"$out" && grep -q '^MAX_REQUESTS_PER_USER=5$' <<<"$out" \
  && ok "exec app env: real values (only empty-by-default secrets/options are empty)" || fail "exec app env blanks: $blanks"
expect "A8 pool stats" "curl -s http://localhost:3000/stats/pool" '"maxPoolSize":100'
# The cluster part is what the replica last published (its heartbeat, every ~3 s): right after
# the warm-up it may still show the pool half warm, so it gets a few beats to catch up.
pool_ok() { node -e 'const p=JSON.parse(process.argv[1]); const ok=p.idle===10&&p.total===10&&p.active===0&&p.minPoolSize===10&&p.cluster&&p.cluster.replicas.length===1&&p.cluster.totals.idle===10; process.exit(ok?0:1)' "$1" 2>/dev/null; }
for _ in $(seq 1 20); do pool_ok "$out" && break; sleep 1; out=$(curl -s http://localhost:3000/stats/pool); done
pool_ok "$out" && ok "/stats/pool: idle 10, total 10, cluster of 1" || fail "/stats/pool: $out"
expect "A9 Redis memory" "docker exec mcp-redis redis-cli INFO memory" '^maxmemory_policy:noeviction'
grep -q '^maxmemory_human:2.00G' <<<"$out" && ok "Redis maxmemory 2 GB (the guide's figure)" || fail "maxmemory: $(grep maxmemory <<<"$out" | tr '\n' ' ')"
expect "A10 Redis ping" "docker exec mcp-redis redis-cli ping" '^PONG$'
( for t in 2 2 2; do sleep $t; curl -s http://localhost:3000/stats/pool >/dev/null; done ) &
# The heartbeat (every ~3 s) and /stats/pool both touch berth:replica-stats.
expect "A11 Redis MONITOR (6 s)" "timeout 6 docker exec mcp-redis redis-cli MONITOR; true" '"(HGETALL|HSET)" "berth:replica-stats"'
wait
expect "A12 container memory" "docker stats --no-stream" 'mcp-redis'
expect "A13 app logs (-f, 20 s)" "timeout 20 docker compose logs -f app; true" 'Berth listening on 0.0.0.0:3000'
grep -q 'open files limit: ' <<<"$out" && ok "Berth logs its open-files limit ($(grep -om1 'open files limit: [^)]*)' <<<"$out"))" || fail "no open-files line"
run "A14 user over the limit" "BERTH_URL=http://localhost:3000 timeout 120 node tests/deploy/too_many.mjs"
[ "$rc" = 0 ] && ok "MAX_REQUESTS_PER_USER: $(grep acks <<<"$out")" || fail "too_many.mjs: $(tail -3 <<<"$out" | tr '\n' '|')"
expect "A15 refusals in the logs" 'docker compose logs app | grep "Too many concurrent requests"' 'Too many concurrent requests'

# ---- B. rollback: from container pooling only --------------------------------------------------
export ENABLE_CONTAINER_POOL=false
expect "B1 rollback (down)" "docker compose down" '.*'
expect "B2 rollback (up -d)" "docker compose up -d" '.*'
record_replicas
wait_health 180 && ok "pool-off stack healthy" || fail "pool-off stack not healthy"
expect "B3 pool off" "docker compose exec app env | grep ENABLE_CONTAINER_POOL" '^ENABLE_CONTAINER_POOL=false$'
wait_logs 60 'Container pooling disabled' 1
expect "B4 pool off in logs" 'docker compose logs app | grep "ContainerPool"' 'Initializing with min=10'
expect "B5 no warm containers" "curl -s http://localhost:3000/stats/pool" '"total":0'
run "B6 tool flow with the pool off" "BERTH_URL=http://localhost:3000 POLLING_CLIENTS=1 WS_CLIENTS=1 timeout 300 node tests/deploy/flow.mjs"
[ "$rc" = 0 ] && ok "tool flow with the pool off" || fail "pool-off flow: $(grep FAILED <<<"$out" | head -3 | tr '\n' '|')"

# ---- C. Option 2: full horizontal scaling --------------------------------------------------------
export ENABLE_CONTAINER_POOL=true POOL_MIN_SIZE=5 POOL_MAX_SIZE=50 POOL_IDLE_TIMEOUT_MS=900000
expect "C0 Redis probe key (for the rollback)" "docker exec mcp-redis redis-cli SET berth-guide-probe kept" '^OK$'
expect "C1 stop current deployment" "docker compose down" '.*'
expect "C2 deploy with scaling" "docker compose -f docker-compose.scale.yml up -d --build" '.*'
record_replicas
wait_health 240 && ok "scale stack healthy through nginx on localhost:3000" || fail "scale stack not healthy"
for i in $(seq 1 120); do
  [ "$(command docker ps -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" --filter label=com.docker.compose.service=app --filter health=healthy | wc -l)" = 4 ] && break
  sleep 1
done
expect "C3 verify deployment" "docker compose -f docker-compose.scale.yml ps" 'mcp-nginx'
for want in 'mcp-redis.*Up' 'mcp-nginx.*Up' 'mcp-placeholder|placeholder.*Exit'; do
  grep -Eq "$want" <<<"$out" && ok "ps shows /$want/" || fail "ps lacks /$want/"
done
napp=$(grep -Ec '_app_[0-9]+|-app-[0-9]+' <<<"$out")
[ "$napp" = 4 ] && ok "ps shows 4 app instances" || fail "ps shows $napp app instances"
expect "C4 nginx routes" "curl http://localhost:3000/health" '"status":"ok"'
for _ in 1 2 3 4 5 6 7 8; do curl -s http://localhost:3000/health >/dev/null; done
expect "C5 nginx logs (-f, 5 s)" "timeout 5 docker logs mcp-nginx -f; true" 'GET /health HTTP/1.1" 200'
run "C5b no sid in nginx logs" "docker logs mcp-nginx 2>&1"
grep -q 'sid=' <<<"$out" && fail "nginx log shows a sid" || ok "nginx log carries no sid or query string"
wait_logs 120 'Initialized with 5 idle containers' 4 -f docker-compose.scale.yml || fail "4 replicas did not warm 5 each within 120 s"
expect "C6 all app logs (-f, 25 s)" "timeout 25 docker compose -f docker-compose.scale.yml logs app -f; true" 'Initialized with 5 idle containers'
[ "$(grep -c 'Initialized with 5 idle containers' <<<"$out")" -ge 4 ] && ok "logs app -f shows all 4 replicas warming 5" || fail "warm lines: $(grep -c 'Initialized with 5' <<<"$out")"
expect "C7 Redis stats" "docker exec mcp-redis redis-cli INFO stats" '^total_connections_received:'
expect "C8 Redis memory" "docker exec mcp-redis redis-cli INFO memory" '^maxmemory_policy:noeviction'
run "C9 nginx connection count" "docker exec mcp-nginx cat /var/log/nginx/access.log | wc -l"
before=$out
for _ in 1 2 3 4 5; do curl -s http://localhost:3000/health >/dev/null; done
run "C9b nginx connection count again" "docker exec mcp-nginx cat /var/log/nginx/access.log | wc -l"
[ "$rc" = 0 ] && [ "${before:-0}" -gt 0 ] && [ "$out" -ge $((before + 5)) ] && ok "access.log line count $before -> $out after 5 requests" || fail "access.log count: '$before' -> '$out'"
for i in $(seq 1 30); do
  run "C10 pool stats" "curl -s http://localhost:3000/stats/pool"
  node -e 'const p=JSON.parse(process.argv[1]); process.exit(p.cluster.totals.replicas===4&&p.cluster.totals.idle===20?0:1)' "$out" 2>/dev/null && break
  sleep 1
done
node -e 'const p=JSON.parse(process.argv[1]); const ok=p.maxPoolSize===50&&p.minPoolSize===5&&typeof p.idle==="number"&&p.cluster.totals.replicas===4&&p.cluster.totals.idle===20&&p.cluster.totals.maxPoolSize===200&&p.cluster.replicas.every(r=>r.replica&&r.updatedMs>0&&r.idle===5); process.exit(ok?0:1)' "$out" \
  && ok "/stats/pool: this replica's fields + cluster of 4 (idle 20, max 200)" || fail "/stats/pool cluster: $(cut -c1-400 <<<"$out")"
expect "C11 socket (scale)" "docker compose exec app ls -la /var/run/docker.sock" 'docker.sock'
expect "C12 Redis URL (scale)" "docker compose exec app env | grep REDIS_URL" '^REDIS_URL=redis://mcp-redis:6379$'
expect "C13 apps running" "docker compose -f docker-compose.scale.yml ps app" 'healthy|Up'
expect "C14 app logs" "docker compose -f docker-compose.scale.yml logs app" 'Berth listening'
expect "C15 Redis container status" "docker compose -f docker-compose.scale.yml ps redis" 'mcp-redis.*Up'
expect "C16 restart Redis" "docker compose -f docker-compose.scale.yml restart redis" '.*'
for i in $(seq 1 60); do command docker exec mcp-redis redis-cli ping 2>/dev/null | grep -q PONG && break; sleep 1; done
expect "C17 Redis ping after restart" "docker exec mcp-redis redis-cli ping" '^PONG$'
wait_health 60 && ok "replicas healthy again after the Redis restart" || fail "unhealthy after Redis restart"
expect "C18 restart services" "docker compose -f docker-compose.scale.yml restart" '.*'
wait_health 240 && ok "scale stack healthy after restart" || fail "not healthy after restart"
expect "C19 nginx logs" "docker logs mcp-nginx" 'watch-upstreams: upstreams'

# ---- D. rollback: from horizontal scaling ----------------------------------------------------------
record_replicas
expect "D1 stop scaled deployment" "docker compose -f docker-compose.scale.yml down" '.*'
expect "D2 start single instance" "docker compose up -d" '.*'
record_replicas
wait_health 180 && ok "single instance back on localhost:3000" || fail "single instance not healthy after the rollback"
expect "D3 Redis data kept over the rollback" "docker exec mcp-redis redis-cli GET berth-guide-probe" '^kept$'
run "D4 tool flow after the rollback" "BERTH_URL=http://localhost:3000 POLLING_CLIENTS=1 WS_CLIENTS=1 timeout 300 node tests/deploy/flow.mjs"
[ "$rc" = 0 ] && ok "tool flow on the single instance after the rollback" || fail "flow after rollback: $(grep FAILED <<<"$out" | head -3 | tr '\n' '|')"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
