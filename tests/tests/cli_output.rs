//! What the `hookvisor` commands print, attacked from both ends: a plugin whose version, tools
//! and block reasons carry terminal escape sequences (colour, window title, bell, C1, bidi
//! overrides) must reach the operator's terminal escaped, and `--json` must stay JSON with the
//! same values; a reader that closes stdout (`| head -1`) must end a command quietly, never with
//! a panic and a backtrace.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use hookvisor_tests::harness::{
    PluginToml, Recording, Supervisor, fixture, hookvisor, plugins, uid_range, wait_gone,
};
use serde_json::Value;

/// A version that colours the terminal red, retitles its window and rings the bell, then
/// reverses the text after it.
const EVIL_VERSION: &str = "\u{1b}[31mred\u{1b}]0;title\u{7}\u{202e}";
/// How [`EVIL_VERSION`] must be shown: each control as Rust's escape.
const EVIL_VERSION_SHOWN: &str = "\\u{1b}[31mred\\u{1b}]0;title\\u{7}\\u{202e}";
/// A block reason that clears the screen, carries a C1 CSI and a bidi isolate.
const EVIL_REASON: &str = "\u{1b}[2Jdenied\u{9b}1m\u{2066}gnp.exe";
const EVIL_REASON_SHOWN: &str = "\\u{1b}[2Jdenied\\u{9b}1m\\u{2066}gnp.exe";

/// The characters no output of hookvisor may carry raw (the JSON output included): C0 but the
/// newline that ends each line, DEL, C1, and the bidi embeddings, overrides and isolates.
fn raw_controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| {
            (c.is_control() && c != '\n')
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c)
        })
        .collect()
}

/// Runs `hookvisor ARGS` to completion; stdout as bytes, checked to be UTF-8.
fn hookvisor_output(args: &[&str]) -> (Option<i32>, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(hookvisor())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running hookvisor");
    let stdout = String::from_utf8(stdout).expect("stdout is UTF-8");
    (
        status.code(),
        stdout,
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn assert_no_raw_controls(what: &str, text: &str) {
    let found = raw_controls(text);
    assert!(
        found.is_empty(),
        "{what} printed raw control characters {found:?}: {text:?}"
    );
    assert!(!text.as_bytes().contains(&0x1b) && !text.as_bytes().contains(&0x07));
}

#[tokio::test]
async fn status_shows_a_plugins_escape_sequences_escaped() {
    let supervisor = Supervisor::start(&plugins(&[PluginToml::new("shady", "fixture-recorder")
        .env("FIXTURE_VERSION", EVIL_VERSION)
        .env("FIXTURE_TOOLS", "exec,\u{1b}[8mhid\u{9b}den")]))
    .await;
    let socket = supervisor.socket().to_string_lossy().into_owned();

    let (code, table, err) = hookvisor_output(&["status", "--socket", &socket]);
    assert_eq!(code, Some(0), "{table}{err}");
    assert_no_raw_controls("status", &table);
    let row = table
        .lines()
        .find(|l| l.starts_with("shady "))
        .unwrap_or_else(|| panic!("no row for shady: {table}"));
    assert!(row.contains(EVIL_VERSION_SHOWN), "{table}");
    assert!(
        row.contains("before_tool_call(exec,\\u{1b}[8mhid\\u{9b}den)"),
        "{table}"
    );

    // JSON keeps the plugin's exact words, as escapes of JSON's own.
    let (code, json, err) = hookvisor_output(&["status", "--json", "--socket", &socket]);
    assert_eq!(code, Some(0), "{json}{err}");
    assert_no_raw_controls("status --json", &json);
    let parsed: Value = serde_json::from_str(json.trim()).expect("one JSON object");
    assert_eq!(parsed["plugins"][0]["version"], EVIL_VERSION, "{json}");

    // `serve`'s own log names the version in a field: escaped there too.
    let log = std::fs::read(supervisor.dir().join("stderr.log")).expect("stderr.log");
    let log = String::from_utf8(log).expect("the log is UTF-8");
    assert_no_raw_controls("serve's log", &log);
    assert!(log.contains(EVIL_VERSION_SHOWN), "{log}");
}

#[tokio::test]
async fn call_shows_block_reasons_and_params_escaped() {
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("blocker", "fixture-recorder")
            .env("FIXTURE_TOOLS", "exec")
            .action(&format!("block:{EVIL_REASON}")),
        PluginToml::new("rewriter", "fixture-recorder")
            .env("FIXTURE_TOOLS", "write")
            .action("rewrite:{\"path\":\"a\u{9b}2J\u{202e}txt.exe\"}"),
    ]))
    .await;
    let socket = supervisor.socket().to_string_lossy().into_owned();

    let (code, out, err) = hookvisor_output(&["call", "--socket", &socket, "tool", "exec"]);
    assert_eq!(code, Some(2), "{out}{err}");
    assert_no_raw_controls("call", &out);
    assert!(
        out.starts_with(&format!(
            "outcome: block (policy) by blocker: {EVIL_REASON_SHOWN}\n"
        )),
        "{out}"
    );

    let (code, out, err) = hookvisor_output(&["call", "--socket", &socket, "tool", "write"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_no_raw_controls("call", &out);
    assert!(out.contains("a\\u{9b}2J\\u{202e}txt.exe"), "{out}");

    let (code, json, err) =
        hookvisor_output(&["call", "--json", "--socket", &socket, "tool", "exec"]);
    assert_eq!(code, Some(2), "{json}{err}");
    assert_no_raw_controls("call --json", &json);
    let verdict: Value = serde_json::from_str(json.trim()).expect("one JSON object");
    assert_eq!(verdict["block_reason"], EVIL_REASON, "{json}");
}

#[test]
fn conformance_shows_what_the_plugin_says_escaped() {
    let (first, last) = uid_range();
    let uids = format!("{first}-{last}");
    let version = format!("FIXTURE_VERSION={EVIL_VERSION}");
    let action = format!("FIXTURE_ACTION=block:{EVIL_REASON}");
    let recorder = fixture("fixture-recorder").to_string_lossy().into_owned();
    let (code, report, err) = hookvisor_output(&[
        "conformance",
        "--plugin-uids",
        &uids,
        "--start-timeout-ms",
        "1000",
        "--env",
        &version,
        "--env",
        &action,
        "--",
        &recorder,
    ]);
    assert!(code == Some(0) || code == Some(1), "{report}{err}");
    assert_no_raw_controls("conformance", &report);
    assert!(report.contains(EVIL_VERSION_SHOWN), "{report}");
    assert!(
        report.contains(&format!("block ({EVIL_REASON_SHOWN})")),
        "{report}"
    );
}

/// Waits up to `limit` for `child` to exit; its status code and stderr.
fn finish(mut child: Child, limit: Duration) -> (Option<i32>, String) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(_status) = child.try_wait().expect("try_wait") {
            let Output { status, stderr, .. } = child.wait_with_output().expect("output");
            return (status.code(), String::from_utf8_lossy(&stderr).into_owned());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let Output { stderr, .. } = child.wait_with_output().expect("output");
            panic!(
                "still running {limit:?} after its stdout was closed\n{}",
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `hookvisor ARGS` with stdout a pipe whose reader is gone after `lines` lines.
fn with_stdout_closed_after(args: &[&str], lines: usize) -> (Option<i32>, String) {
    let mut child = Command::new(hookvisor())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning hookvisor");
    let stdout = child.stdout.take().expect("stdout");
    let mut reader = BufReader::new(stdout);
    for _ in 0..lines {
        let mut line = String::new();
        reader.read_line(&mut line).expect("reading a line");
    }
    drop(reader);
    finish(child, Duration::from_secs(60))
}

fn assert_quiet(what: &str, code: Option<i32>, stderr: &str) {
    assert_ne!(code, Some(101), "{what} panicked:\n{stderr}");
    assert!(code.is_some(), "{what} was killed by a signal:\n{stderr}");
    for noise in [
        "panicked",
        "RUST_BACKTRACE",
        "stack backtrace",
        "Broken pipe",
    ] {
        assert!(!stderr.contains(noise), "{what} said {noise:?}:\n{stderr}");
    }
}

#[tokio::test]
async fn a_closed_stdout_ends_the_commands_quietly() {
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("p", "fixture-recorder").env("FIXTURE_VERSION", "1.0.0")
    ]))
    .await;
    let socket = supervisor.socket().to_string_lossy().into_owned();
    let config = supervisor.config().to_string_lossy().into_owned();
    let commands: [&[&str]; 5] = [
        &["status", "--socket", &socket],
        &["status", "--json", "--socket", &socket],
        &["call", "--socket", &socket, "tool", "read"],
        &["call", "--json", "--socket", &socket, "tool", "read"],
        &["check-config", "--config", &config],
    ];
    for args in commands {
        let (code, stderr) = with_stdout_closed_after(args, 0);
        assert_quiet(&args.join(" "), code, &stderr);
        // Each finished its work, so it keeps its own status (0: allowed, ok), or says it was
        // cut short as SIGPIPE would.
        assert!(
            code == Some(0) || code == Some(141),
            "{args:?}: {code:?}\n{stderr}"
        );
    }
}

#[test]
fn a_closed_stdout_stops_conformance_quietly_and_takes_its_plugin_along() {
    let (first, last) = uid_range();
    let uids = format!("{first}-{last}");
    let recorder = fixture("fixture-recorder").to_string_lossy().into_owned();
    let quick = [
        "conformance",
        "--plugin-uids",
        &uids,
        "--start-timeout-ms",
        "1000",
    ];

    // Closed before the first line.
    let mut args = quick.to_vec();
    args.extend(["--", &recorder]);
    let (code, stderr) = with_stdout_closed_after(&args, 0);
    assert_quiet("conformance", code, &stderr);
    assert_eq!(code, Some(141), "{stderr}");

    // Closed after the first two lines (the title and the cookie check): the next line is the
    // `ready` check, with the plugin running. Cut short there, the plugin goes too.
    let recording = Recording::new();
    let record = format!("FIXTURE_RECORD={}", recording.path().display());
    let dir = recording
        .path()
        .parent()
        .expect("dir")
        .display()
        .to_string();
    let mut args = quick.to_vec();
    args.extend([
        "--env",
        &record,
        "--env",
        "FIXTURE_NO_WATCHDOG=1",
        "--write",
        &dir,
        "--",
        &recorder,
    ]);
    let started = Instant::now();
    let (code, stderr) = with_stdout_closed_after(&args, 2);
    assert_quiet("conformance", code, &stderr);
    assert_eq!(code, Some(141), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30), "{stderr}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for start in recording.starts() {
        let pid = start["pid"].as_i64().expect("pid") as i32;
        assert!(
            runtime.block_on(wait_gone(pid, Duration::from_secs(5))),
            "plugin {pid} outlived conformance: {start}"
        );
    }
    assert!(!recording.starts().is_empty(), "the plugin never started");
}
