//! Encrypted clusters on the virtual network of `virtual_cluster.rs` (its
//! harness, copied): every packet and stream goes through the real
//! encoder, encryption included, and streams are read with
//! `Node::stream_decoder` as a driver would.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use headcount_proto::wire::{self, StreamDecode};
use headcount_proto::{
    Config, Event, Instant, Keyring, KeyringError, LocalNode, MemberState, NoHooks, Node,
    NonceSource, Output, StreamFailure, StreamId, StreamMessage,
};

const LATENCY: Duration = Duration::from_millis(1);
/// Nodes that join the same seed at once learn of each other by gossip,
/// and whoever gossip misses learns at the next push/pull (15 s under the
/// local profile), as in Go.
const CONVERGE: Duration = Duration::from_secs(40);

enum Delivery {
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

struct Cluster {
    nodes: Vec<Option<Node>>,
    addrs: Vec<SocketAddr>,
    by_addr: HashMap<SocketAddr, usize>,
    now: Instant,
    seq: u64,
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    pending: HashMap<u64, Delivery>,
    events: Vec<(usize, Instant, Event)>,
    /// Packets sent that none of the test keys decrypts.
    plaintext_packets: u64,
    /// Packets sent.
    packets: u64,
    /// Streams (dialed or replies) whose message is not `[10]` encrypted.
    plaintext_streams: u64,
    /// Streams (dialed or replies).
    streams: u64,
}

impl Cluster {
    fn new(n: usize, config: Config, seed: u64) -> Self {
        let mut c = Cluster {
            nodes: Vec::new(),
            addrs: Vec::new(),
            by_addr: HashMap::new(),
            now: Instant::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            pending: HashMap::new(),
            events: Vec::new(),
            plaintext_packets: 0,
            packets: 0,
            plaintext_streams: 0,
            streams: 0,
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

    fn add_node(&mut self, name: &str, port: u16, config: Config, seed: u64) -> usize {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let local = LocalNode {
            name: name.into(),
            addr,
            meta: Vec::new(),
        };
        let nonces = NonceSource::insecure_seeded_for_simulation(seed);
        let node =
            Node::with_nonce_source(config, local, Box::new(NoHooks), self.now, seed, nonces)
                .unwrap();
        let i = self.nodes.len();
        self.nodes.push(Some(node));
        self.addrs.push(addr);
        self.by_addr.insert(addr, i);
        self.drain(i);
        i
    }

    fn kill(&mut self, i: usize) {
        self.nodes[i] = None;
        self.by_addr.retain(|_, v| *v != i);
    }

    fn node(&mut self, i: usize) -> &mut Node {
        self.nodes[i].as_mut().expect("node is running")
    }

    fn schedule(&mut self, at: Instant, d: Delivery) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq)));
        self.pending.insert(self.seq, d);
    }

    fn drain(&mut self, i: usize) {
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
                    let label = node.config().label.clone();
                    let (rest, label) =
                        wire::packet::strip_packet_label(&data, &label, false).unwrap();
                    let all_keys = Keyring::with_keys(&K1, [&K2[..]]).unwrap();
                    if all_keys.decrypt(rest, label).is_err() {
                        self.plaintext_packets += 1;
                    }
                    if let Some(&j) = self.by_addr.get(&to) {
                        let from = self.addrs[i];
                        self.schedule(self.now + LATENCY, Delivery::Packet { from, to: j, data });
                    }
                }
                Output::Dial(d) => {
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
            }
        }
    }

    /// Serves a dialled stream at once: the remote node handles the
    /// message and its reply is decoded as the dialler would.
    fn serve_stream(
        &mut self,
        from: usize,
        to: SocketAddr,
        data: &[u8],
        expect_reply: bool,
    ) -> Result<Option<StreamMessage>, StreamFailure> {
        let Some(&j) = self.by_addr.get(&to) else {
            return Err(StreamFailure::Io("connection refused".into()));
        };
        self.count_stream(data);
        // Like a real responder, close the connection on a bad stream.
        let msg = match self.node(j).stream_decoder(false).decode(data) {
            Ok(StreamDecode::Complete { msg, .. }) => msg,
            Ok(StreamDecode::NeedMore { .. }) => panic!("dialed stream incomplete"),
            Err(e) => return Err(StreamFailure::Io(format!("closed by peer ({e})"))),
        };
        let now = self.now;
        let from_addr = self.addrs[from];
        let reply = self.node(j).handle_stream(now, from_addr, msg);
        self.drain(j);
        if !expect_reply {
            return Ok(None);
        }
        let reply = reply.ok_or_else(|| StreamFailure::Io("closed without reply".into()))?;
        self.count_stream(&reply);
        match self.node(from).stream_decoder(true).decode(&reply) {
            Ok(StreamDecode::Complete { msg, .. }) => Ok(Some(msg)),
            Ok(StreamDecode::NeedMore { .. }) => panic!("reply incomplete"),
            Err(e) => Err(StreamFailure::Decode(e.to_string())),
        }
    }

    fn count_stream(&mut self, data: &[u8]) {
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

    fn next_time(&self) -> Option<Instant> {
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

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.next_time() {
            if t > end {
                break;
            }
            self.now = t;
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

    fn join_all_to(&mut self, target: usize) {
        let addr = self.addrs[target];
        let now = self.now;
        for i in 0..self.nodes.len() {
            if i != target && self.nodes[i].is_some() {
                self.node(i).join(now, &[addr]);
                self.drain(i);
            }
        }
    }

    /// Runs until `cond` holds, in small steps; returns the time it took.
    fn run_until(&mut self, limit: Duration, cond: impl Fn(&Cluster) -> bool) -> Option<Duration> {
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

fn converged(c: &Cluster, n: usize) -> bool {
    c.nodes.iter().flatten().all(|node| {
        node.members()
            .filter(|m| m.state == MemberState::Alive)
            .count()
            == n
    })
}

const K1: [u8; 16] = [0x11; 16];
const K2: [u8; 32] = [0x22; 32];

fn encrypted_config(key: &[u8]) -> Config {
    Config {
        keyring: Some(Keyring::new(key).unwrap()),
        ..Config::local()
    }
}

fn suspects(c: &Cluster) -> Vec<String> {
    c.events
        .iter()
        .filter_map(|(i, t, e)| match e {
            Event::Suspect { member, .. } => Some(format!("{i} {t:?} {}", member.name)),
            Event::Leave(m) => Some(format!("{i} {t:?} leave {}", m.name)),
            _ => None,
        })
        .collect()
}

fn undecryptable(c: &Cluster) -> u64 {
    c.nodes
        .iter()
        .flatten()
        .map(|n| n.stats().packets_undecryptable + n.stats().packets_dropped)
        .sum()
}

#[test]
fn node_new_refuses_a_keyring_without_nonce_source() {
    let local = LocalNode {
        name: "a".into(),
        addr: "127.0.0.1:1".parse().unwrap(),
        meta: vec![],
    };
    let err = Node::new(
        encrypted_config(&K1),
        local.clone(),
        Box::new(NoHooks),
        Instant::ZERO,
        1,
    )
    .unwrap_err();
    assert_eq!(err, headcount_proto::ConfigError::NonceSourceRequired);
    let mut n = Node::new(Config::local(), local, Box::new(NoHooks), Instant::ZERO, 1).unwrap();
    assert_eq!(n.add_key(&K1), Err(KeyringError::NoNonceSource));
    assert_eq!(n.use_key(&K1), Err(KeyringError::NoKeyring));
    n.set_nonce_source(NonceSource::from_fn(|b| b.fill(7)));
    assert_eq!(n.add_key(&[1; 5]), Err(KeyringError::InvalidKeyLength(5)));
    n.add_key(&K1).unwrap();
    n.add_key(&K2).unwrap();
    assert_eq!(n.keyring().unwrap().primary_key(), K1);
    assert_eq!(n.remove_key(&K1), Err(KeyringError::RemovePrimaryKey));
    n.use_key(&K2).unwrap();
    n.remove_key(&K1).unwrap();
    assert_eq!(n.remove_key(&K1), Err(KeyringError::KeyNotInstalled));
    assert_eq!(n.keyring().unwrap().len(), 1);
    assert!(n.encrypts_outgoing());
}

#[test]
fn encrypted_cluster_converges() {
    for (seed, config) in [
        (1, encrypted_config(&K1)),
        (
            2,
            Config {
                label: b"prod".to_vec(),
                protocol_version: 1, // v0: padded
                ..encrypted_config(&K2)
            },
        ),
    ] {
        let mut c = Cluster::new(4, config, seed);
        c.join_all_to(0);
        let t = c.run_until(CONVERGE, |c| converged(c, 4));
        assert!(t.is_some(), "cluster did not converge");
        c.run_for(Duration::from_secs(20));
        assert!(converged(&c, 4));
        assert!(c.packets > 100);
        assert_eq!(
            c.plaintext_packets, 0,
            "plaintext packets in an encrypted cluster"
        );
        assert!(c.streams >= 6);
        assert_eq!(c.plaintext_streams, 0);
        assert_eq!(undecryptable(&c), 0);
        assert_eq!(suspects(&c), Vec::<String>::new());
        // Push/pulls happened, encrypted both ways.
        let joins = c
            .events
            .iter()
            .filter(|(_, _, e)| matches!(e, Event::JoinFinished { succeeded: 1, .. }))
            .count();
        assert_eq!(joins, 3);
    }
}

#[test]
fn wrong_key_or_plaintext_cannot_join() {
    let mut c = Cluster::new(3, encrypted_config(&K1), 3);
    c.join_all_to(0);
    c.run_until(CONVERGE, |c| converged(c, 3))
        .expect("converged");
    let wrong = c.add_node("intruder", 7100, encrypted_config(&K2), 99);
    let plain = c.add_node("plain", 7101, Config::local(), 98);
    let now = c.now;
    let seed = c.addrs[0];
    let jw = c.node(wrong).join(now, &[seed]);
    c.drain(wrong);
    let jp = c.node(plain).join(now, &[seed]);
    c.drain(plain);
    c.run_for(Duration::from_secs(30));
    for (i, id) in [(wrong, jw), (plain, jp)] {
        let finished = c.events.iter().find_map(|(n, _, e)| match e {
            Event::JoinFinished {
                id: jid,
                succeeded,
                errors,
            } if *n == i && *jid == id => Some((*succeeded, errors.len())),
            _ => None,
        });
        assert_eq!(finished, Some((0, 1)), "node {i} join");
        assert_eq!(c.node(i).num_members(), 1);
    }
    for i in 0..3 {
        let n = c.nodes[i].as_ref().unwrap();
        assert!(n.member("intruder").is_none() && n.member("plain").is_none());
        assert_eq!(n.num_members(), 3);
    }
    assert_eq!(suspects(&c), Vec::<String>::new());
}

#[test]
fn live_migration_to_encryption_then_key_rotation() {
    let n = 4;
    let mut c = Cluster::new(n, Config::local(), 21);
    c.join_all_to(0);
    c.run_until(CONVERGE, |c| converged(c, n))
        .expect("converged");
    c.run_for(Duration::from_secs(5));
    assert!(c.plaintext_packets > 0);
    let step = Duration::from_secs(8);

    // Each step applies to one node at a time, with traffic in between,
    // so mixed states are exercised.
    let each = |c: &mut Cluster, f: &dyn Fn(&mut Node)| {
        for i in 0..n {
            f(c.node(i));
            c.run_for(Duration::from_secs(2));
            assert!(converged(c, n));
        }
        c.run_for(step);
        assert!(converged(c, n));
        assert_eq!(suspects(c), Vec::<String>::new());
        assert_eq!(undecryptable(c), 0);
    };

    // Phase 1: install the key, verify nothing.
    each(&mut c, &|node| {
        node.set_gossip_verify_incoming(false);
        node.set_gossip_verify_outgoing(false);
        node.add_key(&K1).unwrap();
        assert!(!node.encrypts_outgoing());
    });
    // Phase 2: encrypt outgoing.
    each(&mut c, &|node| node.set_gossip_verify_outgoing(true));
    let plain_before = (c.plaintext_packets, c.plaintext_streams);
    let streams_before = c.streams;
    // Long enough for periodic push/pulls (15 s under the local profile).
    c.run_for(Duration::from_secs(40));
    assert!(c.streams > streams_before);
    assert_eq!(
        (c.plaintext_packets, c.plaintext_streams),
        plain_before,
        "plaintext after phase 2"
    );
    // Phase 3: verify incoming.
    each(&mut c, &|node| node.set_gossip_verify_incoming(true));

    // The cluster now refuses plaintext.
    let plain = c.add_node("plain", 7101, Config::local(), 98);
    let now = c.now;
    let seed = c.addrs[0];
    c.node(plain).join(now, &[seed]);
    c.drain(plain);
    c.run_for(step);
    assert_eq!(c.node(plain).num_members(), 1);
    assert!(c.nodes[0].as_ref().unwrap().member("plain").is_none());
    c.kill(plain);

    // Rotation: install K2 everywhere, make it primary everywhere, remove K1.
    each(&mut c, &|node| node.add_key(&K2).unwrap());
    each(&mut c, &|node| node.use_key(&K2).unwrap());
    each(&mut c, &|node| node.remove_key(&K1).unwrap());
    for i in 0..n {
        let k: Vec<&[u8]> = c.nodes[i]
            .as_ref()
            .unwrap()
            .keyring()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(k, vec![&K2[..]]);
    }

    // A node holding only the old key is now shut out.
    let old = c.add_node("old", 7102, encrypted_config(&K1), 97);
    let now = c.now;
    c.node(old).join(now, &[seed]);
    c.drain(old);
    c.run_for(step);
    assert_eq!(c.node(old).num_members(), 1);
    assert!(c.nodes[0].as_ref().unwrap().member("old").is_none());
    c.kill(old);

    c.run_for(Duration::from_secs(30));
    assert!(converged(&c, n));
    assert_eq!(suspects(&c), Vec::<String>::new());
    assert_eq!(undecryptable(&c), 0);
}
