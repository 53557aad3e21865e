#!/usr/bin/env bash
# Makes debian:bookworm-slim locally when it cannot be pulled (no registry): debootstrap a minbase
# Debian 12 from the apt mirror this machine already uses, then `docker import` it.
#   bash scripts/make-base-image.sh            # skips if the image already exists
#   bash scripts/make-base-image.sh --force    # rebuilds it
# Needs root, debootstrap (apt-get install debootstrap) and a running dockerd. The mirror is read
# at run time from /etc/apt/sources.list.d/debian.sources (or /etc/apt/sources.list); override with
# BERTH_DEBIAN_MIRROR=URL. The tag can be changed with BASE_IMAGE=name:tag.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
image=${BASE_IMAGE:-debian:bookworm-slim}
suite=${BERTH_DEBIAN_SUITE:-bookworm}
force=0
[ "${1:-}" = "--force" ] && force=1
log() { printf 'make-base-image: %s\n' "$*"; }

if [ "$force" = 0 ] && docker image inspect "$image" >/dev/null 2>&1; then
  log "$image exists, skipping (use --force to rebuild)"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || { log "must run as root (debootstrap)"; exit 1; }
command -v debootstrap >/dev/null || { log "debootstrap missing: apt-get install debootstrap"; exit 1; }

# The first deb822 stanza that lists the plain suite (not -security/-updates), else sources.list.
mirror=${BERTH_DEBIAN_MIRROR:-}
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list.d/debian.sources ]; then
  mirror=$(awk -v suite="$suite" '
    /^[[:space:]]*$/ { if (uri != "" && ok) { print uri; exit } uri = ""; ok = 0; next }
    /^URIs:/   { uri = $2 }
    /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) ok = 1 }
    END        { if (uri != "" && ok) print uri }' /etc/apt/sources.list.d/debian.sources | head -n1)
fi
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
  mirror=$(awk -v suite="$suite" '$1 == "deb" && $3 == suite { print $2; exit }' /etc/apt/sources.list)
fi
[ -n "$mirror" ] || { log "no Debian mirror found in /etc/apt/sources.list.d/debian.sources; set BERTH_DEBIAN_MIRROR"; exit 1; }

work=$(mktemp -d /var/tmp/berth-base.XXXXXX)
cleanup() { rm -rf --one-file-system "$work"; }
trap cleanup EXIT INT TERM
root="$work/rootfs"

t0=$SECONDS
log "debootstrap --variant=minbase $suite (mirror from the host's apt sources)"
debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2; log "debootstrap failed"; exit 1; }
log "debootstrap took $((SECONDS - t0)) s"

# apt inside the image uses the same sources as the host (deb822 file when the host has one).
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  cp /etc/apt/sources.list.d/debian.sources "$root/etc/apt/sources.list.d/debian.sources"
  rm -f "$root/etc/apt/sources.list"
fi
# Slim like the official image: no docs/man/locales from later installs, no recommends, no caches.
cp "$here/docker/base/dpkg-nodoc.cfg" "$root/etc/dpkg/dpkg.cfg.d/docker-nodoc"
cp "$here/docker/base/apt-slim.conf" "$root/etc/apt/apt.conf.d/docker-slim"
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
       "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
       "$root"/var/lib/apt/lists/* "$root"/var/log/*.log "$root"/tmp/* "$root"/dev/*
printf '' >"$root/etc/hostname"
[ -e "$root/etc/machine-id" ] && : >"$root/etc/machine-id"

t1=$SECONDS
tar --numeric-owner -C "$root" -c . | docker import \
  -c 'CMD ["bash"]' -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -m "berth: debootstrap minbase $suite" - "$image" >/dev/null
log "docker import took $((SECONDS - t1)) s"
log "built $image ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}')) in $((SECONDS - t0)) s"
