#!/usr/bin/env bash
# Checks the TypeScript SDK and example: generated code up to date, prettier, tsc (strict, as the
# linter; setup.sh's build fails on any type error), and the unit tests, which start plugins as
# processes on real Unix sockets and call them with grpc-js. Exits non-zero on any failure.
set -euo pipefail

sdk="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
example="$(cd "$sdk/../../examples/typescript" && pwd)"

"$sdk/setup.sh"

echo "== generated code"
fresh="$(mktemp -d)"
trap 'rm -rf "$fresh"' EXIT
"$sdk/generate.sh" "$fresh"
for part in proto src/generated; do
  if ! diff -r "$sdk/$part" "$fresh/$part"; then
    echo "plugin-sdk/typescript/$part is out of date: run plugin-sdk/typescript/generate.sh" >&2
    exit 1
  fi
done

echo "== prettier"
(cd "$sdk" && node_modules/.bin/prettier --check .)
(cd "$example" && "$sdk/node_modules/.bin/prettier" --check .)

# The starter is built by its users against the package (tests/tests/package_typescript.rs does
# that); here it is type-checked against this SDK, which the example's node_modules links to.
echo "== starter (tsc --noEmit)"
(cd "$example" && node_modules/.bin/tsc -p starter/tsconfig.json --noEmit)

echo "== tests"
(cd "$sdk" && node --test dist/test/*.test.js)
(cd "$example" && node --test dist/*.test.js)
