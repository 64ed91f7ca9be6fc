#!/usr/bin/env bash
# Checks the OpenClaw adapter: setup.sh (quick when nothing changed), prettier --check,
# tsc --noEmit (strict), then the tests: unit tests of the translation, and the end-to-end tests
# against the real OpenClaw and a real `hookvisor serve` (binaries from $HOOKVISOR_BIN_DIR,
# default <repo>/target/debug; this script builds no Rust). Exit status non-zero on any failure.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/env.sh"

"$here/setup.sh"
export PATH="$(node_bin_dir):$PATH"
cd "$here"

bin_dir="${HOOKVISOR_BIN_DIR:-$repo/target/debug}"
for name in hookvisor deny-list path-guard demo-crash session-tagger approval-gate; do
  if [ ! -x "$bin_dir/$name" ]; then
    echo "check: $bin_dir/$name is missing: build hookvisor and the example plugins first" \
      "(cargo build -p hookvisor-cli -p hookvisor-examples), or set HOOKVISOR_BIN_DIR" >&2
    exit 1
  fi
done
export HOOKVISOR_BIN_DIR="$bin_dir"

echo "check: prettier"
node node_modules/prettier/bin/prettier.cjs --check --log-level=warn .
echo "check: tsc --noEmit"
node node_modules/typescript/bin/tsc -p tsconfig.json --noEmit
echo "check: tests"
node --test --test-concurrency=1 dist/test/*.test.js
