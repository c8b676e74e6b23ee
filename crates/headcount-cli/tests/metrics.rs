//! `GET /metrics` on real agents: Go memberlist's names in the Prometheus
//! text format, values that move when a node is killed, the name prefix,
//! and the API's token rule.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{agent_with_api, http_get};

const T: Duration = Duration::from_secs(30);
const TOKEN: &str = "s3cret";

/// A scrape: `name{labels}` → value, and `name` → its `# TYPE`.
struct Scrape {
    values: HashMap<String, f64>,
    types: HashMap<String, String>,
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut values = HashMap::new();
        let mut types = HashMap::new();
        for line in text.lines() {
            if let Some(t) = line.strip_prefix("# TYPE ") {
                let (name, kind) = t.split_once(' ').expect("# TYPE name kind");
                types.insert(name.to_string(), kind.to_string());
            } else if !line.is_empty() && !line.starts_with('#') {
                let (series, value) = line.rsplit_once(' ').expect("series value");
                let v: f64 = value.parse().unwrap_or_else(|_| panic!("value of {line}"));
                values.insert(series.to_string(), v);
            }
        }
        Scrape { values, types }
    }

    /// The value of a series; panics with what there is if absent.
    fn get(&self, series: &str) -> f64 {
        *self.values.get(series).unwrap_or_else(|| {
            let mut names: Vec<_> = self.values.keys().collect();
            names.sort();
            panic!("no {series} in {names:#?}")
        })
    }

    fn kind(&self, name: &str) -> &str {
        self.types.get(name).map_or("(none)", String::as_str)
    }
}

fn scrape(api: &str) -> Scrape {
    let auth = format!("Bearer {TOKEN}");
    let (status, body) = http_get(api, "/metrics", &[("Authorization", &auth)]);
    assert_eq!(status, 200, "{body}");
    Scrape::parse(&body)
}

#[test]
fn metrics_follow_a_killed_node_under_go_names() {
    let (mut a, a_gossip, a_api) = agent_with_api(
        "ma",
        &["--http-token", TOKEN, "--metric-label", "dc=test"],
        T,
    );
    let (mut b, _, b_api) = agent_with_api(
        "mb",
        &[
            "--http-token",
            TOKEN,
            "--metrics-prefix",
            "consul",
            "--join",
            &a_gossip,
        ],
        T,
    );
    let (mut c, _, _) = agent_with_api("mc", &["--http-token", TOKEN, "--join", &a_gossip], T);
    for name in ["mb", "mc"] {
        a.wait_event(T, "join", name, "alive");
    }
    b.wait_event(T, "join", "mc", "alive");
    let before = scrape(&a_api);

    // The token rule of the API holds for /metrics.
    assert_eq!(http_get(&a_api, "/metrics", &[]).0, 401);
    let wrong = http_get(&a_api, "/metrics", &[("Authorization", "Bearer wrong")]);
    assert_eq!(wrong.0, 401, "{}", wrong.1);

    // Kill mc: ma suspects it, then declares it dead.
    c.proc.kill();
    a.wait_event(T, "leave", "mc", "dead");
    // The next push/pull sends our state, which sets node.instances.
    let deadline = Instant::now() + T;
    let after = loop {
        let s = scrape(&a_api);
        if s.values
            .get("memberlist_node_instances{dc=\"test\",node_state=\"dead\"}")
            == Some(&1.0)
        {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "node.instances never showed mc dead"
        );
        std::thread::sleep(Duration::from_millis(200));
    };

    let l = "{dc=\"test\"}";
    for (name, kind) in [
        ("memberlist_msg_suspect", "counter"),
        ("memberlist_msg_dead", "counter"),
        ("memberlist_udp_sent", "counter"),
        ("memberlist_udp_received", "counter"),
        ("memberlist_tcp_accept", "counter"),
        ("memberlist_tcp_sent", "counter"),
        ("memberlist_health_score", "gauge"),
        ("memberlist_probeNode", "summary"),
        ("memberlist_gossip", "summary"),
        ("memberlist_pushPullNode", "summary"),
        ("memberlist_size_local", "gauge"),
        ("memberlist_node_instances", "gauge"),
    ] {
        assert_eq!(after.kind(name), kind, "{name}");
    }
    let moved = |series: &str| {
        let (x, y) = (before.get(series), after.get(series));
        assert!(y > x, "{series}: {x} -> {y}");
    };
    moved(&format!("memberlist_msg_suspect{l}"));
    moved(&format!("memberlist_msg_dead{l}"));
    moved(&format!("memberlist_udp_sent{l}"));
    moved(&format!("memberlist_probeNode_count{l}"));
    moved(&format!("memberlist_probeNode_sum{l}"));
    // Probes are timed in milliseconds: the failed ones last about a
    // probe interval (local profile: 1 s).
    let slowest = after.get("memberlist_probeNode{dc=\"test\",quantile=\"0.99\"}");
    assert!(slowest > 0.0, "{slowest}");
    let health = format!("memberlist_health_score{l}");
    assert_eq!(before.get(&health), 0.0);
    for (state, n) in [("alive", 2.0), ("suspect", 0.0), ("left", 0.0)] {
        let series = format!("memberlist_node_instances{{dc=\"test\",node_state=\"{state}\"}}");
        assert_eq!(after.get(&series), n, "{series}");
    }

    // With mc gone, a stalled mb leaves ma no helper to nack its failed
    // probes: Lifeguard raises ma's health score, and the gauge follows.
    let signal = |sig: &str| {
        let pid = b.proc.child.id().to_string();
        assert!(Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success());
    };
    signal("-STOP");
    let deadline = Instant::now() + T;
    while scrape(&a_api).get(&health) < 1.0 {
        if Instant::now() > deadline {
            signal("-CONT");
            panic!("the health score never rose while mb was stopped");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    signal("-CONT");

    // mb serves the same metrics under a Consul-style prefix.
    let consul = scrape(&b_api);
    assert_eq!(consul.kind("consul_memberlist_msg_alive"), "counter");
    assert_eq!(consul.kind("consul_memberlist_probeNode"), "summary");
    assert!(consul.get("consul_memberlist_msg_alive") >= 3.0);
    assert!(
        consul.types.keys().all(|n| n.starts_with("consul_")),
        "{:?}",
        consul.types.keys()
    );
    drop(b);
}
