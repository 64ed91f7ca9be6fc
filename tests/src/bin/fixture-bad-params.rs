//! Rewrites params with something that breaks the contract, per `FIXTURE_BAD`:
//! `not-json`, `array`, `huge` (an object over 262144 bytes serialized), `deep` (depth 40) or
//! `oversize` (a 5 MiB gRPC message, over the 4 MiB the supervisor accepts from a plugin).

use hookvisor_proto::v1::{BeforeToolCallRequest, ToolCallDecision};
use hookvisor_tests::fixture::{Behaviour, Fixture, env_var, run};
use tonic::Status;

struct BadParams(String);

impl BadParams {
    fn params(&self) -> String {
        match self.0.as_str() {
            "not-json" => "{\"command\": ".to_owned(),
            "array" => "[\"ls\", \"-l\"]".to_owned(),
            // Five strings of 60000 bytes: each within the string limit, 300 kB together.
            "huge" => {
                let chunk = "x".repeat(60_000);
                let fields: Vec<String> = (0..5).map(|i| format!("\"k{i}\":\"{chunk}\"")).collect();
                format!("{{{}}}", fields.join(","))
            }
            // {"a":{"a":...{}}}: 40 nested objects.
            "deep" => ["{\"a\":".repeat(39), "{}".to_owned(), "}".repeat(39)].concat(),
            "oversize" => format!("{{\"blob\":\"{}\"}}", "x".repeat(5 * 1024 * 1024)),
            other => panic!(
                "FIXTURE_BAD: expected not-json, array, huge, deep or oversize, got {other:?}"
            ),
        }
    }
}

#[tonic::async_trait]
impl Behaviour for BadParams {
    async fn tool_call(&self, _call: BeforeToolCallRequest) -> Result<ToolCallDecision, Status> {
        Ok(ToolCallDecision {
            params_json: Some(self.params()),
            ..ToolCallDecision::default()
        })
    }
}

fn main() {
    run(Fixture(BadParams(
        env_var("FIXTURE_BAD").unwrap_or_default(),
    )))
}
