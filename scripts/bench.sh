#!/usr/bin/env bash
# Benchmarks the mount against the same trees unpacked natively by `umoci unpack`, in one
# run on this machine, and prints a table of medians and ratios (native time / imagefs
# time: 1.0 is native speed, higher is faster). Data is made once and cached in
# $IMAGEFS_BENCH_DIR (default /var/tmp/imagefs-bench). Needs root (drop_caches, mount).
#   scripts/bench.sh [RUNS]     (BENCH_VERBOSE=1 also prints every timing)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
dir=${IMAGEFS_BENCH_DIR:-/var/tmp/imagefs-bench}
scripts/setup.sh
scripts/build.sh -DIMAGEFS_BUILD_TESTS=ON >/dev/null
imagefs=$PWD/build/fusefs/imagefs
export IMAGEFS_STORE=$dir/store
mkdir -p "$dir"

# ---- Data, once.
if [ ! -s "$dir/big.tar" ]; then
  echo "bench: making a 1 GiB file image" >&2
  rm -rf "$dir/big-root" && mkdir -p "$dir/big-root/data"
  head -c 1G /dev/urandom > "$dir/big-root/data/big.bin"
  python3 scripts/make_image_archive.py "$dir/big-root" "$dir/big.tar.tmp" bench/big:1
  rm -rf "$dir/big-root" && mv "$dir/big.tar.tmp" "$dir/big.tar"
fi
if [ ! -s "$dir/many.tar" ]; then
  echo "bench: making a 100,000-file, 60-layer image" >&2
  python3 scripts/make_many_files_image.py "$dir/many.tar.tmp" bench/many:1 100000 60
  mv "$dir/many.tar.tmp" "$dir/many.tar"
fi
for name in big many; do
  "$imagefs" inspect "bench/$name:1" >/dev/null 2>&1 || "$imagefs" load -q "$dir/$name.tar" >/dev/null
  if [ ! -d "$dir/native-$name/rootfs" ]; then
    echo "bench: umoci unpack of $name" >&2
    rm -rf "$dir/oci-$name" "$dir/native-$name"
    skopeo copy -q "docker-archive:$dir/$name.tar" "oci:$dir/oci-$name:img"
    umoci unpack --image "$dir/oci-$name:img" "$dir/native-$name" >/dev/null
    rm -rf "$dir/oci-$name"
  fi
done

# ---- The mounts: as users get it (large files passed through to a copy made on first
# open), and with passthrough off (every read served by the daemon).
mnt=$dir/mnt
served=$dir/mnt-served
mkdir -p "$mnt" "$served" 2>/dev/null || true
rm -rf "$IMAGEFS_STORE"/diffs/*/files  # copies from earlier runs: each run makes its own
"$imagefs" mount "$mnt" 2>"$dir/daemon.log" &
pid=$!
"$imagefs" mount --passthrough-min 0 "$served" 2>"$dir/daemon-served.log" &
served_pid=$!
trap 'fusermount3 -u -z "$mnt" 2>/dev/null || true; fusermount3 -u -z "$served" 2>/dev/null || true; kill "$pid" "$served_pid" 2>/dev/null || true; wait "$pid" "$served_pid" 2>/dev/null || true' EXIT
for m in "$mnt" "$served"; do
  for _ in $(seq 1 100); do awk -v m="$m" '$5 == m' /proc/self/mountinfo | grep -q . && break; sleep 0.1; done
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
seconds() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
# measure_pair cold|warm KEY FN NATIVE_PATH IMAGEFS_PATH: medians of $runs timings of FN on
# each path into result[KEY-native] and result[KEY-imagefs]. Runs alternate between the two,
# so that the machine's drift (a VM's neighbours, writeback) falls on both alike.
measure_pair() {
  local mode=$1 key=$2 fn=$3 native=$4 mounted=$5 native_times=() mounted_times=()
  sync; sleep 2  # let the previous workload's writeback and reclaim settle
  [ "$mode" = warm ] && { "$fn" "$native" >/dev/null; "$fn" "$mounted" >/dev/null; }  # warm-up
  for _ in $(seq 1 "$runs"); do
    [ "$mode" = cold ] && drop
    native_times+=("$(seconds "$fn" "$native")")
    [ "$mode" = cold ] && drop
    mounted_times+=("$(seconds "$fn" "$mounted")")
  done
  [ -n "${BENCH_VERBOSE:-}" ] && echo "$key native: ${native_times[*]} imagefs: ${mounted_times[*]}" >&2
  result[$key-native]=$(printf '%s\n' "${native_times[@]}" | median)
  result[$key-imagefs]=$(printf '%s\n' "${mounted_times[@]}" | median)
}
read_file() { cat "$1"; }
find_lstat() { find "$1" -ls; }

big_native=$dir/native-big/rootfs/data/big.bin
big_path=tags/docker.io/bench/big/1/rootfs/data/big.bin
big_mount=$mnt/$big_path
many_native=$dir/native-many/rootfs
many_mount=$mnt/tags/docker.io/bench/many/1/rootfs
cmp -s <(head -c 1M "$big_native") <(head -c 1M "$big_mount") || { echo "bench: the two trees differ" >&2; exit 1; }

# The first read ever of the big file (cold, served by the daemon from the layer blob);
# the second read's close starts its passthrough copy: the time until that is written.
declare -A result
copies() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["events"].get("passthrough_copies", 0))' "$mnt/.imagefs/stats"; }
drop
first_s=$(seconds read_file "$mnt/$big_path")
read_file "$mnt/$big_path" >/dev/null
t0=$(date +%s.%N)
for _ in $(seq 1 1200); do [ "$(copies)" -ge 1 ] && break; sleep 0.1; done
[ "$(copies)" -ge 1 ] || { echo "bench: no passthrough copy was made (see $dir/daemon.log)" >&2; exit 1; }
copy_s=$(echo "$(date +%s.%N) - $t0" | bc -l)

for mode in warm cold; do
  measure_pair $mode read-$mode read_file "$big_native" "$big_mount"
  measure_pair $mode served-$mode read_file "$big_native" "$served/$big_path"
  measure_pair $mode find-$mode find_lstat "$many_native" "$many_mount"
done
tree=$(build/tests/tools/tree_bench "$IMAGEFS_STORE" bench/many:1 "$runs")

echo
echo "imagefs bench, $(date -u +%Y-%m-%dT%H:%MZ): $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/ {print $2}') GiB, kernel $(uname -r)"
echo "median of $runs runs; ratio = native time / imagefs time (1.0 = native speed)"
echo "imagefs rows: large files are passed through to a plain copy in the store, made once a file is read twice;"
echo "\"passthrough off\" rows: every read served by the daemon (--passthrough-min 0)"
printf '%-44s %12s %12s %8s %s\n' "workload" "native s" "imagefs s" "ratio" "goal"
row() { printf '%-44s %12.3f %12.3f %8.2f %s\n' "$1" "${result[$2-native]}" "${result[$2-imagefs]}" \
        "$(echo "${result[$2-native]} / ${result[$2-imagefs]}" | bc -l)" "$3"; }
row "sequential read, 1 GiB file, warm cache" read-warm ">= 0.90"
row "sequential read, 1 GiB file, cold cache" read-cold ""
row "  the same, passthrough off, warm cache" served-warm ""
row "  the same, passthrough off, cold cache" served-cold ""
row "find -ls (lstat all), 100k files, warm" find-warm ">= 0.80"
row "find -ls (lstat all), 100k files, cold" find-cold ""
echo "merged tree of the 100k-file, 60-layer image: $tree"
echo "first read of the 1 GiB file, cold, served by the daemon: $(printf '%.3f' "$first_s") s" \
     "(native cold $(printf '%.3f' "${result[read-cold-native]}") s); its passthrough copy, started by the second read's close," \
     "written $(printf '%.1f' "$copy_s") s later"

# Time to the first file of a Debian image in a registry on 127.0.0.1: a lazy pull through
# the mount (mount, cat rootfs/etc/os-release, unmount) against skopeo copy + umoci unpack
# + cat of the same image. Each run starts from an empty store and an empty OCI layout.
debian=$(IMAGEFS_FIXTURE_CACHE=${IMAGEFS_FIXTURE_CACHE:-/var/tmp/imagefs-fixtures} tests/integration/make_debian.sh)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
reg=127.0.0.1:$port
cat > "$dir/registry.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $dir/registry}}
http: {addr: $reg}
YML
docker-registry serve "$dir/registry.yml" >"$dir/registry.log" 2>&1 &
reg_pid=$!
trap 'fusermount3 -u -z "$mnt" 2>/dev/null || true; fusermount3 -u -z "$served" 2>/dev/null || true; fusermount3 -u -z "$dir/lazy-mnt" 2>/dev/null || true; kill "$pid" "$served_pid" "$reg_pid" 2>/dev/null || true; wait "$pid" "$served_pid" "$reg_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -s -o /dev/null "http://$reg/v2/" && break; sleep 0.1; done
skopeo copy -q --dest-tls-verify=false "docker-archive:$debian" "docker://$reg/bench/debian:1"
lazy_first_file() {
  rm -rf "$dir/lazy-store"; mkdir -p "$dir/lazy-mnt"
  IMAGEFS_STORE=$dir/lazy-store "$imagefs" mount -d "$dir/lazy-mnt"
  cat "$dir/lazy-mnt/registry/$reg/bench/debian/1/rootfs/etc/os-release"
  fusermount3 -u "$dir/lazy-mnt"
}
peer_first_file() {
  rm -rf "$dir/peer" && mkdir -p "$dir/peer"
  skopeo copy -q --src-tls-verify=false "docker://$reg/bench/debian:1" "oci:$dir/peer/oci:img"
  umoci unpack --image "$dir/peer/oci:img" "$dir/peer/bundle" >/dev/null
  cat "$dir/peer/bundle/rootfs/etc/os-release"
}
lazy_first_file >/dev/null; peer_first_file >/dev/null  # warm-up: binaries, registry storage in page cache
lazy_s=$(for _ in $(seq 1 "$runs"); do seconds lazy_first_file; done | median)
peer_s=$(for _ in $(seq 1 "$runs"); do seconds peer_first_file; done | median)
rm -rf "$dir/peer" "$dir/lazy-store"
echo "first file of a Debian image from a registry on 127.0.0.1 ($(du -sh "$debian" | cut -f1) image): imagefs lazy pull ${lazy_s}s," \
     "skopeo copy + umoci unpack ${peer_s}s, ratio imagefs/peer $(printf '%.2f' "$(echo "$lazy_s / $peer_s" | bc -l)") (goal <= 0.30)"

# A store with 1,000 images: what a command pays to open it.
thousand=$dir/thousand-store
if [ ! -d "$thousand/images" ]; then
  python3 scripts/make_thousand_images.py "$dir/thousand.tar" 1000
  IMAGEFS_STORE=$thousand "$imagefs" load -q "$dir/thousand.tar" >/dev/null
fi
open_s=$(for _ in $(seq 1 "$runs"); do seconds env IMAGEFS_STORE="$thousand" "$imagefs" images; done | median)
rss=$( { IMAGEFS_STORE=$thousand /usr/bin/time -f %M "$imagefs" images >/dev/null; } 2>&1 | tail -1)
echo "imagefs images on a store of $(ls "$thousand/images" | wc -l) images: median ${open_s}s, max RSS ${rss} KiB"
