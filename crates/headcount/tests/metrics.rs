//! What a small in-process cluster records through the `metrics` facade:
//! Go memberlist's names and kinds, its `node_state` label, the labels of
//! `Config::metric_labels` on every metric, and values that follow what
//! happened (a node killed: suspected, declared dead). One test in its own
//! binary, since a recorder is global to the process.

#![cfg(feature = "metrics")]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use headcount::{Keyring, MemberState, Memberlist, MemoryNetwork, Options};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::MetricKind;

/// Virtual time: a bound that only a bug reaches.
const WAIT: Duration = Duration::from_secs(600);

fn addr(i: usize) -> SocketAddr {
    format!("10.0.0.{}:7946", i + 1).parse().unwrap()
}

/// One metric as recorded: kind, labels, value.
#[derive(Clone, Debug)]
struct Recorded {
    kind: MetricKind,
    labels: HashMap<String, String>,
    value: Value,
}

/// Totals since the recorder was installed (the debugging recorder hands
/// out what changed since its last snapshot): counters summed, every
/// sample kept, gauges as of the last snapshot that saw them set.
#[derive(Clone, Debug)]
enum Value {
    Counter(u64),
    Gauge(f64),
    Samples(Vec<f64>),
}

#[derive(Clone, Default)]
struct Totals(HashMap<String, Vec<Recorded>>);

impl Totals {
    /// Folds in what was recorded since the last call; gauges set since
    /// then are replaced.
    fn update(&mut self, s: &Snapshotter) {
        for (ck, _unit, _desc, value) in s.snapshot().into_vec() {
            let (kind, key) = ck.into_parts();
            let labels: HashMap<String, String> = key
                .labels()
                .map(|l| (l.key().to_string(), l.value().to_string()))
                .collect();
            let entries = self.0.entry(key.name().to_string()).or_default();
            let pos = entries
                .iter()
                .position(|r| r.kind == kind && r.labels == labels);
            let fresh = match value {
                DebugValue::Counter(n) => Value::Counter(n),
                DebugValue::Gauge(g) => Value::Gauge(g.into_inner()),
                DebugValue::Histogram(h) => {
                    Value::Samples(h.iter().map(|v| v.into_inner()).collect())
                }
            };
            match (pos, fresh) {
                (None, value) => entries.push(Recorded {
                    kind,
                    labels,
                    value,
                }),
                (Some(i), fresh) => match (&mut entries[i].value, fresh) {
                    (Value::Counter(a), Value::Counter(n)) => *a += n,
                    (Value::Samples(a), Value::Samples(v)) => a.extend(v),
                    (old, new) => *old = new,
                },
            }
        }
    }

    /// The metric `name` of node `node` (by its `node` label), with the
    /// extra label `extra` when given; panics with the names recorded if
    /// absent.
    fn of(&self, name: &str, node: &str, extra: Option<(&str, &str)>) -> &Recorded {
        self.0
            .get(name)
            .and_then(|v| {
                v.iter().find(|r| {
                    r.labels.get("node").map(String::as_str) == Some(node)
                        && extra
                            .is_none_or(|(k, val)| r.labels.get(k).map(String::as_str) == Some(val))
                })
            })
            .unwrap_or_else(|| panic!("{name} of {node} not recorded; names: {:?}", self.0.keys()))
    }

    fn counter(&self, name: &str, node: &str) -> u64 {
        let r = self.of(name, node, None);
        assert_eq!(r.kind, MetricKind::Counter, "{name}: {r:?}");
        match r.value {
            Value::Counter(n) => n,
            _ => unreachable!(),
        }
    }

    fn gauge(&self, name: &str, node: &str, extra: Option<(&str, &str)>) -> f64 {
        let r = self.of(name, node, extra);
        assert_eq!(r.kind, MetricKind::Gauge, "{name}: {r:?}");
        match r.value {
            Value::Gauge(g) => g,
            _ => unreachable!(),
        }
    }

    fn samples(&self, name: &str, node: &str) -> Vec<f64> {
        let r = self.of(name, node, None);
        assert_eq!(r.kind, MetricKind::Histogram, "{name}: {r:?}");
        match &r.value {
            Value::Samples(v) => v.clone(),
            _ => unreachable!(),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_cluster_records_go_memberlists_metrics() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // Installed before any node is built: nodes register their handles
    // when they start.
    metrics::set_global_recorder(recorder).unwrap();

    let net = MemoryNetwork::new();
    let key = [7u8; 16];
    let mut nodes: Vec<Memberlist> = Vec::new();
    for i in 0..3 {
        let config = common::fast_config()
            .with_keyring(Keyring::new(&key).unwrap())
            .with_metric_labels([("node", format!("n{i}")), ("dc", "test".to_string())])
            .with_queue_check_interval(Duration::from_secs(1));
        let opts = Options::new(format!("n{i}"), addr(i), config).with_seed(i as u64);
        let ml = Memberlist::create_with_transport(opts, net.transport(addr(i)).unwrap())
            .await
            .unwrap();
        if i > 0 {
            ml.join(&[addr(0).to_string()]).await.unwrap();
        }
        nodes.push(ml);
    }
    let n0 = &nodes[0];
    let mut w = n0.watch_members();
    tokio::time::timeout(WAIT, w.wait_for(|ms| ms.len() == 3))
        .await
        .unwrap()
        .unwrap();
    let mut totals = Totals::default();
    totals.update(&snapshotter);
    let before = totals.clone();

    // n2 stops without leaving: n0 suspects it, then declares it dead.
    nodes[2].shutdown().await;
    tokio::time::timeout(
        WAIT,
        w.wait_for(|_| {
            n0.members_all()
                .iter()
                .any(|m| m.name == "n2" && m.state == MemberState::Dead)
        }),
    )
    .await
    .unwrap()
    .unwrap();
    // The next push/pull reports the death in memberlist.node.instances
    // (polled: a push/pull is no event).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        totals.update(&snapshotter);
        let dead = ("node_state", "dead");
        if totals.gauge("memberlist.node.instances", "n0", Some(dead)) == 1.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no push/pull after the death"
        );
    }
    let after = totals;

    // Every metric carries the configured labels, under Go's names or
    // headcount's own prefix.
    for (name, recorded) in &after.0 {
        assert!(
            name.starts_with("memberlist.") || name.starts_with("headcount."),
            "{name}"
        );
        for r in recorded {
            assert_eq!(
                r.labels.get("dc").map(String::as_str),
                Some("test"),
                "{name}"
            );
        }
    }
    // Counters that moved with the death.
    for name in [
        "memberlist.msg.suspect",
        "memberlist.msg.dead",
        "memberlist.udp.sent",
        "memberlist.udp.received",
        "headcount.probes.failed",
    ] {
        let (b, a) = (before.counter(name, "n0"), after.counter(name, "n0"));
        assert!(a > b, "{name}: {b} -> {a}");
    }
    // Alive messages applied, streams accepted, written and dialed.
    assert!(after.counter("memberlist.msg.alive", "n0") >= 3);
    assert!(after.counter("memberlist.tcp.accept", "n0") >= 2);
    assert!(after.counter("memberlist.tcp.sent", "n0") > 0);
    assert!(after.counter("memberlist.tcp.connect", "n1") >= 1);
    // Gauges: members by state (all four set together), the size of our
    // state, our health.
    for (state, n) in [
        ("alive", 2.0),
        ("suspect", 0.0),
        ("dead", 1.0),
        ("left", 0.0),
    ] {
        let g = after.gauge(
            "memberlist.node.instances",
            "n0",
            Some(("node_state", state)),
        );
        assert_eq!(g, n, "{state}");
    }
    assert!(after.gauge("memberlist.size.local", "n0", None) > 0.0);
    // Registered when the node starts; set when the score changes.
    after.gauge("memberlist.health.score", "n0", None);
    // Samples and timers (milliseconds).
    let probes = after.samples("memberlist.probeNode", "n0");
    // A failed probe lasts its whole probe interval (300 ms, or more when
    // the health score stretches it); a successful one far less.
    assert!(probes.iter().any(|&ms| ms >= 300.0), "{probes:?}");
    assert!(probes.iter().any(|&ms| ms < 300.0), "{probes:?}");
    assert!(!after.samples("memberlist.gossip", "n0").is_empty());
    assert!(
        after.samples("memberlist.pushPullNode", "n0").len()
            > before.samples("memberlist.pushPullNode", "n0").len()
    );
    assert!(!after
        .samples("memberlist.queue.broadcasts", "n0")
        .is_empty());
    // Streams are encrypted here, so Go's size.remote is sampled.
    let remote = after.samples("memberlist.size.remote", "n0");
    assert!(
        !remote.is_empty() && remote.iter().all(|&b| b > 0.0),
        "{remote:?}"
    );

    for n in &nodes[..2] {
        n.shutdown().await;
    }
}
