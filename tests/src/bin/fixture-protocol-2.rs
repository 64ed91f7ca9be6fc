//! A plugin from the future: `Describe` answers `protocol_version` 2.

use hookvisor_tests::fixture::{Behaviour, Fixture, run};

struct Protocol2;

impl Behaviour for Protocol2 {
    fn protocol_version(&self) -> u32 {
        2
    }
}

fn main() {
    run(Fixture(Protocol2))
}
