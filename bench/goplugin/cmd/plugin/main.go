// Command goplugin-plugin is the go-plugin side of the benchmark: it answers
// every call at once with a fixed small payload, so the measurement is the
// go-plugin/gRPC round trip and nothing else.
package main

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"hookvisor.dev/bench/goplugin/internal/shared"
)

// reply is built once so the handler does no per-call work beyond gRPC's.
var reply = wrapperspb.Bytes([]byte(`{"decision":"allow","reason":"bench-ok"}`))

type impl struct{}

func (impl) Call(context.Context, *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) {
	return reply, nil
}

func main() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: shared.Handshake,
		Plugins:         shared.PluginMap(impl{}),
		GRPCServer:      plugin.DefaultGRPCServer,
	})
}
