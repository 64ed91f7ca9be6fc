//! The drain of contract §6: while the supervisor shuts down, new host calls get `UNAVAILABLE`
//! and calls in flight finish with their verdicts. Counts calls in flight and says when none is
//! left.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Whether new calls are taken, and how many are in flight.
#[derive(Debug, Default)]
pub struct Drain {
    draining: AtomicBool,
    in_flight: AtomicUsize,
    idle: Notify,
}

/// Why a call was not admitted: the supervisor is shutting down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Draining;

impl Drain {
    /// Refuses new calls from now on.
    pub fn start(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Resolves once no call is in flight.
    pub async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Host calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Admits one call, unless draining. Counting first and checking second means `idle` can
    /// never miss a call that was admitted.
    pub fn enter(self: &Arc<Self>) -> Result<InFlight, Draining> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let guard = InFlight(self.clone());
        if self.draining.load(Ordering::SeqCst) {
            return Err(Draining);
        }
        Ok(guard)
    }
}

/// One admitted call; dropping it ends the call.
#[derive(Debug)]
pub struct InFlight(Arc<Drain>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_waits_for_the_last_call_and_draining_refuses_new_ones() {
        let drain = Arc::new(Drain::default());
        let call = drain.enter().expect("admitted");
        drain.start();
        assert_eq!(drain.enter().err(), Some(Draining));
        let waiter = tokio::spawn({
            let drain = drain.clone();
            async move { drain.idle().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(call);
        waiter.await.expect("idle once the call ended");
    }
}
