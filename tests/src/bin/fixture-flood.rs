//! Floods stdout and stderr from background threads (a 64 KiB burst on each, one 1 MiB
//! stdout line without a newline, then a steady stream), and answers calls with no opinion
//! after printing a line on stderr, so a supervisor that stops draining the pipes makes it hang.

use std::io::Write;
use std::time::Duration;

use hookvisor_proto::v1::{BeforeToolCallRequest, ToolCallDecision};
use hookvisor_tests::fixture::{Behaviour, Fixture, run};
use tonic::Status;

struct Flood;

#[tonic::async_trait]
impl Behaviour for Flood {
    async fn tool_call(&self, call: BeforeToolCallRequest) -> Result<ToolCallDecision, Status> {
        // Blocks if the supervisor stopped reading stderr.
        eprintln!("flood: answering {}", call.tool_name);
        Ok(ToolCallDecision::default())
    }
}

fn flood(mut out: impl Write, stream: &str, long_line: bool) {
    let filler = "z".repeat(100);
    for i in 0..700 {
        let _ = writeln!(out, "flood {stream} burst {i} {filler}");
    }
    if long_line {
        let _ = out.write_all(&vec![b'L'; 1 << 20]);
    }
    let _ = out.flush();
    for i in 0.. {
        for j in 0..20 {
            let _ = writeln!(out, "flood {stream} line {i}.{j} {filler}");
        }
        let _ = out.flush();
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn main() {
    std::thread::spawn(|| flood(std::io::stdout(), "stdout", true));
    std::thread::spawn(|| flood(std::io::stderr(), "stderr", false));
    run(Fixture(Flood))
}
