//! A virtual network and clock for whole clusters of proto nodes: every
//! packet and stream goes through the real encoder (encryption included)
//! and decoder, and streams are read with `Node::stream_decoder` as a
//! driver would.

#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use headcount_proto::wire::{self, StreamDecode};
use headcount_proto::{
    Completion, Config, Event, Instant, Keyring, LocalNode, MemberState, Node, NonceSource, Output,
    StreamFailure, StreamId, StreamMessage,
};

const LATENCY: Duration = Duration::from_millis(1);
/// Nodes that join the same seed at once learn of each other by gossip,
/// and whoever gossip misses learns at the next push/pull (15 s under the
/// local profile), as in Go.
pub const CONVERGE: Duration = Duration::from_secs(40);

/// Something in flight.
pub enum Delivery {
    Packet {
        from: SocketAddr,
        to: usize,
        data: Vec<u8>,
    },
    StreamResult {
        to: usize,
        id: StreamId,
        result: Result<Option<StreamMessage>, StreamFailure>,
    },
}

/// Nodes on a virtual network with a virtual clock.
pub struct Cluster {
    pub nodes: Vec<Option<Node>>,
    pub addrs: Vec<SocketAddr>,
    pub by_addr: HashMap<SocketAddr, usize>,
    pub now: Instant,
    pub seq: u64,
    pub queue: BinaryHeap<Reverse<(Instant, u64)>>,
    pub pending: HashMap<u64, Delivery>,
    pub events: Vec<(usize, Instant, Event)>,
    /// Joins, pings, sends and broadcasts that finished, as a driver would
    /// route them to their waiters.
    pub completions: Vec<(usize, Instant, Completion)>,
    /// Packets sent that none of `tap_keys` decrypts (counted only when
    /// `tap_keys` is set).
    pub plaintext_packets: u64,
    /// Keys a test expects every packet to be encrypted with.
    pub tap_keys: Option<Keyring>,
    /// Packets sent.
    pub packets: u64,
    /// Streams (dialed or replies) whose message is not `[10]` encrypted.
    pub plaintext_streams: u64,
    /// Streams (dialed or replies).
    pub streams: u64,
    /// Network side of each node: packets and streams cross only between
    /// nodes on the same side (all on side 0 unless a test partitions).
    pub side: Vec<u8>,
    /// When set, every packet sent (sender, destination, bytes) and every
    /// stream dialled (dialler, bytes) is recorded here.
    pub tap: Option<Tap>,
    /// When set, asked for every packet (sender, receiver, bytes) before it
    /// is delivered: `false` loses it.
    pub deliver: Option<PacketFilter>,
}

/// Decides whether a packet (sender, receiver, bytes) arrives.
pub type PacketFilter = Box<dyn FnMut(usize, usize, &[u8]) -> bool>;

/// What [`Cluster::tap`] recorded.
#[derive(Default)]
pub struct Tap {
    pub packets: Vec<(usize, SocketAddr, Vec<u8>)>,
    pub dials: Vec<(usize, Vec<u8>)>,
}

impl Cluster {
    pub fn new(n: usize, config: Config, seed: u64) -> Self {
        Self::with_tap_keys(n, config, seed, None)
    }

    /// A cluster that counts, in `plaintext_packets`, the packets none of
    /// `tap_keys` decrypts.
    pub fn with_tap_keys(n: usize, config: Config, seed: u64, tap_keys: Option<Keyring>) -> Self {
        let mut c = Cluster {
            nodes: Vec::new(),
            addrs: Vec::new(),
            by_addr: HashMap::new(),
            now: Instant::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            pending: HashMap::new(),
            events: Vec::new(),
            completions: Vec::new(),
            plaintext_packets: 0,
            tap_keys,
            packets: 0,
            plaintext_streams: 0,
            streams: 0,
            side: Vec::new(),
            tap: None,
            deliver: None,
        };
        for i in 0..n {
            c.add_node(
                &format!("node-{i}"),
                7000 + i as u16,
                config.clone(),
                seed + i as u64,
            );
        }
        c
    }

    pub fn add_node(&mut self, name: &str, port: u16, config: Config, seed: u64) -> usize {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let local = LocalNode::new(name, addr);
        let nonces = NonceSource::insecure_seeded_for_simulation(seed);
        let node = Node::builder(config, local)
            .seed(seed)
            .nonce_source(nonces)
            .build(self.now)
            .unwrap();
        let i = self.nodes.len();
        self.nodes.push(Some(node));
        self.addrs.push(addr);
        self.by_addr.insert(addr, i);
        self.side.push(0);
        self.drain(i);
        i
    }

    pub fn kill(&mut self, i: usize) {
        self.nodes[i] = None;
        self.by_addr.retain(|_, v| *v != i);
    }

    pub fn node(&mut self, i: usize) -> &mut Node {
        self.nodes[i].as_mut().expect("node is running")
    }

    pub fn schedule(&mut self, at: Instant, d: Delivery) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq)));
        self.pending.insert(self.seq, d);
    }

    pub fn drain(&mut self, i: usize) {
        loop {
            let Some(node) = self.nodes[i].as_mut() else {
                return;
            };
            let Some(out) = node.poll_output() else {
                return;
            };
            match out {
                Output::Packet { to, data } => {
                    self.packets += 1;
                    if let Some(tap) = &mut self.tap {
                        tap.packets.push((i, to, data.clone()));
                    }
                    let label = node.config().label.clone();
                    let (rest, label) =
                        wire::packet::strip_packet_label(&data, &label, false).unwrap();
                    if let Some(keys) = &self.tap_keys {
                        if keys.decrypt(rest, label).is_err() {
                            self.plaintext_packets += 1;
                        }
                    }
                    if let Some(&j) = self.by_addr.get(&to) {
                        if self.side[i] != self.side[j] {
                            continue;
                        }
                        if let Some(deliver) = &mut self.deliver {
                            if !deliver(i, j, &data) {
                                continue;
                            }
                        }
                        let from = self.addrs[i];
                        self.schedule(self.now + LATENCY, Delivery::Packet { from, to: j, data });
                    }
                }
                Output::Dial(d) => {
                    if let Some(tap) = &mut self.tap {
                        tap.dials.push((i, d.data.clone()));
                    }
                    let result = self.serve_stream(i, d.to, &d.data, d.expect_reply);
                    self.schedule(
                        self.now + LATENCY * 2,
                        Delivery::StreamResult {
                            to: i,
                            id: d.id,
                            result,
                        },
                    );
                }
                Output::Event(e) => self.events.push((i, self.now, e)),
                Output::Completion(c) => self.completions.push((i, self.now, c)),
            }
        }
    }

    /// Serves a dialled stream at once: the remote node handles the
    /// message and its reply is decoded as the dialler would.
    pub fn serve_stream(
        &mut self,
        from: usize,
        to: SocketAddr,
        data: &[u8],
        expect_reply: bool,
    ) -> Result<Option<StreamMessage>, StreamFailure> {
        let Some(&j) = self.by_addr.get(&to) else {
            return Err(StreamFailure::Io(std::io::ErrorKind::ConnectionRefused));
        };
        if self.side[from] != self.side[j] {
            return Err(StreamFailure::Timeout);
        }
        self.count_stream(data);
        // Like a real responder, close the connection on a bad stream.
        let msg = match self.node(j).stream_decoder(false).decode(data) {
            Ok(StreamDecode::Complete { msg, .. }) => msg,
            Ok(StreamDecode::NeedMore { .. }) => panic!("dialed stream incomplete"),
            Err(_) => {
                let node = self.node(from);
                let secured = node.keyring().is_some() || !node.config().label.is_empty();
                return Err(StreamFailure::Unanswered { secured });
            }
        };
        let now = self.now;
        let from_addr = self.addrs[from];
        let reply = self.node(j).handle_stream(now, from_addr, msg);
        self.drain(j);
        if !expect_reply {
            return Ok(None);
        }
        let reply = reply.ok_or(StreamFailure::Unanswered { secured: false })?;
        self.count_stream(&reply);
        match self.node(from).stream_decoder(true).decode(&reply) {
            Ok(StreamDecode::Complete { msg, .. }) => Ok(Some(msg)),
            Ok(StreamDecode::NeedMore { .. }) => panic!("reply incomplete"),
            Err(e) => Err(StreamFailure::Decode(e)),
        }
    }

    pub fn count_stream(&mut self, data: &[u8]) {
        self.streams += 1;
        let start = if data[0] == 244 {
            2 + data[1] as usize
        } else {
            0
        };
        if data[start] != 10 {
            self.plaintext_streams += 1;
        }
    }

    pub fn next_time(&self) -> Option<Instant> {
        let q = self.queue.peek().map(|Reverse((t, _))| *t);
        let timers = self
            .nodes
            .iter()
            .flatten()
            .filter_map(|n| n.poll_timeout())
            .min();
        match (q, timers) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.next_time() {
            if t > end {
                break;
            }
            // A deadline already past (a parked gossip tick resumes at its
            // old grid point and fires at once) must not turn the clock
            // back.
            self.now = t.max(self.now);
            while let Some(&Reverse((at, seq))) = self.queue.peek() {
                if at > self.now {
                    break;
                }
                self.queue.pop();
                match self.pending.remove(&seq).unwrap() {
                    Delivery::Packet { from, to, data } => {
                        if let Some(n) = self.nodes[to].as_mut() {
                            n.handle_packet(at, from, &data);
                            self.drain(to);
                        }
                    }
                    Delivery::StreamResult { to, id, result } => {
                        if let Some(n) = self.nodes[to].as_mut() {
                            n.handle_stream_result(at, id, result);
                            self.drain(to);
                        }
                    }
                }
            }
            for i in 0..self.nodes.len() {
                if let Some(n) = self.nodes[i].as_mut() {
                    if n.poll_timeout().is_some_and(|t| t <= self.now) {
                        n.handle_timeout(self.now);
                        self.drain(i);
                    }
                }
            }
        }
        self.now = end;
    }

    pub fn join_all_to(&mut self, target: usize) {
        let addr = self.addrs[target];
        let now = self.now;
        for i in 0..self.nodes.len() {
            if i != target && self.nodes[i].is_some() {
                self.node(i).join(now, &[addr]);
                self.drain(i);
            }
        }
    }

    pub fn state_seen_by(&self, observer: usize, name: &str) -> Option<MemberState> {
        self.nodes[observer].as_ref()?.member(name).map(|m| m.state)
    }

    pub fn all_see(&self, name: &str, state: MemberState) -> bool {
        self.nodes
            .iter()
            .flatten()
            .filter(|n| n.name() != name)
            .all(|n| n.member(name).map(|m| m.state) == Some(state))
    }

    /// Runs until `cond` holds, in small steps; returns the time it took.
    pub fn run_until(
        &mut self,
        limit: Duration,
        cond: impl Fn(&Cluster) -> bool,
    ) -> Option<Duration> {
        let start = self.now;
        while self.now - start < limit {
            if cond(self) {
                return Some(self.now - start);
            }
            self.run_for(Duration::from_millis(10));
        }
        cond(self).then(|| self.now - start)
    }
}

pub fn converged(c: &Cluster, n: usize) -> bool {
    c.nodes.iter().flatten().all(|node| {
        node.members()
            .filter(|m| m.state == MemberState::Alive)
            .count()
            == n
    })
}
