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
		ToolName:   "exec",
		ParamsJson: params,
		Context: &pb.ToolCallContext{
			AgentId: "main", SessionKey: "agent:main:main", SessionId: "s1", RunId: "r1", ToolCallId: "c1",
			WorkspaceDir: "/srv/ws", ContainerWorkdir: "/workspace", ChannelId: "ch1",
			Requester: &pb.Requester{Channel: "telegram", AccountId: "a1", SenderId: "u1", SenderIsOwner: true},
		},
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
	if call.Deadline != 250*time.Millisecond || call.ToolName != "exec" {
		t.Errorf("call = %+v", call)
	}
}

func TestToolCallCarriesEveryContextFieldUnderItsGoName(t *testing.T) {
	call, err := toolCallFrom(request("{}", ""))
	if err != nil {
		t.Fatal(err)
	}
	got := [...]string{call.AgentID, call.SessionKey, call.SessionID, call.RunID, call.ToolCallID,
		call.WorkspaceDir, call.ContainerWorkdir, call.ChannelID}
	want := [...]string{"main", "agent:main:main", "s1", "r1", "c1", "/srv/ws", "/workspace", "ch1"}
	if got != want {
		t.Errorf("context fields = %q, want %q", got, want)
	}
	if r := call.Requester; r != (Requester{Channel: "telegram", AccountID: "a1", SenderID: "u1", SenderIsOwner: true}) {
		t.Errorf("requester = %+v", r)
	}
}

func TestEmptyMetadataIsNilAndMissingContextReadsEmpty(t *testing.T) {
	req := request("{}", "")
	req.Context = nil
	call, err := toolCallFrom(req)
	if err != nil {
		t.Fatal(err)
	}
	if call.Metadata != nil || len(call.Params) != 0 || call.WorkspaceDir != "" || call.AgentID != "" || call.Requester != (Requester{}) {
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
	create, err := sessionCreateFrom(&pb.BeforeSessionCreateRequest{
		SessionKey: "k", AgentId: "main", Label: "l", Model: "m", ParentSessionKey: "p", WorkspaceDir: "/srv/ws",
		Requester: &pb.Requester{SenderId: "u1"}, SessionMetadataJson: "[1]", DeadlineMs: 5,
	})
	if err != nil {
		t.Fatal(err)
	}
	if create.SessionKey != "k" || create.AgentID != "main" || create.Label != "l" || create.Model != "m" ||
		create.ParentSessionKey != "p" || create.WorkspaceDir != "/srv/ws" || create.Requester.SenderID != "u1" ||
		create.Deadline != 5*time.Millisecond {
		t.Errorf("create = %+v", create)
	}
	if m, ok := create.Metadata.([]any); !ok || len(m) != 1 {
		t.Errorf("metadata = %#v", create.Metadata)
	}
	created, err := sessionCreatedFrom(&pb.SessionCreatedEvent{SessionKey: "k", SessionId: "s1", AgentId: "main"})
	if err != nil || created.SessionKey != "k" || created.SessionID != "s1" || created.AgentID != "main" || created.Metadata != nil {
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

func TestOnlyAW3CShapedTraceparentReachesTheCall(t *testing.T) {
	const good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	withTrace := func(values ...string) context.Context {
		md := metadata.MD{}
		for _, v := range values {
			md.Append("traceparent", v)
		}
		return metadata.NewIncomingContext(context.Background(), md)
	}
	if got := traceparent(withTrace(good)); got != good {
		t.Errorf("good: %q", got)
	}
	if got := traceparent(context.Background()); got != "" {
		t.Errorf("no metadata: %q", got)
	}
	for _, junk := range []string{
		"",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
		good + "-extra",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
		"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7\n01",
		"00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01",
		"not a trace context at all, but exactly 55 bytes long!!",
	} {
		if got := traceparent(withTrace(junk)); got != "" {
			t.Errorf("%q: %q", junk, got)
		}
	}
}
