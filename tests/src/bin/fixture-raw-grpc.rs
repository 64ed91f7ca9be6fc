//! Answers `Describe` and health checks properly, and every `BeforeToolCall` with a response
//! that is not valid gRPC, written frame by frame. `FIXTURE_RAW` says which:
//! - `two-messages`: two complete messages, then `grpc-status: 0`;
//! - `no-message`: `grpc-status: 0` with no message (trailers only);
//! - `no-status`: one message, then the stream ends without trailers;
//! - `compressed`: one message with the compressed flag set (no `grpc-encoding` was agreed);
//! - `cut-short`: a prefix declaring 100 bytes, 10 bytes of them, then `grpc-status: 0`;
//! - `over-limit`: a prefix declaring 5 MiB, then nothing more for a minute;
//! - `undecodable`: one message that is not protobuf, then `grpc-status: 0`;
//! - `bad-details`: `grpc-status: 7` with a `grpc-status-details-bin` that is not base64 (tonic
//!   0.14.9's client panics on this one);
//! - `http-404`: HTTP status 404 with no `grpc-status`;
//! - `two-statuses`: one message, then trailers with `grpc-status` twice (`0` and `7`);
//! - `never-ends`: one message, then nothing more for a minute (no trailers, no end);
//! - `headers-only`: the response headers, then nothing more for a minute.
//!
//! Two more starve the calls at the HTTP/2 level, on every connection accepted after
//! `Describe` was answered (the supervisor's channel for `Describe` and health checks came
//! before; its calls come on the next), and answer `BeforeToolCall` properly once the request
//! arrives, which it never does:
//! - `no-streams`: `SETTINGS_MAX_CONCURRENT_STREAMS` 0, so no call can open a stream;
//! - `no-window`: a stream window of 0 that is never opened, so no request body is sent.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use hookvisor_proto::v1::ToolCallDecision;
use hookvisor_proto::v1::plugin_server::PluginServer;
use hookvisor_tests::fixture::{Fixture, block_on, env_var, watch_parent};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::StreamBody;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use prost::Message;
use tokio::net::UnixListener;
use tonic::body::Body;
use tonic::service::Routes;
use tower::ServiceExt;

struct Nothing;

#[tonic::async_trait]
impl hookvisor_tests::fixture::Behaviour for Nothing {}

/// One gRPC message: the flag, the length and `payload`.
fn message(compressed: bool, declared: u32, payload: &[u8]) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_u8(u8::from(compressed));
    buf.put_u32(declared);
    buf.put_slice(payload);
    buf.freeze()
}

fn trailers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, HeaderValue::from_static(value));
    }
    map
}

type Frames = Vec<Frame<Bytes>>;

/// The misbehaving answer `how` asks for: the HTTP status, the frames, and whether to stall
/// after them (never ending the stream).
fn answer(how: &str) -> (StatusCode, Frames, bool) {
    let valid = ToolCallDecision::default().encode_to_vec();
    let ok = || Frame::trailers(trailers(&[("grpc-status", "0")]));
    let one = || Frame::data(message(false, valid.len() as u32, &valid));
    match how {
        "two-messages" => (StatusCode::OK, vec![one(), one(), ok()], false),
        "no-message" => (StatusCode::OK, vec![ok()], false),
        "no-status" => (StatusCode::OK, vec![one()], false),
        "compressed" => (
            StatusCode::OK,
            vec![Frame::data(message(true, valid.len() as u32, &valid)), ok()],
            false,
        ),
        "cut-short" => (
            StatusCode::OK,
            vec![Frame::data(message(false, 100, &[0; 10])), ok()],
            false,
        ),
        "over-limit" => (
            StatusCode::OK,
            vec![Frame::data(message(false, 5 << 20, &[]))],
            true,
        ),
        "undecodable" => (
            StatusCode::OK,
            vec![Frame::data(message(false, 4, &[0xff; 4])), ok()],
            false,
        ),
        "bad-details" => (
            StatusCode::OK,
            vec![Frame::trailers(trailers(&[
                ("grpc-status", "7"),
                ("grpc-message", "denied%20here"),
                ("grpc-status-details-bin", "!!not*base64!!"),
            ]))],
            false,
        ),
        "http-404" => (StatusCode::NOT_FOUND, vec![], false),
        "two-statuses" => {
            let mut both = trailers(&[("grpc-status", "0")]);
            both.append("grpc-status", HeaderValue::from_static("7"));
            (StatusCode::OK, vec![one(), Frame::trailers(both)], false)
        }
        "never-ends" => (StatusCode::OK, vec![one()], true),
        "headers-only" => (StatusCode::OK, vec![], true),
        // Answered by the fixture's own `BeforeToolCall` (see `main`); never reached here.
        "no-streams" | "no-window" => unreachable!("answered by the fixture"),
        other => panic!("FIXTURE_RAW: unknown behaviour {other:?}"),
    }
}

fn misbehave(how: &str) -> Response<Body> {
    let (status, frames, stall) = answer(how);
    let frames = futures_stream(frames, stall);
    let mut response = Response::new(Body::new(StreamBody::new(frames)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/grpc"));
    response
}

/// The frames one after another, then (when `stall`) a minute's silence.
fn futures_stream(
    frames: Frames,
    stall: bool,
) -> impl tokio_stream::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send {
    use tokio_stream::StreamExt;
    let stall = tokio_stream::iter(stall.then_some(()))
        .then(|()| tokio::time::sleep(Duration::from_secs(60)))
        .filter_map(|()| None);
    tokio_stream::iter(frames.into_iter().map(Ok)).chain(stall)
}

fn main() {
    watch_parent();
    let how = env_var("FIXTURE_RAW").unwrap_or_else(|| "two-messages".to_owned());
    block_on(async move {
        let path = env_var(hookvisor_proto::env::PLUGIN_SOCKET)
            .ok_or_else(|| std::io::Error::other("HOOKVISOR_PLUGIN_SOCKET is not set"))?;
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        let (_reporter, health) = tonic_health::server::health_reporter();
        let routes = Routes::new(health).add_service(PluginServer::new(Fixture(Nothing)));
        let starve = matches!(how.as_str(), "no-streams" | "no-window");
        let described = Arc::new(AtomicBool::new(false));
        loop {
            let (stream, _) = listener.accept().await?;
            let after_describe = described.load(Ordering::SeqCst);
            let described = described.clone();
            let routes = routes.clone();
            let how_here = how.clone();
            let how = how.clone();
            let service = tower::service_fn(move |request: Request<hyper::body::Incoming>| {
                let routes = routes.clone();
                let how = how.clone();
                let described = described.clone();
                async move {
                    match request.uri().path() {
                        "/hookvisor.v1.Plugin/BeforeToolCall" if !starve => {
                            return Ok::<_, Infallible>(misbehave(&how));
                        }
                        "/hookvisor.v1.Plugin/Describe" => described.store(true, Ordering::SeqCst),
                        _ => {}
                    }
                    let request = request.map(Body::new);
                    Ok(routes
                        .oneshot(request)
                        .await
                        .unwrap_or_else(|never| match never {}))
                }
            });
            let mut builder = auto::Builder::new(TokioExecutor::new()).http2_only();
            if after_describe {
                match how_here.as_str() {
                    "no-streams" => {
                        builder.http2().max_concurrent_streams(0);
                    }
                    "no-window" => {
                        builder.http2().initial_stream_window_size(0);
                    }
                    _ => {}
                }
            }
            tokio::spawn(async move {
                let _ = builder
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                    .await;
            });
        }
    })
}
