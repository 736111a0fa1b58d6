#!/usr/bin/env bash
# Fetch against real registries on 127.0.0.1: Debian's docker-registry (open, htpasswd and
# token auth over one storage), a token server and a fault-injecting proxy written for
# the tests (registry_servers.py). Fixtures are made by umoci and pushed by skopeo.
source "$(dirname "$0")/lib.sh"
source "$TESTS_DIR/mount_lib.sh"
source "$TESTS_DIR/registry_lib.sh"

OPEN=$(free_port); BASIC=$(free_port); TOKEN=$(free_port); TOKSRV=$(free_port); PROXY=$(free_port)
S1=$(free_port); TLS=$(free_port); AUTHPROXY=$(free_port)
start_registry "$OPEN" "$SCRATCH/registry" ""
start_registry "$S1" "$SCRATCH/registry" "compatibility: {schema1: {enabled: true}}"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$SCRATCH/tls.key" -out "$SCRATCH/tls.pem" -subj /CN=127.0.0.1 \
  -addext "subjectAltName=IP:127.0.0.1" -days 1 2>/dev/null
start_registry "$TLS" "$SCRATCH/registry" "" "tls: {certificate: $SCRATCH/tls.pem, key: $SCRATCH/tls.key}"
htpasswd -Bbc "$SCRATCH/htpasswd" alice 's3cr:et' 2>/dev/null
start_registry "$BASIC" "$SCRATCH/registry" "auth: {htpasswd: {realm: test, path: $SCRATCH/htpasswd}}"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$SCRATCH/key.pem" -out "$SCRATCH/cert.pem" -subj /CN=token -days 1 2>/dev/null
# Tokens live 2 s, so later requests need a fresh one.
python3 "$TESTS_DIR/registry_servers.py" token "$TOKSRV" "$SCRATCH" test-issuer test-service bob hunter2 2 &
started_pids+=($!)
start_registry "$TOKEN" "$SCRATCH/registry" "auth: {token: {realm: http://127.0.0.1:$TOKSRV/token, service: test-service, issuer: test-issuer, rootcertbundle: $SCRATCH/cert.pem}}"
start_proxy "$PROXY" "127.0.0.1:$OPEN"
# In front of the htpasswd registry, redirecting blobs to "storage" on another host name.
start_proxy "$AUTHPROXY" "127.0.0.1:$BASIC" "127.0.0.1:$OPEN"
fault() { curl -sf -X POST -d "{\"match\": \"$1\", \"kind\": \"$2\", \"times\": ${3:-1}}" "http://127.0.0.1:$PROXY/_proxy/fault"; }

# ---- Fixtures: an image with whiteouts, links and a 2 MB file, in several formats.
cd "$SCRATCH"
umoci init --layout oci >/dev/null
umoci new --image oci:img >/dev/null
umoci unpack --image oci:img b >/dev/null
mkdir -p b/rootfs/etc b/rootfs/dir/sub b/rootfs/gone
echo 'PRETTY_NAME="imagefs fetch fixture"' > b/rootfs/etc/os-release
echo one > b/rootfs/dir/one; echo x > b/rootfs/gone/x; ln -s ../etc/os-release b/rootfs/dir/link
umoci repack --refresh-bundle --image oci:img b >/dev/null
rm -rf b/rootfs/gone; ln b/rootfs/dir/one b/rootfs/dir/hard; chmod 0750 b/rootfs/dir/sub
head -c 2000000 /dev/urandom > b/rootfs/big
umoci repack --refresh-bundle --image oci:img b >/dev/null
umoci unpack --image oci:img ref >/dev/null
H=127.0.0.1:$OPEN
skopeo copy -q --dest-tls-verify=false oci:oci:img "docker://$H/test/oci:1"
skopeo copy -q --dest-tls-verify=false --format v2s2 oci:oci:img "docker://$H/test/v2s2:1"
skopeo copy -q --dest-tls-verify=false --dest-compress-format zstd oci:oci:img "docker://$H/test/zstd:1"
# Another image on top of it, for the quota.
umoci unpack --image oci:img o >/dev/null
head -c 2500000 /dev/urandom > o/rootfs/other
umoci repack --image oci:other o >/dev/null
skopeo copy -q --dest-tls-verify=false oci:oci:other "docker://$H/test/other:1"
# A multi-arch index: the same rootfs as linux/amd64 and linux/arm64.
umoci new --image oci:arm >/dev/null
umoci config --image oci:arm --architecture arm64 --config.label which=arm >/dev/null
python3 - "$SCRATCH/oci" <<'PY'
import json, hashlib, os, sys
root = sys.argv[1]
index = json.load(open(f"{root}/index.json"))
by = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in index["manifests"]}
amd, arm = dict(by["img"]), dict(by["arm"])
amd["platform"] = {"os": "linux", "architecture": "amd64"}
arm["platform"] = {"os": "linux", "architecture": "arm64"}
for m in (amd, arm): m.pop("annotations", None)
inner = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                    "manifests": [amd, arm]}).encode()
d = hashlib.sha256(inner).hexdigest()
open(f"{root}/blobs/sha256/{d}", "wb").write(inner)
index["manifests"].append({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": "sha256:" + d,
                           "size": len(inner), "annotations": {"org.opencontainers.image.ref.name": "multi"}})
json.dump(index, open(f"{root}/index.json", "w"))
PY
skopeo copy -q --all --dest-tls-verify=false oci:oci:multi "docker://$H/test/multi:1"
skopeo copy -q --dest-tls-verify=false --format v2s1 oci:oci:img "docker://127.0.0.1:$S1/test/schema1:1"

list_rootfs() { python3 "$TESTS_DIR/list_fs.py" dir "$1" | LC_ALL=C sort | grep -v '^\.|'; }
list_rootfs ref/rootfs > ref.list

# ---- pull: every format gives the same image, its rootfs equal to umoci unpack.
for repo in oci v2s2 zstd; do
  export IMAGEFS_STORE=$SCRATCH/store-$repo
  run "$IMAGEFS" pull "$H/test/$repo:1"
  check_eq "pull $repo exits 0" 0 "$rc"
  check_contains "pull $repo prints Docker's status" "Status: Downloaded newer image for $H/test/$repo:1" "$out"
  check_contains "pull $repo prints the digest" "Digest: sha256:" "$out"
  check_contains "pull $repo says each layer completed" "Pull complete" "$out"
  run "$IMAGEFS" pull "$H/test/$repo:1"
  check_contains "a second pull of $repo is up to date" "Status: Image is up to date" "$out"
done
export IMAGEFS_STORE=$SCRATCH/store
for repo in oci v2s2 zstd; do
  IMAGEFS_STORE=$SCRATCH/store-$repo "$IMAGEFS" export "$H/test/$repo:1" --rootfs -o "$SCRATCH/$repo.tar"
done
check_eq "OCI and schema2 pulls give one rootfs" "" "$(cmp "$SCRATCH/oci.tar" "$SCRATCH/v2s2.tar" && cmp "$SCRATCH/oci.tar" "$SCRATCH/zstd.tar")"
# Schema1 (signed by skopeo): a legacy v1 chain, same rootfs.
run env IMAGEFS_STORE="$SCRATCH/store-s1" "$IMAGEFS" pull "127.0.0.1:$S1/test/schema1:1"
check_eq "pull of a signed schema1 manifest exits 0" 0 "$rc"
IMAGEFS_STORE=$SCRATCH/store-s1 "$IMAGEFS" export "127.0.0.1:$S1/test/schema1:1" --rootfs -o "$SCRATCH/s1.tar"
check_eq "schema1 gives the same rootfs" "" "$(cmp "$SCRATCH/oci.tar" "$SCRATCH/s1.tar")"
check_eq "as a chain of v1 images" 2 "$(IMAGEFS_STORE=$SCRATCH/store-s1 "$IMAGEFS" images -a --format json | wc -l)"

# TLS: the system CAs by default (a self-signed registry is refused), a CA file per registry.
run env IMAGEFS_STORE="$SCRATCH/store-tls" "$IMAGEFS" pull "127.0.0.1:$TLS/test/oci:1"
check_eq "a loopback registry speaking TLS is not plain http" 1 "$rc"
printf '{"retries": 0, "registries": {"127.0.0.1:%s": {"mirrors": ["https://127.0.0.1:%s"], "ca_file": "%s"}}}' \
  "$TLS" "$TLS" "$SCRATCH/tls.pem" > "$SCRATCH/tls.json"
run env IMAGEFS_STORE="$SCRATCH/store-tls" "$IMAGEFS" pull --registries "$SCRATCH/tls.json" "127.0.0.1:$TLS/test/oci:1"
check_eq "https with the registry's CA file pulls" 0 "$rc"
printf '{"retries": 0, "registries": {"127.0.0.1:%s": {"mirrors": ["https://127.0.0.1:%s"]}}}' "$TLS" "$TLS" > "$SCRATCH/notls.json"
run env IMAGEFS_STORE="$SCRATCH/store-tls2" "$IMAGEFS" pull --registries "$SCRATCH/notls.json" "127.0.0.1:$TLS/test/oci:1"
check_eq "https without the CA file fails" 1 "$rc"
check_contains "on the certificate" "certificate" "$out"

# --insecure-registry: a registry named by a host name that is not a loopback name gets
# https unless told otherwise. Any name /etc/hosts puts on 127.0.0.1 but "localhost" will do
# (this machine's own name usually).
name=$(hostname)
if [ "$(getent hosts "$name" | awk '{print $1}' | head -1)" != 127.0.0.1 ]; then
  name=$(awk '$1 == "127.0.0.1" {for (i = 2; i <= NF; i++) if ($i != "localhost" && $i ~ /^[a-z0-9.-]+$/) {print $i; exit}}' /etc/hosts)
fi
if [ -n "$name" ] && [ "$(getent hosts "$name" | awk '{print $1}' | head -1)" = 127.0.0.1 ]; then
  run env IMAGEFS_STORE="$SCRATCH/store-insecure" "$IMAGEFS" pull "$name:$OPEN/test/oci:1"
  check_eq "a non-loopback name is https by default" 1 "$rc"
  run env IMAGEFS_STORE="$SCRATCH/store-insecure" "$IMAGEFS" pull --insecure-registry "$name:$OPEN" "$name:$OPEN/test/oci:1"
  check_eq "--insecure-registry makes it plain http" 0 "$rc"
else
  fail "--insecure-registry: no host name but localhost resolves to 127.0.0.1 here; this check needs one"
fi

run "$IMAGEFS" pull "not a ref!"
check_eq "an invalid reference exits 1" 1 "$rc"
check_contains "an invalid reference is named as Docker does" "invalid reference format" "$out"
run "$IMAGEFS" pull "$H/test/oci:nosuch"
check_contains "an unknown tag carries the registry's words" "MANIFEST_UNKNOWN" "$out"
store_layers=$(ls "$SCRATCH/store/layers" 2>/dev/null | wc -l)
check_eq "a failed pull registers nothing" 0 "$store_layers"

# ---- multi-arch: the host's platform by default, --platform to choose.
run "$IMAGEFS" pull "$H/test/multi:1"
check_eq "multi-arch pull exits 0" 0 "$rc"
check_contains "the default platform is the host's" '"Architecture":"amd64"' "$("$IMAGEFS" inspect "$H/test/multi:1" | tr -d ' \n')"
run "$IMAGEFS" pull --platform linux/arm64 "$H/test/multi:1"
check_contains "--platform linux/arm64 picks the arm64 image" '"Architecture":"arm64"' "$("$IMAGEFS" inspect "$H/test/multi:1" | tr -d ' \n')"
run "$IMAGEFS" pull --platform linux/s390x "$H/test/multi:1"
check_eq "a platform the index lacks fails" 1 "$rc"

# ---- Basic auth (htpasswd): answered only when challenged.
export IMAGEFS_STORE=$SCRATCH/store-basic
run "$IMAGEFS" pull "127.0.0.1:$BASIC/test/oci:1"
check_eq "basic auth without credentials fails" 1 "$rc"
check_contains "and says credentials are missing" "none are configured" "$out"
run "$IMAGEFS" pull --creds alice:wrong "127.0.0.1:$BASIC/test/oci:1"
check_eq "basic auth with a wrong password fails" 1 "$rc"
check_contains "with the registry's words" "UNAUTHORIZED" "$out"
run "$IMAGEFS" pull --creds 'alice:s3cr:et' "127.0.0.1:$BASIC/test/oci:1"
check_eq "basic auth with --creds pulls" 0 "$rc"
mkdir -p "$SCRATCH/docker"
printf '{"auths": {"127.0.0.1:%s": {"auth": "%s"}}}' "$BASIC" "$(printf 'alice:s3cr:et' | base64)" > "$SCRATCH/docker/config.json"
run env DOCKER_CONFIG="$SCRATCH/docker" "$IMAGEFS" pull "127.0.0.1:$BASIC/test/v2s2:1"
check_eq "basic auth with ~/.docker/config.json pulls" 0 "$rc"
curl -sf -X POST -d '{"match": "/blobs/", "kind": "redirect", "times": 100}' "http://127.0.0.1:$AUTHPROXY/_proxy/fault"
run env IMAGEFS_STORE="$SCRATCH/store-redirect" "$IMAGEFS" pull --creds 'alice:s3cr:et' "127.0.0.1:$AUTHPROXY/test/oci:1"
check_eq "blobs redirected to another host are fetched" 0 "$rc"
redirected=$(curl -sf "http://127.0.0.1:$AUTHPROXY/_proxy/log" | grep '^RAW ' || true)
check_contains "the redirect was followed" "auth=no" "$redirected"
check_eq "without the registry's Authorization" "" "$(echo "$redirected" | grep 'auth=yes' || true)"

# ---- Token auth: a token per scope, renewed after it expires.
export IMAGEFS_STORE=$SCRATCH/store-token
run "$IMAGEFS" pull "127.0.0.1:$TOKEN/test/oci:1"
check_eq "token auth without credentials fails" 1 "$rc"
check_contains "refused by the token server" "token server" "$out"
run "$IMAGEFS" pull --creds bob:hunter2 "127.0.0.1:$TOKEN/test/oci:1"
check_eq "token auth with credentials pulls" 0 "$rc"
check_eq "a token is never logged" "" "$(grep -l 'eyJ' "$SCRATCH"/*.log 2>/dev/null || true)"

# A mount lives longer than a token: an expired one is renewed.
export IMAGEFS_STORE=$SCRATCH/store-token-mount
start_mount "$SCRATCH/tmnt" --creds bob:hunter2
before=$(wc -l < "$SCRATCH/token-requests")
check_contains "the mount pulls from a token registry" "fixture" "$(cat "$SCRATCH/tmnt/registry/127.0.0.1:$TOKEN/test/oci/1/rootfs/etc/os-release")"
sleep 3
check_eq "and again after its token expired" "yes" "$([ -f "$SCRATCH/tmnt/registry/127.0.0.1:$TOKEN/test/other/1/rootfs/other" ] && echo yes)"
check_eq "with a new token" "yes" "$([ "$(wc -l < "$SCRATCH/token-requests")" -ge $((before + 2)) ] && echo yes)"
stop_mount "$SCRATCH/tmnt" "$MOUNT_PID"

# ---- Faults between client and registry: retries recover, wrong data never lands.
cat > "$SCRATCH/fast.json" <<JSON
{"retries": 3, "retry_base_ms": 50}
JSON
P=127.0.0.1:$PROXY
pull_via_proxy() {
  rm -rf "$SCRATCH/store-proxy"
  run env IMAGEFS_STORE="$SCRATCH/store-proxy" "$IMAGEFS" pull --registries "$SCRATCH/fast.json" "$P/test/oci:1"
}
proxy_reset "$PROXY"; fault /blobs/ status500 2; pull_via_proxy
check_eq "two 500s on a blob are retried" 0 "$rc"
proxy_reset "$PROXY"; fault /manifests/ status429 1; pull_via_proxy
check_eq "429 on a manifest waits and retries" 0 "$rc"
proxy_reset "$PROXY"; fault /blobs/ truncate 1; pull_via_proxy
check_eq "a body cut short is resumed" 0 "$rc"
check_contains "with a Range request" "bytes=" "$(proxy_log "$PROXY")"
proxy_reset "$PROXY"; fault /blobs/ drop 2; pull_via_proxy
check_eq "dropped connections are retried" 0 "$rc"
proxy_reset "$PROXY"; fault /blobs/ wrong 1; pull_via_proxy
check_eq "a wrong blob once is fetched again" 0 "$rc"
proxy_reset "$PROXY"; fault /blobs/ wrong 100; pull_via_proxy
check_eq "a blob that stays wrong fails the pull" 1 "$rc"
check_contains "naming the digest mismatch" "digest mismatch" "$out"
check_eq "and registers no layer" 0 "$(ls "$SCRATCH/store-proxy/layers" | wc -l)"
check_eq "and no image" 0 "$(ls "$SCRATCH/store-proxy/images" | wc -l)"
proxy_reset "$PROXY"; fault /blobs/ slow 100; pull_via_proxy
check_eq "a slow registry still completes" 0 "$rc"
# One retry budget per layer, shared by the client's request retries and the puller's
# refetches: a layer that keeps failing is asked for retries + 1 times, not (retries + 1)².
layer=$(skopeo inspect --raw --tls-verify=false "docker://$H/test/oci:1" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][0]["digest"])')
proxy_reset "$PROXY"; fault "$layer" status500 100; pull_via_proxy
check_eq "a layer that keeps failing fails the pull" 1 "$rc"
check_eq "after retries + 1 requests for it" 4 "$(proxy_log "$PROXY" | grep -c "^GET .*$layer")"

# ---- Two concurrent pulls of one image download each blob once.
proxy_reset "$PROXY"; fault /blobs/ slow 100
rm -rf "$SCRATCH/store-dup"
IMAGEFS_STORE=$SCRATCH/store-dup "$IMAGEFS" pull -q "$P/test/v2s2:1" > "$SCRATCH/p1.out" 2>&1 &
p1=$!
IMAGEFS_STORE=$SCRATCH/store-dup "$IMAGEFS" pull -q "$P/test/v2s2:1" > "$SCRATCH/p2.out" 2>&1 &
p2=$!
wait $p1; r1=$?; wait $p2; r2=$?
check_eq "both concurrent pulls succeed" "0 0" "$r1 $r2"
# Each process reads the (small) config itself, as Docker's do; layers come once.
config=$(IMAGEFS_STORE=$SCRATCH/store-dup "$IMAGEFS" images --no-trunc --format json | python3 -c 'import sys,json; print(json.loads(sys.stdin.readline())["ID"].split(":")[-1])')
check_eq "each layer blob was downloaded once" "" "$(proxy_log "$PROXY" | grep '^GET .*/blobs/' | grep -v "$config" | awk '{print $2}' | sort | uniq -d)"

# ---- A pull retains the layers it needs: rm cannot take them away meanwhile.
export IMAGEFS_STORE=$SCRATCH/store-retain
"$IMAGEFS" pull -q "$H/test/oci:1" >/dev/null
proxy_reset "$PROXY"; fault /blobs/ slow 100
"$IMAGEFS" pull -q "$P/test/other:1" > "$SCRATCH/retain.out" 2>&1 &
puller=$!
sleep 0.3
run "$IMAGEFS" rm "$H/test/oci:1"
check_eq "rm of an image sharing layers with a running pull removes the image" 0 "$rc"
check_eq "but not the layers the pull holds" 2 "$(ls "$IMAGEFS_STORE/layers" | wc -l)"
wait $puller
check_eq "the pull completes" 0 "$?"
check_contains "with every layer" "fixture" "$("$IMAGEFS" export "$P/test/other:1" --rootfs | tar -xO ./etc/os-release)"

# ---- Mirrors: tried first, fallen back from.
cat > "$SCRATCH/mirror.json" <<JSON
{"retries": 1, "retry_base_ms": 10, "registries": {"$H": {"mirrors": ["http://127.0.0.1:1", "http://$P"]}}}
JSON
proxy_reset "$PROXY"
run env IMAGEFS_STORE="$SCRATCH/store-mirror" "$IMAGEFS" pull --registries "$SCRATCH/mirror.json" "$H/test/oci:1"
check_eq "a pull through mirrors succeeds" 0 "$rc"
check_contains "the working mirror served the blobs" "/blobs/" "$(proxy_log "$PROXY")"

# ---- The mount's registry/ tree: nothing fetched before first access, one pull.
export IMAGEFS_STORE=$SCRATCH/store-lazy
cat > "$SCRATCH/lazy.json" <<JSON
{"retries": 2, "retry_base_ms": 50}
JSON
mnt=$SCRATCH/mnt
start_mount "$mnt" --registries "$SCRATCH/lazy.json"
proxy_reset "$PROXY"
img=$mnt/registry/$P/test/oci/1
check_eq "a tag resolves to a directory" "config.json image.tar layers rootfs" "$(ls "$img" | tr '\n' ' ' | sed 's/ $//')"
check_contains "its config.json is served before any layer" '"rootfs"' "$(cat "$img/config.json")"
blob_gets=$(proxy_log "$PROXY" | grep -c '^GET .*/blobs/' || true)
check_eq "only the config blob was fetched" 1 "$blob_gets"
check_eq "no layer is in the store yet" 0 "$(ls "$IMAGEFS_STORE/layers" | wc -l)"
proxy_reset "$PROXY"; fault /blobs/ slow 100
cats=()
for i in 1 2 3 4; do cat "$img/rootfs/etc/os-release" > "$SCRATCH/cat$i.out" 2>&1 & cats+=($!); done
sleep 0.5
check_contains ".imagefs/pulls.json shows the pull in progress" '"total"' "$(cat "$mnt/.imagefs/pulls.json")"
wait "${cats[@]}"
check_eq "four readers at once see the file" 4 "$(grep -l 'imagefs fetch fixture' "$SCRATCH"/cat?.out | wc -l)"
check_eq "and cause one download per layer" "" "$(proxy_log "$PROXY" | grep '^GET .*/blobs/' | awk '{print $2}' | sort | uniq -d)"
list_rootfs "$img/rootfs" > "$SCRATCH/lazy.list"
check_eq "the lazily pulled rootfs equals umoci unpack" "" "$(diff "$SCRATCH/ref.list" "$SCRATCH/lazy.list")"
check_contains "layers/ links to the pulled layers" "layers/" "$(readlink "$img/layers/0")"
check_eq "the link resolves" "yes" "$([ -d "$img/layers/1/diff" ] && echo yes)"
check_eq "the pulled image appears in images/" "yes" "$([ -d "$mnt/images/$(ls "$mnt/images" | head -1)/rootfs/etc" ] && echo yes)"
check_contains "and is tagged" "1" "$(ls "$mnt/tags/$P/test/oci")"
run ls "$mnt/registry/$P/test/oci/nosuch"
check_contains "an unknown tag is ENOENT" "No such file" "$out"
check_contains ".imagefs/errors.json says why" "MANIFEST_UNKNOWN" "$(cat "$mnt/.imagefs/errors.json")"
digest=$(skopeo inspect --tls-verify=false "docker://$H/test/oci:1" | python3 -c 'import sys,json; print(json.load(sys.stdin)["Digest"])')
check_eq "a digest path resolves too" "yes" "$([ -f "$mnt/registry/$H/test/oci/@$digest/rootfs/big" ] && echo yes)"
run ls "$mnt/registry/127.0.0.1:$TOKEN/test/oci/1"
check_contains "refused credentials are EACCES" "Permission denied" "$out"
check_contains "registry/ lists the hosts looked up" "$P" "$(ls "$mnt/registry")"
stop_mount "$mnt" "$MOUNT_PID"

# ---- A mount stopped while a request stalls (no byte arrives) ends at once: the request is
# cancelled, not waited for (curl would give up only after a minute).
# sigterm_while_stalled WHAT READY...: once the command READY succeeds (the request stalls),
# the daemon, sent SIGTERM, ends cleanly within 20 s, and the process that waited ($waiter)
# gets an error.
proxy_saw() { proxy_log "$PROXY" | grep -q "$1"; }
sigterm_while_stalled() {
  local i rc=0
  for i in $(seq 1 100); do "${@:2}" && break; sleep 0.1; done
  check_eq "$1: the request got that far" "yes" "$("${@:2}" && echo yes)"
  sleep 1
  kill -TERM "$MOUNT_PID"
  for i in $(seq 1 200); do kill -0 "$MOUNT_PID" 2>/dev/null || break; sleep 0.1; done
  check_eq "SIGTERM during $1: the daemon is gone within 20 s" "gone" \
    "$(kill -0 "$MOUNT_PID" 2>/dev/null && echo running || echo gone)"
  wait "$MOUNT_PID" || rc=$?
  check_eq "... with exit status 0" "0" "$rc"
  rc=0
  wait "$waiter" || rc=$?
  check_eq "... and the waiting process gets an error" "1" "$rc"
  stop_mount "$mnt" "$MOUNT_PID"
  stalled_log=$(proxy_log "$PROXY")
  proxy_reset "$PROXY"
}
export IMAGEFS_STORE=$SCRATCH/store-stall
proxy_reset "$PROXY"  # the log waited on starts empty
start_mount "$mnt"
ls "$mnt/registry/$P/test/oci/1/" >/dev/null  # resolved: manifest and config fetched
fault "/blobs/sha256:" stall 100
stat "$mnt/registry/$P/test/oci/1/rootfs/etc/os-release" >/dev/null 2>&1 & waiter=$!
sigterm_while_stalled "a stalled download" proxy_saw "GET /v2/test/oci/blobs/sha256:"
check_eq "... and nothing half-pulled is registered" "0" "$(ls "$IMAGEFS_STORE/images" 2>/dev/null | wc -l)"
start_mount "$mnt"
fault "/manifests/" stall 100
stat "$mnt/registry/$P/test/oci/1/" >/dev/null 2>&1 & waiter=$!
# (The first lookup to stall asks whether "oci" is a tag of repository "test".)
sigterm_while_stalled "a stalled tag lookup" proxy_saw "/manifests/"
# A credential helper that never answers is killed when the mount stops, not after its 30 s.
mkdir -p "$SCRATCH/hang/bin" "$SCRATCH/hang/docker"
cat > "$SCRATCH/hang/bin/docker-credential-hang" <<SH
#!/bin/sh
echo \$\$ > "$SCRATCH/hang/pid"
exec sleep 120
SH
chmod +x "$SCRATCH/hang/bin/docker-credential-hang"
printf '{"credsStore": "hang"}' > "$SCRATCH/hang/docker/config.json"
PATH="$SCRATCH/hang/bin:$PATH" DOCKER_CONFIG="$SCRATCH/hang/docker" start_mount "$mnt"
stat "$mnt/registry/127.0.0.1:$BASIC/test/oci/1/" >/dev/null 2>&1 & waiter=$!
helper_started() { [ -n "$(cat "$SCRATCH/hang/pid" 2>/dev/null)" ]; }
sigterm_while_stalled "a hung credential helper" helper_started
if helper_started; then
  helper_pid=$(cat "$SCRATCH/hang/pid")
  check_eq "... and the helper is killed" "killed" \
    "$(kill -0 "$helper_pid" 2>/dev/null && echo running || echo killed)"
  kill "$helper_pid" 2>/dev/null || true
fi
# Another process storing the image's layers (holding their ingest locks): the mount's wait
# for it ends when the mount stops, not when the other process's downloads end.
# The holder lets go after 40 s, so that a daemon that does wait still ends, the test too.
export IMAGEFS_STORE=$SCRATCH/store-locked
start_mount "$mnt"
skopeo inspect --config --tls-verify=false "docker://$H/test/oci:1" | python3 -c '
import fcntl, json, os, sys, time
fds = [os.open(os.path.join(sys.argv[1], "locks", d.split(":")[1]), os.O_RDWR | os.O_CREAT)
       for d in json.load(sys.stdin)["rootfs"]["diff_ids"]]
for fd in fds:
    fcntl.flock(fd, fcntl.LOCK_EX)
open(sys.argv[2], "w").close()
time.sleep(40)' "$IMAGEFS_STORE" "$SCRATCH/locks-held" & holder=$!
cleanup_hooks+=("kill $holder 2>/dev/null")
for i in $(seq 1 100); do [ -e "$SCRATCH/locks-held" ] && break; sleep 0.1; done
stat "$mnt/registry/$P/test/oci/1/rootfs/etc/os-release" >/dev/null 2>&1 & waiter=$!
# In Store::LockFile: it opens the lock file, then tries it.
daemon_opened_a_lock() { ls -l "/proc/$MOUNT_PID/fd" 2>/dev/null | grep -q "$IMAGEFS_STORE/locks/"; }
sigterm_while_stalled "a wait for another process storing the layers" daemon_opened_a_lock
check_eq "... while it still stores them" "yes" "$(kill -0 "$holder" 2>/dev/null && echo yes)"
layer_blobs=$(skopeo inspect --raw --tls-verify=false "docker://$H/test/oci:1" |
  python3 -c 'import json, sys; print("\n".join(l["digest"] for l in json.load(sys.stdin)["layers"]))')
check_eq "... and no layer was downloaded meanwhile" "" "$(echo "$stalled_log" | grep -F "$layer_blobs" || true)"
kill "$holder" 2>/dev/null || true; wait "$holder" 2>/dev/null || true

# ---- Quota: lazily pulled images are evicted least recently used first.
export IMAGEFS_STORE=$SCRATCH/store-quota
cat > "$SCRATCH/quota.json" <<JSON
{"quota_bytes": 3000000}
JSON
"$IMAGEFS" pull -q --platform linux/arm64 "$H/test/multi:1" >/dev/null
start_mount "$mnt" --registries "$SCRATCH/quota.json"
cat "$mnt/registry/$H/test/oci/1/rootfs/etc/os-release" >/dev/null
check_contains "a lazy pull within the quota stays" "test/oci" "$("$IMAGEFS" images)"
cat "$mnt/registry/$H/test/other/1/rootfs/etc/os-release" >/dev/null
stop_mount "$mnt" "$MOUNT_PID"
check_eq "past the quota the older lazy pull was evicted" "" "$("$IMAGEFS" images | grep 'test/oci ' || true)"
check_contains "the newer one stays" "test/other" "$("$IMAGEFS" images)"
check_contains "an explicit pull is never evicted" "test/multi" "$("$IMAGEFS" images)"

# ---- prune
export IMAGEFS_STORE=$SCRATCH/store-prune
"$IMAGEFS" pull -q "$H/test/oci@$digest" >/dev/null
run "$IMAGEFS" prune
check_eq "prune keeps used layers" "2" "$(ls "$IMAGEFS_STORE/layers" | wc -l)"
run "$IMAGEFS" prune --all
check_contains "prune --all removes untagged images" "deleted: sha256:" "$out"
check_eq "and their layers" "0" "$(ls "$IMAGEFS_STORE/layers" | wc -l)"


# ---- A default registries.json this user may not read (sudo -u keeps HOME) is skipped
# with a warning; the command goes on (here to a refused connection), never crashes.
mkdir -p "$SCRATCH/home/.config/imagefs" "$SCRATCH/nobody-store"
echo '{}' > "$SCRATCH/home/.config/imagefs/registries.json"
chmod 700 "$SCRATCH/home/.config"
chown 65534:65534 "$SCRATCH/nobody-store"
run setpriv --reuid=65534 --regid=65534 --clear-groups env -u XDG_CONFIG_HOME -u IMAGEFS_REGISTRIES \
  HOME="$SCRATCH/home" IMAGEFS_STORE="$SCRATCH/nobody-store" "$IMAGEFS" pull -q "127.0.0.1:9/none:1"
check_contains "unreadable default registries.json: a warning" "registries.json: cannot be read: Permission denied: using the defaults" "$out"
check_eq "and no internal error" 0 "$(grep -c 'internal error' <<<"$out" || true)"
check_eq "the pull itself fails" 1 "$rc"
finish
