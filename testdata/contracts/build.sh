#!/usr/bin/env bash
# Regenerates the committed .bin/.abi files from the .sol sources with solcjs
# (npm package solc@0.8.30). Tests read the committed outputs, so the suite
# needs no compiler.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
npm install --prefix "$tmp" solc@0.8.30 >/dev/null
for c in Store Token; do
  "$tmp/node_modules/.bin/solcjs" --optimize --bin --abi -o "$tmp/out" "$c.sol" >/dev/null
  cp "$tmp/out/${c}_sol_${c}.bin" "$c.bin"
  cp "$tmp/out/${c}_sol_${c}.abi" "$c.abi"
done
rm -rf "$tmp"
