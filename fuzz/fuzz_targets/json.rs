//! See `hookvisor::fuzzing::json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hookvisor::fuzzing::json(data));
