//! `opa-bridge`: a policy kept in Open Policy Agent. Each tool call is sent to OPA's Data API
//! (`POST /v1/data/PATH` with the call as `input`) and OPA's result becomes the decision, so a
//! fleet of gateways shares one Rego policy through OPA's bundles, status API and decision logs.
//!
//! Registers `before_tool_call` for every tool, in the policy stage by default (hookvisor must
//! then be configured with `trusted = true` for it). The input and the result's shape are in
//! `docs/opa.md`; the mapping is in `result.rs`, the HTTP request in `client.rs`.
//!
//! Fail closed: OPA unreachable, no answer within the timeout, an HTTP status other than 200, a
//! body over 1 MiB, an undefined result or one not of the documented shape is answered with a
//! gRPC error naming the cause, which hookvisor turns into a block naming this plugin.
//!
//! Configuration (environment):
//! - `OPA_BRIDGE_URL`: OPA's address, `http://HOST:PORT`, required (plain HTTP: OPA runs beside
//!   the gateway; under the sandbox, `connect_ports` must list PORT).
//! - `OPA_BRIDGE_PATH`: the document asked, slash-separated below `data`; default
//!   `hookvisor/tool_call`.
//! - `OPA_BRIDGE_TIMEOUT_MS`: how long OPA may take, connection included (1 to 600000); default
//!   200. Kept below the call's own deadline, so a slow OPA is reported as such.
//! - `OPA_BRIDGE_STAGE`: `policy` (default) or `hook`.
//!
//! A configuration error stops the plugin at start with exit 1 and one line saying which
//! variable is wrong (hookvisor then blocks every call).
use std::process::ExitCode;
use std::time::Duration;

use hookvisor_plugin::serde_json::{Value, json};
use hookvisor_plugin::{Info, Plugin, Registration, Stage, Status, ToolCall, proto};

mod client;
mod result;

use client::{Failure, Opa};

/// The document asked when `OPA_BRIDGE_PATH` is unset.
const DEFAULT_PATH: &str = "hookvisor/tool_call";
/// OPA's timeout when `OPA_BRIDGE_TIMEOUT_MS` is unset.
const DEFAULT_TIMEOUT_MS: u64 = 200;
/// Longest timeout accepted, as for every timeout of hookvisor's configuration.
const MAX_TIMEOUT_MS: u64 = 600_000;

/// What the environment configures.
#[derive(Debug, PartialEq, Eq)]
struct Config {
    /// `http://HOST:PORT/v1/data/PATH`.
    uri: hyper::Uri,
    /// `data.` and the path with dots, for messages (`data.hookvisor.tool_call`).
    document: String,
    timeout: Duration,
    stage: Stage,
}

impl Config {
    /// Reads the configuration through `var` (the environment, or a table in tests).
    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let url = var("OPA_BRIDGE_URL").ok_or(
            "OPA_BRIDGE_URL is not set; set it to OPA's address, e.g. http://127.0.0.1:8181",
        )?;
        let base = url.trim_end_matches('/');
        let authority = base.strip_prefix("http://").ok_or_else(|| {
            format!("OPA_BRIDGE_URL must be http://HOST:PORT (plain HTTP), got {url:?}")
        })?;
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "OPA_BRIDGE_URL must be http://HOST:PORT with no path, query or user, got {url:?}"
            ));
        }
        let path = var("OPA_BRIDGE_PATH").unwrap_or_else(|| DEFAULT_PATH.to_owned());
        let path = path.trim_matches('/');
        let valid_segment = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if !path.split('/').all(valid_segment) {
            return Err(format!(
                "OPA_BRIDGE_PATH must be names of letters, digits, `_` and `-` separated by `/` (e.g. {DEFAULT_PATH}), got {path:?}"
            ));
        }
        let uri: hyper::Uri = format!("{base}/v1/data/{path}")
            .parse()
            .map_err(|e| format!("OPA_BRIDGE_URL {url:?} is not a valid URL: {e}"))?;
        let timeout_ms = match var("OPA_BRIDGE_TIMEOUT_MS") {
            None => DEFAULT_TIMEOUT_MS,
            Some(text) => match text.trim().parse::<u64>() {
                Ok(ms @ 1..=MAX_TIMEOUT_MS) => ms,
                _ => {
                    return Err(format!(
                        "OPA_BRIDGE_TIMEOUT_MS must be milliseconds in 1..={MAX_TIMEOUT_MS}, got {text:?}"
                    ));
                }
            },
        };
        let stage = match var("OPA_BRIDGE_STAGE").as_deref() {
            None | Some("policy") => Stage::Policy,
            Some("hook") => Stage::Hook,
            Some(other) => {
                return Err(format!(
                    "OPA_BRIDGE_STAGE must be `policy` or `hook`, got {other:?}"
                ));
            }
        };
        Ok(Self {
            uri,
            document: format!("data.{}", path.replace('/', ".")),
            timeout: Duration::from_millis(timeout_ms),
            stage,
        })
    }
}

/// The plugin: the client and what it asks.
struct OpaBridge {
    opa: Opa,
    document: String,
    timeout: Duration,
    stage: Stage,
}

impl OpaBridge {
    fn new(config: Config) -> Self {
        Self {
            opa: Opa::new(config.uri, config.timeout),
            document: config.document,
            timeout: config.timeout,
            stage: config.stage,
        }
    }

    /// The timeout for a call the supervisor waits `deadline` for: the configured one, cut to
    /// nine tenths of the deadline so OPA's slowness, not the plugin's, is what gets reported.
    fn timeout_within(&self, deadline: Duration) -> Duration {
        if deadline.is_zero() {
            return self.timeout;
        }
        self.timeout
            .min(deadline * 9 / 10)
            .max(Duration::from_millis(1))
    }
}

/// The request body: `{"input": {...}}` with the call, its context and this plugin's metadata.
fn input(call: &ToolCall) -> Value {
    let context = call.context.as_ref().map(|c| {
        let requester = c.requester.as_ref().map(|r| {
            json!({
                "channel": r.channel,
                "account_id": r.account_id,
                "sender_id": r.sender_id,
                "sender_is_owner": r.sender_is_owner,
            })
        });
        json!({
            "agent_id": c.agent_id,
            "session_key": c.session_key,
            "session_id": c.session_id,
            "run_id": c.run_id,
            "tool_call_id": c.tool_call_id,
            "workspace_dir": c.workspace_dir,
            "container_workdir": c.container_workdir,
            "channel_id": c.channel_id,
            "requester": requester,
        })
    });
    json!({
        "input": {
            "hook": "before_tool_call",
            "tool_name": call.tool_name,
            "params": Value::Object(call.params.clone()),
            "context": context,
            "metadata": call.metadata,
            "request_id": call.request_id,
        }
    })
}

impl Plugin for OpaBridge {
    fn info(&self) -> Info {
        Info::new("opa-bridge", env!("CARGO_PKG_VERSION"))
            .hook(Registration::before_tool_call().stage(self.stage))
    }

    async fn before_tool_call(&self, call: ToolCall) -> Result<proto::ToolCallDecision, Status> {
        let body = input(&call).to_string().into_bytes();
        let answer = self
            .opa
            .query(body, self.timeout_within(call.deadline))
            .await
            .map_err(|failure| match failure {
                Failure::Timeout(why) | Failure::Unreachable(why) => Status::unavailable(why),
                Failure::Answer(why) => Status::internal(why),
            })?;
        result::decide(&answer, &self.document).map_err(|why| {
            Status::internal(format!(
                "{why} (asked {}; see docs/opa.md for the result's shape)",
                self.opa.uri()
            ))
        })
    }
}

fn main() -> ExitCode {
    hookvisor_plugin::run_with(|| {
        Config::from_vars(|name| std::env::var(name).ok()).map(OpaBridge::new)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, String> {
        Config::from_vars(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn defaults_and_full_configuration() {
        let c = config(&[("OPA_BRIDGE_URL", "http://127.0.0.1:8181/")]).unwrap();
        assert_eq!(
            c.uri.to_string(),
            "http://127.0.0.1:8181/v1/data/hookvisor/tool_call"
        );
        assert_eq!(c.document, "data.hookvisor.tool_call");
        assert_eq!(c.timeout, Duration::from_millis(200));
        assert_eq!(c.stage, Stage::Policy);

        let c = config(&[
            ("OPA_BRIDGE_URL", "http://opa:9000"),
            ("OPA_BRIDGE_PATH", "/org/gateway-1/decide/"),
            ("OPA_BRIDGE_TIMEOUT_MS", "50"),
            ("OPA_BRIDGE_STAGE", "hook"),
        ])
        .unwrap();
        assert_eq!(
            c.uri.to_string(),
            "http://opa:9000/v1/data/org/gateway-1/decide"
        );
        assert_eq!(c.document, "data.org.gateway-1.decide");
        assert_eq!(c.timeout, Duration::from_millis(50));
        assert_eq!(c.stage, Stage::Hook);
    }

    #[test]
    fn bad_configurations_name_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "OPA_BRIDGE_URL is not set"),
            (
                &[("OPA_BRIDGE_URL", "https://opa:8181")],
                "OPA_BRIDGE_URL must be http://",
            ),
            (&[("OPA_BRIDGE_URL", "http://opa:8181/v1")], "no path"),
            (
                &[("OPA_BRIDGE_URL", "http://")],
                "OPA_BRIDGE_URL must be http://",
            ),
            (
                &[("OPA_BRIDGE_URL", "http://o"), ("OPA_BRIDGE_PATH", "a//b")],
                "OPA_BRIDGE_PATH must be",
            ),
            (
                &[
                    ("OPA_BRIDGE_URL", "http://o"),
                    ("OPA_BRIDGE_PATH", "a/b?x=1"),
                ],
                "OPA_BRIDGE_PATH must be",
            ),
            (
                &[
                    ("OPA_BRIDGE_URL", "http://o"),
                    ("OPA_BRIDGE_TIMEOUT_MS", "0"),
                ],
                "OPA_BRIDGE_TIMEOUT_MS must be",
            ),
            (
                &[
                    ("OPA_BRIDGE_URL", "http://o"),
                    ("OPA_BRIDGE_STAGE", "policy "),
                ],
                "OPA_BRIDGE_STAGE must be",
            ),
        ];
        for (vars, expected) in cases {
            let err = config(vars).unwrap_err();
            assert!(err.contains(expected), "{vars:?}: {err}");
        }
    }

    #[test]
    fn the_timeout_stays_inside_the_deadline() {
        let bridge = OpaBridge::new(config(&[("OPA_BRIDGE_URL", "http://o:1")]).unwrap());
        assert_eq!(
            bridge.timeout_within(Duration::ZERO),
            Duration::from_millis(200)
        );
        assert_eq!(
            bridge.timeout_within(Duration::from_secs(5)),
            Duration::from_millis(200)
        );
        assert_eq!(
            bridge.timeout_within(Duration::from_millis(100)),
            Duration::from_millis(90)
        );
    }

    #[test]
    fn the_input_carries_the_call() {
        let call = ToolCall {
            tool_name: "exec".to_owned(),
            params: json!({"command": "ls"}).as_object().cloned().unwrap(),
            context: Some(proto::ToolCallContext {
                agent_id: "main".to_owned(),
                ..Default::default()
            }),
            metadata: Some(json!({"team": "a"})),
            deadline: Duration::ZERO,
            request_id: "r-1".to_owned(),
            traceparent: String::new(),
        };
        let body = input(&call);
        assert_eq!(body["input"]["hook"], "before_tool_call");
        assert_eq!(body["input"]["tool_name"], "exec");
        assert_eq!(body["input"]["params"], json!({"command": "ls"}));
        assert_eq!(body["input"]["context"]["agent_id"], "main");
        assert_eq!(body["input"]["context"]["requester"], Value::Null);
        assert_eq!(body["input"]["metadata"], json!({"team": "a"}));
        assert_eq!(body["input"]["request_id"], "r-1");
    }
}
