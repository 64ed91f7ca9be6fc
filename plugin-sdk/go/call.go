package hookvisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "hookvisor.dev/plugin-sdk/go/hookvisorpb"
)

// ToolCall is a before_tool_call question: which tool, with which params, in which context.
// The context's fields (ToolCallContext in the contract) are fields of ToolCall itself.
type ToolCall struct {
	// ToolName is the tool's name, e.g. "exec".
	ToolName string
	// Params are the call's params as left by the policy stage. Numbers are json.Number, so they
	// survive a [Rewrite] exactly.
	Params map[string]any
	// AgentID is the agent making the call.
	AgentID string
	// SessionKey is the session's key, e.g. "agent:main:main".
	SessionKey string
	// SessionID is the session's id.
	SessionID string
	// RunID is the agent run the call belongs to.
	RunID string
	// ToolCallID is the host's id for this call.
	ToolCallID string
	// WorkspaceDir is the agent's workspace on the host; path-checking plugins compare against it.
	WorkspaceDir string
	// ContainerWorkdir is the workspace as seen inside a sandbox container, when there is one.
	ContainerWorkdir string
	// ChannelID is the messaging channel's id.
	ChannelID string
	// Requester is who sent the message that started the run (zero when the host did not say).
	Requester Requester
	// Metadata is this plugin's namespace of the session metadata; nil when absent.
	Metadata any
	// Deadline is how long the supervisor will wait for the answer (zero if it did not say).
	// The handler's ctx carries the same deadline.
	Deadline time.Duration
	// Traceparent is the W3C trace context of the supervisor's span for this call (gRPC metadata
	// traceparent, "00-<trace id>-<span id>-<flags>"), sent while its tracing is on; "" when
	// absent or not of that shape. The request id is [RequestID].
	Traceparent string
}

// ParamString is the string param key, if present and a string.
func (c *ToolCall) ParamString(key string) (string, bool) {
	s, ok := c.Params[key].(string)
	return s, ok
}

// Requester is who sent the message that started the agent's run.
type Requester struct {
	// Channel is the messaging channel, e.g. "telegram".
	Channel string
	// AccountID is the account on that channel the agent runs under.
	AccountID string
	// SenderID is the sender of the message that started the run.
	SenderID string
	// SenderIsOwner says whether that sender owns the agent.
	SenderIsOwner bool
}

// SessionCreate is a before_session_create question: may this session be created?
type SessionCreate struct {
	SessionKey string
	AgentID    string
	Label      string
	Model      string
	// ParentSessionKey is "" for a top-level session.
	ParentSessionKey string
	WorkspaceDir     string
	// Requester is zero when the host did not say.
	Requester Requester
	// Metadata is this plugin's namespace of the session metadata; nil when absent.
	Metadata any
	// Deadline is how long the supervisor will wait for the answer (zero if it did not say).
	Deadline time.Duration
	// Traceparent is the W3C trace context of the supervisor's span for this call (gRPC metadata
	// traceparent, "00-<trace id>-<span id>-<flags>"), sent while its tracing is on; "" when
	// absent or not of that shape. The request id is [RequestID].
	Traceparent string
}

// SessionCreated is a session_created observation.
type SessionCreated struct {
	SessionKey string
	SessionID  string
	AgentID    string
	// Metadata is this plugin's namespace of the session metadata; nil when absent.
	Metadata any
	// Traceparent is the W3C trace context of the supervisor's span for this call (gRPC metadata
	// traceparent, "00-<trace id>-<span id>-<flags>"), sent while its tracing is on; "" when
	// absent or not of that shape. The request id is [RequestID].
	Traceparent string
}

// toolCallFrom parses a request. JSON that does not parse is the supervisor's bug, answered with
// INVALID_ARGUMENT naming the field (the supervisor counts it as a failure: the call is blocked).
func toolCallFrom(req *pb.BeforeToolCallRequest) (*ToolCall, error) {
	value, err := decodeJSON(req.GetParamsJson())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "params_json is not valid JSON: %v", err)
	}
	params, ok := value.(map[string]any)
	if !ok {
		return nil, status.Errorf(codes.InvalidArgument, "params_json must be a JSON object, got %s", jsonKind(value))
	}
	metadata, err := parseMetadata(req.GetSessionMetadataJson())
	if err != nil {
		return nil, err
	}
	where := req.GetContext()
	return &ToolCall{
		ToolName:         req.GetToolName(),
		Params:           params,
		AgentID:          where.GetAgentId(),
		SessionKey:       where.GetSessionKey(),
		SessionID:        where.GetSessionId(),
		RunID:            where.GetRunId(),
		ToolCallID:       where.GetToolCallId(),
		WorkspaceDir:     where.GetWorkspaceDir(),
		ContainerWorkdir: where.GetContainerWorkdir(),
		ChannelID:        where.GetChannelId(),
		Requester:        requesterFrom(where.GetRequester()),
		Metadata:         metadata,
		Deadline:         time.Duration(req.GetDeadlineMs()) * time.Millisecond,
	}, nil
}

func sessionCreateFrom(req *pb.BeforeSessionCreateRequest) (*SessionCreate, error) {
	metadata, err := parseMetadata(req.GetSessionMetadataJson())
	if err != nil {
		return nil, err
	}
	return &SessionCreate{
		SessionKey:       req.GetSessionKey(),
		AgentID:          req.GetAgentId(),
		Label:            req.GetLabel(),
		Model:            req.GetModel(),
		ParentSessionKey: req.GetParentSessionKey(),
		WorkspaceDir:     req.GetWorkspaceDir(),
		Requester:        requesterFrom(req.GetRequester()),
		Metadata:         metadata,
		Deadline:         time.Duration(req.GetDeadlineMs()) * time.Millisecond,
	}, nil
}

func sessionCreatedFrom(event *pb.SessionCreatedEvent) (*SessionCreated, error) {
	metadata, err := parseMetadata(event.GetSessionMetadataJson())
	if err != nil {
		return nil, err
	}
	return &SessionCreated{
		SessionKey: event.GetSessionKey(),
		SessionID:  event.GetSessionId(),
		AgentID:    event.GetAgentId(),
		Metadata:   metadata,
	}, nil
}

// requesterFrom copies the message's fields; nil (the host did not say) is the zero Requester.
func requesterFrom(r *pb.Requester) Requester {
	return Requester{
		Channel:       r.GetChannel(),
		AccountID:     r.GetAccountId(),
		SenderID:      r.GetSenderId(),
		SenderIsOwner: r.GetSenderIsOwner(),
	}
}

// parseMetadata reads a metadata namespace: "" means none, anything else must be one JSON value.
func parseMetadata(text string) (any, error) {
	if text == "" {
		return nil, nil
	}
	value, err := decodeJSON(text)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "session_metadata_json is not valid JSON: %v", err)
	}
	return value, nil
}

// decodeJSON parses exactly one JSON value, keeping numbers as json.Number.
func decodeJSON(text string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var value any
	if err := dec.Decode(&value); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty input")
		}
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the first JSON value")
	}
	return value, nil
}

func jsonKind(value any) string {
	switch value.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	default:
		return fmt.Sprintf("%T", value)
	}
}

// RequestID is the host call's request id, which the supervisor sends with every call as gRPC
// metadata x-hookvisor-request-id, so a plugin's logs can be matched with the supervisor's and
// the audit log's; "" when there is none. Pass the handler's ctx.
func RequestID(ctx context.Context) string {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return ""
	}
	if ids := md.Get("x-hookvisor-request-id"); len(ids) > 0 {
		return ids[0]
	}
	return ""
}

// traceparentLength is the length of a version-00 traceparent: 2 + 1 + 32 + 1 + 16 + 1 + 2.
const traceparentLength = 55

// traceparent is the W3C trace context the supervisor sends with a call while tracing: the
// metadata value when it has the shape ^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$, else ""
// (so a handler never logs or forwards junk a peer put there).
func traceparent(ctx context.Context) string {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return ""
	}
	values := md.Get("traceparent")
	if len(values) == 0 || !isTraceparent(values[0]) {
		return ""
	}
	return values[0]
}

func isTraceparent(value string) bool {
	if len(value) != traceparentLength {
		return false
	}
	for i := 0; i < len(value); i++ {
		c := value[i]
		switch i {
		case 2, 35, 52:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}
