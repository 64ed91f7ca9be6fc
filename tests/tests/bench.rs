//! `hookvisor bench` runs end to end and reports every figure the performance issue names. The
//! figures themselves are not asserted (a test on a shared 2-core machine cannot hold a timer):
//! only that each was measured, and the outcomes the benchmark checks on its way (every call
//! through a ready supervisor allowed, every call to a plugin that is down or was killed
//! blocked) held, or it would have failed.

use std::path::PathBuf;
use std::process::Command;

use hookvisor_tests::harness::{TestDir, hookvisor, repo_root};
use serde_json::Value;

fn bench(args: &[&str]) -> Value {
    let output = Command::new(hookvisor())
        .args(["bench", "--quick", "--json"])
        .args(args)
        .output()
        .expect("running hookvisor bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn positive(figures: &Value, key: &str) -> f64 {
    let value = figures[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing: {figures}"));
    assert!(value > 0.0, "{key} = {value}: {figures}");
    value
}

#[test]
fn bench_reports_every_figure_of_one_run() {
    let figures = bench(&["--plugins", "1,4,8", "--goplugin", "/nonexistent"]);
    for key in [
        "direct_p50_us",
        "direct_p99_us",
        "direct_rps",
        "direct_cpu_us_per_call",
        "n1_p50_us",
        "n4_p50_us",
        "n4_p99_us",
        "n8_p50_us",
        "n4_rps",
        "n4_rps_c64",
        "n4_cpu_us_per_verdict",
        "ratio_p50_n4",
        "ratio_rps_n4",
        "cpu_ratio_n4",
        "failfast_p99_us",
        "crash_to_block_ms",
        "rss_mib_n8",
        "sandbox_on_n1_p50_us",
        "sandbox_off_n1_p50_us",
        "ratio_sandbox_n1_p50",
        "spaced_direct_p50_us",
        "spaced_direct_p99_us",
        "spaced_n1_p50_us",
        "spaced_n4_p50_us",
        "ratio_spaced_n1",
        "ratio_spaced_n4",
        "remote_p50_us",
        "remote_local_p50_us",
        "ratio_remote_p50",
    ] {
        positive(&figures, key);
    }
    for state in ["on", "off"] {
        assert!(
            figures["sandbox_spawn_ready_ms"][state]
                .as_f64()
                .unwrap_or(0.0)
                > 0.0,
            "{figures}"
        );
    }
    assert!(
        figures["spawn_ready_ms"]["rust"].as_f64().unwrap_or(0.0) > 0.0,
        "{figures}"
    );
    // Ratios come from the figures of the same run.
    let ratio = figures["n4_p50_us"].as_f64().unwrap() / figures["direct_p50_us"].as_f64().unwrap();
    assert!(
        (figures["ratio_p50_n4"].as_f64().unwrap() - ratio).abs() < 0.01,
        "{figures}"
    );
    // No go-plugin here: said, not invented.
    assert!(figures["goplugin_p50_us"].is_null(), "{figures}");
    assert!(
        figures["goplugin_missing"]
            .as_str()
            .unwrap_or_default()
            .contains("build.sh"),
        "{figures}"
    );
}

/// The go-plugin peer (`bench/goplugin`, built from the Go module proxy) runs in the same
/// benchmark, alternating with hookvisor's one-plugin path.
#[test]
fn bench_compares_with_go_plugin() {
    let out = TestDir::new();
    let status = Command::new(repo_root().join("bench/goplugin/build.sh"))
        .arg(out.path())
        .status()
        .expect("bench/goplugin/build.sh (needs Go)");
    assert!(status.success());
    let dir: PathBuf = out.path().to_path_buf();
    let figures = bench(&["--plugins", "1", "--goplugin", dir.to_str().unwrap()]);
    positive(&figures, "goplugin_p50_us");
    positive(&figures, "goplugin_p99_us");
    positive(&figures, "n1_p50_us");
    positive(&figures, "ratio_n1_goplugin_p50");
}

/// Each SDK's trivial plugin against a bare server on its own gRPC library (issue 21): every
/// language measured, every ratio from figures of the same run, nothing skipped.
#[test]
fn bench_compares_each_sdk_with_its_bare_server() {
    let status = Command::new(repo_root().join("bench/bare/go/build.sh"))
        .arg(repo_root().join("target/go"))
        .status()
        .expect("bench/bare/go/build.sh (needs Go)");
    assert!(status.success());
    let figures = bench(&["--sdks-only"]);
    assert!(figures["sdks_missing"].is_null(), "{figures}");
    for language in ["rust", "go", "python", "typescript"] {
        for figure in ["p50", "p99"] {
            let sdk = positive(&figures, &format!("sdk_{language}_{figure}_us"));
            let bare = positive(&figures, &format!("bare_{language}_{figure}_us"));
            let ratio = positive(&figures, &format!("sdk_ratio_{language}_{figure}"));
            assert!(
                (ratio - sdk / bare).abs() < 0.01,
                "{language} {figure}: {figures}"
            );
        }
    }
}

/// The bare servers refuse to start without the socket a spawned plugin is given, saying so.
#[test]
fn bare_servers_refuse_a_missing_socket() {
    let status = Command::new(repo_root().join("bench/bare/go/build.sh"))
        .arg(repo_root().join("target/go"))
        .status()
        .expect("bench/bare/go/build.sh (needs Go)");
    assert!(status.success());
    let go = Command::new(repo_root().join("target/go/bare-grpc-go"))
        .arg("default")
        .env_remove("HOOKVISOR_PLUGIN_SOCKET")
        .output()
        .expect("running bare-grpc-go");
    assert_eq!(go.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&go.stderr).contains("usage: bare-grpc-go"));
    let dir = TestDir::new();
    let go = Command::new(repo_root().join("target/go/bare-grpc-go"))
        .arg("fastest")
        .env("HOOKVISOR_PLUGIN_SOCKET", dir.path().join("p.sock"))
        .output()
        .expect("running bare-grpc-go");
    assert_eq!(go.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&go.stderr).contains("unknown mode \"fastest\""));
    let tonic = hookvisor_tests::harness::binary("bare-tonic");
    let bare = Command::new(&tonic)
        .arg("current")
        .env_remove("HOOKVISOR_PLUGIN_SOCKET")
        .output()
        .expect("running bare-tonic");
    assert_eq!(bare.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bare.stderr).contains("usage: bare-tonic"));
    let bare = Command::new(&tonic)
        .arg("fastest")
        .env("HOOKVISOR_PLUGIN_SOCKET", dir.path().join("t.sock"))
        .output()
        .expect("running bare-tonic");
    assert_eq!(bare.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bare.stderr).contains("unknown mode \"fastest\""));
    let node = Command::new(hookvisor_tests::languages::node())
        .arg(repo_root().join("bench/bare/node/bare.js"))
        .env("HOOKVISOR_PLUGIN_SOCKET", "relative.sock")
        .output()
        .expect("running bare.js");
    assert_eq!(node.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&node.stderr).contains("must be an absolute socket path"));
}

/// `--remote` alone: the same policy over TCP with mutual TLS and spawned, in one run, with the
/// difference and the ratio taken from those figures.
#[test]
fn bench_compares_a_remote_plugin_with_a_local_one() {
    let figures = bench(&["--remote"]);
    let remote = positive(&figures, "remote_p50_us");
    let local = positive(&figures, "remote_local_p50_us");
    positive(&figures, "remote_p99_us");
    positive(&figures, "remote_local_p99_us");
    let added = figures["remote_added_p50_us"]
        .as_f64()
        .unwrap_or_else(|| panic!("remote_added_p50_us missing: {figures}"));
    assert!((added - (remote - local)).abs() < 0.02, "{figures}");
    let ratio = positive(&figures, "ratio_remote_p50");
    assert!((ratio - remote / local).abs() < 0.01, "{figures}");
}

/// `--tracing` alone: N = 4 with tracing off and on, spans reaching the bench's OTLP sink, and
/// the added CPU taken from the two figures.
#[test]
fn bench_measures_what_tracing_costs() {
    let figures = bench(&["--tracing"]);
    let off = positive(&figures, "tracing_cpu_us_per_verdict_off");
    let on = positive(&figures, "tracing_cpu_us_per_verdict_on");
    positive(&figures, "tracing_p50_us_off");
    positive(&figures, "tracing_p50_us_on");
    positive(&figures, "tracing_exports");
    let added = figures["tracing_cpu_us_per_verdict_added"]
        .as_f64()
        .unwrap_or_else(|| panic!("tracing_cpu_us_per_verdict_added missing: {figures}"));
    assert!((added - (on - off)).abs() < 0.02, "{figures}");
}
