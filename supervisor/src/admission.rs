//! Admission of host calls: the bounds on calls in flight, and tonic's own decode failures told
//! to the host as what they are.
//!
//! The layer sits in front of every service on the host socket and sees each call as soon as its
//! headers arrive, before its body is read. A call past `max_calls_in_flight` (all connections)
//! or `max_calls_per_connection` gets `RESOURCE_EXHAUSTED` at once and its body is never
//! buffered. So, whatever hosts send, at most `max_calls_in_flight` request bodies of at most
//! [`HOST_MAX_REQUEST_BYTES`] are held at a time; a host that opens streams and never finishes
//! their bodies holds its own slots and nobody else's memory.
//!
//! tonic answers a malformed protobuf message (or a string field that is not UTF-8) with
//! `INTERNAL` and an oversized one with `OUT_OF_RANGE`; both are bad input from the host, so they
//! are turned into `INVALID_ARGUMENT`, keeping tonic's text (it names the field, or the size and
//! the limit).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::Semaphore;
use tonic::codegen::http;
use tonic::{Code, Status};
use tower::{Layer, Service};

use crate::config::HostLimits;
use crate::connections::HostConnInfo;

/// The largest request a host may send, in bytes: 1.25 MiB (`docs/contract.md` §8).
pub use hookvisor_proto::limits::HOST_MAX_REQUEST_BYTES;

/// Applies the call limits of [`HostLimits`] to a service.
#[derive(Debug, Clone)]
pub struct AdmissionLayer {
    global: Arc<Semaphore>,
    global_limit: u32,
    per_connection: u32,
}

impl AdmissionLayer {
    /// The layer for `limits`; one per server (the global count is shared by its clones).
    pub fn new(limits: &HostLimits) -> Self {
        AdmissionLayer {
            global: Arc::new(Semaphore::new(limits.max_calls_in_flight as usize)),
            global_limit: limits.max_calls_in_flight,
            per_connection: limits.max_calls_per_connection,
        }
    }
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
    S: Service<http::Request<ReqBody>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
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
        let Ok(permit) = self.layer.global.clone().try_acquire_owned() else {
            return refuse(format!(
                "hookvisor is at its limit of {} calls in flight (max_calls_in_flight)",
                self.layer.global_limit
            ));
        };
        // The service that was polled ready serves this call; a fresh clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let response = inner.call(request).await;
            drop(permit);
            drop(on_connection);
            response.map(decode_failure_is_invalid_argument)
        })
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
