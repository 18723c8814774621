#!/usr/bin/env bash
# Ethereum's state tests through optishard's state-transition function
# (prover/tests/it/state_tests.rs).
#
#   scripts/state-tests.sh            fetch the public fixtures and run them all:
#                                     execution-spec-tests' stable release (state_tests,
#                                     Osaka and earlier) and ethereum/tests'
#                                     GeneralStateTests (Cancun)
#   scripts/state-tests.sh DIR        run every state test fixture under DIR
#   scripts/state-tests.sh fill       refill testdata/state-tests/optishard.json (the
#                                     suite's own tests) with Ethereum's reference
#                                     implementation (PyPI ethereum-execution)
#   scripts/state-tests.sh osaka [SRC] refill ethereum/tests' GeneralStateTests (or SRC)
#                                     for Osaka, the fork shards run, with the
#                                     reference implementation, and run them
#
# OPTISHARD_STATE_FORKS=Cancun,Osaka limits the forks run (default: every fork
# from Paris on that a fixture has); OPTISHARD_STATE_REPORT=FILE writes every
# case's outcome to FILE.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/optishard-target}"
TOOLS="${OPTISHARD_TOOLS:-$HOME/.cache/optishard-tools}"

reference() {
  if [ ! -x "$TOOLS/eels/bin/ethereum-spec-evm" ]; then
    python3 -m venv "$TOOLS/eels"
    "$TOOLS/eels/bin/pip" install --quiet ethereum-execution==2.20.0
  fi
}

run() {
  echo "state tests under $1" >&2
  OPTISHARD_STATE_TESTS="$1" cargo test -p optishard-prover --test it state_tests::ethereum_state_tests \
    -- --ignored --nocapture --exact
}

ethereum_tests() {
  local dir="$TOOLS/state-fixtures/ethereum-tests"
  [ -d "$dir/GeneralStateTests" ] || git clone --depth 1 https://github.com/ethereum/tests "$dir"
  echo "$dir/GeneralStateTests"
}

case "${1:-}" in
fill)
  reference
  T8N="$TOOLS/eels/bin/ethereum-spec-evm" python3 testdata/state-tests/fill.py
  exit 0
  ;;
osaka)
  reference
  src="${2:-$(ethereum_tests)}"
  out="$TOOLS/state-fixtures/osaka"
  rm -rf "$out"
  mkdir -p "$out"
  # two processes, one per core
  "$TOOLS/eels/bin/python" testdata/state-tests/fill.py --refill "$src" "$out" 0 2 &
  "$TOOLS/eels/bin/python" testdata/state-tests/fill.py --refill "$src" "$out" 1 2
  wait
  run "$out"
  exit 0
  ;;
esac

if [ -n "${1:-}" ]; then
  run "$1"
  exit 0
fi
eest="$TOOLS/state-fixtures/eest"
if [ ! -d "$eest/fixtures/state_tests" ]; then
  mkdir -p "$eest"
  curl -fL https://github.com/ethereum/execution-spec-tests/releases/latest/download/fixtures_stable.tar.gz \
    | tar -xz -C "$eest"
fi
run "$eest/fixtures/state_tests"
# the ethereum/tests checkout carries blockchain and other test kinds too:
# only its state tests
run "$(ethereum_tests)"
