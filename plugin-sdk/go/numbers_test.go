package hookvisor_test

// The shared table of numbers (tests/data/numbers.json, the same for every SDK): a plugin that
// rewrites the params it got, or patches the metadata it got, must send every number back with
// its text unchanged, digits, sign and exponent included.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pb "hookvisor.dev/plugin-sdk/go/hookvisorpb"
)

type numberCase struct {
	Name      string `json:"name"`
	Text      string `json:"text"`
	Canonical string `json:"canonical"`
}

// numberTable reads the table from the repository root (go test runs in this package's
// directory, plugin-sdk/go).
func numberTable(t *testing.T) []numberCase {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "tests", "data", "numbers.json"))
	if err != nil {
		t.Fatal(err)
	}
	var table struct {
		Numbers []numberCase `json:"numbers"`
	}
	if err := json.Unmarshal(raw, &table); err != nil {
		t.Fatal(err)
	}
	if len(table.Numbers) == 0 {
		t.Fatal("tests/data/numbers.json has no numbers")
	}
	return table.Numbers
}

// numbersObject is `{"n0":CANONICAL0,"n1":CANONICAL1,...}`, the params_json a plugin receives.
func numbersObject(table []numberCase) string {
	parts := make([]string, len(table))
	for i, c := range table {
		parts[i] = fmt.Sprintf("%q:%s", fmt.Sprintf("n%d", i), c.Canonical)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// decodeNumbers decodes text keeping every number's text (json.Number).
func decodeNumbers(t *testing.T, text string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader([]byte(text)))
	dec.UseNumber()
	var value map[string]any
	if err := dec.Decode(&value); err != nil {
		t.Fatalf("%s: %v", text, err)
	}
	return value
}

func assertNumbers(t *testing.T, where string, table []numberCase, got map[string]any) {
	t.Helper()
	for i, c := range table {
		key := fmt.Sprintf("n%d", i)
		if n, ok := got[key].(json.Number); !ok || string(n) != c.Canonical {
			t.Errorf("%s: %s (%s) came back as %#v, want %s", where, key, c.Name, got[key], c.Canonical)
		}
	}
}

func TestNumbersSurviveARewriteExactly(t *testing.T) {
	table := numberTable(t)
	params := numbersObject(table)
	p := startPlugin(t)

	// "rewrite" adds "checked": true to the params it got and returns them all.
	d, err := p.call(t, "rewrite", params)
	if err != nil || d.ParamsJson == nil {
		t.Fatalf("rewrite: %v, %v", d, err)
	}
	got := decodeNumbers(t, d.GetParamsJson())
	assertNumbers(t, "rewrite", table, got)
	if got["checked"] != true || len(got) != len(table)+1 {
		t.Errorf("rewrite: %s, want the %d numbers and checked:true", d.GetParamsJson(), len(table))
	}

	// The session hook patches {"agent": ..., "before": the metadata it got}.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := p.client.BeforeSessionCreate(ctx, &pb.BeforeSessionCreateRequest{AgentId: "main", SessionMetadataJson: params})
	if err != nil || s.MetadataJson == nil {
		t.Fatalf("session patch: %v, %v", s, err)
	}
	before, ok := decodeNumbers(t, s.GetMetadataJson())["before"].(map[string]any)
	if !ok {
		t.Fatalf("session patch: %s", s.GetMetadataJson())
	}
	assertNumbers(t, "session patch", table, before)
}
