#!/usr/bin/env bash
# Builds the Go SDK, the Go example and the test fixture into target/go/ (path-guard, misbehave).
# Modules come from the Go module proxy, pinned by go.mod and go.sum; Go's build cache makes a
# second run quick.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=$repo/target/go
build=(go build -trimpath -mod=readonly -buildvcs=false)

mkdir -p "$out"
cd "$here"
"${build[@]}" ./...
"${build[@]}" -o "$out/misbehave" ./internal/fixtures/misbehave
cd "$repo/examples/go"
"${build[@]}" -o "$out/path-guard" ./cmd/path-guard
echo "built $out/path-guard and $out/misbehave"
