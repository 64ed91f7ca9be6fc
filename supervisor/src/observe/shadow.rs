//! Shadow plugins (`mode = "shadow"`, contract §4.4): asked the same question as the hooks, in
//! tasks of their own, so the verdict never waits for them and their answers never change it.
//! Their answers (or failures) are recorded when they arrive: in the audit line and the metrics,
//! in the verdict's trace (marked shadow) when they arrived before it was decided, and in a
//! per-plugin tally of how often they disagreed with the verdict.
//!
//! Shadow calls outlive the host call, so they are bounded on their own: at most
//! [`MAX_SHADOW_CALLS`] in flight; past it a shadow is not called and its entry says so.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use hookvisor_proto::v1::{Failure, Outcome, PluginResult, Stage};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::decide::request_id;
use crate::decide::stages::Participant;

/// Shadow calls in flight at most, across all host calls. Each holds its host call's request
/// (at most 1.25 MiB) past the verdict, so this also bounds that memory: 160 MiB at most.
pub const MAX_SHADOW_CALLS: usize = 128;

/// The shadow calls of one host call.
#[derive(Debug, Default)]
pub struct Shadows {
    /// One slot per shadow, in lineup order, filled as answers arrive; `None` when there is no
    /// shadow (the usual case, which then allocates nothing).
    results: Option<Arc<Mutex<Vec<Option<PluginResult>>>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Shadows {
    /// Asks every shadow of `participants` with `ask`, each in a task of its own carrying the
    /// current request id; `slots` bounds the calls in flight.
    pub fn start<F, Fut>(participants: &[Participant], slots: &Arc<Semaphore>, ask: F) -> Shadows
    where
        F: Fn(Participant) -> Fut,
        Fut: Future<Output = PluginResult> + Send + 'static,
    {
        if participants.is_empty() {
            return Shadows::default();
        }
        let results = Arc::new(Mutex::new(vec![None; participants.len()]));
        let mut tasks = Vec::with_capacity(participants.len());
        let id = request_id::current();
        for (i, p) in participants.iter().enumerate() {
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                store(&results, i, skipped(p));
                continue;
            };
            let answer = ask(p.clone());
            let results = results.clone();
            let work = async move {
                let entry = answer.await;
                drop(permit);
                store(&results, i, entry);
            };
            tasks.push(match id.clone() {
                Some(id) => tokio::spawn(request_id::scope(id, work)),
                None => tokio::spawn(work),
            });
        }
        Shadows {
            results: Some(results),
            tasks,
        }
    }

    /// Whether there is no shadow at all.
    pub fn is_empty(&self) -> bool {
        self.results.is_none()
    }

    /// The answers that have arrived so far.
    pub fn arrived(&self) -> Vec<PluginResult> {
        let Some(results) = &self.results else {
            return Vec::new();
        };
        results
            .lock()
            .map(|r| r.iter().flatten().cloned().collect())
            .unwrap_or_default()
    }

    /// Every answer, once each has arrived (each call is bounded by its deadline).
    pub async fn finish(mut self) -> Vec<PluginResult> {
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
        self.arrived()
    }
}

fn store(results: &Mutex<Vec<Option<PluginResult>>>, i: usize, entry: PluginResult) {
    if let Ok(mut results) = results.lock()
        && let Some(slot) = results.get_mut(i)
    {
        *slot = Some(entry);
    }
}

/// The entry of a shadow that was not called: the bound was reached.
fn skipped(p: &Participant) -> PluginResult {
    PluginResult {
        plugin: p.slot.plugin.to_string(),
        stage: Stage::Hook as i32,
        outcome: Outcome::Block as i32,
        failure: Failure::Unavailable as i32,
        detail: format!(
            "plugin '{}' was not called: {MAX_SHADOW_CALLS} shadow calls are in flight",
            p.slot.plugin
        ),
        shadow: true,
        ..PluginResult::default()
    }
}

/// Whether a shadow's answer differs from the verdict's outcome (a failure counts as the block
/// it would have been).
pub fn disagrees(shadow: &PluginResult, verdict: i32) -> bool {
    shadow.outcome != verdict
}

/// How often each shadow plugin answered and disagreed, since the supervisor started.
#[derive(Debug, Default)]
pub struct Tally(Mutex<BTreeMap<String, (u64, u64)>>);

impl Tally {
    /// Counts one answer of `plugin`.
    pub fn record(&self, plugin: &str, disagreed: bool) {
        if let Ok(mut tally) = self.0.lock() {
            let entry = tally.entry(plugin.to_owned()).or_default();
            entry.0 += 1;
            entry.1 += u64::from(disagreed);
        }
    }

    /// (answers, disagreements) of `plugin`.
    pub fn of(&self, plugin: &str) -> (u64, u64) {
        self.0
            .lock()
            .ok()
            .and_then(|t| t.get(plugin).copied())
            .unwrap_or_default()
    }
}
