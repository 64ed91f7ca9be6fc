//! `hookvisor call` against a real running supervisor: the verdict, the per-plugin trace, the
//! `--json` form and the exit status of each outcome (0 allow, 2 block, 3 approval, 1 error).

use hookvisor_tests::harness::{PluginToml, Supervisor, plugins, run_hookvisor};
use serde_json::Value;

fn call(supervisor: &Supervisor, args: &[&str]) -> (Option<i32>, String, String) {
    let socket = supervisor.socket().to_string_lossy().into_owned();
    let mut all = vec!["call", "--socket", &socket];
    all.extend_from_slice(args);
    let (status, stdout, stderr) = run_hookvisor(&all);
    (status.code(), stdout, stderr)
}

#[tokio::test]
async fn each_outcome_has_its_exit_status_and_trace() {
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("guard", "fixture-recorder").action("block-tool:danger"),
        PluginToml::new("asker", "fixture-recorder")
            .action("approve:Ask first?")
            .env("FIXTURE_TOOLS", "ask"),
    ]))
    .await;

    let (code, out, err) = call(
        &supervisor,
        &["tool", "read", "--params", r#"{"path":"a"}"#],
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.starts_with("outcome: allow\n"), "{out}");
    assert!(out.contains("  guard ") && !out.contains("asker"), "{out}");

    let (code, out, err) = call(&supervisor, &["tool", "danger"]);
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(
        out.starts_with("outcome: block (policy) by guard: "),
        "{out}"
    );

    let (code, out, err) = call(
        &supervisor,
        &["--json", "tool", "ask", "--session-key", "s"],
    );
    assert_eq!(code, Some(3), "{out}{err}");
    let verdict: Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(verdict["outcome"], "require_approval");
    assert_eq!(verdict["approval_plugin"], "asker");
    let trace = verdict["trace"].as_array().expect("trace");
    assert_eq!(trace.len(), 2, "{verdict}");
    assert!(
        trace.iter().all(|r| r["latency_us"].as_u64().is_some()),
        "{verdict}"
    );

    // The supervisor refuses params that are not an object: an error, exit 1, the field named.
    let (code, out, err) = call(&supervisor, &["tool", "read", "--params", "[1]"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        err.contains("InvalidArgument") && err.contains("params_json"),
        "{err}"
    );
}

#[test]
fn no_supervisor_is_an_error_naming_the_socket() {
    let (status, out, err) = run_hookvisor(&[
        "call",
        "--socket",
        "/nonexistent/hookvisor.sock",
        "tool",
        "x",
    ]);
    assert_eq!(status.code(), Some(1), "{out}{err}");
    assert!(err.contains("/nonexistent/hookvisor.sock"), "{err}");
}

#[tokio::test]
async fn the_trace_marks_the_plugin_that_rewrote_the_params() {
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("watcher", "fixture-recorder"),
        PluginToml::new("fixer", "fixture-recorder").action(r#"merge:{"path":"/srv/ws/a"}"#),
    ]))
    .await;
    let (code, out, err) = call(
        &supervisor,
        &["tool", "read", "--params", r#"{"path":"a"}"#],
    );
    assert_eq!(code, Some(0), "{out}{err}");
    let line = |name: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {out}"))
            .to_owned()
    };
    assert!(line("fixer").ends_with("rewrote the params"), "{out}");
    assert!(!line("watcher").contains("rewrote"), "{out}");
}
