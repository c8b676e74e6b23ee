//! Whole clusters of proto nodes on a virtual network and a virtual clock:
//! every packet and stream goes through the real encoder and decoder.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use headcount_proto::wire::{self, Limits, StreamDecode};
use headcount_proto::{
    Config, Event, Instant, LocalNode, MemberState, NoHooks, Node, Output, StreamFailure, StreamId,
    StreamMessage,
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
        let node = Node::new(config, local, Box::new(NoHooks), self.now, seed).unwrap();
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
        let limits = Limits::default();
        let label = self.node(j).config().label.clone();
        let msg = match wire::decode_stream(data, &label, false, &limits) {
            Ok(StreamDecode::Complete { msg, .. }) => msg,
            other => panic!("stream did not decode: {other:?}"),
        };
        let now = self.now;
        let from_addr = self.addrs[from];
        let reply = self.node(j).handle_stream(now, from_addr, msg);
        self.drain(j);
        if !expect_reply {
            return Ok(None);
        }
        let reply = reply.ok_or_else(|| StreamFailure::Io("closed without reply".into()))?;
        match wire::decode_stream(&reply, &[], false, &limits) {
            Ok(StreamDecode::Complete { msg, .. }) => Ok(Some(msg)),
            other => panic!("reply did not decode: {other:?}"),
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

    fn state_seen_by(&self, observer: usize, name: &str) -> Option<MemberState> {
        self.nodes[observer].as_ref()?.member(name).map(|m| m.state)
    }

    fn all_see(&self, name: &str, state: MemberState) -> bool {
        self.nodes
            .iter()
            .flatten()
            .filter(|n| n.name() != name)
            .all(|n| n.member(name).map(|m| m.state) == Some(state))
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

#[test]
fn five_nodes_converge_by_join() {
    let mut c = Cluster::new(5, Config::local(), 1);
    c.join_all_to(0);
    let t = c.run_until(CONVERGE, |c| converged(c, 5));
    assert!(t.is_some(), "cluster did not converge");
    let joins = c
        .events
        .iter()
        .filter(|(_, _, e)| matches!(e, Event::JoinFinished { succeeded: 1, .. }))
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
        .events
        .iter()
        .any(|(i, _, e)| *i == 3 && *e == Event::BroadcastFinished(token.unwrap()));
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
            .all(|n| n.member("node-2").unwrap().meta == b"role=db")
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
