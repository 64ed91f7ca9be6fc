//! Busy polling for plugin answers before the runtime's thread parks (`[supervisor]
//! busy_poll_us`).
//!
//! Why: when the supervisor has asked a plugin and has nothing else to do, its thread parks in
//! `epoll_wait` and its CPU goes idle. On a virtual machine an idle vCPU halts (a VM exit; with
//! the `haltpoll` cpuidle driver and `guest_halt_poll_ns = 0` there is no polling first), and
//! waking it again when the plugin answers costs far more than the answer itself: a call that
//! takes 130 µs back to back takes 500 µs when calls come 100 ms apart. The direct call of a
//! host to a plugin pays two such wake-ups (the plugin, then the host); through the supervisor
//! a call pays four. Spinning for a bounded time while an answer is due keeps the supervisor's
//! CPU awake, so the plugin's answer is read at once, which saves one of them.
//!
//! Off by default (`busy_poll_us = 0`): on a busy machine a spinning supervisor competes with
//! the plugin it waits for, and measured slower (docs/performance.md, "Calls with gaps").
//!
//! It spins only when it is cheap and useful: while at least one plugin call is in flight
//! ([`Awaiting`]), and only soon after the thread woke from a real idle period (a park longer
//! than [`IDLE`]): under load the thread seldom parks for long, so it never spins and costs
//! nothing; an isolated call (an agent's tool calls are seconds apart) spins at most the
//! configured time per park. The spin asks its own epoll instance, level-triggered on every
//! plugin connection, with a zero timeout: the kernel's view, not tokio's, so it ends the moment
//! an answer is readable, and the park that follows returns at once.

use std::cell::Cell;
use std::os::fd::AsFd;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

/// A park at least this long means the thread had nothing to do: the calls that follow are
/// isolated ones, worth spinning for.
const IDLE: Duration = Duration::from_millis(1);
/// How long after waking from idle the thread may spin (a verdict's stages, one after another).
const AFTER_IDLE: Duration = Duration::from_millis(20);

struct Poller {
    epoll: Epoll,
    budget: Duration,
}

static POLLER: OnceLock<Poller> = OnceLock::new();
/// Plugin calls in flight, in this process.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// When this thread last began to park.
    static PARKED_AT: Cell<Option<Instant>> = const { Cell::new(None) };
    /// When this thread last woke from a park longer than [`IDLE`].
    static WOKE_FROM_IDLE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Turns busy polling on for this process, spinning at most `budget` per park. Returns false
/// (and polling stays off) if it was already on, or if the epoll instance cannot be made.
pub fn enable(budget: Duration) -> bool {
    if budget.is_zero() || POLLER.get().is_some() {
        return false;
    }
    match Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC) {
        Ok(epoll) => POLLER.set(Poller { epoll, budget }).is_ok(),
        Err(e) => {
            tracing::warn!("busy polling is off: cannot create an epoll instance: {e}");
            false
        }
    }
}

/// Watches a new plugin connection. A closed descriptor leaves the epoll set by itself.
pub fn watch(connection: impl AsFd) {
    if let Some(poller) = POLLER.get() {
        let event = EpollEvent::new(EpollFlags::EPOLLIN, 0);
        if let Err(e) = poller.epoll.add(connection, event) {
            tracing::debug!("busy polling does not watch a plugin connection: {e}");
        }
    }
}

/// A plugin call in flight, for as long as it lives.
#[derive(Debug)]
pub struct Awaiting(());

impl Awaiting {
    /// Counts a call in flight (nothing when busy polling is off).
    pub fn start() -> Option<Awaiting> {
        POLLER.get()?;
        IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        Some(Awaiting(()))
    }
}

impl Drop for Awaiting {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The runtime's `on_thread_park` hook: spins while an answer is due, after an idle period.
pub fn before_park() {
    spin();
    // After the spin: a park that returns at once is not an idle period.
    PARKED_AT.set(Some(Instant::now()));
}

fn spin() {
    let Some(poller) = POLLER.get() else {
        return;
    };
    let now = Instant::now();
    let recent = WOKE_FROM_IDLE
        .get()
        .is_some_and(|woke| now.duration_since(woke) < AFTER_IDLE);
    if !recent || IN_FLIGHT.load(Ordering::Relaxed) == 0 {
        return;
    }
    let until = now + poller.budget;
    let mut events = [EpollEvent::empty()];
    loop {
        match poller.epoll.wait(&mut events, EpollTimeout::ZERO) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => {}
            Ok(_) | Err(_) => return,
        }
        if Instant::now() >= until {
            return;
        }
        // Yield rather than spin: a process that can run on this CPU (the plugin itself, on a
        // busy machine) runs first; with nothing else to run it returns at once, and the CPU
        // stays awake.
        std::thread::yield_now();
    }
}

/// The runtime's `on_thread_unpark` hook: notes a wake-up from idle.
pub fn after_unpark() {
    if let Some(parked) = PARKED_AT.get() {
        let now = Instant::now();
        if now.duration_since(parked) >= IDLE {
            WOKE_FROM_IDLE.set(Some(now));
        }
    }
}
