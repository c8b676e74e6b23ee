//! Property tests: random and mutated-valid messages fed to the proto state
//! machine (one node, and a small cluster on a virtual network), checking
//! its invariants after every input:
//!
//! - no panic;
//! - our own incarnation never decreases;
//! - a running node never believes itself dead or left;
//! - the member table holds no name that was never fed to it;
//! - one input produces a bounded number of outputs.
//!
//! Plus targeted tests: incarnations at `u32::MAX` do not wrap, and a burst
//! of gossip larger than the inbound queue is handled alive-first, with the
//! overflow dropped and counted.

mod fuzz_harness;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use fuzz_harness::{Bytes, Harness, SELF};
use headcount_proto::wire::{
    self, encode_message, Alive, Dead, Message, PushNodeState, PushPull, Suspect, WireState,
};
use headcount_proto::{Config, Instant, LocalNode, MemberState, Node, StreamMessage};
use proptest::prelude::*;

fn from() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 2], 7000))
}

fn encode(msgs: &[Message]) -> Vec<u8> {
    let parts: Vec<Vec<u8>> = msgs
        .iter()
        .map(|m| {
            let mut v = Vec::new();
            encode_message(m, &mut v);
            v
        })
        .collect();
    if parts.len() == 1 {
        parts[0].clone()
    } else {
        wire::encode_compound(&parts).unwrap().remove(0)
    }
}

const POOL: [&str; 5] = [SELF, "a", "b", "c", "d"];

fn arb_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (0..POOL.len()).prop_map(|i| POOL[i].to_string()),
        1 => "[a-z]{0,3}",
    ]
}

fn arb_incarnation() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..8, (0u32..8).prop_map(|d| u32::MAX - d), any::<u32>()]
}

fn arb_addr() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (1u8..5).prop_map(|d| vec![127, 0, 0, d]),
        Just(vec![0u8; 16]),
        proptest::collection::vec(any::<u8>(), 0..6),
    ]
}

fn arb_vsn() -> impl Strategy<Value = [u8; 6]> {
    prop_oneof![4 => Just([1u8, 5, 2, 0, 0, 0]), 1 => any::<[u8; 6]>()]
}

fn arb_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (
            arb_incarnation(),
            arb_name(),
            arb_addr(),
            7000u16..7003,
            arb_vsn()
        )
            .prop_map(
                |(incarnation, node, addr, port, vsn)| Message::Alive(Alive {
                    incarnation,
                    node,
                    addr,
                    port,
                    meta: Vec::new(),
                    vsn,
                })
            ),
        (arb_incarnation(), arb_name(), arb_name()).prop_map(|(incarnation, node, from)| {
            Message::Suspect(Suspect {
                incarnation,
                node: node.into(),
                from: from.into(),
            })
        }),
        (arb_incarnation(), arb_name(), arb_name()).prop_map(|(incarnation, node, from)| {
            Message::Dead(Dead {
                incarnation,
                node: node.into(),
                from: from.into(),
            })
        }),
        (any::<u32>(), arb_name(), arb_addr(), any::<u16>()).prop_map(
            |(seq_no, node, source_addr, source_port)| Message::Ping(wire::Ping {
                seq_no,
                node,
                source_addr,
                source_port,
                source_node: "a".into(),
            })
        ),
        (any::<u32>(), arb_addr(), arb_name(), any::<bool>()).prop_map(
            |(seq_no, target, node, nack)| Message::IndirectPing(wire::IndirectPingReq {
                seq_no,
                target,
                port: 7000,
                node,
                nack,
                source_addr: vec![127, 0, 0, 2],
                source_port: 7000,
                source_node: "a".into(),
            })
        ),
        (0u32..16).prop_map(|seq_no| Message::Ack(wire::AckResp {
            seq_no,
            payload: Vec::new()
        })),
        (0u32..16).prop_map(|seq_no| Message::Nack(wire::NackResp { seq_no })),
        proptest::collection::vec(any::<u8>(), 0..16).prop_map(Message::User),
    ]
}

fn arb_push_pull() -> impl Strategy<Value = PushPull> {
    let entry = (arb_name(), arb_addr(), arb_incarnation(), 0u8..4, arb_vsn()).prop_map(
        |(name, addr, incarnation, st, vsn)| PushNodeState {
            name,
            addr,
            port: 7000,
            meta: Vec::new(),
            incarnation,
            state: [
                WireState::Alive,
                WireState::Suspect,
                WireState::Dead,
                WireState::Left,
            ][st as usize],
            vsn,
        },
    );
    (any::<bool>(), proptest::collection::vec(entry, 0..6)).prop_map(|(join, states)| PushPull {
        join,
        states,
        user_state: Vec::new(),
    })
}

/// How to damage a valid encoding.
#[derive(Clone, Debug)]
enum Mutation {
    None,
    Flip(usize, u8),
    Truncate(usize),
    Append(Vec<u8>),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => Just(Mutation::None),
        2 => (any::<usize>(), 1u8..=255).prop_map(|(i, x)| Mutation::Flip(i, x)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => proptest::collection::vec(any::<u8>(), 1..8).prop_map(Mutation::Append),
    ]
}

fn mutate(mut data: Vec<u8>, m: &Mutation) -> Vec<u8> {
    match m {
        Mutation::None => {}
        Mutation::Flip(i, x) if !data.is_empty() => {
            let n = data.len();
            data[i % n] ^= x;
        }
        Mutation::Flip(..) => {}
        Mutation::Truncate(i) => data.truncate(i % (data.len() + 1)),
        Mutation::Append(extra) => data.extend_from_slice(extra),
    }
    data
}

#[derive(Clone, Debug)]
enum Input {
    Packet(Vec<Message>, bool, bool, Mutation),
    Raw(Vec<u8>),
    Stream(PushPull, Mutation),
    Advance(u64),
}

fn arb_input() -> impl Strategy<Value = Input> {
    prop_oneof![
        6 => (
            proptest::collection::vec(arb_message(), 1..5),
            any::<bool>(),
            any::<bool>(),
            arb_mutation()
        )
            .prop_map(|(m, compress, crc, mu)| Input::Packet(m, compress, crc, mu)),
        1 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(Input::Raw),
        2 => (arb_push_pull(), arb_mutation()).prop_map(|(p, m)| Input::Stream(p, m)),
        2 => prop_oneof![0u64..2_000, 0u64..120_000].prop_map(Input::Advance),
    ]
}

fn names_of(input: &Input, names: &mut HashSet<String>) {
    let mut add = |n: &str| {
        names.insert(n.to_string());
    };
    match input {
        Input::Packet(msgs, ..) => {
            for m in msgs {
                match m {
                    Message::Alive(a) => add(&a.node),
                    Message::Suspect(s) => add(&s.node),
                    Message::Dead(d) => add(&d.node),
                    _ => {}
                }
            }
        }
        Input::Stream(pp, _) => pp.states.iter().for_each(|s| add(&s.name)),
        Input::Raw(_) | Input::Advance(_) => {}
    }
}

fn apply(h: &mut Harness, input: &Input) {
    match input {
        Input::Packet(msgs, compress, crc, mu) => {
            let body = encode(msgs);
            let mut pkt = Vec::new();
            let opts = wire::PacketOptions {
                compress: *compress,
                crc: *crc,
                ..Default::default()
            };
            wire::frame_packet(&body, &opts, &mut pkt).unwrap();
            h.packet(from(), &mutate(pkt, mu));
        }
        Input::Raw(data) => h.packet(from(), data),
        Input::Stream(pp, mu) => {
            let mut enc = Vec::new();
            wire::encode_stream(&StreamMessage::PushPull(pp.clone()), b"", false, &mut enc)
                .unwrap();
            let enc = mutate(enc, mu);
            if let Ok(wire::StreamDecode::Complete { msg, .. }) =
                wire::decode_stream(&enc, b"", false, &wire::Limits::default())
            {
                h.stream(from(), msg);
            }
        }
        Input::Advance(ms) => h.advance(Duration::from_millis(*ms)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// One node fed well-formed, mutated and random input.
    #[test]
    fn one_node_keeps_its_invariants(
        encrypted in any::<bool>(),
        seed in any::<u64>(),
        inputs in proptest::collection::vec(arb_input(), 1..60),
    ) {
        let mut h = Harness::new(encrypted, seed);
        let mut names: HashSet<String> = HashSet::from([SELF.to_string()]);
        for input in &inputs {
            names_of(input, &mut names);
            apply(&mut h, input);
            // Raw and mutated input may carry any name, so the bound is
            // only checked while every input was well-formed.
            let all_clean = inputs.iter().all(|i| matches!(i,
                Input::Packet(_, _, _, Mutation::None)
                    | Input::Stream(_, Mutation::None)
                    | Input::Advance(_)));
            if all_clean {
                for m in h.node.members() {
                    prop_assert!(names.contains(m.name.as_str()), "unknown member {:?}", m.name);
                }
                prop_assert!(h.node.members().count() <= names.len());
            }
        }
    }

    /// Arbitrary bytes as packets and as streams.
    #[test]
    fn random_bytes_never_break_a_node(
        data in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        fuzz_harness::node_inputs(&data);
        fuzz_harness::packet_decode(&data);
        fuzz_harness::stream_decode(&data);
    }
}

/// A small cluster on a lossless virtual network with one hostile peer
/// injecting packets: nobody is declared dead, and the hostile inputs never
/// crash anyone.
#[test]
fn small_cluster_survives_a_hostile_peer() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 8,
        ..ProptestConfig::default()
    });
    let strategy = proptest::collection::vec((0usize..3, arb_input()), 20..80);
    runner
        .run(&strategy, |inputs| {
            run_cluster(&inputs);
            Ok(())
        })
        .unwrap();
}

fn run_cluster(inputs: &[(usize, Input)]) {
    let n = 3;
    let addrs: Vec<SocketAddr> = (0..n)
        .map(|i| SocketAddr::from(([127, 0, 0, 10 + i as u8], 7946)))
        .collect();
    let mut now = Instant::ZERO;
    let mut nodes: Vec<Node> = (0..n)
        .map(|i| {
            let local = LocalNode::new(format!("n{i}"), addrs[i]);
            Node::builder(Config::local(), local)
                .seed(i as u64)
                .build(now)
                .unwrap()
        })
        .collect();
    let mut incarnations = vec![0u32; n];
    // Wire: packets delivered at once, streams answered synchronously.
    let step = |nodes: &mut Vec<Node>, now: Instant| {
        let mut budget = 100_000;
        loop {
            let mut moved = false;
            for i in 0..nodes.len() {
                while let Some(out) = nodes[i].poll_output() {
                    budget -= 1;
                    assert!(budget > 0, "outputs never settle");
                    moved = true;
                    match out {
                        headcount_proto::Output::Packet { to, data } => {
                            if let Some(j) = addrs.iter().position(|a| *a == to) {
                                nodes[j].handle_packet(now, addrs[i], &data);
                            }
                        }
                        headcount_proto::Output::Dial(d) => {
                            let result = match addrs.iter().position(|a| *a == d.to) {
                                Some(j) => {
                                    let msg = match wire::decode_stream(
                                        &d.data,
                                        b"",
                                        false,
                                        &wire::Limits::default(),
                                    ) {
                                        Ok(wire::StreamDecode::Complete { msg, .. }) => msg,
                                        other => panic!("bad stream {other:?}"),
                                    };
                                    let reply = nodes[j].handle_stream(now, addrs[i], msg);
                                    match (reply, d.expect_reply) {
                                        (Some(r), true) => match wire::decode_stream(
                                            &r,
                                            b"",
                                            false,
                                            &wire::Limits::default(),
                                        ) {
                                            Ok(wire::StreamDecode::Complete { msg, .. }) => {
                                                Ok(Some(msg))
                                            }
                                            other => panic!("bad reply {other:?}"),
                                        },
                                        _ => Ok(None),
                                    }
                                }
                                None => Err(headcount_proto::StreamFailure::Io(
                                    std::io::ErrorKind::ConnectionRefused,
                                )),
                            };
                            nodes[i].handle_stream_result(now, d.id, result);
                        }
                        headcount_proto::Output::Event(_)
                        | headcount_proto::Output::Completion(_) => {}
                    }
                }
            }
            if !moved {
                break;
            }
        }
    };
    step(&mut nodes, now);
    for i in 1..n {
        nodes[i].join(now, &[addrs[0]]);
        step(&mut nodes, now);
    }
    let hostile = SocketAddr::from(([127, 0, 0, 99], 7946));
    for (target, input) in inputs {
        match input {
            Input::Advance(ms) => {
                let end = now + Duration::from_millis(*ms);
                // Fire every timer on the way, in order.
                loop {
                    let next = nodes.iter().filter_map(|n| n.poll_timeout()).min();
                    match next {
                        Some(t) if t <= end => {
                            now = now.max(t);
                            for node in nodes.iter_mut() {
                                node.handle_timeout(now);
                            }
                            step(&mut nodes, now);
                        }
                        _ => break,
                    }
                }
                now = end;
            }
            Input::Packet(msgs, compress, crc, mu) => {
                // The hostile peer only speaks about names outside the
                // cluster, so the cluster's own view must stay right.
                let msgs: Vec<Message> = msgs
                    .iter()
                    .filter(|m| match m {
                        Message::Alive(a) => !a.node.starts_with('n'),
                        Message::Suspect(_) | Message::Dead(_) => false,
                        _ => true,
                    })
                    .cloned()
                    .collect();
                if msgs.is_empty() {
                    continue;
                }
                let body = encode(&msgs);
                let mut pkt = Vec::new();
                let opts = wire::PacketOptions {
                    compress: *compress,
                    crc: *crc,
                    ..Default::default()
                };
                wire::frame_packet(&body, &opts, &mut pkt).unwrap();
                let pkt = mutate(pkt, mu);
                nodes[*target].handle_packet(now, hostile, &pkt);
                step(&mut nodes, now);
            }
            Input::Raw(data) => {
                nodes[*target].handle_packet(now, hostile, data);
                step(&mut nodes, now);
            }
            Input::Stream(..) => {}
        }
        for (i, node) in nodes.iter().enumerate() {
            let me = node.local_member();
            assert!(me.incarnation >= incarnations[i]);
            incarnations[i] = me.incarnation;
            assert_eq!(me.state, MemberState::Alive);
        }
    }
    // Nobody in the cluster was declared dead (a mutated message could
    // still make a node suspect another briefly: packet bits can flip a
    // name into "n0").
    for node in &nodes {
        for peer in node.members().filter(|m| m.name.starts_with('n')) {
            if (0..n).any(|i| peer.name == format!("n{i}")) {
                assert_ne!(
                    peer.state,
                    MemberState::Dead,
                    "{} thinks {} dead",
                    node.name(),
                    peer.name
                );
            }
        }
    }
}

/// Suspect and dead messages about us at `u32::MAX` are refuted without
/// the incarnation wrapping to zero.
#[test]
fn incarnation_saturates_at_max() {
    let mut h = Harness::new(false, 1);
    for msg in [
        Message::Suspect(Suspect {
            incarnation: u32::MAX - 1,
            node: SELF.into(),
            from: "a".into(),
        }),
        Message::Suspect(Suspect {
            incarnation: u32::MAX,
            node: SELF.into(),
            from: "a".into(),
        }),
        Message::Dead(Dead {
            incarnation: u32::MAX,
            node: SELF.into(),
            from: "a".into(),
        }),
        Message::Alive(Alive {
            incarnation: u32::MAX,
            node: SELF.into(),
            addr: vec![127, 0, 0, 9],
            port: 1,
            meta: Vec::new(),
            vsn: [1, 5, 2, 0, 0, 0],
        }),
    ] {
        h.packet(from(), &encode(&[msg]));
        let me = h.node.local_member();
        assert_eq!(me.incarnation, u32::MAX);
        assert_eq!(me.state, MemberState::Alive);
    }
    // And it stays there through time and more accusations.
    h.advance(Duration::from_secs(60));
    h.packet(
        from(),
        &encode(&[Message::Dead(Dead {
            incarnation: u32::MAX,
            node: SELF.into(),
            from: "b".into(),
        })]),
    );
    assert_eq!(h.node.local_member().incarnation, u32::MAX);
    assert_eq!(h.node.local_member().state, MemberState::Alive);
}

/// A burst of more gossip than the inbound queue holds is handled in
/// windows of the queue's depth, nothing dropped, alive messages before
/// the rest within a window.
#[test]
fn burst_beyond_the_queue_is_handled_in_windows_alive_first() {
    let mut config = Config::local();
    config.handoff_queue_depth = 4;
    let local = LocalNode::new(SELF, SocketAddr::from(([127, 0, 0, 100], 7946)));
    let mut node = Node::builder(config, local)
        .seed(3)
        .build(Instant::ZERO)
        .unwrap();
    while node.poll_output().is_some() {}
    let alive = |name: &str, inc: u32| {
        encode(&[Message::Alive(Alive {
            incarnation: inc,
            node: name.into(),
            addr: vec![127, 0, 0, 7],
            port: 7000,
            meta: Vec::new(),
            vsn: [1, 5, 2, 0, 0, 0],
        })])
    };
    // Ten dead messages about "x" (four fit at a time, so the first eight
    // are handled, about a member not yet known, before the rest are
    // queued), then "x" alive at incarnation 1: handled before the last
    // two dead messages, which then apply; that proves the order.
    let mut packets: Vec<Vec<u8>> = (0..10)
        .map(|_| {
            encode(&[Message::Dead(Dead {
                incarnation: 1,
                node: "x".into(),
                from: "a".into(),
            })])
        })
        .collect();
    packets.push(alive("x", 1));
    let f = from();
    node.handle_packets(Instant::ZERO, packets.iter().map(|p| (f, p.as_slice())));
    assert_eq!(node.member("x").unwrap().state, MemberState::Dead);

    // Newest first among alive messages: incarnation 3 is handled before
    // incarnation 2, which is then stale.
    let packets = [alive("y", 2), alive("y", 3)];
    node.handle_packets(Instant::ZERO, packets.iter().map(|p| (f, p.as_slice())));
    assert_eq!(node.member("y").unwrap().incarnation, 3);
    // Pings are answered whatever the queue holds.
    let ping = encode(&[Message::Ping(wire::Ping {
        seq_no: 5,
        node: SELF.into(),
        source_addr: vec![127, 0, 0, 2],
        source_port: 7000,
        source_node: "a".into(),
    })]);
    while node.poll_output().is_some() {}
    let mut packets: Vec<Vec<u8>> = (0..10)
        .map(|i| {
            encode(&[Message::Suspect(Suspect {
                incarnation: i,
                node: "z".into(),
                from: "a".into(),
            })])
        })
        .collect();
    packets.push(ping);
    node.handle_packets(Instant::ZERO, packets.iter().map(|p| (f, p.as_slice())));
    let acks = std::iter::from_fn(|| node.poll_output())
        .filter(|o| matches!(o, headcount_proto::Output::Packet { .. }))
        .count();
    assert!(acks >= 1);
}

#[test]
fn harness_bytes_reader_runs_dry_into_zeros() {
    let mut b = Bytes::new(&[1, 2]);
    assert_eq!(b.u16(), 0x0102);
    assert_eq!(b.u32(), 0);
    assert!(b.is_empty());
}
