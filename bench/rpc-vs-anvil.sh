#!/usr/bin/env bash
# End-to-end throughput: pre-signed ETH transfers sent in JSON-RPC batches,
# included transactions per second, optishard's dev node side by side with
# anvil (npm package @foundry-rs/anvil-linux-amd64), same workload, same machine.
# Usage: bench/rpc-vs-anvil.sh [TXS] [BATCH] [CONCURRENCY]
set -euo pipefail
cd "$(dirname "$0")/.."
TXS=${1:-100000}; BATCH=${2:-500}; CONC=${3:-4}
scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/optishard-target}"
cargo build --release -p optishard-testnet -p optishard-bench
BIN="$CARGO_TARGET_DIR/release"
ANVIL_DIR="$HOME/.cache/optishard-anvil"
ANVIL="$ANVIL_DIR/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
if [ ! -x "$ANVIL" ]; then
  mkdir -p "$ANVIL_DIR"
  npm install --prefix "$ANVIL_DIR" @foundry-rs/anvil-linux-amd64 >/dev/null
fi
wait_rpc() {
  for _ in $(seq 1 200); do
    curl -sf -X POST -H 'content-type: application/json' \
      --data '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' "$1" >/dev/null && return 0
    sleep 0.1
  done
  echo "node at $1 did not answer" >&2; return 1
}
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

# anvil as users start it (automine: one block per transaction); it slows
# down as its pool grows, so it gets a smaller run
"$ANVIL" --port 18546 --silent & pids+=($!)
wait_rpc http://127.0.0.1:18546
"$BIN/optishard-bench" rpc-load --url http://127.0.0.1:18546 --txs $((TXS < 2000 ? TXS : 2000)) --batch "$BATCH" --concurrency "$CONC" --label anvil-automine
kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true; pids=()

# anvil at its fastest here: interval mining with a block gas limit that never caps it
"$ANVIL" --port 18546 --silent --block-time 1 --gas-limit 1000000000 & pids+=($!)
wait_rpc http://127.0.0.1:18546
"$BIN/optishard-bench" rpc-load --url http://127.0.0.1:18546 --txs "$TXS" --batch "$BATCH" --concurrency "$CONC" --label anvil-interval
kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true; pids=()

DATA=$(mktemp -d)
"$BIN/optishard" shard --dev --datadir "$DATA" --rpc-addr 127.0.0.1:18547 >/dev/null 2>&1 & pids+=($!)
wait_rpc http://127.0.0.1:18547
"$BIN/optishard-bench" rpc-load --url http://127.0.0.1:18547 --txs "$TXS" --batch "$BATCH" --concurrency "$CONC" --label optishard-dev
kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true; pids=()
rm -rf "$DATA"
