//! A host in a process of its own, for tests that need another user to call the supervisor
//! (run under `setpriv`): connects to the socket given as the first argument, sends one
//! `BeforeToolCall`, prints `outcome: NAME` (exit 0) or `error: ...` with every cause (exit 1).

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;

use hookvisor_proto::v1::hooks_client::HooksClient;
use hookvisor_tests::harness::{connect, tool_call};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let Some(socket) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: probe-host SOCKET");
        return ExitCode::from(2);
    };
    let result = async {
        let channel = connect(&socket).await.map_err(chain)?;
        HooksClient::new(channel)
            .before_tool_call(tool_call("exec", serde_json::json!({"command": "ls"})))
            .await
            .map(|verdict| verdict.into_inner().outcome())
            .map_err(|status| format!("{status:?}"))
    }
    .await;
    match result {
        Ok(outcome) => {
            println!("outcome: {}", outcome.as_str_name());
            ExitCode::SUCCESS
        }
        Err(error) => {
            println!("error: {error}");
            ExitCode::from(1)
        }
    }
}

/// The error and its causes: tonic's transport error alone says only "transport error".
fn chain(error: impl Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
