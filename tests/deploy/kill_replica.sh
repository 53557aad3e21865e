#!/usr/bin/env bash
# Used by flow.mjs as KILL_CMD: `docker kill` the app replica of compose project $1 whose route
# key (first 8 hex of SHA-256("IP:3000"), the prefix of the Engine.IO sids it issues) is
# $VICTIM_ROUTE. Prints the replica's hostname (Berth's default REPLICA_ID). Fails if no such
# container exists.
set -euo pipefail
project=$1
for id in $(docker ps -q --filter "label=com.docker.compose.project=$project" --filter "label=com.docker.compose.service=app"); do
  for ip in $(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$id"); do
    if [ "$(printf '%s' "$ip:3000" | sha256sum | cut -c1-8)" = "${VICTIM_ROUTE:?}" ]; then
      echo "kill_replica: docker kill $id (replica $(docker inspect -f '{{.Config.Hostname}}' "$id"))"
      docker kill "$id" >/dev/null
      exit 0
    fi
  done
done
echo "kill_replica: no app container of $project has route key $VICTIM_ROUTE" >&2
exit 1
