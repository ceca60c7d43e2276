#!/usr/bin/env bash
# Installs what medformer needs on a fresh machine: npm dependencies and, when no WebGPU adapter
# is available, Mesa's software Vulkan driver (lavapipe). Debian bookworm's own Mesa 22 is too old
# for Dawn; Mesa 25 from bookworm-backports works.
set -euo pipefail
cd "$(dirname "$0")/.."

have_vulkan_driver() {
  ls /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1 || ls /etc/vulkan/icd.d/*.json >/dev/null 2>&1
}

install_lavapipe() {
  if [ "$(id -u)" != "0" ]; then
    echo "setup: no Vulkan driver found and not root; install Mesa's lavapipe (mesa-vulkan-drivers >= 24) and libvulkan1 yourself, then rerun." >&2
    return 1
  fi
  if [ ! -f /etc/debian_version ] || ! grep -q '^12' /etc/debian_version; then
    echo "setup: automatic driver install supports Debian 12 (bookworm) only; install a Vulkan driver (Mesa >= 24 lavapipe, or your GPU's) and rerun." >&2
    return 1
  fi
  local src=/etc/apt/sources.list.d/bookworm-backports.sources
  if [ ! -f "$src" ]; then
    # Same URI and key as the machine's own Debian source.
    local uri key
    uri=$(awk '/^URIs:/ && $2 ~ /debian\/?$/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    key=$(awk '/^Signed-By:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    uri=${uri:-http://deb.debian.org/debian}
    key=${key:-/usr/share/keyrings/debian-archive-keyring.gpg}
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: %s\n' "$uri" "$key" > "$src"
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
  echo "setup: installed Mesa lavapipe from bookworm-backports"
}

if [ "${MF_SKIP_DRIVER:-0}" != "1" ]; then
  if have_vulkan_driver && ldconfig -p 2>/dev/null | grep -q libvulkan.so.1; then
    echo "setup: Vulkan driver present"
  else
    install_lavapipe
  fi
fi

if [ "${MF_SKIP_NPM:-0}" != "1" ]; then
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
fi
