#!/usr/bin/env bash
# What the CLI may touch outside and inside its store: `export -o` writes what it is told
# and never removes what it did not create; only commands that add images make a store,
# and only in a new or empty directory; a store is its owner's alone.
source "$(dirname "$0")/lib.sh"

bash "$TESTS_DIR/make_fixtures.sh" "$SCRATCH/fx" >/dev/null
fx=$SCRATCH/fx
# A listing with types, modes and mtimes: "left as it was" means this did not change.
snapshot() { find "$1" -printf '%p %y %m %T@ %s\n' 2>/dev/null | sort; }

# ---- #20: a path that holds no store is never made one by a command that only reads.
mkdir -p "$SCRATCH/empty" "$SCRATCH/project/src"
echo 'int main() {}' > "$SCRATCH/project/src/main.c"
before_empty=$(snapshot "$SCRATCH/empty"); before_project=$(snapshot "$SCRATCH/project")
for cmd in "images" "images -a" "layers" "inspect x" "tag x y" "untag y" "rm x" "prune" "export x --rootfs -o $SCRATCH/out.tar"; do
  for where in missing empty project; do
    run "$IMAGEFS" --store "$SCRATCH/$where" $cmd
    check_eq "$cmd on a $where directory fails" 1 "$rc"
  done
  check_contains "$cmd says there is no store" "no store at $SCRATCH/missing" \
    "$("$IMAGEFS" --store "$SCRATCH/missing" $cmd 2>&1 || true)"
done
check_eq "the missing path is still missing" "no" "$([ -e "$SCRATCH/missing" ] && echo yes || echo no)"
check_eq "the empty directory is as it was" "$before_empty" "$(snapshot "$SCRATCH/empty")"
check_eq "the project directory is as it was" "$before_project" "$(snapshot "$SCRATCH/project")"
check_eq "no output file was made" "no" "$([ -e "$SCRATCH/out.tar" ] && echo yes || echo no)"
run "$IMAGEFS" --store "$SCRATCH/project" load -q "$fx/docker.tar"
check_eq "load into a non-store directory is refused" 1 "$rc"
check_contains "and says what to do" "choose an empty or new directory" "$out"
check_eq "the project directory is still as it was" "$before_project" "$(snapshot "$SCRATCH/project")"
run "$IMAGEFS" --store /etc images
check_contains "/etc is not a store" "/etc is not an imagefs store" "$out"
check_eq "nothing written into /etc" "" "$(ls -d /etc/VERSION /etc/write.lock /etc/diffs 2>/dev/null || true)"

run "$IMAGEFS" --store "$SCRATCH/empty" load -q "$fx/docker.tar"; check_eq "load into an empty directory" 0 "$rc"
run "$IMAGEFS" --store "$SCRATCH/new/deeper" load -q "$fx/docker.tar"; check_eq "load into a new path" 0 "$rc"
run "$IMAGEFS" --store "$SCRATCH/new/deeper" images; check_contains "and it is a store now" "example/img" "$out"
echo 'imagefs-store 2' > "$SCRATCH/empty/VERSION"
before_v2=$(snapshot "$SCRATCH/empty")
run "$IMAGEFS" --store "$SCRATCH/empty" images; check_eq "an unknown store version is refused" 1 "$rc"
check_contains "naming both versions" "format version 2; this imagefs reads format version 1" "$out"
run "$IMAGEFS" --store "$SCRATCH/empty" load -q "$fx/docker.tar"; check_eq "load too refuses it" 1 "$rc"
check_eq "and nothing is upgraded" "$before_v2" "$(snapshot "$SCRATCH/empty")"

# ---- #18: a store is its owner's alone.
store=$SCRATCH/new/deeper
check_eq "a new store is 0700" "700" "$(stat -c %a "$store")"
check_eq "nothing in it is open to group or others" "" "$(find "$store" -perm /077 -printf '%p %m\n')"
check_eq "a store made in an empty directory is 0700 too" "700" "$(stat -c %a "$SCRATCH/empty")"
blob=$(find "$store/diffs" -name layer.tar -print -quit)
run setpriv --reuid=65534 --regid=65534 --clear-groups sh -c 'cat "$1" >/dev/null' _ "$blob"
check_eq "nobody cannot read a layer blob" 1 "$rc"
run setpriv --reuid=65534 --regid=65534 --clear-groups find "$store"
check_contains "nobody cannot even list the store" "Permission denied" "$out"
chmod 755 "$SCRATCH/new" "$store"; chmod 755 "$store/diffs" "$store/diffs"/* ; chmod 444 "$blob"
run setpriv --reuid=65534 --regid=65534 --clear-groups sh -c 'cat "$1" >/dev/null' _ "$blob"
check_eq "(with the store opened by hand, nobody could)" 0 "$rc"
run "$IMAGEFS" --store "$store" images
check_eq "a store open to others still works" 0 "$rc"
check_contains "with a warning that says how to fix it" "chmod 700 $store" "$out"
chmod 777 "$store"
run "$IMAGEFS" --store "$store" images
check_eq "a store others may write to is refused" 1 "$rc"
check_contains "saying why and how to fix it" "writable by other users (mode 0777)" "$out"
chmod 700 "$store"
run "$IMAGEFS" --store "$store" images
check_eq "fixed, it opens without a word" "" "$(grep -i warn <<<"$out" || true)"

# ---- #19: export -o writes in place what is not a regular file and never removes it.
export IMAGEFS_STORE=$store
mknod "$SCRATCH/cdev" c 1 3 && chmod 640 "$SCRATCH/cdev"
run "$IMAGEFS" export example/img:1 --rootfs -o "$SCRATCH/cdev"
check_eq "export onto a character device" 0 "$rc"
check_eq "the device is still there, unchanged" "character special file 640 1,3" \
  "$(stat -c '%F %a %t,%T' "$SCRATCH/cdev")"
run "$IMAGEFS" export example/img:1 --rootfs -o /dev/null
check_eq "export -o /dev/null" 0 "$rc"
check_eq "/dev/null is still /dev/null" "character special file 666 1,3" "$(stat -c '%F %a %t,%T' /dev/null)"
want_list=$("$IMAGEFS" export example/img:1 --rootfs | tar -tf - | sort)
mkfifo -m 600 "$SCRATCH/fifo"
(tar -tf - < "$SCRATCH/fifo" | sort > "$SCRATCH/fifo.list") &
reader=$!
run "$IMAGEFS" export example/img:1 --rootfs -o "$SCRATCH/fifo"
wait "$reader"
check_eq "export onto a FIFO with a reader" 0 "$rc"
check_eq "the reader got the whole tar" "$want_list" "$(cat "$SCRATCH/fifo.list")"
check_eq "the FIFO is still there" "fifo 600" "$(stat -c '%F %a' "$SCRATCH/fifo")"
"$IMAGEFS" export example/img:1 --rootfs -o /proc/self/fd/1 > "$SCRATCH/via-proc.tar"
check_eq "-o /proc/self/fd/1 writes standard output" "$want_list" "$(tar -tf "$SCRATCH/via-proc.tar" | sort)"
check_eq "-o /dev/stdout into a pipe" "$want_list" "$("$IMAGEFS" export example/img:1 --rootfs -o /dev/stdout | tar -tf - | sort)"
check_eq "-o - is standard output" "$want_list" "$("$IMAGEFS" export example/img:1 --rootfs -o - | tar -tf - | sort)"

echo old > "$SCRATCH/target.tar" && chmod 604 "$SCRATCH/target.tar"
ln -s target.tar "$SCRATCH/link.tar"
run "$IMAGEFS" export example/img:1 --rootfs -o "$SCRATCH/link.tar"
check_eq "export through a symlink" 0 "$rc"
check_eq "the link stays a link" "target.tar" "$(readlink "$SCRATCH/link.tar")"
check_eq "its target holds the tar" "$want_list" "$(tar -tf "$SCRATCH/target.tar" | sort)"
check_eq "and keeps its mode" "604" "$(stat -c %a "$SCRATCH/target.tar")"
mkdir "$SCRATCH/adir"
run "$IMAGEFS" export example/img:1 --rootfs -o "$SCRATCH/adir"
check_eq "export onto a directory fails" 1 "$rc"
check_eq "saying so" "imagefs: export: $SCRATCH/adir: is a directory" "$out"
check_eq "the directory stays" "directory" "$(stat -c %F "$SCRATCH/adir")"
run "$IMAGEFS" export example/img:1 --rootfs -o "$SCRATCH/nowhere/x.tar"
check_contains "a missing directory is named" "$SCRATCH/nowhere/x.tar: cannot create a file in $SCRATCH/nowhere" "$out"
check_eq "no stray temporary files" "" "$(find "$SCRATCH" -maxdepth 1 -name '.*imagefs-*')"

# An interrupted export leaves the old file whole: SIGKILL (temporary file left beside
# it, never renamed) and SIGTERM (temporary file removed too).
mkdir -p "$SCRATCH/bigroot/data"
head -c 400M /dev/zero > "$SCRATCH/bigroot/data/zeros"
python3 "$TESTS_DIR/../../scripts/make_image_archive.py" "$SCRATCH/bigroot" "$SCRATCH/big.tar" test/big:1 >/dev/null
rm -rf "$SCRATCH/bigroot"
"$IMAGEFS" load -q "$SCRATCH/big.tar" >/dev/null && rm -f "$SCRATCH/big.tar"
for sig in KILL TERM; do
  echo "precious $sig" > "$SCRATCH/keep.tar"
  find "$SCRATCH" -maxdepth 1 -name '.keep.tar.imagefs-*' -delete  # SIGKILL's, from the round before
  "$IMAGEFS" export test/big:1 --rootfs -o "$SCRATCH/keep.tar" &
  exporter=$!
  for _ in $(seq 1 500); do
    tmp=$(find "$SCRATCH" -maxdepth 1 -name '.keep.tar.imagefs-*' -size +1M -print -quit)
    [ -n "$tmp" ] && break
    sleep 0.01
  done
  check_eq "SIG$sig: the export was writing its temporary file" "yes" "$([ -n "$tmp" ] && echo yes || echo no)"
  kill -"$sig" "$exporter"; wait "$exporter" 2>/dev/null || true
  check_eq "SIG$sig mid-write leaves the old file intact" "precious $sig" "$(cat "$SCRATCH/keep.tar")"
  if [ "$sig" = TERM ]; then
    check_eq "SIGTERM removed its temporary file" "" "$(find "$SCRATCH" -maxdepth 1 -name '.keep.tar.imagefs-*')"
  else
    check_eq "SIGKILL leaves it (nothing can remove it), never renamed" "1" \
      "$(find "$SCRATCH" -maxdepth 1 -name '.keep.tar.imagefs-*' | wc -l)"
  fi
done
finish
