//! The plugins of one configuration (one generation): each with its owner task, started
//! together, asked for the lineup of each call, and stopped together.
//!
//! A reload builds the next set from the running one ([`PluginSet::next`]): a plugin whose
//! process-defining settings did not change keeps its owner and its process (same pid), and
//! only its priority, timeout and failure policy come from the new configuration; added and
//! changed plugins get new owners that start beside the running set. An owner belongs to every
//! set that holds it; it is aborted when the last one is dropped, and stopped by whoever calls
//! [`PluginSet::stop`] or [`PluginSet::stop_unless_kept`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use hookvisor_proto::v1::Hook;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::owner::{self, Owner, Watchdog};
use super::process::{Adoptee, Handed, Process};
use super::{Phase, Plugin, Snapshot};
use crate::decide::routing::{self, Candidate};
use crate::decide::stages::Lineup;
use crate::files::config::{Config, PluginConfig};
use crate::plugin::sandbox::Sandboxes;
use crate::plugin::spawner::Spawner;

/// One owner task and the way to tell it to stop.
#[derive(Debug)]
struct OwnerHandle {
    stop: Mutex<Option<oneshot::Sender<Duration>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl OwnerHandle {
    /// Tells the owner to stop (SIGTERM, `grace`, SIGKILL) and waits for it.
    async fn stop(&self, grace: Duration) {
        let stop = self.stop.lock().ok().and_then(|mut s| s.take());
        if let Some(stop) = stop {
            let _ = stop.send(grace);
        }
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for OwnerHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.get_mut().ok().and_then(Option::take) {
            task.abort();
        }
    }
}

/// One plugin of a set: this generation's configuration, the plugin, its owner.
#[derive(Debug, Clone)]
struct Member {
    config: PluginConfig,
    plugin: Arc<Plugin>,
    owner: Arc<OwnerHandle>,
}

/// Every configured plugin of one generation, in configuration order.
#[derive(Debug)]
pub struct PluginSet {
    members: Vec<Member>,
}

/// Whether `a` and `b` run the same process: what a restart would change. Priority, timeout and
/// the failure policy apply per call and need no new process.
fn same_process(a: &PluginConfig, b: &PluginConfig) -> bool {
    a.command == b.command
        && a.args == b.args
        && a.env == b.env
        && a.inherit_env == b.inherit_env
        && a.trusted == b.trusted
        && a.hooks == b.hooks
        && a.sha256 == b.sha256
        && a.sandbox == b.sandbox
        && a.remote == b.remote
}

/// A digest of what [`same_process`] compares, carried by an upgrade's hand-over: the next
/// image keeps a plugin's process only when its configuration gives the same digest (a reload's
/// rule). A binary that formats these settings differently restarts the plugins once, never
/// keeps a changed one. Env values may be secrets: only the digest leaves this process.
pub fn fingerprint(config: &PluginConfig) -> String {
    use sha2::Digest;
    let text = format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        config.command,
        config.args,
        config.env,
        config.inherit_env,
        config.trusted,
        config.hooks,
        config.sha256,
        config.sandbox
    );
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl PluginSet {
    /// Starts every plugin concurrently and waits until each is ready or has failed.
    pub async fn start(config: &Config, spawner: Spawner) -> PluginSet {
        PluginSet::next(None, config, spawner).await
    }

    /// The set for `config` in a supervisor that re-executed itself for an upgrade: each plugin
    /// handed over whose name and [`fingerprint`] match a configured one is taken over (its
    /// process checked again, as at start), the others configured start now, and those handed
    /// over that the configuration no longer has, or has changed, are stopped (SIGTERM, `grace`,
    /// SIGKILL) once the set is ready, as a reload would. Also says how many were taken over.
    pub async fn resume(
        config: &Config,
        spawner: Spawner,
        handed: Vec<Adoptee>,
        grace: Duration,
    ) -> (PluginSet, usize) {
        let mut handed: Vec<Option<Adoptee>> = handed.into_iter().map(Some).collect();
        let mut adopt = Vec::with_capacity(config.plugins.len());
        for plugin in &config.plugins {
            let print = fingerprint(plugin);
            let found = handed.iter_mut().find(|h| {
                h.as_ref()
                    .is_some_and(|h| h.handed.name == plugin.name && h.handed.fingerprint == print)
            });
            adopt.push(found.and_then(Option::take));
        }
        let kept = adopt.iter().filter(|a| a.is_some()).count();
        let set = PluginSet::build(None, config, spawner.clone(), adopt).await;
        let mut tasks = tokio::task::JoinSet::new();
        let mut leftovers = Vec::new();
        for adoptee in handed.into_iter().flatten() {
            tracing::info!(plugin = %adoptee.handed.name, pid = adoptee.handed.pid,
                "handed over but removed or changed in the configuration: stopping it");
            let (handed, fds, claim) = (&adoptee.handed, adoptee.output_fds, adoptee.claim);
            match Process::adopt(&spawner, handed, fds, claim, &mut tasks) {
                Ok(process) => leftovers.push(process),
                Err(e) => tracing::warn!(plugin = %adoptee.handed.name, "{e}"),
            }
        }
        join_all(leftovers.iter().map(|p| p.stop(grace))).await;
        (set, kept)
    }

    /// The instance number the next new instance of any plugin will get.
    pub fn next_instance() -> u32 {
        owner::peek_next_instance()
    }

    /// Makes new instance numbers start after `floor` (see [`PluginSet::resume`]).
    pub fn continue_instances_after(floor: u32) {
        owner::continue_instances_after(floor);
    }

    /// What an upgrade hands over: each ready plugin's process (see [`Process::handed`]) with
    /// its record, and fresh copies of its output descriptors. A plugin that is not ready
    /// (starting, restarting, quarantined) is not handed over: the next image starts it.
    pub fn handover(&self) -> Vec<(Handed, [Option<std::os::fd::OwnedFd>; 2])> {
        self.members
            .iter()
            .filter_map(|m| {
                let snapshot = m.plugin.snapshot();
                // A remote plugin has no process to hand over: the next image dials it again.
                let (_, process) = snapshot.ready.as_ref()?;
                let (mut handed, fds) = process.as_ref()?.handed();
                let record = &snapshot.record;
                handed.fingerprint = fingerprint(&m.config);
                handed.instance = record.instance.map_or(0, |(n, _)| n);
                handed.restarts = record.restarts;
                handed.last_error.clone_from(&record.last_error);
                handed.version = record.version.as_deref().map(str::to_owned);
                handed.uptime_ms = record.started.map_or(0, |t| {
                    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
                });
                Some((handed, fds))
            })
            .collect()
    }

    /// The set for `config`: plugins of `running` whose process did not change are kept (same
    /// owner, same process); the others start now, and this waits until each of them is ready
    /// or has failed its start. `running` is left as it is: stop what it no longer needs with
    /// [`PluginSet::stop_unless_kept`] once the new set is in use.
    pub async fn next(running: Option<&PluginSet>, config: &Config, spawner: Spawner) -> PluginSet {
        let none = config.plugins.iter().map(|_| None).collect();
        PluginSet::build(running, config, spawner, none).await
    }

    /// [`PluginSet::next`], taking over `adopt[i]` (when there is one) as the first instance of
    /// the `i`th configured plugin.
    async fn build(
        running: Option<&PluginSet>,
        config: &Config,
        spawner: Spawner,
        adopt: Vec<Option<Adoptee>>,
    ) -> PluginSet {
        let mut adopt = adopt.into_iter();
        let start_timeout = Duration::from_millis(config.supervisor.start_timeout_ms.into());
        let sandboxes = Sandboxes::new(config);
        let mut members = Vec::with_capacity(config.plugins.len());
        let mut started = Vec::new();
        for plugin_config in &config.plugins {
            let adoptee = adopt.next().flatten();
            let kept = running.and_then(|set| {
                set.members.iter().find(|m| {
                    m.config.name == plugin_config.name && same_process(&m.config, plugin_config)
                })
            });
            if let Some(kept) = kept {
                members.push(Member {
                    config: plugin_config.clone(),
                    plugin: kept.plugin.clone(),
                    owner: kept.owner.clone(),
                });
                continue;
            }
            let (publish, snapshot) = watch::channel(Snapshot::starting());
            let (stop, stop_rx) = oneshot::channel();
            let watchdog = Arc::new(Watchdog::default());
            let owner = Owner {
                config: plugin_config.clone(),
                sandboxes: sandboxes.clone(),
                workdir: config.dir.clone(),
                spawner: spawner.clone(),
                start_timeout,
                lifecycle: config.supervisor.lifecycle,
                watchdog: watchdog.clone(),
                publish,
                stop: stop_rx,
                stop_grace: Duration::from_millis(config.supervisor.stop_grace_ms.into()),
                adopt: adoptee,
            };
            let plugin = Arc::new(Plugin {
                name: Arc::from(plugin_config.name.as_str()),
                snapshot,
                watchdog,
                hung_after: config.supervisor.lifecycle.hung_after,
            });
            started.push(plugin.clone());
            members.push(Member {
                config: plugin_config.clone(),
                plugin,
                owner: Arc::new(OwnerHandle {
                    stop: Mutex::new(Some(stop)),
                    task: Mutex::new(Some(tokio::spawn(owner.run()))),
                }),
            });
        }
        // Ready or failed, each new one: the host socket opens (or the reload switches) only
        // once every start is decided.
        join_all(started.iter().map(|p| {
            let mut snapshot = p.snapshot.clone();
            async move {
                let _ = snapshot
                    .wait_for(|s| !matches!(s.phase, Phase::Starting))
                    .await;
            }
        }))
        .await;
        PluginSet { members }
    }

    /// Who takes part in `hook` for `tool` now, in merge order.
    pub fn lineup(&self, hook: Hook, tool: Option<&str>) -> Lineup {
        routing::lineup(
            self.members.iter().map(|m| Candidate {
                config: &m.config,
                name: &m.plugin.name,
                registrations: m.plugin.registrations(),
                answerer: m.plugin.clone(),
            }),
            hook,
            tool,
        )
    }

    /// Every plugin with its phase, in configuration order.
    pub fn statuses(&self) -> Vec<(Arc<str>, Phase)> {
        self.members
            .iter()
            .map(|m| (m.plugin.name.clone(), m.plugin.phase()))
            .collect()
    }

    /// The plugin configured as `name`.
    pub fn find(&self, name: &str) -> Option<&Arc<Plugin>> {
        self.plugins().find(|p| &*p.name == name)
    }

    /// Every plugin with its configuration in this set (the one source of truth for it: a
    /// reload that keeps a plugin's process gives it this set's mode, priority and timeout),
    /// in configuration order.
    pub fn configured(&self) -> impl Iterator<Item = (&PluginConfig, &Arc<Plugin>)> {
        self.members.iter().map(|m| (&m.config, &m.plugin))
    }

    /// Every plugin, in configuration order.
    pub fn plugins(&self) -> impl Iterator<Item = &Arc<Plugin>> {
        self.members.iter().map(|m| &m.plugin)
    }

    /// Stops every plugin (SIGTERM to its group, `grace`, SIGKILL), removes its socket, and waits
    /// for every owner to finish.
    pub async fn stop(&self, grace: Duration) {
        join_all(self.members.iter().map(|m| m.owner.stop(grace))).await;
    }

    /// Stops the plugins of this set that `next` did not keep (removed or replaced by a reload).
    pub async fn stop_unless_kept(&self, next: &PluginSet, grace: Duration) {
        join_all(
            self.members
                .iter()
                .filter(|m| !next.members.iter().any(|n| Arc::ptr_eq(&n.owner, &m.owner)))
                .map(|m| m.owner.stop(grace)),
        )
        .await;
    }
}
