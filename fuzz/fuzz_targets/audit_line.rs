//! See `hookvisor::fuzzing::audit_line`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hookvisor::fuzzing::audit_line(data));
