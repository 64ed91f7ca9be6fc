#!/usr/bin/env bash
# Regenerates hookvisorpb/ from proto/hookvisor/v1/hookvisor.proto with pinned tools:
# protoc from PyPI's grpcio-tools (in the repo's .venv), protoc-gen-go and protoc-gen-go-grpc
# from the Go module proxy (installed into target/go/tools). Usage: generate.sh [OUT_DIR]
# (default: this directory; check.sh passes a temporary one and diffs).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$here}
# The module path, set in go.mod alone (not published yet; set-module.sh renames it).
MODULE=$(awk '$1 == "module" { print $2; exit }' "$here/go.mod")

PROTOC_GEN_GO=v1.36.12      # google.golang.org/protobuf, the same as go.mod's
PROTOC_GEN_GO_GRPC=v1.6.2   # google.golang.org/grpc/cmd/protoc-gen-go-grpc
GRPCIO_TOOLS=1.85.1
PROTOBUF_PY=7.36.2

tools=$repo/target/go/tools
python=$repo/.venv/bin/python

# Installs $2@$3 into $tools unless the binary there was already built from that version.
install_tool() {
	local name=$1 pkg=$2 version=$3
	if ! go version -m "$tools/$name" 2>/dev/null | grep -q "[[:space:]]$version[[:space:]]"; then
		GOBIN=$tools GOFLAGS=-mod=mod go install "$pkg@$version"
	fi
}
install_tool protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go "$PROTOC_GEN_GO"
install_tool protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC"

if ! "$python" -c "import grpc_tools" 2>/dev/null; then
	[ -x "$python" ] || python3 -m venv "$repo/.venv"
	"$python" -m pip install --quiet "grpcio-tools==$GRPCIO_TOOLS" "protobuf==$PROTOBUF_PY"
fi

pb=$MODULE/hookvisorpb
mkdir -p "$out"
"$python" -m grpc_tools.protoc \
	--proto_path="$repo/proto" \
	--plugin=protoc-gen-go="$tools/protoc-gen-go" \
	--plugin=protoc-gen-go-grpc="$tools/protoc-gen-go-grpc" \
	--go_out="$out" --go_opt=module="$MODULE" \
	--go_opt=Mhookvisor/v1/hookvisor.proto="$pb" \
	--go-grpc_out="$out" --go-grpc_opt=module="$MODULE" \
	--go-grpc_opt=Mhookvisor/v1/hookvisor.proto="$pb" \
	hookvisor/v1/hookvisor.proto
