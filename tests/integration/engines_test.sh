#!/usr/bin/env bash
# Real engines as the reference: images built by Docker (dockerd with its state in a
# scratch directory, vfs, no network) and Podman (own --root/--runroot, vfs) load into
# imagefs with the IDs the engine reports and a rootfs equal, field by field, to the
# engine's own unpacked tree; image.tar from the mount loads back into each engine with the
# same ID and runs; `imagefs save` of two images sharing layers loads into each engine and
# back into imagefs. An engine that cannot start here is skipped with the reason.
# Where the engines and umoci disagree: the root directory's mtime. No layer lists "./",
# so engines (and umoci) give the root the time they created it; imagefs gives 0, which
# keeps st_mtime the same on every mount. That one line is left out of the comparisons.
source "$(dirname "$0")/lib.sh"
source "$TESTS_DIR/mount_lib.sh"

listing() { python3 "$TESTS_DIR/list_fs.py" dir "$1" | LC_ALL=C sort | grep -v '^\.|'; }
id_of() { "$IMAGEFS" inspect "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Id"])'; }

# A build context: busybox-static and RUN steps that delete files and directories, turn a
# directory into a file and back, hardlink, chown, chmod setuid and sticky, make a FIFO.
ctx=$SCRATCH/ctx
mkdir -p "$ctx"
cp /bin/busybox "$ctx/busybox"
cat > "$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "for a in sh ls cat mkdir rm ln chmod chown mkfifo echo stat; do /bin/busybox ln -s busybox /bin/$a; done"]
RUN mkdir -p /etc /data/dir /data/gone && echo one > /etc/one && echo two > /data/dir/two && echo x > /data/gone/x
RUN rm -rf /data/gone && rm /etc/one && echo replaced > /data/file && ln /data/dir/two /data/hard
RUN rm -rf /data/dir && echo file > /data/dir && chown 5:6 /data/file && chmod 4755 /data/file && mkdir -m 1777 /tmp && mkfifo /data/fifo
RUN rm /data/dir && mkdir /data/dir && echo back > /data/dir/again
CMD ["/bin/sh"]
EOF
expect_run="back|4755 5:6|two"
run_cmd='cat /data/dir/again; stat -c "%a %u:%g" /data/file; cat /data/hard'

m=$SCRATCH/mnt
engines_ran=0

# ---- Docker.
dk=$SCRATCH/docker
mkdir -p "$dk"
dockerd --data-root "$dk/data" --exec-root "$dk/exec" --pidfile "$dk/pid" -H "unix://$dk/sock" \
  --storage-driver vfs --iptables=false --ip6tables=false --bridge=none \
  --containerd-namespace imagefs-test --containerd-plugins-namespace imagefs-test-plugins >"$dk/log" 2>&1 &
dockerd_pid=$!
cleanup_hooks+=("kill_child $dockerd_pid")
docker() { command docker -H "unix://$dk/sock" "$@"; }
for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.5; done
if ! docker info >/dev/null 2>&1; then
  echo "SKIP: dockerd could not start on this machine: $(tail -n 3 "$dk/log" | tr '\n' ' ')"
else
  engines_ran=$((engines_ran + 1))
  echo "docker $(docker version --format '{{.Server.Version}}') (vfs) started"
  DOCKER_BUILDKIT=0 docker build -q --network none -t fid/docker:1 "$ctx" >/dev/null
  docker_id=$(docker image inspect fid/docker:1 --format '{{.Id}}')
  mkdir -p "$ctx/2" && printf 'FROM fid/docker:1\nRUN echo 2 > /two\n' > "$ctx/2/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q --network none -t fid/docker:2 "$ctx/2" >/dev/null
  docker_id2=$(docker image inspect fid/docker:2 --format '{{.Id}}')
  docker save fid/docker:1 -o "$SCRATCH/docker-save.tar"
  docker save fid/docker:2 -o "$SCRATCH/docker-save2.tar"
  export IMAGEFS_STORE=$SCRATCH/store-docker
  run "$IMAGEFS" load "$SCRATCH/docker-save.tar"; check_eq "docker save loads" "Loaded image: fid/docker:1" "$out"
  check_eq "with Docker's image ID" "$docker_id" "$(id_of fid/docker:1)"
  chain=$("$IMAGEFS" inspect fid/docker:1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["ChainIDs"][-1][7:])')
  vfs_dir=$dk/data/vfs/dir/$(cat "$dk/data/image/vfs/layerdb/sha256/$chain/cache-id")
  # history as Docker prints it: each step's command and size, newest first.
  want=$(docker history --no-trunc --format '{{.CreatedBy}}|{{.Size}}' fid/docker:1)
  got=$("$IMAGEFS" history --no-trunc --format json fid/docker:1 |
        python3 -c 'import json,sys; [print(j["CreatedBy"] + "|" + j["Size"]) for j in map(json.loads, sys.stdin)]')
  check_eq "history as docker history" "$want" "$got"
  start_mount "$m"
  root=$m/tags/docker.io/fid/docker/1/rootfs
  check_eq "rootfs equals dockerd's own tree (vfs), field by field" "" "$(diff <(listing "$vfs_dir") <(listing "$root"))"
  diffs=$("$IMAGEFS" inspect fid/docker:1 | python3 -c 'import json,sys; print(" ".join(d[7:] for d in json.load(sys.stdin)[0]["RootFS"]["Layers"]))')
  chains=$("$IMAGEFS" inspect fid/docker:1 | python3 -c 'import json,sys; print(" ".join(c[7:] for c in json.load(sys.stdin)[0]["ChainIDs"]))')
  got=""; for c in $chains; do got+="$(sha256sum < "$m/layers/$c/layer.tar" | cut -d' ' -f1) "; done
  check_eq "every layer.tar's sha256 is its DiffID" "$diffs" "$(xargs <<<"$got")"
  cp "$root/../image.tar" "$SCRATCH/docker-image.tar"
  stop_mount "$m" "$MOUNT_PID"
  docker rmi -f fid/docker:1 >/dev/null
  check_eq "image.tar loads into Docker" "Loaded image: fid/docker:1" "$(docker load -i "$SCRATCH/docker-image.tar" | tail -1)"
  check_eq "as the same image" "$docker_id" "$(docker image inspect fid/docker:1 --format '{{.Id}}')"
  check_eq "and runs" "$expect_run" "$(docker run --rm --network none fid/docker:1 sh -c "$run_cmd" | paste -sd '|')"

  # imagefs save of two images that share six layers: each layer once, both load back.
  "$IMAGEFS" load -q "$SCRATCH/docker-save2.tar"
  run "$IMAGEFS" save fid/docker:1 fid/docker:2 -o "$SCRATCH/multi.tar"; check_eq "imagefs save of two images" 0 "$rc"
  check_eq "each of the 7 layers once" 7 "$(tar -tf "$SCRATCH/multi.tar" | grep -c '/layer.tar$')"
  docker rmi -f fid/docker:1 fid/docker:2 >/dev/null
  check_eq "docker load of the save" "Loaded image: fid/docker:1|Loaded image: fid/docker:2" "$(docker load -i "$SCRATCH/multi.tar" | paste -sd '|')"
  check_eq "gives both images their IDs" "$docker_id $docker_id2" \
    "$(docker image inspect fid/docker:1 fid/docker:2 --format '{{.Id}}' | xargs)"
  check_eq "and the second runs" "2" "$(docker run --rm --network none fid/docker:2 cat /two)"
  export IMAGEFS_STORE=$SCRATCH/store-multi
  run "$IMAGEFS" load "$SCRATCH/multi.tar"; check_eq "imagefs load of the save" "Loaded image: fid/docker:1|Loaded image: fid/docker:2" "$(paste -sd '|' <<<"$out")"
  check_eq "with the same IDs" "$docker_id $docker_id2" "$(id_of fid/docker:1) $(id_of fid/docker:2)"
fi

# ---- Podman.
pm=$SCRATCH/podman
mkdir -p "$pm"
podman() { command podman --root "$pm/root" --runroot "$pm/run" --storage-driver vfs --cgroup-manager cgroupfs --events-backend file "$@"; }
cleanup_hooks+=("podman image umount -a >/dev/null 2>&1; podman rm -a -f >/dev/null 2>&1")
if ! podman build -q --network none -t fid/podman:1 "$ctx" >"$pm/build.log" 2>&1; then
  echo "SKIP: podman could not build on this machine: $(tail -n 3 "$pm/build.log" | tr '\n' ' ')"
else
  engines_ran=$((engines_ran + 1))
  echo "podman $(podman version --format '{{.Client.Version}}') (vfs) ran"
  podman_id=sha256:$(podman image inspect fid/podman:1 --format '{{.Id}}')
  podman_root=$(podman image mount fid/podman:1)
  podman save -q --format docker-archive -o "$SCRATCH/podman-docker.tar" fid/podman:1
  podman save -q --format oci-archive -o "$SCRATCH/podman-oci.tar" fid/podman:1
  podman save -q --format oci-dir -o "$SCRATCH/podman-ocidir" fid/podman:1
  for form in podman-docker.tar podman-oci.tar podman-ocidir; do
    export IMAGEFS_STORE=$SCRATCH/store-$form
    run "$IMAGEFS" load "$SCRATCH/$form"; check_eq "podman save $form loads" 0 "$rc"
    id=$("$IMAGEFS" images --no-trunc --format json | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["ID"])')
    check_eq "$form: with Podman's image ID" "$podman_id" "$id"
    start_mount "$m"
    check_eq "$form: rootfs equals podman image mount, field by field" "" \
      "$(diff <(listing "$podman_root") <(listing "$m/images/${id#sha256:}/rootfs"))"
    [ "$form" = podman-docker.tar ] && cp "$m/images/${id#sha256:}/image.tar" "$SCRATCH/podman-image.tar"
    stop_mount "$m" "$MOUNT_PID"
  done
  # cp into import/ is the same load.
  export IMAGEFS_STORE=$SCRATCH/store-import
  start_mount "$m"
  cp "$SCRATCH/podman-oci.tar" "$m/import/"; check_eq "cp of podman's oci-archive into import/" 0 $?
  check_eq "gives Podman's ID" "1" "$(ls "$m/images" | grep -c "^${podman_id#sha256:}$")"
  stop_mount "$m" "$MOUNT_PID"
  podman image umount fid/podman:1 >/dev/null
  podman rmi -f fid/podman:1 >/dev/null
  podman load -q -i "$SCRATCH/podman-image.tar" >/dev/null
  # Podman asks runc to raise the container's limits past the caller's, which a root
  # without CAP_SYS_RESOURCE (a container, this CI's sandbox) may not: modest ones instead.
  check_eq "image.tar loads into Podman as the same image" "$podman_id" "sha256:$(podman image inspect fid/podman:1 --format '{{.Id}}' 2>/dev/null || podman image inspect localhost/fid/podman:1 --format '{{.Id}}')"
  check_eq "and runs" "$expect_run" "$(podman run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 fid/podman:1 sh -c "$run_cmd" | paste -sd '|')"
  if [ -f "$SCRATCH/multi.tar" ]; then
    podman load -q -i "$SCRATCH/multi.tar" >/dev/null
    check_eq "podman load of imagefs save: both images, Docker's IDs" "$docker_id $docker_id2" \
      "$(for t in fid/docker:1 fid/docker:2; do echo "sha256:$(podman image inspect "$t" --format '{{.Id}}' 2>/dev/null ||
      podman image inspect "docker.io/$t" --format '{{.Id}}')"; done | xargs)"
  fi
fi
check_eq "at least one engine ran here" "yes" "$([ "$engines_ran" -gt 0 ] && echo yes || echo no)"
finish
