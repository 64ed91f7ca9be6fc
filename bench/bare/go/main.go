// Command bare-grpc-go is a benchmark baseline, not an example to copy: the Go SDK's trivial
// plugin ("no opinion" on every tool call) written directly on grpc-go, without the SDK (no
// health service, no JSON parsing, no handler goroutine, no signal handling). `hookvisor bench`
// calls it and the SDK's misbehave fixture in alternating blocks; the ratio of the two is what
// the Go SDK costs (sdk_ratio_go_*). It serves hookvisor.v1.Plugin on HOOKVISOR_PLUGIN_SOCKET
// until killed, in grpc-go's serving mode MODE, its only argument:
//   - default: grpc.NewServer() as it comes, a new goroutine per stream;
//   - workers: grpc.NumStreamWorkers(GOMAXPROCS), streams handed to long-lived goroutines.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"

	"google.golang.org/grpc"

	pb "hookvisor.dev/plugin-sdk/go/hookvisorpb"
)

type bare struct {
	pb.UnimplementedPluginServer
}

func (bare) Describe(context.Context, *pb.DescribeRequest) (*pb.PluginInfo, error) {
	return &pb.PluginInfo{
		Name:            "bare-grpc-go",
		Version:         "0.1.0",
		ProtocolVersion: 1,
		Hooks:           []*pb.HookRegistration{{Hook: pb.Hook_HOOK_BEFORE_TOOL_CALL, Stage: pb.Stage_STAGE_HOOK}},
	}, nil
}

func (bare) BeforeToolCall(context.Context, *pb.BeforeToolCallRequest) (*pb.ToolCallDecision, error) {
	return &pb.ToolCallDecision{}, nil
}

func main() {
	socket := os.Getenv("HOOKVISOR_PLUGIN_SOCKET")
	if socket == "" || len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: bare-grpc-go default|workers, started by `hookvisor bench`")
		os.Exit(1)
	}
	var options []grpc.ServerOption
	switch os.Args[1] {
	case "default":
	case "workers":
		options = append(options, grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))))
	default:
		fmt.Fprintf(os.Stderr, "unknown mode %q: default or workers\n", os.Args[1])
		os.Exit(1)
	}
	listener, err := net.Listen("unix", socket)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cannot bind %s: %v\n", socket, err)
		os.Exit(2)
	}
	server := grpc.NewServer(options...)
	pb.RegisterPluginServer(server, bare{})
	if err := server.Serve(listener); err != nil {
		fmt.Fprintf(os.Stderr, "the gRPC server failed: %v\n", err)
		os.Exit(2)
	}
}
