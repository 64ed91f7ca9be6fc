#!/bin/sh
# Build the bare grpc-go server of `hookvisor bench` into OUTDIR (bare-grpc-go; the bench looks
# for it in target/go/, next to the Go SDK's misbehave fixture).
set -eu
if [ $# -ne 1 ]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
mkdir -p "$1"
# Absolute before the cd, so a relative OUTDIR means relative to the caller.
OUTDIR=$(cd "$1" && pwd)
cd "$(dirname "$0")"
go build -trimpath -mod=readonly -buildvcs=false -o "$OUTDIR/bare-grpc-go" .
