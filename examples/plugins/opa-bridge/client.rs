//! The one request the bridge makes: `POST /v1/data/PATH` to OPA with `{"input": ...}`, over
//! HTTP/1.1 with kept-alive connections (hyper-util's client, from the hyper already under
//! tonic; plain HTTP only, for an OPA beside the gateway). Everything OPA sends is bounded: the
//! whole exchange by the timeout, the body by [`MAX_BODY_BYTES`], the headers by hyper's own
//! limits.

use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{StatusCode, Uri, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// Largest response body read from OPA; a larger one is an error. A result's params are capped
/// at 256 KiB by the contract (§8), so 1 MiB leaves room for OPA's own fields.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Longest piece of an error body quoted in a message, in characters.
const QUOTE_CHARS: usize = 200;

/// How long an idle connection to OPA is kept for the next call.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why OPA gave no usable answer; each message names the URL.
#[derive(Debug)]
pub enum Failure {
    /// No answer within the timeout.
    Timeout(String),
    /// Connecting, sending or reading failed.
    Unreachable(String),
    /// A status other than 200, or a body over the limit.
    Answer(String),
}

/// A Data API client for one document.
pub struct Opa {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
}

impl Opa {
    /// A client for `uri` (`http://HOST:PORT/v1/data/PATH`). Builds no connection yet.
    pub fn new(uri: Uri, connect_timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(connect_timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .build(connector);
        Self { client, uri }
    }

    /// The URL asked.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// Posts `body` (the JSON `{"input": ...}`) and returns OPA's 200 answer body.
    pub async fn query(&self, body: Vec<u8>, timeout: Duration) -> Result<Bytes, Failure> {
        let exchange = async {
            let request = hyper::Request::post(self.uri.clone())
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| Failure::Unreachable(format!("cannot build the request: {e}")))?;
            let response = self.client.request(request).await.map_err(|e| {
                Failure::Unreachable(format!("OPA at {} is unreachable: {}", self.uri, chain(&e)))
            })?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    if e.downcast_ref::<http_body_util::LengthLimitError>()
                        .is_some()
                    {
                        Failure::Answer(format!(
                            "OPA's answer from {} is over {MAX_BODY_BYTES} bytes",
                            self.uri
                        ))
                    } else {
                        Failure::Unreachable(format!(
                            "reading OPA's answer from {} failed: {}",
                            self.uri,
                            chain(e.as_ref())
                        ))
                    }
                })?
                .to_bytes();
            if status != StatusCode::OK {
                return Err(Failure::Answer(format!(
                    "OPA at {} answered HTTP {status}: {}",
                    self.uri,
                    error_text(&body)
                )));
            }
            Ok(body)
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(Failure::Timeout(format!(
                "OPA at {} did not answer within {} ms",
                self.uri,
                timeout.as_millis()
            ))),
        }
    }
}

/// An error and its sources, joined with `: ` (hyper's top-level errors say little alone).
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// OPA's error body, short: its `code` and `message` when it is OPA's JSON error, else the
/// start of the text.
fn error_text(body: &[u8]) -> String {
    use hookvisor_plugin::serde_json::{self, Value};
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(error) => match (error["code"].as_str(), error["message"].as_str()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            _ => error.to_string(),
        },
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    hookvisor_plugin::decision::truncate(text.trim(), QUOTE_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_quotes_opa_errors_briefly() {
        let body = br#"{"code":"internal_error","message":"eval_conflict_error: complete rules must not produce multiple outputs"}"#;
        assert_eq!(
            error_text(body),
            "internal_error: eval_conflict_error: complete rules must not produce multiple outputs"
        );
        assert_eq!(error_text(b"  bad gateway\n"), "bad gateway");
        assert_eq!(error_text(&[b'x'; 500]).chars().count(), QUOTE_CHARS);
    }
}
