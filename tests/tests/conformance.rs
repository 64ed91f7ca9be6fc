//! `hookvisor conformance` against real plugin processes: it passes every example plugin and
//! names the check a deliberately broken fixture fails.

use hookvisor_tests::harness::{
    TestDir, assert_conformance_fails as assert_fails, assert_conformance_passes as assert_passes,
    binary, conformance, repo_root, run_hookvisor,
};

fn cases(name: &str) -> String {
    repo_root()
        .join("examples/plugins/cases")
        .join(name)
        .display()
        .to_string()
}

/// Every case line of a report, each `ok` or `FAIL`.
fn case_lines(report: &str) -> Vec<&str> {
    report
        .lines()
        .filter(|l| l.starts_with("ok    line ") || l.starts_with("FAIL  line "))
        .collect()
}

#[test]
fn every_rust_example_passes() {
    let path = |name: &str| binary(name).to_string_lossy().into_owned();
    assert_passes(&[], &[&path("path-guard")]);
    assert_passes(&[], &[&path("approval-gate")]);
    assert_passes(&[], &[&path("session-tagger")]);
    let list = repo_root().join("examples/deny-list.txt");
    let env = format!("HOOKVISOR_DENY_LIST={}", list.display());
    let read = list.display().to_string();
    assert_passes(
        &["--trusted", "--env", &env, "--read", &read],
        &[&path("deny-list")],
    );
}

#[test]
fn every_rust_example_passes_its_own_cases() {
    let path = |name: &str| binary(name).to_string_lossy().into_owned();
    let list = repo_root().join("examples/deny-list.txt");
    let env = format!("HOOKVISOR_DENY_LIST={}", list.display());
    let read = list.display().to_string();
    for (args, plugin, file, count) in [
        (vec![], "path-guard", "path-guard.jsonl", 5),
        (vec![], "approval-gate", "approval-gate.jsonl", 2),
        (
            vec!["--env", "SESSION_TAGGER_BLOCK_AGENTS=guest"],
            "session-tagger",
            "session-tagger.jsonl",
            2,
        ),
        (
            vec!["--trusted", "--env", &env, "--read", &read],
            "deny-list",
            "deny-list.jsonl",
            3,
        ),
    ] {
        let file = cases(file);
        let mut all = args.clone();
        all.extend(["--cases", &file]);
        let (passed, report) = conformance(&all, &[&path(plugin)]);
        assert!(passed, "{plugin}: {report}");
        let lines = case_lines(&report);
        assert_eq!(lines.len(), count, "{plugin}: {report}");
        assert!(lines.iter().all(|l| l.starts_with("ok ")), "{report}");
    }
}

#[test]
fn a_case_that_does_not_match_fails_with_what_came_back_and_a_diff() {
    let dir = TestDir::new();
    let file = dir.join("cases.jsonl");
    std::fs::write(
        &file,
        concat!(
            r#"{"name":"wrong params","tool":"read","params":{"path":"a.txt"},"context":{"workspace_dir":"/srv/ws"},"expect":{"outcome":"allow","params":{"path":"/srv/other/a.txt"}}}"#,
            "\n",
            r#"{"name":"wrong outcome","tool":"read","params":{"path":"../x"},"context":{"workspace_dir":"/srv/ws"},"expect":{"outcome":"allow"}}"#,
            "\n",
            r#"{"name":"wrong reason","tool":"read","params":{"path":"../x"},"context":{"workspace_dir":"/srv/ws"},"expect":{"outcome":"block","reason":"^nope"}}"#,
            "\n",
            r#"{"name":"right","tool":"read","params":{"path":"../x"},"context":{"workspace_dir":"/srv/ws"},"expect":{"outcome":"block","reason":"escapes"}}"#,
            "\n",
        ),
    )
    .expect("cases");
    let file = file.display().to_string();
    let plugin = binary("path-guard").to_string_lossy().into_owned();
    let (passed, report) = conformance(&["--cases", &file], &[&plugin]);
    assert!(!passed, "{report}");
    let lines = case_lines(&report);
    assert_eq!(
        lines,
        vec![
            "FAIL  line 1: wrong params: got allow, params rewritten",
            "FAIL  line 2: wrong outcome: got block: path '../x' escapes the workspace '/srv/ws'",
            "FAIL  line 3: wrong reason: got block: path '../x' escapes the workspace '/srv/ws'",
            "ok    line 4: right: block: path '../x' escapes the workspace '/srv/ws'",
        ],
        "{report}"
    );
    for needed in [
        "      params differ:",
        "      -   \"path\": \"/srv/other/a.txt\"",
        "      +   \"path\": \"/srv/ws/a.txt\"",
        "      outcome: expected allow, got block",
        "      reason: /^nope/ not found in \"path '../x' escapes the workspace '/srv/ws'\"",
    ] {
        assert!(
            report.lines().any(|l| l == needed),
            "{needed:?} in {report}"
        );
    }
    assert!(report.contains("conformance: "), "{report}");
}

#[test]
fn a_mistake_in_the_cases_file_is_reported_before_the_plugin_starts() {
    let dir = TestDir::new();
    let file = dir.join("cases.jsonl");
    std::fs::write(
        &file,
        "{\"tool\":\"read\",\"expect\":{\"outcome\":\"maybe\"}}\n",
    )
    .expect("cases");
    let plugin = binary("path-guard").to_string_lossy().into_owned();
    let file = file.display().to_string();
    let (status, out, err) = run_hookvisor(&["conformance", "--cases", &file, "--", &plugin]);
    assert!(!status.success());
    assert!(
        err.contains(&format!(
            "{file}:1: expect.outcome \"maybe\" is not allow, block or require_approval"
        )),
        "{out}{err}"
    );
    assert!(!out.contains("ready"), "the plugin was not started: {out}");
}

#[test]
fn a_policy_without_trusted_fails_describe() {
    let list = repo_root().join("examples/deny-list.txt");
    let env = format!("HOOKVISOR_DENY_LIST={}", list.display());
    let read = list.display().to_string();
    let report = conformance(
        &["--env", &env, "--read", &read],
        &[&binary("deny-list").to_string_lossy()],
    );
    assert_fails(&report, "describe", "not trusted (pass --trusted");
}

#[test]
fn a_plugin_that_does_not_start_fails_ready() {
    // deny-list without its list exits 1 at start, saying why.
    let report = conformance(&[], &[&binary("deny-list").to_string_lossy()]);
    assert_fails(&report, "ready", "HOOKVISOR_DENY_LIST is not set");
}

#[test]
fn broken_rust_fixtures_fail_the_check_they_break() {
    let fixture = |name: &str| binary(name).to_string_lossy().into_owned();
    let quick = ["--start-timeout-ms", "1000", "--timeout-ms", "300"];

    let protocol = conformance(&quick, &[&fixture("fixture-protocol-2")]);
    assert_fails(&protocol, "describe", "answered protocol_version 2, not 1");
    // The test fixtures never check the cookie.
    assert_fails(
        &protocol,
        "cookie",
        "still running 1000 ms after it was started without",
    );

    let hang = conformance(&quick, &[&fixture("fixture-hang")]);
    assert_fails(
        &hang,
        "before_tool_call: empty params, no context",
        "timed out after 300 ms",
    );
    assert_fails(&hang, "cancel", "timed out after 300 ms");

    let mut bad_args = quick.to_vec();
    bad_args.extend(["--env", "FIXTURE_BAD=array"]);
    let bad = conformance(&bad_args, &[&fixture("fixture-bad-params")]);
    assert_fails(
        &bad,
        "before_tool_call: empty params, no context",
        "invalid response",
    );

    let error = conformance(&quick, &[&fixture("fixture-error")]);
    assert_fails(
        &error,
        "before_tool_call: empty params, no context",
        "gRPC status",
    );
}
