//! The recorder, answering only after `FIXTURE_DELAY_MS` (default 1000 ms); no opinion unless
//! `FIXTURE_ACTION` says otherwise.

fn main() {
    hookvisor_tests::fixture::run(hookvisor_tests::fixture::Recorder::from_env(Some(1000)))
}
