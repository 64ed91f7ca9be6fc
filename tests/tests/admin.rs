//! The operators' interface of a running supervisor: `hookvisor status`, `reload` and
//! `restart` (the `hookvisor.v1.Admin` service) with their exit statuses and `--json`, and gRPC
//! reflection on the host socket.

use hookvisor_proto::v1::Outcome;
use hookvisor_tests::harness::{PluginToml, Recording, Supervisor, plugins, run_hookvisor};
use serde_json::{Value, json};
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

fn admin(supervisor: &Supervisor, args: &[&str]) -> (Option<i32>, String, String) {
    let socket = supervisor.socket().to_string_lossy().into_owned();
    let mut all = args.to_vec();
    all.extend(["--socket", &socket]);
    let (status, out, err) = run_hookvisor(&all);
    (status.code(), out, err)
}

fn status_json(supervisor: &Supervisor) -> Vec<Value> {
    let (code, out, err) = admin(supervisor, &["status", "--json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let parsed: Value = serde_json::from_str(out.trim()).expect("one JSON object");
    parsed["plugins"].as_array().expect("plugins").clone()
}

#[tokio::test]
async fn status_shows_every_plugin_with_its_figures() {
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("guard", "fixture-recorder")
            .policy()
            .action("block-tool:danger"),
        PluginToml::new("watcher", "fixture-recorder").key("mode = \"shadow\""),
    ]))
    .await;
    assert_eq!(
        supervisor.verdict("read", json!({})).await.outcome(),
        Outcome::Allow
    );
    assert_eq!(
        supervisor.verdict("danger", json!({})).await.outcome(),
        Outcome::Block
    );

    let plugins = status_json(&supervisor);
    assert_eq!(plugins.len(), 2, "{plugins:?}");
    let guard = &plugins[0];
    assert_eq!(guard["name"], "guard");
    assert_eq!(guard["state"], "ready");
    assert_eq!(guard["trusted"], true);
    assert_eq!(guard["version"], "0.0.0-test");
    assert!(guard["pid"].as_i64().unwrap() > 0);
    assert_eq!(guard["calls"], 2);
    assert_eq!(guard["blocks"], 1);
    assert_eq!(guard["failures"], 0);
    assert!(guard["p99_latency_us"].as_u64().unwrap() > 0);
    assert_eq!(guard["hooks"], "policy before_tool_call");
    assert_eq!(plugins[1]["mode"], "shadow");

    let (code, table, _) = admin(&supervisor, &["status"]);
    assert_eq!(code, Some(0));
    let header = table.lines().next().unwrap();
    for column in [
        "plugin", "state", "pid", "restarts", "calls", "blocks", "failures", "p99",
    ] {
        assert!(header.contains(column), "{table}");
    }
    assert!(table.contains("shadow ("), "{table}");
}

#[tokio::test]
async fn restart_replaces_the_process_and_names_unknown_plugins() {
    let recording = Recording::new();
    let supervisor = Supervisor::start(&plugins(&[PluginToml::new("p", "fixture-recorder")
        .env("FIXTURE_NO_WATCHDOG", "1")
        .record(&recording)]))
    .await;
    let before = status_json(&supervisor)[0]["pid"].as_i64().unwrap();
    let (code, out, err) = admin(&supervisor, &["restart", "p", "--json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let answer: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(answer["state"], "ready");
    let after = answer["pid"].as_i64().unwrap();
    assert_ne!(after, before);
    assert_eq!(status_json(&supervisor)[0]["restarts"], 1);
    assert_eq!(recording.starts().len(), 2);
    // Ready again at once: calls are answered by the new instance.
    assert_eq!(
        supervisor.verdict("read", json!({})).await.outcome(),
        Outcome::Allow
    );

    let long = "x".repeat(10_000);
    let (code, _, err) = admin(&supervisor, &["restart", &long]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("InvalidArgument")
            && err.contains("name: a plugin name is 1..63 bytes, got 10000"),
        "{err}"
    );

    let (code, _, err) = admin(&supervisor, &["restart", "nope"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("NotFound") && err.contains("no plugin named 'nope' (configured: p)"),
        "{err}"
    );
}

#[tokio::test]
async fn reload_says_whether_the_new_configuration_runs() {
    let supervisor =
        Supervisor::start(&plugins(&[PluginToml::new("one", "fixture-recorder")])).await;
    supervisor.rewrite_config(&plugins(&[
        PluginToml::new("one", "fixture-recorder"),
        PluginToml::new("two", "fixture-recorder"),
    ]));
    let (code, out, err) = admin(&supervisor, &["reload"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(out.trim(), "reloaded: 2 plugins");
    let names: Vec<Value> = status_json(&supervisor)
        .iter()
        .map(|p| p["name"].clone())
        .collect();
    assert_eq!(names, [json!("one"), json!("two")]);

    supervisor.rewrite_config("[[plugin]]\nname = \"Bad Name\"\ncommand = \"/bin/true\"\n");
    let (code, _, err) = admin(&supervisor, &["reload"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("FailedPrecondition") && err.contains("reload refused"),
        "{err}"
    );
    assert_eq!(
        status_json(&supervisor).len(),
        2,
        "the running configuration stays"
    );
}

#[tokio::test]
async fn reflection_lists_the_services() {
    let supervisor = Supervisor::start(&plugins(&[PluginToml::new("p", "fixture-recorder")])).await;
    let channel = hookvisor_tests::harness::connect(supervisor.socket())
        .await
        .unwrap();
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().expect("an answer");
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("{answer:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for service in [
        "hookvisor.v1.Hooks",
        "hookvisor.v1.Admin",
        "grpc.health.v1.Health",
    ] {
        assert!(names.iter().any(|n| n == service), "{names:?}");
    }
}

/// Issue 18, defect 8: a reload that changes only `mode` (and so keeps the process) showed the
/// old mode in `status` while routing used the new one. Both read the set's configuration now.
#[tokio::test]
async fn a_reload_that_changes_only_the_mode_shows_the_new_mode() {
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("watched", "fixture-recorder").action("block")
    ]))
    .await;
    let before = status_json(&supervisor);
    assert_eq!(before[0]["mode"], "enforce");
    assert_eq!(
        supervisor.verdict("t", json!({})).await.outcome(),
        Outcome::Block
    );
    supervisor.rewrite_config(&plugins(&[PluginToml::new("watched", "fixture-recorder")
        .action("block")
        .key("mode = \"shadow\"")]));
    let (code, out, err) = admin(&supervisor, &["reload"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let after = status_json(&supervisor);
    assert_eq!(after[0]["pid"], before[0]["pid"], "the process was kept");
    assert_eq!(after[0]["mode"], "shadow", "{after:?}");
    // Routing agrees: a shadow never blocks.
    assert_eq!(
        supervisor.verdict("t", json!({})).await.outcome(),
        Outcome::Allow
    );
}
