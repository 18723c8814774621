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
#
# OPTISHARD_STATE_FORKS=Cancun,Osaka limits the forks run (default: every fork
# from Paris on that a fixture has); OPTISHARD_STATE_REPORT=FILE writes every
# case's outcome to FILE.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/optishard-target}"
TOOLS="${OPTISHARD_TOOLS:-$HOME/.cache/optishard-tools}"

if [ "${1:-}" = fill ]; then
  if [ ! -x "$TOOLS/eels/bin/ethereum-spec-evm" ]; then
    python3 -m venv "$TOOLS/eels"
    "$TOOLS/eels/bin/pip" install --quiet ethereum-execution==2.20.0
  fi
  T8N="$TOOLS/eels/bin/ethereum-spec-evm" python3 testdata/state-tests/fill.py
  exit 0
fi

DIR="${1:-}"
if [ -z "$DIR" ]; then
  DIR="$TOOLS/state-fixtures"
  if [ ! -d "$DIR/eest/fixtures/state_tests" ]; then
    mkdir -p "$DIR/eest"
    curl -fL https://github.com/ethereum/execution-spec-tests/releases/latest/download/fixtures_stable.tar.gz \
      | tar -xz -C "$DIR/eest"
  fi
  if [ ! -d "$DIR/ethereum-tests/GeneralStateTests" ]; then
    git clone --depth 1 https://github.com/ethereum/tests "$DIR/ethereum-tests"
  fi
  # the ethereum/tests checkout carries blockchain and other test kinds too
  DIR_LIST=("$DIR/eest/fixtures/state_tests" "$DIR/ethereum-tests/GeneralStateTests")
else
  DIR_LIST=("$DIR")
fi
for d in "${DIR_LIST[@]}"; do
  echo "state tests under $d" >&2
  OPTISHARD_STATE_TESTS="$d" cargo test -p optishard-prover --test it state_tests::ethereum_state_tests \
    -- --ignored --nocapture --exact
done
