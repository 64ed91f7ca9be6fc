//! `hookvisor conformance` against real plugin processes: it passes every example plugin and
//! names the check a deliberately broken fixture fails.

use hookvisor_tests::harness::{
    assert_conformance_fails as assert_fails, assert_conformance_passes as assert_passes, binary,
    conformance, repo_root,
};

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
