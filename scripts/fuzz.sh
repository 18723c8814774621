#!/usr/bin/env bash
# Fuzzes every decoder that reads peer, RPC or disk bytes (prover::fuzzing
# lists them) with cargo-fuzz (libFuzzer) on the nightly toolchain.
#   scripts/fuzz.sh [RUNS] [TARGET...]     default: 1000000 runs of every target
# New interesting inputs land in fuzz/corpus/<target>/; the test suite
# replays that corpus on stable (prover/tests/it/fuzz_corpus.rs).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
runs="${1:-1000000}"
shift || true
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz
targets=("$@")
((${#targets[@]})) || targets=(shard_block beacon_block sync_request sync_response tx_batch transaction evidence message dispute)
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  start=$(date +%s)
  log="$(mktemp)"
  if ! cargo +nightly fuzz run "$t" "corpus/$t" -- -runs="$runs" -max_len=65536 -print_final_stats=1 >"$log" 2>&1; then
    tail -60 "$log"
    echo "$t: the fuzzer found a failure (artifacts in fuzz/artifacts/$t)" >&2
    exit 1
  fi
  execs=$(grep -m1 "stat::number_of_executed_units" "$log" | awk '{print $2}')
  echo "$t: ${execs:-?} executions in $(( $(date +%s) - start )) s, no failure"
  rm -f "$log"
done
