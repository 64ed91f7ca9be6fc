// Package shared holds what host and plugin must agree on: the handshake,
// the plugin map and a hand-written gRPC service (no protoc available).
package shared

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// PluginName is the key under which the bench plugin is dispensed.
const PluginName = "bench"

// CallMethod is the full gRPC method name of the single unary call.
const CallMethod = "/bench.Bench/Call"

// Handshake guards against running the plugin binary by hand or pairing
// it with an unrelated host.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "HOOKVISOR_BENCH_PLUGIN",
	MagicCookieValue: "7c1e4f0a-hookvisor-bench-goplugin",
}

// Caller is what the host gets back from Dispense.
type Caller interface {
	Call(ctx context.Context, req *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error)
}

// PluginMap is shared so both sides register the same plugin set.
func PluginMap(impl Caller) map[string]plugin.Plugin {
	return map[string]plugin.Plugin{PluginName: &BenchPlugin{Impl: impl}}
}

// BenchPlugin is gRPC-only; the embedded type rejects net/rpc.
type BenchPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Caller // set on the plugin side only
}

// benchServer is the handler type the ServiceDesc checks against.
type benchServer interface {
	Call(ctx context.Context, req *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error)
}

func callHandler(srv interface{}, ctx context.Context, dec func(interface{}) error, interceptor grpc.UnaryServerInterceptor) (interface{}, error) {
	in := new(wrapperspb.BytesValue)
	if err := dec(in); err != nil {
		return nil, err
	}
	if interceptor == nil {
		return srv.(benchServer).Call(ctx, in)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: CallMethod}
	handler := func(ctx context.Context, req interface{}) (interface{}, error) {
		return srv.(benchServer).Call(ctx, req.(*wrapperspb.BytesValue))
	}
	return interceptor(ctx, in, info, handler)
}

// serviceDesc stands in for protoc-generated code: one unary method whose
// request and response are the prebuilt BytesValue message.
var serviceDesc = grpc.ServiceDesc{
	ServiceName: "bench.Bench",
	HandlerType: (*benchServer)(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "Call", Handler: callHandler}},
	Streams:     []grpc.StreamDesc{},
	Metadata:    "bench.proto",
}

// GRPCServer registers the plugin's implementation.
func (p *BenchPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	s.RegisterService(&serviceDesc, p.Impl)
	return nil
}

// GRPCClient wraps the connection go-plugin set up to the plugin.
func (p *BenchPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return &Client{conn: c}, nil
}

// Client is the host-side stub.
type Client struct {
	conn *grpc.ClientConn
}

// Call performs one unary RPC.
func (c *Client) Call(ctx context.Context, req *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) {
	out := new(wrapperspb.BytesValue)
	if err := c.conn.Invoke(ctx, CallMethod, req, out); err != nil {
		return nil, err
	}
	return out, nil
}
