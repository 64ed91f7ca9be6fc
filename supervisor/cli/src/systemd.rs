//! systemd notifications: `READY=1` once the host socket is bound and every plugin is ready or
//! has failed its start, a `STATUS=` line a person can read, `WATCHDOG=1` at half of
//! `WATCHDOG_USEC` while the runtime runs, `RELOADING=1` (with `MONOTONIC_USEC`) then `READY=1`
//! around a reload and an upgrade in place (the same pid: no `MAINPID=`), and `STOPPING=1` at
//! shutdown. Every call does nothing
//! when `NOTIFY_SOCKET` is unset (not run by systemd), and a failure to notify is only logged.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hookvisor::plugin::{Phase, PluginSet};
use hookvisor::serve::server::Observer;
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
        .map(|(name, phase)| format!("{name} ({})", phase.name()))
        .collect();
    if !others.is_empty() {
        line.push_str("; not ready: ");
        line.push_str(&others.join(", "));
    }
    line
}

/// Sends `states` to `NOTIFY_SOCKET`, without ever blocking: a notification socket whose queue
/// is full (a service manager that does not read, or reads slowly) must not stall the runtime
/// thread that sends, so the datagram is dropped and the drop logged instead. (`sd_notify`'s own
/// `notify` sends blocking.)
fn notify(states: &[NotifyState<'_>]) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let message: String = states.iter().map(|s| format!("{s}\n")).collect();
    let sent = UnixDatagram::unbound().and_then(|socket| {
        socket.set_nonblocking(true)?;
        socket.connect(&path)?;
        socket.send(message.as_bytes())
    });
    match sent {
        Ok(n) if n == message.len() => {}
        Ok(_) => tracing::warn!("cannot notify systemd: the datagram was cut"),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => full(&message),
        Err(e) => tracing::warn!("cannot notify systemd: {e}"),
    }
}

/// Logs a notification dropped on a full socket: the first one, then at most one line a minute
/// with the count, so a watchdog pinging a stuck socket cannot flood the log.
fn full(message: &str) {
    static DROPS: Mutex<(u64, Option<Instant>)> = Mutex::new((0, None));
    let mut drops = DROPS.lock().unwrap_or_else(|e| e.into_inner());
    drops.0 += 1;
    if drops
        .1
        .is_some_and(|last| last.elapsed() < Duration::from_secs(60))
    {
        return;
    }
    let dropped = std::mem::take(&mut drops.0);
    drops.1 = Some(Instant::now());
    tracing::warn!(dropped, last = ?message.trim_end(),
        "cannot notify systemd: its notification socket is full; notifications dropped");
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

    fn upgrading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => notify(&[
                NotifyState::Reloading,
                now,
                NotifyState::Status("upgrading in place: handing over to the new binary"),
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
