//! `allow-all`: the smallest useful plugin. It allows every tool call at once. `hookvisor bench`
//! runs it to measure what hookvisor itself costs, and it is a starting point for a plugin of
//! your own.
//!
//! Configuration (environment):
//! - `HOOKVISOR_ALLOW_ALL_STAGE`: `hook` (the default) or `policy` (then configure it
//!   `trusted = true`);
//! - `HOOKVISOR_ALLOW_ALL_SLOW_MS`: answer calls to the tool `slow` only after this many
//!   milliseconds (the benchmark kills a plugin while such a call is in flight).
use std::process::ExitCode;
use std::time::Duration;

use hookvisor_plugin::{Info, Plugin, Registration, Stage, Status, ToolCall, decision, proto};

struct AllowAll {
    stage: Stage,
    slow: Duration,
}

fn load() -> Result<AllowAll, String> {
    let stage = match std::env::var("HOOKVISOR_ALLOW_ALL_STAGE").as_deref() {
        Ok("policy") => Stage::Policy,
        Ok("hook") | Err(_) => Stage::Hook,
        Ok(other) => {
            return Err(format!(
                "HOOKVISOR_ALLOW_ALL_STAGE is {other:?}; expected hook or policy"
            ));
        }
    };
    let slow = match std::env::var("HOOKVISOR_ALLOW_ALL_SLOW_MS") {
        Ok(ms) => ms
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|e| format!("HOOKVISOR_ALLOW_ALL_SLOW_MS is {ms:?}: {e}"))?,
        Err(_) => Duration::ZERO,
    };
    Ok(AllowAll { stage, slow })
}

impl Plugin for AllowAll {
    fn info(&self) -> Info {
        Info::new("allow-all", env!("CARGO_PKG_VERSION"))
            .hook(Registration::before_tool_call().stage(self.stage))
    }

    async fn before_tool_call(&self, call: ToolCall) -> Result<proto::ToolCallDecision, Status> {
        if call.tool_name == "slow" && !self.slow.is_zero() {
            tokio::time::sleep(self.slow).await;
        }
        Ok(decision::allow())
    }
}

fn main() -> ExitCode {
    hookvisor_plugin::run_with(load)
}
