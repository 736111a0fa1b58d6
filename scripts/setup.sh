#!/usr/bin/env bash
# Installs imagefs's build dependencies and test tools from Debian, idempotently and
# without prompts. Packages already installed are not touched (no apt-get update then).
set -euo pipefail

packages=(
  build-essential cmake pkg-config git clang libclang-rt-14-dev
  libfuse3-dev fuse3 libarchive-dev nlohmann-json3-dev libssl-dev libcurl4-openssl-dev
  libspdlog-dev libgtest-dev libexpected-dev libcli11-dev libisal-dev
  docker-registry skopeo umoci debootstrap busybox-static python3 apache2-utils openssl curl
  attr zstd xz-utils bzip2 rsync bc docker.io podman containerd stargz-snapshotter fuse-overlayfs locales
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "setup: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
