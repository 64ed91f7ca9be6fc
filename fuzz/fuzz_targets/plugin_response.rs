//! See `hookvisor::fuzzing::plugin_response`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hookvisor::fuzzing::plugin_response(data));
