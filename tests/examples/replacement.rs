//! How long a plugin is out after a crash and after a hang, with the default lifecycle settings
//! (issue 7). Not a test: a measurement that prints figures. Run it on the release build:
//!
//! ```sh
//! cargo build --release --workspace --bins
//! cargo run --release -p hookvisor-tests --example replacement
//! ```
//!
//! It starts `hookvisor serve` with one recorder plugin and a steady stream of calls, one every
//! 100 ms, and a second client that asks every 5 ms once the plugin is out, to time its return.
//! Then it kills the plugin with SIGKILL, and later stops it with SIGSTOP, and for each prints
//! the time from the signal to the first allowed call, and how many of the steady calls were
//! blocked meanwhile (every call in between must be blocked: none may be allowed by a plugin
//! that was not ready).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hookvisor_proto::v1::Outcome;
use hookvisor_tests::harness::{PluginToml, Recording, Supervisor, plugins, tool_call};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

/// The newest recorded start's pid, waiting for one that is not `old`.
async fn plugin_pid(recording: &Recording, old: Option<i64>) -> i64 {
    loop {
        if let Some(pid) = recording
            .starts()
            .last()
            .and_then(|s| s["pid"].as_i64())
            .filter(|p| Some(*p) != old)
        {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn allowed(
    client: &mut hookvisor_proto::v1::hooks_client::HooksClient<tonic::transport::Channel>,
) -> bool {
    client
        .before_tool_call(tool_call("exec", json!({"command": "ls"})))
        .await
        .is_ok_and(|v| v.into_inner().outcome() == Outcome::Allow)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let recording = Recording::new();
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("p", "fixture-recorder").record(&recording)
    ]))
    .await;
    let mut pid = plugin_pid(&recording, None).await;

    let stop = Arc::new(AtomicBool::new(false));
    let blocked = Arc::new(AtomicUsize::new(0));
    let stream = {
        let mut client = supervisor.client().await;
        let (stop, blocked) = (stop.clone(), blocked.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                if !allowed(&mut client).await {
                    blocked.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let mut poller = supervisor.client().await;
    for signal in [Signal::SIGKILL, Signal::SIGSTOP] {
        let before = blocked.load(Ordering::Relaxed);
        let started = Instant::now();
        kill(Pid::from_raw(pid as i32), signal).expect("signal the plugin");
        // Wait until the plugin is seen out (a call blocked), then until one is allowed again.
        while allowed(&mut poller).await {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        while !allowed(&mut poller).await {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let out = started.elapsed();
        let new = plugin_pid(&recording, Some(pid)).await;
        println!(
            "{:<8} replacement answering after {:>8.2?}; steady calls blocked meanwhile: {}; pid {pid} -> {new}",
            format!("{signal:?}"),
            out,
            blocked.load(Ordering::Relaxed) - before
        );
        pid = new;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = stream.await;
}
