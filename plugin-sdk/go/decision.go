package hookvisor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	pb "hookvisor.dev/plugin-sdk/go/hookvisorpb"
)

// Limits on approval texts, in characters (docs/contract.md §8).
const (
	MaxTitleChars       = 80
	MaxDescriptionChars = 512
)

// Allow is "no opinion": the call proceeds as far as this plugin is concerned.
func Allow() *Decision { return &Decision{} }

// Block stops the call; reason is shown to the agent and the operator.
func Block(reason string) *Decision {
	return &Decision{Block: true, BlockReason: reason}
}

// Rewrite answers with new params. How they apply depends on the registration's stage
// (docs/contract.md §4): in the policy stage they replace the params whole, so pass the whole
// object (a key left out is removed); in the hook stage they are merged key by key over the
// policy stage's params (each top-level key given replaces that key, the others stay), so the
// keys you change are enough, and the whole object works too. It fails only when params cannot
// be encoded as JSON (a NaN, a channel…), so a handler can end with
// `return hookvisor.Rewrite(params)`.
func Rewrite(params map[string]any) (*Decision, error) {
	if params == nil {
		params = map[string]any{}
	}
	text, err := encodeJSON(params)
	if err != nil {
		return nil, fmt.Errorf("rewritten params: %w", err)
	}
	return &Decision{ParamsJson: &text}, nil
}

// Approval is a request that a human approve the call before it runs.
type Approval struct {
	// Title is cut to MaxTitleChars; empty becomes "Approval required".
	Title string
	// Description is cut to MaxDescriptionChars.
	Description string
	// Severity: zero is reported as warning.
	Severity Severity
	// TimeoutMs is how long to wait for the human: 1..600000 ms; 0 means 120000.
	TimeoutMs uint32
	// AllowedDecisions limits the human's choices; empty means all three.
	AllowedDecisions []ApprovalDecision
}

// RequireApproval asks a human before the call runs. Title and description are cut to the
// contract's limits with a trailing "…", so a long text never turns an approval into a failure.
func RequireApproval(a Approval) *Decision {
	title := a.Title
	if strings.TrimSpace(title) == "" {
		title = "Approval required"
	}
	return &Decision{RequireApproval: &pb.ApprovalRequest{
		Title:            Truncate(title, MaxTitleChars),
		Description:      Truncate(a.Description, MaxDescriptionChars),
		Severity:         a.Severity,
		TimeoutMs:        a.TimeoutMs,
		AllowedDecisions: append([]ApprovalDecision(nil), a.AllowedDecisions...),
	}}
}

// AllowSession is "no opinion": the session may be created, this plugin's metadata is unchanged.
func AllowSession() *SessionDecision { return &SessionDecision{} }

// BlockSession refuses the session; reason is shown to the agent and the operator.
func BlockSession(reason string) *SessionDecision {
	return &SessionDecision{Block: true, BlockReason: reason}
}

// PatchMetadata replaces this plugin's namespace of the session metadata with value (any value
// encoding/json accepts). It fails only when value cannot be encoded.
func PatchMetadata(value any) (*SessionDecision, error) {
	text, err := encodeJSON(value)
	if err != nil {
		return nil, fmt.Errorf("session metadata: %w", err)
	}
	return &SessionDecision{MetadataJson: &text}, nil
}

// Truncate cuts text to at most maxChars characters, ending in "…" when cut.
func Truncate(text string, maxChars int) string {
	if utf8.RuneCountInString(text) <= maxChars {
		return text
	}
	runes := []rune(text)
	return string(runes[:max(maxChars-1, 0)]) + "…"
}

// encodeJSON is compact JSON without encoding/json's HTML escaping, so the text reads as written.
func encodeJSON(value any) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(value); err != nil {
		return "", err
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}
