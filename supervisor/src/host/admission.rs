//! Admission of host calls: the bounds on calls in flight, the time a request body may take,
//! and tonic's own decode failures told to the host as what they are.
//!
//! The layer sits in front of every service on the host socket and sees each call as soon as its
//! headers arrive, before its body is read. A call past `max_calls_in_flight` (all connections)
//! or `max_calls_per_connection` gets `RESOURCE_EXHAUSTED` at once and its body is never
//! buffered. So, whatever hosts send, at most `max_calls_in_flight` request bodies of at most
//! [`HOST_MAX_REQUEST_BYTES`] are held at a time. A body that has not arrived `body_timeout_ms`
//! after its headers ends the call with `DEADLINE_EXCEEDED`, freeing its slot: a host that opens
//! streams and never finishes them holds slots for that long at most. `reserved_admin_calls`
//! slots beyond `max_calls_in_flight` serve `Admin` and `Health` alone, so an operator can always
//! look and act. The time the headers arrived goes with the request ([`Arrived`]): the host's
//! deadline counts from it.
//!
//! tonic answers a malformed protobuf message (or a string field that is not UTF-8) with
//! `INTERNAL` and an oversized one with `OUT_OF_RANGE`; both are bad input from the host, so they
//! are turned into `INVALID_ARGUMENT`, keeping tonic's text (it names the field, or the size and
//! the limit).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tonic::codegen::http;
use tonic::{Code, Status};
use tower::{Layer, Service};

use crate::files::config::HostLimits;
use crate::host::connections::HostConnInfo;

/// The largest request a host may send, in bytes: 1.25 MiB (`docs/contract.md` §8).
pub use hookvisor_proto::limits::HOST_MAX_REQUEST_BYTES;

/// When a call's headers arrived (a request extension): its deadline counts from here.
#[derive(Debug, Clone, Copy)]
pub struct Arrived(pub Instant);

/// Applies the call limits of [`HostLimits`] to a service.
#[derive(Debug, Clone)]
pub struct AdmissionLayer {
    global: Arc<Semaphore>,
    global_limit: u32,
    /// Slots only `Admin` and `Health` calls may take.
    reserved: Arc<Semaphore>,
    per_connection: u32,
    body_timeout: Duration,
}

impl AdmissionLayer {
    /// The layer for `limits`; one per server (the global count is shared by its clones).
    pub fn new(limits: &HostLimits) -> Self {
        AdmissionLayer {
            global: Arc::new(Semaphore::new(limits.max_calls_in_flight as usize)),
            global_limit: limits.max_calls_in_flight,
            reserved: Arc::new(Semaphore::new(limits.reserved_admin_calls as usize)),
            per_connection: limits.max_calls_per_connection,
            body_timeout: Duration::from_millis(limits.body_timeout_ms.into()),
        }
    }
}

/// Whether `path` is an `Admin` or `Health` method, which may use the reserved slots.
fn operators(path: &str) -> bool {
    path.starts_with("/hookvisor.v1.Admin/") || path.starts_with("/grpc.health.v1.Health/")
}

impl<S> Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Admission<S> {
        Admission {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`AdmissionLayer`] makes.
#[derive(Debug, Clone)]
pub struct Admission<S> {
    inner: S,
    layer: AdmissionLayer,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody> Service<http::Request<ReqBody>> for Admission<S>
where
    S: Service<http::Request<TimedBody<ReqBody>>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Body + Unpin + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let arrived = Instant::now();
        let connection = request
            .extensions()
            .get::<HostConnInfo>()
            .map(|info| info.state.clone());
        let on_connection = match connection {
            Some(state) => match state.enter(self.layer.per_connection as usize) {
                Some(call) => Some(call),
                None => {
                    return refuse(format!(
                        "this connection is at its limit of {} calls in flight \
                         (max_calls_per_connection)",
                        self.layer.per_connection
                    ));
                }
            },
            None => None,
        };
        let permit = match self.layer.global.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => match operators(request.uri().path())
                .then(|| self.layer.reserved.clone().try_acquire_owned().ok())
                .flatten()
            {
                Some(permit) => permit,
                None => {
                    return refuse(format!(
                        "hookvisor is at its limit of {} calls in flight (max_calls_in_flight)",
                        self.layer.global_limit
                    ));
                }
            },
        };
        let done = Arc::new(AtomicBool::new(false));
        let (mut parts, body) = request.into_parts();
        parts.extensions.insert(Arrived(arrived));
        let request = http::Request::from_parts(
            parts,
            TimedBody {
                inner: body,
                done: done.clone(),
            },
        );
        let body_timeout = self.layer.body_timeout;
        // The service that was polled ready serves this call; a fresh clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let late = async {
                tokio::time::sleep_until(arrived + body_timeout).await;
                if done.load(Ordering::Acquire) {
                    std::future::pending::<()>().await;
                }
            };
            let response = tokio::select! {
                response = inner.call(request) => response.map(decode_failure_is_invalid_argument),
                () = late => Ok(Status::deadline_exceeded(format!(
                    "the request body did not arrive within {} ms of its headers \
                     (body_timeout_ms)",
                    body_timeout.as_millis()
                ))
                .into_http()),
            };
            drop(permit);
            drop(on_connection);
            response
        })
    }
}

/// A request body that says when it has ended (its last frame read, or known to be empty).
#[derive(Debug)]
pub struct TimedBody<B> {
    inner: B,
    done: Arc<AtomicBool>,
}

impl<B: Body + Unpin> Body for TimedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.done.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn refuse<E: Send + 'static>(
    message: String,
) -> BoxFuture<Result<http::Response<tonic::body::Body>, E>> {
    Box::pin(std::future::ready(Ok(
        Status::resource_exhausted(message).into_http()
    )))
}

/// tonic's decode failures (a trailers-only response: the status is in the headers) become
/// `INVALID_ARGUMENT`; everything else passes unchanged.
fn decode_failure_is_invalid_argument(
    response: http::Response<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    let Some(status) = Status::from_header_map(response.headers()) else {
        return response;
    };
    let is_decode_failure = match status.code() {
        Code::Internal => status
            .message()
            .starts_with("failed to decode Protobuf message"),
        Code::OutOfRange => status
            .message()
            .starts_with("Error, decoded message length too large"),
        _ => false,
    };
    if !is_decode_failure {
        return response;
    }
    Status::invalid_argument(format!("request: {}", status.message())).into_http()
}
