//! Replays the kept fuzz corpora (`fuzz/corpus/TARGET/`) through the same checks the fuzz
//! targets make (`hookvisor::fuzzing`), so every input a fuzzer kept or a crash it found stays a
//! deterministic test on the stable toolchain (`make fuzz` runs the fuzzer itself).

use std::path::PathBuf;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no corpus in {}", dir.display());
    for input in inputs {
        let data = std::fs::read(&input).expect("a corpus file");
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(
            outcome.is_ok(),
            "{target}: {} breaks an invariant",
            input.display()
        );
    }
}

#[test]
fn json_corpus() {
    replay("json", hookvisor::fuzzing::json);
}

#[test]
fn plugin_response_corpus() {
    replay("plugin_response", hookvisor::fuzzing::plugin_response);
}

#[test]
fn config_corpus() {
    replay("config", hookvisor::fuzzing::config);
}

#[test]
fn audit_line_corpus() {
    replay("audit_line", hookvisor::fuzzing::audit_line);
}
