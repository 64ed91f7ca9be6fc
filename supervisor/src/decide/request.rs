//! The host's requests checked against the contract's limits (§8) before any plugin is called.
//! A request that breaks one is refused with `INVALID_ARGUMENT` naming the field and the limit.
//!
//! Besides the JSON limits of §8, every field a host sends is bounded here, so that the size of a
//! whole request is bounded too (the host decode limit is derived from these numbers):
//! `tool_name` ≤ 256 bytes, each context string ≤ 4096 bytes, at most 256 session metadata
//! namespaces with names ≤ 256 bytes and values ≤ 512 KiB of JSON text in all.
//!
//! JSON texts come out canonical (compact, keys sorted, no duplicates): every plugin is given, and
//! the host gets back, the very bytes that were judged.

use std::collections::HashMap;

use hookvisor_proto::v1::{
    Requester, SessionCreateRequest, SessionCreatedNotice, ToolCallContext, ToolCallRequest,
};
use serde_json::{Map, Value};
use tonic::Status;

use crate::decide::limits::{self, MAX_TOOL_NAME_BYTES};

pub use hookvisor_proto::limits::{
    MAX_CONTEXT_BYTES, MAX_METADATA_BYTES, MAX_METADATA_NAMESPACES, MAX_NAMESPACE_BYTES,
};

/// A `BeforeToolCall` request that passed every check.
#[derive(Debug)]
pub struct ToolCall {
    /// The request, with `params_json` and `session_metadata` in canonical form.
    pub request: ToolCallRequest,
    /// The params, parsed.
    pub params: Map<String, Value>,
}

/// `INVALID_ARGUMENT` naming the field: what every refused host input answers.
pub(crate) fn invalid(field: &str, why: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{field}: {why}"))
}

/// A field over its limit in bytes, refused naming both.
pub(crate) fn check_len(field: &str, value: &str, limit: usize) -> Result<(), Status> {
    if value.len() > limit {
        return Err(invalid(
            field,
            format!("length {} exceeds the limit of {limit} bytes", value.len()),
        ));
    }
    Ok(())
}

/// Checks a `BeforeToolCall` request and puts its JSON in canonical form.
pub fn tool_call(mut request: ToolCallRequest) -> Result<ToolCall, Status> {
    if request.tool_name.is_empty() {
        return Err(invalid("tool_name", "must not be empty"));
    }
    check_len("tool_name", &request.tool_name, MAX_TOOL_NAME_BYTES)?;
    if let Some(context) = &request.context {
        check_context(context)?;
    }
    let params =
        limits::parse_object(&request.params_json).map_err(|e| invalid("params_json", e))?;
    request.params_json = canonical_object(&params);
    canonicalize_metadata(&mut request.session_metadata)?;
    Ok(ToolCall { request, params })
}

/// Checks a `BeforeSessionCreate` request and puts its metadata in canonical form.
pub fn session_create(request: &mut SessionCreateRequest) -> Result<(), Status> {
    for (field, value) in [
        ("session_key", &request.session_key),
        ("agent_id", &request.agent_id),
        ("label", &request.label),
        ("model", &request.model),
        ("parent_session_key", &request.parent_session_key),
        ("workspace_dir", &request.workspace_dir),
    ] {
        check_len(field, value, MAX_CONTEXT_BYTES)?;
    }
    if let Some(requester) = &request.requester {
        check_requester("requester", requester)?;
    }
    canonicalize_metadata(&mut request.session_metadata)
}

/// Checks a `SessionCreated` notice and puts its metadata in canonical form.
pub fn session_created(notice: &mut SessionCreatedNotice) -> Result<(), Status> {
    for (field, value) in [
        ("session_key", &notice.session_key),
        ("session_id", &notice.session_id),
        ("agent_id", &notice.agent_id),
    ] {
        check_len(field, value, MAX_CONTEXT_BYTES)?;
    }
    canonicalize_metadata(&mut notice.session_metadata)
}

fn check_context(context: &ToolCallContext) -> Result<(), Status> {
    for (field, value) in [
        ("context.agent_id", &context.agent_id),
        ("context.session_key", &context.session_key),
        ("context.session_id", &context.session_id),
        ("context.run_id", &context.run_id),
        ("context.tool_call_id", &context.tool_call_id),
        ("context.workspace_dir", &context.workspace_dir),
        ("context.container_workdir", &context.container_workdir),
        ("context.channel_id", &context.channel_id),
    ] {
        check_len(field, value, MAX_CONTEXT_BYTES)?;
    }
    if let Some(requester) = &context.requester {
        check_requester("context.requester", requester)?;
    }
    Ok(())
}

fn check_requester(prefix: &str, requester: &Requester) -> Result<(), Status> {
    for (field, value) in [
        ("channel", &requester.channel),
        ("account_id", &requester.account_id),
        ("sender_id", &requester.sender_id),
    ] {
        check_len(&format!("{prefix}.{field}"), value, MAX_CONTEXT_BYTES)?;
    }
    Ok(())
}

/// Checks the session metadata map (count, names, total size, each value against §8, no
/// duplicate keys) and replaces each value with its canonical text.
fn canonicalize_metadata(metadata: &mut HashMap<String, String>) -> Result<(), Status> {
    if metadata.len() > MAX_METADATA_NAMESPACES {
        return Err(invalid(
            "session_metadata",
            format!(
                "{} namespaces exceed the limit of {MAX_METADATA_NAMESPACES}",
                metadata.len()
            ),
        ));
    }
    let total: usize = metadata.values().map(String::len).sum();
    if total > MAX_METADATA_BYTES {
        return Err(invalid(
            "session_metadata",
            format!("{total} bytes of values in all exceed the limit of {MAX_METADATA_BYTES}"),
        ));
    }
    for (namespace, value) in metadata.iter_mut() {
        if namespace.len() > MAX_NAMESPACE_BYTES {
            let shown: String = namespace.chars().take(32).collect();
            return Err(invalid(
                &format!("session_metadata[{shown:?}…]"),
                format!(
                    "namespace name length {} exceeds the limit of {MAX_NAMESPACE_BYTES} bytes",
                    namespace.len()
                ),
            ));
        }
        let parsed = limits::parse_value(value)
            .map_err(|e| invalid(&format!("session_metadata[{namespace:?}]"), e))?;
        *value = limits::canonical(&parsed);
    }
    Ok(())
}

/// The canonical text of an object.
pub fn canonical_object(map: &Map<String, Value>) -> String {
    serde_json::to_string(map).unwrap_or_else(|_| "{}".to_owned())
}
