//! Lifeguard, extended: a node whose own health score is above zero waits
//! `score + 1` times its suspicion timeout before it declares a suspect dead
//! itself (`Config::lifeguard_health_scaled_suspicion`); switched off, it
//! keeps memberlist's exact timing.

use std::net::SocketAddr;
use std::time::Duration;

use headcount_proto::wire::{encode_message, Alive, Message, Suspect};
use headcount_proto::{Config, Instant, LocalNode, MemberState, Node};

const SELF: &str = "self";

fn packet(m: Message) -> Vec<u8> {
    let mut v = Vec::new();
    encode_message(&m, &mut v);
    v
}

fn alive(name: &str, host: u8) -> Message {
    Message::Alive(Alive {
        incarnation: 1,
        node: name.into(),
        addr: vec![127, 0, 0, host],
        port: 7000,
        meta: Vec::new(),
        vsn: [1, 5, 2, 0, 0, 0],
    })
}

/// A node that knows peers `b` and `c`, hears at `t0` that `c` suspects
/// `b`, and is itself falsely accused `accusations` times (each refutation
/// raises its health score by one). Returns how long after `t0` it
/// declared `b` dead, and its health score at that moment.
fn time_to_declare(scaled: bool, accusations: u32) -> (Duration, u32) {
    let mut config = Config::local();
    config.lifeguard_health_scaled_suspicion = scaled;
    let start = Instant::from_millis(0);
    let local = LocalNode::new(SELF, SocketAddr::from(([127, 0, 0, 1], 7000)));
    let mut node = Node::builder(config, local).seed(42).build(start).unwrap();
    let peer = SocketAddr::from(([127, 0, 0, 3], 7000));
    node.handle_packet(start, peer, &packet(alive("b", 2)));
    node.handle_packet(start, peer, &packet(alive("c", 3)));
    let t0 = start + Duration::from_millis(10);
    for _ in 0..accusations {
        let inc = node.local_member().incarnation;
        let accuse = Suspect {
            incarnation: inc,
            node: SELF.into(),
            from: "c".into(),
        };
        node.handle_packet(t0, peer, &packet(Message::Suspect(accuse)));
    }
    let suspect_b = Suspect {
        incarnation: 1,
        node: "b".into(),
        from: "c".into(),
    };
    node.handle_packet(t0, peer, &packet(Message::Suspect(suspect_b)));
    assert_eq!(node.member("b").unwrap().state, MemberState::Suspect);
    // Nobody answers: drive the node's own timers only.
    while node.poll_output().is_some() {}
    let limit = t0 + Duration::from_secs(600);
    while let Some(at) = node.poll_timeout() {
        assert!(at <= limit, "b was never declared dead");
        node.handle_timeout(at);
        while node.poll_output().is_some() {}
        if node.member("b").unwrap().state == MemberState::Dead {
            return (at - t0, node.health_score());
        }
    }
    panic!("no timer left and b is not dead");
}

#[test]
fn a_healthy_node_declares_on_memberlists_schedule_either_way() {
    let (plain, score_plain) = time_to_declare(false, 0);
    let (scaled, score_scaled) = time_to_declare(true, 0);
    // The node's own failed probes may raise its score; only when it stays
    // at zero must the two runs agree.
    if score_plain == 0 && score_scaled == 0 {
        assert_eq!(plain, scaled);
    }
    let config = Config::local();
    // Three known nodes: suspicion_mult × 1 × interval up to
    // suspicion_max_timeout_mult times that.
    let max = config.probe_interval * config.suspicion_mult * config.suspicion_max_timeout_mult;
    assert!(plain <= max, "plain {plain:?} beyond {max:?}");
}

#[test]
fn an_unhealthy_node_waits_longer_before_declaring() {
    let (plain, score) = time_to_declare(false, 2);
    assert!(score >= 2, "refutations should have raised the score");
    let (scaled, score_scaled) = time_to_declare(true, 2);
    assert!(score_scaled >= 1);
    assert!(
        scaled > plain,
        "scaled {scaled:?} should come after plain {plain:?}"
    );
    // Never beyond (max score + 1) × the longest suspicion timeout.
    let config = Config::local();
    let max = config.probe_interval * config.suspicion_mult * config.suspicion_max_timeout_mult;
    assert!(scaled <= max * config.awareness_max_multiplier);
}
