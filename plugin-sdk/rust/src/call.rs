//! Parsed views of the requests a plugin answers: JSON decoded, deadlines as `Duration`.
//!
//! Each converts from its request with `TryFrom`; a request whose JSON does not parse is the
//! supervisor's bug, answered with `INVALID_ARGUMENT` (which the supervisor counts as a failure).

use std::time::Duration;

use serde_json::{Map, Value};
use tonic::Status;

use crate::proto;

/// A `before_tool_call` question: which tool, with which params, in which context.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ToolCall {
    /// The tool's name, e.g. `exec`.
    pub tool_name: String,
    /// The params, as left by the policy stage.
    pub params: Map<String, Value>,
    /// Who is calling and where (agent, session, workspace directory…).
    pub context: Option<proto::ToolCallContext>,
    /// This plugin's namespace of the session metadata; `None` when the session has none.
    pub metadata: Option<Value>,
    /// How long the supervisor will wait for the answer (zero if it did not say).
    pub deadline: Duration,
    /// The host call's request id (`x-hookvisor-request-id`), for correlating logs; `""` when
    /// the supervisor sent none.
    pub request_id: String,
    /// The W3C trace context of the supervisor's span for this call (`traceparent`,
    /// `00-<trace id>-<span id>-<flags>`), sent while its tracing is on; `""` when absent or
    /// not of that shape.
    pub traceparent: String,
}

impl ToolCall {
    /// The string param `key`, if present and a string.
    pub fn param_str(&self, key: &str) -> Option<&str> {
        self.params.get(key).and_then(Value::as_str)
    }

    /// The context's `workspace_dir`, or `""` when there is none.
    pub fn workspace_dir(&self) -> &str {
        self.context
            .as_ref()
            .map_or("", |c| c.workspace_dir.as_str())
    }

    /// The context's `agent_id`, or `""` when there is none.
    pub fn agent_id(&self) -> &str {
        self.context.as_ref().map_or("", |c| c.agent_id.as_str())
    }
}

impl TryFrom<proto::BeforeToolCallRequest> for ToolCall {
    type Error = Status;

    fn try_from(req: proto::BeforeToolCallRequest) -> Result<Self, Status> {
        let params = match serde_json::from_str::<Value>(&req.params_json) {
            Ok(Value::Object(map)) => map,
            Ok(other) => {
                return Err(Status::invalid_argument(format!(
                    "params_json must be a JSON object, got {}",
                    json_kind(&other)
                )));
            }
            Err(e) => {
                return Err(Status::invalid_argument(format!(
                    "params_json is not valid JSON: {e}"
                )));
            }
        };
        Ok(Self {
            tool_name: req.tool_name,
            params,
            context: req.context,
            metadata: parse_metadata(&req.session_metadata_json)?,
            deadline: Duration::from_millis(req.deadline_ms.into()),
            request_id: String::new(),
            traceparent: String::new(),
        })
    }
}

/// A `before_session_create` question: may this session be created?
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SessionCreate {
    /// The new session's key.
    pub session_key: String,
    /// The agent the session belongs to.
    pub agent_id: String,
    /// The session's human label.
    pub label: String,
    /// The model the session will use.
    pub model: String,
    /// The parent session's key, `""` for a top-level session.
    pub parent_session_key: String,
    /// The session's workspace directory.
    pub workspace_dir: String,
    /// Who asked for the session.
    pub requester: Option<proto::Requester>,
    /// This plugin's namespace of the session metadata; `None` when absent.
    pub metadata: Option<Value>,
    /// How long the supervisor will wait for the answer (zero if it did not say).
    pub deadline: Duration,
    /// The host call's request id (`x-hookvisor-request-id`), for correlating logs; `""` when
    /// the supervisor sent none.
    pub request_id: String,
    /// The W3C trace context of the supervisor's span for this call (`traceparent`); `""` when
    /// absent or not of that shape.
    pub traceparent: String,
}

impl TryFrom<proto::BeforeSessionCreateRequest> for SessionCreate {
    type Error = Status;

    fn try_from(req: proto::BeforeSessionCreateRequest) -> Result<Self, Status> {
        Ok(Self {
            metadata: parse_metadata(&req.session_metadata_json)?,
            session_key: req.session_key,
            agent_id: req.agent_id,
            label: req.label,
            model: req.model,
            parent_session_key: req.parent_session_key,
            workspace_dir: req.workspace_dir,
            requester: req.requester,
            deadline: Duration::from_millis(req.deadline_ms.into()),
            request_id: String::new(),
            traceparent: String::new(),
        })
    }
}

/// A `session_created` observation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SessionCreated {
    /// The session's key.
    pub session_key: String,
    /// The session's id.
    pub session_id: String,
    /// The agent the session belongs to.
    pub agent_id: String,
    /// This plugin's namespace of the session metadata; `None` when absent.
    pub metadata: Option<Value>,
    /// The host call's request id (`x-hookvisor-request-id`); `""` when the supervisor sent none.
    pub request_id: String,
    /// The W3C trace context of the supervisor's span for this call (`traceparent`); `""` when
    /// absent or not of that shape.
    pub traceparent: String,
}

impl TryFrom<proto::SessionCreatedEvent> for SessionCreated {
    type Error = Status;

    fn try_from(event: proto::SessionCreatedEvent) -> Result<Self, Status> {
        Ok(Self {
            metadata: parse_metadata(&event.session_metadata_json)?,
            session_key: event.session_key,
            session_id: event.session_id,
            agent_id: event.agent_id,
            request_id: String::new(),
            traceparent: String::new(),
        })
    }
}

/// The length of a version-00 `traceparent`: `00-` + 32 + `-` + 16 + `-` + 2.
const TRACEPARENT_LEN: usize = 55;

/// `value` when it has the W3C `traceparent` shape (`^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$`),
/// else `""`, so a handler never logs or forwards junk a peer put in the metadata.
pub(crate) fn checked_traceparent(value: &str) -> &str {
    let bytes = value.as_bytes();
    let shaped = bytes.len() == TRACEPARENT_LEN
        && bytes.iter().enumerate().all(|(i, &b)| match i {
            2 | 35 | 52 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        });
    if shaped { value } else { "" }
}

/// `""` means no metadata; anything else must be one JSON value.
fn parse_metadata(json: &str) -> Result<Option<Value>, Status> {
    if json.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(json).map(Some).map_err(|e| {
        Status::invalid_argument(format!("session_metadata_json is not valid JSON: {e}"))
    })
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tonic::Code;

    use super::*;

    fn request(params_json: &str, metadata_json: &str) -> proto::BeforeToolCallRequest {
        proto::BeforeToolCallRequest {
            tool_name: "exec".into(),
            params_json: params_json.into(),
            context: Some(proto::ToolCallContext {
                workspace_dir: "/srv/ws".into(),
                agent_id: "main".into(),
                ..Default::default()
            }),
            session_metadata_json: metadata_json.into(),
            deadline_ms: 250,
        }
    }

    #[test]
    fn tool_call_parses_params_metadata_and_deadline() {
        let call =
            ToolCall::try_from(request(r#"{"command":"ls","n":1}"#, r#"{"seen":2}"#)).unwrap();
        assert_eq!(call.tool_name, "exec");
        assert_eq!(call.param_str("command"), Some("ls"));
        assert_eq!(call.param_str("n"), None);
        assert_eq!(call.params["n"], json!(1));
        assert_eq!(call.metadata, Some(json!({"seen": 2})));
        assert_eq!(call.deadline, Duration::from_millis(250));
        assert_eq!(call.workspace_dir(), "/srv/ws");
        assert_eq!(call.agent_id(), "main");
    }

    #[test]
    fn empty_metadata_is_none() {
        let call = ToolCall::try_from(request("{}", "")).unwrap();
        assert_eq!(call.metadata, None);
        assert!(call.params.is_empty());
    }

    #[test]
    fn params_that_are_not_an_object_are_invalid_argument() {
        for bad in ["[1,2]", "\"x\"", "null", "", "{not json"] {
            let err = ToolCall::try_from(request(bad, "")).unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "{bad}");
            assert!(
                err.message().contains("params_json"),
                "{bad}: {}",
                err.message()
            );
        }
    }

    #[test]
    fn invalid_metadata_is_invalid_argument() {
        let err = ToolCall::try_from(request("{}", "{oops")).unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains("session_metadata_json"));
    }

    #[test]
    fn missing_context_reads_as_empty() {
        let mut req = request("{}", "");
        req.context = None;
        let call = ToolCall::try_from(req).unwrap();
        assert_eq!(call.workspace_dir(), "");
    }

    #[test]
    fn only_a_w3c_shaped_traceparent_is_kept() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(checked_traceparent(good), good);
        for junk in [
            "",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7\n01",
            "00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01",
            "not a trace context at all, but exactly 55 bytes long!!",
        ] {
            assert_eq!(checked_traceparent(junk), "", "{junk:?}");
        }
    }

    #[test]
    fn session_views_parse_metadata() {
        let create = SessionCreate::try_from(proto::BeforeSessionCreateRequest {
            agent_id: "main".into(),
            model: "m".into(),
            session_metadata_json: "[1]".into(),
            deadline_ms: 5,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(create.agent_id, "main");
        assert_eq!(create.metadata, Some(json!([1])));
        assert_eq!(create.deadline, Duration::from_millis(5));

        let created = SessionCreated::try_from(proto::SessionCreatedEvent {
            session_id: "s1".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(created.session_id, "s1");
        assert_eq!(created.metadata, None);
    }
}
