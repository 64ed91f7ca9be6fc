//! The owner of one plugin instance: the only task that changes its state. It clears the socket,
//! spawns the process, runs the handshake, applies the trust rule, publishes each phase, watches
//! for the exit, and stops the process when told to. Everything the process needs running (its
//! output readers, its exit waiter) lives in the owner's `JoinSet` and ends with it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

use super::process::{Process, StartError};
use super::{Phase, Snapshot};
use crate::config::PluginConfig;
use crate::layout;
use crate::routing;
use crate::spawner::Spawner;

/// What an owner needs to run one instance.
pub(super) struct Owner {
    pub config: PluginConfig,
    pub socket: PathBuf,
    pub workdir: PathBuf,
    pub spawner: Spawner,
    pub start_timeout: Duration,
    pub publish: watch::Sender<Snapshot>,
    /// The grace period to stop with, when the supervisor stops the plugin.
    pub stop: oneshot::Receiver<Duration>,
}

impl Owner {
    /// Runs the instance from spawn to stop.
    pub async fn run(mut self) {
        let mut tasks = JoinSet::new();
        let name = self.config.name.clone();
        if let Err(e) = layout::remove_stale_socket(&self.socket) {
            return self
                .failed(StartError::Socket(e.to_string()), String::new())
                .await;
        }
        let process = match Process::spawn(
            &self.spawner,
            &self.config,
            &self.socket,
            &self.workdir,
            &mut tasks,
        )
        .await
        {
            Ok(process) => Arc::new(process),
            Err(error) => return self.failed(error, String::new()).await,
        };
        let connected = tokio::select! {
            connected = process.handshake(&self.socket, self.start_timeout) => connected,
            grace = &mut self.stop => {
                return self.stopped(&process, grace.unwrap_or_default()).await;
            }
        };
        let connected = match connected {
            Ok(connected) => connected,
            Err(error) => {
                process.stop(Duration::ZERO).await;
                let stderr = process.stderr_tail().await;
                return self.failed(error, stderr).await;
            }
        };
        let registrations = match routing::accept(&self.config, &connected.info.hooks) {
            Ok(registrations) => registrations,
            Err(why) => {
                tracing::error!(plugin = %name, "rejected: {why}");
                process.stop(Duration::ZERO).await;
                self.publish.send_replace(Snapshot {
                    phase: Phase::Rejected(why),
                    registrations: None,
                    ready: None,
                });
                return self.wait_for_stop().await;
            }
        };
        tracing::info!(plugin = %name, pid = process.pid().as_raw(),
            version = ?crate::limits::cap_text(&connected.info.version, 128),
            hooks = registrations.len(), "ready");
        self.publish.send_replace(Snapshot {
            phase: Phase::Ready,
            registrations: Some(registrations.clone()),
            ready: Some((connected.client, process.clone())),
        });

        tokio::select! {
            exit = process.wait_exit() => {
                tracing::warn!(plugin = %name,
                    "exited ({exit}); it stays unavailable and its calls block");
                self.publish.send_replace(Snapshot {
                    phase: Phase::Exited(exit),
                    registrations: Some(registrations),
                    ready: None,
                });
                let grace = (&mut self.stop).await.unwrap_or_default();
                self.stopped(&process, grace).await;
            }
            grace = &mut self.stop => {
                self.stopped(&process, grace.unwrap_or_default()).await;
            }
        }
    }

    /// A start failure: logged, published, then nothing to do until the supervisor stops.
    async fn failed(self, error: StartError, stderr: String) {
        let phase = Phase::Failed { error, stderr };
        tracing::error!(plugin = %self.config.name, "{phase}");
        self.publish.send_replace(Snapshot {
            phase,
            registrations: None,
            ready: None,
        });
        self.wait_for_stop().await;
    }

    async fn wait_for_stop(mut self) {
        let _ = (&mut self.stop).await;
        self.remove_socket();
    }

    /// Stops the process (SIGTERM to its group, `grace`, SIGKILL) and publishes `Stopped`.
    async fn stopped(&self, process: &Process, grace: Duration) {
        let registrations = self.publish.borrow().registrations.clone();
        self.publish.send_replace(Snapshot {
            phase: Phase::Stopped,
            registrations,
            ready: None,
        });
        let how = process.stop(grace).await;
        tracing::info!(plugin = %self.config.name, "stopped ({how})");
        self.remove_socket();
    }

    fn remove_socket(&self) {
        // Only a socket hookvisor owns is removed; anything else stays where it is.
        let _ = layout::remove_stale_socket(&self.socket);
    }
}
