#!/usr/bin/env bash
# Packs the OpenClaw adapter as users install it: `npm pack` into DIR (default dist-pack/ here),
# then prints the tarball's absolute path, DIR/hookvisor-openclaw-VERSION.tgz. Usage:
#   pack.sh [DIR]
#   openclaw plugins install npm-pack:"$(pack.sh)"
# The tarball is self-contained: package.json's bundleDependencies put @grpc/grpc-js and the SDK
# (@hookvisor/plugin, which is only a file: dependency in this checkout) with all their
# dependencies inside it, so installing it needs neither this checkout nor the npm registry.
# Runs setup.sh first (its output goes to stderr); stdout is the path alone.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/env.sh"

"$here/setup.sh" >&2
export PATH="$(node_bin_dir):$PATH"

dest="${1:-$here/dist-pack}"
mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"
version="$(node -p 'require(process.argv[1]).version' "$here/package.json")"
tarball="$dest/hookvisor-openclaw-$version.tgz"
rm -f "$tarball"
(cd "$here" && npm24 pack --pack-destination "$dest" --ignore-scripts --loglevel=error >/dev/null)
if [ ! -f "$tarball" ]; then
  echo "pack: npm pack did not write $tarball" >&2
  exit 1
fi
echo "$tarball"
