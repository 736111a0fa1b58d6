#!/usr/bin/env bash
# Writes a small sample image (Debian's busybox-static, with its applets linked) as a
# docker-archive: make_sample_image.sh OUT.tar [NAME:TAG]
set -euo pipefail
out=$1
ref=${2:-imagefs/sample:busybox}
here=$(cd "$(dirname "$0")" && pwd)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,etc,root,tmp,proc,sys,dev}
chmod 1777 "$root/tmp"
cp /bin/busybox "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
printf 'NAME="imagefs sample"\nID=imagefs-sample\nPRETTY_NAME="imagefs sample (busybox)"\n' > "$root/etc/os-release"
find "$root" -exec touch -h -d '2024-01-01 00:00:00' {} +
python3 "$here/make_image_archive.py" "$root" "$out" "$ref"
