#!/usr/bin/env bash
# Runs the whole test suite (unit, property, integration, crash tests).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/optishard-target}"
cargo test --workspace "$@"
