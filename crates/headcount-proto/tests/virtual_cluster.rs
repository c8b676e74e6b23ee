//! Whole clusters of proto nodes on a virtual network and a virtual clock:
//! every packet and stream goes through the real encoder and decoder.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{converged, Cluster, CONVERGE};
use headcount_proto::wire;
use headcount_proto::{Completion, Config, Event, MemberState};

#[test]
fn five_nodes_converge_by_join() {
    let mut c = Cluster::new(5, Config::local(), 1);
    c.join_all_to(0);
    let t = c.run_until(CONVERGE, |c| converged(c, 5));
    assert!(t.is_some(), "cluster did not converge");
    let joins = c
        .completions
        .iter()
        .filter(|(_, _, e)| matches!(e, Completion::JoinFinished { succeeded: 1, .. }))
        .count();
    assert_eq!(joins, 4);
}

#[test]
fn crashed_node_is_declared_dead_by_all_within_suspicion_bound() {
    let config = Config::local();
    let mut c = Cluster::new(6, config.clone(), 7);
    c.join_all_to(0);
    c.run_until(CONVERGE, |c| converged(c, 6))
        .expect("converged");
    c.kill(5);
    // Bound: every survivor probes node-5 within a few probe rounds, then
    // the suspicion timeout runs at most its maximum:
    // SuspicionMaxTimeoutMult × SuspicionMult × log10(6) (→ 1) × interval.
    let max_suspicion =
        config.probe_interval * config.suspicion_mult * config.suspicion_max_timeout_mult;
    let bound = max_suspicion + config.probe_interval * 6 * 2;
    let t = c.run_until(bound, |c| c.all_see("node-5", MemberState::Dead));
    let t = t.expect("node-5 not declared dead by everyone in time");
    assert!(
        t >= config.probe_interval * config.suspicion_mult,
        "dead too early: {t:?}"
    );
    let suspected = c
        .events
        .iter()
        .any(|(_, _, e)| matches!(e, Event::Suspect { member, .. } if member.name == "node-5"));
    assert!(suspected);
    // Nobody else was ever suspected: no false positives on a lossless net.
    let false_suspects = c
        .events
        .iter()
        .filter(|(_, _, e)| matches!(e, Event::Suspect { member, .. } if member.name != "node-5"))
        .count();
    assert_eq!(false_suspects, 0);
}

#[test]
fn leave_marks_node_left_everywhere() {
    let mut c = Cluster::new(4, Config::local(), 3);
    c.join_all_to(0);
    c.run_until(CONVERGE, |c| converged(c, 4))
        .expect("converged");
    let now = c.now;
    let token = c.node(3).leave(now);
    assert!(token.is_some());
    c.drain(3);
    let t = c.run_until(Duration::from_secs(5), |c| {
        (0..3).all(|i| c.state_seen_by(i, "node-3") == Some(MemberState::Left))
    });
    assert!(t.is_some(), "leave did not propagate");
    let finished = c
        .completions
        .iter()
        .any(|(i, _, e)| *i == 3 && *e == Completion::BroadcastFinished(token.unwrap()));
    assert!(finished, "leave broadcast never finished");
}

#[test]
fn meta_update_propagates() {
    let mut c = Cluster::new(4, Config::local(), 11);
    c.join_all_to(0);
    c.run_until(CONVERGE, |c| converged(c, 4))
        .expect("converged");
    let now = c.now;
    c.node(2).update_meta(now, b"role=db".to_vec()).unwrap();
    c.drain(2);
    let t = c.run_until(Duration::from_secs(5), |c| {
        c.nodes
            .iter()
            .flatten()
            .all(|n| n.member("node-2").unwrap().meta[..] == b"role=db"[..])
    });
    assert!(t.is_some(), "meta did not propagate");
    let updates = c
        .events
        .iter()
        .filter(|(_, _, e)| matches!(e, Event::Update(m) if m.name == "node-2"))
        .count();
    // The three peers, and node-2 itself (Go notifies the local node too).
    assert_eq!(updates, 4);
}

#[test]
fn suspicion_of_a_live_node_is_refuted() {
    let mut c = Cluster::new(4, Config::local(), 5);
    c.join_all_to(0);
    c.run_until(CONVERGE, |c| converged(c, 4))
        .expect("converged");
    let inc_before = c.node(1).local_member().incarnation;
    // node-0 falsely accuses node-1 through gossip.
    let now = c.now;
    let accuse = headcount_proto::wire::Suspect {
        incarnation: inc_before,
        node: "node-1".into(),
        from: "node-0".into(),
    };
    let mut pkt = Vec::new();
    wire::encode_message(&wire::Message::Suspect(accuse), &mut pkt);
    let from = c.addrs[0];
    c.node(1).handle_packet(now, from, &pkt);
    c.drain(1);
    assert!(c.node(1).local_member().incarnation > inc_before);
    assert_eq!(c.node(1).health_score(), 1);
    c.run_for(Duration::from_secs(10));
    assert!(c.all_see("node-1", MemberState::Alive));
}

#[test]
fn gossip_tick_parks_when_idle_and_resumes_on_a_broadcast() {
    let config = Config::local();
    let mut c = Cluster::new(4, config.clone(), 11);
    c.join_all_to(0);
    c.run_until(CONVERGE, |c| converged(c, 4))
        .expect("converged");
    // Once every queue has drained, no node keeps a gossip timer.
    let idle = c.run_until(Duration::from_secs(30), |c| {
        c.nodes.iter().flatten().all(|n| n.gossip_idle())
    });
    assert!(idle.is_some(), "gossip never went idle");
    for n in c.nodes.iter().flatten() {
        assert_eq!(n.queued_broadcasts(), 0);
    }
    // A broadcast wakes the tick up again, within one gossip interval.
    let now = c.now;
    c.node(1).update_meta(now, b"v2".to_vec()).expect("meta");
    assert!(!c.node(1).gossip_idle());
    let next = c.node(1).poll_timeout().expect("a timer");
    assert!(next <= now + config.gossip_interval, "{next:?} vs {now:?}");
    c.drain(1);
    let seen = c.run_until(Duration::from_secs(10), |c| {
        c.nodes
            .iter()
            .flatten()
            .all(|n| n.member("node-1").is_some_and(|m| &*m.meta == b"v2"))
    });
    assert!(seen.is_some(), "the meta update did not spread");
}

#[test]
fn same_seed_same_history() {
    fn history(seed: u64) -> Vec<String> {
        let mut c = Cluster::new(5, Config::local(), seed);
        c.join_all_to(0);
        c.run_for(Duration::from_secs(5));
        c.kill(4);
        c.run_for(Duration::from_secs(20));
        c.events
            .iter()
            .map(|(i, t, e)| format!("{i} {t:?} {e:?}"))
            .collect()
    }
    assert_eq!(history(42), history(42));
    assert_ne!(history(42), history(43));
}

#[test]
fn garbage_packets_are_counted_not_fatal() {
    let mut c = Cluster::new(2, Config::local(), 9);
    c.join_all_to(0);
    c.run_until(CONVERGE, |c| converged(c, 2))
        .expect("converged");
    let from: SocketAddr = "127.0.0.9:9".parse().unwrap();
    let now = c.now;
    let node = c.node(0);
    let before = node.stats().clone();
    for junk in [
        &[][..],
        &[0xff; 3],
        &[7, 3, 0, 10],
        &[12, 0, 0, 0, 0, 4],
        &[0, 0x85, 0xa4],
    ] {
        node.handle_packet(now, from, junk);
    }
    let after = node.stats().clone();
    let bad = (after.packets_dropped + after.messages_malformed + after.messages_unknown)
        - (before.packets_dropped + before.messages_malformed + before.messages_unknown);
    assert!(bad >= 4, "only {bad} bad inputs counted");
    c.run_for(Duration::from_secs(3));
    assert!(converged(&c, 2));
}
