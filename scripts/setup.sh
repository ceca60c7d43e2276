#!/usr/bin/env bash
# Installs what medformer needs on a fresh machine: npm dependencies and, when no WebGPU adapter
# is available, Mesa's software Vulkan driver (lavapipe). Debian bookworm's own Mesa 22 is too old
# for Dawn; Mesa 25 from bookworm-backports works.
# `--test` also installs what the test suite drives for real: redis-server (the `mf sweep` queue's
# broker) and chromium (headless WebGPU for `mf serve`'s in-page inference).
set -euo pipefail
WITH_TEST_TOOLS=0
[ "${1:-}" = "--test" ] && WITH_TEST_TOOLS=1
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

install_test_tools() {
  local missing=()
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  [ ${#missing[@]} -eq 0 ] && { echo "setup: redis-server and chromium present"; return 0; }
  if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: the tests need ${missing[*]}; install them (Debian: apt-get install ${missing[*]}) and rerun." >&2
    return 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
  echo "setup: installed ${missing[*]}"
}

[ "$WITH_TEST_TOOLS" = "1" ] && install_test_tools

if [ "${MF_SKIP_NPM:-0}" != "1" ]; then
  # onnxruntime-node (a dev dependency: the ONNX export test) bundles its CPU binaries; its install script
  # would fetch CUDA files from nuget.org, which the project does not use.
  export ONNXRUNTIME_NODE_INSTALL="${ONNXRUNTIME_NODE_INSTALL:-skip}"
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
fi
