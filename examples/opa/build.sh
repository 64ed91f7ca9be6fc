#!/usr/bin/env bash
# Builds Open Policy Agent (the `opa` command) from the Go module proxy into target/go/opa, for the
# OPA bridge's test (tests/tests/opa.rs) and docs/opa.md. Skipped when target/go/opa was already
# built from this version (`go version -m` records it), so CI builds it once per cache.
set -euo pipefail

OPA_VERSION=v1.22.4

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=$repo/target/go

if go version -m "$out/opa" 2>/dev/null | grep -q "[[:space:]]$OPA_VERSION[[:space:]]"; then
	exit 0
fi
mkdir -p "$out"
echo "building opa $OPA_VERSION into target/go/ (once; a few minutes on 2 cores)"
GOBIN=$out GOFLAGS=-mod=mod go install -trimpath "github.com/open-policy-agent/opa@$OPA_VERSION"
