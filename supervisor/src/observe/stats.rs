//! Per-plugin call counts and recent latencies, kept for the operators' `ListPlugins` whatever
//! else is configured: calls, blocks, failures since the supervisor started, and p50/p99 over
//! the last [`WINDOW`] calls. Updated once per verdict under one lock.

use std::collections::HashMap;
use std::sync::Mutex;

use hookvisor_proto::v1::{Failure, Outcome, PluginResult};

/// Latencies kept per plugin for the percentiles.
pub const WINDOW: usize = 1024;

#[derive(Debug)]
struct Counts {
    calls: u64,
    blocks: u64,
    failures: u64,
    /// A ring of the last `WINDOW` latencies in µs.
    recent: Vec<u32>,
    next: usize,
}

impl Default for Counts {
    fn default() -> Self {
        Counts {
            calls: 0,
            blocks: 0,
            failures: 0,
            recent: Vec::with_capacity(WINDOW),
            next: 0,
        }
    }
}

/// One plugin's figures, as `ListPlugins` reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Figures {
    /// Calls made to it.
    pub calls: u64,
    /// Calls it answered with a block.
    pub blocks: u64,
    /// Calls it failed (§7).
    pub failures: u64,
    /// Median latency of its recent calls, µs.
    pub p50_us: u64,
    /// 99th percentile latency of its recent calls, µs.
    pub p99_us: u64,
}

/// The figures of every plugin that has been called.
#[derive(Debug, Default)]
pub struct CallStats(Mutex<HashMap<String, Counts>>);

impl CallStats {
    /// Counts the calls of one verdict's trace (shadow answers and cancelled calls excluded:
    /// neither was an answer that counted).
    pub fn record(&self, trace: &[PluginResult]) {
        let Ok(mut all) = self.0.lock() else { return };
        for r in trace {
            if r.shadow || r.outcome == Outcome::Unspecified as i32 {
                continue;
            }
            let counts = match all.get_mut(r.plugin.as_str()) {
                Some(counts) => counts,
                None => all.entry(r.plugin.clone()).or_default(),
            };
            counts.calls += 1;
            if r.failure != Failure::None as i32 {
                counts.failures += 1;
            } else if r.outcome == Outcome::Block as i32 {
                counts.blocks += 1;
            }
            let us = u32::try_from(r.latency_us).unwrap_or(u32::MAX);
            if counts.recent.len() < WINDOW {
                counts.recent.push(us);
            } else {
                counts.recent[counts.next] = us;
            }
            counts.next = (counts.next + 1) % WINDOW;
        }
    }

    /// `plugin`'s figures (zero when it was never called).
    pub fn of(&self, plugin: &str) -> Figures {
        let Ok(all) = self.0.lock() else {
            return Figures::default();
        };
        let Some(counts) = all.get(plugin) else {
            return Figures::default();
        };
        let mut sorted = counts.recent.clone();
        sorted.sort_unstable();
        let at = |q: f64| -> u64 {
            if sorted.is_empty() {
                return 0;
            }
            let i = ((sorted.len() - 1) as f64 * q).round() as usize;
            u64::from(sorted[i.min(sorted.len() - 1)])
        };
        Figures {
            calls: counts.calls,
            blocks: counts.blocks,
            failures: counts.failures,
            p50_us: at(0.5),
            p99_us: at(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(plugin: &str, outcome: Outcome, failure: Failure, latency_us: u64) -> PluginResult {
        PluginResult {
            plugin: plugin.into(),
            outcome: outcome as i32,
            failure: failure as i32,
            latency_us,
            ..PluginResult::default()
        }
    }

    #[test]
    fn counts_and_percentiles() {
        let stats = CallStats::default();
        for i in 1..=100 {
            stats.record(&[result("p", Outcome::Allow, Failure::None, i)]);
        }
        stats.record(&[
            result("p", Outcome::Block, Failure::None, 5),
            result("p", Outcome::Block, Failure::Timeout, 5),
            result("p", Outcome::Unspecified, Failure::None, 0),
        ]);
        let figures = stats.of("p");
        assert_eq!(
            (figures.calls, figures.blocks, figures.failures),
            (102, 1, 1)
        );
        assert_eq!(figures.p50_us, 50);
        assert_eq!(figures.p99_us, 99);
        assert_eq!(stats.of("never"), Figures::default());
    }

    #[test]
    fn only_the_last_window_counts_for_latency() {
        let stats = CallStats::default();
        for _ in 0..WINDOW {
            stats.record(&[result("p", Outcome::Allow, Failure::None, 1_000_000)]);
        }
        for _ in 0..WINDOW {
            stats.record(&[result("p", Outcome::Allow, Failure::None, 10)]);
        }
        assert_eq!(stats.of("p").p99_us, 10);
    }
}
