#!/usr/bin/env bash
# Builds optishard (release) and starts a single-shard dev node on
# 127.0.0.1:8545 with the dev mnemonic's accounts funded. Extra arguments go
# to `optishard shard --dev` (see --help), e.g. --datadir DIR, --rpc-addr ADDR.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/optishard-target}"
cargo build --release -p optishard-testnet --bin optishard
exec "$CARGO_TARGET_DIR/release/optishard" shard --dev "$@"
