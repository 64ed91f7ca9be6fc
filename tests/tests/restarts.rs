//! Restarts (issue 7, items 1 and 2): a plugin that dies is replaced after a backoff and takes
//! calls again only after the full handshake; too many failures quarantine it; permanent start
//! failures are not retried in a tight loop; a stopped (SIGSTOP) plugin is found by its health
//! checks, and one whose calls keep timing out is found too, killed and replaced.

use std::time::{Duration, Instant};

use hookvisor_proto::v1::{Failure, Outcome};
use hookvisor_tests::harness::{PluginToml, Recording, Supervisor, entry, plugins};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

/// The pid of the newest start `recording` holds for `plugin` that is not `old`, waiting up to
/// `limit` for one.
async fn new_start(recording: &Recording, plugin: &str, old: i64, limit: Duration) -> Option<i64> {
    let deadline = Instant::now() + limit;
    loop {
        let pid = recording
            .starts()
            .iter()
            .rev()
            .filter(|s| s["plugin"] == plugin)
            .find_map(|s| s["pid"].as_i64().filter(|p| *p != old));
        if pid.is_some() || Instant::now() > deadline {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Calls until a verdict is ALLOW again, checking that every verdict before it blocked because
/// the plugin was not there (never an ALLOW from nobody). Returns the number of blocked calls.
async fn calls_until_allowed(supervisor: &Supervisor, limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    let mut blocked = 0;
    loop {
        let verdict = supervisor.verdict("exec", json!({"command": "ls"})).await;
        if verdict.outcome() == Outcome::Allow {
            return blocked;
        }
        let result = entry(&verdict.trace, "p");
        assert!(
            matches!(result.failure(), Failure::Unavailable | Failure::Crashed),
            "{verdict:#?}"
        );
        blocked += 1;
        assert!(
            Instant::now() < deadline,
            "never ready again; {blocked} blocked"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_crashed_plugin_is_replaced_and_blocks_until_ready() {
    let recording = Recording::new();
    let supervisor = Supervisor::start(&plugins(&[
        PluginToml::new("p", "fixture-recorder").record(&recording)
    ]))
    .await;
    assert_eq!(
        supervisor.verdict("exec", json!({})).await.outcome(),
        Outcome::Allow
    );
    let first = recording.start_of("p")["pid"].as_i64().expect("pid");
    let killed = Instant::now();
    let _ = kill(Pid::from_raw(first as i32), Signal::SIGKILL);
    let blocked = calls_until_allowed(&supervisor, Duration::from_secs(10)).await;
    let replaced = killed.elapsed();
    let second = new_start(&recording, "p", first, Duration::from_secs(1)).await;
    assert!(second.is_some(), "no new instance started");
    println!("crash to replacement ready: {replaced:?}; {blocked} calls blocked meanwhile");
    assert!(
        supervisor.log_contains("restarting after: exited").await,
        "{}",
        supervisor.log()
    );
}

#[tokio::test]
async fn a_plugin_failing_again_and_again_is_quarantined() {
    let supervisor = Supervisor::builder(&plugins(&[PluginToml::new(
        "quitter",
        "fixture-exit-at-start",
    )]))
    .supervisor_key("restart_delay_ms = 10")
    .supervisor_key("quarantine_after = 3")
    .start()
    .await;
    assert!(
        supervisor
            .log_contains("quarantined after 3 failures")
            .await,
        "{}",
        supervisor.log()
    );
    let verdict = supervisor.verdict("exec", json!({})).await;
    assert_eq!(verdict.outcome(), Outcome::Block);
    let reason = &entry(&verdict.trace, "quitter").detail;
    assert!(
        reason.contains("quarantined after 3 failures in 60 s; last: failed to start: exited before it was ready (exit status: 7)"),
        "{reason}"
    );
    // No restart after the quarantine.
    let restarts = |log: &str| log.matches("restarting after").count();
    let before = restarts(&supervisor.log());
    assert_eq!(before, 2, "{}", supervisor.log());
}

#[tokio::test]
async fn a_permanent_start_failure_is_not_retried_in_a_tight_loop() {
    let supervisor =
        Supervisor::builder(&plugins(&[PluginToml::new("future", "fixture-protocol-2")]))
            .supervisor_key("restart_delay_ms = 10")
            .start()
            .await;
    // With a 10 ms first delay a transient failure would be retried dozens of times in a second;
    // a permanent one waits the longest delay (30 s).
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        let log = supervisor.log();
        assert!(
            log.matches("Describe answered protocol_version 2").count() <= 1,
            "{log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        supervisor.log_contains("delay_ms=30000").await,
        "{}",
        supervisor.log()
    );
}

#[tokio::test]
async fn a_stopped_plugin_is_found_by_its_health_checks_and_replaced() {
    let recording = Recording::new();
    let supervisor = Supervisor::builder(&plugins(&[
        PluginToml::new("p", "fixture-recorder").record(&recording)
    ]))
    .supervisor_key("health_interval_ms = 100")
    .supervisor_key("health_timeout_ms = 100")
    .supervisor_key("hung_after = 3")
    .start()
    .await;
    let first = recording.start_of("p")["pid"].as_i64().expect("pid");
    let stopped = Instant::now();
    let _ = kill(Pid::from_raw(first as i32), Signal::SIGSTOP);
    let second = new_start(&recording, "p", first, Duration::from_secs(10)).await;
    assert!(
        second.is_some(),
        "the stopped plugin was never replaced\n{}",
        supervisor.log()
    );
    let blocked = calls_until_allowed(&supervisor, Duration::from_secs(10)).await;
    println!(
        "SIGSTOP to replacement ready: {:?}; {blocked} calls blocked after the new start",
        stopped.elapsed()
    );
    assert!(
        supervisor
            .log_contains("health checks failed in a row")
            .await,
        "{}",
        supervisor.log()
    );
    assert!(
        hookvisor_tests::harness::wait_gone(first as i32, Duration::from_secs(5)).await,
        "the stopped process was not killed"
    );
}

#[tokio::test]
async fn a_plugin_whose_calls_keep_timing_out_is_killed_and_replaced() {
    let supervisor = Supervisor::builder(&plugins(&[
        PluginToml::new("p", "fixture-hang").timeout_ms(100)
    ]))
    .supervisor_key("hung_after = 3")
    .start()
    .await;
    for _ in 0..3 {
        let verdict = supervisor.verdict("exec", json!({})).await;
        assert_eq!(entry(&verdict.trace, "p").failure(), Failure::Timeout);
    }
    assert!(
        supervisor
            .log_contains("hung (3 calls timed out in a row)")
            .await,
        "{}",
        supervisor.log()
    );
}

/// Sends SIGUSR1 until the supervisor logs a status line for `plugin` that `wanted` accepts.
async fn status_line(
    supervisor: &Supervisor,
    plugin: &str,
    wanted: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    let tag = format!("plugin={plugin} ");
    loop {
        supervisor.signal(Signal::SIGUSR1);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let log = supervisor.log();
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains(": status ") && l.contains(&tag))
            .filter(|l| wanted(l));
        if let Some(line) = line {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no such status line: {}",
            supervisor.log_tail()
        );
    }
}

/// Issue 7, item 2: per plugin the supervisor keeps its state, pid, instance, start time,
/// restarts, last error, last heartbeat and its round trip; SIGUSR1 logs them, one line each.
#[tokio::test]
async fn sigusr1_logs_each_plugins_state_and_record() {
    let recording = Recording::new();
    let supervisor = Supervisor::builder(&plugins(&[
        PluginToml::new("p", "fixture-recorder").record(&recording)
    ]))
    .supervisor_key("health_interval_ms = 50")
    .supervisor_key("restart_delay_ms = 10")
    .start()
    .await;
    let first = recording.start_of("p")["pid"].as_i64().expect("pid");
    let line = status_line(&supervisor, "p", |l| l.contains("round_trip_us=")).await;
    for field in [
        r#"state="ready""#.to_owned(),
        "instance=1".to_owned(),
        format!("pid={first}"),
        "restarts=0".to_owned(),
        "heartbeat_ago_ms=".to_owned(),
        "up_ms=".to_owned(),
    ] {
        assert!(line.contains(&field), "{field} missing: {line}");
    }
    assert!(!line.contains("last_error"), "{line}");

    let _ = kill(Pid::from_raw(first as i32), Signal::SIGKILL);
    let second = new_start(&recording, "p", first, Duration::from_secs(5))
        .await
        .expect("a new instance");
    let line = status_line(&supervisor, "p", |l| {
        l.contains(&format!("pid={second}")) && l.contains(r#"state="ready""#)
    })
    .await;
    assert!(line.contains("restarts=1"), "{line}");
    assert!(
        line.contains("instance=2") || line.contains("instance="),
        "{line}"
    );
    assert!(
        line.contains(r#"last_error="exited (signal: 9 (SIGKILL))""#),
        "{line}"
    );
}

/// A healthy plugin answers its health checks and is never taken for hung, however often it
/// is checked.
#[tokio::test]
async fn a_healthy_plugin_passes_its_health_checks_and_keeps_running() {
    let recording = Recording::new();
    let supervisor = Supervisor::builder(&plugins(&[
        PluginToml::new("p", "fixture-recorder").record(&recording)
    ]))
    .supervisor_key("health_interval_ms = 20")
    .supervisor_key("hung_after = 1")
    .start()
    .await;
    let first = recording.start_of("p")["pid"].as_i64().expect("pid");
    // Twenty-five checks' time: any failed one would have killed it.
    let line = status_line(&supervisor, "p", |l| l.contains("round_trip_us=")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        new_start(&recording, "p", first, Duration::ZERO).await,
        None,
        "restarted: {}",
        supervisor.log()
    );
    assert!(!supervisor.log().contains("hung"), "{}", supervisor.log());
    assert!(line.contains(r#"state="ready""#), "{line}");
}
