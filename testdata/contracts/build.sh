#!/usr/bin/env bash
# Regenerates the committed .bin/.abi files from the .sol sources with solcjs
# (npm package solc@0.8.30). Tests read the committed outputs, so the suite
# needs no compiler.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
npm install --prefix "$tmp" solc@0.8.30 >/dev/null
# contracts import the bridge's published interface
cp ../../contracts/IBridge.sol .
trap 'rm -f IBridge.sol' EXIT
for c in Store Token Pinger Clock; do
  "$tmp/node_modules/.bin/solcjs" --optimize --bin --abi -o "$tmp/out" "$c.sol" >/dev/null
  cp "$tmp/out/${c}_sol_${c}.bin" "$c.bin"
  cp "$tmp/out/${c}_sol_${c}.abi" "$c.abi"
done
"$tmp/node_modules/.bin/solcjs" --abi -o "$tmp/out" IBridge.sol >/dev/null
# the published ABI, formatted
python3 -m json.tool "$tmp/out/IBridge_sol_IBridge.abi" > ../../contracts/IBridge.json
rm -rf "$tmp"
