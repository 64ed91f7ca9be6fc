//! Reload on SIGHUP (issue 7, item 4): under continuous traffic, plugins are added, removed and
//! changed with no failed call; an unchanged plugin keeps its process; an invalid configuration
//! keeps the running one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hookvisor_proto::v1::Outcome;
use hookvisor_tests::harness::{PluginToml, Recording, Supervisor, plugins, tool_call};
use nix::sys::signal::Signal;
use serde_json::json;

/// Calls `BeforeToolCall` in a loop until stopped; counts calls and anything but ALLOW.
struct Traffic {
    stop: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
    failed: Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Traffic {
    async fn start(supervisor: &Supervisor) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut client = supervisor.client().await;
        let task = tokio::spawn({
            let (stop, calls, failed) = (stop.clone(), calls.clone(), failed.clone());
            async move {
                while !stop.load(Ordering::Relaxed) {
                    let answer = client
                        .before_tool_call(tool_call("exec", json!({"command": "ls"})))
                        .await;
                    calls.fetch_add(1, Ordering::Relaxed);
                    match answer {
                        Ok(v) if v.get_ref().outcome() == Outcome::Allow => {}
                        other => {
                            if let Ok(mut f) = failed.lock() {
                                f.push(format!("{other:?}"));
                            }
                        }
                    }
                }
            }
        });
        Traffic {
            stop,
            calls,
            failed,
            task,
        }
    }

    async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let failed = self.failed.lock().map(|f| f.clone()).unwrap_or_default();
        (self.calls.load(Ordering::Relaxed), failed)
    }
}

fn pids_of(recording: &Recording, plugin: &str) -> Vec<i64> {
    recording
        .starts()
        .iter()
        .filter(|s| s["plugin"] == plugin)
        .filter_map(|s| s["pid"].as_i64())
        .collect()
}

async fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn reload_adds_removes_and_changes_plugins_without_a_failed_call() {
    let recording = Recording::new();
    let body = |changed: &str, with_gone: bool, with_added: bool| {
        let mut list = vec![
            PluginToml::new("keep", "fixture-recorder").record(&recording),
            PluginToml::new("changed", "fixture-recorder")
                .env("VERSION", changed)
                .record(&recording),
        ];
        if with_gone {
            list.push(PluginToml::new("gone", "fixture-recorder").record(&recording));
        }
        if with_added {
            list.push(PluginToml::new("added", "fixture-recorder").record(&recording));
        }
        plugins(&list)
    };
    let supervisor = Supervisor::start(&body("1", true, false)).await;
    let keep = pids_of(&recording, "keep");
    let changed = pids_of(&recording, "changed");
    let gone = pids_of(&recording, "gone");
    assert_eq!((keep.len(), changed.len(), gone.len()), (1, 1, 1));

    let traffic = Traffic::start(&supervisor).await;
    wait_for("traffic", Duration::from_secs(5), || {
        traffic.calls.load(Ordering::Relaxed) > 20
    })
    .await;
    supervisor.rewrite_config(&body("2", false, true));
    supervisor.signal(Signal::SIGHUP);
    assert!(
        supervisor.log_contains("reloaded").await,
        "{}",
        supervisor.log()
    );
    let before = recording.calls_of("added").len();
    wait_for(
        "calls reaching the added plugin",
        Duration::from_secs(5),
        || recording.calls_of("added").len() > before + 5,
    )
    .await;
    let (calls, failed) = traffic.finish().await;
    assert!(
        failed.is_empty(),
        "{} of {calls} calls failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
    println!("reload under traffic: {calls} calls, none failed");

    assert_eq!(
        pids_of(&recording, "keep"),
        keep,
        "the unchanged plugin kept its process"
    );
    let changed_now = pids_of(&recording, "changed");
    assert_eq!(changed_now.len(), 2, "the changed plugin was started anew");
    assert!(
        hookvisor_tests::harness::wait_gone(changed[0] as i32, Duration::from_secs(5)).await,
        "the replaced instance was stopped"
    );
    assert!(
        hookvisor_tests::harness::wait_gone(gone[0] as i32, Duration::from_secs(5)).await,
        "the removed plugin was stopped"
    );
}

#[tokio::test]
async fn an_invalid_reload_keeps_the_running_configuration() {
    let recording = Recording::new();
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("keep", "fixture-recorder").record(&recording)
    ]))
    .await;
    let keep = pids_of(&recording, "keep");
    supervisor.rewrite_config("[[plugin]]\nname = \"broken\"\ntrused = true\n");
    supervisor.signal(Signal::SIGHUP);
    assert!(
        supervisor.log_contains("reload refused").await,
        "{}",
        supervisor.log()
    );
    let verdict = supervisor.verdict("exec", json!({})).await;
    assert_eq!(verdict.outcome(), Outcome::Allow);
    assert_eq!(verdict.trace.len(), 1);
    assert_eq!(verdict.trace[0].plugin, "keep");
    assert_eq!(pids_of(&recording, "keep"), keep);
}
