#!/usr/bin/env bash
# Builds the test images with umoci (several layers: a whiteout, an opaque directory,
# a hardlink, a symlink, odd modes) and writes them with skopeo as docker-archive and
# oci-archive, plus a legacy v1 docker-save made by make_legacy.py. Usage:
#   make_fixtures.sh OUTDIR
# OUTDIR gets: oci/ (layout, tag "img"), docker.tar, oci.tar, legacy.tar.
set -euo pipefail
out=$1
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
cd "$out"
umoci init --layout oci >/dev/null
umoci new --image oci:img >/dev/null
umoci unpack --image oci:img bundle >/dev/null
r=bundle/rootfs
repack() { umoci repack --refresh-bundle --image oci:img bundle >/dev/null; }

mkdir -p $r/etc/opaque $r/bin $r/usr/share/doc
echo one > $r/etc/one
echo keep > $r/etc/keep
echo gone > $r/etc/opaque/gone
echo also > $r/etc/opaque/also
printf '#!/bin/sh\necho hi\n' > $r/bin/tool && chmod 4755 $r/bin/tool
ln $r/etc/one $r/bin/hardlink
ln -s ../etc/one $r/bin/symlink
echo secret > $r/etc/shadowed && chmod 000 $r/etc/shadowed
echo private > $r/etc/private && chmod 600 $r/etc/private
setfattr -n security.capability -v 0sAQAAAgAgAAAAAAAAAAAAAAAAAAA= $r/bin/tool
mkdir -p $r/tmp && chmod 1777 $r/tmp
touch -h -d '2001-02-03 04:05:06.789' $r/etc/keep
repack

rm $r/etc/one                     # a whiteout (the hardlink keeps the data)
rm -rf $r/etc/opaque && mkdir $r/etc/opaque && echo new > $r/etc/opaque/new   # an opaque dir
echo changed > $r/etc/keep
head -c 200000 /dev/urandom > $r/usr/share/doc/random.bin
repack

skopeo copy -q oci:oci:img docker-archive:docker.tar:example/img:1
skopeo copy -q oci:oci:img oci-archive:oci.tar:example/img:2
python3 "$here/make_legacy.py" docker.tar legacy.tar example/legacy:v1
rm -rf bundle
