//! Contract §1: the host may be written in any language. A real Python grpcio client with
//! default options (it sends the socket path as `:authority`) calls the supervisor.
//!
//! The interpreter is `HOOKVISOR_TEST_PYTHON`, else `<repo>/.venv/bin/python`, and needs
//! `tests/python/requirements.txt`. This test never skips: without Python it fails and says how
//! to set it up.

use std::path::PathBuf;
use std::process::Command;

use hookvisor_tests::harness::{PluginToml, Supervisor, TestDir, json, plugins, repo_root};
use serde_json::json;

const SETUP: &str = "python3 -m venv .venv && .venv/bin/pip install -r tests/python/requirements.txt \
                     (the README's test command), or set HOOKVISOR_TEST_PYTHON";

fn python() -> PathBuf {
    let python = std::env::var_os("HOOKVISOR_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    let works = Command::new(&python)
        .args(["-c", "import grpc, grpc_tools"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        works,
        "{} cannot import grpc and grpc_tools; run: {SETUP}",
        python.display()
    );
    python
}

fn generate_stubs(python: &PathBuf, out: &TestDir) {
    let proto = repo_root().join("proto");
    let output = Command::new(python)
        .args(["-m", "grpc_tools.protoc"])
        .arg(format!("-I{}", proto.display()))
        .arg(format!("--python_out={}", out.path().display()))
        .arg(format!("--grpc_python_out={}", out.path().display()))
        .arg("hookvisor/v1/hookvisor.proto")
        .output()
        .expect("running grpc_tools.protoc");
    assert!(
        output.status.success(),
        "grpc_tools.protoc failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn python_grpcio_host_with_default_options_gets_a_verdict() {
    let python = python();
    let stubs = TestDir::new();
    generate_stubs(&python, &stubs);
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("guard", "fixture-recorder")
            .policy()
            .action("block-if:command=rm -rf /"),
        PluginToml::new("tagger", "fixture-recorder").action("merge:{\"tagged\":true}"),
    ]))
    .await;
    let script = repo_root().join("tests/python/host_client.py");
    let run = |params: serde_json::Value| {
        let output = Command::new(&python)
            .arg(&script)
            .arg(stubs.path())
            .arg(supervisor.socket())
            .arg("exec")
            .arg(params.to_string())
            .output()
            .expect("running host_client.py");
        assert!(
            output.status.success(),
            "host_client.py failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        json(String::from_utf8_lossy(&output.stdout).trim())
    };

    let allowed = run(json!({"command": "ls"}));
    assert_eq!(allowed["outcome"], "OUTCOME_ALLOW", "{allowed}");
    assert_eq!(allowed["params_changed"], true);
    assert_eq!(
        json(allowed["params_json"].as_str().unwrap()),
        json!({"command": "ls", "tagged": true})
    );

    let blocked = run(json!({"command": "rm -rf /"}));
    assert_eq!(blocked["outcome"], "OUTCOME_BLOCK", "{blocked}");
    assert_eq!(blocked["block_kind"], "BLOCK_KIND_POLICY");
    assert_eq!(blocked["decided_by"], "guard");
    assert_eq!(blocked["block_reason"], "command = rm -rf / is forbidden");
}
