package hookvisor_test

// These tests start real plugin processes the way hookvisor does (cleared environment, cookie,
// socket path in a fresh directory) and call them over gRPC on that Unix socket. The plugin is
// this test binary itself, re-executed with HOOKVISOR_SDK_TEST_ROLE set (see TestMain); the
// misbehave fixture is built with `go build`.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	hookvisor "hookvisor.dev/plugin-sdk/go"
	pb "hookvisor.dev/plugin-sdk/go/hookvisorpb"
)

const (
	cookie    = "HOOKVISOR_MAGIC_COOKIE=d7f0c2a4-hookvisor-plugin-v1"
	notByHand = "this is a hookvisor plugin; it is started by hookvisor (see `hookvisor serve`), not run by hand\n"
)

func TestMain(m *testing.M) {
	switch os.Getenv("HOOKVISOR_SDK_TEST_ROLE") {
	case "plugin":
		os.Exit(hookvisor.Run(testPlugin{}))
	case "init-error":
		os.Exit(hookvisor.RunWith(func() (hookvisor.Plugin, error) {
			return nil, errors.New("TEST_LIST is not set;\nname a file")
		}))
	}
	os.Exit(m.Run())
}

// testPlugin answers each tool the way its name says; its Info has no name, so Describe uses the
// configured one.
type testPlugin struct{}

func (testPlugin) Info() hookvisor.Info {
	return hookvisor.Info{Version: "9.9.9", Hooks: []hookvisor.Registration{
		{Hook: hookvisor.HookBeforeToolCall, TimeoutMs: 200},
		{Hook: hookvisor.HookBeforeSessionCreate},
		{Hook: hookvisor.HookSessionCreated},
	}}
}

func (testPlugin) BeforeToolCall(ctx context.Context, call *hookvisor.ToolCall) (*hookvisor.Decision, error) {
	switch call.ToolName {
	case "block":
		return hookvisor.Block("blocked for " + call.AgentID), nil
	case "rewrite":
		call.Params["checked"] = true
		return hookvisor.Rewrite(call.Params)
	case "approve":
		command, _ := call.ParamString("command")
		return hookvisor.RequireApproval(hookvisor.Approval{
			Title: "Run it?", Description: command, Severity: hookvisor.SeverityCritical,
			TimeoutMs: 1000, AllowedDecisions: []hookvisor.ApprovalDecision{hookvisor.AllowOnce, hookvisor.Deny},
		}), nil
	case "error":
		return nil, errors.New("the list is unreadable")
	case "status":
		return nil, status.Error(codes.PermissionDenied, "not today")
	case "panic":
		panic("boom")
	case "deadline":
		deadline, ok := ctx.Deadline()
		if !ok {
			return hookvisor.Block("no deadline"), nil
		}
		return hookvisor.Block(fmt.Sprintf("deadline in %d ms", time.Until(deadline).Milliseconds())), nil
	case "slow":
		time.Sleep(300 * time.Millisecond)
		return hookvisor.Block("slow call finished"), nil
	case "hang":
		select {}
	case "trace":
		return hookvisor.Block("traceparent=" + call.Traceparent), nil
	case "nil":
		return nil, nil
	case "async-nil":
		// The answer computed elsewhere, the channel closed without one.
		answers := make(chan *hookvisor.Decision)
		close(answers)
		return <-answers, nil
	}
	return hookvisor.Allow(), nil
}

func (testPlugin) BeforeSessionCreate(_ context.Context, s *hookvisor.SessionCreate) (*hookvisor.SessionDecision, error) {
	switch s.AgentID {
	case "nil":
		return nil, nil
	case "unset":
		// A decision variable left unset on one path: the mistake a nil answer usually is.
		var d *hookvisor.SessionDecision
		return d, nil
	}
	if s.AgentID == "guest" {
		return hookvisor.BlockSession("agent 'guest' may not start sessions"), nil
	}
	return hookvisor.PatchMetadata(map[string]any{"agent": s.AgentID, "before": s.Metadata})
}

func (testPlugin) SessionCreated(_ context.Context, e *hookvisor.SessionCreated) error {
	if e.SessionID == "fail" {
		return errors.New("cannot record the session")
	}
	return nil
}

// process is a plugin process started by a test, with a client connected to its socket.
type process struct {
	cmd    *exec.Cmd
	socket string
	stdout *lockedBuffer
	stderr *lockedBuffer
	exited chan struct{}
	client pb.PluginClient
	health healthpb.HealthClient
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// spawn starts program with only env (plus the socket path, unless env sets it) and no stdin.
func spawn(t *testing.T, program string, env ...string) *process {
	t.Helper()
	return spawnTo(t, nil, program, env...)
}

// spawnTo is spawn with stdout going to the file given, or into p.stdout when it is nil.
func spawnTo(t *testing.T, stdout *os.File, program string, env ...string) *process {
	t.Helper()
	p := &process{socket: filepath.Join(t.TempDir(), "plugin.sock"), stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, exited: make(chan struct{})}
	for _, kv := range env {
		if path, ok := strings.CutPrefix(kv, "HOOKVISOR_PLUGIN_SOCKET="); ok {
			p.socket = path
		}
	}
	p.cmd = exec.Command(program)
	// exec.Cmd uses the last value of a duplicated key, so env overrides these.
	p.cmd.Env = append([]string{"HOOKVISOR_PLUGIN_SOCKET=" + p.socket, "HOOKVISOR_PLUGIN_NAME=sdk-test"}, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if stdout != nil {
		p.cmd.Stdout = stdout
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
	return p
}

// start spawns program with the cookie and waits until Describe answers.
func start(t *testing.T, program string, env ...string) *process {
	t.Helper()
	return startTo(t, nil, program, env...)
}

// startTo is start with stdout going to the file given (see spawnTo).
func startTo(t *testing.T, stdout *os.File, program string, env ...string) *process {
	t.Helper()
	p := spawnTo(t, stdout, program, append(env, cookie)...)
	began := time.Now()
	// Wait for the socket first, noticing a plugin that exits instead.
	for {
		if _, err := os.Stat(p.socket); err == nil {
			break
		}
		select {
		case <-p.exited:
			t.Fatalf("the plugin exited before it was ready (%v); stderr:\n%s", p.cmd.ProcessState, p.stderr)
		case <-time.After(2 * time.Millisecond):
		}
		if time.Since(began) > 5*time.Second {
			t.Fatalf("no socket after 5 s; stderr:\n%s", p.stderr)
		}
	}
	// A short backoff: the socket file exists a moment before the plugin listens on it.
	conn, err := grpc.NewClient("unix://"+p.socket, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 5 * time.Millisecond, Multiplier: 2, MaxDelay: 100 * time.Millisecond}}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	p.client, p.health = pb.NewPluginClient(conn), healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// WaitForReady: a stale socket file may refuse the first dial.
	if _, err := p.client.Describe(ctx, &pb.DescribeRequest{ProtocolVersion: 1}, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("Describe: %v; stderr:\n%s", err, p.stderr)
	}
	t.Logf("ready after %v", time.Since(began).Round(time.Millisecond))
	return p
}

func startPlugin(t *testing.T) *process {
	return start(t, os.Args[0], "HOOKVISOR_SDK_TEST_ROLE=plugin")
}

// exitCode waits at most limit for the process to exit.
func (p *process) exitCode(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(limit):
		t.Fatalf("still running after %v; stderr:\n%s", limit, p.stderr)
		return -1
	}
}

func (p *process) call(t *testing.T, tool, params string) (*pb.ToolCallDecision, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return p.client.BeforeToolCall(ctx, &pb.BeforeToolCallRequest{
		ToolName: tool, ParamsJson: params, Context: &pb.ToolCallContext{AgentId: "main"},
	})
}

// stderrContains polls the plugin's stderr for text until limit passes.
func (p *process) stderrContains(text string, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for !strings.Contains(p.stderr.String(), text) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

func (p *process) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

func assertGone(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is still there (%v)", path, err)
	}
}

func TestStartedByHandPrintsOneLineAndExits1(t *testing.T) {
	for _, env := range [][]string{{}, {"HOOKVISOR_MAGIC_COOKIE=wrong"}} {
		p := spawn(t, os.Args[0], append(env, "HOOKVISOR_SDK_TEST_ROLE=plugin")...)
		if code := p.exitCode(t, 5*time.Second); code != 1 {
			t.Errorf("%v: exit %d, want 1", env, code)
		}
		if got := p.stderr.String(); got != notByHand {
			t.Errorf("%v: stderr %q", env, got)
		}
		assertGone(t, p.socket)
	}
	// Before init runs: an init that would fail says nothing either.
	p := spawn(t, os.Args[0], "HOOKVISOR_SDK_TEST_ROLE=init-error")
	if code := p.exitCode(t, 5*time.Second); code != 1 || p.stderr.String() != notByHand {
		t.Errorf("exit %d, stderr %q", code, p.stderr)
	}
}

func TestSocketMustBeSetAndAbsolute(t *testing.T) {
	for env, want := range map[string]string{
		"HOOKVISOR_PLUGIN_SOCKET=relative.sock": `HOOKVISOR_PLUGIN_SOCKET must be an absolute path, got "relative.sock"`,
		"HOOKVISOR_PLUGIN_SOCKET=":              `HOOKVISOR_PLUGIN_SOCKET must be an absolute path, got ""`,
	} {
		p := spawn(t, os.Args[0], env, cookie, "HOOKVISOR_SDK_TEST_ROLE=plugin")
		if code := p.exitCode(t, 5*time.Second); code != 1 || p.stderr.String() != want+"\n" {
			t.Errorf("%s: exit %d, stderr %q", env, code, p.stderr)
		}
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = []string{cookie, "HOOKVISOR_SDK_TEST_ROLE=plugin"}
	out, err := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "HOOKVISOR_PLUGIN_SOCKET is not set") {
		t.Errorf("unset: %v, %q", err, out)
	}
}

func TestInitErrorIsOneLineAndExit1(t *testing.T) {
	p := spawn(t, os.Args[0], cookie, "HOOKVISOR_SDK_TEST_ROLE=init-error")
	if code := p.exitCode(t, 5*time.Second); code != 1 {
		t.Errorf("exit %d", code)
	}
	if got := p.stderr.String(); got != "TEST_LIST is not set; name a file\n" {
		t.Errorf("stderr %q", got)
	}
	assertGone(t, p.socket)
}

func TestDescribeAndHealth(t *testing.T) {
	p := startPlugin(t)
	ctx := context.Background()
	info, err := p.client.Describe(ctx, &pb.DescribeRequest{ProtocolVersion: 1})
	if err != nil {
		t.Fatal(err)
	}
	if info.GetName() != "sdk-test" || info.GetVersion() != "9.9.9" || info.GetProtocolVersion() != 1 || len(info.GetHooks()) != 3 {
		t.Errorf("info = %v", info)
	}
	if r := info.GetHooks()[0]; r.GetHook() != hookvisor.HookBeforeToolCall || r.GetStage() != hookvisor.StageHook || r.GetTimeoutMs() != 200 {
		t.Errorf("registration = %v", r)
	}
	for _, service := range []string{"", "hookvisor.v1.Plugin"} {
		r, err := p.health.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health %q: %v, %v", service, r, err)
		}
	}
	if _, err := p.health.Check(ctx, &healthpb.HealthCheckRequest{Service: "other"}); status.Code(err) != codes.NotFound {
		t.Errorf("unknown service: %v", err)
	}
}

func TestDecisionsOverTheSocket(t *testing.T) {
	p := startPlugin(t)

	d, err := p.call(t, "block", "{}")
	if err != nil || !d.GetBlock() || d.GetBlockReason() != "blocked for main" {
		t.Errorf("block: %v, %v", d, err)
	}
	d, err = p.call(t, "rewrite", `{"path":"a","n":12345678901234567890}`)
	if err != nil || d.GetParamsJson() != `{"checked":true,"n":12345678901234567890,"path":"a"}` || d.GetBlock() {
		t.Errorf("rewrite: %v, %v", d, err)
	}
	d, err = p.call(t, "approve", `{"command":"git push"}`)
	a := d.GetRequireApproval()
	if err != nil || a.GetTitle() != "Run it?" || a.GetDescription() != "git push" || a.GetSeverity() != hookvisor.SeverityCritical ||
		a.GetTimeoutMs() != 1000 || len(a.GetAllowedDecisions()) != 2 {
		t.Errorf("approve: %v, %v", d, err)
	}
	d, err = p.call(t, "other", "{}")
	if err != nil || d.GetBlock() || d.ParamsJson != nil || d.GetRequireApproval() != nil {
		t.Errorf("other: %v, %v", d, err)
	}
	_, err = p.call(t, "other", "[1]")
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "params_json must be a JSON object, got an array") {
		t.Errorf("array params: %v", err)
	}

	ctx := context.Background()
	s, err := p.client.BeforeSessionCreate(ctx, &pb.BeforeSessionCreateRequest{AgentId: "guest"})
	if err != nil || !s.GetBlock() || s.GetBlockReason() != "agent 'guest' may not start sessions" {
		t.Errorf("session block: %v, %v", s, err)
	}
	s, err = p.client.BeforeSessionCreate(ctx, &pb.BeforeSessionCreateRequest{AgentId: "main", SessionMetadataJson: `{"n":1}`})
	if err != nil || s.GetMetadataJson() != `{"agent":"main","before":{"n":1}}` {
		t.Errorf("session patch: %v, %v", s, err)
	}
	if _, err := p.client.SessionCreated(ctx, &pb.SessionCreatedEvent{SessionId: "s1"}); err != nil {
		t.Errorf("session created: %v", err)
	}
	if _, err := p.client.SessionCreated(ctx, &pb.SessionCreatedEvent{SessionId: "fail"}); status.Code(err) != codes.Unknown {
		t.Errorf("session created error: %v", err)
	}
}

func TestHandlerErrorsAndPanicsAreStatusesNotCrashes(t *testing.T) {
	p := startPlugin(t)
	for tool, want := range map[string]struct {
		code    codes.Code
		message string
	}{
		"error":  {codes.Unknown, "before_tool_call handler failed: the list is unreadable"},
		"status": {codes.PermissionDenied, "not today"},
		"panic":  {codes.Internal, "before_tool_call handler panicked: boom"},
	} {
		_, err := p.call(t, tool, "{}")
		if s := status.Convert(err); s.Code() != want.code || s.Message() != want.message {
			t.Errorf("%s: %v", tool, err)
		}
	}
	if _, err := p.call(t, "other", "{}"); err != nil {
		t.Errorf("after a panic: %v", err)
	}
	select {
	case <-p.exited:
		t.Fatalf("the plugin exited: %s", p.stderr)
	default:
	}
	// The log line travels through a pipe that a goroutine copies: it may land after the
	// answer did.
	if !p.stderrContains("before_tool_call handler panicked: boom", 5*time.Second) {
		t.Errorf("the panic was not logged: %s", p.stderr)
	}
}

// A nil decision with a nil error is not "no opinion" (an empty decision, which the supervisor
// lets through): the call fails with UNKNOWN naming the mistake, and it is logged.
func TestANilDecisionIsAnErrorNotNoOpinion(t *testing.T) {
	p := startPlugin(t)
	const toolWant = "before_tool_call handler returned a nil *hookvisor.Decision and no error; " +
		"return hookvisor.Allow(), Block(reason), Rewrite(params) or RequireApproval(...)"
	for _, tool := range []string{"nil", "async-nil"} {
		d, err := p.call(t, tool, "{}")
		if s := status.Convert(err); s.Code() != codes.Unknown || s.Message() != toolWant {
			t.Errorf("%s: %v, %v", tool, d, err)
		}
	}
	const sessionWant = "before_session_create handler returned a nil *hookvisor.SessionDecision and no error; " +
		"return hookvisor.AllowSession(), BlockSession(reason) or PatchMetadata(value)"
	for _, agent := range []string{"nil", "unset"} {
		d, err := p.client.BeforeSessionCreate(context.Background(), &pb.BeforeSessionCreateRequest{AgentId: agent})
		if s := status.Convert(err); s.Code() != codes.Unknown || s.Message() != sessionWant {
			t.Errorf("session %s: %v, %v", agent, d, err)
		}
	}
	if d, err := p.call(t, "other", "{}"); err != nil || d.GetBlock() {
		t.Errorf("after a nil answer: %v, %v", d, err)
	}
	if !p.stderrContains(toolWant+"\n", 5*time.Second) || !p.stderrContains(sessionWant+"\n", 5*time.Second) {
		t.Errorf("not logged: %s", p.stderr)
	}
}

func TestTheHandlerSeesTheDeadline(t *testing.T) {
	p := startPlugin(t)
	d, err := p.client.BeforeToolCall(context.Background(), &pb.BeforeToolCallRequest{ToolName: "deadline", ParamsJson: "{}", DeadlineMs: 700})
	var ms int
	if err != nil || !strings.HasPrefix(d.GetBlockReason(), "deadline in ") {
		t.Fatalf("%v, %v", d, err)
	}
	if _, err := fmt.Sscanf(d.GetBlockReason(), "deadline in %d ms", &ms); err != nil || ms <= 0 || ms > 700 {
		t.Errorf("reason %q", d.GetBlockReason())
	}
}

func TestAHungHandlerIsCancelledWithoutBlockingOthers(t *testing.T) {
	p := startPlugin(t)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, err := p.client.BeforeToolCall(context.Background(), &pb.BeforeToolCallRequest{ToolName: "hang", ParamsJson: "{}", DeadlineMs: 300})
		if status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("hang: %v", err)
		}
	}()
	time.Sleep(50 * time.Millisecond)
	if d, err := p.call(t, "block", "{}"); err != nil || !d.GetBlock() {
		t.Errorf("beside a hung call: %v, %v", d, err)
	}
	wg.Wait()
}

func TestHandlersInFlightAreBounded(t *testing.T) {
	p := startPlugin(t)
	var wg sync.WaitGroup
	for range hookvisor.MaxHandlers {
		wg.Go(func() {
			_, err := p.client.BeforeToolCall(context.Background(), &pb.BeforeToolCallRequest{ToolName: "hang", ParamsJson: "{}", DeadlineMs: 200})
			if status.Code(err) != codes.DeadlineExceeded {
				t.Errorf("hang: %v", err)
			}
		})
	}
	wg.Wait()
	_, err := p.call(t, "other", "{}")
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("past the bound: %v", err)
	}
	// Describe and health do not take a handler slot.
	if r, err := p.health.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health: %v, %v", r, err)
	}
}

func TestSIGTERMReportsNotServingFinishesCallsAndExits0(t *testing.T) {
	p := startPlugin(t)
	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	watch, err := p.health.Watch(watchCtx, &healthpb.HealthCheckRequest{Service: "hookvisor.v1.Plugin"})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := watch.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("watch: %v, %v", r, err)
	}

	slow := make(chan error, 1)
	go func() {
		d, err := p.call(t, "slow", "{}")
		if err == nil && d.GetBlockReason() != "slow call finished" {
			err = fmt.Errorf("slow: %v", d)
		}
		slow <- err
	}()
	time.Sleep(100 * time.Millisecond)
	stopping := time.Now()
	p.signal(t, syscall.SIGTERM)

	if r, err := watch.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("watch while draining: %v, %v", r, err)
	}
	stopWatch()
	if err := <-slow; err != nil {
		t.Errorf("the call in flight did not finish: %v", err)
	}
	if code := p.exitCode(t, 3*time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
	t.Logf("stopped %v after SIGTERM", time.Since(stopping).Round(time.Millisecond))
	// The stop line on stdout (logged at info by the supervisor), nothing on stderr.
	if stdout := p.stdout.String(); stdout != "received SIGTERM; finishing calls in flight and exiting\n" {
		t.Errorf("stdout %q", stdout)
	}
	if stderr := p.stderr.String(); stderr != "" {
		t.Errorf("stderr %q", stderr)
	}
	assertGone(t, p.socket)
}

func TestSIGINTWithAHungCallExits0WithinTheDrainLimit(t *testing.T) {
	p := startPlugin(t)
	hung := make(chan error, 1)
	go func() {
		_, err := p.client.BeforeToolCall(context.Background(), &pb.BeforeToolCallRequest{ToolName: "hang", ParamsJson: "{}"})
		hung <- err
	}()
	time.Sleep(100 * time.Millisecond)
	stopping := time.Now()
	p.signal(t, syscall.SIGINT)
	if code := p.exitCode(t, hookvisor.DrainLimit+3*time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
	if took := time.Since(stopping); took < hookvisor.DrainLimit {
		t.Errorf("stopped after %v, before the drain limit", took)
	}
	if err := <-hung; err == nil {
		t.Error("the hung call was answered")
	}
	// The stop line on stdout; giving up on a call is a warning, on stderr.
	if stdout := p.stdout.String(); stdout != "received SIGINT; finishing calls in flight and exiting\n" {
		t.Errorf("stdout %q", stdout)
	}
	if stderr := p.stderr.String(); stderr != "calls still running after 1500 ms; exiting anyway\n" {
		t.Errorf("stderr %q", stderr)
	}
	assertGone(t, p.socket)
}

// A stdout nobody reads any more (its pipe closed) does not turn a clean stop into a death by
// SIGPIPE: the stop line's write fails, is ignored, and the process still exits 0.
func TestSIGTERMWithStdoutClosedStillExits0(t *testing.T) {
	reader, writer, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p := startTo(t, writer, os.Args[0], "HOOKVISOR_SDK_TEST_ROLE=plugin")
	_ = writer.Close()
	_ = reader.Close()
	p.signal(t, syscall.SIGTERM)
	if code := p.exitCode(t, 3*time.Second); code != 0 {
		t.Errorf("exit %d (%v); stderr %q", code, p.cmd.ProcessState, p.stderr)
	}
	assertGone(t, p.socket)
}

func TestAStaleSocketIsReplaced(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "stale.sock")
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	_ = stale.Close()
	p := start(t, os.Args[0], "HOOKVISOR_SDK_TEST_ROLE=plugin", "HOOKVISOR_PLUGIN_SOCKET="+path)
	if _, err := p.call(t, "other", "{}"); err != nil {
		t.Error(err)
	}
}

func TestAnotherFileAtTheSocketPathIsKeptAndExits2(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(path, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := spawn(t, os.Args[0], cookie, "HOOKVISOR_SDK_TEST_ROLE=plugin", "HOOKVISOR_PLUGIN_SOCKET="+path)
	if code := p.exitCode(t, 5*time.Second); code != 2 {
		t.Errorf("exit %d", code)
	}
	if !strings.HasPrefix(p.stderr.String(), "cannot bind the plugin socket "+path) {
		t.Errorf("stderr %q", p.stderr)
	}
	if data, err := os.ReadFile(path); err != nil || string(data) != "mine" {
		t.Errorf("the file was touched: %q, %v", data, err)
	}
}

func TestMisbehaveFixture(t *testing.T) {
	binary := filepath.Join(t.TempDir(), "misbehave")
	build := exec.Command("go", "build", "-buildvcs=false", "-o", binary, "./internal/fixtures/misbehave")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	p := start(t, binary)

	hung := make(chan error, 1)
	go func() {
		_, err := p.client.BeforeToolCall(context.Background(), &pb.BeforeToolCallRequest{ToolName: "hang-me", ParamsJson: "{}", DeadlineMs: 300})
		hung <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if d, err := p.call(t, "anything", "{}"); err != nil || d.GetBlock() {
		t.Errorf("beside hang-me: %v, %v", d, err)
	}
	if err := <-hung; status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("hang-me: %v", err)
	}

	if _, err := p.call(t, "crash-me", "{}"); status.Code(err) != codes.Unavailable {
		t.Errorf("crash-me: %v", err)
	}
	if code := p.exitCode(t, 5*time.Second); code != 101 {
		t.Errorf("exit %d, want 101", code)
	}
}
