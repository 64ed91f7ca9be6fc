//! The checks the fuzz targets (`fuzz/`, run with cargo-fuzz) make on arbitrary bytes, kept in
//! the library so that `cargo test` replays the kept corpora with the very same code
//! (`supervisor/tests/fuzz_corpora.rs`). Each check panics when an invariant breaks; that is
//! what a fuzzer reports as a crash.
//!
//! Everything that parses outside input is here: the host's JSON through the §8 parser (in
//! differential against serde_json), a plugin's response as it arrives (headers, DATA chunks,
//! trailers), the TOML configuration, and the audit line built from whatever strings a host and
//! the plugins supplied.
// Panicking on a broken invariant is this module's whole job; the daemon never calls it.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use bytes::Bytes;
use hookvisor_proto::v1::{
    PluginResult, ToolCallContext, ToolCallDecision, ToolCallRequest, ToolCallVerdict,
};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::Value;

use crate::decide::limits::{self, JsonError};

/// The §8 parser against serde_json on the same text: what the parser accepts, serde_json
/// accepts with the same canonical text, and that text parses back to itself; what it refuses
/// as a syntax error, serde_json refuses too (but for the one key serde_json reserves for
/// numbers). A limit or a duplicate key are rules of §8 alone.
pub fn json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let ours = limits::parse_value(text);
    let theirs = serde_json::from_str::<Value>(text);
    match ours {
        Ok(value) => {
            let theirs = theirs.unwrap_or_else(|e| panic!("serde_json refuses what §8 took: {e}"));
            let canonical = limits::canonical(&value);
            assert_eq!(
                canonical,
                limits::canonical(&theirs),
                "canonical texts differ"
            );
            let again = limits::parse_value(&canonical)
                .unwrap_or_else(|e| panic!("the canonical text does not parse: {e}"));
            assert_eq!(
                limits::canonical(&again),
                canonical,
                "canonical is not stable"
            );
            if value.is_object() {
                assert!(limits::parse_object(text).is_ok(), "parse_object differs");
            }
        }
        Err(JsonError::Syntax(message)) => {
            if theirs.is_ok() {
                assert!(
                    message.contains("is reserved"),
                    "§8 refuses as a syntax error what serde_json takes: {message}"
                );
            }
        }
        Err(_) => {}
    }
}

/// A plugin's response, taken apart from `data`: an HTTP status, a `grpc-status` in the headers
/// or not, the body cut into DATA chunks, and trailers. Whatever it is, it is never a decision
/// unless it is exactly one uncompressed message in a 200 response whose trailers carry one
/// `grpc-status: 0` (and none in the headers).
pub fn plugin_response(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    const STATUSES: [u16; 8] = [200, 200, 200, 200, 404, 500, 503, 204];
    let status = StatusCode::from_u16(STATUSES[usize::from(data[0] % 8)]).unwrap_or_default();
    let headers = status_headers(data[1], &data[4..]);
    let trailers = (data[2] % 8 != 7).then(|| status_headers(data[2], &data[4..]));
    let cuts = usize::from(data[3] % 8);
    let body = &data[4..];
    let mut at: Vec<usize> = body
        .iter()
        .take(cuts)
        .map(|b| usize::from(*b) * body.len() / 256)
        .collect();
    at.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for cut in at {
        chunks.push(Bytes::copy_from_slice(&body[start..cut.max(start)]));
        start = cut.max(start);
    }
    chunks.push(Bytes::copy_from_slice(&body[start..]));
    let result = crate::plugin::link::interpret::<ToolCallDecision>(
        status,
        &headers,
        chunks,
        trailers.as_ref(),
    );
    if result.is_ok() {
        assert_eq!(status, StatusCode::OK, "a decision from a non-200 response");
        assert!(
            headers.get("grpc-status").is_none(),
            "a decision from a trailers-only response"
        );
        let codes: Vec<&HeaderValue> = trailers
            .as_ref()
            .map(|t| t.get_all("grpc-status").iter().collect())
            .unwrap_or_default();
        assert_eq!(
            codes,
            [&HeaderValue::from_static("0")],
            "a decision without one OK status"
        );
        assert!(
            body.len() >= 5 && body[0] == 0,
            "a decision without an uncompressed prefix"
        );
        let declared = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        assert_eq!(
            declared,
            body.len() - 5,
            "a decision from a body of more or less than one message"
        );
    }
}

/// `grpc-status` (and `grpc-message`) headers picked by `pick`, some of them made of `bytes`.
fn status_headers(pick: u8, bytes: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let text = |b: &[u8]| HeaderValue::from_bytes(&b[..b.len().min(32)]).ok();
    match pick % 8 {
        0 | 7 => {}
        1 | 2 => {
            headers.insert("grpc-status", HeaderValue::from_static("0"));
        }
        3 => {
            headers.insert("grpc-status", HeaderValue::from_static("7"));
            if let Some(message) = text(bytes) {
                headers.insert("grpc-message", message);
            }
        }
        4 => {
            headers.append("grpc-status", HeaderValue::from_static("0"));
            headers.append("grpc-status", HeaderValue::from_static("0"));
        }
        5 => {
            headers.append("grpc-status", HeaderValue::from_static("0"));
            headers.append("grpc-status", HeaderValue::from_static("13"));
        }
        _ => {
            if let Some(value) = text(bytes) {
                headers.insert("grpc-status", value);
            }
        }
    }
    headers
}

/// The configuration: whatever the text, loading it never panics, and an accepted one has its
/// defaults within their bounds.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = crate::files::config::Config::parse(text, None) {
        let limits = config.supervisor.host_limits;
        assert!(limits.max_calls_in_flight >= 1 && limits.body_timeout_ms >= 1);
        for plugin in &config.plugins {
            assert!(!plugin.name.is_empty() && plugin.name.len() <= 63);
        }
    }
}

/// The audit line of a verdict whose every string (tool, context, reason, plugin names and
/// details, params) comes from `data`: it is one line of valid JSON that reads back the same.
pub fn audit_line(data: &[u8]) {
    let mut fields = data
        .split(|b| *b == 0xff)
        .map(|f| String::from_utf8_lossy(f).into_owned());
    let mut next = || fields.next().unwrap_or_default();
    let request = ToolCallRequest {
        tool_name: next(),
        params_json: next(),
        context: Some(ToolCallContext {
            session_key: next(),
            run_id: next(),
            tool_call_id: next(),
            ..ToolCallContext::default()
        }),
        session_metadata: Default::default(),
        dispatch: data.first().is_some_and(|b| b & 1 == 1),
    };
    let verdict = ToolCallVerdict {
        outcome: 2,
        params_json: next(),
        params_changed: true,
        block_reason: next(),
        block_kind: 2,
        decided_by: next(),
        trace: vec![PluginResult {
            plugin: next(),
            detail: next(),
            ..PluginResult::default()
        }],
        ..ToolCallVerdict::default()
    };
    let version = next();
    let versions = move |_: &str| Some(std::sync::Arc::from(version.as_str()));
    let id = crate::decide::request_id::RequestId::new();
    let line = crate::observe::audit::tool_call_line(
        true,
        &id,
        &request,
        &verdict,
        Duration::from_micros(1),
        &[],
        &versions,
    );
    let text = line.to_string();
    assert!(
        !text.contains('\n') && !text.contains('\r'),
        "a line break in an audit line"
    );
    let back: Value = serde_json::from_str(&text).expect("an audit line is valid JSON");
    assert_eq!(back, line, "the audit line does not read back the same");
}
