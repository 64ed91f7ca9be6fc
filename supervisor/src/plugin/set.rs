//! The plugins of one configuration: each with its owner task, started together, asked for the
//! lineup of each call, and stopped together. The owner tasks belong to the set: stopping it
//! waits for each; dropping it aborts any that are left.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use hookvisor_proto::v1::Hook;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::owner::{Owner, Watchdog};
use super::{Phase, Plugin, Snapshot};
use crate::config::Config;
use crate::routing::{self, Candidate};
use crate::spawner::Spawner;
use crate::stages::Lineup;

/// One owner task and the way to tell it to stop.
struct OwnerHandle {
    stop: oneshot::Sender<Duration>,
    task: JoinHandle<()>,
}

/// Every configured plugin, in configuration order.
pub struct PluginSet {
    plugins: Vec<Arc<Plugin>>,
    owners: Mutex<Vec<OwnerHandle>>,
}

impl std::fmt::Debug for PluginSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginSet")
            .field("plugins", &self.plugins)
            .finish_non_exhaustive()
    }
}

impl PluginSet {
    /// Starts every plugin concurrently and waits until each is ready or has failed.
    pub async fn start(config: &Config, spawner: Spawner) -> PluginSet {
        let start_timeout = Duration::from_millis(config.supervisor.start_timeout_ms.into());
        let mut plugins = Vec::with_capacity(config.plugins.len());
        let mut owners = Vec::with_capacity(config.plugins.len());
        for plugin_config in &config.plugins {
            let (publish, snapshot) = watch::channel(Snapshot::starting());
            let (stop, stop_rx) = oneshot::channel();
            let watchdog = Arc::new(Watchdog::default());
            let owner = Owner {
                config: plugin_config.clone(),
                runtime_dir: config.supervisor.runtime_dir.clone(),
                workdir: config.dir.clone(),
                spawner: spawner.clone(),
                start_timeout,
                lifecycle: config.supervisor.lifecycle,
                watchdog: watchdog.clone(),
                publish,
                stop: stop_rx,
            };
            owners.push(OwnerHandle {
                stop,
                task: tokio::spawn(owner.run()),
            });
            plugins.push(Arc::new(Plugin {
                config: plugin_config.clone(),
                name: Arc::from(plugin_config.name.as_str()),
                snapshot,
                watchdog,
                hung_after: config.supervisor.lifecycle.hung_after,
            }));
        }
        // Ready or failed, each: the host socket opens only once every start is decided.
        join_all(plugins.iter().map(|p| {
            let mut snapshot = p.snapshot.clone();
            async move {
                let _ = snapshot
                    .wait_for(|s| !matches!(s.phase, Phase::Starting))
                    .await;
            }
        }))
        .await;
        PluginSet {
            plugins,
            owners: Mutex::new(owners),
        }
    }

    /// Who takes part in `hook` for `tool` now, in merge order.
    pub fn lineup(&self, hook: Hook, tool: Option<&str>) -> Lineup {
        routing::lineup(
            self.plugins.iter().map(|p| Candidate {
                config: &p.config,
                name: &p.name,
                registrations: p.registrations(),
                answerer: p.clone(),
            }),
            hook,
            tool,
        )
    }

    /// Every plugin with its phase, in configuration order.
    pub fn statuses(&self) -> Vec<(Arc<str>, Phase)> {
        self.plugins
            .iter()
            .map(|p| (p.name.clone(), p.phase()))
            .collect()
    }

    /// Every plugin, in configuration order.
    pub fn plugins(&self) -> &[Arc<Plugin>] {
        &self.plugins
    }

    /// Stops every plugin (SIGTERM to its group, `grace`, SIGKILL), removes its socket, and waits
    /// for every owner to finish.
    pub async fn stop(&self, grace: Duration) {
        let owners = self
            .owners
            .lock()
            .map(|mut owners| std::mem::take(&mut *owners))
            .unwrap_or_default();
        join_all(owners.into_iter().map(|owner| async move {
            let _ = owner.stop.send(grace);
            let _ = owner.task.await;
        }))
        .await;
    }
}

impl Drop for PluginSet {
    fn drop(&mut self) {
        if let Ok(owners) = self.owners.get_mut() {
            for owner in owners.drain(..) {
                owner.task.abort();
            }
        }
    }
}
