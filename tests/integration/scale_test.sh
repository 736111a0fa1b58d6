#!/usr/bin/env bash
# Many entries, a directory of thousands, and saved trees, checked for correctness (the
# speed is scripts/bench.sh's): 50,000 empty files, 5,000 in each of 10 directories.
source "$(dirname "$0")/lib.sh"
source "$TESTS_DIR/mount_lib.sh"

python3 "$TESTS_DIR/../../scripts/make_scale_image.py" "$SCRATCH/scale.tar" scale/t:1 50000 10
mkdir -p "$SCRATCH/native"
tar -xOf "$SCRATCH/scale.tar" --wildcards '*/layer.tar' | tar -x -C "$SCRATCH/native"
# Directory sizes are the file system's own: sizes of files only.
listing() { (cd "$1" && { find . -mindepth 1 -printf '%p %y %m %T@ %U %G\n'; find . -type f -printf '%p size %s\n'; } | LC_ALL=C sort); }
listing "$SCRATCH/native" > "$SCRATCH/native.list"

run "$IMAGEFS" load -q "$SCRATCH/scale.tar"; check_eq "load 50,000 entries" 0 "$rc"
chain=$("$IMAGEFS" inspect scale/t:1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["ChainIDs"][-1][7:])')
tree_file=$IMAGEFS_STORE/layers/$chain/merged.tree
check_eq "load saved the merged tree" "yes" "$([ -s "$tree_file" ] && echo yes || echo no)"

m=$SCRATCH/mnt
start_mount "$m"
root=$m/tags/docker.io/scale/t/1/rootfs
check_eq "every entry, type, mode, size, mtime and owner, from the saved tree" "" \
  "$(diff "$SCRATCH/native.list" <(listing "$root"))"
check_eq "a directory of 5,000 entries lists whole" 5000 "$(ls "$root/d0003" | wc -l)"
check_eq "ls -l of it (readdirplus past its first reply)" 5001 "$(ls -l "$root/d0003" | wc -l)"
check_eq "a name in its middle" "f0017500" "$(stat -c %n "$root/d0003/f0017500" | xargs basename)"
check_eq "a missing one" "no" "$([ -e "$root/d0003/f9999999" ] && echo yes || echo no)"
stop_mount "$m" "$MOUNT_PID"

# A saved tree that does not match (cut short here) is built again and saved again.
good=$(sha256sum < "$tree_file")
head -c 1000 "$tree_file" > "$SCRATCH/cut" && cat "$SCRATCH/cut" > "$tree_file"
start_mount "$m"
check_eq "a damaged tree file: the mount builds the tree" "" "$(diff "$SCRATCH/native.list" <(listing "$root"))"
check_eq "and saves it whole again" "$good" "$(sha256sum < "$tree_file")"
stop_mount "$m" "$MOUNT_PID"
rm "$tree_file"
start_mount "$m"
check_eq "no tree file: built on first use" "$(wc -l < "$SCRATCH/native.list")" "$(listing "$root" | wc -l)"
check_eq "and saved" "$good" "$(sha256sum < "$tree_file")"
stop_mount "$m" "$MOUNT_PID"
run "$IMAGEFS" rm scale/t:1
check_eq "rm takes the saved tree with the layer" "no" "$([ -e "$tree_file" ] && echo yes || echo no)"
finish
