//! `demo-crash`: a demo fixture for `hookvisor demo`, not a policy. Do not deploy it.
//!
//! Registers `before_tool_call` in the hook stage for the tool `crash-me` only, and on such a call
//! exits the process at once with status 101, so the demo can show that a crash mid-call blocks
//! the call immediately, and that the crashed plugin is unavailable afterwards (its calls block
//! until the supervisor is restarted; restarts with backoff come with the lifecycle work). No
//! configuration.
use std::process::ExitCode;

use hookvisor_plugin::{Info, Plugin, Registration, Stage, Status, ToolCall, proto};

struct DemoCrash;

impl Plugin for DemoCrash {
    fn info(&self) -> Info {
        Info::new("demo-crash", env!("CARGO_PKG_VERSION")).hook(
            Registration::before_tool_call()
                .stage(Stage::Hook)
                .tools(["crash-me"]),
        )
    }

    async fn before_tool_call(&self, call: ToolCall) -> Result<proto::ToolCallDecision, Status> {
        eprintln!("crashing on purpose (tool '{}')", call.tool_name);
        std::process::exit(101)
    }
}

fn main() -> ExitCode {
    hookvisor_plugin::run(DemoCrash)
}
