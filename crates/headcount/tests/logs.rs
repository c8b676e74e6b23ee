//! What an operator reads: the node's logs, captured through a `tracing`
//! subscriber, carry Go memberlist's wording inside a span named after the
//! node.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use headcount::{Config, MemberState, Memberlist, Options};

/// Collects everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Fast failure detection: with two nodes there is nobody to confirm a
/// suspicion, so cap the suspicion timeout at its minimum, and keep the
/// health score from stretching it.
fn config() -> Config {
    Config::local()
        .with_probe_interval(Duration::from_millis(200))
        .with_probe_timeout(Duration::from_millis(100))
        .with_gossip_interval(Duration::from_millis(50))
        .with_suspicion_max_timeout_mult(1)
        .with_lifeguard_health_scaled_suspicion(false)
}

// A current-thread runtime: the subscriber set for this thread sees every
// task of both nodes.
#[tokio::test]
async fn a_failure_is_logged_in_the_node_span_with_gos_wording() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let a = Memberlist::create(Options::new("logs-a", loopback(), config()))
        .await
        .unwrap();
    let b = Memberlist::create(Options::new("logs-b", loopback(), config()))
        .await
        .unwrap();
    b.join(&[a.advertise_addr().to_string()]).await.unwrap();
    let mut watch = a.watch_members();
    tokio::time::timeout(Duration::from_secs(20), watch.wait_for(|ms| ms.len() == 2))
        .await
        .expect("a sees b")
        .unwrap();

    b.shutdown().await;
    tokio::time::timeout(
        Duration::from_secs(30),
        watch.wait_for_all(|ms| {
            ms.iter()
                .any(|m| m.name == "logs-b" && m.state == MemberState::Dead)
        }),
    )
    .await
    .expect("a declares b dead")
    .unwrap();
    a.shutdown().await;

    let lines = captured.lines();
    let in_a = |needle: &str| {
        lines
            .iter()
            .any(|l| l.contains("node{name=logs-a}") && l.contains(needle))
    };
    let dump = lines.join("\n");
    assert!(
        in_a("member joined: logs-b"),
        "no join line in a's span:\n{dump}"
    );
    assert!(
        in_a("suspect logs-b has failed, no acks received"),
        "no suspicion line in a's span:\n{dump}"
    );
    assert!(
        in_a("marking logs-b as failed, suspect timeout reached (0 peer confirmations)"),
        "no failure line in a's span:\n{dump}"
    );
    // Transitions are logged at INFO and above; per-packet detail is not.
    let info = lines.iter().filter(|l| l.contains(" INFO ")).count();
    assert!(info < 20, "{info} INFO lines:\n{dump}");
}
