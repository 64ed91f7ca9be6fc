//! The connection the calls to one plugin go on: gRPC unary calls written directly on `h2`.
//!
//! Why not tonic's `Channel`: on the hot path it costs a tower `Buffer` task hop per call,
//! hyper's dispatch channel, and a task per request that pipes the body (tonic's body never says
//! it is complete), each a wake-up on a 2-core machine; `hookvisor bench` measured the
//! supervisor's CPU per verdict falling by about a third without them (docs/performance.md).
//! A unary call needs little of what they give: the request is encoded once, its HEADERS and
//! DATA frames go out together, and the answer is one message followed by trailers.
//!
//! What is kept from the client it replaces, so the contract's rules hold unchanged:
//! - the HTTP/2 settings hyper gives tonic's client (2 MiB stream and 5 MiB connection windows,
//!   16 KiB frames and header lists, a 1 MiB send buffer, no server push);
//! - the plugin message limit (§8), checked on the declared length before anything is buffered;
//! - the `grpc-timeout` header, the request id, and cancellation (dropping a call resets its
//!   stream);
//! - every failure is a [`Status`] of the shape tonic's client gives: a status the plugin sent
//!   has no source; one made on this side carries the `h2::Error` as its source, or a
//!   [`Malformed`] for a response that is not valid gRPC (no message, two, no `grpc-status`,
//!   compressed, over the limit, cut short), so `process::classify` tells a crash, an invalid
//!   response and a plugin's own error apart;
//! - a connection that ended (the plugin sent GOAWAY, say) is replaced at the next call, as
//!   tonic's `Channel` reconnects; every connection passes the peer check.
//!
//! Unlike tonic's, it never panics on a malformed `grpc-status-details-bin` trailer (tonic
//! 0.14.9 `expect`s valid base64 there): the details are not read at all.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use h2::client::SendRequest;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
use prost::Message;
use tokio::task::JoinHandle;
use tonic::{Code, Status};

use super::peer::{MAX_MESSAGE_BYTES, Peer, connect_checked};
use super::remote::Remote;

/// The plugin service's methods the supervisor calls on the hot path.
/// (Whole URIs: the authority is `localhost`, as tonic, grpc-go and grpc-js send on Unix sockets.)
pub const BEFORE_TOOL_CALL: &str = "http://localhost/hookvisor.v1.Plugin/BeforeToolCall";
/// See [`BEFORE_TOOL_CALL`].
pub const BEFORE_SESSION_CREATE: &str = "http://localhost/hookvisor.v1.Plugin/BeforeSessionCreate";
/// See [`BEFORE_TOOL_CALL`].
pub const SESSION_CREATED: &str = "http://localhost/hookvisor.v1.Plugin/SessionCreated";

/// hyper's client defaults, which tonic's `Channel` used.
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;
const MAX_FRAME: u32 = 16 * 1024;
const MAX_HEADER_LIST: u32 = 16 * 1024;
const MAX_SEND_BUFFER: usize = 1024 * 1024;
const INITIAL_MAX_SEND_STREAMS: usize = 100;
const MAX_LOCAL_ERROR_RESETS: usize = 1024;

/// The gRPC message prefix: a compression flag and a 4-byte big-endian length.
const PREFIX: usize = 5;

/// The call connection to one plugin instance. Clones share it.
#[derive(Debug, Clone)]
pub struct Link {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    target: Target,
    current: Mutex<Connection>,
}

/// Where the connections go.
#[derive(Debug, Clone)]
enum Target {
    /// A spawned plugin's Unix socket, with the peer every connection must reach.
    Local { socket: PathBuf, peer: Peer },
    /// A remote plugin (contract §2.6): TCP and TLS.
    Remote(Arc<Remote>),
}

/// One HTTP/2 connection: the handle calls open streams with, and the task that drives it
/// (aborted when the last handle goes).
#[derive(Debug, Clone)]
struct Connection {
    send: SendRequest<Bytes>,
    driver: Arc<Driver>,
}

#[derive(Debug)]
struct Driver(JoinHandle<()>);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Link {
    /// Connects to the plugin's socket (checking the peer, as every connection does).
    pub async fn connect(socket: &Path, peer: Peer) -> io::Result<Link> {
        Link::to(Target::Local {
            socket: socket.to_path_buf(),
            peer,
        })
        .await
    }

    /// Connects to a remote plugin (TCP, TLS with the client certificate, `h2` by ALPN).
    pub async fn connect_remote(remote: Arc<Remote>) -> io::Result<Link> {
        Link::to(Target::Remote(remote)).await
    }

    async fn to(target: Target) -> io::Result<Link> {
        let current = Connection::open(&target).await?;
        Ok(Link {
            inner: Arc::new(Inner {
                target,
                current: Mutex::new(current),
            }),
        })
    }

    /// A link on a connection of its own to the same plugin (for a call sent again after its
    /// connection broke).
    async fn fresh(&self) -> io::Result<Link> {
        Link::to(self.inner.target.clone()).await
    }

    /// Attempt number `attempt` of one call (`process::call`): the first on this link's
    /// connection, each later one on a connection of its own, so that a response that broke
    /// the connection fails again without taking other calls with it.
    pub async fn attempt<Req: Message, Resp: Message + Default>(
        &self,
        attempt: u64,
        path: &'static str,
        request: &Req,
        timeout: Duration,
        tags: Option<Tags<'_>>,
    ) -> Result<Resp, Status> {
        if attempt == 1 {
            return self.unary(path, request, timeout, tags).await;
        }
        let fresh = self
            .fresh()
            .await
            .map_err(|e| Status::from_error(Box::new(e)))?;
        fresh.unary(path, request, timeout, tags).await
    }

    /// The connection to use: the current one, or a new one when it has ended.
    async fn connection(&self) -> Result<Connection, Status> {
        let current = self.lock().clone();
        if !current.driver.0.is_finished() {
            return Ok(current);
        }
        let fresh = Connection::open(&self.inner.target)
            .await
            .map_err(|e| Status::from_error(Box::new(e)))?;
        let mut slot = self.lock();
        if slot.driver.0.is_finished() {
            *slot = fresh.clone();
            Ok(fresh)
        } else {
            // Another call replaced it first; use that one, and let this one go.
            Ok(slot.clone())
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // Nothing panics while holding it, but a poisoned slot still holds a valid connection.
        self.inner
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One unary call of `path` (one of the constants above) with `request`. `timeout` goes in
    /// `grpc-timeout` (the caller bounds the call itself), `tags` in
    /// `x-hookvisor-request-id` and `traceparent`.
    pub async fn unary<Req: Message, Resp: Message + Default>(
        &self,
        path: &'static str,
        request: &Req,
        timeout: Duration,
        tags: Option<Tags<'_>>,
    ) -> Result<Resp, Status> {
        let body = encode(request)?;
        let mut head = head(path, timeout, tags)?;
        if let Target::Remote(remote) = &self.inner.target {
            *head.uri_mut() = remote.uri(path)?;
        }
        let connection = self.connection().await?;
        let mut send = connection.send.ready().await.map_err(h2_status)?;
        let (response, mut stream) = send.send_request(head, false).map_err(h2_status)?;
        stream.send_data(body, true).map_err(h2_status)?;
        let response = response.await.map_err(h2_status)?;
        let (parts, mut body) = response.into_parts();
        if let Some(status) = ended_early(parts.status, &parts.headers) {
            return Err(status);
        }
        let message = read_message(&mut body).await?;
        let trailers = body.trailers().await.map_err(h2_status)?;
        decode(the_message(message, trailers.as_ref())?)
    }
}

/// The status of a response that ends with its headers: a trailers-only response (the status
/// is in the headers, and there is no body), or an HTTP status other than 200.
fn ended_early(status: StatusCode, headers: &HeaderMap) -> Option<Status> {
    if let Some(status) = grpc_status(headers) {
        return Some(match status {
            Ok(()) => malformed("the response has no message"),
            Err(status) => status,
        });
    }
    (status != StatusCode::OK).then(|| http_status(status))
}

/// The one message of a response whose body and trailers have been read.
fn the_message(message: Option<Bytes>, trailers: Option<&HeaderMap>) -> Result<Bytes, Status> {
    match trailers.and_then(grpc_status) {
        Some(Ok(())) => message.ok_or_else(|| malformed("the response has no message")),
        Some(Err(status)) => Err(status),
        None => Err(malformed(
            "the response ended without a grpc-status trailer",
        )),
    }
}

fn decode<Resp: Message + Default>(message: Bytes) -> Result<Resp, Status> {
    Resp::decode(message).map_err(|e| malformed(format!("the message does not decode: {e}")))
}

/// What a plugin's response means, from its parts as they would arrive (HTTP status, headers,
/// DATA chunks, trailers): the same steps as a live call takes. For the fuzz targets
/// ([`crate::fuzzing`]).
pub fn interpret<Resp: Message + Default>(
    status: StatusCode,
    headers: &HeaderMap,
    chunks: impl IntoIterator<Item = Bytes>,
    trailers: Option<&HeaderMap>,
) -> Result<Resp, Status> {
    if let Some(status) = ended_early(status, headers) {
        return Err(status);
    }
    let mut assembler = Assembler::default();
    for chunk in chunks {
        assembler.feed(chunk)?;
    }
    decode(the_message(assembler.end()?, trailers)?)
}

impl Connection {
    async fn open(target: &Target) -> io::Result<Connection> {
        match target {
            Target::Local { socket, peer } => {
                Connection::handshake(connect_checked(socket, *peer).await?, None).await
            }
            Target::Remote(remote) => {
                Connection::handshake(remote.connect().await?, Some(KEEPALIVE)).await
            }
        }
    }

    /// HTTP/2 over `stream`; with `keepalive` (interval, timeout), a PING each interval, and
    /// the connection ended when one is not answered in time.
    async fn handshake<S>(
        stream: S,
        keepalive: Option<(Duration, Duration)>,
    ) -> io::Result<Connection>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (send, connection) = h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_frame_size(MAX_FRAME)
            .max_header_list_size(MAX_HEADER_LIST)
            .max_send_buffer_size(MAX_SEND_BUFFER)
            .initial_max_send_streams(INITIAL_MAX_SEND_STREAMS)
            .max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESETS))
            .enable_push(false)
            .handshake::<_, Bytes>(stream)
            .await
            .map_err(io::Error::other)?;
        let mut connection = connection;
        let pings = keepalive.and_then(|k| connection.ping_pong().map(|p| (p, k)));
        let driver = tokio::spawn(async move {
            let ended = match pings {
                None => connection.await,
                Some((pings, (interval, timeout))) => tokio::select! {
                    ended = &mut connection => ended,
                    why = keep_alive(pings, interval, timeout) => {
                        tracing::warn!("a remote plugin connection is closed: {why}");
                        Ok(())
                    }
                },
            };
            if let Err(e) = ended {
                tracing::debug!("a plugin connection ended: {e}");
            }
        });
        Ok(Connection {
            send,
            driver: Arc::new(Driver(driver)),
        })
    }
}

/// The keep-alive of a remote plugin's connection (interval, timeout): a load balancer or NAT
/// that drops an idle connection without a word would otherwise leave the next call waiting on
/// a dead connection until its deadline. Ending it makes the next call dial a new one.
const KEEPALIVE: (Duration, Duration) = (Duration::from_secs(10), Duration::from_secs(5));

/// PINGs the peer every `interval`; resolves (saying why) when one is not answered within
/// `timeout` or cannot be sent.
async fn keep_alive(mut pings: h2::PingPong, interval: Duration, timeout: Duration) -> String {
    loop {
        tokio::time::sleep(interval).await;
        match tokio::time::timeout(timeout, pings.ping(h2::Ping::opaque())).await {
            Ok(Ok(_pong)) => {}
            Ok(Err(e)) => return format!("its keep-alive PING failed ({e})"),
            Err(_) => {
                return format!(
                    "no answer to a keep-alive PING within {} ms",
                    timeout.as_millis()
                );
            }
        }
    }
}

/// `message` as one uncompressed gRPC message.
fn encode<M: Message>(message: &M) -> Result<Bytes, Status> {
    let len = message.encoded_len();
    if len > MAX_MESSAGE_BYTES {
        return Err(Status::out_of_range(format!(
            "message length too large: found {len} bytes, the limit is: {MAX_MESSAGE_BYTES} bytes"
        )));
    }
    let mut buf = BytesMut::with_capacity(PREFIX + len);
    buf.put_u8(0);
    buf.put_u32(len as u32);
    message
        .encode(&mut buf)
        .map_err(|e| Status::internal(e.to_string()))?;
    Ok(buf.freeze())
}

/// `grpc-timeout`.
const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// What a call made for a host call carries besides its deadline (contract §6, §9).
#[derive(Debug, Clone, Copy)]
pub struct Tags<'a> {
    /// The host call's request id (`x-hookvisor-request-id`).
    pub request_id: &'a str,
    /// While tracing is on, the W3C trace context of this call's span (`traceparent`).
    pub traceparent: Option<&'a str>,
}

/// `traceparent` (contract §9).
const TRACEPARENT: HeaderName = HeaderName::from_static(hookvisor_proto::metadata::TRACEPARENT);

/// The request head: a gRPC POST of `path` with its deadline, request id and trace context.
/// Every name and every value but the three last are static: nothing is copied for them.
fn head(
    path: &'static str,
    timeout: Duration,
    tags: Option<Tags<'_>>,
) -> Result<Request<()>, Status> {
    let mut request = Request::new(());
    *request.method_mut() = Method::POST;
    *request.uri_mut() = http::Uri::from_static(path);
    let headers = request.headers_mut();
    headers.reserve(6);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(header::TE, HeaderValue::from_static("trailers"));
    headers.insert(header::USER_AGENT, HeaderValue::from_static("hookvisor"));
    let timeout = HeaderValue::try_from(grpc_timeout(timeout))
        .map_err(|e| Status::internal(e.to_string()))?;
    headers.insert(GRPC_TIMEOUT, timeout);
    let Some(tags) = tags else {
        return Ok(request);
    };
    if let Ok(id) = HeaderValue::from_str(tags.request_id) {
        headers.insert(crate::decide::request_id::HEADER, id);
    }
    if let Some(mut parent) = tags.traceparent.and_then(|t| HeaderValue::from_str(t).ok()) {
        // New on every call: "never indexed" keeps it out of HPACK's table (no churn there,
        // nothing useful evicted).
        parent.set_sensitive(true);
        headers.insert(TRACEPARENT, parent);
    }
    Ok(request)
}

/// `grpc-timeout` (at most 8 digits and a unit, gRPC over HTTP/2): whole milliseconds, rounded
/// up, while they fit, else seconds. (Milliseconds, not microseconds: a value that repeats is
/// sent as an index into HPACK's table, and the supervisor enforces its own deadline anyway.)
fn grpc_timeout(timeout: Duration) -> String {
    const MAX: u128 = 99_999_999;
    let millis = timeout.as_micros().div_ceil(1000);
    if millis <= MAX {
        format!("{millis}m")
    } else {
        format!("{}S", timeout.as_secs().min(MAX as u64))
    }
}

/// Reads the response's one message (`None`: the body ended without one), bounded by the
/// plugin message limit; a second message is refused.
/// Reads the response body: at most one message (however many empty DATA frames come, the
/// caller's deadline bounds the wait).
async fn read_message(body: &mut h2::RecvStream) -> Result<Option<Bytes>, Status> {
    let mut assembler = Assembler::default();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(h2_status)?;
        let _ = body.flow_control().release_capacity(chunk.len());
        assembler.feed(chunk)?;
    }
    assembler.end()
}

/// Puts the one message of a response body together from its DATA chunks: the prefix is
/// checked (not compressed, within the limit) before anything is buffered, and a byte past the
/// message is a second message.
#[derive(Debug, Default)]
struct Assembler {
    buf: BytesMut,
    want: Option<usize>,
    message: Option<Bytes>,
}

impl Assembler {
    /// Takes one DATA chunk.
    fn feed(&mut self, chunk: Bytes) -> Result<(), Status> {
        if self.message.is_some() {
            return if chunk.is_empty() {
                Ok(())
            } else {
                Err(more_than_one())
            };
        }
        if self.buf.is_empty() && self.want.is_none() && chunk.len() >= PREFIX {
            // The usual case: the whole message in one frame, taken without a copy.
            let len = declared(&chunk)?;
            if chunk.len() == PREFIX + len {
                let mut chunk = chunk;
                chunk.advance(PREFIX);
                self.message = Some(chunk);
                return Ok(());
            }
        }
        self.buf.extend_from_slice(&chunk);
        if self.want.is_none() && self.buf.len() >= PREFIX {
            self.want = Some(PREFIX + declared(&self.buf)?);
        }
        if let Some(want) = self.want
            && self.buf.len() >= want
        {
            if self.buf.len() > want {
                return Err(more_than_one());
            }
            let mut message = std::mem::take(&mut self.buf).freeze();
            message.advance(PREFIX);
            self.message = Some(message);
        }
        Ok(())
    }

    /// The body has ended: its message, if it had one.
    fn end(self) -> Result<Option<Bytes>, Status> {
        if let Some(message) = self.message {
            return Ok(Some(message));
        }
        if self.buf.is_empty() {
            Ok(None)
        } else {
            Err(malformed(format!(
                "the response ended inside a message ({} bytes of {})",
                self.buf.len(),
                self.want.unwrap_or(PREFIX)
            )))
        }
    }
}

fn more_than_one() -> Status {
    malformed("the response has more than one message")
}

/// The declared length of the message starting `bytes`, within the limit; compressed
/// messages were not asked for.
fn declared(bytes: &[u8]) -> Result<usize, Status> {
    match bytes.first() {
        Some(0) => {}
        Some(1) => {
            return Err(malformed(
                "the message is compressed, which the supervisor never asks for",
            ));
        }
        _ => return Err(malformed("the message has an invalid prefix")),
    }
    let len = bytes
        .get(1..PREFIX)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_be_bytes) as usize;
    if len > MAX_MESSAGE_BYTES {
        return Err(malformed(format!(
            "the message is larger than {MAX_MESSAGE_BYTES} bytes ({len} bytes declared)"
        )));
    }
    Ok(len)
}

/// The `grpc-status` in `headers` (`Ok(())` for OK), with its percent-decoded `grpc-message`.
///
/// Two `grpc-status` values (say `0` and `7`) have no one meaning: that is an invalid response,
/// never the first value read. A value other than a known code is `UNKNOWN`, never OK.
fn grpc_status(headers: &HeaderMap) -> Option<Result<(), Status>> {
    let mut values = headers.get_all("grpc-status").iter();
    let code = values.next()?;
    if values.next().is_some() {
        return Some(Err(malformed("the response has more than one grpc-status")));
    }
    let code = Code::from_bytes(code.as_bytes());
    if code == Code::Ok {
        return Some(Ok(()));
    }
    let message = headers
        .get("grpc-message")
        .map(|m| percent_decode(m.as_bytes()))
        .unwrap_or_default();
    Some(Err(Status::new(code, message)))
}

/// `%XX` sequences decoded; the rest as it is; invalid UTF-8 replaced.
fn percent_decode(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        let hex = |j: usize| bytes.get(j).and_then(|b| (*b as char).to_digit(16));
        if byte == b'%'
            && let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(byte);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The gRPC code of a response that is not HTTP 200 and carries no `grpc-status`
/// (gRPC's HTTP-to-gRPC status mapping, as tonic applies it).
fn http_status(status: StatusCode) -> Status {
    let code = match status {
        StatusCode::BAD_REQUEST => Code::Internal,
        StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        StatusCode::FORBIDDEN => Code::PermissionDenied,
        StatusCode::NOT_FOUND => Code::Unimplemented,
        StatusCode::TOO_MANY_REQUESTS
        | StatusCode::BAD_GATEWAY
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::GATEWAY_TIMEOUT => Code::Unavailable,
        _ => Code::Unknown,
    };
    Status::new(code, format!("the response has HTTP status {status}"))
}

/// A response that is not valid gRPC (`process::classify` reports it as an invalid response).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

fn malformed(what: impl Into<String>) -> Status {
    Status::from_error(Box::new(Malformed(what.into())))
}

/// An error of the HTTP/2 layer, as tonic makes it: the `h2::Error` is the status's source.
fn h2_status(error: h2::Error) -> Status {
    Status::from_error(Box::new(error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_fit_eight_digits() {
        assert_eq!(grpc_timeout(Duration::from_millis(250)), "250m");
        assert_eq!(
            grpc_timeout(Duration::from_micros(1_001)),
            "2m",
            "rounded up"
        );
        assert_eq!(grpc_timeout(Duration::from_micros(1)), "1m");
        assert_eq!(grpc_timeout(Duration::from_secs(100)), "100000m");
        assert_eq!(grpc_timeout(Duration::from_secs(99_999)), "99999000m");
        assert_eq!(grpc_timeout(Duration::from_secs(200_000)), "200000S");
    }

    #[test]
    fn messages_are_percent_decoded() {
        assert_eq!(percent_decode(b"a%20b%zz%"), "a b%zz%");
        assert_eq!(percent_decode(b"%E2%9C%93"), "\u{2713}");
        assert_eq!(percent_decode(b"%FF"), "\u{FFFD}");
    }

    #[test]
    fn prefixes_are_checked() {
        assert_eq!(declared(&[0, 0, 0, 0, 7]).ok(), Some(7));
        assert!(declared(&[1, 0, 0, 0, 7]).is_err());
        assert!(declared(&[2, 0, 0, 0, 7]).is_err());
        let over = (MAX_MESSAGE_BYTES as u32 + 1).to_be_bytes();
        let status = declared(&[0, over[0], over[1], over[2], over[3]]).err();
        let source = status.as_ref().and_then(std::error::Error::source);
        assert!(source.is_some_and(|s| s.is::<Malformed>()));
    }

    #[test]
    fn grpc_status_reads_code_and_message() {
        let mut headers = HeaderMap::new();
        assert!(grpc_status(&headers).is_none());
        headers.insert("grpc-status", HeaderValue::from_static("0"));
        assert!(matches!(grpc_status(&headers), Some(Ok(()))));
        headers.insert("grpc-status", HeaderValue::from_static("7"));
        headers.insert("grpc-message", HeaderValue::from_static("no%20way"));
        headers.insert(
            "grpc-status-details-bin",
            HeaderValue::from_static("!!not base64"),
        );
        let status = grpc_status(&headers).and_then(Result::err);
        assert_eq!(
            status.as_ref().map(Status::code),
            Some(Code::PermissionDenied)
        );
        assert_eq!(status.as_ref().map(Status::message), Some("no way"));
    }

    #[test]
    fn a_second_grpc_status_is_malformed_and_garbage_is_never_ok() {
        let mut headers = HeaderMap::new();
        headers.append("grpc-status", HeaderValue::from_static("0"));
        headers.append("grpc-status", HeaderValue::from_static("7"));
        let status = grpc_status(&headers).and_then(Result::err);
        let source = status.as_ref().and_then(std::error::Error::source);
        assert!(source.is_some_and(|s| s.is::<Malformed>()), "{status:?}");
        for garbage in ["00", "0 ", "ok", "-0", "99"] {
            let mut headers = HeaderMap::new();
            headers.insert("grpc-status", HeaderValue::from_static(garbage));
            assert!(
                matches!(grpc_status(&headers), Some(Err(_))),
                "{garbage:?} read as OK"
            );
        }
    }
}
