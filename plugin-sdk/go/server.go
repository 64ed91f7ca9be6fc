package hookvisor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "hookvisor.dev/plugin-sdk/go/hookvisorpb"
)

// The handshake environment (docs/contract.md §2).
const (
	envMagicCookie  = "HOOKVISOR_MAGIC_COOKIE"
	envPluginSocket = "HOOKVISOR_PLUGIN_SOCKET"
	envPluginName   = "HOOKVISOR_PLUGIN_NAME"
	magicCookie     = "d7f0c2a4-hookvisor-plugin-v1"
)

// Remote mode (docs/contract.md §2.6): set by the operator, never by hookvisor.
const (
	envRemoteListen = "HOOKVISOR_REMOTE_LISTEN"
	envTLSCert      = "HOOKVISOR_TLS_CERT"
	envTLSKey       = "HOOKVISOR_TLS_KEY"
	envTLSClientCA  = "HOOKVISOR_TLS_CLIENT_CA"
	// remoteListening starts the line printed on stderr once remote mode listens.
	remoteListening = "hookvisor plugin listening on"
)

// tlsHandshakeLimit is how long a remote client may take to finish the TLS handshake.
const tlsHandshakeLimit = 10 * time.Second

// notByHand is what a process started without hookvisor's environment prints before exiting 1.
const notByHand = "this is a hookvisor plugin; it is started by hookvisor (see `hookvisor serve`), not run by hand"

// DrainLimit is how long calls still in flight may finish after SIGTERM before the process exits
// anyway; shorter than the supervisor's default grace period (2000 ms), so a hung handler cannot
// turn a clean stop into a SIGKILL.
const DrainLimit = 1500 * time.Millisecond

// MaxHandlers bounds the handler goroutines running at once, counting those still running after
// the supervisor gave up on their call (Go cannot stop a goroutine that ignores its ctx). Past it,
// a call is answered RESOURCE_EXHAUSTED at once, which the supervisor counts as a failure.
const MaxHandlers = 256

// pluginService is the name the health service reports besides "".
const pluginService = "hookvisor.v1.Plugin"

// Run runs p as a hookvisor plugin process and returns the exit code: os.Exit(hookvisor.Run(p)).
//
// It checks HOOKVISOR_MAGIC_COOKIE (missing or wrong: one line on stderr, exit 1), reads
// HOOKVISOR_PLUGIN_SOCKET (must be absolute, else exit 1) and HOOKVISOR_PLUGIN_NAME, binds the
// socket (replacing a stale socket file), serves hookvisor.v1.Plugin and grpc.health.v1.Health
// until SIGTERM or SIGINT, then drains for at most [DrainLimit], removes the socket and returns 0.
// Bind or serve errors are reported on stderr with exit code 2.
//
// With HOOKVISOR_REMOTE_LISTEN set (remote mode, docs/contract.md §2.6) it serves the same
// services on that TCP address instead, with TLS from HOOKVISOR_TLS_CERT, HOOKVISOR_TLS_KEY and
// HOOKVISOR_TLS_CLIENT_CA (PEM files) and a client certificate required, and prints
// "hookvisor plugin listening on ADDRESS (TLS, client certificates required)" on stderr once it
// listens. HOOKVISOR_MAGIC_COOKIE must then be unset; the cookie with the address, a TLS variable
// unset, or a file unreadable or not PEM of its kind: one line on stderr, exit code 1. No socket
// file is made.
func Run(p Plugin) int {
	return RunWith(func() (Plugin, error) { return p, nil })
}

// RunWith is [Run] for a plugin built by init after the handshake checks pass.
//
// Use it for plugins that read configuration (files, environment) at start: started by hand they
// still print the "started by hookvisor" line, and an init error is printed on stderr as one line
// with exit code 1, which the supervisor reports as a start failure with that line.
func RunWith(init func() (Plugin, error)) int {
	address, remote := os.LookupEnv(envRemoteListen)
	var socket string
	var config *tls.Config
	if remote {
		var err error
		if config, err = remoteTLSFromEnv(); err != nil {
			fmt.Fprintln(os.Stderr, oneLine(err.Error()))
			return 1
		}
	} else {
		if os.Getenv(envMagicCookie) != magicCookie {
			fmt.Fprintln(os.Stderr, notByHand)
			return 1
		}
		var ok bool
		if socket, ok = os.LookupEnv(envPluginSocket); !ok {
			fmt.Fprintf(os.Stderr, "%s is not set; hookvisor sets it when it starts a plugin\n", envPluginSocket)
			return 1
		}
		if !filepath.IsAbs(socket) {
			fmt.Fprintf(os.Stderr, "%s must be an absolute path, got %q\n", envPluginSocket, socket)
			return 1
		}
	}
	p, err := init()
	if err == nil && p == nil {
		err = errors.New("the plugin's init returned no plugin")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, oneLine(err.Error()))
		return 1
	}
	info := p.Info()
	if info.Name == "" {
		info.Name = os.Getenv(envPluginName)
	}

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	var listener net.Listener
	if remote {
		if address == "" {
			// net.Listen would take "" as every interface on a random port.
			err = fmt.Errorf(`cannot listen on "": %s is empty; it takes HOST:PORT`, envRemoteListen)
		} else if listener, err = net.Listen("tcp", address); err != nil {
			err = fmt.Errorf("cannot listen on %s: %w", address, err)
		}
	} else {
		listener, err = bind(socket)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, oneLine(err.Error()))
		return 2
	}
	if remote {
		// Tests and operators read the port from this line (":0" picks one).
		fmt.Fprintf(os.Stderr, "%s %s (TLS, client certificates required)\n", remoteListening, listener.Addr())
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		name := "SIGINT"
		if <-signals == syscall.SIGTERM {
			name = "SIGTERM"
		}
		// On stdout, which the supervisor logs at info: a stop it asked for is not a warning.
		// SIGPIPE is ignored first, so a closed stdout fails the write (ignored) instead of
		// killing the process before it drains.
		signal.Ignore(syscall.SIGPIPE)
		_, _ = fmt.Fprintf(os.Stdout, "received %s; finishing calls in flight and exiting\n", name)
		stop()
	}()
	err = serve(ctx, p, info, listener, config)
	if !remote {
		removeSocket(socket)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "the gRPC server failed: %v\n", err)
		return 2
	}
	return 0
}

// Serve serves p on listener until ctx is done, then drains calls in flight for at most
// [DrainLimit]. It is the gRPC part of [Run] without the environment, signals and exit codes, so
// tests can drive a plugin over a real socket. Describe answers p.Info() as it is.
func Serve(ctx context.Context, p Plugin, listener net.Listener) error {
	return serve(ctx, p, p.Info(), listener, nil)
}

// ServeRemote is [Serve] for remote mode (docs/contract.md §2.6): it serves p on listener, a TCP
// listener, with TLS config, which must require and verify client certificates (as [RemoteTLS]
// makes it); gRPC adds ALPN h2. [Run] does the same when HOOKVISOR_REMOTE_LISTEN is set, plus
// signals, the listening line and exit codes.
func ServeRemote(ctx context.Context, p Plugin, listener net.Listener, config *tls.Config) error {
	if config == nil || config.ClientAuth != tls.RequireAndVerifyClientCert || config.ClientCAs == nil {
		return errors.New("ServeRemote needs a tls.Config with ClientAuth tls.RequireAndVerifyClientCert and ClientCAs (see RemoteTLS)")
	}
	return serve(ctx, p, p.Info(), listener, config)
}

// RemoteTLS is the TLS configuration of remote mode from PEM files: the server's certificate
// chain (its own first), its private key, and the CA a client's certificate must chain to. A
// client without a certificate, or with one from another CA, fails the handshake. Each file is
// checked here; an error names the file and what is wrong with it.
func RemoteTLS(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	return loadRemoteTLS(
		"the certificate chain file "+certFile, certFile,
		"the private key file "+keyFile, keyFile,
		"the client CA file "+clientCAFile, clientCAFile)
}

// remoteTLSFromEnv checks remote mode's environment; an error is the one line to print.
func remoteTLSFromEnv() (*tls.Config, error) {
	if _, ok := os.LookupEnv(envMagicCookie); ok {
		return nil, fmt.Errorf("%s and %s are both set: hookvisor starts a local plugin with the cookie, "+
			"an operator starts a remote one without it (contract §2.6); unset one", envMagicCookie, envRemoteListen)
	}
	var files [3]string
	for i, v := range []struct{ name, what string }{
		{envTLSCert, "the server's certificate chain"},
		{envTLSKey, "the server's private key"},
		{envTLSClientCA, "the CA client certificates chain to"},
	} {
		if files[i] = os.Getenv(v.name); files[i] == "" {
			return nil, fmt.Errorf("%s is not set; remote mode (%s) needs it: %s (PEM file)", v.name, envRemoteListen, v.what)
		}
	}
	return loadRemoteTLS(
		envTLSCert+" file "+files[0], files[0],
		envTLSKey+" file "+files[1], files[1],
		envTLSClientCA+" file "+files[2], files[2])
}

// loadRemoteTLS reads and checks the three PEM files, each named in errors by its label.
func loadRemoteTLS(certLabel, certFile, keyLabel, keyFile, caLabel, caFile string) (*tls.Config, error) {
	read := func(label, file string) ([]byte, error) {
		data, err := os.ReadFile(file)
		if err != nil {
			var pathErr *os.PathError
			if errors.As(err, &pathErr) {
				err = pathErr.Err
			}
			return nil, fmt.Errorf("%s: cannot read it: %w", label, err)
		}
		return data, nil
	}
	certPEM, err := read(certLabel, certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := read(keyLabel, keyFile)
	if err != nil {
		return nil, err
	}
	caPEM, err := read(caLabel, caFile)
	if err != nil {
		return nil, err
	}
	if !hasPEMBlock(certPEM, func(t string) bool { return t == "CERTIFICATE" }) {
		return nil, fmt.Errorf("%s: no CERTIFICATE in it", certLabel)
	}
	if !hasPEMBlock(keyPEM, func(t string) bool { return strings.HasSuffix(t, "PRIVATE KEY") }) {
		return nil, fmt.Errorf("%s: no PRIVATE KEY in it", keyLabel)
	}
	clientCAs := x509.NewCertPool()
	if !clientCAs.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s: no usable CA CERTIFICATE in it", caLabel)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s and %s: not a usable certificate and key: %w", certLabel, keyLabel, err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientCAs,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// hasPEMBlock says whether data has a PEM block whose type is accepted.
func hasPEMBlock(data []byte, accept func(string) bool) bool {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return false
		}
		if accept(block.Type) {
			return true
		}
	}
}

// serve serves on listener, with mutual TLS when config is set (remote mode).
func serve(ctx context.Context, p Plugin, info Info, listener net.Listener, config *tls.Config) error {
	healthServer := health.NewServer()
	healthServer.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthServer.SetServingStatus(pluginService, healthpb.HealthCheckResponse_SERVING)

	// Stream workers: grpc-go hands each stream to one of GOMAXPROCS long-lived goroutines (a new
	// goroutine only when all are busy, so a hung handler takes none away) instead of starting
	// one per stream whose stack then grows on every call. Faster per call in hookvisor bench
	// (bare_go_workers_* against bare_go_default_*).
	options := []grpc.ServerOption{grpc.MaxConcurrentStreams(MaxHandlers),
		grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0)))}
	if config != nil {
		options = append(options, grpc.Creds(credentials.NewTLS(config)), grpc.ConnectionTimeout(tlsHandshakeLimit))
	}
	server := grpc.NewServer(options...)
	pb.RegisterPluginServer(server, newAdapter(p, info))
	healthpb.RegisterHealthServer(server, healthServer)

	served := make(chan error, 1)
	go func() { served <- server.Serve(listener) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}

	// Draining: report NOT_SERVING, refuse new connections and calls, let calls in flight finish.
	healthServer.Shutdown()
	drained := make(chan struct{})
	go func() {
		server.GracefulStop()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(DrainLimit):
		fmt.Fprintf(os.Stderr, "calls still running after %d ms; exiting anyway\n", DrainLimit.Milliseconds())
		server.Stop() // cancels the calls' contexts; handlers that ignore them die with the process
	}
	<-served
	return nil
}

// bind listens on path, first removing a socket left there by an earlier run (never another file).
func bind(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("cannot bind the plugin socket %s: %w", path, err)
		}
	}
	listener, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("cannot bind the plugin socket %s: %w", path, err)
	}
	return listener, nil
}

func removeSocket(path string) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(os.Stderr, "cannot remove the plugin socket %s: %v\n", path, err)
	}
}

// adapter turns the generated service's requests into the SDK's views and back.
type adapter struct {
	pb.UnimplementedPluginServer
	info            *pb.PluginInfo
	toolCalls       ToolCallHandler
	sessionCreates  SessionCreateHandler
	sessionsCreated SessionCreatedHandler
	slots           chan struct{} // one token per handler goroutine running
}

func newAdapter(p Plugin, info Info) *adapter {
	a := &adapter{info: info.proto(), slots: make(chan struct{}, MaxHandlers)}
	a.toolCalls, _ = p.(ToolCallHandler)
	a.sessionCreates, _ = p.(SessionCreateHandler)
	a.sessionsCreated, _ = p.(SessionCreatedHandler)
	for _, r := range info.Hooks {
		var missing string
		switch {
		case r.Hook == HookBeforeToolCall && a.toolCalls == nil:
			missing = "BeforeToolCall(context.Context, *hookvisor.ToolCall) (*hookvisor.Decision, error)"
		case r.Hook == HookBeforeSessionCreate && a.sessionCreates == nil:
			missing = "BeforeSessionCreate(context.Context, *hookvisor.SessionCreate) (*hookvisor.SessionDecision, error)"
		case r.Hook == HookSessionCreated && a.sessionsCreated == nil:
			missing = "SessionCreated(context.Context, *hookvisor.SessionCreated) error"
		}
		if missing != "" {
			fmt.Fprintf(os.Stderr, "warning: %T registers %s but has no method %s; it answers no opinion\n", p, r.Hook, missing)
		}
	}
	return a
}

func (a *adapter) Describe(context.Context, *pb.DescribeRequest) (*pb.PluginInfo, error) {
	return proto.CloneOf(a.info), nil
}

func (a *adapter) BeforeToolCall(ctx context.Context, req *pb.BeforeToolCallRequest) (*pb.ToolCallDecision, error) {
	call, err := toolCallFrom(req)
	if err != nil || a.toolCalls == nil {
		return Allow(), err
	}
	call.Traceparent = traceparent(ctx)
	ctx, cancel := withDeadlineMs(ctx, req.GetDeadlineMs())
	defer cancel()
	d, err := guard(ctx, a.slots, "before_tool_call", func(ctx context.Context) (*Decision, error) {
		return a.toolCalls.BeforeToolCall(ctx, call)
	})
	if err == nil && d == nil {
		return nil, noAnswer("before_tool_call", "*hookvisor.Decision",
			"hookvisor.Allow(), Block(reason), Rewrite(params) or RequireApproval(...)")
	}
	return d, err
}

func (a *adapter) BeforeSessionCreate(ctx context.Context, req *pb.BeforeSessionCreateRequest) (*pb.SessionDecision, error) {
	session, err := sessionCreateFrom(req)
	if err != nil || a.sessionCreates == nil {
		return AllowSession(), err
	}
	session.Traceparent = traceparent(ctx)
	ctx, cancel := withDeadlineMs(ctx, req.GetDeadlineMs())
	defer cancel()
	d, err := guard(ctx, a.slots, "before_session_create", func(ctx context.Context) (*SessionDecision, error) {
		return a.sessionCreates.BeforeSessionCreate(ctx, session)
	})
	if err == nil && d == nil {
		return nil, noAnswer("before_session_create", "*hookvisor.SessionDecision",
			"hookvisor.AllowSession(), BlockSession(reason) or PatchMetadata(value)")
	}
	return d, err
}

// noAnswer is the status for a handler that returned neither a decision nor an error. The empty
// decision means "no opinion", which lets the call through, so a nil one (a forgotten branch, a
// variable never set) is not read as one: the call fails, which the supervisor counts as a
// failure of the plugin (a block). It is logged on stderr too.
func noAnswer(hook, decision, helpers string) error {
	message := fmt.Sprintf("%s handler returned a nil %s and no error; return %s", hook, decision, helpers)
	fmt.Fprintln(os.Stderr, message)
	return status.Error(codes.Unknown, message)
}

func (a *adapter) SessionCreated(ctx context.Context, req *pb.SessionCreatedEvent) (*pb.Ack, error) {
	event, err := sessionCreatedFrom(req)
	if err != nil || a.sessionsCreated == nil {
		return &pb.Ack{}, err
	}
	event.Traceparent = traceparent(ctx)
	_, err = guard(ctx, a.slots, "session_created", func(ctx context.Context) (struct{}, error) {
		return struct{}{}, a.sessionsCreated.SessionCreated(ctx, event)
	})
	return &pb.Ack{}, err
}

// withDeadlineMs gives ctx the deadline the supervisor announced in the request, so handlers see
// it even when the client sent no grpc-timeout header.
func withDeadlineMs(ctx context.Context, ms uint32) (context.Context, context.CancelFunc) {
	if ms == 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, time.Duration(ms)*time.Millisecond)
}

type outcome[T any] struct {
	value T
	err   error
}

// guard runs handler in a goroutine of its own, holding one of the slots while it runs: a panic
// becomes an INTERNAL status instead of a crash, and the call is answered as soon as ctx is done
// even if the handler ignores it (the handler keeps its slot until it returns).
func guard[T any](ctx context.Context, slots chan struct{}, hook string, handler func(context.Context) (T, error)) (T, error) {
	var zero T
	select {
	case slots <- struct{}{}:
	default:
		return zero, status.Errorf(codes.ResourceExhausted, "%d handlers are still running; refusing this %s call", MaxHandlers, hook)
	}
	done := make(chan outcome[T], 1)
	go func() {
		defer func() { <-slots }()
		defer func() {
			if r := recover(); r != nil {
				fmt.Fprintf(os.Stderr, "%s handler panicked: %v\n%s", hook, r, debug.Stack())
				done <- outcome[T]{err: status.Errorf(codes.Internal, "%s handler panicked: %v", hook, r)}
			}
		}()
		value, err := handler(ctx)
		done <- outcome[T]{value, err}
	}()
	select {
	case o := <-done:
		return o.value, toStatus(hook, o.err)
	case <-ctx.Done():
		return zero, status.FromContextError(ctx.Err()).Err()
	}
}

// toStatus passes gRPC status errors on and wraps any other error as UNKNOWN, naming the hook.
func toStatus(hook string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	return status.Errorf(codes.Unknown, "%s handler failed: %v", hook, err)
}

// oneLine keeps a message to one line, since the supervisor logs stderr line by line.
func oneLine(s string) string {
	out := []rune(s)
	for i, r := range out {
		if r == '\n' || r == '\r' {
			out[i] = ' '
		}
	}
	return string(out)
}
