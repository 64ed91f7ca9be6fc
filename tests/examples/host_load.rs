//! Probe latency while other hosts send the largest params (issue 5, item 7). Not a test: a
//! measurement that prints figures. Run it on the release build:
//!
//! ```sh
//! cargo build --release --workspace --bins
//! cargo run --release -p hookvisor-tests --example host_load
//! ```
//!
//! It starts `hookvisor serve` with one recorder plugin, measures 500 sequential small calls
//! idle, then again while four clients loop (a) the worst params the limits accept (512 KiB of
//! pretty-printed JSON, 4000 escaped strings) and (b) 3.6 MB of params with 330,000 keys (refused
//! at the host decode limit). It prints p50 and p99 of each.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hookvisor_tests::harness::{PluginToml, Supervisor, plugins, tool_call, tool_call_raw};
use serde_json::json;

fn percentile(mut samples: Vec<Duration>, p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p) as usize]
}

async fn probe(supervisor: &Supervisor, n: usize) -> Vec<Duration> {
    let mut client = supervisor.client().await;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        client
            .before_tool_call(tool_call("exec", json!({"command": "ls"})))
            .await
            .expect("a verdict");
        out.push(started.elapsed());
    }
    out
}

fn report(label: &str, samples: Vec<Duration>) {
    println!(
        "{label:<40} p50 {:>10.3?}  p99 {:>10.3?}",
        percentile(samples.clone(), 0.5),
        percentile(samples, 0.99)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let supervisor =
        Supervisor::start(&plugins(&[PluginToml::new("probe", "fixture-recorder")])).await;
    probe(&supervisor, 100).await;
    report("idle", probe(&supervisor, 500).await);

    let item = format!("\"{}\"", "\\u00e9".repeat(20));
    let accepted = format!(
        "{{\n  \"a\": [\n    {}\n  ]\n}}",
        vec![item; 4000].join(",\n    ")
    );
    let refused = format!(
        "{{{}}}",
        (0..330_000)
            .map(|i| format!("\"k{i}\":1"))
            .collect::<Vec<_>>()
            .join(",")
    );
    for (label, params) in [
        ("4 hosts looping 512 KiB accepted params", accepted),
        ("4 hosts looping 3.6 MB refused params", refused),
    ] {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let mut load = Vec::new();
        for _ in 0..4 {
            let mut client = supervisor.client().await;
            let (params, stop, sent) = (params.clone(), stop.clone(), sent.clone());
            load.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let _ = client
                        .before_tool_call(tool_call_raw("exec", &params))
                        .await;
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        while sent.load(Ordering::Relaxed) < 8 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let samples = probe(&supervisor, 500).await;
        stop.store(true, Ordering::Relaxed);
        for task in load {
            let _ = task.await;
        }
        report(label, samples);
        println!("{:<40} {} loaded calls", "", sent.load(Ordering::Relaxed));
    }
}
