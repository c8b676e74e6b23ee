//! After its join, a node that keeps learning members by gossip (others
//! are joining too) pulls a full table once that news stops coming: gossip
//! about a member can end before it reaches everyone (in a join storm of
//! 1,000 a few pairs stay unknown), and without the pull the gap lasts
//! until the next periodic push/pull, 30 s or more later.

mod common;

use std::time::Duration;

use common::Cluster;
use headcount_proto::wire::{self, Limits, Message};
use headcount_proto::Config;

const SEED: usize = 0;
const A: usize = 1;
const B: usize = 2;
const C: usize = 3;

/// Whether a packet carries an alive about `name`.
fn carries_alive_of(data: &[u8], name: &str) -> bool {
    let mut out = Vec::new();
    let _ = wire::decode_packet(data, b"", false, &Limits::default(), &mut out);
    out.iter()
        .any(|m| matches!(m, Message::Alive(a) if a.node == name))
}

#[test]
fn growth_by_gossip_after_a_join_brings_a_pull() {
    let mut c = Cluster::new(4, Config::lan(), 1);
    // Gossip about B never reaches A: only a push/pull can tell A of B.
    c.deliver = Some(Box::new(|_, to, data| {
        to != A || !carries_alive_of(data, "node-2")
    }));
    let seed = c.addrs[SEED];
    let now = c.now;
    c.node(A).join(now, &[seed]);
    c.drain(A);
    // A's join and the early pull it brings (one to two probe intervals).
    c.run_for(Duration::from_secs(5));
    let now = c.now;
    c.node(B).join(now, &[seed]);
    c.drain(B);
    c.run_for(Duration::from_secs(5));
    assert_eq!(c.state_seen_by(A, "node-2"), None, "A must not know B yet");
    assert!(c.state_seen_by(B, "node-1").is_some());

    // C joins: A learns of C by gossip, within the first push/pull
    // interval after its own join, and pulls once that news stops.
    let now = c.now;
    c.node(C).join(now, &[seed]);
    c.drain(C);
    let took = c.run_until(Duration::from_secs(8), |c| {
        c.state_seen_by(A, "node-2").is_some()
    });
    assert!(
        took.is_some(),
        "A learned of C by gossip but did not pull B within 8 s"
    );
    assert!(c.state_seen_by(A, "node-3").is_some());
}

#[test]
fn a_join_into_a_settled_cluster_pulls_no_more_than_before() {
    // Two nodes join the seed one after the other, far apart: the second
    // learns everything from its seed, so it gets the join's one early
    // pull and no more; the streams it dials are that pull and the join.
    let mut c = Cluster::new(3, Config::lan(), 5);
    let seed = c.addrs[SEED];
    let now = c.now;
    c.node(A).join(now, &[seed]);
    c.drain(A);
    c.run_for(Duration::from_secs(10));
    let before = c.node(B).stats().streams_dialed;
    let now = c.now;
    c.node(B).join(now, &[seed]);
    c.drain(B);
    c.run_for(Duration::from_secs(15));
    assert_eq!(c.node(B).stats().streams_dialed - before, 2);
}
