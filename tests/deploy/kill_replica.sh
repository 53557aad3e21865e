#!/usr/bin/env bash
# Used by flow.mjs as KILL_CMD: `docker kill` the app replica of compose project $1 whose
# hostname (Berth's default REPLICA_ID) is $VICTIM_REPLICA, i.e. the one nginx routes this
# client address to. Fails if no such container exists.
set -euo pipefail
project=$1
for id in $(docker ps -q --filter "label=com.docker.compose.project=$project" --filter "label=com.docker.compose.service=app"); do
  if [ "$(docker inspect -f '{{.Config.Hostname}}' "$id")" = "${VICTIM_REPLICA:?}" ]; then
    echo "kill_replica: docker kill $id (replica $VICTIM_REPLICA)"
    docker kill "$id" >/dev/null
    exit 0
  fi
done
echo "kill_replica: no app container of $project has hostname $VICTIM_REPLICA" >&2
exit 1
