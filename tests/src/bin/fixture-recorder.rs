//! Answers as `FIXTURE_ACTION` says and records every call in `FIXTURE_RECORD`
//! (see `hookvisor_tests::fixture::Recorder`).

fn main() {
    hookvisor_tests::fixture::run(hookvisor_tests::fixture::Recorder::from_env(None))
}
