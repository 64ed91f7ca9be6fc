//! `[tracing]` (contract §9): each verdict and each plugin call arrive as spans at a real OTLP
//! receiver (`tests/python/otlp_receiver.py`, built from the official protos with grpcio), under
//! the host's `traceparent` when it sent one, and each plugin is sent its own span's
//! `traceparent`. Tracing off sends none; a collector that is down slows no verdict.
//!
//! The interpreter is `HOOKVISOR_TEST_PYTHON`, else `<repo>/.venv/bin/python`, and needs
//! `tests/python/requirements.txt`. These tests never skip: without it they fail and say how
//! to set it up.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hookvisor_proto::v1::{Outcome, ToolCallVerdict};
use hookvisor_tests::harness::{
    PluginToml, Recording, Supervisor, TestDir, plugins, repo_root, tool_call,
};
use serde_json::{Value, json};
use tonic::metadata::MetadataValue;

const SETUP: &str = "python3 -m venv .venv && .venv/bin/pip install -r tests/python/requirements.txt \
                     (`make venv`), or set HOOKVISOR_TEST_PYTHON";

/// The host's trace context in the first test: trace id and span id as W3C writes them.
const HOST_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const HOST_SPAN: &str = "00f067aa0ba902b7";

/// How long spans may take to arrive (the exporter sends every second).
const ARRIVAL: Duration = Duration::from_secs(20);

fn python() -> PathBuf {
    let python = std::env::var_os("HOOKVISOR_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    let works = Command::new(&python)
        .args(["-c", "import grpc, opentelemetry.proto.collector.trace.v1"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        works,
        "{} cannot import grpc and opentelemetry.proto; run: {SETUP}",
        python.display()
    );
    python
}

/// The OTLP receiver, killed when dropped.
struct Receiver {
    child: Child,
    port: u16,
    spans: PathBuf,
    _dir: TestDir,
}

impl Receiver {
    fn start() -> Receiver {
        let dir = TestDir::new();
        let spans = dir.join("spans.jsonl");
        let mut child = Command::new(python())
            .arg(repo_root().join("tests/python/otlp_receiver.py"))
            .arg(&spans)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting otlp_receiver.py");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        // The port line comes once the server listens (or the pipe closes if it fails).
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("reading the receiver's port");
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the receiver printed {line:?}, not its port"));
        Receiver {
            child,
            port,
            spans,
            _dir: dir,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn all(&self) -> Vec<Value> {
        read_lines(&self.spans)
    }

    /// Polls until `count` spans of `trace_id` have arrived; panics at the deadline.
    async fn trace(&self, trace_id: &str, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + ARRIVAL;
        loop {
            let spans: Vec<Value> = (self.all().into_iter())
                .filter(|s| s["trace_id"] == trace_id)
                .collect();
            if spans.len() >= count {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} spans of trace {trace_id} arrived in {ARRIVAL:?}; all spans: {:#?}",
                spans.len(),
                self.all()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// A file plugins under uids of their own can append to, beside `recording`'s (its directory
/// is writable in their sandbox).
fn traceparents_file(recording: &Recording) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = recording.path().with_file_name("traceparents.jsonl");
    std::fs::write(&path, "").expect("creating traceparents.jsonl");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))
        .expect("opening traceparents.jsonl");
    path
}

/// A trusted policy `guard` (blocks the tool `danger`) and a hook `tagger`, both recording the
/// `traceparent` they are sent.
fn two_plugins(recording: &Recording, traceparents: &Path) -> String {
    let file = traceparents.display().to_string();
    plugins(&[
        PluginToml::new("guard", "fixture-traceparent")
            .policy()
            .action("block-tool:danger")
            .record(recording)
            .env("FIXTURE_TRACEPARENTS", &file),
        PluginToml::new("tagger", "fixture-traceparent")
            .record(recording)
            .env("FIXTURE_TRACEPARENTS", &file),
    ])
}

/// `BeforeToolCall` for `tool` with `traceparent` (if any) in the metadata; the verdict and
/// the request id the supervisor answered with.
async fn call(
    supervisor: &Supervisor,
    tool: &str,
    traceparent: Option<&str>,
) -> (ToolCallVerdict, String) {
    let mut request = tonic::Request::new(tool_call(tool, json!({"command": "ls"})));
    if let Some(text) = traceparent {
        let value: MetadataValue<_> = text.parse().expect("ascii traceparent");
        request.metadata_mut().insert("traceparent", value);
    }
    let response = supervisor
        .client()
        .await
        .before_tool_call(request)
        .await
        .expect("BeforeToolCall");
    let id = response
        .metadata()
        .get("x-hookvisor-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("a request id")
        .to_owned();
    (response.into_inner(), id)
}

fn named<'a>(spans: &'a [Value], name: &str) -> Vec<&'a Value> {
    spans.iter().filter(|s| s["name"] == name).collect()
}

/// The traceparents `plugin` received for calls with `request_id`.
fn received(traceparents: &Path, plugin: &str, request_id: &str) -> Vec<String> {
    read_lines(traceparents)
        .into_iter()
        .filter(|l| l["plugin"] == plugin && l["request_id"] == request_id)
        .map(|l| l["traceparent"].as_str().unwrap_or("none").to_owned())
        .collect()
}

#[tokio::test]
async fn spans_arrive_under_the_hosts_trace_and_plugins_get_their_own() {
    let receiver = Receiver::start();
    let recording = Recording::new();
    let traceparents = traceparents_file(&recording);
    let body = two_plugins(&recording, &traceparents)
        + &format!(
            "\n[tracing]\notlp_endpoint = \"{}\"\nservice_name = \"hookvisor-test\"\n",
            receiver.endpoint()
        );
    let supervisor = Supervisor::start(&body).await;

    // 1. With the host's traceparent: the verdict span is its child.
    let host = format!("00-{HOST_TRACE}-{HOST_SPAN}-01");
    let (verdict, id) = call(&supervisor, "read", Some(&host)).await;
    assert_eq!(verdict.outcome(), Outcome::Allow);
    let spans = receiver.trace(HOST_TRACE, 3).await;
    let verdicts = named(&spans, "hookvisor.before_tool_call");
    assert_eq!(verdicts.len(), 1, "{spans:#?}");
    let root = verdicts[0];
    assert_eq!(root["parent_span_id"], HOST_SPAN, "{root:#}");
    assert_eq!(root["service"], "hookvisor-test");
    let attributes = &root["attributes"];
    assert_eq!(attributes["hookvisor.hook"], "before_tool_call", "{root:#}");
    assert_eq!(attributes["hookvisor.tool"], "read");
    assert_eq!(attributes["hookvisor.outcome"], "allow");
    assert_eq!(attributes["hookvisor.request_id"], id.as_str());
    let root_id = root["span_id"].as_str().expect("span id");
    let children = named(&spans, "hookvisor.plugin_call");
    assert_eq!(children.len(), 2, "{spans:#?}");
    for (plugin, stage) in [("guard", "policy"), ("tagger", "hook")] {
        let child = children
            .iter()
            .find(|c| c["attributes"]["hookvisor.plugin"] == plugin)
            .unwrap_or_else(|| panic!("no span of {plugin}: {spans:#?}"));
        assert_eq!(child["parent_span_id"], root_id, "{child:#}");
        assert_eq!(child["attributes"]["hookvisor.stage"], stage, "{child:#}");
        assert_eq!(child["attributes"]["hookvisor.outcome"], "allow");
        assert!(child["attributes"]["hookvisor.latency_us"].as_i64() > Some(0));
        assert!(child["start"].as_u64() >= root["start"].as_u64());
        assert!(child["end"].as_u64() <= root["end"].as_u64());
        assert!(child["start"].as_u64() < child["end"].as_u64());
        // The plugin was sent this very span as its parent.
        let span_id = child["span_id"].as_str().expect("span id");
        assert_eq!(
            received(&traceparents, plugin, &id),
            [format!("00-{HOST_TRACE}-{span_id}-01")],
            "{plugin}"
        );
    }

    // 2. Without a traceparent: a new trace, the verdict span its root; a block says why.
    let (verdict, id) = call(&supervisor, "danger", None).await;
    assert_eq!(verdict.outcome(), Outcome::Block);
    let sent = received(&traceparents, "guard", &id);
    assert_eq!(sent.len(), 1, "{sent:?}");
    let trace_id = sent[0][3..35].to_owned();
    assert_ne!(trace_id, HOST_TRACE);
    let spans = receiver.trace(&trace_id, 2).await;
    let root = named(&spans, "hookvisor.before_tool_call")[0];
    assert_eq!(root["parent_span_id"], "", "{root:#}");
    assert_eq!(root["attributes"]["hookvisor.outcome"], "block");
    assert_eq!(root["attributes"]["hookvisor.decided_by"], "guard");
    assert_eq!(root["attributes"]["hookvisor.block_kind"], "policy");
    let guard = named(&spans, "hookvisor.plugin_call")[0];
    assert_eq!(guard["attributes"]["hookvisor.outcome"], "block");
    // The policy blocked: the hook was never asked.
    assert!(received(&traceparents, "tagger", &id).is_empty());

    // 3. A malformed traceparent: ignored (a new trace), the verdict as ever.
    for bad in [
        "00-zzzz",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ] {
        let (verdict, id) = call(&supervisor, "read", Some(bad)).await;
        assert_eq!(verdict.outcome(), Outcome::Allow, "{bad}");
        let sent = received(&traceparents, "tagger", &id);
        assert_eq!(sent.len(), 1, "{bad}: {sent:?}");
        assert!(!sent[0].contains(HOST_TRACE), "{bad}: {sent:?}");
        assert!(!sent[0].contains("00000000000000000000000000000000"));
        let spans = receiver.trace(&sent[0][3..35], 3).await;
        assert_eq!(
            named(&spans, "hookvisor.before_tool_call")[0]["parent_span_id"],
            "",
            "{bad}"
        );
    }
}

#[tokio::test]
async fn tracing_off_sends_plugins_no_traceparent() {
    let recording = Recording::new();
    let traceparents = traceparents_file(&recording);
    let supervisor = Supervisor::start(&two_plugins(&recording, &traceparents)).await;
    let host = format!("00-{HOST_TRACE}-{HOST_SPAN}-01");
    let (verdict, id) = call(&supervisor, "read", Some(&host)).await;
    assert_eq!(verdict.outcome(), Outcome::Allow);
    for plugin in ["guard", "tagger"] {
        assert_eq!(received(&traceparents, plugin, &id), ["none"], "{plugin}");
    }
}

#[tokio::test]
async fn a_collector_that_is_down_slows_no_verdict() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let recording = Recording::new();
    let traceparents = traceparents_file(&recording);
    let body = two_plugins(&recording, &traceparents)
        + &format!("\n[tracing]\notlp_endpoint = \"http://127.0.0.1:{port}\"\n");
    let mut supervisor = Supervisor::start(&body).await;
    let client = supervisor.client().await;
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for _ in 0..300 {
        let one = Instant::now();
        let verdict = client
            .clone()
            .before_tool_call(tool_call("read", json!({"command": "ls"})))
            .await
            .expect("BeforeToolCall")
            .into_inner();
        assert_eq!(verdict.outcome(), Outcome::Allow);
        slowest = slowest.max(one.elapsed());
    }
    // Exports fail beside the calls (every second, retried); no call waits for them.
    assert!(
        slowest < Duration::from_millis(500),
        "the slowest verdict took {slowest:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    // And stopping does not hang on the spans it cannot send.
    let stopping = Instant::now();
    let status = supervisor.stop().await;
    assert!(status.success(), "{status:?}\n{}", supervisor.log_tail());
    assert!(
        stopping.elapsed() < Duration::from_secs(8),
        "{:?}",
        stopping.elapsed()
    );
}

#[test]
fn check_config_refuses_a_bad_otlp_endpoint_naming_key_and_line() {
    let dir = TestDir::new();
    for (endpoint, says) in [
        ("127.0.0.1:4317", "is not an http:// URL"),
        ("https://collector:4317", "uses https"),
        ("http://127.0.0.1", "names no port"),
        ("http://:4317", "names no host"),
        (
            "http://127.0.0.1:4317/v1/traces",
            "more than a host and a port",
        ),
        ("http://user@127.0.0.1:4317", "more than a host and a port"),
    ] {
        let config = dir.join("bad.toml");
        let text = format!(
            "[supervisor]\nsocket = \"{}\"\n\n[tracing]\notlp_endpoint = \"{endpoint}\"\n",
            dir.join("host.sock").display()
        );
        std::fs::write(&config, text).expect("writing bad.toml");
        let output = Command::new(hookvisor_tests::harness::hookvisor())
            .args(["check-config", "--config"])
            .arg(&config)
            .output()
            .expect("running check-config");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(64), "{endpoint}: {stderr}");
        assert!(
            stderr.contains(":5:") && stderr.contains("otlp_endpoint") && stderr.contains(says),
            "{endpoint}: {stderr}"
        );
    }
}
