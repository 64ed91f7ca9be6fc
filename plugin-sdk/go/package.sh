#!/usr/bin/env bash
# Copies the Go SDK into a directory that builds on its own, without this repository: go.mod,
# go.sum, the package's sources, hookvisorpb/ and README.md; not the tests, the fixture or these
# scripts, which read the rest of the repository. Builds the copy to be sure, then prints its
# path (the only line on stdout). A plugin uses it with `replace MODULE => PATH` in its go.mod,
# since the module is not published yet.
# Usage: package.sh [OUT_DIR]  (default: target/go); the copy is OUT_DIR/hookvisor-plugin-sdk-go,
# replaced if it is there.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$repo/target/go}
MODULE=$(awk '$1 == "module" { print $2; exit }' "$here/go.mod")

mkdir -p "$out"
copy=$(cd "$out" && pwd)/hookvisor-plugin-sdk-go
rm -rf "$copy"
mkdir -p "$copy/hookvisorpb"
cd "$here"
cp go.mod go.sum README.md "$copy/"
for file in *.go; do
	[[ $file == *_test.go ]] || cp "$file" "$copy/"
done
cp hookvisorpb/*.go "$copy/hookvisorpb/"
chmod -R a+rX "$copy"

# Outside any workspace, with only what go.mod and go.sum pin: what a user's build will see.
(cd "$copy" && GOWORK=off GOFLAGS=-mod=readonly go build -buildvcs=false ./...) >&2 ||
	{ echo "the copy of $MODULE in $copy does not build" >&2; exit 1; }
echo "$copy"
