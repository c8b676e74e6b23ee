//! A node whose gossip tick fires late (it, or the process it shares, is
//! not keeping up) gossips less: a quarter interval late, one Go-sized
//! packet to one member instead of a packed one to each of `gossip_nodes`;
//! a whole interval late, no round at all (`Stats::gossip_rounds_skipped`).
//! On time it gossips to `gossip_nodes` members as before.

use std::net::SocketAddr;
use std::time::Duration;

use headcount_proto::wire::{decode_packet, encode_message, Alive, Limits, Message};
use headcount_proto::{Config, Instant, LocalNode, Node, Output};

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A node that holds ten other members alive, their alives queued for
/// gossip.
fn node_with_members() -> Node {
    let mut n = Node::builder(Config::lan(), LocalNode::new("node-0", addr(7000)))
        .seed(3)
        .build(Instant::ZERO)
        .expect("valid config");
    for i in 1..=10u16 {
        let alive = Message::Alive(Alive {
            incarnation: 1,
            node: format!("node-{i}"),
            addr: vec![127, 0, 0, 1],
            port: 7000 + i,
            meta: Vec::new(),
            vsn: [1, 5, 2, 0, 0, 0],
        });
        let mut bytes = Vec::new();
        encode_message(&alive, &mut bytes);
        n.handle_packet(Instant::ZERO, addr(7000 + i), &bytes);
    }
    while n.poll_output().is_some() {}
    n
}

/// Packets that carry only gossip (no ping, ack or their kin).
fn gossip_packets(n: &mut Node) -> usize {
    std::iter::from_fn(|| n.poll_output())
        .filter(|o| match o {
            Output::Packet { data, .. } => {
                let mut msgs = Vec::new();
                let _ = decode_packet(data, b"", false, &Limits::default(), &mut msgs);
                !msgs.is_empty()
                    && msgs.iter().all(|m| {
                        matches!(
                            m,
                            Message::Alive(_) | Message::Suspect(_) | Message::Dead(_)
                        )
                    })
            }
            _ => false,
        })
        .count()
}

/// Fires the node's timers, each `late` after its deadline, until a
/// gossip round ran or was skipped; returns the gossip packets sent then.
fn next_gossip_round(n: &mut Node, late: Duration) -> usize {
    for _ in 0..100 {
        let at = n.poll_timeout().expect("a timer is armed");
        let (rounds, skipped) = (n.stats().gossip_rounds, n.stats().gossip_rounds_skipped);
        n.handle_timeout(at + late);
        let packets = gossip_packets(n);
        if n.stats().gossip_rounds != rounds || n.stats().gossip_rounds_skipped != skipped {
            return packets;
        }
    }
    panic!("no gossip round within 100 timers");
}

#[test]
fn late_ticks_gossip_less_and_very_late_ones_skip() {
    let mut n = node_with_members();
    let gossip_nodes = n.config().gossip_nodes;
    assert_eq!(next_gossip_round(&mut n, Duration::ZERO), gossip_nodes);

    let quarter = n.config().gossip_interval / 4;
    let skipped = n.stats().gossip_rounds_skipped;
    assert_eq!(next_gossip_round(&mut n, quarter), 1);
    assert_eq!(n.stats().gossip_rounds_skipped, skipped);

    let whole = n.config().gossip_interval;
    assert_eq!(next_gossip_round(&mut n, whole), 0);
    assert_eq!(n.stats().gossip_rounds_skipped, skipped + 1);

    // Caught up: back to every target.
    assert_eq!(next_gossip_round(&mut n, Duration::ZERO), gossip_nodes);
}
