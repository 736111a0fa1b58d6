# Registry helpers for integration tests: Debian's docker-registry and the test proxy
# (registry_servers.py) on free ports of 127.0.0.1, stopped by PID when the test ends.
# Source it after lib.sh.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
started_pids=()
cleanup_hooks+=('kill_child "${started_pids[@]}"')
wait_http() { for _ in $(seq 1 100); do curl -s -o /dev/null ${2:-} "$1" && return 0; sleep 0.1; done; echo "no server at $1" >&2; return 1; }

# start_registry PORT STORAGE_DIR EXTRA_YAML [HTTP_TLS_YAML]
start_registry() {
  cat > "$SCRATCH/reg-$1.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $2}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$1, ${4:-}}
$3
YML
  docker-registry serve "$SCRATCH/reg-$1.yml" >>"$SCRATCH/registry.log" 2>&1 &
  started_pids+=($!)
  if [ -n "${4:-}" ]; then wait_http "https://127.0.0.1:$1/v2/" -k; else wait_http "http://127.0.0.1:$1/v2/"; fi
}

# start_proxy PORT UPSTREAM [STORAGE_HOST]: the fault-injecting, request-logging proxy.
start_proxy() {
  python3 "$TESTS_DIR/registry_servers.py" proxy "$1" "$2" "$SCRATCH" ${3:+"$3"} &
  started_pids+=($!)
  wait_http "http://127.0.0.1:$1/_proxy/log"
}
# proxy_log PORT: every request the proxy saw ("METHOD PATH RANGE auth=yes|no");
# proxy_reset PORT forgets them and any armed fault.
proxy_log() { curl -sf "http://127.0.0.1:$1/_proxy/log"; }
proxy_reset() { curl -sf -X DELETE "http://127.0.0.1:$1/_proxy/log" >/dev/null; }
