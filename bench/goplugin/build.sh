#!/bin/sh
# Build the go-plugin baseline binaries into OUTDIR (goplugin-host, goplugin-plugin).
set -eu
if [ $# -ne 1 ]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
mkdir -p "$1"
# Absolute before the cd, so a relative OUTDIR means relative to the caller.
OUTDIR=$(cd "$1" && pwd)
cd "$(dirname "$0")"
go build -trimpath -mod=readonly -o "$OUTDIR/goplugin-host" ./cmd/host
go build -trimpath -mod=readonly -o "$OUTDIR/goplugin-plugin" ./cmd/plugin
