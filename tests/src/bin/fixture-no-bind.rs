//! Never binds its socket; sleeps until killed (or until its parent is gone).

fn main() {
    hookvisor_tests::fixture::watch_parent();
    eprintln!("fixture-no-bind: not binding anything");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
