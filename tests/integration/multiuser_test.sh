#!/usr/bin/env bash
# A second, unprivileged user (nobody) against a root mount with -o allow_other: no write
# anywhere, no file of an image beyond its mode bits, no registry/ lookup or pull with the
# mounter's credentials, no secret in a log or status file, nothing of the store readable.
source "$(dirname "$0")/lib.sh"
source "$TESTS_DIR/mount_lib.sh"
source "$TESTS_DIR/registry_lib.sh"

PRIVATE=$(free_port); PUBLIC=$(free_port); PROXY=$(free_port)
htpasswd -Bbc "$SCRATCH/htpasswd" alice 's3cr:et' 2>/dev/null
start_registry "$PRIVATE" "$SCRATCH/private" "auth: {htpasswd: {realm: test, path: $SCRATCH/htpasswd}}"
start_registry "$PUBLIC" "$SCRATCH/public" ""
# In front of the private registry: logs whether each request carried credentials.
start_proxy "$PROXY" "127.0.0.1:$PRIVATE"

cd "$SCRATCH"
umoci init --layout oci >/dev/null
umoci new --image oci:img >/dev/null
umoci unpack --image oci:img b >/dev/null
mkdir -p b/rootfs/etc
echo 'PRETTY_NAME="private fixture"' > b/rootfs/etc/os-release
echo 'root-only' > b/rootfs/etc/secret && chmod 600 b/rootfs/etc/secret
umoci repack --image oci:img b >/dev/null
for tag in 1 2; do
  skopeo copy -q --dest-tls-verify=false --dest-creds 'alice:s3cr:et' oci:oci:img "docker://127.0.0.1:$PRIVATE/private/app:$tag"
done
skopeo copy -q --dest-tls-verify=false oci:oci:img "docker://127.0.0.1:$PUBLIC/public/app:1"

m=$SCRATCH/mnt
start_mount "$m" --creds 'alice:s3cr:et' -o allow_other
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
priv=$m/registry/127.0.0.1:$PROXY/private/app
pub=$m/registry/127.0.0.1:$PUBLIC/public/app

# ---- registry/: other users get anonymous access only.
proxy_reset "$PROXY"
run as_nobody cat "$priv/1/rootfs/etc/os-release"
check_eq "nobody cannot read a private image through registry/" 1 "$rc"
check_contains "and is told it lacks permission" "Permission denied" "$out"
check_eq "nobody's lookup sent no credentials" "" "$(proxy_log "$PROXY" | grep 'auth=yes' || true)"
check_contains "(the registry was asked)" "/v2/private/" "$(proxy_log "$PROXY")"
run as_nobody cat "$pub/1/rootfs/etc/os-release"
check_eq "nobody reads a public image through registry/" 'PRETTY_NAME="private fixture"' "$out"

proxy_reset "$PROXY"
run cat "$priv/1/rootfs/etc/os-release"
check_eq "the mounter reads the private image" 'PRETTY_NAME="private fixture"' "$out"
check_contains "with the mounter's credentials" "auth=yes" "$(proxy_log "$PROXY")"
proxy_reset "$PROXY"
run as_nobody cat "$priv/1/rootfs/etc/os-release"
check_eq "nobody still cannot, right after (no cached dentry lets them in)" 1 "$rc"
run as_nobody ls "$priv/1"
check_eq "not even list it" 2 "$rc"
check_eq "still without credentials" "" "$(proxy_log "$PROXY" | grep 'auth=yes' || true)"
run as_nobody cat "$priv/1/config.json"
check_eq "nor read its config" 1 "$rc"

# Images in the store stay visible as any image is: by their modes.
tagdir=$m/tags/127.0.0.1:$PROXY/private/app/1/rootfs
run as_nobody cat "$tagdir/etc/os-release"
check_eq "a pulled image is in tags/ for everyone, as loaded images are" 'PRETTY_NAME="private fixture"' "$out"
run as_nobody cat "$tagdir/etc/secret"
check_eq "but no file beyond its mode bits (0600 root)" 1 "$rc"
check_eq "root reads it" "root-only" "$(cat "$tagdir/etc/secret")"

# ---- Status files name private repositories: the mounter's alone.
run as_nobody cat "$m/.imagefs/errors.json"
check_contains "nobody cannot read errors.json" "Permission denied" "$out"
run as_nobody cat "$m/.imagefs/pulls.json"
check_contains "nor pulls.json" "Permission denied" "$out"
check_contains "the mounter can" "private/app" "$(cat "$m/.imagefs/errors.json")"
run as_nobody cat "$m/.imagefs/stats"
check_eq "the EIO counters are no secret" 0 "$rc"

# ---- No write anywhere.
echo x > "$SCRATCH/x.tar"; chmod 644 "$SCRATCH/x.tar"
run as_nobody cp "$SCRATCH/x.tar" "$m/import/"
check_contains "nobody cannot write into import/" "Permission denied" "$out"
for target in "$m/x" "$m/images/x" "$m/tags/x" "$tagdir/x"; do
  run as_nobody touch "$target"; check_eq "nobody cannot create $target" 1 "$rc"
  run as_nobody mkdir "$target"; check_eq "nobody cannot mkdir $target" 1 "$rc"
done
run as_nobody rm -f "$tagdir/etc/os-release"; check_eq "nobody cannot remove a file" 1 "$rc"
run as_nobody sh -c "echo x >> '$tagdir/etc/os-release'"; check_eq "nobody cannot append" 2 "$rc"

# ---- Secrets and the store.
check_eq "no password in the daemon's log" "" "$(grep -c 's3cr' "$SCRATCH/daemon.log" | grep -v '^0$' || true)"
check_eq "no Basic credentials either" "" "$(grep -F "$(printf 'alice:s3cr:et' | base64)" "$SCRATCH/daemon.log" || true)"
check_eq "no password in the status files" "" "$(cat "$m/.imagefs/"*.json | grep 's3cr' || true)"
check_eq "nothing in the store is open to others" "" "$(find "$IMAGEFS_STORE" -perm /077 -printf '%p %m\n')"
run as_nobody ls "$IMAGEFS_STORE"; check_contains "nobody cannot list the store" "Permission denied" "$out"

# ---- -o share_credentials lends them on purpose.
m2=$SCRATCH/mnt2
start_mount "$m2" --creds 'alice:s3cr:et' -o allow_other,share_credentials
proxy_reset "$PROXY"
run as_nobody cat "$m2/registry/127.0.0.1:$PROXY/private/app/2/rootfs/etc/os-release"
check_eq "with share_credentials nobody may pull a private image" 'PRETTY_NAME="private fixture"' "$out"
check_contains "using the mounter's credentials" "auth=yes" "$(proxy_log "$PROXY")"
finish
