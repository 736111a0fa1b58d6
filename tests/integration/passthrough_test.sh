#!/usr/bin/env bash
# FUSE passthrough of large files: a large file opened a second time gets a plain copy in
# the store once no served open of it remains; later opens are passed through to it.
# Contents, mmap, opens held across the switch, damaged copies, prune, turning it off.
source "$(dirname "$0")/lib.sh"
export MOUNT_OPENS=daemon  # passthrough is set up at open
source "$(dirname "$0")/mount_lib.sh"

root=$SCRATCH/root
mkdir -p "$root/data"
head -c $((5 << 20)) /dev/urandom > "$root/data/big.bin"
head -c $((1 << 20)) /dev/urandom > "$root/data/exact.bin"  # exactly the threshold
head -c $((3 << 20)) /dev/urandom > "$root/data/held.bin"
head -c 100000 /dev/urandom > "$root/data/small.bin"
ln "$root/data/big.bin" "$root/data/link.bin"
cp "$(readlink -f /usr/bin/python3)" "$root/data/python3"  # an ELF program of several MiB (not a PATH shim)
chmod 0640 "$root/data/big.bin"
python3 "$TESTS_DIR/../../scripts/make_image_archive.py" "$root" "$SCRATCH/img.tar" pt/img:1
"$IMAGEFS" load -q "$SCRATCH/img.tar" >/dev/null
diff_id=$("$IMAGEFS" inspect pt/img:1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["RootFS"]["Layers"][0][7:])')
copies=$IMAGEFS_STORE/diffs/$diff_id/files

m=$SCRATCH/mnt
IMAGEFS_TEST_COPY_DELAY_MS=500 start_mount "$m" --passthrough-min 1M  # a copy in progress lasts long enough to open the file
data=$m/tags/docker.io/pt/img/1/rootfs/data
event() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["events"].get(sys.argv[2], 0))' "$m/.imagefs/stats" "$1"; }
wait_copies() {  # wait_copies N: until the daemon has written N copies
  local i
  for i in $(seq 1 100); do [ "$(event passthrough_copies)" -ge "$1" ] && return 0; sleep 0.1; done
  return 1
}

# ---- The first two opens are served by the daemon; the second close starts the copy.
check_eq "first read of a large file" "" "$(cmp "$data/big.bin" "$root/data/big.bin" 2>&1)"
sleep 0.7
check_eq "a file read once is not copied" "absent" "$([ -e "$copies" ] && echo present || echo absent)"
check_eq "second read" "" "$(cmp "$data/big.bin" "$root/data/big.bin" 2>&1)"
check_eq "no passthrough before the copy exists" 0 "$(event passthrough_opens)"
wait_copies 1 && echo "ok: the copy was written" || fail "no copy written: $(cat "$m/.imagefs/stats")"
offset=$(ls "$copies" 2>/dev/null | head -1)
check_eq "the copy holds the file's bytes" "$(sha256sum < "$root/data/big.bin")" "$(sha256sum < "$copies/$offset")"
check_eq "the copy is read-only, its owner's alone" "400" "$(stat -c %a "$copies/$offset")"

# ---- Later opens pass through, with the same bytes at every offset.
check_eq "third read" "" "$(cmp "$data/big.bin" "$root/data/big.bin" 2>&1)"
check_eq "it was passed through" 1 "$(event passthrough_opens)"
check_eq "a hardlink shares the copy" "" "$(cmp "$data/link.bin" "$root/data/big.bin" 2>&1)"
check_eq "no second copy for the hardlink" 1 "$(ls "$copies" | wc -l)"
check_eq "a read at an offset" "$(tail -c +3000001 "$root/data/big.bin" | head -c 70000 | sha256sum)" \
  "$(dd if="$data/big.bin" bs=1 skip=3000000 count=70000 iflag=skip_bytes,count_bytes status=none | sha256sum)"
check_eq "mmap reads the same bytes" "$(sha256sum < "$root/data/big.bin" | cut -c1-64)" \
  "$(python3 -c 'import hashlib,mmap,sys; f=open(sys.argv[1],"rb"); print(hashlib.sha256(mmap.mmap(f.fileno(),0,prot=mmap.PROT_READ)).hexdigest())' "$data/big.bin")"
for i in 1 2; do "$data/python3" -c 'print(1)' >/dev/null; done
wait_copies 2 || fail "no copy of the program"
opens=$(event passthrough_opens)
check_eq "a program runs from its passthrough copy (mmap'd, executed)" "passed through" \
  "$("$data/python3" -c 'print("passed through")')"
check_eq "it was passed through" "$((opens + 1))" "$(event passthrough_opens)"
check_eq "attributes are the image's" "5242880 640 2" "$(stat -c '%s %a %h' "$data/big.bin")"
run setpriv --reuid=nobody --regid=nogroup --clear-groups cat "$data/big.bin"
check_eq "permissions still apply (0640 root file, as nobody)" 1 "$rc"

# ---- Small files are always served by the daemon.
cmp -s "$data/small.bin" "$root/data/small.bin" && cmp -s "$data/small.bin" "$root/data/small.bin" \
  && echo "ok: small file reads" || fail "small file differs"
cat "$data/exact.bin" >/dev/null
check_eq "the threshold is inclusive" "" "$(cmp "$data/exact.bin" "$root/data/exact.bin" 2>&1)"
wait_copies 3 || fail "no copy of the 1 MiB file"
check_eq "no copy of a small file" 3 "$(ls "$copies" | wc -l)"

# ---- A file opened while its copy is being written stays served: new opens keep being
# served until that handle is closed (the kernel refuses to mix the two), then pass through.
cat "$data/held.bin" >/dev/null
cat "$data/held.bin" >/dev/null  # this close queues the copy (held back 500 ms)
exec 3<"$data/held.bin"
wait_copies 4 || fail "no copy of held.bin"
opens=$(event passthrough_opens)
check_eq "opened again while held" "" "$(cmp "$data/held.bin" "$root/data/held.bin" 2>&1)"
check_eq "not passed through while held" "$opens" "$(event passthrough_opens)"
check_eq "the held descriptor still reads" "$(head -c 4096 "$root/data/held.bin" | sha256sum)" "$(head -c 4096 <&3 | sha256sum)"
exec 3<&-
sleep 0.2  # RELEASE reaches the daemon after close() returns
check_eq "after close" "" "$(cmp "$data/held.bin" "$root/data/held.bin" 2>&1)"
check_eq "passed through after close" "$((opens + 1))" "$(event passthrough_opens)"
stop_mount "$m" "$MOUNT_PID"

# ---- A damaged copy is noticed and written again.
truncate -s 1000 "$copies/$offset"
start_mount "$m" --passthrough-min 1M
check_eq "read with a truncated copy" "" "$(cmp "$data/big.bin" "$root/data/big.bin" 2>&1)"
check_eq "not passed through" 0 "$(event passthrough_opens)"
cat "$data/big.bin" >/dev/null
wait_copies 1 || fail "the copy was not written again"
check_eq "written again" "$(stat -c %s "$root/data/big.bin")" "$(stat -c %s "$copies/$offset")"
check_eq "read after" "" "$(cmp "$data/big.bin" "$root/data/big.bin" 2>&1)"
check_eq "passed through again" 1 "$(event passthrough_opens)"
stop_mount "$m" "$MOUNT_PID"

# ---- prune takes the copies; --passthrough-min 0 makes none.
run "$IMAGEFS" prune
check_contains "prune reports the space" "Total reclaimed space:" "$out"
check_eq "prune removed the copies" "absent" "$([ -e "$copies" ] && echo present || echo absent)"
start_mount "$m" --passthrough-min 0
cmp -s "$data/big.bin" "$root/data/big.bin" && cmp -s "$data/big.bin" "$root/data/big.bin" \
  && echo "ok: reads with passthrough off" || fail "read with passthrough off differs"
sleep 0.5
check_eq "passthrough off: no copy" "absent" "$([ -e "$copies" ] && echo present || echo absent)"
check_eq "passthrough off: no passthrough" 0 "$(event passthrough_opens)"
stop_mount "$m" "$MOUNT_PID"

# ---- A store on overlayfs (as inside a container): the kernel refuses its files as
# backing (stacking depth), found before any copy is written; everything is served.
ov=$SCRATCH/ov
mkdir -p "$ov/lower" "$ov/upper" "$ov/work" "$ov/merged"
mount -t overlay overlay -o "lowerdir=$ov/lower,upperdir=$ov/upper,workdir=$ov/work" "$ov/merged"
cleanup_hooks+=("umount -l '$ov/merged'")
main_store=$IMAGEFS_STORE
export IMAGEFS_STORE=$ov/merged/store
"$IMAGEFS" load -q "$SCRATCH/img.tar" >/dev/null
MOUNT_LOG_LEVEL=info start_mount "$m" --passthrough-min 1M
for i in 1 2 3; do cmp "$data/big.bin" "$root/data/big.bin" || fail "read $i on an overlayfs store differs"; done
sleep 0.5
check_eq "overlayfs store: no copy written" "absent" "$([ -e "$IMAGEFS_STORE/diffs/$diff_id/files" ] && echo present || echo absent)"
check_eq "overlayfs store: no passthrough" 0 "$(event passthrough_opens)"
check_contains "overlayfs store: the log says why" "passthrough off: the kernel refused a backing file" "$(cat "$SCRATCH/daemon.log")"
stop_mount "$m" "$MOUNT_PID"
export IMAGEFS_STORE=$main_store

# ---- Copies go with their layer.
start_mount "$m" --passthrough-min 1M
cat "$data/big.bin" >/dev/null
cat "$data/big.bin" >/dev/null
wait_copies 1 || fail "no copy"
stop_mount "$m" "$MOUNT_PID"
"$IMAGEFS" rm pt/img:1 >/dev/null
check_eq "rm of the image removes its copies" "absent" "$([ -e "$IMAGEFS_STORE/diffs/$diff_id" ] && echo present || echo absent)"
finish
