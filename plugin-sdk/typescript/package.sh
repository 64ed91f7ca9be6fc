#!/usr/bin/env bash
# Builds the npm package of the SDK, @hookvisor/plugin (not published on npm yet), and prints the
# tarball's absolute path, OUT_DIR/hookvisor-plugin-VERSION.tgz. Usage:
#   plugin-sdk/typescript/package.sh [OUT_DIR]      # default OUT_DIR: plugin-sdk/typescript/dist-pack
#   npm install "$(plugin-sdk/typescript/package.sh)"   # in a plugin's package
# The tarball holds the compiled JavaScript with its types (dist/src/*.js, *.d.ts), the proto it
# loads at run time (proto/), package.json and README.md: it needs neither this checkout nor a
# build step when installed (no install scripts), only its three dependencies from the npm
# registry. It is packed from a fresh build in a temporary directory, so nothing stale in dist/
# gets in. Runs setup.sh first (its output goes to stderr); stdout is the path alone.
set -euo pipefail

sdk="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$sdk/setup.sh" >&2

out="${1:-$sdk/dist-pack}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT

(cd "$sdk" && node_modules/.bin/tsc -p tsconfig.build.json --outDir "$stage/dist")
cp -R "$sdk/package.json" "$sdk/README.md" "$sdk/proto" "$stage/"

version="$(node -p 'require(process.argv[1]).version' "$sdk/package.json")"
tarball="$out/hookvisor-plugin-$version.tgz"
rm -f "$tarball"
# --ignore-scripts: the build is done; prepack (a build for `npm pack` run in the SDK) would
# find no compiler here.
(cd "$stage" && npm pack --pack-destination "$out" --ignore-scripts --loglevel=error >/dev/null)
if [ ! -f "$tarball" ]; then
  echo "package.sh: npm pack did not write $tarball" >&2
  exit 1
fi
echo "$tarball"
