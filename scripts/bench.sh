#!/usr/bin/env bash
# Benchmarks the mount against its peers on the same trees, in one run on this machine:
# native (the image unpacked by `umoci unpack`), imagefs, fuse-overlayfs and kernel
# overlayfs (both with the native tree as their lower layer). Prints medians and ratios
# (native time / system time: 1.0 is native speed, higher is faster) with the machine and
# its load. Within each run the systems take turns in a rotating order, so that a VM's
# drift falls on all of them alike. Data is made once and cached in $IMAGEFS_BENCH_DIR
# (default /var/tmp/imagefs-bench). Needs root (drop_caches, mounts).
#   scripts/bench.sh [RUNS]       BENCH_VERBOSE=1 prints every timing
#   BENCH_ONLY="files lookup memory big lazy lazyfiles store scale" picks sections (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
only=${BENCH_ONLY:-files lookup memory big lazy lazyfiles store scale}
dir=${IMAGEFS_BENCH_DIR:-/var/tmp/imagefs-bench}
scripts/setup.sh
for p in fuse-overlayfs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" >/dev/null
done
scripts/build.sh -DIMAGEFS_BUILD_TESTS=ON >/dev/null
imagefs=$PWD/build/fusefs/imagefs
export IMAGEFS_STORE=$dir/store
mkdir -p "$dir"
# Mounts an interrupted run left behind.
awk -v d="$dir/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" || true; done
want() { [[ " $only " == *" $1 "* ]]; }

# ---- Data, once: a 100k-file 60-layer image, Debian minbase, a 256 MiB file.
if [ ! -s "$dir/many.tar" ]; then
  echo "bench: making a 100,000-file, 60-layer image" >&2
  python3 scripts/make_many_files_image.py "$dir/many.tar.tmp" bench/many:1 100000 60
  mv "$dir/many.tar.tmp" "$dir/many.tar"
fi
if [ ! -s "$dir/big.tar" ]; then
  echo "bench: making a 256 MiB file image" >&2
  rm -rf "$dir/big-root" && mkdir -p "$dir/big-root/data"
  head -c 256M /dev/urandom > "$dir/big-root/data/big.bin"
  python3 scripts/make_image_archive.py "$dir/big-root" "$dir/big.tar.tmp" bench/big:1
  rm -rf "$dir/big-root" && mv "$dir/big.tar.tmp" "$dir/big.tar"
fi
debian=$(IMAGEFS_FIXTURE_CACHE=${IMAGEFS_FIXTURE_CACHE:-/var/tmp/imagefs-fixtures} tests/integration/make_debian.sh)
ln -sf "$debian" "$dir/debian.tar"
declare -A ref=([many]=bench/many:1 [debian]=test/debian:minbase [big]=bench/big:1)
declare -A tagpath=([many]=tags/docker.io/bench/many/1 [debian]=tags/docker.io/test/debian/minbase
                    [big]=tags/docker.io/bench/big/1)
for img in many debian big; do
  if [ ! -d "$IMAGEFS_STORE" ] || ! "$imagefs" inspect "${ref[$img]}" >/dev/null 2>&1; then
    "$imagefs" load -q "$dir/$img.tar" >/dev/null
  fi
  if [ ! -d "$dir/native-$img/rootfs" ]; then
    echo "bench: umoci unpack of $img" >&2
    rm -rf "$dir/oci-$img" "$dir/native-$img"
    skopeo copy -q "docker-archive:$dir/$img.tar" "oci:$dir/oci-$img:img"
    umoci unpack --image "$dir/oci-$img:img" "$dir/native-$img" >/dev/null
    rm -rf "$dir/oci-$img"
  fi
done

# ---- Mounts: imagefs (as users get it: kernel-handled opens), imagefs --opens daemon
# (passthrough of large files), and the peers over each native tree.
pids=()
mounts=()
cleanup() {
  local m
  for m in "${mounts[@]}"; do umount -l "$m" 2>/dev/null || fusermount3 -u -z "$m" 2>/dev/null || true; done
  for m in "${pids[@]}"; do kill "$m" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
wait_mounted() { for _ in $(seq 1 100); do mountpoint -q "$1" && stat -f "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }
# mount_imagefs MOUNTPOINT [options]: sets the daemon's PID in last_pid.
mount_imagefs() {
  local m=$1; shift
  mkdir -p "$m"
  "$imagefs" mount "$m" "$@" 2>>"$dir/daemon.log" &
  last_pid=$!
  pids+=("$last_pid"); mounts+=("$m")
  wait_mounted "$m"
}
# mount_peer fuse-overlayfs|overlay IMG MOUNTPOINT: sets last_pid for fuse-overlayfs.
mount_peer() {
  local kind=$1 img=$2 m=$3
  mkdir -p "$m"
  if [ "$kind" = fuse-overlayfs ]; then
    fuse-overlayfs -f -o "lowerdir=$dir/native-$img/rootfs" "$m" 2>>"$dir/peer.log" &
    last_pid=$!
    pids+=("$last_pid")
  else
    rm -rf "$dir/ov-$img-upper" "$dir/ov-$img-work" && mkdir -p "$dir/ov-$img-upper" "$dir/ov-$img-work"
    mount -t overlay overlay -o "lowerdir=$dir/native-$img/rootfs,upperdir=$dir/ov-$img-upper,workdir=$dir/ov-$img-work" "$m"
  fi
  mounts+=("$m")
  wait_mounted "$m"
}
unmount() { umount "$1" 2>/dev/null || fusermount3 -u "$1"; }

systems=(native imagefs fuse-overlayfs overlay)
declare -A root
mount_imagefs "$dir/mnt"
imagefs_pid=$last_pid
for img in many debian big; do
  root[native,$img]=$dir/native-$img/rootfs
  root[imagefs,$img]=$dir/mnt/${tagpath[$img]}/rootfs
  mount_peer fuse-overlayfs "$img" "$dir/fov-$img"; root[fuse-overlayfs,$img]=$dir/fov-$img
  mount_peer overlay "$img" "$dir/kov-$img"; root[overlay,$img]=$dir/kov-$img
done
[ -f "${root[imagefs,debian]}/etc/os-release" ] || { echo "bench: the mount shows no Debian" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# start_registry DIR: a docker-registry on 127.0.0.1 with its storage in DIR/registry (kept
# between runs); sets registry=HOST:PORT.
start_registry() {
  registry=127.0.0.1:$(free_port)
  cat > "$1/registry.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $1/registry}}
http: {addr: $registry}
YML
  docker-registry serve "$1/registry.yml" >"$1/registry.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://$registry/v2/" && break; sleep 0.1; done
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
seconds() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
cat_all() { (cd "$1" && find . -type f -print0 | xargs -0 cat); }
tar_all() { (cd "$1" && tar -cf - . | cat); }
find_all() { find "$1" -printf '%s %m %u\n'; }
read_big() { cat "$1/data/big.bin"; }
read_big4() { for _ in 1 2 3 4; do cat "$1/data/big.bin"; done; }  # warm: a sample long enough to time
declare -A result
# measure cold|warm KEY FN IMG: medians of $runs timings of FN on each system's tree into
# result[KEY,SYSTEM]; the systems take turns, starting one later in each run.
measure() {
  local mode=$1 key=$2 fn=$3 img=$4 run i sys
  declare -A times=()
  sync; sleep 2  # let earlier writeback and reclaim settle
  if [ "$mode" = warm ]; then for sys in "${systems[@]}"; do "$fn" "${root[$sys,$img]}" >/dev/null; done; fi
  for run in $(seq 0 $((runs - 1))); do
    for i in $(seq 0 $((${#systems[@]} - 1))); do
      sys=${systems[$(((i + run) % ${#systems[@]}))]}
      [ "$mode" = cold ] && drop
      times[$sys]+="$(seconds "$fn" "${root[$sys,$img]}") "
    done
  done
  for sys in "${systems[@]}"; do
    result[$key,$sys]=$(tr ' ' '\n' <<<"${times[$sys]}" | grep . | median)
    [ -n "${BENCH_VERBOSE:-}" ] && echo "$key $sys: ${times[$sys]}" >&2
  done
  return 0
}

header() {
  echo
  echo "imagefs bench, $(date -u +%Y-%m-%dT%H:%MZ), $(git rev-parse --short HEAD): $(nproc) cores," \
       "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/ {print $2}') GiB," \
       "kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "median of $runs runs; each cell: seconds (ratio = native / it; 1.0 = native speed)"
}
# row TITLE KEY GOAL
row() {
  local sys line n
  n=${result[$2,native]}
  line=$(printf '%-40s %8.3f' "$1" "$n")
  for sys in imagefs fuse-overlayfs overlay; do
    line+=$(printf ' %8.3f (%4.2f)' "${result[$2,$sys]}" "$(echo "$n / ${result[$2,$sys]}" | bc -l)")
  done
  echo "$line  $3"
}
table_head() { printf '%-40s %8s %17s %17s %17s  %s\n' "workload" "native" "imagefs" "fuse-overlayfs" "overlay" "goal"; }

header
if want files; then
  for mode in warm cold; do
    for img in many debian; do
      measure $mode "cat-$img-$mode" cat_all $img
      measure $mode "tar-$img-$mode" tar_all $img
    done
    measure $mode "find-many-$mode" find_all many
  done
  echo
  table_head
  for mode in warm cold; do
    goal=">= 0.5"; [ $mode = cold ] && goal=">= 0.8"
    row "cat every file, $mode, 100k-file image" "cat-many-$mode" "$goal"
    row "cat every file, $mode, Debian minbase" "cat-debian-$mode" "$goal"
    row "tar -cf - . | cat, $mode, 100k files" "tar-many-$mode" "$goal"
    row "tar -cf - . | cat, $mode, Debian" "tar-debian-$mode" "$goal"
    row "find -printf, $mode, 100k files" "find-many-$mode" ""
  done
fi

# ---- Lookups on a fresh mount: lstat of distinct paths that exist, then of missing
# names in the same directories (each path's directories cached by then).
lookup_us() {  # lookup_us ROOT LISTFILE -> "existing_us missing_us"
  python3 - "$1" "$2" <<'PY'
import os, sys, time
root, listfile = sys.argv[1], sys.argv[2]
paths = [l.rstrip("\n") for l in open(listfile)]
def run(names):
    t = time.perf_counter()
    for p in names:
        try: os.lstat(p)
        except FileNotFoundError: pass
    return (time.perf_counter() - t) / len(names) * 1e6
existing = run([root + "/" + p for p in paths])
missing = run([root + "/" + p + ".missing" for p in paths])
print(f"{existing:.1f} {missing:.1f}")
PY
}
if want lookup; then
  (cd "${root[native,debian]}" && find . -type f | shuf -n 2000 --random-source=<(yes) | sed 's|^\./||') > "$dir/lookup.list"
  declare -A lookup=()
  for run in $(seq 1 "$runs"); do
    drop; r=$(lookup_us "${root[native,debian]}" "$dir/lookup.list"); lookup[native]+="$r;"
    # imagefs: a new mount each time; its tree is built by the first lookup, not timed here.
    mount_imagefs "$dir/mnt-fresh"; fresh_pid=$last_pid
    ls "$dir/mnt-fresh/${tagpath[debian]}/rootfs" >/dev/null
    drop
    r=$(lookup_us "$dir/mnt-fresh/${tagpath[debian]}/rootfs" "$dir/lookup.list"); lookup[imagefs]+="$r;"
    unmount "$dir/mnt-fresh"; wait "$fresh_pid" 2>/dev/null || true
    for kind in fuse-overlayfs overlay; do
      mount_peer "$kind" debian "$dir/fresh-$kind"; peer_pid=${last_pid:-}
      drop
      r=$(lookup_us "$dir/fresh-$kind" "$dir/lookup.list"); lookup[$kind]+="$r;"
      unmount "$dir/fresh-$kind"; [ "$kind" = fuse-overlayfs ] && { wait "$peer_pid" 2>/dev/null || true; }
    done
  done
  echo
  printf '%-40s %8s %17s %17s %17s  %s\n' "lstat of a path, fresh mount (µs)" "native" "imagefs" "fuse-overlayfs" "overlay" ""
  for which in 1 2; do
    line=$(printf '%-40s' "$([ $which = 1 ] && echo "  existing (2,000 Debian files)" || echo "  missing (a name beside each)")")
    for sys in native imagefs fuse-overlayfs overlay; do
      v=$(tr ';' '\n' <<<"${lookup[$sys]}" | grep . | cut -d' ' -f$which | median)
      [ $sys = native ] && line+=$(printf ' %8.1f' "$v") || line+=$(printf ' %17.1f' "$v")
    done
    echo "$line"
  done
fi

# ---- Daemon memory: anonymous and file-backed RSS of a fresh daemon, before and after
# reading every file of the 100k-file image (cat and find), per entry served.
rss() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }  # KiB
if want memory; then
  mount_imagefs "$dir/mnt-mem"; mem_pid=$last_pid
  mount_peer fuse-overlayfs many "$dir/fov-mem"; fov_pid=$last_pid
  entries=$(find "${root[native,many]}" | wc -l)
  echo
  printf '%-40s %17s %17s\n' "daemon memory, 100k-file image" "imagefs" "fuse-overlayfs"
  declare -A before=()
  for pair in "imagefs $mem_pid" "fuse-overlayfs $fov_pid"; do
    set -- $pair; before[$1]="$(rss "$2" RssAnon) $(rss "$2" RssFile)"
  done
  drop
  for m in "$dir/mnt-mem/${tagpath[many]}/rootfs" "$dir/fov-mem"; do cat_all "$m" >/dev/null; find_all "$m" >/dev/null; done
  line_anon=$(printf '%-40s' "  RssAnon growth, bytes per entry")
  line_file=$(printf '%-40s' "  RssFile growth, bytes per entry")
  for pair in "imagefs $mem_pid" "fuse-overlayfs $fov_pid"; do
    set -- $pair
    read -r a0 f0 <<<"${before[$1]}"
    line_anon+=$(printf ' %17.0f' "$(echo "($(rss "$2" RssAnon) - $a0) * 1024 / $entries" | bc -l)")
    line_file+=$(printf ' %17.0f' "$(echo "($(rss "$2" RssFile) - $f0) * 1024 / $entries" | bc -l)")
  done
  echo "$line_anon  (goal <= 100 for imagefs)"
  echo "$line_file"
  echo "  ($entries entries; idle imagefs daemon: RssAnon ${before[imagefs]% *} KiB)"
  unmount "$dir/mnt-mem"; unmount "$dir/fov-mem"
fi

# ---- A 256 MiB file: kernel-handled opens (every read served by the daemon through the
# page cache) and daemon-handled opens with passthrough (a copy made after two reads).
if want big; then
  mount_imagefs "$dir/mnt-pt" --opens daemon --passthrough-min 32M
  root[passthrough,big]=$dir/mnt-pt/${tagpath[big]}/rootfs
  read_big "${root[passthrough,big]}" >/dev/null; read_big "${root[passthrough,big]}" >/dev/null
  copies() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["events"].get("passthrough_copies", 0))' "$dir/mnt-pt/.imagefs/stats"; }
  for _ in $(seq 1 600); do [ "$(copies)" -ge 1 ] && break; sleep 0.1; done
  measure warm big-warm read_big4 big; measure cold big-cold read_big big
  saved=("${systems[@]}"); systems=(native passthrough)
  measure warm pt-warm read_big4 big; measure cold pt-cold read_big big
  systems=("${saved[@]}")
  echo
  table_head
  row "cat of a 256 MiB file (4 times), warm" big-warm ">= 0.9"
  row "cat of a 256 MiB file, cold" big-cold ""
  for mode in warm cold; do
    printf '%-40s %8.3f %8.3f (%4.2f)   (imagefs --opens daemon, passed through)\n' "  the same, $mode, passthrough" \
      "${result[pt-$mode,native]}" "${result[pt-$mode,passthrough]}" \
      "$(echo "${result[pt-$mode,native]} / ${result[pt-$mode,passthrough]}" | bc -l)"
  done
  unmount "$dir/mnt-pt"
fi

# ---- Time to the first file of the Debian image in a registry on 127.0.0.1: a lazy pull
# through the mount (mount, cat rootfs/etc/os-release, unmount) against skopeo copy +
# umoci unpack + cat of the same image. Each run starts from an empty store and layout.
if want lazy; then
  start_registry "$dir"
  reg=$registry
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
  echo
  echo "first file of a Debian image from a registry on 127.0.0.1 ($(du -sh "$debian" | cut -f1)): imagefs lazy pull" \
       "$(printf '%.2f' "$lazy_s") s, skopeo copy + umoci unpack $(printf '%.2f' "$peer_s") s," \
       "ratio imagefs/peer $(printf '%.2f' "$(echo "$lazy_s / $peer_s" | bc -l)") (goal <= 0.20)"
fi

# ---- Lazy files (#15): the first file of a ~1 GB, 5-layer image (Debian and four 240 MiB
# layers of random 4 MiB files) from a registry behind a proxy that shares one link of
# limited bandwidth among all connections, in three forms: plain gzip (skopeo), eStargz and
# zstd:chunked (ctr-remote). imagefs serves eStargz and zstd:chunked by Range and takes the
# plain form whole (a lazy pull);
# the peer is skopeo copy + umoci unpack. Each run starts from an empty store; the image and
# its registry storage are made once.
if want lazyfiles; then
  gb=$dir/gb
  mkdir -p "$gb"
  if [ ! -s "$gb/big.tar" ]; then
    echo "bench: making a 1 GB, 5-layer image" >&2
    python3 scripts/make_big_layers_image.py "$debian" "$gb/big.tar.tmp" bench/gb:1 4 240
    mv "$gb/big.tar.tmp" "$gb/big.tar"
  fi
  start_registry "$gb"
  greg=$registry
  if ! skopeo inspect -n --tls-verify=false "docker://$greg/bench/gb:plain" >/dev/null 2>&1; then
    echo "bench: pushing the plain form" >&2
    skopeo copy -q --dest-tls-verify=false "docker-archive:$gb/big.tar" "docker://$greg/bench/gb:plain"
  fi
  if ! skopeo inspect -n --tls-verify=false "docker://$greg/bench/gb:esgz" >/dev/null 2>&1 ||
     ! skopeo inspect -n --tls-verify=false "docker://$greg/bench/gb:zc" >/dev/null 2>&1; then
    echo "bench: converting to eStargz and zstd:chunked with ctr-remote and pushing them" >&2
    cdir=$gb/containerd
    rm -rf "$cdir" && mkdir -p "$cdir"
    printf 'version = 2\nroot = "%s/root"\nstate = "%s/state"\n[grpc]\n  address = "%s/sock"\n' \
      "$cdir" "$cdir" "$cdir" > "$cdir/config.toml"
    containerd --config "$cdir/config.toml" >"$cdir/log" 2>&1 &
    cpid=$!
    for _ in $(seq 1 100); do ctr -a "$cdir/sock" version >/dev/null 2>&1 && break; sleep 0.1; done
    ctr -a "$cdir/sock" -n bench images import "$gb/big.tar" >/dev/null
    ctr-remote -a "$cdir/sock" -n bench image convert --estargz --oci docker.io/bench/gb:1 "$greg/bench/gb:esgz" >/dev/null
    ctr-remote -a "$cdir/sock" -n bench image convert --zstdchunked --oci docker.io/bench/gb:1 "$greg/bench/gb:zc" >/dev/null
    for form in esgz zc; do
      ctr -a "$cdir/sock" -n bench images push --plain-http "$greg/bench/gb:$form" >/dev/null
    done
    kill "$cpid"; wait "$cpid" 2>/dev/null || true
    rm -rf "$cdir"
  fi
  declare -A image_bytes
  for form in esgz zc; do
    image_bytes[$form]=$(skopeo inspect --tls-verify=false --raw "docker://$greg/bench/gb:$form" |
      python3 -c 'import json, sys; print(sum(l["size"] for l in json.load(sys.stdin)["layers"]))')
  done
  # Two proxies: 1 Gbit/s and 100 Mbit/s.
  declare -A link
  for rate in 1000 100; do
    p=$(free_port)
    mkdir -p "$gb/proxy-$rate"
    PROXY_RATE=$((rate * 125000)) python3 tests/integration/registry_servers.py proxy "$p" "$greg" "$gb/proxy-$rate" \
      >"$gb/proxy-$rate.log" 2>&1 &
    pids+=($!)
    link[$rate]=127.0.0.1:$p
    for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$p/v2/" && break; sleep 0.1; done
  done
  echo '{}' > "$gb/registries.json"
  # The daemon (mount -d) exits after its unmount: wait, untimed, before the next store.
  # Untimed: the daemon (mount -d) exits after its unmount; then the next run's store is
  # made empty.
  gb_settle() {
    for _ in $(seq 1 600); do pgrep -f -- "mount -d $gb/mnt" >/dev/null || break; sleep 0.1; done
    rm -rf "$gb/store"; mkdir -p "$gb/mnt"
  }
  gb_mount() { IMAGEFS_STORE=$gb/store IMAGEFS_REGISTRIES=$gb/registries.json "$imagefs" mount -d "$gb/mnt" "$@"; }
  gb_unmount() {  # keeps what the mount fetched: $gb/fetched.json, $gb/streamed.json
    cp "$gb/mnt/.imagefs/lazy.json" "$gb/fetched.json"
    cat "$gb/mnt/.imagefs/streams.json" > "$gb/streamed.json"  # a snapshot node: cp skips one replaced
    fusermount3 -u "$gb/mnt"
  }
  gb_first_file() {  # FORM RATE; form "stream": the gzip image with --stream-unverified
    if [ "$1" = stream ]; then gb_mount --stream-unverified; else gb_mount; fi
    cat "$gb/mnt/registry/${link[$2]}/bench/gb/${1/stream/plain}/rootfs/etc/os-release"
    gb_unmount
  }
  gb_top_file() {  # RATE: the top layer's first file (4 MiB), the gzip image streamed
    gb_mount --stream-unverified
    cat "$gb/mnt/registry/${link[$1]}/bench/gb/plain/rootfs/data/layer3/blob0000.bin" >/dev/null
    gb_unmount
  }
  gb_chroot() {  # FORM RATE
    gb_mount
    chroot "$gb/mnt/registry/${link[$2]}/bench/gb/$1/rootfs" /bin/sh -c 'ls /usr/bin | wc -l'
    gb_unmount
  }
  # Warm reads once the image is whole: a lazy form after its background fetch completed (the
  # tree served keeps the TOCs' nodes and reads the stored layers) beside the image that the
  # completion registered (images/<id>/rootfs, same mount, passes alternating: one page cache
  # state for both); the gzip form after its whole pull. Untimed: mount, completion and a
  # first pass that fills the page cache, whose fetches (none expected) go to
  # $gb/refetched-FORM; timed: tar_all of the rootfs, median of 3. Prints "served [stored]".
  lazy_bytes() { python3 -c 'import json, sys; print(sum(i["bytes_fetched"] for i in json.load(open(sys.argv[1]))))' "$gb/mnt/.imagefs/lazy.json"; }
  gb_warm() {  # FORM
    gb_mount
    local root=$gb/mnt/registry/${link[1000]}/bench/gb/$1/rootfs i before stored
    cat "$root/etc/os-release" >/dev/null
    if [ "$1" = plain ]; then
      tar_all "$root" >/dev/null
      for i in 1 2 3; do seconds tar_all "$root"; done | median
      gb_unmount >/dev/null
      return
    fi
    for i in $(seq 1 2400); do
      python3 -c 'import json, sys; sys.exit(0 if any(i["state"] == "complete" for i in json.load(open(sys.argv[1]))) else 1)' \
        "$gb/mnt/.imagefs/lazy.json" && break
      sleep 0.25
    done
    before=$(lazy_bytes)
    tar_all "$root" >/dev/null
    echo $(($(lazy_bytes) - before)) > "$gb/refetched-$1"
    stored=$gb/mnt/images/$(ls "$gb/mnt/images" | head -1)/rootfs
    tar_all "$stored" >/dev/null
    for i in 1 2 3; do
      seconds tar_all "$root" >> "$gb/warm-served"
      seconds tar_all "$stored" >> "$gb/warm-stored"
    done
    echo "$(median < "$gb/warm-served") $(median < "$gb/warm-stored")"
    rm -f "$gb/warm-served" "$gb/warm-stored"
    gb_unmount >/dev/null
  }
  peer_gb_first_file() {  # RATE
    mkdir -p "$gb/peer"
    skopeo copy -q --src-tls-verify=false "docker://${link[$1]}/bench/gb:plain" "oci:$gb/peer/oci:img"
    umoci unpack --image "$gb/peer/oci:img" "$gb/peer/bundle" >/dev/null
    cat "$gb/peer/bundle/rootfs/etc/os-release"
  }
  fetched() {  # what the last mount fetched for FORM: "N MB (P %)" of that form's image
    if [ "$1" = plain ]; then echo "whole image"; return; fi
    if [ "$1" = stream ]; then  # tar bytes in when the file was read (gzip barely shrinks them)
      python3 -c 'import json,sys; print("%.0f MB of tar" % (sum(l.get("bytes", 0) for s in json.load(open(sys.argv[1])) for l in s["layers"]) / 1e6))' "$gb/streamed.json"
      return
    fi
    python3 - "$gb/fetched.json" "${image_bytes[$1]}" <<'PY'
import json, sys
b = sum(i["bytes_fetched"] for i in json.load(open(sys.argv[1])))
print("%.1f MB (%.2f %%)" % (b / 1e6, 100.0 * b / int(sys.argv[2])))
PY
  }
  cat "$gb"/registry/docker/registry/v2/blobs/sha256/*/*/data > /dev/null  # registry storage in the page cache
  gb_settle; gb_first_file esgz 1000 >/dev/null  # warm-up: binaries
  echo
  echo "lazy files: a $((image_bytes[esgz] / 1000000)) MB, 5-layer image from a registry behind a link of limited bandwidth; median of $runs"
  printf '%-51s %12s %12s %18s\n' "workload" "1 Gbit/s" "100 Mbit/s" "fetched (100 Mbit)"
  declare -A gbt gbf
  for rate in 1000 100; do
    for form in esgz zc plain stream; do
      gbt[first,$form,$rate]=$(for _ in $(seq 1 "$runs"); do gb_settle; seconds gb_first_file "$form" "$rate"; done | median)
      gbf[first,$form,$rate]=$(fetched "$form")
    done
    gb_settle
    gbt[top,stream,$rate]=$(seconds gb_top_file "$rate")
    gbf[top,stream,$rate]=$(fetched stream)
    gbt[first,peer,$rate]=$(for _ in $(seq 1 "$runs"); do rm -rf "$gb/peer"; seconds peer_gb_first_file "$rate"; done | median)
    rm -rf "$gb/peer"
  done
  for form in esgz zc plain; do
    gb_settle
    gbt[chroot,$form,100]=$(seconds gb_chroot "$form" 100)
    gbf[chroot,$form,100]=$(fetched "$form")
  done
  for form in esgz zc plain; do
    gb_settle
    read -r "gbt[warm,$form]" "gbt[warmstored,$form]" < <(gb_warm "$form")
  done
  gb_settle
  row() { printf '%-51s %12s %12s %18s\n' "$1" "$2" "$3" "$4"; }
  s2() { [ -n "$1" ] && printf '%.2f s' "$1" || echo -; }
  row "first file, eStargz, imagefs lazy files" "$(s2 "${gbt[first,esgz,1000]}")" "$(s2 "${gbt[first,esgz,100]}")" "${gbf[first,esgz,100]}"
  row "first file, zstd:chunked, imagefs lazy files" "$(s2 "${gbt[first,zc,1000]}")" "$(s2 "${gbt[first,zc,100]}")" "${gbf[first,zc,100]}"
  row "first file, gzip, imagefs whole-image pull" "$(s2 "${gbt[first,plain,1000]}")" "$(s2 "${gbt[first,plain,100]}")" "whole image"
  row "first file, gzip, imagefs --stream-unverified" "$(s2 "${gbt[first,stream,1000]}")" "$(s2 "${gbt[first,stream,100]}")" "${gbf[first,stream,100]}"
  row "top layer's first file (4 MiB), gzip, streamed" "$(s2 "${gbt[top,stream,1000]}")" "$(s2 "${gbt[top,stream,100]}")" "${gbf[top,stream,100]}"
  row "first file, skopeo copy + umoci unpack" "$(s2 "${gbt[first,peer,1000]}")" "$(s2 "${gbt[first,peer,100]}")" "whole image"
  row "chroot ls /usr/bin | wc -l, eStargz, imagefs" "" "$(s2 "${gbt[chroot,esgz,100]}")" "${gbf[chroot,esgz,100]}"
  row "chroot ls /usr/bin | wc -l, zstd:chunked, imagefs" "" "$(s2 "${gbt[chroot,zc,100]}")" "${gbf[chroot,zc,100]}"
  row "chroot ls /usr/bin | wc -l, gzip, imagefs" "" "$(s2 "${gbt[chroot,plain,100]}")" "whole image"
  x2() { [ -n "$1" ] && [ -n "$2" ] && printf '%.2fx' "$(echo "$2 / $1" | bc -l)" || echo -; }
  refetched() { awk '{printf "%.1f MB", $1 / 1e6}' "$gb/refetched-$1" 2>/dev/null || echo -; }
  for form in esgz zc; do
    name=$([ "$form" = esgz ] && echo eStargz || echo zstd:chunked)
    row "warm tar -c of rootfs, $name after completion" "$(s2 "${gbt[warm,$form]}")" "$(x2 "${gbt[warm,$form]}" "${gbt[warmstored,$form]}") of pulled" "$(refetched "$form") again"
    row "  ... its pulled image, same mount" "$(s2 "${gbt[warmstored,$form]}")" "" ""
  done
  row "warm tar -c of rootfs, gzip pulled whole" "$(s2 "${gbt[warm,plain]}")" "" ""
  echo "  goal: eStargz and zstd:chunked first file <= 0.5 s at both bandwidths with <= 1 % of the image fetched;"
  echo "  gzip streamed <= 0.5x the whole-image pull (/etc/os-release is in the base layer, under 4 layers of 240 MiB:"
  echo "  it is decided only once they are all in; a file of the top layer is decided as it arrives)"
  echo "  warm reads after the background fetch: as fast as the pulled image's (speed ratio, pulled time / this;"
  echo "  pulled: the image the completion registered, in the same mount), fetching nothing again (first pass, untimed)"
fi

# ---- What a command pays to open a store of 1,000 images; the 60-layer tree's build.
if want store; then
  thousand=$dir/thousand-store
  if [ ! -d "$thousand/images" ]; then
    python3 scripts/make_thousand_images.py "$dir/thousand.tar" 1000
    IMAGEFS_STORE=$thousand "$imagefs" load -q "$dir/thousand.tar" >/dev/null
  fi
  open_s=$(for _ in $(seq 1 "$runs"); do seconds env IMAGEFS_STORE="$thousand" "$imagefs" images; done | median)
  rss_kb=$( { IMAGEFS_STORE=$thousand /usr/bin/time -f %M "$imagefs" images >/dev/null; } 2>&1 | tail -1)
  echo
  echo "imagefs images on a store of $(ls "$thousand/images" | wc -l) images: median $(printf '%.3f' "$open_s") s, max RSS $rss_kb KiB"
  echo "merged tree of the 100k-file, 60-layer image: $(build/tests/tools/tree_bench "$IMAGEFS_STORE" bench/many:1 "$runs")"
fi

# ---- Scale: one-layer images of empty files made by Python's tarfile (the shape of
# node_modules or site-packages at scale): 100k and 1M entries in 1,000 directories, and
# 10,000 entries in one directory. Load time and peak RSS; the first stat on a fresh mount
# with caches dropped; cold find -printf against the same tree extracted on this disk; the
# daemon's anonymous memory after that walk.
if want scale; then
  for spec in "100k 100000 1000" "1m 1000000 1000" "wide 10000 1"; do
    set -- $spec
    if [ ! -s "$dir/scale-$1.tar" ]; then
      echo "bench: making the $1 scale image" >&2
      python3 scripts/make_scale_image.py "$dir/scale-$1.tar.tmp" "scale/$1:1" "$2" "$3"
      mv "$dir/scale-$1.tar.tmp" "$dir/scale-$1.tar"
    fi
    if [ ! -d "$dir/native-scale-$1" ]; then
      mkdir -p "$dir/native-scale-$1.tmp"
      tar -xOf "$dir/scale-$1.tar" --wildcards '*/layer.tar' | tar -x -C "$dir/native-scale-$1.tmp"
      mv "$dir/native-scale-$1.tmp" "$dir/native-scale-$1"
    fi
  done
  declare -A load_s=() load_kb=()
  for run in $(seq 1 "$runs"); do
    for n in 100k 1m wide; do
      rm -rf "$dir/scale-store-$n"
      out=$( { /usr/bin/time -f "%e %M" env IMAGEFS_STORE="$dir/scale-store-$n" "$imagefs" load -q "$dir/scale-$n.tar" >/dev/null; } 2>&1 | tail -1)
      load_s[$n]+="${out% *} "; load_kb[$n]+="${out#* } "
    done
  done
  declare -A first_ms=() find_native=() find_imagefs=() anon=()
  for run in $(seq 1 "$runs"); do
    for n in 1m wide; do
      mkdir -p "$dir/scale-mnt"
      IMAGEFS_STORE="$dir/scale-store-$n" "$imagefs" mount "$dir/scale-mnt" 2>>"$dir/daemon.log" &
      scale_pid=$!; pids+=("$scale_pid"); mounts+=("$dir/scale-mnt")
      for _ in $(seq 1 100); do mountpoint -q "$dir/scale-mnt" && break; sleep 0.1; done
      drop
      a0=$(rss "$scale_pid" RssAnon)
      t0=$(date +%s%N)
      stat "$dir/scale-mnt/tags/docker.io/scale/$n/1/rootfs/d0000" >/dev/null
      first_ms[$n]+="$(( ($(date +%s%N) - t0) / 1000000 )) "
      drop
      find_imagefs[$n]+="$(seconds find_all "$dir/scale-mnt/tags/docker.io/scale/$n/1/rootfs") "
      anon[$n]+="$(( ($(rss "$scale_pid" RssAnon) - a0) * 1024 )) "
      unmount "$dir/scale-mnt"; wait "$scale_pid" 2>/dev/null || true
      drop
      find_native[$n]+="$(seconds find_all "$dir/native-scale-$n") "
    done
  done
  # The 1M image from a registry on 127.0.0.1, pulled whole and streamed (--stream-unverified),
  # while a request waits for an absent name: streamed, the merged tree is rebuilt as members
  # arrive. Seconds to the answer, and the daemon's CPU seconds.
  sreg=$dir/scale-registry
  mkdir -p "$sreg/mnt"
  start_registry "$sreg"
  skopeo copy -q --dest-tls-verify=false "docker-archive:$dir/scale-1m.tar" "docker://$registry/scale/1m:1"
  echo '{}' > "$sreg/registries.json"
  scale_pull() {  # whole|stream: prints "SECONDS CPU-SECONDS"
    local flag=() pid t0 t1 cpu
    [ "$1" = stream ] && flag=(--stream-unverified)
    rm -rf "$sreg/store"
    IMAGEFS_STORE=$sreg/store IMAGEFS_REGISTRIES=$sreg/registries.json "$imagefs" mount -d "$sreg/mnt" "${flag[@]}"
    pid=$(pgrep -f -- "mount -d $sreg/mnt" | head -1)
    t0=$(date +%s.%N)
    stat "$sreg/mnt/registry/$registry/scale/1m/1/rootfs/absent" >/dev/null 2>&1 || true
    t1=$(date +%s.%N)
    cpu=$(awk '{print ($14 + $15) / 100}' "/proc/$pid/stat")
    fusermount3 -u "$sreg/mnt"
    for _ in $(seq 1 600); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    echo "$(echo "$t1 - $t0" | bc -l) $cpu"
  }
  declare -A pull_s=() pull_cpu=()
  for run in $(seq 1 "$runs"); do
    for how in whole stream; do
      out=$(scale_pull "$how")
      pull_s[$how]+="${out% *} "; pull_cpu[$how]+="${out#* } "
    done
  done
  med() { tr ' ' '\n' <<<"$1" | grep . | median; }
  echo
  printf '%-52s %12s %12s %s\n' "scale (one layer of empty files)" "100k" "1M" "goal"
  printf '%-52s %12.2f %12.2f %s\n' "imagefs load, seconds" "$(med "${load_s[100k]}")" "$(med "${load_s[1m]}")" "1M <= 11x 100k"
  printf '%-52s %12.0f %12.0f %s\n' "  peak RSS, bytes per entry" "$(echo "$(med "${load_kb[100k]}") * 1024 / 100000" | bc -l)" \
    "$(echo "$(med "${load_kb[1m]}") * 1024 / 1000000" | bc -l)" "<= 200 (1M)"
  printf '%-52s %12s %12.0f %s\n' "fresh mount, caches dropped, first stat, ms" "" "$(med "${first_ms[1m]}")" "<= 50"
  for n in 1m wide; do
    nat=$(med "${find_native[$n]}"); img=$(med "${find_imagefs[$n]}")
    printf '%-52s native %6.2f s, imagefs %6.2f s, ratio %4.2f %s\n' "cold find -printf, $([ $n = 1m ] && echo "1M entries" || echo "10,000 in one directory")" \
      "$nat" "$img" "$(echo "$nat / $img" | bc -l)" "(goal >= 0.8)"
  done
  printf '%-52s %12.0f %s\n' "daemon RssAnon growth after the 1M walk, B/entry" "$(echo "$(med "${anon[1m]}") / 1000000" | bc -l)" "(goal <= 100)"
  for how in whole stream; do
    printf '%-52s %12s %6.2f s, daemon CPU %5.2f s\n' "1M from a registry, absent name answered, $([ $how = whole ] && echo "whole pull" || echo "streamed")" \
      "" "$(med "${pull_s[$how]}")" "$(med "${pull_cpu[$how]}")"
  done
fi
