#!/usr/bin/env bash
# Keeps the deployment files in sync with the variables Berth reads (the setters() table of
# src/core/config.cpp): .env.example must list each exactly once (as NAME= or, for variables
# that must stay unset by default, "# NAME="), and no other; both compose files must pass each
# one to the gateway, except the ones the compose files deliberately leave out (REPLICA_ID and
# ROUTE_ADDRESS: each replica keeps its hostname and its own address), with the same default as
# .env.example (`${NAME:-value}`), so `docker compose exec app env` shows what Berth uses; the
# fixed ones (HOST, PORT, DOCKER_HOST, STATIC_DIR, CLIENT_BUNDLE_DIR) and REDIS_URL (the compose
# service name) excepted, and TRUSTED_PROXIES in the scale file (nginx's network). Prints 'N passed, N failed'.
set -uo pipefail
cd "$(dirname "$0")/../.."
passed=0 failed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
fail() { echo "FAILED: $*"; failed=$((failed + 1)); }

known=$(sed -n '/setters() {/,/^}/p' src/core/config.cpp | grep -oE '^ *\{"[A-Z][A-Z0-9_]*"' | grep -oE '[A-Z][A-Z0-9_]*' | sort)
[ "$(echo "$known" | wc -l)" -ge 10 ] || { fail "could not read the setters() table"; echo "$passed passed, $failed failed"; exit 1; }
listed=$(grep -oE '^(# )?[A-Z][A-Z0-9_]*=' .env.example | sed 's/^# //; s/=$//' | sort)
dups=$(echo "$listed" | uniq -d)
[ -z "$dups" ] && ok ".env.example lists each variable once" || fail ".env.example duplicates: $dups"
missing=$(comm -23 <(echo "$known") <(echo "$listed" | sort -u))
extra=$(comm -13 <(echo "$known") <(echo "$listed" | sort -u))
[ -z "$missing" ] && ok ".env.example has all $(echo "$known" | wc -l) variables of config.cpp" || fail ".env.example misses: $(echo $missing)"
[ -z "$extra" ] && ok ".env.example has no unknown variable" || fail ".env.example has unknown: $(echo $extra)"
# Every line that sets a value must be preceded by a comment (its one-line meaning).
nodoc=$(awk '/^[A-Z][A-Z0-9_]*=/ { if (prev !~ /^#/) print $0 } { prev = $0 }' .env.example)
[ -z "$nodoc" ] && ok ".env.example documents every variable" || fail "undocumented: $nodoc"

for f in docker-compose.yml docker-compose.scale.yml; do
  passed_vars=$(sed -n '/^x-berth-environment:/,/^services:/p' "$f" | grep -oE '^  [A-Z][A-Z0-9_]*:' | tr -d ' :' | sort)
  miss=$(comm -23 <(echo "$known" | grep -vxE 'REPLICA_ID|ROUTE_ADDRESS') <(echo "$passed_vars"))
  unk=$(comm -13 <(echo "$known") <(echo "$passed_vars"))
  [ -z "$miss" ] && ok "$f passes every variable to Berth" || fail "$f does not pass: $(echo $miss)"
  [ -z "$unk" ] && ok "$f passes no unknown variable" || fail "$f passes unknown: $(echo $unk)"
  differ=""
  while IFS= read -r line; do
    name=${line%%=*} value=${line#*=}
    case "$name" in HOST|PORT|DOCKER_HOST|STATIC_DIR|CLIENT_BUNDLE_DIR|REDIS_URL|REPLICA_ID|ROUTE_ADDRESS) continue ;; esac
    # The scale stack is reached only through nginx: it believes X-Forwarded-For from its network.
    [ "$f:$name" = docker-compose.scale.yml:TRUSTED_PROXIES ] && continue
    want="  $name: \${$name:-$value}"
    grep -qxF "$want" <(sed -n '/^x-berth-environment:/,/^services:/p' "$f") || differ+=" $name"
  done < <(grep -E '^[A-Z][A-Z0-9_]*=' .env.example)
  [ -z "$differ" ] && ok "$f defaults equal .env.example's values" || fail "$f default differs from .env.example for:$differ"
  grep -q '^ *ulimits:' "$f" && fail "$f sets ulimits (hosts whose dockerd grants less refuse them)" || ok "$f demands no ulimits"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
