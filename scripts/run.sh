#!/usr/bin/env bash
# The main job: set up, build, and mount the default store at ./mnt in the foreground.
# An empty store first gets a small sample image (Debian's busybox-static), so there is
# something to ls and chroot into. Stop with Ctrl-C or `fusermount3 -u mnt`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh >/dev/null
imagefs=build/fusefs/imagefs
if [ -z "$("$imagefs" images -a --format json 2>/dev/null)" ]; then  # no store yet, or empty
  sample=$(mktemp --suffix=.tar)
  trap 'rm -f "$sample"' EXIT
  scripts/make_sample_image.sh "$sample"
  "$imagefs" load -q "$sample"
fi
mkdir -p mnt
cat <<'MSG'
imagefs: mounting the store at ./mnt (stop with Ctrl-C or `fusermount3 -u mnt`). Try:
  ls mnt/images mnt/tags/docker.io/imagefs/sample/busybox
  chroot mnt/tags/docker.io/imagefs/sample/busybox/rootfs /bin/sh
  cp mybackup.tar mnt/import/        # load a docker-save or OCI tarball
MSG
exec "$imagefs" mount mnt "$@"
