//! Issue 5 from a hostile host's side, at the HTTP/2 level: unfinished request bodies, calls past
//! the limits, connection floods, idle and half-open connections, malformed messages. Raw HTTP/2
//! (the `h2` crate) sends what tonic would never send.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hookvisor_proto::v1::Outcome;
use hookvisor_tests::harness::{PluginToml, Recording, Supervisor, plugins, tool_call};
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;
use tonic::Code;

const BEFORE_TOOL_CALL: &str = "http://localhost/hookvisor.v1.Hooks/BeforeToolCall";
/// The supervisor's host decode limit (`admission::HOST_MAX_REQUEST_BYTES`).
const HOST_MAX_REQUEST_BYTES: usize = 1_310_720;

/// A field of `/proc/PID/status` in kB (`VmHWM`, `VmRSS`).
fn status_kb(pid: i32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// User plus system CPU time of `pid`, in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let (_, rest) = stat.rsplit_once(") ").expect("stat format");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0)
}

fn ticks_per_second() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100, |t| t as u64)
}

/// An HTTP/2 connection to the host socket, driven in the background.
async fn h2_client(socket: &std::path::Path) -> h2::client::SendRequest<Bytes> {
    let stream = UnixStream::connect(socket).await.expect("connect");
    let (client, connection) = h2::client::handshake(stream).await.expect("h2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

fn grpc_request() -> http::Request<()> {
    http::Request::builder()
        .method("POST")
        .uri(BEFORE_TOOL_CALL)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("request")
}

/// A gRPC frame header: not compressed, `len` bytes follow.
fn frame_header(len: usize) -> Vec<u8> {
    let mut header = vec![0u8];
    header.extend_from_slice(&u32::try_from(len).expect("len").to_be_bytes());
    header
}

/// The gRPC status of a response: from its headers (trailers-only) or its trailers.
async fn grpc_status(response: h2::client::ResponseFuture) -> (i32, String) {
    let response = response.await.expect("response");
    let from = |map: &http::HeaderMap| {
        let code = map.get("grpc-status")?.to_str().ok()?.parse().ok()?;
        let message = map
            .get("grpc-message")
            .and_then(|m| m.to_str().ok())
            .unwrap_or_default()
            .replace("%20", " ");
        Some((code, message))
    };
    if let Some(status) = from(response.headers()) {
        return status;
    }
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let _ = chunk;
    }
    let trailers = body.trailers().await.ok().flatten().unwrap_or_default();
    from(&trailers).expect("a grpc-status")
}

/// Sends one raw gRPC message body (already framed) and returns the status.
async fn raw_call(socket: &std::path::Path, body: Vec<u8>) -> (i32, String) {
    let client = h2_client(socket).await;
    let mut client = client.ready().await.expect("ready");
    let (response, mut send) = client.send_request(grpc_request(), false).expect("send");
    send.send_data(Bytes::from(body), true).expect("data");
    tokio::time::timeout(Duration::from_secs(5), grpc_status(response))
        .await
        .expect("an answer within 5 s")
}

/// Item 10: a malformed message, a string that is not UTF-8 and an oversized message are bad
/// input: `INVALID_ARGUMENT`, not `INTERNAL` or `OUT_OF_RANGE`, and no plugin is called.
#[tokio::test]
async fn malformed_and_oversized_messages_are_invalid_arguments() {
    let recording = Recording::new();
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("watcher", "fixture-recorder").record(&recording)
    ]))
    .await;
    let garbage = [0xff_u8, 0xff, 0xff, 0xff, 0xff, 0x0f];
    let mut body = frame_header(garbage.len());
    body.extend_from_slice(&garbage);
    let (code, message) = raw_call(supervisor.socket(), body).await;
    assert_eq!(code, Code::InvalidArgument as i32, "{message}");
    assert!(message.contains("failed to decode"), "{message}");

    // Field 1 (tool_name), length 2, bytes that are not UTF-8.
    let not_utf8 = [0x0a_u8, 0x02, 0xc3, 0x28];
    let mut body = frame_header(not_utf8.len());
    body.extend_from_slice(&not_utf8);
    let (code, message) = raw_call(supervisor.socket(), body).await;
    assert_eq!(code, Code::InvalidArgument as i32, "{message}");
    assert!(message.contains("tool_name"), "{message}");

    let mut body = frame_header(HOST_MAX_REQUEST_BYTES + 1);
    body.extend_from_slice(&[0u8; 1024]);
    let (code, message) = raw_call(supervisor.socket(), body).await;
    assert_eq!(code, Code::InvalidArgument as i32, "{message}");
    assert!(message.contains("1310720"), "{message}");
    assert!(recording.calls().is_empty(), "{:?}", recording.calls());
}

/// A tonic client sending a message over the host limit is told `INVALID_ARGUMENT` too.
#[tokio::test]
async fn a_request_over_the_host_limit_is_an_invalid_argument() {
    let supervisor = Supervisor::start("").await;
    let mut request = tool_call("exec", json!({}));
    request.session_metadata = (0..3)
        .map(|i| (format!("ns{i}"), format!("\"{}\"", "x".repeat(500_000))))
        .collect();
    let status = supervisor
        .client()
        .await
        .before_tool_call(request)
        .await
        .expect_err("over the limit");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
}

/// Item 2: streams whose bodies are never finished. Each connection may hold only its share of
/// calls in flight, the rest are refused at once, memory stays within what the limits allow, and
/// another host still gets its verdict.
#[tokio::test]
async fn unfinished_bodies_are_bounded_and_others_still_get_verdicts() {
    let supervisor =
        Supervisor::builder(&plugins(&[PluginToml::new("watcher", "fixture-recorder")]))
            .supervisor_key("max_calls_in_flight = 128")
            .supervisor_key("max_calls_per_connection = 32")
            .start()
            .await;
    let pid = supervisor.pid();
    let before_kb = status_kb(pid, "VmRSS");
    let declared = HOST_MAX_REQUEST_BYTES - 5;
    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
    let mut refused = Vec::new();
    let mut held = Vec::new();
    for _ in 0..3 {
        let client = h2_client(supervisor.socket()).await;
        for _ in 0..40 {
            let mut ready = client.clone().ready().await.expect("ready");
            let (response, mut send) = ready
                .send_request(grpc_request(), false)
                .expect("send_request");
            let mut first = frame_header(declared);
            first.extend_from_slice(&chunk);
            let _ = send.send_data(Bytes::from(first), false);
            // All but the last bytes: the message is never complete.
            let mut sent = chunk.len();
            while sent + chunk.len() < declared {
                let _ = send.send_data(chunk.clone(), false);
                sent += chunk.len();
            }
            refused.push(tokio::spawn(async move {
                tokio::time::timeout(Duration::from_secs(3), grpc_status(response))
                    .await
                    .ok()
            }));
            held.push(send);
        }
    }
    let mut exhausted = 0;
    for answer in refused {
        if let Ok(Some((code, message))) = answer.await {
            assert_eq!(code, Code::ResourceExhausted as i32, "{message}");
            assert!(message.contains("max_calls_per_connection"), "{message}");
            exhausted += 1;
        }
    }
    assert_eq!(
        exhausted,
        3 * (40 - 32),
        "streams past the per-connection limit"
    );

    // The held bodies are in; memory has stopped growing.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = status_kb(pid, "VmRSS");
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = status_kb(pid, "VmRSS");
        if now.abs_diff(last) < 1024 || Instant::now() > deadline {
            break;
        }
        last = now;
    }
    let peak_kb = status_kb(pid, "VmHWM");
    let bound_kb = (96 * HOST_MAX_REQUEST_BYTES / 1024 + 64 * 1024) as u64;
    println!(
        "body flood: 120 streams of {declared} bytes declared, 96 held: RSS {before_kb} kB -> \
         peak {peak_kb} kB (bound {bound_kb} kB above the start)"
    );
    assert!(
        peak_kb < before_kb + bound_kb,
        "peak {peak_kb} kB, started at {before_kb} kB"
    );

    let verdict = supervisor.verdict("exec", json!({"command": "ls"})).await;
    assert_eq!(verdict.outcome(), Outcome::Allow, "{verdict:#?}");
    drop(held);
}

/// Item 2 with real calls: past the global limit and past one connection's limit, a call gets
/// `RESOURCE_EXHAUSTED` at once, and the calls in flight still get their verdicts.
#[tokio::test]
async fn calls_past_the_limits_are_refused_at_once() {
    let recording = Recording::new();
    let supervisor = Supervisor::builder(&plugins(&[PluginToml::new("slow", "fixture-recorder")
        .env("FIXTURE_DELAY_MS", "4000")
        .record(&recording)]))
    .supervisor_key("max_calls_in_flight = 3")
    .supervisor_key("max_calls_per_connection = 2")
    .start()
    .await;
    let shared = supervisor.client().await;
    let other = supervisor.client().await;
    let mut in_flight = Vec::new();
    for client in [shared.clone(), shared.clone(), other.clone()] {
        let mut client = client;
        in_flight.push(tokio::spawn(async move {
            client
                .before_tool_call(tool_call("exec", json!({})))
                .await
                .map(|r| r.into_inner())
        }));
    }
    assert_eq!(recording.wait_calls("slow", 3).await.len(), 3);

    let started = Instant::now();
    let status = shared
        .clone()
        .before_tool_call(tool_call("exec", json!({})))
        .await
        .expect_err("the connection is at its limit");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("max_calls_per_connection"),
        "{status:?}"
    );
    let status = supervisor
        .client()
        .await
        .before_tool_call(tool_call("exec", json!({})))
        .await
        .expect_err("hookvisor is at its limit");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("max_calls_in_flight"),
        "{status:?}"
    );
    // At once: long before the calls in flight end (4 s).
    assert!(
        started.elapsed() < Duration::from_millis(2000),
        "{:?}",
        started.elapsed()
    );

    for call in in_flight {
        let verdict = call.await.expect("join").expect("a verdict");
        assert_eq!(verdict.outcome(), Outcome::Allow);
    }
    let verdict = supervisor.verdict("exec", json!({})).await;
    assert_eq!(verdict.outcome(), Outcome::Allow);
}

/// Item 6: connections that never speak. Past `max_connections` they are closed at once, the
/// others after the handshake timeout; descriptors stay bounded, the supervisor does not spin,
/// and a real host gets its verdict afterwards.
#[tokio::test]
async fn a_flood_of_silent_connections_is_bounded_and_closed() {
    let supervisor = Supervisor::builder("")
        .supervisor_key("max_connections = 16")
        .supervisor_key("handshake_timeout_ms = 500")
        .start()
        .await;
    let pid = supervisor.pid();
    let fds_before = open_fds(pid);
    let cpu_before = cpu_ticks(pid);
    let started = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..200 {
        silent.push(
            UnixStream::connect(supervisor.socket())
                .await
                .expect("connect"),
        );
    }
    let fds_during = open_fds(pid);
    assert!(
        fds_during <= fds_before + 16 + 4,
        "{fds_before} descriptors before, {fds_during} during the flood"
    );
    // Every one of them is closed by the supervisor: EOF on read, within the handshake timeout
    // and a margin.
    // (The server's own SETTINGS frame may come first: read to the end.)
    for stream in &mut silent {
        let mut sink = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut sink)).await;
        assert!(
            matches!(read, Ok(Ok(_)) | Ok(Err(_))),
            "a silent connection was kept open: {read:?}"
        );
    }
    let elapsed = started.elapsed();
    let cpu = (cpu_ticks(pid) - cpu_before) as f64 / ticks_per_second() as f64;
    println!(
        "connection flood: 200 silent connections closed in {elapsed:?}; supervisor CPU {cpu:.3} s"
    );
    assert!(
        cpu < elapsed.as_secs_f64() / 2.0,
        "CPU {cpu} s in {elapsed:?}"
    );
    let verdict = supervisor.verdict("exec", json!({})).await;
    assert_eq!(verdict.outcome(), Outcome::Allow);
}

/// Item 6: out of descriptors, the accept loop backs off instead of spinning, and serves again
/// once descriptors are free.
#[tokio::test]
async fn running_out_of_descriptors_does_not_spin() {
    let supervisor = Supervisor::builder("")
        .supervisor_key("max_connections = 1000")
        .supervisor_key("handshake_timeout_ms = 60000")
        .start()
        .await;
    let pid = supervisor.pid();
    let limit = open_fds(pid) + 10;
    let status = std::process::Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={limit}:{limit}"))
        .status()
        .expect("prlimit (util-linux)");
    assert!(status.success(), "prlimit failed");
    let mut held = Vec::new();
    for _ in 0..40 {
        held.push(
            UnixStream::connect(supervisor.socket())
                .await
                .expect("connect"),
        );
    }
    let cpu_before = cpu_ticks(pid);
    let started = Instant::now();
    // Two seconds with the listener readable and no descriptor to accept with.
    let deadline = started + Duration::from_secs(2);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cpu = (cpu_ticks(pid) - cpu_before) as f64 / ticks_per_second() as f64;
    println!(
        "out of descriptors: supervisor CPU {cpu:.3} s in {:?}",
        started.elapsed()
    );
    assert!(cpu < 0.5, "the accept loop spins: {cpu} s of CPU in 2 s");
    assert!(
        supervisor
            .log_contains("accepting a host connection failed")
            .await,
        "{}",
        supervisor.log()
    );
    drop(held);
    // With the connections gone, a host is served again (the backlog drains as they close).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let attempt = tokio::time::timeout(Duration::from_secs(2), async {
            let mut client = supervisor.client().await;
            client.before_tool_call(tool_call("exec", json!({}))).await
        })
        .await;
        if let Ok(Ok(verdict)) = attempt {
            assert_eq!(verdict.into_inner().outcome(), Outcome::Allow);
            break;
        }
        assert!(Instant::now() < deadline, "never served again: {attempt:?}");
    }
}

/// Item 6: a connection that did its handshake but makes no call is closed after the idle
/// timeout; one whose call takes longer than the idle timeout is not.
#[tokio::test]
async fn idle_connections_are_closed_but_not_during_a_call() {
    let supervisor = Supervisor::builder(&plugins(&[
        PluginToml::new("slow", "fixture-recorder").env("FIXTURE_DELAY_MS", "1200")
    ]))
    .supervisor_key("idle_timeout_ms = 400")
    .start()
    .await;
    // A call that outlasts the idle timeout still gets its verdict.
    let verdict = supervisor.verdict("exec", json!({})).await;
    assert_eq!(verdict.outcome(), Outcome::Allow);

    let stream = UnixStream::connect(supervisor.socket())
        .await
        .expect("connect");
    let (_client, connection) = h2::client::handshake(stream).await.expect("h2 handshake");
    let started = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(5), connection).await;
    assert!(ended.is_ok(), "an idle connection was kept open");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "closed too early: {:?}",
        started.elapsed()
    );
}

/// Issue 18, defect 1: two connections of 64 HEADERS-only streams each (a body that never
/// comes) held every call slot for as long as they stayed, and `Admin` and `Health` were
/// refused too. Now operators keep slots of their own (`reserved_admin_calls`), and each stream
/// ends with `DEADLINE_EXCEEDED` once its body is `body_timeout_ms` late, freeing its slot.
#[tokio::test]
async fn headers_only_streams_time_out_and_never_lock_operators_out() {
    let supervisor =
        Supervisor::builder(&plugins(&[PluginToml::new("watcher", "fixture-recorder")]))
            .supervisor_key("body_timeout_ms = 2000")
            .start()
            .await;
    let mut answers = Vec::new();
    let mut held = Vec::new();
    let mut connections = Vec::new();
    for _ in 0..2 {
        let client = h2_client(supervisor.socket()).await;
        for _ in 0..64 {
            let mut ready = client.clone().ready().await.expect("ready");
            let (response, send) = ready
                .send_request(grpc_request(), false)
                .expect("send_request");
            answers.push(tokio::spawn(async move {
                tokio::time::timeout(Duration::from_secs(10), grpc_status(response)).await
            }));
            held.push(send);
        }
        connections.push(client);
    }
    let started = Instant::now();
    // Every ordinary slot is held (128, max_calls_in_flight): a tool call is refused at once.
    let refused = supervisor
        .client()
        .await
        .before_tool_call(tool_call("exec", json!({})))
        .await
        .expect_err("every slot is held");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    // The operators' slots are free.
    assert_eq!(
        supervisor.health().await.expect("Health answers"),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
    let socket = supervisor.socket().display().to_string();
    let (status, out, err) =
        hookvisor_tests::harness::run_hookvisor(&["status", "--socket", &socket]);
    assert!(status.success(), "Admin answers: {out}{err}");
    // Each half-sent call ends at its body timeout, counted from its headers.
    for answer in answers {
        let (code, message) = answer.await.expect("task").expect("an answer within 10 s");
        assert_eq!(code, Code::DeadlineExceeded as i32, "{message}");
        assert!(message.contains("body_timeout_ms"), "{message}");
    }
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(8), "{elapsed:?}");
    let verdict = supervisor.verdict("exec", json!({})).await;
    assert_eq!(verdict.outcome(), Outcome::Allow, "{verdict:#?}");
    drop(held);
}
