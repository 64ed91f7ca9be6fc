//! A generation: one configuration's plugins and hook settings, as one value. The service reads
//! the current generation once per call (a `watch` channel: no lock held across the call), so a
//! reload can start a new generation beside the running one and switch every new call to it in
//! one step, while calls in flight finish on the generation they started with.

use std::sync::Arc;

use tokio::sync::watch;

use crate::files::config::HooksConfig;
use crate::plugin::PluginSet;

/// One configuration's plugins and hook settings.
#[derive(Debug)]
pub struct Generation {
    /// The plugins, each with its owner.
    pub plugins: Arc<PluginSet>,
    /// `[hooks.*]`: deadlines and revalidation.
    pub hooks: HooksConfig,
}

/// Where the current generation is published (kept by `serve`).
#[derive(Debug)]
pub struct Current(watch::Sender<Arc<Generation>>);

/// What readers hold: the latest generation, read once per call.
#[derive(Debug, Clone)]
pub struct Reader(watch::Receiver<Arc<Generation>>);

impl Current {
    /// Publishes `first` as the current generation.
    pub fn new(first: Generation) -> (Current, Reader) {
        let (tx, rx) = watch::channel(Arc::new(first));
        (Current(tx), Reader(rx))
    }

    /// Switches every new call to `next` in one step; returns the generation it replaces (whose
    /// calls in flight keep it alive until they end).
    pub fn switch(&self, next: Generation) -> Arc<Generation> {
        self.0.send_replace(Arc::new(next))
    }

    /// The current generation.
    pub fn get(&self) -> Arc<Generation> {
        self.0.borrow().clone()
    }
}

impl Reader {
    /// The current generation, for one call.
    pub fn get(&self) -> Arc<Generation> {
        self.0.borrow().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::config::Config;
    use crate::plugin::spawner::Spawner;

    #[tokio::test]
    async fn a_switch_is_seen_by_the_next_read_and_not_by_a_call_in_flight() {
        let config = Config::parse("", None).expect("an empty configuration");
        let spawner = Spawner::start(tokio::runtime::Handle::current()).expect("spawner");
        let first = Generation {
            plugins: Arc::new(PluginSet::start(&config, spawner.clone()).await),
            hooks: config.hooks.clone(),
        };
        let (current, reader) = Current::new(first);
        let in_flight = reader.get();
        let mut hooks = config.hooks.clone();
        hooks.before_tool_call.timeout_ms = 1234;
        let old = current.switch(Generation {
            plugins: Arc::new(PluginSet::start(&config, spawner).await),
            hooks,
        });
        assert!(Arc::ptr_eq(&old, &in_flight));
        assert_eq!(in_flight.hooks.before_tool_call.timeout_ms, 5000);
        assert_eq!(reader.get().hooks.before_tool_call.timeout_ms, 1234);
        assert_eq!(current.get().hooks.before_tool_call.timeout_ms, 1234);
    }
}
