#!/usr/bin/env bash
# Registry credentials as Docker and Podman keep them, against real registries on 127.0.0.1
# (Debian's docker-registry with htpasswd Basic auth, and with token auth through the test
# token server of registry_servers.py): a credential helper script on PATH through
# credHelpers and credsStore, identity tokens through the OAuth2 refresh grant, auth files
# written by real `podman login` and `skopeo login`, $DOCKER_AUTH_CONFIG. No secret may
# appear in anything imagefs prints.
source "$(dirname "$0")/lib.sh"
source "$TESTS_DIR/mount_lib.sh"
source "$TESTS_DIR/registry_lib.sh"

BASIC=$(free_port); TOKEN=$(free_port); TOKSRV=$(free_port)
htpasswd -Bbc "$SCRATCH/htpasswd" alice 's3cr:et' 2>/dev/null
start_registry "$BASIC" "$SCRATCH/registry" "auth: {htpasswd: {realm: test, path: $SCRATCH/htpasswd}}"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$SCRATCH/key.pem" -out "$SCRATCH/cert.pem" -subj /CN=token -days 1 2>/dev/null
python3 "$TESTS_DIR/registry_servers.py" token "$TOKSRV" "$SCRATCH" test-issuer test-service bob hunter2 300 &
started_pids+=($!)
start_registry "$TOKEN" "$SCRATCH/registry" "auth: {token: {realm: http://127.0.0.1:$TOKSRV/token, service: test-service, issuer: test-issuer, rootcertbundle: $SCRATCH/cert.pem}}"
B=127.0.0.1:$BASIC
T=127.0.0.1:$TOKEN

cd "$SCRATCH"
umoci init --layout oci >/dev/null
umoci new --image oci:img >/dev/null
umoci unpack --image oci:img b >/dev/null
echo 'credentials fixture' > b/rootfs/hello
umoci repack --image oci:img b >/dev/null
skopeo copy -q --dest-tls-verify=false --dest-creds 'alice:s3cr:et' oci:oci:img "docker://$B/test/app:1"

# Nothing of this machine's own logins: every place credentials are looked for is ours.
export HOME=$SCRATCH/home XDG_RUNTIME_DIR=$SCRATCH/run DOCKER_CONFIG=$SCRATCH/docker
unset REGISTRY_AUTH_FILE DOCKER_AUTH_CONFIG XDG_CONFIG_HOME
mkdir -p "$HOME" "$XDG_RUNTIME_DIR" "$DOCKER_CONFIG" "$SCRATCH/bin" "$SCRATCH/helperdb"
docker_config() { printf '%s' "$1" > "$DOCKER_CONFIG/config.json"; }

# A credential helper as docker-credential-helpers' protocol has it: the server URL on
# stdin, JSON on stdout. It answers from helperdb/<URL with / and : as _>; a .fail file
# makes it fail with a secret on stdout (which imagefs must never show) and words on stderr.
cat > "$SCRATCH/bin/docker-credential-testhelper" <<SH
#!/bin/sh
[ "\$1" = get ] || exit 2
read -r url
echo "\$url" >> "$SCRATCH/helperdb/asked"
f="$SCRATCH/helperdb/\$(printf '%s' "\$url" | tr '/:' '__')"
if [ -f "\$f.fail" ]; then cat "\$f.fail"; echo "the keychain is locked" >&2; exit 2; fi
if [ -f "\$f" ]; then cat "\$f"; exit 0; fi
echo "credentials not found in native keychain"
exit 1
SH
chmod +x "$SCRATCH/bin/docker-credential-testhelper"
export PATH=$SCRATCH/bin:$PATH
helper_entry() {  # helper_entry URL USERNAME SECRET
  printf '{"ServerURL":"%s","Username":"%s","Secret":"%s"}' "$1" "$2" "$3" > "$SCRATCH/helperdb/$(printf '%s' "$1" | tr '/:' '__')"
}

# Every imagefs output goes here too, to look for secrets at the end.
n=0
pull() {  # pull REF [ENV...]: into a fresh store, at debug level
  n=$((n + 1))
  run env IMAGEFS_STORE="$SCRATCH/store-$n" "$@" "$IMAGEFS" --log-level debug pull "$ref"
  printf '%s\n' "$out" >> "$SCRATCH/imagefs-output.log"
}
ref=$B/test/app:1

# ---- credHelpers and credsStore.
helper_entry "$B" alice 's3cr:et'
docker_config "{\"credHelpers\": {\"$B\": \"testhelper\"}, \"auths\": {\"$B\": {\"auth\": \"$(printf 'alice:wrong' | base64)\"}}}"
pull
check_eq "credHelpers: pull from the Basic registry" 0 "$rc"
check_eq "the helper was asked for the host" "$B" "$(tail -n 1 "$SCRATCH/helperdb/asked")"
helper_entry "$T" bob hunter2
docker_config '{"credsStore": "testhelper"}'
ref=$T/test/app:1 pull
check_eq "credsStore: pull from the token registry" 0 "$rc"
check_eq "the helper was asked for the host" "$T" "$(tail -n 1 "$SCRATCH/helperdb/asked")"
docker_config "{\"credsStore\": \"testhelper\", \"credHelpers\": {\"$T\": \"nosuch\"}}"
ref=$T/test/app:1 pull
check_eq "credHelpers comes before credsStore" 1 "$rc"
check_contains "a helper not on PATH is named" "docker-credential-nosuch: not found on PATH" "$out"

# ---- The helper has nothing: anonymous, which a private registry refuses.
rm "$SCRATCH/helperdb/$(printf '%s' "$B" | tr '/:' '__')"
docker_config '{"credsStore": "testhelper"}'
pull
check_eq "helper says not found: anonymous, refused" 1 "$rc"
check_contains "with the clear error" "none are configured" "$out"
ref=$T/test/app:1
rm "$SCRATCH/helperdb/$(printf '%s' "$T" | tr '/:' '__')"
pull
check_eq "the token server refuses anonymous too" 1 "$rc"
check_contains "and says so" "token server" "$out"

# ---- A failing helper: its name, status and stderr; never its stdout.
printf '{"Username":"bob","Secret":"SECRET-FROM-HELPER"}' > "$SCRATCH/helperdb/$(printf '%s' "$T" | tr '/:' '__').fail"
pull
check_eq "a failing helper fails the pull" 1 "$rc"
check_contains "naming the helper" "docker-credential-testhelper get $T" "$out"
check_contains "its exit status" "exit status 2" "$out"
check_contains "and its stderr" "the keychain is locked" "$out"
rm "$SCRATCH/helperdb/"*.fail

# ---- Identity tokens: the refresh grant at the token server.
# As `docker login` gets one: the password grant with access_type=offline.
rt=$(curl -sf -X POST -d 'grant_type=password&username=bob&password=hunter2&service=test-service&client_id=test&access_type=offline&scope=' \
  "http://127.0.0.1:$TOKSRV/token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["refresh_token"])')
docker_config "{\"auths\": {\"$T\": {\"identitytoken\": \"$rt\"}}}"
pull
check_eq "an identitytoken in auths pulls" 0 "$rc"
check_contains "through the refresh grant" "POST grant_type=refresh_token client_id=imagefs service=test-service scope=repository:test/app:pull" \
  "$(cat "$SCRATCH/token-requests")"
echo "helper-refresh-token-0123" > "$SCRATCH/refresh-tokens"
helper_entry "$T" '<token>' helper-refresh-token-0123
docker_config "{\"credHelpers\": {\"$T\": \"testhelper\"}}"
before=$(grep -c 'grant_type=refresh_token' "$SCRATCH/token-requests" || true)
pull
check_eq "a helper's <token> secret is an identity token" 0 "$rc"
check_eq "exchanged by the refresh grant" $((before + 1)) "$(grep -c 'grant_type=refresh_token' "$SCRATCH/token-requests" || true)"
docker_config "{\"auths\": {\"$T\": {\"identitytoken\": \"not-a-refresh-token\"}}}"
pull
check_eq "a refresh token the server does not know fails" 1 "$rc"
check_contains "with the server's words" "invalid_grant" "$out"
ref=$B/test/app:1
docker_config "{\"auths\": {\"$B\": {\"identitytoken\": \"$rt\"}}}"
pull
check_eq "an identity token cannot do Basic auth" 1 "$rc"
check_contains "and the error says so" "identity token" "$out"

# ---- auth.json written by real podman and skopeo logins, read after Docker's config.
docker_config '{}'
run env REGISTRY_AUTH_FILE="$SCRATCH/podman-auth.json" podman login --tls-verify=false -u alice -p 's3cr:et' "$B"
check_eq "podman login" 0 "$rc"
pull REGISTRY_AUTH_FILE="$SCRATCH/podman-auth.json"
check_eq "pull with the auth file podman login wrote (REGISTRY_AUTH_FILE)" 0 "$rc"
# (podman and skopeo take $DOCKER_CONFIG/config.json for their auth file when it is set.)
run env -u DOCKER_CONFIG skopeo login --tls-verify=false -u bob -p hunter2 "$T"
check_eq "skopeo login to the token registry" 0 "$rc"
check_eq "wrote the primary auth file" yes "$([ -s "$XDG_RUNTIME_DIR/containers/auth.json" ] && echo yes)"
ref=$T/test/app:1 pull
check_eq "pull with \$XDG_RUNTIME_DIR/containers/auth.json" 0 "$rc"
run skopeo login --tls-verify=false --authfile "$HOME/.config/containers/auth.json" -u alice -p 's3cr:et' "$B"
check_eq "skopeo login --authfile ~/.config/containers/auth.json" 0 "$rc"
pull
check_eq "pull with ~/.config/containers/auth.json, after the primary file" 0 "$rc"
docker_config "{\"auths\": {\"$B\": {\"auth\": \"$(printf 'alice:wrong' | base64)\"}}}"
pull
check_eq "Docker's config comes first" 1 "$rc"
check_contains "and its wrong password is refused" "UNAUTHORIZED" "$out"
docker_config '{}'
printf '{"auths": ' > "$SCRATCH/broken.json"
pull REGISTRY_AUTH_FILE="$SCRATCH/broken.json"
check_eq "a malformed auth file fails" 1 "$rc"
check_contains "naming it" "$SCRATCH/broken.json" "$out"
rm -rf "$XDG_RUNTIME_DIR/containers" "$HOME/.config"

# ---- $DOCKER_AUTH_CONFIG in place of the file.
docker_config "{\"auths\": {\"$B\": {\"auth\": \"$(printf 'alice:wrong' | base64)\"}}}"
pull DOCKER_AUTH_CONFIG="{\"auths\": {\"$B\": {\"auth\": \"$(printf 'alice:s3cr:et' | base64)\"}}}"
check_eq "DOCKER_AUTH_CONFIG is used in place of config.json" 0 "$rc"

# ---- A mount sees a login made after it started (the helper is asked again).
docker_config '{"credsStore": "testhelper"}'
export IMAGEFS_STORE=$SCRATCH/store-mount
start_mount "$SCRATCH/mnt"
run cat "$SCRATCH/mnt/registry/$B/test/app/1/rootfs/hello"
check_eq "before the login the mount is refused" 1 "$rc"
helper_entry "$B" alice 's3cr:et'
check_eq "after it the mount pulls" "credentials fixture" "$(cat "$SCRATCH/mnt/registry/$B/test/app/1/rootfs/hello")"
stop_mount "$SCRATCH/mnt" "$MOUNT_PID"

# ---- No secret in anything imagefs said.
for secret in 's3cr:et' hunter2 "$rt" helper-refresh-token-0123 SECRET-FROM-HELPER not-a-refresh-token; do
  check_eq "the secret ${secret:0:6}… never appears in imagefs' output or logs" "" \
    "$(grep -F -l -- "$secret" "$SCRATCH/imagefs-output.log" "$SCRATCH/daemon.log" 2>/dev/null || true)"
done
finish
