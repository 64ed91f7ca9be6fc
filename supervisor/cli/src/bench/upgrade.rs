//! `hookvisor bench --upgrade`: what an upgrade in place costs the hosts, against a plain
//! restart measured in the same run. Callers send `BeforeToolCall` at half the measured capacity
//! through a supervisor with a policy and a hook (allow-all) while it is upgraded
//! (`Admin/Upgrade`, the same binary) or restarted (SIGTERM, then `serve` again on the same
//! socket), rounds alternating. Per round: the longest wait for a verdict around the event
//! (p100), the longest gap between two answers, and the calls refused (any error); for an
//! upgrade also the new image's own account of its pause (`drain`: the old image's calls
//! finishing; `takeover`: from `execve` to its plugins checked again). Medians of the rounds are
//! the figures.

#[allow(clippy::wildcard_imports)]
use super::*;

use hookvisor_proto::v1::UpgradeRequest;
use hookvisor_proto::v1::admin_client::AdminClient;

/// Callers of the host.
const CALLERS: usize = 4;
/// Traffic before and after each event that counts in its round.
const MARGIN: Duration = Duration::from_millis(300);

/// One call: when it was sent, when it ended, whether it got a verdict.
#[derive(Clone, Copy)]
struct Call {
    sent: Instant,
    ended: Instant,
    ok: bool,
}

/// Callers at `rate` calls a second in all (`None`: as fast as they can), recording each call.
struct Traffic {
    stop: Arc<AtomicBool>,
    calls: Arc<std::sync::Mutex<Vec<Call>>>,
    resent: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Traffic {
    async fn start(socket: &Path, request: &ToolCallRequest, rate: Option<u64>) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
        let resent = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..CALLERS {
            let (stop, calls, resent) = (stop.clone(), calls.clone(), resent.clone());
            let (socket, request) = (socket.to_path_buf(), request.clone());
            tasks.push(tokio::spawn(async move {
                let mut client = None;
                let mut tick = rate.map(|rate| {
                    let every = Duration::from_micros(1_000_000 * CALLERS as u64 / rate.max(1));
                    let mut tick = tokio::time::interval(every);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    tick
                });
                while !stop.load(Ordering::Relaxed) {
                    if let Some(tick) = tick.as_mut() {
                        tick.tick().await;
                    }
                    let sent = Instant::now();
                    let ok = loop {
                        if client.is_none() {
                            client = connect_channel(&socket).await.ok().map(HooksClient::new);
                        }
                        let Some(c) = client.as_mut() else {
                            break false;
                        };
                        match c.before_tool_call(request.clone()).await {
                            Ok(_) => break true,
                            // Never sent (gRPC's transparent retry sends it again).
                            Err(status) if unsent(&status) => {
                                resent.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(_) => {
                                client = None;
                                break false;
                            }
                        }
                    };
                    let ended = Instant::now();
                    if let Ok(mut calls) = calls.lock() {
                        calls.push(Call { sent, ended, ok });
                    }
                    if !ok {
                        // A refused call: the host tries again shortly.
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }));
        }
        Traffic {
            stop,
            calls,
            resent,
            tasks,
        }
    }

    async fn finish(self) -> (Vec<Call>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            let _ = task.await;
        }
        let calls = self.calls.lock().map(|c| c.clone()).unwrap_or_default();
        (calls, self.resent.load(Ordering::Relaxed))
    }
}

/// Whether a call failed before it was sent (see tests/tests/upgrade.rs): cancelled on this
/// side (hyper cancels what was queued for a connection that closed), or refused by a GOAWAY
/// (NO_ERROR) as a stream the server did not process.
fn unsent(status: &tonic::Status) -> bool {
    let mut cause = std::error::Error::source(status);
    if cause.is_some() && status.code() == tonic::Code::Cancelled {
        return true;
    }
    while let Some(error) = cause {
        if let Some(h2) = error.downcast_ref::<h2::Error>() {
            return h2.is_go_away() && h2.is_remote() && h2.reason() == Some(h2::Reason::NO_ERROR);
        }
        cause = error.source();
    }
    false
}

/// What one round measured around its event (from `from` to `to`).
struct Round {
    p100: Duration,
    gap: Duration,
    refused: usize,
}

fn round(calls: &[Call], from: Instant, to: Instant) -> Round {
    let window: Vec<&Call> = calls
        .iter()
        .filter(|c| c.ended >= from && c.sent <= to)
        .collect();
    let p100 = window
        .iter()
        .map(|c| c.ended - c.sent)
        .max()
        .unwrap_or_default();
    // From the last answer before the event on: the gap a host sees.
    let since = from.checked_sub(MARGIN).unwrap_or(from);
    let mut answers: Vec<Instant> = calls
        .iter()
        .filter(|c| c.ok && c.ended >= since && c.sent <= to)
        .map(|c| c.ended)
        .collect();
    answers.sort();

    let gap = answers
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    Round {
        p100,
        gap,
        refused: window.iter().filter(|c| !c.ok).count(),
    }
}

/// Upgrades in place, then waits for the new image to say it serves; returns how long the
/// server did not accept, in milliseconds: while the old image's calls finished, and from its
/// `execve` to the new image's plugins checked again (from the new image's report).
async fn upgrade_once(socket: &Path) -> anyhow::Result<(u64, u64)> {
    let mut admin = AdminClient::new(connect_channel(socket).await?);
    let begun = admin
        .upgrade(UpgradeRequest { status_of: 0 })
        .await
        .map_err(|s| anyhow::anyhow!("upgrade refused: {}", s.message()))?
        .into_inner();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let Ok(channel) = connect_channel(socket).await else {
            continue;
        };
        let answer = AdminClient::new(channel)
            .upgrade(UpgradeRequest {
                status_of: begun.id,
            })
            .await;
        match answer.map(tonic::Response::into_inner) {
            Ok(a) if a.state == "done" => {
                let after = |marker: &str| {
                    let rest = &a.detail[a.detail.find(marker)? + marker.len()..];
                    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    digits.parse::<u64>().ok()
                };
                let drain = after("not accepting for ").unwrap_or(0);
                let takeover = after(" ms (hosts' calls finishing) + ").unwrap_or(0);
                return Ok((drain, takeover));
            }
            Ok(a) if a.state == "failed" => bail!("upgrade failed: {}", a.detail),
            _ => {}
        }
    }
    bail!("the upgrade did not finish within 60 s")
}

/// The upgrade and restart rounds, alternating; `upgrade_*` and `restart_*` figures.
pub(super) async fn upgrade(
    bin_dir: &Path,
    dir: &Path,
    request: &ToolCallRequest,
    options: &Options,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let rounds = if options.quick { 3 } else { 7 };
    let plugin = bin_dir.join("allow-all");
    let plugins = via_config(&plugin, 2);
    let name = "upgrade";
    let socket = dir.join(format!("{name}.sock"));
    let mut supervisor = Supervisor::start(bin_dir, dir, name, &plugins, options).await?;

    let probe = Traffic::start(&socket, request, None).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (calls, _) = probe.finish().await;
    let capacity = calls.iter().filter(|c| c.ok).count() as u64;
    let rate = (capacity / 2).max(100);
    figures.set("upgrade_capacity_rps", capacity);
    figures.set("upgrade_rate_rps", rate);

    let traffic = Traffic::start(&socket, request, Some(rate)).await;
    let mut events = Vec::new();
    let (mut drains, mut takeovers) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        tokio::time::sleep(MARGIN).await;
        let from = Instant::now();
        let (drain, takeover) = upgrade_once(&socket).await?;
        drains.push(Duration::from_millis(drain));
        takeovers.push(Duration::from_millis(takeover));
        events.push(("upgrade", from, Instant::now() + MARGIN));
        tokio::time::sleep(MARGIN).await;
        let from = Instant::now();
        supervisor.stop().await;
        supervisor = Supervisor::start(bin_dir, dir, name, &plugins, options).await?;
        events.push(("restart", from, Instant::now() + MARGIN));
    }
    tokio::time::sleep(MARGIN).await;
    let (calls, resent) = traffic.finish().await;
    supervisor.stop().await;

    for kind in ["upgrade", "restart"] {
        let mut measured: Vec<Round> = events
            .iter()
            .filter(|(k, _, _)| *k == kind)
            .map(|&(_, from, to)| round(&calls, from, to))
            .collect();
        let median = |values: &mut Vec<Duration>| {
            values.sort();
            values.get(values.len() / 2).copied().unwrap_or_default()
        };
        let mut p100: Vec<Duration> = measured.iter().map(|r| r.p100).collect();
        let mut gap: Vec<Duration> = measured.iter().map(|r| r.gap).collect();
        let max_p100 = p100.iter().max().copied().unwrap_or_default();
        figures.set(&format!("{kind}_p100_ms"), millis(median(&mut p100)));
        figures.set(&format!("{kind}_p100_max_ms"), millis(max_p100));
        figures.set(&format!("{kind}_gap_ms"), millis(median(&mut gap)));
        let refused: usize = measured.iter_mut().map(|r| r.refused).sum();
        figures.set(&format!("{kind}_refused"), refused);
    }
    let median = |values: &mut Vec<Duration>| {
        values.sort();
        values.get(values.len() / 2).copied().unwrap_or_default()
    };
    figures.set("upgrade_drain_ms", millis(median(&mut drains)));
    figures.set("upgrade_takeover_ms", millis(median(&mut takeovers)));
    figures.set("upgrade_rounds", rounds);
    figures.set("upgrade_resent_unsent", resent);
    Ok(())
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}
