//! The chaos soak (issue 18): a million verdicts while plugins are killed, stopped, slow,
//! answering garbage, reloaded and restarted, and the one question that matters asked of every
//! verdict: did anything get through that should not have? Not a test (it takes minutes); run
//! it with `make soak` (release build), `SOAK_VERDICTS` to change the count.
//!
//! The plugins: `gate`, a trusted policy that allows; `plain`, a hook that allows; `slowpoke`,
//! a hook for the tool `slow` that answers after its deadline; `garbage`, a hook for the tool
//! `garbage` that answers params that break the contract. Sixteen clients call without pause,
//! one call in ten for `slow` and one in ten for `garbage`. Every 100 ms a chaos step picks one
//! of: SIGKILL a plugin, SIGSTOP one (SIGCONT 400 ms later), reload the configuration, restart a
//! plugin through `Admin`.
//!
//! A verdict is a fail-open when it allows `slow` or `garbage`, or allows `read` without both
//! `gate` and `plain` having answered allow without failure. At the end it prints the verdicts,
//! the fail-opens (must be 0), the plugin processes left after the supervisor stopped (0), the
//! supervisor's descriptors at the start and at the end (both taken at a quiet moment: every
//! plugin ready, no call in flight) and its RSS after warm-up and at the end (at most 1.5×
//! apart), and exits non-zero when one of those does not hold.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hookvisor_proto::v1::admin_client::AdminClient;
use hookvisor_proto::v1::hooks_client::HooksClient;
use hookvisor_proto::v1::{
    Failure, ListPluginsRequest, Outcome, RestartPluginRequest, ToolCallVerdict,
};
use hookvisor_tests::harness::{PluginToml, Supervisor, connect, plugins, process_gone, tool_call};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

const CLIENTS: usize = 16;
const WARM_UP: u64 = 20_000;
const NAMES: [&str; 4] = ["gate", "plain", "slowpoke", "garbage"];

fn body(plain_priority: i32) -> String {
    plugins(&[
        PluginToml::new("gate", "fixture-recorder")
            .policy()
            .action("allow")
            .timeout_ms(200),
        PluginToml::new("plain", "fixture-recorder")
            .action("allow")
            .priority(plain_priority)
            .timeout_ms(200),
        PluginToml::new("slowpoke", "fixture-slow")
            .env("FIXTURE_TOOLS", "slow")
            .env("FIXTURE_DELAY_MS", "2000")
            .timeout_ms(50),
        PluginToml::new("garbage", "fixture-bad-params")
            .env("FIXTURE_TOOLS", "garbage")
            .env("FIXTURE_BAD", "not-json")
            .timeout_ms(200),
    ])
}

/// A verdict that lets through what it should not have.
fn fails_open(tool: &str, verdict: &ToolCallVerdict) -> bool {
    if verdict.outcome() != Outcome::Allow {
        return false;
    }
    if tool != "read" {
        return true;
    }
    let answered = |name: &str| {
        verdict.trace.iter().any(|r| {
            r.plugin == name && r.outcome() == Outcome::Allow && r.failure() == Failure::None
        })
    };
    !(answered("gate") && answered("plain"))
}

/// A cheap pseudo-random sequence (xorshift), seeded by the clock.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn fds(pid: i32) -> usize {
    fd_targets(pid).len()
}

/// What each of `pid`'s descriptors is (`socket:[N]`, `pipe:[N]`, a path).
fn fd_targets(pid: i32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.flatten()
                .map(|e| {
                    std::fs::read_link(e.path())
                        .map(|t| t.display().to_string())
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The kinds of descriptors (`socket`, `pipe`, `anon_inode:[eventfd]`, …) and how many of each.
fn fd_kinds(pid: i32) -> std::collections::BTreeMap<String, usize> {
    let mut kinds = std::collections::BTreeMap::new();
    for target in fd_targets(pid) {
        let kind = target.split(":[").next().unwrap_or_default().to_owned();
        *kinds.entry(kind).or_insert(0) += 1;
    }
    kinds
}

fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Every plugin's pid while it is ready (0 otherwise), by name.
async fn pids(admin: &mut AdminClient<tonic::transport::Channel>) -> Vec<(String, i32, String)> {
    admin
        .list_plugins(ListPluginsRequest::default())
        .await
        .map(|r| {
            r.into_inner()
                .plugins
                .into_iter()
                .map(|p| (p.name, p.pid, p.state))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits (at most `limit`) until every plugin is ready.
async fn all_ready(admin: &mut AdminClient<tonic::transport::Channel>, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let now = pids(admin).await;
        if now.len() == NAMES.len() && now.iter().all(|(_, _, state)| state == "ready") {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let target: u64 = std::env::var("SOAK_VERDICTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let mut supervisor = Supervisor::builder(&body(0))
        .supervisor_key("restart_delay_ms = 10")
        .supervisor_key("restart_delay_max_ms = 500")
        .supervisor_key("quarantine_after = 65536")
        .supervisor_key("health_interval_ms = 200")
        .supervisor_key("max_calls_in_flight = 256")
        .start()
        .await;
    let pid = supervisor.pid();
    let socket = supervisor.socket().to_path_buf();
    let channel = connect(&socket).await.expect("the host socket");
    let mut admin = AdminClient::new(channel.clone());
    assert!(
        all_ready(&mut admin, Duration::from_secs(20)).await,
        "plugins not ready"
    );
    // Descriptors are compared between two quiet moments: every plugin ready, no call in
    // flight (under load they vary with the calls and connections of the moment).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (quiet_fds, quiet_kinds) = (fds(pid), fd_kinds(pid));

    let verdicts = Arc::new(AtomicU64::new(0));
    let allows = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let fail_opens = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut load = Vec::new();
    for client in 0..CLIENTS {
        let (verdicts, allows, errors, fail_opens, done) = (
            verdicts.clone(),
            allows.clone(),
            errors.clone(),
            fail_opens.clone(),
            done.clone(),
        );
        let mut hooks = HooksClient::new(channel.clone());
        load.push(tokio::spawn(async move {
            let mut i = client as u64;
            while !done.load(Ordering::Relaxed) {
                i += 1;
                let tool = match i % 10 {
                    0 => "slow",
                    1 => "garbage",
                    _ => "read",
                };
                match hooks
                    .before_tool_call(tool_call(tool, json!({"i": i})))
                    .await
                {
                    Ok(verdict) => {
                        let verdict = verdict.into_inner();
                        if verdict.outcome() == Outcome::Allow {
                            allows.fetch_add(1, Ordering::Relaxed);
                        }
                        if fails_open(tool, &verdict) {
                            fail_opens.fetch_add(1, Ordering::Relaxed);
                            eprintln!("FAIL-OPEN on {tool}: {verdict:?}");
                        }
                        verdicts.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }

    // Warm-up, then the figures to compare against at the end.
    while verdicts.load(Ordering::Relaxed) < WARM_UP {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let warm_rss = rss_kib(pid);

    let seen: Arc<Mutex<HashSet<i32>>> = Arc::default();
    let mut dice = Dice(started.elapsed().as_nanos() as u64 ^ u64::from(std::process::id()) | 1);
    let (mut kills, mut stops, mut reloads, mut restarts) = (0, 0, 0, 0);
    let mut last_report = Instant::now();
    while verdicts.load(Ordering::Relaxed) < target {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = pids(&mut admin).await;
        if let Ok(mut seen) = seen.lock() {
            seen.extend(now.iter().map(|(_, p, _)| *p).filter(|p| *p > 0));
        }
        let live: Vec<&(String, i32, String)> = now.iter().filter(|(_, p, _)| *p > 0).collect();
        match dice.roll(4) {
            0 if !live.is_empty() => {
                let (_, victim, _) = live[dice.roll(live.len() as u64) as usize];
                let _ = kill(Pid::from_raw(*victim), Signal::SIGKILL);
                kills += 1;
            }
            1 if !live.is_empty() => {
                let victim = Pid::from_raw(live[dice.roll(live.len() as u64) as usize].1);
                let _ = kill(victim, Signal::SIGSTOP);
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(400)).await;
                    let _ = kill(victim, Signal::SIGCONT);
                });
                stops += 1;
            }
            2 => {
                supervisor.rewrite_config(&body(reloads % 2));
                supervisor.signal(Signal::SIGHUP);
                reloads += 1;
            }
            _ => {
                let name = NAMES[dice.roll(NAMES.len() as u64) as usize].to_owned();
                let _ = admin.restart_plugin(RestartPluginRequest { name }).await;
                restarts += 1;
            }
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            last_report = Instant::now();
            eprintln!(
                "soak: {} verdicts, {} fail-opens, {:.0} verdicts/s",
                verdicts.load(Ordering::Relaxed),
                fail_opens.load(Ordering::Relaxed),
                verdicts.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    done.store(true, Ordering::Relaxed);
    for task in load {
        let _ = task.await;
    }
    let elapsed = started.elapsed();
    // Every stopped plugin continued, every plugin ready again: then the same descriptors.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let settled = all_ready(&mut admin, Duration::from_secs(30)).await;
    let last = pids(&mut admin).await;
    if let Ok(mut seen) = seen.lock() {
        seen.extend(last.iter().map(|(_, p, _)| *p).filter(|p| *p > 0));
    }
    // Connections of replaced instances close as their tasks end: give them a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    while fds(pid) > quiet_fds && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (end_fds, end_rss, end_kinds) = (fds(pid), rss_kib(pid), fd_kinds(pid));
    drop(admin);
    drop(channel);
    let status = supervisor.stop().await;
    let seen: Vec<i32> = seen
        .lock()
        .map(|s| s.iter().copied().collect())
        .unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut orphans: Vec<i32> = seen.clone();
    while !orphans.is_empty() && Instant::now() < deadline {
        orphans.retain(|p| !process_gone(*p));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let verdicts = verdicts.load(Ordering::Relaxed);
    let fail_opens = fail_opens.load(Ordering::Relaxed);
    let leaked = end_fds.saturating_sub(quiet_fds);
    let rss_ratio = end_rss as f64 / warm_rss.max(1) as f64;
    println!(
        "{}",
        json!({
            "verdicts": verdicts,
            "allows": allows.load(Ordering::Relaxed),
            "errors": errors.load(Ordering::Relaxed),
            "fail_opens": fail_opens,
            "seconds": elapsed.as_secs(),
            "verdicts_per_second": (verdicts as f64 / elapsed.as_secs_f64()).round(),
            "chaos": {"sigkill": kills, "sigstop": stops, "reloads": reloads, "restarts": restarts},
            "plugin_pids_seen": seen.len(),
            "orphans": orphans.len(),
            "fds_at_start": quiet_fds,
            "fds_at_end": end_fds,
            "fd_kinds_at_start": quiet_kinds,
            "fd_kinds_at_end": end_kinds,
            "leaked_fds": leaked,
            "settled": settled,
            "rss_kib_after_warm_up": warm_rss,
            "rss_kib_at_end": end_rss,
            "rss_ratio": (rss_ratio * 100.0).round() / 100.0,
            "supervisor_exit": status.to_string(),
        })
    );
    let held = fail_opens == 0 && orphans.is_empty() && leaked == 0 && rss_ratio <= 1.5;
    std::process::exit(if held { 0 } else { 1 });
}
