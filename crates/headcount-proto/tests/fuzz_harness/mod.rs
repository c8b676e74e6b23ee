//! The bodies of the cargo-fuzz targets in `fuzz/`, shared with the
//! regression test `tests/fuzz_regressions.rs` so that every input a
//! fuzzer ever found runs again in the normal suite.
//!
//! Each function takes arbitrary bytes and panics only when an invariant
//! breaks.

#![allow(dead_code)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use headcount_proto::wire::{
    self, decode_message, encode_message, Alive, Dead, Decryption, Keyring, Limits, Message,
    PushNodeState, PushPull, StreamDecode, StreamDecoder, StreamDecryption, Suspect, WireState,
};
use headcount_proto::{
    Config, Instant, LocalNode, MemberState, Node, NonceSource, Output, StreamFailure, StreamId,
    StreamMessage,
};

/// The key every encrypted fuzz configuration uses.
pub const KEY: [u8; 16] = *b"fuzz-key-16bytes";
/// Name of the node under test.
pub const SELF: &str = "fuzz-self";

/// A little reader over the fuzzer's bytes; runs dry into zeros.
pub struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    /// Reads `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { data }
    }
    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    /// One byte (0 when dry).
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }
    /// Two bytes, big endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    /// Four bytes, big endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (a, b) = self.data.split_at(n);
        self.data = b;
        a
    }
    /// A length-prefixed (one byte) slice.
    pub fn short(&mut self) -> &'a [u8] {
        let n = self.u8() as usize;
        self.take(n)
    }
}

fn limits_for(flags: u8) -> Limits {
    if flags & 0x10 != 0 {
        Limits {
            max_push_nodes: 16,
            max_user_state_bytes: 256,
            max_user_msg_bytes: 256,
            max_decompressed_bytes: 4096,
            max_encrypted_bytes: 4096,
            max_stream_bytes: 8192,
        }
    } else {
        Limits::default()
    }
}

/// Packet decoding: never panics, the number of messages is bounded, and
/// every message decoded re-encodes to something that decodes to itself.
pub fn packet_decode(data: &[u8]) {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let label: &[u8] = if flags & 1 != 0 { b"fz" } else { b"" };
    let skip = flags & 2 != 0;
    let keyring = Keyring::new(&KEY).expect("valid key");
    let decryption = (flags & 4 != 0).then_some(Decryption {
        keyring: &keyring,
        verify_incoming: flags & 8 != 0,
    });
    let limits = limits_for(flags);
    let mut out = Vec::new();
    let _ = wire::decode_packet_with(data, label, skip, decryption, &limits, &mut out);
    assert!(
        out.len() <= data.len() + limits.max_decompressed_bytes,
        "{} messages from {} bytes",
        out.len(),
        data.len()
    );
    for msg in &out {
        let mut enc = Vec::new();
        encode_message(msg, &mut enc);
        let back = decode_message(&enc).expect("our own encoding decodes");
        assert_eq!(&back, msg, "re-encoding changed the message");
    }
}

/// Stream decoding: never panics; the incremental decoder fed growing
/// prefixes (as the shell does) agrees with one decode of everything; a
/// complete message round-trips; hints always ask for progress and stay
/// within the limits.
pub fn stream_decode(data: &[u8]) {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let Some((&step, data)) = data.split_first() else {
        return;
    };
    let label: &[u8] = if flags & 1 != 0 { b"fz" } else { b"" };
    let skip = flags & 2 != 0;
    let limits = limits_for(flags);
    let decryption = (flags & 4 != 0).then(|| StreamDecryption {
        keyring: Keyring::new(&KEY).expect("valid key"),
        verify_incoming: flags & 8 != 0,
        label: Vec::new(),
    });
    let whole = wire::decode_stream_with(data, label, skip, &limits, decryption.as_ref());

    let mut dec = StreamDecoder::new(label, skip, limits);
    if let Some(d) = decryption.clone() {
        dec = dec.with_decryption(d);
    }
    let step = step as usize + 1;
    let mut have = 0usize;
    let incremental = loop {
        let r = dec.decode(&data[..have]);
        match r {
            Ok(StreamDecode::NeedMore { at_least }) => {
                assert!(at_least > have, "hint {at_least} with {have} buffered");
                if at_least > data.len() {
                    break Ok(StreamDecode::NeedMore { at_least });
                }
                have = at_least.max(have + step).min(data.len());
            }
            other => break other,
        }
    };
    match (&whole, &incremental) {
        (Ok(StreamDecode::Complete { .. }), _) | (_, Ok(StreamDecode::Complete { .. })) => {
            assert_eq!(whole, incremental, "incremental and whole decoding differ");
        }
        (Ok(StreamDecode::NeedMore { .. }), Err(e)) => {
            panic!("a prefix was rejected ({e}) but the whole buffer is incomplete")
        }
        _ => {}
    }
    if let Ok(StreamDecode::Complete { msg, consumed }) = whole {
        assert!(consumed <= data.len());
        let mut enc = Vec::new();
        wire::encode_stream(&msg, label, false, &mut enc).expect("encodes");
        let back = wire::decode_stream(&enc, label, false, &Limits::default()).expect("decodes");
        match back {
            StreamDecode::Complete { msg: m2, consumed } => {
                assert_eq!(m2, msg, "re-encoding changed the message");
                assert_eq!(consumed, enc.len());
            }
            other => panic!("our own encoding is incomplete: {other:?}"),
        }
    }
}

/// Addresses the fuzzed inputs come from.
fn peer_addr(i: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1 + i % 4], 7000 + u16::from(i % 3)))
}

const NAMES: [&str; 6] = [SELF, "a", "b", "c", "d", ""];

fn pick_name(b: &mut Bytes<'_>) -> String {
    let i = b.u8();
    if i >= 250 {
        String::from_utf8_lossy(b.short()).into_owned()
    } else {
        NAMES[i as usize % NAMES.len()].to_string()
    }
}

fn pick_incarnation(b: &mut Bytes<'_>) -> u32 {
    match b.u8() % 4 {
        0 => u32::from(b.u8()),
        1 => u32::MAX - u32::from(b.u8()),
        _ => b.u32(),
    }
}

fn pick_addr_bytes(b: &mut Bytes<'_>) -> Vec<u8> {
    match b.u8() % 4 {
        0 => vec![127, 0, 0, 1 + b.u8() % 4],
        1 => b.short().to_vec(),
        2 => vec![0; 16],
        _ => vec![],
    }
}

fn pick_vsn(b: &mut Bytes<'_>) -> [u8; 6] {
    if b.u8().is_multiple_of(4) {
        [b.u8(), b.u8(), b.u8(), b.u8(), b.u8(), b.u8()]
    } else {
        [1, 5, 2, 0, 0, 0]
    }
}

/// A well-formed message with fuzzer-chosen fields.
pub fn pick_message(b: &mut Bytes<'_>) -> Message {
    match b.u8() % 8 {
        0 => Message::Alive(Alive {
            incarnation: pick_incarnation(b),
            node: pick_name(b),
            addr: pick_addr_bytes(b),
            port: 7000 + u16::from(b.u8() % 3),
            meta: b.short().to_vec(),
            vsn: pick_vsn(b),
        }),
        1 => Message::Suspect(Suspect {
            incarnation: pick_incarnation(b),
            node: pick_name(b).into(),
            from: pick_name(b).into(),
        }),
        2 => Message::Dead(Dead {
            incarnation: pick_incarnation(b),
            node: pick_name(b).into(),
            from: pick_name(b).into(),
        }),
        3 => Message::Ping(wire::Ping {
            seq_no: b.u32(),
            node: pick_name(b),
            source_addr: pick_addr_bytes(b),
            source_port: b.u16(),
            source_node: pick_name(b),
        }),
        4 => Message::IndirectPing(wire::IndirectPingReq {
            seq_no: b.u32(),
            target: pick_addr_bytes(b),
            port: b.u16(),
            node: pick_name(b),
            nack: b.u8() & 1 != 0,
            source_addr: pick_addr_bytes(b),
            source_port: b.u16(),
            source_node: pick_name(b),
        }),
        5 => Message::Ack(wire::AckResp {
            seq_no: u32::from(b.u8()),
            payload: b.short().to_vec(),
        }),
        6 => Message::Nack(wire::NackResp {
            seq_no: u32::from(b.u8()),
        }),
        _ => Message::User(b.short().to_vec()),
    }
}

/// A well-formed push/pull with fuzzer-chosen entries.
pub fn pick_push_pull(b: &mut Bytes<'_>) -> PushPull {
    let n = b.u8() % 8;
    let states = (0..n)
        .map(|_| PushNodeState {
            name: pick_name(b),
            addr: pick_addr_bytes(b),
            port: 7000 + u16::from(b.u8() % 3),
            meta: b.short().to_vec(),
            incarnation: pick_incarnation(b),
            state: match b.u8() % 5 {
                0 => WireState::Suspect,
                1 => WireState::Dead,
                2 => WireState::Left,
                _ => WireState::Alive,
            },
            vsn: pick_vsn(b),
        })
        .collect();
    PushPull {
        join: b.u8() & 1 != 0,
        states,
        user_state: b.short().to_vec(),
    }
}

/// The node under test and what the invariants need to remember.
pub struct Harness {
    /// The node.
    pub node: Node,
    /// The virtual clock.
    pub now: Instant,
    /// Dials the node asked for and that have not been answered.
    pub pending: Vec<StreamId>,
    /// Our incarnation after the last input.
    pub incarnation: u32,
    /// Names that appeared in well-formed inputs (raw inputs may add more).
    pub names: HashSet<String>,
    /// Outputs seen in total.
    pub outputs: usize,
}

impl Harness {
    /// A node named [`SELF`], encrypted (without verification, so plain
    /// input is read too) when `encrypted`.
    pub fn new(encrypted: bool, seed: u64) -> Self {
        let mut config = Config::local();
        let local = LocalNode::new(SELF, SocketAddr::from(([127, 0, 0, 100], 7946)))
            .with_meta(b"meta".to_vec());
        if encrypted {
            config.keyring = Some(Keyring::new(&KEY).expect("valid key"));
            config.gossip_verify_incoming = false;
        }
        let mut builder = Node::builder(config, local).seed(seed);
        if encrypted {
            builder = builder.nonce_source(NonceSource::insecure_seeded_for_simulation(seed));
        }
        let node = builder.build(Instant::ZERO).expect("valid config");
        let mut h = Harness {
            incarnation: node.local_member().incarnation,
            node,
            now: Instant::ZERO,
            pending: Vec::new(),
            names: HashSet::new(),
            outputs: 0,
        };
        h.names.insert(SELF.into());
        h.drain();
        h
    }

    /// Drains the outputs, remembering dials; panics if one input made too
    /// many or an oversized packet.
    pub fn drain(&mut self) {
        let mut n = 0;
        while let Some(out) = self.node.poll_output() {
            n += 1;
            assert!(n <= 10_000, "unbounded outputs for one input");
            match out {
                Output::Packet { data, .. } => {
                    assert!(data.len() <= 65_507, "a {}-byte datagram", data.len());
                }
                Output::Dial(d) => self.pending.push(d.id),
                Output::Event(_) | Output::Completion(_) => {}
            }
        }
        self.outputs += n;
    }

    /// Checks the invariants that must hold after every input.
    pub fn check(&mut self) {
        let me = self.node.local_member();
        assert!(
            me.incarnation >= self.incarnation,
            "our incarnation went from {} to {}",
            self.incarnation,
            me.incarnation
        );
        self.incarnation = me.incarnation;
        if !self.node.has_left() {
            assert!(
                !matches!(me.state, MemberState::Dead | MemberState::Left),
                "a running node believes itself {:?}",
                me.state
            );
        }
        assert!(self.node.poll_timeout().is_some(), "no timer armed");
    }

    /// A datagram.
    pub fn packet(&mut self, from: SocketAddr, data: &[u8]) {
        self.node.handle_packet(self.now, from, data);
        self.drain();
        self.check();
    }

    /// An inbound stream message.
    pub fn stream(&mut self, from: SocketAddr, msg: StreamMessage) {
        let _reply = self.node.handle_stream(self.now, from, msg);
        self.drain();
        self.check();
    }

    /// Moves the clock on and fires the timers.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.node.handle_timeout(self.now);
        self.drain();
        self.check();
    }

    /// Answers the `i`th pending dial.
    pub fn answer(&mut self, i: usize, result: Result<Option<StreamMessage>, StreamFailure>) {
        if self.pending.is_empty() {
            return;
        }
        let id = self.pending.remove(i % self.pending.len());
        self.node.handle_stream_result(self.now, id, result);
        self.drain();
        self.check();
    }
}

/// A whole node fed a script of packets, stream messages, timer advances
/// and dial results taken from `data`.
pub fn node_inputs(data: &[u8]) {
    let mut b = Bytes::new(data);
    let flags = b.u8();
    let mut h = Harness::new(flags & 1 != 0, u64::from(flags));
    let keyring = Keyring::new(&KEY).expect("valid key");
    let mut steps = 0;
    while !b.is_empty() && steps < 512 {
        steps += 1;
        let op = b.u8();
        let from = peer_addr(b.u8());
        match op % 10 {
            0 => {
                let n = b.u16() as usize % 2048;
                let raw = b.take(n);
                h.packet(from, raw);
            }
            1 | 2 => {
                let count = 1 + b.u8() % 4;
                let msgs: Vec<Message> = (0..count).map(|_| pick_message(&mut b)).collect();
                let parts: Vec<Vec<u8>> = msgs
                    .iter()
                    .map(|m| {
                        let mut v = Vec::new();
                        encode_message(m, &mut v);
                        v
                    })
                    .collect();
                let body = if parts.len() == 1 {
                    parts[0].clone()
                } else {
                    wire::encode_compound(&parts).expect("few parts").remove(0)
                };
                let mode = b.u8();
                let mut pkt = Vec::new();
                let encryption = if mode & 4 != 0 {
                    Some(wire::Encryption {
                        keyring: &keyring,
                        version: wire::EncryptionVersion::for_protocol(5),
                        nonce: [b.u8(); 12],
                    })
                } else {
                    None
                };
                let opts = wire::PacketOptions {
                    compress: mode & 1 != 0,
                    crc: mode & 2 != 0,
                    label: b"",
                    encryption,
                };
                if wire::frame_packet(&body, &opts, &mut pkt).is_ok() {
                    // Mutate a little now and then.
                    if mode & 0x80 != 0 && !pkt.is_empty() {
                        let at = b.u16() as usize % pkt.len();
                        pkt[at] ^= b.u8() | 1;
                    }
                    if mode & 0x40 != 0 {
                        let keep = b.u16() as usize % (pkt.len() + 1);
                        pkt.truncate(keep);
                    }
                    h.packet(from, &pkt);
                }
            }
            3 => {
                let n = b.u16() as usize % 4096;
                let raw = b.take(n);
                if let Ok(StreamDecode::Complete { msg, .. }) =
                    wire::decode_stream(raw, b"", false, &Limits::default())
                {
                    h.stream(from, msg);
                }
            }
            4 => {
                let pp = pick_push_pull(&mut b);
                h.stream(from, StreamMessage::PushPull(pp));
            }
            5 => {
                let msg = match b.u8() % 3 {
                    0 => StreamMessage::Ping(wire::Ping {
                        seq_no: b.u32(),
                        node: pick_name(&mut b),
                        ..Default::default()
                    }),
                    1 => StreamMessage::User(b.short().to_vec()),
                    _ => StreamMessage::Ack(wire::AckResp::default()),
                };
                h.stream(from, msg);
            }
            6 | 7 => {
                let ms = match b.u8() % 4 {
                    0 => u64::from(b.u8()),
                    1 => u64::from(b.u16()),
                    2 => 1000 * u64::from(b.u8()),
                    _ => 60_000 * u64::from(b.u8() % 32),
                };
                h.advance(Duration::from_millis(ms));
            }
            8 => {
                let i = b.u8() as usize;
                let result = match b.u8() % 5 {
                    0 => Ok(None),
                    1 => Err(StreamFailure::Timeout),
                    2 => Ok(Some(StreamMessage::Ack(wire::AckResp {
                        seq_no: u32::from(b.u8()),
                        payload: Vec::new(),
                    }))),
                    3 => Ok(Some(StreamMessage::Err(wire::ErrResp {
                        error: "no".into(),
                    }))),
                    _ => Ok(Some(StreamMessage::PushPull(pick_push_pull(&mut b)))),
                };
                h.answer(i, result);
            }
            _ => match b.u8() % 4 {
                0 => {
                    let _ = h.node.join(h.now, &[from]);
                    h.drain();
                    h.check();
                }
                1 => {
                    let _ = h.node.ping(h.now, &pick_name(&mut b), from);
                    h.drain();
                    h.check();
                }
                2 => {
                    let meta = b.short().to_vec();
                    let _ = h.node.update_meta(h.now, meta);
                    h.drain();
                    h.check();
                }
                _ => {
                    if b.u8() == 0xff {
                        let _ = h.node.leave(h.now);
                        h.drain();
                        h.check();
                    }
                }
            },
        }
    }
}
