// Package hookvisor writes a hookvisor plugin in Go: implement [Plugin] and the handlers for the
// hooks you register, then call [Run] from main.
//
// hookvisor starts every plugin as a child process and speaks gRPC (hookvisor.v1.Plugin) to it
// over a Unix socket. This package owns everything except the policy itself: the magic-cookie
// check, binding the socket, Describe, the grpc.health.v1.Health service, JSON parsing of params
// and metadata, a bound on handlers in flight, SIGTERM/SIGINT and exit codes. A plugin only says
// which hooks it serves ([Info], [Registration]) and answers them ([Allow], [Block], [Rewrite],
// [RequireApproval], [AllowSession], [BlockSession], [PatchMetadata]).
//
// # Layout
//
//   - hookvisor.go (this file): [Plugin] and the optional handler interfaces.
//   - info.go: [Info] and [Registration], which become PluginInfo in Describe.
//   - call.go: [ToolCall], [SessionCreate], [SessionCreated] and [Requester], the requests as
//     plain structs: every value the supervisor sends is a field with its Go name (AgentID,
//     WorkspaceDir…), the same in every type that has it, zero when the host sent none.
//   - decision.go: constructors for answers.
//   - server.go: [Run] and [RunWith] (the whole process, on hookvisor's Unix socket or, with
//     HOOKVISOR_REMOTE_LISTEN, on TCP with mutual TLS), [Serve] and [ServeRemote] (the gRPC
//     server alone), [RemoteTLS].
//   - hookvisorpb: the generated protocol code (generate.sh).
//
// # Example
//
//	type careful struct{}
//
//	func (careful) Info() hookvisor.Info {
//		return hookvisor.Info{Name: "careful", Version: "0.1.0", Hooks: []hookvisor.Registration{
//			{Hook: hookvisor.HookBeforeToolCall, Tools: []string{"exec"}, TimeoutMs: 200},
//		}}
//	}
//
//	func (careful) BeforeToolCall(ctx context.Context, call *hookvisor.ToolCall) (*hookvisor.Decision, error) {
//		command, _ := call.ParamString("command")
//		if strings.Contains(command, "sudo") {
//			return hookvisor.Block("sudo is not allowed here"), nil
//		}
//		return hookvisor.Allow(), nil
//	}
//
//	func main() { os.Exit(hookvisor.Run(careful{})) }
//
// Run by hand, without hookvisor's environment, such a binary prints one line explaining that it
// is started by hookvisor and exits with status 1.
package hookvisor

import (
	"context"

	pb "hookvisor.dev/plugin-sdk/go/hookvisorpb"
)

// A Plugin says which hooks it serves. It answers them by also implementing [ToolCallHandler],
// [SessionCreateHandler] or [SessionCreatedHandler]; a registered hook without its handler
// answers "no opinion" (and a warning is printed at start, since a mistyped method signature
// silently fails to implement the interface).
//
// Handlers run concurrently, one goroutine per call. A handler's ctx carries the call's deadline
// and is cancelled when the supervisor gives up on the call or the plugin stops. Returning an
// error (or panicking) answers the call with a non-OK gRPC status, which the supervisor counts
// as a failure of the plugin: the call is blocked. A [status] error is passed on as it is. A
// handler must return a decision made by the helpers ([Allow], [Block], [Rewrite],
// [RequireApproval]; [AllowSession], [BlockSession], [PatchMetadata]) or an error: a nil decision
// with a nil error fails the call too, never "no opinion".
//
// [status]: https://pkg.go.dev/google.golang.org/grpc/status
type Plugin interface {
	// Info is the plugin's name, version and hooks; it becomes PluginInfo in Describe.
	// Called once at start.
	Info() Info
}

// ToolCallHandler answers before_tool_call: may this tool call run, with these params?
type ToolCallHandler interface {
	BeforeToolCall(ctx context.Context, call *ToolCall) (*Decision, error)
}

// SessionCreateHandler answers before_session_create: may this session be created?
type SessionCreateHandler interface {
	BeforeSessionCreate(ctx context.Context, session *SessionCreate) (*SessionDecision, error)
}

// SessionCreatedHandler observes session_created; its answer never blocks anything.
type SessionCreatedHandler interface {
	SessionCreated(ctx context.Context, event *SessionCreated) error
}

// Decision answers before_tool_call. All fields unset ([Allow]) means "no opinion"; its fields
// are public, so a plugin that wants to combine answers (rewrite and ask) can set them. A nil
// *Decision with a nil error is not an answer: the call fails with UNKNOWN (logged), which the
// supervisor counts as a failure of the plugin, so the call is blocked.
type Decision = pb.ToolCallDecision

// SessionDecision answers before_session_create. All fields unset ([AllowSession]) means "no
// opinion"; a nil *SessionDecision with a nil error fails the call, as for [Decision].
type SessionDecision = pb.SessionDecision

// Hook names an event a plugin can register for.
type Hook = pb.Hook

// The hooks.
const (
	HookBeforeToolCall      = pb.Hook_HOOK_BEFORE_TOOL_CALL
	HookBeforeSessionCreate = pb.Hook_HOOK_BEFORE_SESSION_CREATE
	HookSessionCreated      = pb.Hook_HOOK_SESSION_CREATED
)

// Stage is where a registration runs: StageHook (the default) or StagePolicy (accepted only from
// plugins the operator configured trusted = true).
type Stage = pb.Stage

// The stages.
const (
	StageHook   = pb.Stage_STAGE_HOOK
	StagePolicy = pb.Stage_STAGE_POLICY
)

// Severity is how serious an approval request is, for the host's prompt.
type Severity = pb.Severity

// The severities; unspecified is reported as warning.
const (
	SeverityInfo     = pb.Severity_SEVERITY_INFO
	SeverityWarning  = pb.Severity_SEVERITY_WARNING
	SeverityCritical = pb.Severity_SEVERITY_CRITICAL
)

// ApprovalDecision is an answer a human may give to an approval request.
type ApprovalDecision = pb.ApprovalDecision

// The approval decisions.
const (
	AllowOnce   = pb.ApprovalDecision_APPROVAL_DECISION_ALLOW_ONCE
	AllowAlways = pb.ApprovalDecision_APPROVAL_DECISION_ALLOW_ALWAYS
	Deny        = pb.ApprovalDecision_APPROVAL_DECISION_DENY
)
