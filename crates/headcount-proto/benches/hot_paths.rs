//! Micro-benchmarks of the hot paths: encoding and decoding each message
//! kind, compound packing, LZW, CRC, AES-GCM, the broadcast queue, one
//! probe round of the state machine and a suspect/refute cycle. The last
//! two also run with a Prometheus recorder installed (`*_recorded`, with
//! `--features metrics`): without the feature, or without a recorder,
//! recording must cost nothing measurable (bench/notes.md). Run with `cargo bench -p
//! headcount-proto`; divan prints time and allocations (count and bytes)
//! per operation, counted by its allocator wrapper around `System`.

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use divan::{AllocProfiler, Bencher};
use headcount_proto::broadcast::Broadcast;
use headcount_proto::wire::{
    self, decode_message, encode_message, lzw, AckResp, Alive, Dead, EncryptionVersion,
    IndirectPingReq, Limits, Message, NackResp, Ping, PushNodeState, PushPull, StreamMessage,
    Suspect, WireState,
};
use headcount_proto::TransmitLimitedQueue;
use headcount_proto::{Config, Instant, Keyring, LocalNode, Node, Output};

// Counts every allocation of the benchmark binary (divan's safe wrapper
// around the system allocator: no `unsafe` here).
#[global_allocator]
static ALLOC: AllocProfiler = AllocProfiler::system();

fn main() {
    divan::main();
}

const VSN: [u8; 6] = [1, 5, 2, 0, 0, 0];

fn alive(i: usize) -> Alive {
    Alive {
        incarnation: 7,
        node: format!("node-{i}.example.internal"),
        addr: vec![10, 0, (i >> 8) as u8, i as u8],
        port: 7946,
        meta: b"role=web,dc=eu-west".to_vec(),
        vsn: VSN,
    }
}

fn messages() -> Vec<(&'static str, Message)> {
    vec![
        (
            "ping",
            Message::Ping(Ping {
                seq_no: 42,
                node: "node-1.example.internal".into(),
                source_addr: vec![10, 0, 0, 2],
                source_port: 7946,
                source_node: "node-2.example.internal".into(),
            }),
        ),
        (
            "indirect_ping",
            Message::IndirectPing(IndirectPingReq {
                seq_no: 42,
                target: vec![10, 0, 0, 1],
                port: 7946,
                node: "node-1.example.internal".into(),
                nack: true,
                source_addr: vec![10, 0, 0, 2],
                source_port: 7946,
                source_node: "node-2.example.internal".into(),
            }),
        ),
        (
            "ack",
            Message::Ack(AckResp {
                seq_no: 42,
                payload: Vec::new(),
            }),
        ),
        ("nack", Message::Nack(NackResp { seq_no: 42 })),
        (
            "suspect",
            Message::Suspect(Suspect {
                incarnation: 7,
                node: "node-1.example.internal".into(),
                from: "node-2.example.internal".into(),
            }),
        ),
        ("alive", Message::Alive(alive(1))),
        (
            "dead",
            Message::Dead(Dead {
                incarnation: 7,
                node: "node-1.example.internal".into(),
                from: "node-2.example.internal".into(),
            }),
        ),
        ("user", Message::User(vec![0x55; 64])),
    ]
}

const KINDS: &[&str] = &[
    "ping",
    "indirect_ping",
    "ack",
    "nack",
    "suspect",
    "alive",
    "dead",
    "user",
];

fn message(kind: &str) -> Message {
    messages()
        .into_iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, m)| m)
        .expect("known kind")
}

/// Encoding one message of each kind.
#[divan::bench(args = KINDS)]
fn encode(bencher: Bencher, kind: &str) {
    let msg = message(kind);
    bencher.bench_local(|| {
        let mut out = Vec::new();
        encode_message(black_box(&msg), &mut out);
        out
    });
}

/// Decoding one message of each kind.
#[divan::bench(args = KINDS)]
fn decode(bencher: Bencher, kind: &str) {
    let mut bytes = Vec::new();
    encode_message(&message(kind), &mut bytes);
    bencher.bench_local(|| decode_message(black_box(&bytes)));
}

fn push_pull(n: usize) -> StreamMessage {
    StreamMessage::PushPull(PushPull {
        join: false,
        states: (0..n)
            .map(|i| {
                let a = alive(i);
                PushNodeState {
                    name: a.node,
                    addr: a.addr,
                    port: a.port,
                    meta: a.meta,
                    incarnation: a.incarnation,
                    state: WireState::Alive,
                    vsn: a.vsn,
                }
            })
            .collect(),
        user_state: Vec::new(),
    })
}

/// Encoding a push/pull of N members as a compressed stream.
#[divan::bench(args = [16, 256])]
fn push_pull_encode(bencher: Bencher, n: usize) {
    let msg = push_pull(n);
    bencher.bench_local(|| {
        let mut out = Vec::new();
        let _ = wire::encode_stream(black_box(&msg), &[], true, &mut out);
        out
    });
}

/// Decoding that stream.
#[divan::bench(args = [16, 256])]
fn push_pull_decode(bencher: Bencher, n: usize) {
    let mut bytes = Vec::new();
    wire::encode_stream(&push_pull(n), &[], true, &mut bytes).expect("encodes");
    let limits = Limits::default();
    bencher.bench_local(|| wire::decode_stream(black_box(&bytes), &[], false, &limits));
}

fn gossip_parts(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut out = Vec::new();
            encode_message(&Message::Alive(alive(i)), &mut out);
            out
        })
        .collect()
}

/// Packing N alive messages into compound messages.
#[divan::bench(args = [4, 16])]
fn compound_pack(bencher: Bencher, n: usize) {
    let parts = gossip_parts(n);
    bencher.bench_local(|| wire::encode_compound(black_box(&parts)));
}

/// A full packet, as a node receives it: CRC, decompression, compound
/// unpacking and decoding of 16 alive messages.
#[divan::bench]
fn packet_decode_compound(bencher: Bencher) {
    let parts = gossip_parts(16);
    let compound = wire::encode_compound(&parts).expect("fits").remove(0);
    let mut packet = Vec::new();
    wire::packet::frame_packet_body(&compound, true, true, &mut packet);
    let limits = Limits::default();
    bencher.bench_local(|| {
        let mut out = Vec::new();
        let _ = wire::decode_packet(black_box(&packet), &[], false, &limits, &mut out);
        out
    });
}

fn gossip_payload() -> Vec<u8> {
    wire::encode_compound(&gossip_parts(16))
        .expect("fits")
        .remove(0)
}

/// LZW compression of a 16-message gossip packet (every packet sent is
/// compressed to see whether that helps).
#[divan::bench]
fn lzw_compress(bencher: Bencher) {
    let data = gossip_payload();
    bencher.bench_local(|| lzw::compress(black_box(&data)));
}

/// LZW decompression of that packet.
#[divan::bench]
fn lzw_decompress(bencher: Bencher) {
    let data = lzw::compress(&gossip_payload());
    bencher.bench_local(|| lzw::decompress(black_box(&data), 1 << 20));
}

/// CRC-32 of a 1400-byte packet.
#[divan::bench]
fn crc32(bencher: Bencher) {
    let data = vec![0xa5u8; 1400];
    bencher.bench_local(|| crc32fast::hash(black_box(&data)));
}

/// AES-GCM (AES-256, version 1) sealing of a 1400-byte packet.
#[divan::bench]
fn aes_gcm_encrypt(bencher: Bencher) {
    let ring = Keyring::new(&[7u8; 32]).expect("valid key");
    let data = vec![0xa5u8; 1400];
    let nonce = [1u8; 12];
    bencher.bench_local(|| {
        let mut out = Vec::new();
        ring.encrypt(
            EncryptionVersion::V1,
            &nonce,
            black_box(&data),
            &[],
            &mut out,
        );
        out
    });
}

/// AES-GCM opening of that packet.
#[divan::bench]
fn aes_gcm_decrypt(bencher: Bencher) {
    let ring = Keyring::new(&[7u8; 32]).expect("valid key");
    let mut sealed = Vec::new();
    ring.encrypt(
        EncryptionVersion::V1,
        &[1u8; 12],
        &[0xa5u8; 1400],
        &[],
        &mut sealed,
    );
    bencher.bench_local(|| ring.decrypt(black_box(&sealed), &[]));
}

/// Queueing N keyed broadcasts (each invalidates an older one of the same
/// node half the time) and draining them in 1400-byte packets.
#[divan::bench(args = [64, 1024])]
fn broadcast_queue(bencher: Bencher, n: usize) {
    let parts: Vec<(String, Arc<[u8]>)> = gossip_parts(n)
        .into_iter()
        .enumerate()
        .map(|(i, p)| (format!("node-{}", i / 2), Arc::from(p)))
        .collect();
    bencher.bench_local(|| {
        let mut q = TransmitLimitedQueue::new();
        for (k, p) in &parts {
            q.queue(Broadcast::keyed(k.clone(), p.clone()));
        }
        let mut sent = 0;
        loop {
            let (msgs, _) = q.get_broadcasts(2, 1400, n, 4);
            if msgs.is_empty() {
                break;
            }
            sent += msgs.len();
        }
        sent
    });
}

/// A node that knows `n` members (itself included). With `recorded`, its
/// metrics go to a Prometheus recorder (the one the agent uses): the node
/// registers its handles when it is built, under that recorder.
fn node_with_members_recorded(n: usize, recorded: bool) -> (Node, Instant) {
    #[cfg(feature = "metrics")]
    if recorded {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Fold the samples into the summaries now and then, as the agent's
        // upkeep does, so that they do not pile up.
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(100));
            handle.run_upkeep();
        });
        return metrics::with_local_recorder(&recorder, || node_with_members(n));
    }
    assert!(!recorded, "the *_recorded benches need --features metrics");
    node_with_members(n)
}

/// A node that knows `n` members (itself included).
fn node_with_members(n: usize) -> (Node, Instant) {
    let now = Instant::ZERO;
    let local = LocalNode::new(
        "node-0.example.internal",
        SocketAddr::from((Ipv4Addr::new(10, 0, 0, 0), 7946)),
    );
    let mut node = Node::builder(Config::lan(), local)
        .seed(1)
        .build(now)
        .expect("valid");
    let from = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 7946));
    for i in 1..n {
        let mut pkt = Vec::new();
        encode_message(&Message::Alive(alive(i)), &mut pkt);
        node.handle_packet(now, from, &pkt);
    }
    while node.poll_output().is_some() {}
    (node, now)
}

/// One probe round of the state machine with 64 members: the probe tick
/// fires (with the gossip ticks of that second), the ping goes out, the
/// ack comes back, and every output is drained.
#[divan::bench]
fn probe_round(bencher: Bencher) {
    probe_round_with(bencher, false);
}

/// `probe_round` with a Prometheus recorder (`--features metrics`).
#[cfg(feature = "metrics")]
#[divan::bench]
fn probe_round_recorded(bencher: Bencher) {
    probe_round_with(bencher, true);
}

/// A member is suspected by a peer and refutes it: a packet with a
/// `suspect` and then one with its `alive` at a higher incarnation, each
/// applied and queued for gossip (`memberlist.msg.suspect`, `msg.alive`).
#[divan::bench]
fn suspect_refute(bencher: Bencher) {
    suspect_refute_with(bencher, false);
}

/// `suspect_refute` with a Prometheus recorder (`--features metrics`).
#[cfg(feature = "metrics")]
#[divan::bench]
fn suspect_refute_recorded(bencher: Bencher) {
    suspect_refute_with(bencher, true);
}

fn suspect_refute_with(bencher: Bencher, recorded: bool) {
    let (mut node, now) = node_with_members_recorded(64, recorded);
    let from = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 2), 7946));
    // alive(7) announced incarnation 7: suspect at 7, refute at 8, ...
    let mut incarnation = 7;
    bencher.bench_local(|| {
        let mut s = Vec::new();
        encode_message(
            &Message::Suspect(Suspect {
                incarnation,
                node: "node-7.example.internal".into(),
                from: "node-2.example.internal".into(),
            }),
            &mut s,
        );
        node.handle_packet(now, from, &s);
        incarnation += 1;
        let mut a = Vec::new();
        encode_message(
            &Message::Alive(Alive {
                incarnation,
                ..alive(7)
            }),
            &mut a,
        );
        node.handle_packet(now, from, &a);
        while node.poll_output().is_some() {}
    });
}

fn probe_round_with(bencher: Bencher, recorded: bool) {
    let (mut node, mut now) = node_with_members_recorded(64, recorded);
    let interval = node.config().probe_interval;
    let limits = Limits::default();
    bencher.bench_local(|| {
        now += interval;
        node.handle_timeout(now);
        let mut pings = Vec::new();
        while let Some(out) = node.poll_output() {
            if let Output::Packet { to, data } = out {
                let mut msgs = Vec::new();
                if wire::decode_packet(&data, &[], false, &limits, &mut msgs).is_ok() {
                    for m in msgs {
                        if let Message::Ping(p) = m {
                            pings.push((to, p.seq_no));
                        }
                    }
                }
            }
        }
        for (to, seq_no) in pings {
            let mut ack = Vec::new();
            encode_message(
                &Message::Ack(AckResp {
                    seq_no,
                    payload: Vec::new(),
                }),
                &mut ack,
            );
            node.handle_packet(now, to, &ack);
        }
        while node.poll_output().is_some() {}
        // Keep the ack deadline and the next tick in step with `now`.
        node.handle_timeout(now + Duration::from_micros(1));
        while node.poll_output().is_some() {}
    });
}
