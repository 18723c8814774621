#!/usr/bin/env bash
# Builds optishard and starts a local testnet: one beacon node and
# 4 shards x 2 validators as separate processes on 127.0.0.1, then shows its
# status and a cross-shard transfer (`testnet demo`). Extra arguments go to `optishard testnet up` (see --help), e.g.
# --shards 2 --validators-per-shard 3 --slot-ms 1000 --datadir DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/optishard-target}"
# the dev profile (dependencies optimised, see Cargo.toml) is the one the
# test suite builds: scripts/test.sh after this compiles no dependency
# again, rocksdb's C++ above all. Benchmarks build --release.
cargo build -p optishard-testnet --bin optishard
bin="$CARGO_TARGET_DIR/debug/optishard"
"$bin" testnet up "$@"
datadir=optishard-testnet
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  [ "${args[$i]}" = "--datadir" ] && datadir="${args[$((i + 1))]}"
  [ "${args[$i]}" = "--foreground" ] && exit 0
done
sleep 6
"$bin" testnet status --datadir "$datadir"
echo
# a cross-shard transfer, stage by stage (shard 0 -> the last shard)
"$bin" testnet demo --datadir "$datadir"
echo
echo "binary: $bin  (status / down: $bin testnet status|down --datadir $datadir)"
