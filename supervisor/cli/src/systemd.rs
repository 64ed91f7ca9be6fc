//! systemd notifications: `READY=1` once the host socket is bound and every plugin is ready or
//! has failed its start, a `STATUS=` line a person can read, `WATCHDOG=1` at half of
//! `WATCHDOG_USEC` while the runtime runs, `RELOADING=1` (with `MONOTONIC_USEC`) then `READY=1`
//! around a reload, and `STOPPING=1` at shutdown. Every call does nothing
//! when `NOTIFY_SOCKET` is unset (not run by systemd), and a failure to notify is only logged.

use std::path::Path;
use std::time::Duration;

use hookvisor::plugin::{Phase, PluginSet};
use hookvisor::server::Observer;
use sd_notify::NotifyState;

/// Tells systemd what `serve` is doing.
pub(crate) struct Systemd;

/// `4/4 plugins ready`, or `3/4 plugins ready; not ready: path-guard (failed to start)`.
fn status_line(plugins: &PluginSet) -> String {
    let statuses = plugins.statuses();
    let ready = statuses
        .iter()
        .filter(|(_, phase)| matches!(phase, Phase::Ready))
        .count();
    let mut line = format!("{ready}/{} plugins ready", statuses.len());
    let others: Vec<String> = statuses
        .iter()
        .filter(|(_, phase)| !matches!(phase, Phase::Ready))
        .map(|(name, phase)| format!("{name} ({})", phase_word(phase)))
        .collect();
    if !others.is_empty() {
        line.push_str("; not ready: ");
        line.push_str(&others.join(", "));
    }
    line
}

fn phase_word(phase: &Phase) -> &'static str {
    match phase {
        Phase::Starting => "starting",
        Phase::Ready => "ready",
        Phase::Rejected(_) => "rejected",
        Phase::Failed { .. } => "failed to start",
        Phase::Exited(_) => "exited",
        Phase::Hung(_) => "hung",
        Phase::Quarantined { .. } => "quarantined",
        Phase::Stopped => "stopped",
    }
}

fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("cannot notify systemd: {e}");
    }
}

impl Observer for Systemd {
    fn ready(&self, _socket: &Path, plugins: &PluginSet) {
        let status = status_line(plugins);
        notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
    }

    fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => notify(&[
                NotifyState::Reloading,
                now,
                NotifyState::Status("reloading the configuration"),
            ]),
            Err(e) => tracing::warn!("cannot read the monotonic clock for RELOADING=1: {e}"),
        }
    }

    fn stopping(&self) {
        notify(&[
            NotifyState::Stopping,
            NotifyState::Status("stopping: draining calls in flight"),
        ]);
    }
}

/// When systemd asks for a watchdog, pings it at half the interval from a task on the runtime:
/// if the runtime stalls, the pings stop and systemd acts. Runs until the runtime ends.
pub(crate) fn start_watchdog() {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let period = (interval / 2).max(Duration::from_millis(1));
    tracing::info!(
        period_ms = period.as_millis() as u64,
        "systemd watchdog enabled"
    );
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            notify(&[NotifyState::Watchdog]);
        }
    });
}
