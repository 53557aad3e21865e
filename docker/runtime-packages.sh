#!/bin/sh
# Prints the Debian packages that hold the shared libraries BINARY links (ldd -> dpkg -S), one per
# line, so the runtime image installs exactly what the build linked. -dev packages are never printed
# (they hold no .so.N files). Used inside docker/Dockerfile and on the host for prebuilt binaries.
# Usage: sh docker/runtime-packages.sh BINARY
set -eu
ldd "$1" | awk '/=> \// { print $3 }' | sort -u | while read -r lib; do
  dpkg -S "*/$(basename "$(dirname "$lib")")/$(basename "$lib")" 2>/dev/null | cut -d: -f1 | tr ',' '\n' | sed 's/ //g' || true
done | sed '/-dev$/d' | sort -u
