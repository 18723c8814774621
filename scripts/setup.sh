#!/usr/bin/env bash
# Installs the system packages the build needs on a fresh Debian machine:
# libclang (rocksdb's bindings are generated with bindgen) and a C++ compiler;
# and Prometheus, which the test suite runs against a testnet's generated
# scrape config.
set -euo pipefail
need=()
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
if ((${#need[@]})); then
  echo "setup: installing ${need[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y --no-install-recommends "${need[@]}" \
    || { $SUDO apt-get update && $SUDO apt-get install -y --no-install-recommends "${need[@]}"; }
fi

# Foundry's cast, which the test suite runs the README's examples with (npm).
TOOLS="${OPTISHARD_TOOLS:-$HOME/.cache/optishard-tools}"
CAST="$TOOLS/node_modules/@foundry-rs/cast-linux-amd64/bin/cast"
if [ ! -x "$CAST" ]; then
  command -v npm >/dev/null 2>&1 || {
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends npm \
      || { $SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends npm; }
  }
  echo "setup: installing cast 1.7.1 into $TOOLS" >&2
  mkdir -p "$TOOLS"
  npm install --prefix "$TOOLS" --no-audit --no-fund --silent @foundry-rs/cast-linux-amd64@1.7.1 >&2
fi
