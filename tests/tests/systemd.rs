//! systemd notifications on a real `NOTIFY_SOCKET` datagram socket: `READY=1` with a status line
//! once every plugin is ready or has failed, `WATCHDOG=1` at half of `WATCHDOG_USEC`, and
//! `STOPPING=1` at shutdown.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use hookvisor_tests::harness::{PluginToml, Supervisor, TestDir, plugins};

/// The datagrams received within `limit`, until one contains `needle`.
fn receive_until(socket: &UnixDatagram, needle: &str, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        let _ = socket.set_read_timeout(Some(left.max(Duration::from_millis(1))));
        match socket.recv(&mut buf) {
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = text.contains(needle);
                received.push(text);
                if done {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    received
}

#[tokio::test]
async fn ready_status_watchdog_and_stopping_reach_notify_socket() {
    let dir = TestDir::new();
    let path = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&path).expect("binding NOTIFY_SOCKET");
    let mut supervisor = Supervisor::builder(&plugins(&[
        PluginToml::new("good", "fixture-recorder"),
        PluginToml::new("quitter", "fixture-exit-at-start"),
    ]))
    .env("NOTIFY_SOCKET", &path.display().to_string())
    .env("WATCHDOG_USEC", "200000")
    .start()
    .await;

    let received = receive_until(&notify, "READY=1", Duration::from_secs(10));
    let ready = received
        .iter()
        .find(|m| m.contains("READY=1"))
        .unwrap_or_else(|| panic!("no READY=1: {received:?}"));
    assert!(
        ready.contains("STATUS=1/2 plugins ready; not ready: quitter (failed to start)"),
        "{ready:?}"
    );

    let watchdog = receive_until(&notify, "WATCHDOG=1", Duration::from_secs(5));
    assert!(
        watchdog.iter().any(|m| m.contains("WATCHDOG=1")),
        "{watchdog:?}"
    );

    supervisor.stop().await;
    let stopping = receive_until(&notify, "STOPPING=1", Duration::from_secs(5));
    assert!(
        stopping.iter().any(|m| m.contains("STOPPING=1")),
        "{stopping:?}"
    );
}
