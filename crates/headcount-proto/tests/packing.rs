//! How packets are filled and framed: gossip packed by its compressed
//! size, a CRC only where Go adds one, and the join's early push/pull that
//! pushes only our own entry.

mod common;

use std::time::Duration;

use common::{converged, Cluster, Tap, CONVERGE};
use headcount_proto::wire::{self, Limits, Message, PacketSummary, PushPull, StreamMessage};
use headcount_proto::Config;

/// Decodes a plaintext, unlabelled packet; fails the test on anything a
/// receiver would drop or count as bad.
fn decode(data: &[u8]) -> (PacketSummary, Vec<Message>) {
    let mut msgs = Vec::new();
    let summary = wire::decode_packet(data, b"", false, &Limits::default(), &mut msgs)
        .unwrap_or_else(|e| panic!("packet does not decode: {e:?}"));
    assert_eq!(
        summary.unknown + summary.malformed + summary.truncated,
        0,
        "{summary:?}"
    );
    (summary, msgs)
}

/// Bytes of the messages in a packet before compound framing and
/// compression.
fn message_bytes(msgs: &[Message]) -> usize {
    msgs.iter().map(wire::encoded_len).sum()
}

/// Runs a join storm of `n` nodes, recording every packet.
fn storm(n: usize, config: &Config, seed: u64) -> Tap {
    let mut c = Cluster::new(n, config.clone(), seed);
    c.tap = Some(Tap::default());
    c.join_all_to(0);
    c.run_until(CONVERGE, |c| converged(c, n))
        .expect("converged");
    c.tap.take().expect("tap")
}

#[test]
fn join_storm_gossip_is_packed_by_compressed_size() {
    let config = Config::lan();
    let tap = storm(100, &config, 5);
    let mut beyond_budget = 0;
    for (_, _, data) in &tap.packets {
        assert!(
            data.len() <= config.udp_buffer_size,
            "a packet of {} bytes",
            data.len()
        );
        let (_, msgs) = decode(data);
        if message_bytes(&msgs) > config.udp_buffer_size {
            beyond_budget += 1;
        }
    }
    // Filling by the uncompressed size, as Go does, no packet would hold
    // more than the budget of messages.
    assert!(
        beyond_budget > 10,
        "only {beyond_budget} of {} packets carry more than {} bytes of messages",
        tap.packets.len(),
        config.udp_buffer_size
    );
}

#[test]
fn without_compression_packets_hold_the_budget_and_no_more() {
    let mut config = Config::lan();
    config.enable_compression = false;
    let tap = storm(60, &config, 6);
    for (_, _, data) in &tap.packets {
        assert!(data.len() <= config.udp_buffer_size);
        let (_, msgs) = decode(data);
        assert!(message_bytes(&msgs) <= config.udp_buffer_size);
    }
}

#[test]
fn only_gossip_carries_a_crc() {
    let mut c = Cluster::new(4, Config::lan(), 7);
    c.tap = Some(Tap::default());
    c.join_all_to(0);
    c.run_for(Duration::from_secs(20));
    let tap = c.tap.take().expect("tap");
    let (mut with_crc, mut probes) = (0, 0);
    for (_, _, data) in &tap.packets {
        let (summary, msgs) = decode(data);
        let probe_traffic = msgs.iter().any(|m| {
            matches!(
                m,
                Message::Ping(_) | Message::Ack(_) | Message::IndirectPing(_) | Message::Nack(_)
            )
        });
        if summary.had_crc {
            // Go's rule: only gossip, sent to a member whose protocol
            // version (≥ 5) it knows, gets a CRC.
            assert!(!probe_traffic, "a probe packet with a CRC: {msgs:?}");
            with_crc += 1;
        }
        if probe_traffic {
            probes += 1;
        }
    }
    assert!(with_crc > 0, "no gossip packet had a CRC");
    assert!(probes > 0, "no probe traffic");
}

/// The push/pulls node `i` dialled, decoded.
fn push_pulls_by(tap: &Tap, i: usize) -> Vec<PushPull> {
    tap.dials
        .iter()
        .filter(|(from, _)| *from == i)
        .filter_map(
            |(_, data)| match wire::decode_stream(data, b"", false, &Limits::default()) {
                Ok(wire::StreamDecode::Complete {
                    msg: StreamMessage::PushPull(pp),
                    ..
                }) => Some(pp),
                _ => None,
            },
        )
        .collect()
}

#[test]
fn the_early_push_pull_after_a_join_pushes_only_our_own_entry() {
    const N: usize = 6;
    let mut c = Cluster::new(N, Config::lan(), 3);
    c.tap = Some(Tap::default());
    c.join_all_to(0);
    // The early push/pull comes one to two probe intervals after the join.
    c.run_for(Duration::from_secs(5));
    assert!(converged(&c, N));
    let tap = c.tap.replace(Tap::default()).expect("tap");
    for i in 1..N {
        let pps = push_pulls_by(&tap, i);
        assert!(pps.len() >= 2, "node {i} dialled {} push/pulls", pps.len());
        assert!(pps[0].join, "node {i}: the first is the join");
        let early = &pps[1];
        assert!(!early.join);
        let names: Vec<&str> = early.states.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, [format!("node-{i}")], "node {i}");
    }
    // Later periodic push/pulls push the whole table, as Go's do.
    c.run_for(Duration::from_secs(120));
    let tap = c.tap.take().expect("tap");
    let full = (0..N)
        .flat_map(|i| push_pulls_by(&tap, i))
        .filter(|pp| !pp.join && pp.states.len() == N)
        .count();
    assert!(full > 0, "no periodic push/pull carried every member");
}
