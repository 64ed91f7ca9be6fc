//! See `hookvisor::fuzzing::config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hookvisor::fuzzing::config(data));
