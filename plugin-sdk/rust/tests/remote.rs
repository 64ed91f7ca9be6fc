//! Remote mode (contract §2.6) in a real process: TCP with mutual TLS, the listening line, refused
//! clients, start-up errors, and the trace context reaching the handler.
//!
//! The plugin process is this test binary itself, re-executed to run only
//! `remote_plugin_process` with `HOOKVISOR_SDK_TEST_ROLE=plugin`. Certificates are made at test
//! time with rcgen, in a fresh directory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hookvisor_plugin::proto::plugin_client::PluginClient;
use hookvisor_plugin::{Info, Plugin, Registration, RemoteTls, Status, ToolCall, decision, proto};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const ROLE: &str = "HOOKVISOR_SDK_TEST_ROLE";
const GOOD_TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Answers every tool call with a block whose reason shows the request id and trace context seen.
struct Echo;

impl Plugin for Echo {
    fn info(&self) -> Info {
        Info::new("", "1.2.3").hook(Registration::before_tool_call())
    }

    async fn before_tool_call(&self, call: ToolCall) -> Result<proto::ToolCallDecision, Status> {
        Ok(decision::block(format!(
            "request_id={} traceparent={}",
            call.request_id, call.traceparent
        )))
    }
}

/// Not a test on its own: the plugin process the other tests start (a no-op otherwise).
#[test]
fn remote_plugin_process() {
    if std::env::var_os(ROLE).is_none() {
        return;
    }
    let code = hookvisor_plugin::run(Echo);
    let code = [0u8, 1, 2]
        .into_iter()
        .find(|&c| ExitCode::from(c) == code)
        .map_or(99, i32::from);
    std::process::exit(code);
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hvp-remote-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A CA that signs leaf certificates.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf certificate and its key (PEM), for `names`, with one extended key usage.
    fn leaf(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// The files of a remote deployment: a CA, the server's certificate and key, a client's.
struct Pki {
    dir: TempDir,
    ca: Ca,
    cert: PathBuf,
    key: PathBuf,
    client_ca: PathBuf,
    client: (String, String),
}

impl Pki {
    fn new() -> Self {
        let dir = TempDir::new();
        let ca = Ca::new("hookvisor test CA");
        let (cert, key) = ca.leaf(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let client = ca.leaf(&["supervisor"], ExtendedKeyUsagePurpose::ClientAuth);
        Self {
            cert: dir.write("server.pem", &cert),
            key: dir.write("server.key", &key),
            client_ca: dir.write("ca.pem", &ca.pem()),
            dir,
            ca,
            client,
        }
    }

    /// The environment of remote mode on `address`.
    fn env(&self, address: &str) -> Vec<(String, String)> {
        vec![
            ("HOOKVISOR_REMOTE_LISTEN".into(), address.into()),
            ("HOOKVISOR_TLS_CERT".into(), path(&self.cert)),
            ("HOOKVISOR_TLS_KEY".into(), path(&self.key)),
            ("HOOKVISOR_TLS_CLIENT_CA".into(), path(&self.client_ca)),
        ]
    }

    /// A TLS client that trusts the test CA and presents `identity` (cert and key PEM), if any.
    fn client_tls(&self, identity: Option<&(String, String)>) -> ClientTlsConfig {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(self.ca.pem()))
            .domain_name("localhost");
        match identity {
            Some((cert, key)) => tls.identity(Identity::from_pem(cert, key)),
            None => tls,
        }
    }
}

fn path(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// A plugin process started by a test, killed on drop.
struct Process {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Vec<String>,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// Starts this test binary as the plugin with only `env` (and the role).
    fn spawn(env: &[(String, String)]) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "remote_plugin_process", "--nocapture"])
            .env_clear()
            .env(ROLE, "plugin")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            stderr: Vec::new(),
        }
    }

    /// The next stderr line, within `limit`.
    fn line(&mut self, limit: Duration) -> Option<String> {
        let line = self.lines.recv_timeout(limit).ok()?;
        self.stderr.push(line.clone());
        Some(line)
    }

    /// Waits at most `limit` for the exit code; the rest of stderr is read into `self.stderr`.
    fn exit_code(&mut self, limit: Duration) -> i32 {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                while let Some(line) = self.line(Duration::from_secs(5)) {
                    let _ = line;
                }
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "still running after {limit:?}; stderr {:?}",
                self.stderr
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the listening line and returns the address it names.
    fn listening(&mut self) -> String {
        let line = self
            .line(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no listening line; stderr {:?}", self.stderr));
        let address = line
            .strip_prefix("hookvisor plugin listening on ")
            .and_then(|rest| rest.strip_suffix(" (TLS, client certificates required)"))
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        address.to_owned()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

async fn connect(address: &str, tls: ClientTlsConfig) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(format!("https://{address}"))?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
}

/// Describe through a client with `tls`: the whole exchange, connection included.
async fn describe(address: &str, tls: ClientTlsConfig) -> Result<proto::PluginInfo, String> {
    let channel = connect(address, tls).await.map_err(|e| format!("{e:?}"))?;
    let mut client = PluginClient::new(channel);
    let request = proto::DescribeRequest {
        protocol_version: 1,
    };
    match tokio::time::timeout(Duration::from_secs(5), client.describe(request)).await {
        Ok(Ok(info)) => Ok(info.into_inner()),
        Ok(Err(status)) => Err(format!("{status:?}")),
        Err(_) => Err("no answer in 5 s".into()),
    }
}

// Multi-thread: the client's connection must keep answering (h2's graceful shutdown pings it)
// while this test blocks waiting for the exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_describe_health_and_tool_calls_over_mutual_tls_then_drains_on_sigterm() {
    let pki = Pki::new();
    let mut plugin = Process::spawn(&pki.env("127.0.0.1:0"));
    let address = plugin.listening();
    let port: u16 = address.strip_prefix("127.0.0.1:").unwrap().parse().unwrap();
    assert_ne!(port, 0, "the line names the bound port");
    assert!(
        !pki.dir.0.join("plugin.sock").exists(),
        "no socket file in remote mode"
    );

    let channel = connect(&address, pki.client_tls(Some(&pki.client)))
        .await
        .unwrap();
    let mut client = PluginClient::new(channel.clone());
    let info = client
        .describe(proto::DescribeRequest {
            protocol_version: 1,
        })
        .await
        .unwrap()
        .into_inner();
    // No HOOKVISOR_PLUGIN_NAME in remote mode: the name stays the plugin's own (empty here).
    assert_eq!((info.name.as_str(), info.version.as_str()), ("", "1.2.3"));
    assert_eq!(info.hooks.len(), 1);

    let health = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: "hookvisor.v1.Plugin".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);

    let call = |traceparent: Option<&str>| {
        let mut request = tonic::Request::new(proto::BeforeToolCallRequest {
            tool_name: "exec".into(),
            params_json: "{}".into(),
            ..Default::default()
        });
        request
            .metadata_mut()
            .insert("x-hookvisor-request-id", "req-7".parse().unwrap());
        if let Some(value) = traceparent {
            request
                .metadata_mut()
                .insert("traceparent", value.parse().unwrap());
        }
        request
    };
    let reason = |d: tonic::Response<proto::ToolCallDecision>| d.into_inner().block_reason;
    let seen = reason(
        client
            .before_tool_call(call(Some(GOOD_TRACEPARENT)))
            .await
            .unwrap(),
    );
    assert_eq!(
        seen,
        format!("request_id=req-7 traceparent={GOOD_TRACEPARENT}")
    );
    for junk in [
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-and-more",
        "hello",
    ] {
        let seen = reason(client.before_tool_call(call(Some(junk))).await.unwrap());
        assert_eq!(seen, "request_id=req-7 traceparent=", "{junk}");
    }
    let seen = reason(client.before_tool_call(call(None)).await.unwrap());
    assert_eq!(seen, "request_id=req-7 traceparent=");

    plugin.signal("TERM");
    assert_eq!(plugin.exit_code(Duration::from_secs(5)), 0);
    assert_eq!(plugin.stderr.len(), 1, "{:?}", plugin.stderr);
}

#[tokio::test]
async fn a_client_without_a_certificate_or_with_another_cas_is_refused() {
    let pki = Pki::new();
    let mut plugin = Process::spawn(&pki.env("127.0.0.1:0"));
    let address = plugin.listening();

    let without = describe(&address, pki.client_tls(None)).await;
    assert!(without.is_err(), "no client certificate: {without:?}");

    let stranger = Ca::new("another CA").leaf(&["supervisor"], ExtendedKeyUsagePurpose::ClientAuth);
    let other = describe(&address, pki.client_tls(Some(&stranger))).await;
    assert!(other.is_err(), "another CA's certificate: {other:?}");

    // The refusals did not hurt the server: a good client is still served.
    let info = describe(&address, pki.client_tls(Some(&pki.client))).await;
    assert_eq!(info.unwrap().version, "1.2.3");
}

#[tokio::test]
async fn serve_remote_serves_a_listener_given_by_the_program() {
    let pki = Pki::new();
    let tls = RemoteTls::from_files(&pki.cert, &pki.key, &pki.client_ca).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(hookvisor_plugin::serve_remote(Echo, listener, tls, async {
        let _ = stopped.await;
    }));
    let info = describe(&address, pki.client_tls(Some(&pki.client))).await;
    assert_eq!(info.unwrap().version, "1.2.3");
    assert!(describe(&address, pki.client_tls(None)).await.is_err());
    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server stops")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
}

#[test]
fn the_cookie_and_remote_mode_together_refuse_to_start() {
    let pki = Pki::new();
    let mut env = pki.env("127.0.0.1:0");
    env.push((
        "HOOKVISOR_MAGIC_COOKIE".into(),
        "d7f0c2a4-hookvisor-plugin-v1".into(),
    ));
    let mut plugin = Process::spawn(&env);
    assert_eq!(plugin.exit_code(Duration::from_secs(10)), 1);
    let [line] = plugin.stderr.as_slice() else {
        panic!("one line expected: {:?}", plugin.stderr);
    };
    assert!(
        line.contains("HOOKVISOR_MAGIC_COOKIE") && line.contains("HOOKVISOR_REMOTE_LISTEN"),
        "{line}"
    );
}

#[test]
fn a_missing_tls_variable_or_a_bad_file_is_named_and_exits_1() {
    let pki = Pki::new();
    for missing in [
        "HOOKVISOR_TLS_CERT",
        "HOOKVISOR_TLS_KEY",
        "HOOKVISOR_TLS_CLIENT_CA",
    ] {
        let env: Vec<_> = pki
            .env("127.0.0.1:0")
            .into_iter()
            .filter(|(k, _)| k != missing)
            .collect();
        let mut plugin = Process::spawn(&env);
        assert_eq!(plugin.exit_code(Duration::from_secs(10)), 1, "{missing}");
        let [line] = plugin.stderr.as_slice() else {
            panic!("{missing}: one line expected: {:?}", plugin.stderr);
        };
        assert!(line.starts_with(&format!("{missing} is not set")), "{line}");
    }

    let junk = pki.dir.write("junk.pem", "not a certificate\n");
    let gone = pki.dir.0.join("gone.pem");
    let (_, other_key) = pki.ca.leaf(&["x"], ExtendedKeyUsagePurpose::ServerAuth);
    let other_key = pki.dir.write("other.key", &other_key);
    for (var, file, says) in [
        ("HOOKVISOR_TLS_CERT", &junk, "no CERTIFICATE in it"),
        ("HOOKVISOR_TLS_KEY", &junk, "no PRIVATE KEY in it"),
        ("HOOKVISOR_TLS_CLIENT_CA", &junk, "no usable CA CERTIFICATE"),
        ("HOOKVISOR_TLS_CLIENT_CA", &gone, "cannot read it"),
        (
            "HOOKVISOR_TLS_KEY",
            &other_key,
            "not a usable certificate and key",
        ),
    ] {
        let mut env = pki.env("127.0.0.1:0");
        for (k, v) in &mut env {
            if k == var {
                *v = path(file);
            }
        }
        let mut plugin = Process::spawn(&env);
        assert_eq!(plugin.exit_code(Duration::from_secs(10)), 1, "{var}");
        let [line] = plugin.stderr.as_slice() else {
            panic!("{var}: one line expected: {:?}", plugin.stderr);
        };
        assert!(
            line.contains(var) && line.contains(&path(file)) && line.contains(says),
            "{line}"
        );
    }
}

#[test]
fn an_address_in_use_or_empty_exits_2() {
    let pki = Pki::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let mut plugin = Process::spawn(&pki.env(&address));
    assert_eq!(plugin.exit_code(Duration::from_secs(10)), 2);
    let [line] = plugin.stderr.as_slice() else {
        panic!("one line expected: {:?}", plugin.stderr);
    };
    assert!(
        line.starts_with(&format!("cannot listen on {address}: ")),
        "{line}"
    );

    let mut plugin = Process::spawn(&pki.env(""));
    assert_eq!(plugin.exit_code(Duration::from_secs(10)), 2);
    assert_eq!(
        plugin.stderr,
        ["cannot listen on \"\": HOOKVISOR_REMOTE_LISTEN is empty; it takes HOST:PORT"]
    );
}

#[test]
fn on_ipv6_the_line_names_the_bracketed_address() {
    let pki = Pki::new();
    let mut plugin = Process::spawn(&pki.env("[::1]:0"));
    let address = plugin.listening();
    let port = address.strip_prefix("[::1]:").unwrap();
    assert_ne!(port, "0");
    std::net::TcpStream::connect(&address).unwrap();
}
