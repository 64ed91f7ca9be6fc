package hookvisor

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "hookvisor.dev/plugin-sdk/go/hookvisorpb"
)

func request(params, metadata string) *pb.BeforeToolCallRequest {
	return &pb.BeforeToolCallRequest{
		ToolName:            "exec",
		ParamsJson:          params,
		Context:             &pb.ToolCallContext{WorkspaceDir: "/srv/ws", AgentId: "main"},
		SessionMetadataJson: metadata,
		DeadlineMs:          250,
	}
}

func TestToolCallParsesParamsMetadataAndDeadline(t *testing.T) {
	call, err := toolCallFrom(request(`{"command":"ls","n":12345678901234567890}`, `{"seen":2}`))
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := call.ParamString("command"); !ok || s != "ls" {
		t.Errorf("command = %q, %v", s, ok)
	}
	if _, ok := call.ParamString("n"); ok {
		t.Error("n is not a string")
	}
	if n := call.Params["n"]; n != json.Number("12345678901234567890") {
		t.Errorf("n = %#v, want the exact json.Number", n)
	}
	if m, ok := call.Metadata.(map[string]any); !ok || m["seen"] != json.Number("2") {
		t.Errorf("metadata = %#v", call.Metadata)
	}
	if call.Deadline != 250*time.Millisecond || call.WorkspaceDir() != "/srv/ws" || call.AgentID() != "main" {
		t.Errorf("call = %+v", call)
	}
}

func TestEmptyMetadataIsNilAndMissingContextReadsEmpty(t *testing.T) {
	req := request("{}", "")
	req.Context = nil
	call, err := toolCallFrom(req)
	if err != nil {
		t.Fatal(err)
	}
	if call.Metadata != nil || len(call.Params) != 0 || call.WorkspaceDir() != "" || call.AgentID() != "" {
		t.Errorf("call = %+v", call)
	}
}

func TestParamsThatAreNotAnObjectAreInvalidArgument(t *testing.T) {
	for _, bad := range []string{"[1,2]", `"x"`, "null", "", "{not json", `{"a":1} {}`, "1"} {
		_, err := toolCallFrom(request(bad, ""))
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "params_json") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestInvalidMetadataIsInvalidArgument(t *testing.T) {
	_, err := toolCallFrom(request("{}", "{oops"))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "session_metadata_json") {
		t.Errorf("got %v", err)
	}
	_, err = sessionCreateFrom(&pb.BeforeSessionCreateRequest{SessionMetadataJson: "[1"})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("got %v", err)
	}
}

func TestSessionViewsParseMetadata(t *testing.T) {
	create, err := sessionCreateFrom(&pb.BeforeSessionCreateRequest{AgentId: "main", Model: "m", SessionMetadataJson: "[1]", DeadlineMs: 5})
	if err != nil {
		t.Fatal(err)
	}
	if create.AgentID != "main" || create.Deadline != 5*time.Millisecond {
		t.Errorf("create = %+v", create)
	}
	if m, ok := create.Metadata.([]any); !ok || len(m) != 1 {
		t.Errorf("metadata = %#v", create.Metadata)
	}
	created, err := sessionCreatedFrom(&pb.SessionCreatedEvent{SessionId: "s1"})
	if err != nil || created.SessionID != "s1" || created.Metadata != nil {
		t.Errorf("created = %+v, %v", created, err)
	}
}

func TestInfoDefaultsToTheHookStage(t *testing.T) {
	info := Info{Name: "tagger", Version: "1.2.3", Hooks: []Registration{
		{Hook: HookBeforeToolCall, Stage: StagePolicy, Priority: 100, Tools: []string{"exec"}, TimeoutMs: 200},
		{Hook: HookSessionCreated},
	}}.proto()
	if info.GetProtocolVersion() != 1 || info.GetName() != "tagger" || len(info.GetHooks()) != 2 {
		t.Fatalf("info = %v", info)
	}
	first, second := info.GetHooks()[0], info.GetHooks()[1]
	if first.GetStage() != StagePolicy || first.GetPriority() != 100 || first.GetTools()[0] != "exec" || first.GetTimeoutMs() != 200 {
		t.Errorf("first = %v", first)
	}
	if second.GetStage() != StageHook || len(second.GetTools()) != 0 {
		t.Errorf("second = %v", second)
	}
}

func TestRequestIDComesFromTheCallsMetadata(t *testing.T) {
	ctx := metadata.NewIncomingContext(context.Background(),
		metadata.Pairs("x-hookvisor-request-id", "req-7"))
	if got := RequestID(ctx); got != "req-7" {
		t.Fatalf("RequestID = %q, want req-7", got)
	}
	if got := RequestID(context.Background()); got != "" {
		t.Fatalf("RequestID without metadata = %q, want empty", got)
	}
}
