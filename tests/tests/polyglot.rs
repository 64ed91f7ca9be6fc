//! Plugins in Python, TypeScript and Go under the real supervisor: each SDK's example decides
//! as it should, a crash and a hang of a plugin in each language fail closed, and
//! `hookvisor conformance` passes every example and names the check each broken fixture fails.
//! The plugins are built by each SDK's `setup.sh` (`make sdks`); nothing here skips.

use std::time::{Duration, Instant};

use hookvisor_proto::v1::{Failure, Outcome, ToolCallVerdict};
use hookvisor_tests::harness::{
    Supervisor, assert_conformance_fails, assert_conformance_passes, conformance, plugins,
    profile_dir, repo_root, tool_call,
};
use hookvisor_tests::languages::{Command, go_plugin, node_plugin, python_plugin};
use serde_json::json;

fn argv(command: &Command) -> Vec<String> {
    command.argv()
}

/// `args` with the command's `--read` options (its installation, for the sandbox).
fn with_reads(args: &[&str], command: &Command) -> Vec<String> {
    let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    all.extend(command.conformance_args());
    all
}

fn passes(args: &[&str], command: &Command) {
    let argv = argv(command);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let args = with_reads(args, command);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_conformance_passes(&args, &argv);
}

fn report(args: &[&str], command: &Command) -> (bool, String) {
    let argv = argv(command);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let args = with_reads(args, command);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    conformance(&args, &argv)
}

async fn verdict_in(supervisor: &Supervisor, tool: &str, session: &str) -> ToolCallVerdict {
    let mut request = tool_call(tool, json!({}));
    if let Some(context) = request.context.as_mut() {
        context.session_key = session.to_owned();
    }
    supervisor
        .client()
        .await
        .before_tool_call(request)
        .await
        .unwrap_or_else(|status| panic!("{tool}: {status:?}"))
        .into_inner()
}

/// A plugin that crashes on `crash-me` and never answers `hang-me` fails closed both ways,
/// naming itself, and answers again once restarted.
async fn crash_and_hang_fail_closed(misbehave: Command) {
    let supervisor =
        Supervisor::start(&plugins(&[misbehave.plugin("misbehave").timeout_ms(300)])).await;
    let hung = supervisor.verdict("hang-me", json!({})).await;
    assert_eq!(hung.outcome(), Outcome::Block, "{hung:?}");
    assert_eq!(hung.decided_by, "misbehave");
    assert_eq!(hung.trace[0].failure(), Failure::Timeout, "{hung:?}");
    assert!(
        hung.block_reason.contains("timed out after 300 ms"),
        "{hung:?}"
    );

    let crashed = supervisor.verdict("crash-me", json!({})).await;
    assert_eq!(crashed.outcome(), Outcome::Block, "{crashed:?}");
    assert_eq!(crashed.trace[0].failure(), Failure::Crashed, "{crashed:?}");
    assert!(
        crashed.block_reason.contains("exit status: 101"),
        "{crashed:?}"
    );

    // Restarted after its backoff; blocked (unavailable) until then, never allowed.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let verdict = supervisor.verdict("read", json!({})).await;
        if verdict.outcome() == Outcome::Allow {
            break;
        }
        assert_eq!(verdict.outcome(), Outcome::Block, "{verdict:?}");
        assert!(
            Instant::now() < deadline,
            "never back: {}",
            supervisor.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- Python ----

fn budget_guard() -> Command {
    python_plugin("examples/python/budget_guard.py", &[])
}

#[tokio::test]
async fn python_budget_guard_blocks_a_session_past_its_budget() {
    let supervisor = Supervisor::start(&plugins(&[budget_guard()
        .plugin("budget")
        .env("BUDGET_MAX_CALLS", "2")]))
    .await;
    for _ in 0..2 {
        let verdict = verdict_in(&supervisor, "exec", "s1").await;
        assert_eq!(verdict.outcome(), Outcome::Allow, "{verdict:?}");
    }
    let over = verdict_in(&supervisor, "exec", "s1").await;
    assert_eq!(over.outcome(), Outcome::Block, "{over:?}");
    assert_eq!(over.decided_by, "budget");
    assert!(over.block_reason.contains("budget of 2"), "{over:?}");
    let other = verdict_in(&supervisor, "exec", "s2").await;
    assert_eq!(
        other.outcome(),
        Outcome::Allow,
        "another session has its own budget"
    );
    let probe = verdict_in(&supervisor, "hookvisor-noop-probe", "s1").await;
    assert_eq!(
        probe.outcome(),
        Outcome::Allow,
        "the probe is never blocked"
    );
}

#[tokio::test]
async fn python_crash_and_hang_fail_closed() {
    crash_and_hang_fail_closed(python_plugin(
        "plugin-sdk/python/tests/fixtures/misbehave.py",
        &[],
    ))
    .await;
}

#[test]
fn python_examples_pass_conformance() {
    passes(&["--env", "BUDGET_MAX_CALLS=20"], &budget_guard());
    passes(
        &[],
        &python_plugin("plugin-sdk/python/tests/fixtures/misbehave.py", &[]),
    );
}

#[test]
fn broken_python_fixtures_fail_the_check_they_break() {
    let broken = |mode: &str| python_plugin("plugin-sdk/python/tests/fixtures/broken.py", &[mode]);
    let quick = ["--start-timeout-ms", "3000", "--timeout-ms", "500"];
    assert_conformance_fails(
        &report(&quick, &broken("no-cookie")),
        "cookie",
        "still running 3000 ms after it was started without HOOKVISOR_MAGIC_COOKIE",
    );
    assert_conformance_fails(
        &report(&quick, &broken("protocol-2")),
        "describe",
        "answered protocol_version 2, not 1",
    );
    assert_conformance_fails(
        &report(&quick, &broken("ignore-sigterm")),
        "sigterm",
        "still running 2000 ms after SIGTERM",
    );
    let hang = report(&quick, &broken("hang"));
    assert_conformance_fails(
        &hang,
        "before_tool_call: empty params, no context",
        "timed out after 500 ms",
    );
    assert_conformance_fails(
        &report(&quick, &broken("bad-decision")),
        "before_tool_call: empty params, no context",
        "returned an invalid response: params_json",
    );
    // It answers within the deadline (2 s of 3), but a cancelled call makes it exit.
    let dies = report(&["--timeout-ms", "3000"], &broken("dies-after-cancel"));
    assert_conformance_fails(&dies, "cancel", "");
}

// ---- Go ----

#[tokio::test]
async fn go_path_guard_rewrites_and_blocks() {
    let supervisor =
        Supervisor::start(&plugins(&[go_plugin("path-guard").plugin("path-guard")])).await;
    let inside = supervisor
        .verdict("read", json!({"path": "src/../a.txt"}))
        .await;
    assert_eq!(inside.outcome(), Outcome::Allow, "{inside:?}");
    assert!(inside.params_changed);
    assert_eq!(
        inside.params_json,
        r#"{"path":"/srv/agent/workspace/a.txt"}"#
    );
    let escape = supervisor
        .verdict("write", json!({"file_path": "../../etc/passwd"}))
        .await;
    assert_eq!(escape.outcome(), Outcome::Block, "{escape:?}");
    assert_eq!(
        escape.block_reason,
        "path '../../etc/passwd' escapes the workspace '/srv/agent/workspace'"
    );
}

#[tokio::test]
async fn go_crash_and_hang_fail_closed() {
    crash_and_hang_fail_closed(go_plugin("misbehave")).await;
}

#[test]
fn go_examples_pass_conformance() {
    passes(&[], &go_plugin("path-guard"));
    passes(&["--env", "PATH_GUARD_TOOLS=*"], &go_plugin("path-guard"));
    passes(&[], &go_plugin("misbehave"));
}

// ---- TypeScript ----

fn secret_guard() -> Command {
    node_plugin("examples/typescript/dist/secret-guard.js", &[])
}

#[tokio::test]
async fn typescript_secret_guard_blocks_credentials_without_quoting_them() {
    let supervisor = Supervisor::start(&plugins(&[secret_guard().plugin("secret-guard")])).await;
    let key = "AKIAABCDEFGHIJKLMNOP";
    let blocked = supervisor
        .verdict("exec", json!({"env": {"KEY": key}}))
        .await;
    assert_eq!(blocked.outcome(), Outcome::Block, "{blocked:?}");
    assert_eq!(blocked.decided_by, "secret-guard");
    assert!(blocked.block_reason.contains("$.env.KEY"), "{blocked:?}");
    assert!(!blocked.block_reason.contains(key), "{blocked:?}");
    let clean = supervisor.verdict("exec", json!({"command": "ls"})).await;
    assert_eq!(clean.outcome(), Outcome::Allow, "{clean:?}");
    let probe = supervisor
        .verdict("hookvisor-noop-probe", json!({"env": {"KEY": key}}))
        .await;
    assert_eq!(
        probe.outcome(),
        Outcome::Allow,
        "the probe is never blocked"
    );
}

#[tokio::test]
async fn typescript_crash_and_hang_fail_closed() {
    crash_and_hang_fail_closed(node_plugin(
        "plugin-sdk/typescript/dist/test/fixtures/misbehave.js",
        &[],
    ))
    .await;
}

#[test]
fn typescript_examples_pass_conformance() {
    passes(&[], &secret_guard());
    passes(
        &[],
        &node_plugin("plugin-sdk/typescript/dist/test/fixtures/misbehave.js", &[]),
    );
}

// ---- All four under one supervisor ----

/// `examples/polyglot.toml`'s plugins, with its relative paths made absolute (the test's
/// configuration lives in a temporary directory) and the Rust plugin from this build.
fn polyglot_plugins() -> String {
    let text = std::fs::read_to_string(repo_root().join("examples/polyglot.toml")).unwrap();
    let plugins = &text[text.find("[[plugin]]").expect("[[plugin]] tables")..];
    let repo = repo_root().display().to_string();
    let examples = format!("{repo}/examples");
    plugins
        .replace(
            "\"../target/release/",
            &format!("\"{}/", profile_dir().display()),
        )
        .replace("\"../", &format!("\"{repo}/"))
        .replace("\"typescript/", &format!("\"{examples}/typescript/"))
        .replace("\"python/", &format!("\"{examples}/python/"))
        .replace(
            "\"deny-list.txt\"",
            &format!("\"{examples}/deny-list.txt\""),
        )
}

#[tokio::test]
async fn the_polyglot_example_answers_a_probe_with_all_four_in_the_trace() {
    let supervisor = Supervisor::start(&polyglot_plugins()).await;
    let probe = supervisor.verdict("hookvisor-noop-probe", json!({})).await;
    assert_eq!(probe.outcome(), Outcome::Allow, "{probe:?}");
    let names: Vec<&str> = probe.trace.iter().map(|r| r.plugin.as_str()).collect();
    assert_eq!(
        names,
        ["deny-list", "budget-guard", "secret-guard", "path-guard"],
        "{probe:?}"
    );
    assert!(
        probe.trace.iter().all(|r| r.failure() == Failure::None),
        "{probe:?}"
    );
    // Each language still decides: the TypeScript plugin blocks a credential.
    let secret = supervisor
        .verdict("exec", json!({"token": "AKIAABCDEFGHIJKLMNOP"}))
        .await;
    assert_eq!(secret.outcome(), Outcome::Block);
    assert_eq!(secret.decided_by, "secret-guard");
}

// ---- each SDK's example against its own cases (`hookvisor conformance --cases`) ----

#[test]
fn every_sdk_example_passes_its_own_cases() {
    let root = repo_root();
    for (args, command, file, count) in [
        (
            vec!["--env", "BUDGET_MAX_CALLS=2"],
            budget_guard(),
            "examples/python/budget_guard.cases.jsonl",
            5,
        ),
        (
            vec![],
            secret_guard(),
            "examples/typescript/secret-guard.cases.jsonl",
            3,
        ),
        (
            vec![],
            go_plugin("path-guard"),
            "examples/go/path-guard.cases.jsonl",
            5,
        ),
    ] {
        let file = root.join(file).display().to_string();
        let mut all = args.clone();
        all.extend(["--cases", file.as_str()]);
        let (passed, report) = report(&all, &command);
        assert!(passed, "{file}: {report}");
        let cases: Vec<&str> = report
            .lines()
            .filter(|l| l.starts_with("ok    line ") || l.starts_with("FAIL  line "))
            .collect();
        assert_eq!(cases.len(), count, "{report}");
        assert!(cases.iter().all(|l| l.starts_with("ok ")), "{report}");
    }
}
