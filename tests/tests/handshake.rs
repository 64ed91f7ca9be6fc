//! Contract §2 (launch and handshake) and §3 (registration): start failures make a plugin
//! unavailable, which blocks; the child's environment, stdin and output; the peer check.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use hookvisor_proto::v1::{BlockKind, Failure, Outcome, ToolCallVerdict};
use hookvisor_tests::harness::{
    INHERIT_VAR, LEAK_VAR, PluginToml, Recording, Supervisor, binary, entry, plugins,
    run_hookvisor, session_create,
};
use serde_json::json;

async fn verdict_for(supervisor: &Supervisor, tool: &str) -> ToolCallVerdict {
    supervisor.verdict(tool, json!({"command": "ls"})).await
}

/// The plugin is unavailable: the call blocks at once with FAILURE_UNAVAILABLE and a reason
/// that says what happened.
async fn assert_unavailable(supervisor: &Supervisor, plugin: &str, mentions: &[&str]) {
    // Unregistered tools too: a plugin that never described itself counts for every tool.
    for tool in ["exec", "some-other-tool"] {
        let started = Instant::now();
        let verdict = verdict_for(supervisor, tool).await;
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(verdict.outcome(), Outcome::Block, "{verdict:#?}");
        assert_eq!(verdict.block_kind(), BlockKind::Failure);
        assert_eq!(verdict.decided_by, plugin);
        let prefix = format!("plugin '{plugin}' is unavailable: ");
        assert!(
            verdict.block_reason.starts_with(&prefix),
            "{}",
            verdict.block_reason
        );
        for needle in mentions {
            assert!(
                verdict.block_reason.contains(needle),
                "{:?} does not mention {needle:?}",
                verdict.block_reason
            );
        }
        assert_eq!(verdict.trace.len(), 1);
        assert_eq!(verdict.trace[0].failure(), Failure::Unavailable);
        assert_eq!(verdict.trace[0].detail, verdict.block_reason);
    }
}

#[tokio::test]
async fn plugin_exiting_at_start_is_unavailable() {
    let supervisor = Supervisor::start(&plugins(&[PluginToml::new(
        "quitter",
        "fixture-exit-at-start",
    )]))
    .await;
    assert_unavailable(&supervisor, "quitter", &["7"]).await;
    let reason = verdict_for(&supervisor, "exec").await.block_reason;
    assert!(
        reason.contains("exited") || reason.contains("status 7") || reason.contains("giving up"),
        "{reason}"
    );
    assert!(
        supervisor
            .log_line_with(&["quitter", "giving up"])
            .await
            .is_some(),
        "the plugin's stderr must be logged with its name\n{}",
        supervisor.log()
    );
}

#[tokio::test]
async fn plugin_that_never_binds_times_out_at_start() {
    let started = Instant::now();
    let supervisor = Supervisor::builder(&plugins(&[PluginToml::new("mute", "fixture-no-bind")]))
        .supervisor_key("start_timeout_ms = 1000")
        .start()
        .await;
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "the host socket must wait for every plugin's start: {:?}",
        started.elapsed()
    );
    assert_unavailable(&supervisor, "mute", &["timed out"]).await;
    assert!(
        supervisor
            .log_line_with(&["mute", "timed out"])
            .await
            .is_some(),
        "{}",
        supervisor.log()
    );
}

#[tokio::test]
async fn plugin_speaking_protocol_2_is_unavailable() {
    let supervisor =
        Supervisor::start(&plugins(&[PluginToml::new("future", "fixture-protocol-2")])).await;
    assert_unavailable(&supervisor, "future", &["protocol_version 2"]).await;
    assert!(
        supervisor
            .log_line_with(&["future", "protocol_version 2"])
            .await
            .is_some(),
        "{}",
        supervisor.log()
    );
}

#[tokio::test]
async fn socket_served_from_another_process_group_fails_the_peer_check() {
    let recording = Recording::new();
    let supervisor = Supervisor::builder(&plugins(&[PluginToml::new(
        "impostor",
        "fixture-peer-mismatch",
    )
    .record(&recording)]))
    .supervisor_key("start_timeout_ms = 3000")
    .start()
    .await;
    assert_unavailable(&supervisor, "impostor", &["peer"]).await;
    assert!(
        recording.calls().is_empty(),
        "the impostor must never be called"
    );
    assert!(
        supervisor
            .log_line_with(&["impostor", "peer"])
            .await
            .is_some(),
        "{}",
        supervisor.log()
    );
}

/// Issue 5, item 1: an untrusted plugin's helper joins the trusted policy's process group and
/// serves on the policy's socket, claiming the policy stage and allowing everything. Joining the
/// group is refused (the policy is in a session of its own), and the listener is not in the
/// policy's session, so the policy fails its start and every call blocks.
///
/// Both run outside the sandbox: this is the peer check behind it. Sandboxed, the helper could
/// neither read the victim's environment nor enter its socket directory (`tests/sandbox.rs`).
#[tokio::test]
async fn untrusted_plugin_cannot_answer_in_a_trusted_policys_place() {
    let recording = Recording::new();
    let supervisor = Supervisor::builder(&plugins(&[
        PluginToml::new("victim", "fixture-no-bind")
            .trusted()
            .unsandboxed(),
        PluginToml::new("hijacker", "fixture-hijack")
            .env("FIXTURE_VICTIM", "victim")
            .unsandboxed()
            .record(&recording),
    ]))
    .supervisor_key("start_timeout_ms = 10000")
    .start()
    .await;
    let verdict = supervisor
        .verdict("exec", json!({"command": "rm -rf /"}))
        .await;
    assert_eq!(verdict.outcome(), Outcome::Block, "{verdict:#?}");
    assert_eq!(verdict.block_kind(), BlockKind::Failure);
    assert_eq!(verdict.decided_by, "victim");
    assert!(
        verdict
            .block_reason
            .starts_with("plugin 'victim' is unavailable: ")
            && verdict.block_reason.contains("peer mismatch"),
        "{}",
        verdict.block_reason
    );
    let victim = entry(&verdict.trace, "victim");
    assert_eq!(victim.failure(), Failure::Unavailable);
    assert!(victim.detail.contains("peer mismatch"), "{}", victim.detail);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(recording.path())
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let setpgid = lines
        .iter()
        .find(|l| l["hijack"] == "setpgid")
        .unwrap_or_else(|| panic!("the helper never tried setpgid: {lines:?}"));
    assert_eq!(setpgid["result"], "EPERM", "{setpgid}");
    assert!(lines.iter().any(|l| l["hijack"] == "bound"), "{lines:?}");
    assert!(
        recording.calls().is_empty(),
        "no hijacker process may be called: {:?}",
        recording.calls()
    );
}

#[tokio::test]
async fn launcher_whose_child_serves_in_the_same_group_passes() {
    let recording = Recording::new();
    let supervisor =
        Supervisor::start(&plugins(&[PluginToml::new("launched", "fixture-launcher")
            .action("block:served by the launcher's child")
            .record(&recording)]))
        .await;
    let verdict = verdict_for(&supervisor, "exec").await;
    assert_eq!(verdict.outcome(), Outcome::Block, "{verdict:#?}");
    assert_eq!(verdict.block_kind(), BlockKind::Policy);
    assert_eq!(verdict.decided_by, "launched");
    assert_eq!(verdict.block_reason, "served by the launcher's child");
    assert_eq!(recording.calls_of("launched").len(), 1);
}

#[tokio::test]
async fn hooks_list_narrows_an_unavailable_plugin_up_front() {
    let supervisor = Supervisor::start(&plugins(&[PluginToml::new(
        "quitter",
        "fixture-exit-at-start",
    )
    .key("hooks = [\"before_session_create\"]")]))
    .await;
    let verdict = verdict_for(&supervisor, "exec").await;
    assert_eq!(verdict.outcome(), Outcome::Allow, "{verdict:#?}");
    assert!(verdict.trace.is_empty());
    let session = supervisor
        .client()
        .await
        .before_session_create(session_create("agent:agent-1:s1", &[]))
        .await
        .expect("BeforeSessionCreate")
        .into_inner();
    assert_eq!(session.outcome(), Outcome::Block, "{session:#?}");
    assert_eq!(session.block_kind(), BlockKind::Failure);
    assert_eq!(session.decided_by, "quitter");
}

#[tokio::test]
async fn child_environment_is_cleared_and_given_the_handshake() {
    let recording = Recording::new();
    let supervisor = Supervisor::start(&plugins(&[PluginToml::new("envy", "fixture-recorder")
        .env("CUSTOM", "from config")
        .key(&format!("inherit_env = [\"{}\"]", INHERIT_VAR.0))
        .record(&recording)]))
    .await;
    let start = recording.start_of("envy");
    let env = start["env"].as_object().expect("env");
    assert_eq!(env["HOOKVISOR_PLUGIN_NAME"], "envy");
    assert_eq!(env["HOOKVISOR_PROTOCOL_VERSION"], "1");
    assert_eq!(env["HOOKVISOR_MAGIC_COOKIE"], hookvisor_proto::MAGIC_COOKIE);
    assert_eq!(env["CUSTOM"], "from config");
    assert_eq!(env[INHERIT_VAR.0], INHERIT_VAR.1);
    assert!(
        !env.contains_key(LEAK_VAR.0),
        "the environment was not cleared: {env:?}"
    );
    let socket = env["HOOKVISOR_PLUGIN_SOCKET"].as_str().unwrap();
    assert!(
        socket.starts_with(&supervisor.runtime_dir().display().to_string()),
        "{socket} is not inside the runtime dir"
    );
    assert_eq!(start["stdin"], "/dev/null");
    let mode = std::fs::metadata(supervisor.runtime_dir())
        .expect("runtime dir")
        .permissions()
        .mode();
    // Traversable (each plugin reaches its own socket directory), not listable.
    assert_eq!(mode & 0o777, 0o711, "runtime dir mode {mode:o}");
}

#[tokio::test]
async fn plugin_runs_in_its_own_process_group() {
    let recording = Recording::new();
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("grouped", "fixture-recorder").record(&recording)
    ]))
    .await;
    let start = recording.start_of("grouped");
    assert_eq!(start["pgid"], start["pid"]);
    assert_ne!(start["pgid"].as_i64(), Some(i64::from(supervisor.pid())));
}

#[tokio::test]
async fn a_plugin_named_otherwise_than_configured_is_warned_about_once() {
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("guard", "fixture-recorder"),
        PluginToml::program("path-guard", &binary("path-guard")),
    ]))
    .await;
    let warning = "describes itself as \"fixture-";
    assert!(
        supervisor
            .log_line_with(&["guard", warning])
            .await
            .is_some(),
        "{}",
        supervisor.log()
    );
    // A restart is the same plugin: no second warning.
    let socket = supervisor.socket().to_string_lossy().into_owned();
    let (status, out, err) = run_hookvisor(&["restart", "guard", "--socket", &socket]);
    assert!(status.success(), "{out}{err}");
    assert_eq!(
        verdict_for(&supervisor, "exec").await.outcome(),
        Outcome::Allow
    );
    let log = supervisor.log();
    assert_eq!(log.matches(warning).count(), 1, "{log}");
    // path-guard describes itself by the name it is configured with: nothing to say.
    assert!(!log.contains("describes itself as \"path-guard"), "{log}");
}

/// An SDK's own line on SIGTERM is not a warning: the Rust SDK writes it on stdout, which the
/// supervisor logs at info.
#[tokio::test]
async fn a_plugins_stop_line_is_logged_at_info() {
    let mut supervisor = Supervisor::start(&plugins(&[PluginToml::program(
        "path-guard",
        &binary("path-guard"),
    )]))
    .await;
    assert!(supervisor.stop().await.success());
    let log = supervisor.log();
    let line = log
        .lines()
        .find(|l| l.contains("received SIGTERM; finishing calls in flight and exiting"))
        .unwrap_or_else(|| panic!("no stop line in {log}"));
    assert!(
        line.contains(" INFO ") && line.contains("stream=\"stdout\""),
        "{line}"
    );
}

#[tokio::test]
async fn plugin_stdout_is_logged_with_its_name() {
    let supervisor = Supervisor::start(&plugins(&[PluginToml::new("chatty", "fixture-recorder")
        .env("FIXTURE_SAY", "hello from stdout, not protocol")]))
    .await;
    assert!(
        supervisor
            .log_line_with(&["chatty", "hello from stdout, not protocol"])
            .await
            .is_some(),
        "{}",
        supervisor.log()
    );
    assert_eq!(
        verdict_for(&supervisor, "exec").await.outcome(),
        Outcome::Allow
    );
}

#[tokio::test]
async fn plugin_flooding_its_output_keeps_answering() {
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("flood", "fixture-flood").timeout_ms(2000)
    ]))
    .await;
    // Long enough for the 64 KiB pipes to have filled many times over.
    for _ in 0..10 {
        let verdict = verdict_for(&supervisor, "exec").await;
        assert_eq!(verdict.outcome(), Outcome::Allow, "{verdict:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        supervisor
            .log_line_with(&["flood", "flood stderr line"])
            .await
            .is_some(),
        "the flood is not logged"
    );
    assert!(supervisor.health().await.is_ok());
}
