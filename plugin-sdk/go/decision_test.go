package hookvisor

import (
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAllowAndBlock(t *testing.T) {
	if d := Allow(); d.Block || d.ParamsJson != nil || d.RequireApproval != nil {
		t.Errorf("allow = %v", d)
	}
	if d := Block("no"); !d.Block || d.BlockReason != "no" || d.ParamsJson != nil {
		t.Errorf("block = %v", d)
	}
}

func TestRewriteKeepsNumbersAndDoesNotEscapeHTML(t *testing.T) {
	call, err := toolCallFrom(request(`{"n":12345678901234567890,"f":1.50,"cmd":"a<b && c"}`, ""))
	if err != nil {
		t.Fatal(err)
	}
	d, err := Rewrite(call.Params)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := d.GetParamsJson(), `{"cmd":"a<b && c","f":1.50,"n":12345678901234567890}`; got != want {
		t.Errorf("params_json = %s, want %s", got, want)
	}
	if _, err := Rewrite(map[string]any{"x": math.NaN()}); err == nil {
		t.Error("a NaN cannot be JSON")
	}
	if d, _ := Rewrite(nil); d.GetParamsJson() != "{}" {
		t.Errorf("nil params = %s", d.GetParamsJson())
	}
}

func TestApprovalSetsEveryField(t *testing.T) {
	a := RequireApproval(Approval{
		Title: "Run exec?", Description: "ls -la", Severity: SeverityWarning, TimeoutMs: 30000,
		AllowedDecisions: []ApprovalDecision{AllowOnce, Deny},
	}).GetRequireApproval()
	if a.GetTitle() != "Run exec?" || a.GetDescription() != "ls -la" || a.GetSeverity() != SeverityWarning ||
		a.GetTimeoutMs() != 30000 || len(a.GetAllowedDecisions()) != 2 || a.GetAllowedDecisions()[1] != Deny {
		t.Errorf("approval = %v", a)
	}
}

func TestApprovalTextsAreCutToTheLimits(t *testing.T) {
	a := RequireApproval(Approval{Title: strings.Repeat("t", 200), Description: strings.Repeat("é", 1000)}).GetRequireApproval()
	if utf8.RuneCountInString(a.GetTitle()) != MaxTitleChars || !strings.HasSuffix(a.GetTitle(), "…") {
		t.Errorf("title = %q", a.GetTitle())
	}
	if utf8.RuneCountInString(a.GetDescription()) != MaxDescriptionChars {
		t.Errorf("description has %d chars", utf8.RuneCountInString(a.GetDescription()))
	}
	if title := RequireApproval(Approval{Title: " "}).GetRequireApproval().GetTitle(); title != "Approval required" {
		t.Errorf("empty title = %q", title)
	}
}

func TestTruncateCountsCharacters(t *testing.T) {
	for _, c := range []struct {
		in   string
		max  int
		want string
	}{{"abc", 3, "abc"}, {"abcd", 3, "ab…"}, {"ééé", 3, "ééé"}, {"abc", 0, "…"}} {
		if got := Truncate(c.in, c.max); got != c.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
	}
}

func TestSessionDecisions(t *testing.T) {
	if d := AllowSession(); d.Block || d.MetadataJson != nil {
		t.Errorf("allow = %v", d)
	}
	if d := BlockSession("nope"); !d.Block || d.BlockReason != "nope" {
		t.Errorf("block = %v", d)
	}
	d, err := PatchMetadata(map[string]any{"labels": []string{"a"}})
	if err != nil || d.GetMetadataJson() != `{"labels":["a"]}` || d.Block {
		t.Errorf("patch = %v, %v", d, err)
	}
}
