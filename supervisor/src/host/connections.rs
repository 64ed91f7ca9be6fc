//! The host socket's connections: the accept loop, the connection limit, and the timeouts that
//! close connections a host holds without using them.
//!
//! tonic's `serve_with_incoming` over a plain listener stream has no connection limit and no
//! handshake timeout, and a listener that yields `EMFILE` again and again makes its accept loop
//! spin, a core at 100 % for as long as it lasts. Here:
//! - at most `max_connections` are open at once; a connection past that is accepted and closed at
//!   once, so its host fails fast instead of hanging in the listen backlog;
//! - accept errors (out of descriptors, say) back off from 10 ms to 1 s instead of spinning;
//! - a connection that has not sent the HTTP/2 preface and the first frame header within
//!   `handshake_timeout_ms` is closed (half-open connections, slowloris);
//! - a connection with no call in flight that has sent nothing for `idle_timeout_ms` is closed
//!   (a gRPC client reconnects by itself when it next calls);
//! - each logs its refusals at most once every 10 s, with a count.
//!
//! Every connection's [`ConnState`] reaches the admission layer (`crate::host::admission`) through the
//! connect info tonic puts in each request's extensions: that is how calls in flight are
//! counted per connection, and how a connection knows it is not idle.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::time::{Instant, Sleep};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, UdsConnectInfo};

use crate::files::config::HostLimits;

/// The HTTP/2 client preface (24 bytes) and the header of the SETTINGS frame that must follow.
const HANDSHAKE_BYTES: u64 = 24 + 9;
/// The first pause after an accept error; it doubles up to [`MAX_ACCEPT_BACKOFF`].
const MIN_ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);
/// How often a repeated refusal is logged at most.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// What one connection shares with the admission layer.
#[derive(Debug)]
pub struct ConnState {
    in_flight: AtomicUsize,
    /// When the connection last read bytes or finished a call, in ms after `opened`.
    last_active_ms: AtomicU64,
    opened: Instant,
}

impl ConnState {
    fn new() -> ConnState {
        ConnState {
            in_flight: AtomicUsize::new(0),
            last_active_ms: AtomicU64::new(0),
            opened: Instant::now(),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_active_ms.store(ms, Ordering::Relaxed);
    }

    fn last_active(&self) -> Instant {
        self.opened + Duration::from_millis(self.last_active_ms.load(Ordering::Relaxed))
    }

    /// Admits one call on this connection unless `limit` calls are already in flight.
    pub fn enter(self: &Arc<Self>, limit: usize) -> Option<ConnCall> {
        let admitted = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok();
        admitted.then(|| ConnCall(self.clone()))
    }
}

/// One call in flight on a connection; dropping it ends the call.
#[derive(Debug)]
pub struct ConnCall(Arc<ConnState>);

impl Drop for ConnCall {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The connect info of a host connection: the peer's credentials and the shared state.
#[derive(Debug, Clone)]
pub struct HostConnInfo {
    /// The peer, as tonic reports it for Unix sockets.
    pub peer: UdsConnectInfo,
    /// Calls in flight and activity.
    pub state: Arc<ConnState>,
}

/// Logs a repeated warning at most once every [`WARN_EVERY`], with how many were held back.
#[derive(Debug, Default)]
struct Throttle {
    last: Option<Instant>,
    held_back: u64,
}

impl Throttle {
    fn warn(&mut self, what: impl std::fmt::Display) {
        let now = Instant::now();
        if self.last.is_some_and(|last| now < last + WARN_EVERY) {
            self.held_back += 1;
            return;
        }
        tracing::warn!(repeated = self.held_back, "{what}");
        self.last = Some(now);
        self.held_back = 0;
    }
}

/// The accepted connections of `listener`, within `limits`. The accept loop runs until the
/// stream is dropped, or until `stop`: then it accepts nothing more (connections wait in the
/// listener's backlog, for the next image at an upgrade or the next supervisor under socket
/// activation) and the stream ends once the server has taken every connection accepted before.
/// A server that stopped by ending its stream has therefore taken, and answers, every
/// connection this loop accepted: none is accepted and then dropped unserved.
pub fn incoming(
    listener: UnixListener,
    limits: HostLimits,
    stop: oneshot::Receiver<()>,
) -> impl Stream<Item = io::Result<HostConnection>> {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(accept_loop(listener, limits, tx, stop));
    ReceiverStream::new(rx)
}

async fn accept_loop(
    listener: UnixListener,
    limits: HostLimits,
    tx: mpsc::Sender<io::Result<HostConnection>>,
    mut stop: oneshot::Receiver<()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections as usize));
    let mut backoff = MIN_ACCEPT_BACKOFF;
    let mut full = Throttle::default();
    let mut failing = Throttle::default();
    let mut from_plugin = Throttle::default();
    loop {
        // Stopping comes first: once asked, not one more connection leaves the backlog.
        let accepted = tokio::select! {
            biased;
            _ = &mut stop => return,
            () = tx.closed() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                backoff = MIN_ACCEPT_BACKOFF;
                match plugin_peer(&stream) {
                    Ok(None) => {}
                    Ok(Some(why)) => {
                        from_plugin.warn(format_args!("refusing a host connection: {why}"));
                        continue;
                    }
                    // Out of descriptors, most likely: as if the accept had failed.
                    Err(e) => {
                        drop(stream);
                        failing.warn(format_args!(
                            "accepting a host connection failed: cannot inspect its peer: {e}; \
                             retrying in {} ms",
                            backoff.as_millis()
                        ));
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                        continue;
                    }
                }
                match slots.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let connection = HostConnection::new(stream, permit, &limits);
                        if tx.send(Ok(connection)).await.is_err() {
                            return;
                        }
                    }
                    Err(_) => full.warn(format_args!(
                        "refusing a host connection: {} are open, the limit (max_connections)",
                        limits.max_connections
                    )),
                }
            }
            Err(e) => {
                failing.warn(format_args!(
                    "accepting a host connection failed: {e}; retrying in {} ms",
                    backoff.as_millis()
                ));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
            }
        }
    }
}

/// Why a host connection must be refused because a plugin made it, if it must: the host socket
/// (and `Admin` on it) is for hosts and operators, never for the plugins hookvisor runs. A
/// plugin with a uid of its own cannot open the socket at all (its mode); this also holds when
/// plugins share hookvisor's uid. A peer that is already gone is refused too; one that cannot be
/// inspected (no descriptor left to read `/proc` with) is an error.
fn plugin_peer(stream: &UnixStream) -> io::Result<Option<String>> {
    let cred = match stream.peer_cred() {
        Ok(cred) => cred,
        Err(e) => return Ok(Some(format!("cannot read its peer's credentials: {e}"))),
    };
    let Some(pid) = cred.pid().filter(|pid| *pid > 0) else {
        return Ok(None);
    };
    Ok(
        match crate::plugin::spawner::is_our_descendant(nix::unistd::Pid::from_raw(pid))? {
            Some(false) => None,
            Some(true) => Some(format!(
                "pid {pid} (uid {}) is a plugin process or one a plugin started",
                cred.uid()
            )),
            None => Some(format!("pid {pid} is gone")),
        },
    )
}

/// One host connection: the stream, its slot under `max_connections`, and its timeouts.
#[derive(Debug)]
pub struct HostConnection {
    stream: UnixStream,
    state: Arc<ConnState>,
    _slot: OwnedSemaphorePermit,
    read_bytes: u64,
    handshake_ends: Instant,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    closing: bool,
}

impl HostConnection {
    fn new(stream: UnixStream, slot: OwnedSemaphorePermit, limits: &HostLimits) -> Self {
        let handshake_ends =
            Instant::now() + Duration::from_millis(limits.handshake_timeout_ms.into());
        HostConnection {
            stream,
            state: Arc::new(ConnState::new()),
            _slot: slot,
            read_bytes: 0,
            handshake_ends,
            idle: Duration::from_millis(limits.idle_timeout_ms.into()),
            timer: Box::pin(tokio::time::sleep_until(handshake_ends)),
            closing: false,
        }
    }

    /// Whether the connection has outstayed its welcome; if not, when to look again.
    fn expired(&self, now: Instant) -> Result<Instant, &'static str> {
        if self.read_bytes < HANDSHAKE_BYTES {
            return if now >= self.handshake_ends {
                Err("no HTTP/2 handshake within handshake_timeout_ms")
            } else {
                Ok(self.handshake_ends)
            };
        }
        let quiet_until = self.state.last_active() + self.idle;
        if self.state.in_flight.load(Ordering::Acquire) > 0 {
            return Ok(now + self.idle);
        }
        if now >= quiet_until {
            Err("idle for idle_timeout_ms with no call in flight")
        } else {
            Ok(quiet_until)
        }
    }
}

impl Connected for HostConnection {
    type ConnectInfo = HostConnInfo;

    fn connect_info(&self) -> HostConnInfo {
        HostConnInfo {
            peer: self.stream.connect_info(),
            state: self.state.clone(),
        }
    }
}

impl AsyncRead for HostConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.stream).poll_read(cx, buf);
        let got = buf.filled().len() - before;
        if got > 0 {
            let was = this.read_bytes;
            this.read_bytes = this.read_bytes.saturating_add(got as u64);
            this.state.touch();
            if was < HANDSHAKE_BYTES && this.read_bytes >= HANDSHAKE_BYTES {
                // The handshake is done: from now on the idle timeout is what counts.
                this.timer.as_mut().reset(Instant::now() + this.idle);
            }
        }
        // The timer is polled on every read, so its waker is registered while hyper waits for
        // bytes; when it fires, the connection either ends (EOF, once nothing is left to hand
        // over) or the timer is set again.
        while this.timer.as_mut().poll(cx).is_ready() {
            match this.expired(Instant::now()) {
                Ok(next) => this.timer.as_mut().reset(next),
                Err(_) if read.is_ready() => break,
                Err(why) => {
                    if !this.closing {
                        this.closing = true;
                        tracing::debug!("closing a host connection: {why}");
                    }
                    return Poll::Ready(Ok(()));
                }
            }
        }
        read
    }
}

impl AsyncWrite for HostConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Raises the soft limit on open files to the hard limit (systemd gives services 1024 soft), so
/// `max_connections` and the plugins' sockets fit. Failure is logged, not fatal.
pub fn raise_nofile_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::debug!(from = soft, to = hard, "raised the open-file limit"),
            Err(e) => tracing::warn!("cannot raise the open-file limit from {soft}: {e}"),
        },
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot read the open-file limit: {e}"),
    }
}
