#!/usr/bin/env bash
# Builds every image the compose files use, without any registry:
#   debian:bookworm-slim   scripts/make-base-image.sh (debootstrap + docker import; skipped if present)
#   berth/redis:offline    docker/redis/Dockerfile   (Debian's redis-server)
#   berth/nginx:offline    docker/nginx/Dockerfile   (Debian's nginx)
#   berth:latest           docker/Dockerfile         (berth + berth-sandbox, multi-stage)
#   berth-sandbox:latest   docker/sandbox/           (via scripts/build-sandbox-image.sh with the
#                                                     berth-sandbox binary taken from berth:latest)
#   berth/prometheus:latest, berth/redis-exporter:latest   docker/prometheus, docker/redis-exporter
#                                                     (Debian's packages; the `monitoring` profile)
# Usage: bash scripts/build-images.sh [STEP...]
#   STEP: base redis nginx berth sandbox prometheus redis-exporter (default: all)
# BERTH_PREBUILT_DIR=BUILD_DIR packages berth and berth-sandbox from that CMake build tree (built on
# this Debian 12 host) instead of compiling them in the image: what CI does with the binaries it
# has just tested (minutes instead of a second full build).
# Prints the time of each step; exits non-zero on the first failure. Logs: $BUILD_LOG_DIR
# (default /tmp/berth-image-builds).
set -euo pipefail
cd "$(dirname "$0")/.."
berth_image=${BERTH_IMAGE:-berth:latest}
sandbox_image=${SANDBOX_IMAGE:-berth-sandbox:latest}
logs=${BUILD_LOG_DIR:-/tmp/berth-image-builds}
mkdir -p "$logs"
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(base redis nginx berth sandbox prometheus redis-exporter)
summary=()

run_step() {  # run_step NAME COMMAND...: output to $logs/NAME.log, time recorded
  local name=$1; shift
  local t0=$SECONDS
  printf 'build-images: %-8s ... ' "$name"
  if "$@" >"$logs/$name.log" 2>&1; then
    echo "ok ($((SECONDS - t0)) s)"
    summary+=("$name $((SECONDS - t0))s")
  else
    echo "FAILED ($((SECONDS - t0)) s); last lines of $logs/$name.log:"
    tail -n 25 "$logs/$name.log" | sed 's/^/    /'
    exit 1
  fi
}

build_berth() {
  local prebuilt=docker/prebuilt
  rm -rf "$prebuilt"
  if [ -n "${BERTH_PREBUILT_DIR:-}" ]; then
    mkdir -p "$prebuilt"
    strip --strip-unneeded -o "$prebuilt/berth" "$BERTH_PREBUILT_DIR/src/app/berth" &&
      strip --strip-unneeded -o "$prebuilt/berth-sandbox" "$BERTH_PREBUILT_DIR/src/sandbox/berth-sandbox" &&
      sh docker/runtime-packages.sh "$prebuilt/berth" >"$prebuilt/runtime-packages" || { rm -rf "$prebuilt"; return 1; }
    echo "prebuilt from $BERTH_PREBUILT_DIR; runtime packages: $(tr '\n' ' ' <"$prebuilt/runtime-packages")"
  fi
  docker build -f docker/Dockerfile -t "$berth_image" .
  local rc=$?
  rm -rf "$prebuilt"
  return $rc
}

build_sandbox() {
  local tmp cid
  tmp=$(mktemp -d)
  cid=$(docker create "$berth_image")
  docker cp "$cid:/usr/local/bin/berth-sandbox" "$tmp/berth-sandbox" && docker rm "$cid" >/dev/null || {
    docker rm "$cid" >/dev/null 2>&1; rm -rf "$tmp"; return 1; }
  if [ -x scripts/build-sandbox-image.sh ] || [ -f scripts/build-sandbox-image.sh ]; then
    BERTH_SANDBOX_BIN="$tmp/berth-sandbox" sh scripts/build-sandbox-image.sh "$sandbox_image" || { rm -rf "$tmp"; return 1; }
  else
    docker build -t "$sandbox_image" -f docker/sandbox/Dockerfile . || { rm -rf "$tmp"; return 1; }
  fi
  rm -rf "$tmp"
}

for step in "${steps[@]}"; do
  case "$step" in
    base)    run_step base bash scripts/make-base-image.sh ;;
    redis)   run_step redis docker build -t berth/redis:offline docker/redis ;;
    nginx)   run_step nginx docker build -t berth/nginx:offline docker/nginx ;;
    berth)   run_step berth build_berth ;;
    sandbox) run_step sandbox build_sandbox ;;
    prometheus) run_step prometheus docker build -t berth/prometheus:latest docker/prometheus ;;
    redis-exporter) run_step redis-exporter docker build -t berth/redis-exporter:latest docker/redis-exporter ;;
    *) echo "build-images: unknown step '$step' (base redis nginx berth sandbox prometheus redis-exporter)" >&2; exit 2 ;;
  esac
done
echo "build-images: done: ${summary[*]}"
