#!/usr/bin/env bash
# `imagefs check`: a sound store is sound (offline and beside a running mount); each kind
# of damage, made on purpose in a copy of the store, is reported naming the object, and
# `--repair` removes exactly what is broken or orphaned, after which every image left
# mounts, lists without EIO and exports.
source "$(dirname "$0")/lib.sh"
source "$TESTS_DIR/mount_lib.sh"

bash "$TESTS_DIR/make_fixtures.sh" "$SCRATCH/fx" >/dev/null
mkdir -p "$SCRATCH/other/etc" && echo other > "$SCRATCH/other/etc/other"
python3 "$TESTS_DIR/../../scripts/make_image_archive.py" "$SCRATCH/other" "$SCRATCH/other.tar" other:1
base=$SCRATCH/base
export IMAGEFS_STORE=$base
for a in fx/docker.tar fx/legacy.tar other.tar; do "$IMAGEFS" load -q "$SCRATCH/$a" >/dev/null; done
id_of() { "$IMAGEFS" inspect "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Id"][7:])'; }
img=$(id_of example/img:1)
other=$(id_of other:1)
# The top layer of example/img:1 (not shared with other:1).
top_diff=$("$IMAGEFS" inspect example/img:1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["RootFS"]["Layers"][-1][7:])')
top_chain=$("$IMAGEFS" inspect example/img:1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["ChainIDs"][-1][7:])')

run "$IMAGEFS" check; check_eq "a sound store checks clean" 0 "$rc"
check_contains "it says what it checked" "checked 4 images, 3 layers, 3 diffs" "$out"
check_contains "and that the store is sound" "the store is sound" "$out"
run "$IMAGEFS" check --json; check_eq "--json on a sound store" 0 "$rc"
check_eq "--json is JSON" "True" "$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["clean"])' "$out")"

# Beside a running mount: sound, and what running work may look like is not judged.
m=$SCRATCH/mnt
start_mount "$m"
run "$IMAGEFS" check; check_eq "sound beside a running mount" 0 "$rc"
check_contains "says what it did not judge" "another process uses the store" "$out"
stop_mount "$m" "$MOUNT_PID"

# every_image_serves STORE: each image left mounts, lists without EIO and exports.
every_image_serves() {
  local name
  start_mount "$m"
  for name in $(ls "$IMAGEFS_STORE/images"); do
    if find "$m/images/$name/rootfs" -printf '%p %s\n' > /dev/null 2> "$SCRATCH/find.err" &&
       cat $(find "$m/images/$name/rootfs" -type f -readable) > /dev/null 2>> "$SCRATCH/find.err" &&
       "$IMAGEFS" export --rootfs "$name" -o "$SCRATCH/export.tar" && tar -tf "$SCRATCH/export.tar" > /dev/null; then
      echo "ok: $1: image ${name:0:12} serves and exports"
    else
      fail "$1: image ${name:0:12} does not serve: $(head -n 3 "$SCRATCH/find.err")"
    fi
  done
  stop_mount "$m" "$MOUNT_PID"
}

# damage NAME COMMAND EXPECT_PROBLEM EXPECT_REMOVED [KEPT_IMAGE]: in a copy of the store.
n=0
damage() {
  local what=$1 cmd=$2 problem=$3 removed=$4 kept=${5:-$other}
  n=$((n + 1))
  export IMAGEFS_STORE=$SCRATCH/store-$n
  cp -a "$base" "$IMAGEFS_STORE"
  (cd "$IMAGEFS_STORE" && eval "$cmd")
  run "$IMAGEFS" check; check_eq "$what: check fails" 1 "$rc"
  check_contains "$what: the problem is named" "$problem" "$out"
  run "$IMAGEFS" check --repair; check_eq "$what: --repair leaves a sound store" 0 "$rc"
  check_contains "$what: says what it removed" "removed: $removed" "$out"
  run "$IMAGEFS" check; check_eq "$what: sound after the repair" 0 "$rc"
  run "$IMAGEFS" inspect "$kept"; check_eq "$what: a sound image stays" 0 "$rc"
  every_image_serves "$what"
}

damage "a diff's bytes changed" \
  "printf 'X' | dd of=diffs/$top_diff/layer.tar bs=1 seek=600 conv=notrunc status=none" \
  "diff sha256:$top_diff: layer.tar hashes to" "image $img"
damage "a diff cut short" "truncate -s 1024 diffs/$top_diff/layer.tar" \
  "diff sha256:$top_diff" "image $img"
damage "a diff's index gone" "rm diffs/$top_diff/index" "its index does not read" "image $img"
damage "a layer record garbled" "echo '{' > layers/$top_chain/layer.json" \
  "layer $top_chain" "image $img"
damage "an image's config changed" "sed -i 's/amd64/arm64/' images/$img/config.json" \
  "image $img: its config hashes to" "image $img"
damage "a tag points at nothing" \
  "sed -i 's/$other/$(printf 'f%.0s' $(seq 64))/' tags.json" "tag docker.io/library/other:1" \
  "tag docker.io/library/other:1" "$img"
damage "an image record gone (its layers orphaned)" "rm -rf images/$other" \
  "no image uses it" "leftovers of interrupted work" "$img"
damage "leftovers of a crash" \
  "mkdir -p tmp/load-x cache/lazy && touch tmp/junk cache/lazy/$(printf 'b%.0s' $(seq 64))" \
  "temporary file of interrupted work" "leftovers of interrupted work"

finish
