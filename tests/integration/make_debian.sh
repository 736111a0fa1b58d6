#!/usr/bin/env bash
# Builds (once; cached in $IMAGEFS_FIXTURE_CACHE) a Debian minbase image with
# debootstrap, as a docker-archive: make_debian.sh -> prints the archive's path.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${IMAGEFS_FIXTURE_CACHE:-/var/tmp/imagefs-fixtures}
out=$cache/debian-minbase-v2.tar
if [ ! -s "$out" ]; then
  mkdir -p "$cache"
  root=$(mktemp -d "$cache/debootstrap-XXXXXX")
  trap 'rm -rf "$root"' EXIT
  debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >&2
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  chmod 755 "$root"  # mktemp made it 0700; a root file system is 0755
  python3 "$here/../../scripts/make_image_archive.py" "$root" "$out.tmp" test/debian:minbase --cmd /bin/bash
  mv "$out.tmp" "$out"
fi
echo "$out"
