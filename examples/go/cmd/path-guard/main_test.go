package main

import (
	"context"
	"net"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	hookvisor "hookvisor.dev/plugin-sdk/go"
	pb "hookvisor.dev/plugin-sdk/go/hookvisorpb"
)

func TestResolvesRelativePathsInsideTheWorkspace(t *testing.T) {
	for _, c := range [][3]string{
		{"/ws", "src/main.rs", "/ws/src/main.rs"},
		{"/ws/", "./a/../b", "/ws/b"},
		{"/ws", "/ws/x/../y", "/ws/y"},
		{"/ws", "", "/ws"},
		{"/ws", "a/../../ws/b", "/ws/b"}, // leaving and re-entering is inside
		{"/", "../../etc", "/etc"},       // ".." at the root stays there
	} {
		if got, err := resolve(c[0], c[1]); err != nil || got != c[2] {
			t.Errorf("resolve(%q, %q) = %q, %v; want %q", c[0], c[1], got, err, c[2])
		}
	}
}

func TestRefusesPathsThatEscape(t *testing.T) {
	if _, err := resolve("/ws", "../etc/passwd"); err == nil || err.Error() != "path '../etc/passwd' escapes the workspace '/ws'" {
		t.Errorf("got %v", err)
	}
	for _, path := range []string{"/etc/passwd", "/ws2/file", "/ws/../ws2"} {
		if _, err := resolve("/ws", path); err == nil {
			t.Errorf("%s is outside /ws", path)
		}
	}
}

func TestRefusesWithoutAnAbsoluteWorkspace(t *testing.T) {
	if _, err := resolve("", "a"); err == nil || err.Error() != "no workspace_dir in the call context" {
		t.Errorf("got %v", err)
	}
	if _, err := resolve("ws", "a"); err == nil || err.Error() != "workspace_dir 'ws' is not an absolute path" {
		t.Errorf("got %v", err)
	}
}

func TestGuardRewritesOnlyChangedPathKeys(t *testing.T) {
	out, err := guard("/ws", map[string]any{"path": "a/b", "file_path": "/ws/c", "content": "x"})
	want := map[string]any{"path": "/ws/a/b", "file_path": "/ws/c", "content": "x"}
	if err != nil || !reflect.DeepEqual(out, want) {
		t.Errorf("got %v, %v", out, err)
	}
	if out, err := guard("/ws", map[string]any{"path": "/ws/a"}); out != nil || err != nil {
		t.Errorf("already normalized: %v, %v", out, err)
	}
	if out, err := guard("", map[string]any{"content": "x", "path": 3}); out != nil || err != nil {
		t.Errorf("no string path: %v, %v", out, err)
	}
	if _, err := guard("/ws", map[string]any{"path": "ok", "file_path": "../../x"}); err == nil {
		t.Error("any escaping path blocks")
	}
}

func TestToolsFromTheEnvironment(t *testing.T) {
	for value, want := range map[string][]string{
		" read, write ,,": {"read", "write"},
		"*":               nil,
		" * ":             nil,
	} {
		t.Setenv("PATH_GUARD_TOOLS", value)
		p, err := load()
		if err != nil {
			t.Fatalf("%q: %v", value, err)
		}
		if tools := p.Info().Hooks[0].Tools; !reflect.DeepEqual(tools, want) {
			t.Errorf("%q: tools %v, want %v", value, tools, want)
		}
	}
	for value, want := range map[string]string{
		" , ":    "PATH_GUARD_TOOLS lists no tools; name at least one (default: read,write,edit)",
		"read,*": "PATH_GUARD_TOOLS mixes '*' with tool names; use '*' alone to guard every tool",
	} {
		t.Setenv("PATH_GUARD_TOOLS", value)
		if _, err := load(); err == nil || err.Error() != want {
			t.Errorf("%q: %v", value, err)
		}
	}
}

// TestOverTheSocket serves path-guard with the SDK on a real Unix socket and calls it over gRPC.
func TestOverTheSocket(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "pg.sock")
	listener, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- hookvisor.Serve(ctx, pathGuard{}, listener) }()
	defer func() {
		stop()
		if err := <-served; err != nil {
			t.Error(err)
		}
	}()
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewPluginClient(conn)
	call := func(tool, params, workspace string) *pb.ToolCallDecision {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d, err := client.BeforeToolCall(ctx, &pb.BeforeToolCallRequest{
			ToolName: tool, ParamsJson: params, Context: &pb.ToolCallContext{WorkspaceDir: workspace},
		}, grpc.WaitForReady(true))
		if err != nil {
			t.Fatalf("%s %s: %v", tool, params, err)
		}
		return d
	}

	if d := call("read", `{"path":"src/../a.txt","size":10000000000000000001}`, "/srv/ws"); d.GetParamsJson() != `{"path":"/srv/ws/a.txt","size":10000000000000000001}` {
		t.Errorf("rewrite: %v", d)
	}
	if d := call("write", `{"file_path":"../x"}`, "/srv/ws"); d.GetBlockReason() != "path '../x' escapes the workspace '/srv/ws'" {
		t.Errorf("block: %v", d)
	}
	if d := call("hookvisor-noop-probe", `{}`, ""); d.GetBlock() || d.ParamsJson != nil {
		t.Errorf("the probe must pass: %v", d)
	}
	if d := call("read", `{"path":"a"}`, ""); d.GetBlockReason() != "no workspace_dir in the call context" {
		t.Errorf("no workspace: %v", d)
	}
}
