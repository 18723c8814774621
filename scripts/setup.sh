#!/usr/bin/env bash
# Installs the system packages the build needs on a fresh Debian machine:
# libclang (rocksdb's bindings are generated with bindgen) and a C++ compiler;
# Prometheus, which the test suite runs against a testnet's generated
# scrape config; Chromium, which renders a scenario sweep's report; and
# iproute2 and iptables for scenarios on processes in network namespaces.
set -euo pipefail
need=()
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
# scenario reports are checked as a browser shows them (headless screenshot)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# scenarios on processes put each node in a network namespace: iproute2's
# ip and tc, and iptables for the kernel's drops
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v iptables >/dev/null 2>&1 || need+=(iptables)
if ((${#need[@]})); then
  echo "setup: installing ${need[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y --no-install-recommends "${need[@]}" \
    || { $SUDO apt-get update && $SUDO apt-get install -y --no-install-recommends "${need[@]}"; }
fi

# Standard clients the test suite drives a shard with (npm): Foundry's cast
# (the README's examples), and ethers v6 with Uniswap V2's published
# contracts (testdata/js).
TOOLS="${OPTISHARD_TOOLS:-$HOME/.cache/optishard-tools}"
NPM_PACKAGES=(@foundry-rs/cast-linux-amd64@1.7.1 ethers@6.17.0 @uniswap/v2-core@1.0.1)
missing=()
[ -x "$TOOLS/node_modules/@foundry-rs/cast-linux-amd64/bin/cast" ] || missing+=(cast)
[ -f "$TOOLS/node_modules/ethers/package.json" ] || missing+=(ethers)
[ -f "$TOOLS/node_modules/@uniswap/v2-core/build/UniswapV2Pair.json" ] || missing+=(uniswap)
if ((${#missing[@]})); then
  command -v npm >/dev/null 2>&1 || {
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends npm \
      || { $SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends npm; }
  }
  echo "setup: installing ${NPM_PACKAGES[*]} into $TOOLS" >&2
  mkdir -p "$TOOLS"
  npm install --prefix "$TOOLS" --no-audit --no-fund --silent "${NPM_PACKAGES[@]}" >&2
fi
