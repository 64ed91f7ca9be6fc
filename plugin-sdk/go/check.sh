#!/usr/bin/env bash
# Checks the Go SDK, the Go example and the starter: generated code up to date, gofmt, go vet,
# go test.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
modules=("$here" "$repo/examples/go" "$repo/examples/go/starter")

fresh=$(mktemp -d)
trap 'rm -rf "$fresh"' EXIT
"$here/generate.sh" "$fresh"
if ! diff -r "$here/hookvisorpb" "$fresh/hookvisorpb"; then
	echo "hookvisorpb/ is not what generate.sh makes; run plugin-sdk/go/generate.sh" >&2
	exit 1
fi

unformatted=$(gofmt -l "${modules[@]}")
if [ -n "$unformatted" ]; then
	echo "not gofmt-formatted (run gofmt -w):" >&2
	echo "$unformatted" >&2
	exit 1
fi

for module in "${modules[@]}"; do
	(cd "$module" && go vet -mod=readonly ./... && go test -mod=readonly -count=1 ./...)
done
echo "plugin-sdk/go: all checks passed"
