package hookvisor

import (
	"context"
	"strings"
	"testing"

	pb "hookvisor.dev/plugin-sdk/go/hookvisorpb"
)

// The SDK's own work per tool call, in process, without gRPC: `go test -run - -bench .`.
// End to end against a bare grpc-go server: `hookvisor bench --sdks-only` (sdk_ratio_go_*).

type noOpinion struct{}

func (noOpinion) Info() Info {
	return Info{Name: "no-opinion", Hooks: []Registration{{Hook: HookBeforeToolCall}}}
}

func (noOpinion) BeforeToolCall(context.Context, *ToolCall) (*Decision, error) {
	return Allow(), nil
}

// benchRequest is the call hookvisor bench makes: 256 bytes of params.
func benchRequest() *pb.BeforeToolCallRequest {
	return &pb.BeforeToolCallRequest{
		ToolName:   "exec",
		ParamsJson: `{"command":"ls -la /tmp","pad":"` + strings.Repeat("x", 222) + `"}`,
		Context: &pb.ToolCallContext{
			AgentId: "main", SessionKey: "agent:main:bench", WorkspaceDir: "/home/agent/project",
		},
		DeadlineMs: 5000,
	}
}

// BenchmarkBeforeToolCall is the adapter's whole answer: the views, the deadline, the handler's
// goroutine and its bound.
func BenchmarkBeforeToolCall(b *testing.B) {
	a := newAdapter(noOpinion{}, noOpinion{}.Info())
	req := benchRequest()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.BeforeToolCall(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkToolCallFrom is the request's view alone (the params' JSON decoded).
func BenchmarkToolCallFrom(b *testing.B) {
	req := benchRequest()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := toolCallFrom(req); err != nil {
			b.Fatal(err)
		}
	}
}
