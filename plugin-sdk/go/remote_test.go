package hookvisor_test

// Remote mode (docs/contract.md §2.6) in a real process: TCP with mutual TLS, the listening line,
// refused clients, start-up errors, and the trace context reaching the handler. The plugin is this
// test binary re-executed (see TestMain); certificates are made at test time with crypto/x509.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	hookvisor "hookvisor.dev/plugin-sdk/go"
	pb "hookvisor.dev/plugin-sdk/go/hookvisorpb"
)

// testCA signs leaf certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func serial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key := newKey(t)
	template := &x509.Certificate{
		SerialNumber: serial(t), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// leaf is a certificate for the given names (IP addresses or DNS names) and its key, as PEM.
func (ca *testCA) leaf(t *testing.T, usage x509.ExtKeyUsage, names ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	key := newKey(t)
	template := &x509.Certificate{
		SerialNumber: serial(t), Subject: pkix.Name{CommonName: names[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	for _, name := range names {
		if ip := net.ParseIP(name); ip != nil {
			template.IPAddresses = append(template.IPAddresses, ip)
		} else {
			template.DNSNames = append(template.DNSNames, name)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, template, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// pki is a remote deployment's files: the server's certificate and key, the client CA, and a
// good client's certificate.
type pki struct {
	dir                   string
	ca                    *testCA
	cert, key, clientCA   string
	clientCert, clientKey []byte
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir(), ca: newTestCA(t, "hookvisor test CA")}
	cert, key := p.ca.leaf(t, x509.ExtKeyUsageServerAuth, "localhost", "127.0.0.1")
	p.cert, p.key, p.clientCA = p.write(t, "server.pem", cert), p.write(t, "server.key", key), p.write(t, "ca.pem", p.ca.pem)
	p.clientCert, p.clientKey = p.ca.leaf(t, x509.ExtKeyUsageClientAuth, "supervisor")
	return p
}

func (p *pki) write(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// env is remote mode's environment on address, with the role of the test plugin.
func (p *pki) env(address string) []string {
	return []string{
		"HOOKVISOR_SDK_TEST_ROLE=plugin",
		"HOOKVISOR_REMOTE_LISTEN=" + address,
		"HOOKVISOR_TLS_CERT=" + p.cert,
		"HOOKVISOR_TLS_KEY=" + p.key,
		"HOOKVISOR_TLS_CLIENT_CA=" + p.clientCA,
	}
}

// client is a TLS client trusting the test CA and presenting certPEM/keyPEM (none when nil).
func (p *pki) client(t *testing.T, address string, certPEM, keyPEM []byte) pb.PluginClient {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(p.ca.pem)
	config := &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if certPEM != nil {
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		// Always presented: Go's default presents a certificate only when its issuer is one the
		// server asks for, and the test of another CA's certificate must really send it.
		config.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
	}
	conn, err := grpc.NewClient(address, grpc.WithTransportCredentials(credentials.NewTLS(config)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return pb.NewPluginClient(conn)
}

func describe(client pb.PluginClient) (*pb.PluginInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return client.Describe(ctx, &pb.DescribeRequest{ProtocolVersion: 1})
}

var listeningLine = regexp.MustCompile(`(?m)^hookvisor plugin listening on (\S+) \(TLS, client certificates required\)$`)

// listening waits for the listening line and returns the address it names.
func (p *process) listening(t *testing.T) string {
	t.Helper()
	if !p.stderrContains("(TLS, client certificates required)\n", 10*time.Second) {
		t.Fatalf("no listening line; exited %v; stderr %q", p.cmd.ProcessState, p.stderr)
	}
	m := listeningLine.FindStringSubmatch(p.stderr.String())
	if m == nil {
		t.Fatalf("unexpected stderr %q", p.stderr)
	}
	return m[1]
}

func TestRemoteModeServesOverMutualTLSAndDrainsOnSIGTERM(t *testing.T) {
	keys := newPKI(t)
	p := spawn(t, os.Args[0], keys.env("127.0.0.1:0")...)
	address := p.listening(t)
	if port, ok := strings.CutPrefix(address, "127.0.0.1:"); !ok || port == "0" || port == "" {
		t.Fatalf("the line names %q, not the bound port", address)
	}
	client := keys.client(t, address, keys.clientCert, keys.clientKey)
	info, err := describe(client)
	if err != nil {
		t.Fatalf("Describe: %v; stderr %q", err, p.stderr)
	}
	// HOOKVISOR_PLUGIN_NAME (set by spawn) is read in remote mode too.
	if info.GetName() != "sdk-test" || info.GetVersion() != "9.9.9" || len(info.GetHooks()) != 3 {
		t.Errorf("info = %v", info)
	}

	const good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for value, want := range map[string]string{
		good:                  "traceparent=" + good,
		"junk":                "traceparent=",
		strings.ToUpper(good): "traceparent=",
		"":                    "traceparent=",
	} {
		ctx := context.Background()
		if value != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "traceparent", value)
		}
		d, err := client.BeforeToolCall(ctx, &pb.BeforeToolCallRequest{ToolName: "trace", ParamsJson: "{}"})
		if err != nil || d.GetBlockReason() != want {
			t.Errorf("traceparent %q: %v, %v", value, d, err)
		}
	}

	p.signal(t, syscall.SIGTERM)
	if code := p.exitCode(t, 5*time.Second); code != 0 {
		t.Errorf("exit %d; stderr %q", code, p.stderr)
	}
	if lines := strings.Count(p.stderr.String(), "\n"); lines != 1 {
		t.Errorf("stderr %q", p.stderr)
	}
	assertGone(t, p.socket)
}

func TestRemoteModeRefusesClientsWithoutACertificateOrFromAnotherCA(t *testing.T) {
	keys := newPKI(t)
	p := spawn(t, os.Args[0], keys.env("127.0.0.1:0")...)
	address := p.listening(t)

	if info, err := describe(keys.client(t, address, nil, nil)); err == nil {
		t.Errorf("without a client certificate: %v", info)
	}
	strangerCert, strangerKey := newTestCA(t, "another CA").leaf(t, x509.ExtKeyUsageClientAuth, "supervisor")
	if info, err := describe(keys.client(t, address, strangerCert, strangerKey)); err == nil {
		t.Errorf("with another CA's certificate: %v", info)
	}
	// The refusals did not hurt the server.
	if _, err := describe(keys.client(t, address, keys.clientCert, keys.clientKey)); err != nil {
		t.Errorf("a good client after the refusals: %v", err)
	}
}

func TestServeRemoteServesAListenerGivenByTheProgram(t *testing.T) {
	keys := newPKI(t)
	config, err := hookvisor.RemoteTLS(keys.cert, keys.key, keys.clientCA)
	if err != nil {
		t.Fatal(err)
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- hookvisor.ServeRemote(ctx, testPlugin{}, listener, config) }()
	if info, err := describe(keys.client(t, listener.Addr().String(), keys.clientCert, keys.clientKey)); err != nil || info.GetVersion() != "9.9.9" {
		t.Errorf("Describe: %v, %v", info, err)
	}
	if _, err := describe(keys.client(t, listener.Addr().String(), nil, nil)); err == nil {
		t.Error("a client without a certificate was served")
	}
	stop()
	if err := <-served; err != nil {
		t.Error(err)
	}
	// Without client certificates required it refuses to serve at all.
	if err := hookvisor.ServeRemote(context.Background(), testPlugin{}, listener, &tls.Config{}); err == nil {
		t.Error("ServeRemote served without client certificates required")
	}
}

func TestRemoteModeWithTheCookieRefusesToStart(t *testing.T) {
	keys := newPKI(t)
	p := spawn(t, os.Args[0], append(keys.env("127.0.0.1:0"), cookie)...)
	if code := p.exitCode(t, 5*time.Second); code != 1 {
		t.Errorf("exit %d", code)
	}
	stderr := p.stderr.String()
	if strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "HOOKVISOR_MAGIC_COOKIE and HOOKVISOR_REMOTE_LISTEN are both set") {
		t.Errorf("stderr %q", stderr)
	}
}

func TestRemoteModeNamesAMissingVariableOrABadFileAndExits1(t *testing.T) {
	keys := newPKI(t)
	for _, missing := range []string{"HOOKVISOR_TLS_CERT", "HOOKVISOR_TLS_KEY", "HOOKVISOR_TLS_CLIENT_CA"} {
		var env []string
		for _, kv := range keys.env("127.0.0.1:0") {
			if !strings.HasPrefix(kv, missing+"=") {
				env = append(env, kv)
			}
		}
		p := spawn(t, os.Args[0], env...)
		if code := p.exitCode(t, 5*time.Second); code != 1 {
			t.Errorf("%s: exit %d", missing, code)
		}
		if stderr := p.stderr.String(); strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, missing+" is not set") {
			t.Errorf("%s: stderr %q", missing, stderr)
		}
	}

	junk := keys.write(t, "junk.pem", []byte("not a certificate\n"))
	gone := filepath.Join(keys.dir, "gone.pem")
	_, otherKey := keys.ca.leaf(t, x509.ExtKeyUsageServerAuth, "x")
	other := keys.write(t, "other.key", otherKey)
	for _, c := range []struct{ variable, file, says string }{
		{"HOOKVISOR_TLS_CERT", junk, "no CERTIFICATE in it"},
		{"HOOKVISOR_TLS_KEY", junk, "no PRIVATE KEY in it"},
		{"HOOKVISOR_TLS_CLIENT_CA", junk, "no usable CA CERTIFICATE"},
		{"HOOKVISOR_TLS_CLIENT_CA", gone, "cannot read it"},
		{"HOOKVISOR_TLS_KEY", other, "not a usable certificate and key"},
	} {
		p := spawn(t, os.Args[0], append(keys.env("127.0.0.1:0"), c.variable+"="+c.file)...)
		if code := p.exitCode(t, 5*time.Second); code != 1 {
			t.Errorf("%s=%s: exit %d", c.variable, c.file, code)
		}
		stderr := p.stderr.String()
		if strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, c.variable+" file "+c.file) || !strings.Contains(stderr, c.says) {
			t.Errorf("%s=%s: stderr %q", c.variable, c.file, stderr)
		}
	}
}

func TestRemoteModeOnAnAddressInUseOrEmptyExits2(t *testing.T) {
	keys := newPKI(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	address := taken.Addr().String()
	p := spawn(t, os.Args[0], keys.env(address)...)
	if code := p.exitCode(t, 5*time.Second); code != 2 {
		t.Errorf("exit %d", code)
	}
	if stderr := p.stderr.String(); strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "cannot listen on "+address) {
		t.Errorf("stderr %q", stderr)
	}
	// Empty is no address (net.Listen would take it as every interface).
	p = spawn(t, os.Args[0], keys.env("")...)
	if code := p.exitCode(t, 5*time.Second); code != 2 {
		t.Errorf("empty: exit %d", code)
	}
	if stderr := p.stderr.String(); stderr != "cannot listen on \"\": HOOKVISOR_REMOTE_LISTEN is empty; it takes HOST:PORT\n" {
		t.Errorf("empty: stderr %q", stderr)
	}
}

func TestRemoteModeOnIPv6PrintsTheBracketedAddress(t *testing.T) {
	keys := newPKI(t)
	p := spawn(t, os.Args[0], keys.env("[::1]:0")...)
	address := p.listening(t)
	if port, ok := strings.CutPrefix(address, "[::1]:"); !ok || port == "0" || port == "" {
		t.Fatalf("the line names %q", address)
	}
	if conn, err := net.Dial("tcp", address); err != nil {
		t.Errorf("dial %s: %v", address, err)
	} else {
		_ = conn.Close()
	}
}
