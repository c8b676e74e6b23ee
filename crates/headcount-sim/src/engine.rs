//! The simulation engine: many real [`Node`]s, one virtual clock, one event
//! heap and one seeded generator.
//!
//! Every datagram a node emits is carried as the bytes the proto framed and
//! handed to the receiver's `handle_packet`, which decodes them; every dialed
//! stream is decoded by `wire::decode_stream` on the serving side, handled by
//! `handle_stream`, and its reply decoded again on the dialing side. Nothing
//! is shortcut.
//!
//! Time advances by popping the earliest entry of a heap keyed by
//! `(time, sequence number)`: a packet or stream leg arriving, a node's
//! timer deadline, or a scheduled fault. Ties are broken by the order in
//! which entries were scheduled, so a run is a pure function of the seed.

use core::time::Duration;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use headcount_proto::wire::Limits;
use headcount_proto::{
    BroadcastId, Config, Instant, MemberState, Node, Output, StreamFailure, StreamId,
};
use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::net::{splitmix64, Network, Partition, Profile};

mod bootstrap;
mod nodes;
mod observe;
mod route;
mod streams;

pub use streams::decode_reply;
use streams::StreamLeg;

/// The port every simulated node listens on.
pub const PORT: u16 = 7946;

/// Most packets and stream legs a starved node buffers; later ones are
/// dropped, like datagrams overflowing a socket buffer.
pub const DEFAULT_BACKLOG_CAP: usize = 4096;

/// How long a leaving node waits for its leave broadcast before it shuts
/// down anyway (the `Leave(timeout)` then `Shutdown()` of Go's API).
pub const LEAVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The address of simulated node `i`: `10.x.y.z:7946` with `x.y.z = i + 1`.
pub fn addr_of(i: usize) -> SocketAddr {
    let n = u32::try_from(i + 1).expect("at most 2^24 nodes");
    assert!(n < 1 << 24, "at most 2^24 - 1 nodes");
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from((10u32 << 24) | n)), PORT)
}

/// The node index behind a simulated address, if it is one.
pub fn index_of(addr: SocketAddr) -> Option<usize> {
    match addr.ip() {
        IpAddr::V4(v4) if addr.port() == PORT => {
            let n = u32::from(v4);
            if n >> 24 == 10 && n & 0x00ff_ffff != 0 {
                Some((n & 0x00ff_ffff) as usize - 1)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// The name of simulated node `i`.
pub fn name_of(i: usize) -> String {
    format!("n{i}")
}

/// Takes every pending output of `node` and hands it to `sink`, in the
/// order the node produced them. Call after every input and command.
///
/// This is the one drain loop the simulator uses; it is meant to move into
/// `headcount-proto` so the tokio shell shares it (design-models.md §2.12).
pub fn drain<S: Sink>(node: &mut Node, now: Instant, sink: &mut S) {
    while let Some(out) = node.poll_output() {
        sink.output(now, out);
    }
}

/// Where [`drain`] puts a node's outputs.
pub trait Sink {
    /// One output, produced at `now`.
    fn output(&mut self, now: Instant, out: Output);
}

impl Sink for Vec<Output> {
    fn output(&mut self, _now: Instant, out: Output) {
        self.push(out);
    }
}

/// What a recorded event says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// The observer now has the subject alive (new, or back from dead).
    Join,
    /// The observer declared or learnt the subject dead.
    Dead,
    /// The observer learnt the subject left.
    Left,
    /// The observer marked the subject suspect.
    Suspect,
    /// The subject's metadata changed.
    Update,
    /// The observer's health score changed to `inc`.
    Health,
    /// The observer raised its own incarnation to `inc` (a refutation, or
    /// a metadata update); `subject` is the observer.
    Refute,
}

/// One membership event seen by one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// When.
    pub t: Instant,
    /// Who saw it.
    pub node: u32,
    /// Whom it is about (the observer itself for [`Kind::Health`]).
    pub subject: u32,
    /// What happened.
    pub kind: Kind,
    /// The subject's incarnation in the event (the score for `Health`).
    pub inc: u32,
}

/// Counters of the network and engine.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SimStats {
    /// Datagrams nodes emitted.
    pub packets_sent: u64,
    /// Bytes in them.
    pub bytes_sent: u64,
    /// Datagrams lost to random loss.
    pub packets_lost: u64,
    /// Datagrams dropped by a partition.
    pub packets_blocked: u64,
    /// Datagrams that reached a dead address or a crashed node.
    pub packets_undeliverable: u64,
    /// Datagrams dropped because a starved node's backlog was full.
    pub backlog_overflow: u64,
    /// Streams dialed.
    pub streams: u64,
    /// Bytes written on streams: requests and replies (counters only; no
    /// decision depends on them).
    pub stream_bytes: u64,
    /// Streams answered with a reply (push/pull replies, fallback acks).
    pub stream_replies: u64,
    /// Bytes in those replies.
    pub stream_reply_bytes: u64,
    /// Of those replies, the push/pull ones (the others are acks to TCP
    /// fallback pings).
    pub push_pull_replies: u64,
    /// Bytes in the push/pull replies.
    pub push_pull_reply_bytes: u64,
    /// Push/pull bytes, requests (counted when delivered) and replies:
    /// `stream_bytes` less this is the fallback pings and their acks.
    pub push_pull_bytes: u64,
    /// Heap entries processed.
    pub steps: u64,
    /// Node inputs (packets, stream legs, timer firings) handled.
    pub node_inputs: u64,
}

/// A scheduled fault or lifecycle change.
#[derive(Clone, Debug)]
pub enum Action {
    /// Start node `i` (creating it, or restarting it after a crash) and
    /// join `join` if given.
    Start {
        /// The node.
        node: usize,
        /// Whom to join.
        join: Option<usize>,
    },
    /// Stop node `i` at once, without telling anyone.
    Crash(usize),
    /// Leave gracefully, then shut down.
    Leave(usize),
    /// Stop processing for this long, then handle the backlog late.
    Starve(usize, Duration),
    /// Keep running (timers fire on time) but handle every inbound packet
    /// and stream leg this much later than it arrives, for the given
    /// stretch: an overloaded process whose receive path lags, as in the
    /// Lifeguard paper's experiments.
    Slow(usize, Duration, Duration),
    /// Start a partition.
    Partition(Partition),
    /// Heal the partition with this id.
    Heal(u64),
    /// Change the loss rate.
    Loss(f64),
    /// A running node joins `peer` again (what Serf's reconnect loop does
    /// for failed members; memberlist alone never does it).
    Rejoin {
        /// The node that joins.
        node: usize,
        /// Whom it joins.
        peer: usize,
    },
}

enum Ev {
    Packet {
        from: u32,
        to: u32,
        data: Vec<u8>,
    },
    StreamRequest {
        from: u32,
        from_gen: u32,
        to: u32,
        id: StreamId,
        data: Vec<u8>,
        expect_reply: bool,
    },
    StreamResult {
        to: u32,
        gen: u32,
        id: StreamId,
        result: StreamLeg,
    },
    Wake {
        node: u32,
        gen: u32,
    },
    Resume {
        node: u32,
        gen: u32,
    },
    Shutdown {
        node: u32,
        gen: u32,
    },
    Action(Action),
    Reconnect,
    /// An inbound entry whose handling a slow node put off.
    Lagged(Box<Ev>),
}

/// Input a starved node has not handled yet.
enum Backlogged {
    Packet {
        from: u32,
        data: Vec<u8>,
    },
    StreamRequest {
        from: u32,
        from_gen: u32,
        id: StreamId,
        data: Vec<u8>,
        expect_reply: bool,
    },
    StreamResult {
        id: StreamId,
        result: StreamLeg,
    },
}

struct Entry {
    at: Instant,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    /// Reversed, so that `BinaryHeap` pops the earliest.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// Whether a node slot runs a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Never started, or crashed, or shut down after leaving.
    Down,
    /// Running (possibly starved).
    Running,
    /// Left gracefully and is waiting to shut down.
    Leaving,
}

struct Slot {
    node: Option<Node>,
    gen: u32,
    status: Status,
    starved_until: Option<Instant>,
    backlog: VecDeque<Backlogged>,
    wake_at: Option<Instant>,
    last_inc: u32,
    /// Members this node holds alive or suspect, itself included, kept
    /// from its Join and Leave events.
    known: i64,
    leave_token: Option<BroadcastId>,
    ever_started: bool,
    left: bool,
    /// Inbound processing lag and until when it applies.
    lag: Option<(Duration, Instant)>,
    /// Latest time a lagged inbound entry is due: later arrivals are not
    /// handled before it (the receive path is one FIFO queue).
    lag_floor: Instant,
    /// Own incarnation last recorded in the log.
    logged_inc: u32,
}

/// A simulation. See the module documentation.
pub struct Sim {
    now: Instant,
    seed: u64,
    config: Config,
    net: Network,
    rng: Xoshiro256PlusPlus,
    heap: BinaryHeap<Entry>,
    seq: u64,
    slots: Vec<Slot>,
    running: usize,
    outbuf: Vec<Output>,
    limits: Limits,
    /// Membership events recorded while [`Sim::recording`] is set.
    pub log: Vec<Record>,
    /// Whether to append to [`Sim::log`].
    pub recording: bool,
    /// Whether to check invariants after every node input.
    pub check_invariants: bool,
    /// Most inputs a starved node buffers.
    pub backlog_cap: usize,
    reconnect: Option<Duration>,
    stats: SimStats,
}

impl Sim {
    /// An empty simulation: no node started yet. `config` is what every
    /// node runs (building a node validates it: an invalid one panics at
    /// the first [`Sim::start`]); the network follows `profile` with
    /// packet loss `loss`.
    pub fn new(seed: u64, config: Config, profile: Profile, loss: f64) -> Self {
        Sim {
            now: Instant::ZERO,
            seed,
            config,
            net: Network::new(profile, loss, splitmix64(seed ^ 0x6c69_6e6b)),
            rng: Xoshiro256PlusPlus::seed_from_u64(splitmix64(seed)),
            heap: BinaryHeap::new(),
            seq: 0,
            slots: Vec::new(),
            running: 0,
            outbuf: Vec::new(),
            limits: Limits::default(),
            log: Vec::new(),
            recording: false,
            check_invariants: cfg!(debug_assertions),
            backlog_cap: DEFAULT_BACKLOG_CAP,
            reconnect: None,
            stats: SimStats::default(),
        }
    }

    // ----- getters ---------------------------------------------------------

    /// The virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The master seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The proto configuration nodes run.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The network.
    pub fn network(&self) -> &Network {
        &self.net
    }

    /// Counters.
    pub fn stats(&self) -> &SimStats {
        &self.stats
    }

    /// Number of node slots (started or not).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there are no node slots.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Number of nodes running (starved ones included, leaving ones not).
    pub fn running(&self) -> usize {
        self.running
    }

    /// The node in slot `i`, if it runs.
    pub fn node(&self, i: usize) -> Option<&Node> {
        self.slots.get(i)?.node.as_ref()
    }

    /// The status of slot `i`.
    pub fn status(&self, i: usize) -> Status {
        self.slots.get(i).map_or(Status::Down, |s| s.status)
    }

    /// Whether node `i` runs and is not leaving.
    pub fn is_running(&self, i: usize) -> bool {
        self.status(i) == Status::Running
    }

    /// Whether node `i` is starved now.
    pub fn is_starved(&self, i: usize) -> bool {
        self.slots.get(i).is_some_and(|s| s.starved_until.is_some())
    }

    /// Members node `i` holds alive or suspect (itself included).
    pub fn known(&self, i: usize) -> usize {
        self.slots.get(i).map_or(0, |s| s.known.max(0) as usize)
    }

    /// Whether every running node holds exactly the running nodes as
    /// alive or suspect (counts only; [`Sim::agree`] checks names).
    pub fn converged(&self) -> bool {
        let n = self.running as i64;
        self.slots
            .iter()
            .filter(|s| s.status == Status::Running)
            .all(|s| s.known == n)
    }

    /// Whether every running node sees every running node alive and every
    /// other started node dead or left (or has forgotten it). O(n²).
    pub fn agree(&self) -> bool {
        for s in self.slots.iter().filter(|s| s.status == Status::Running) {
            let node = s.node.as_ref().expect("running");
            for (j, t) in self.slots.iter().enumerate() {
                if !t.ever_started {
                    continue;
                }
                let state = node.member(&name_of(j)).map(|m| m.state);
                let ok = if t.status == Status::Running {
                    state == Some(MemberState::Alive)
                } else {
                    state.is_none_or(|st| st.is_dead_or_left())
                };
                if !ok {
                    return false;
                }
            }
        }
        true
    }

    /// How node `observer` sees node `subject`.
    pub fn state_seen(&self, observer: usize, subject: usize) -> Option<MemberState> {
        self.node(observer)?
            .member(&name_of(subject))
            .map(|m| m.state)
    }

    /// When the next heap entry is due.
    pub fn next_time(&self) -> Option<Instant> {
        self.heap.peek().map(|e| e.at)
    }

    /// A random number from the simulation's generator (for experiments
    /// that pick victims, so that the choice follows the seed too).
    pub fn random(&mut self) -> u64 {
        self.rng.next_u64()
    }

    // ----- scheduling ------------------------------------------------------

    fn push(&mut self, at: Instant, ev: Ev) {
        self.seq += 1;
        let at = at.max(self.now);
        self.heap.push(Entry {
            at,
            seq: self.seq,
            ev,
        });
    }

    /// Schedules `action` at `at` (or now, if `at` has passed).
    pub fn schedule(&mut self, at: Instant, action: Action) {
        self.push(at, Ev::Action(action));
    }

    /// Carries out `action` now.
    pub fn act(&mut self, action: Action) {
        self.apply(action);
    }

    fn apply(&mut self, action: Action) {
        match action {
            Action::Start { node, join } => self.start(node, join),
            Action::Crash(i) => self.stop(i),
            Action::Leave(i) => {
                if self.status(i) != Status::Running {
                    return;
                }
                let now = self.now;
                let slot = &mut self.slots[i];
                let token = slot.node.as_mut().expect("running").leave(now);
                slot.status = Status::Leaving;
                slot.left = true;
                self.running -= 1;
                let gen = slot.gen;
                match token {
                    Some(t) => {
                        slot.leave_token = Some(t);
                        self.push(
                            now + LEAVE_TIMEOUT,
                            Ev::Shutdown {
                                node: i as u32,
                                gen,
                            },
                        );
                        self.after_input(i);
                    }
                    None => self.stop(i),
                }
            }
            Action::Starve(i, d) => {
                if self.slots.get(i).is_none_or(|s| s.node.is_none()) {
                    return;
                }
                let until = self.now + d;
                let slot = &mut self.slots[i];
                let until = slot.starved_until.map_or(until, |u| u.max(until));
                slot.starved_until = Some(until);
                let gen = slot.gen;
                self.push(
                    until,
                    Ev::Resume {
                        node: i as u32,
                        gen,
                    },
                );
            }
            Action::Slow(i, lag, d) => {
                if self.slots.get(i).is_some_and(|s| s.node.is_some()) {
                    self.slots[i].lag = Some((lag, self.now + d));
                }
            }
            Action::Partition(p) => self.net.add_partition(p),
            Action::Heal(id) => {
                self.net.heal(id);
            }
            Action::Loss(p) => self.net.set_loss(p),
            Action::Rejoin { node, peer } => {
                if self.status(node) == Status::Running {
                    let now = self.now;
                    let n = self.slots[node].node.as_mut().expect("running");
                    let _ = n.join(now, &[addr_of(peer)]);
                    self.after_input(node);
                }
            }
        }
    }

    // ----- running ---------------------------------------------------------

    /// Processes the earliest heap entry. Returns `false` when the heap is
    /// empty.
    pub fn step(&mut self) -> bool {
        let Some(Entry { at, ev, .. }) = self.heap.pop() else {
            return false;
        };
        debug_assert!(at >= self.now, "time went backwards");
        self.now = at;
        self.stats.steps += 1;
        let ev = match ev {
            Ev::Lagged(inner) => *inner,
            Ev::Packet { to, .. } | Ev::StreamRequest { to, .. } | Ev::StreamResult { to, .. }
                if self.lag_of(to as usize).is_some()
                    || (self.slots[to as usize].lag_floor >= at
                        && self.slots[to as usize].lag_floor > Instant::ZERO) =>
            {
                // One receive queue: an entry is handled `lag` after it
                // arrives, and never before one that arrived earlier (so
                // when a slow stretch ends the backlog drains first).
                let i = to as usize;
                let due =
                    (at + self.lag_of(i).unwrap_or(Duration::ZERO)).max(self.slots[i].lag_floor);
                self.slots[i].lag_floor = due;
                self.push(due, Ev::Lagged(Box::new(ev)));
                return true;
            }
            ev => ev,
        };
        match ev {
            Ev::Packet { from, to, data } => {
                let to = to as usize;
                let slot = &mut self.slots[to];
                if slot.node.is_none() {
                    self.stats.packets_undeliverable += 1;
                } else if slot.starved_until.is_some() {
                    if slot.backlog.len() >= self.backlog_cap {
                        self.stats.backlog_overflow += 1;
                    } else {
                        slot.backlog.push_back(Backlogged::Packet { from, data });
                    }
                } else {
                    self.deliver_packet(to, from, &data);
                }
            }
            Ev::StreamRequest {
                from,
                from_gen,
                to,
                id,
                data,
                expect_reply,
            } => {
                let t = to as usize;
                let slot = &mut self.slots[t];
                if slot.node.is_none() {
                    self.answer_stream(
                        t,
                        from,
                        from_gen,
                        id,
                        StreamLeg::Failed(StreamFailure::Io(std::io::ErrorKind::ConnectionRefused)),
                    );
                } else if slot.starved_until.is_some() {
                    // The kernel accepts the connection; the process reads
                    // it when it runs again.
                    slot.backlog.push_back(Backlogged::StreamRequest {
                        from,
                        from_gen,
                        id,
                        data,
                        expect_reply,
                    });
                } else {
                    self.serve_stream(t, from, from_gen, id, &data, expect_reply);
                }
            }
            Ev::StreamResult {
                to,
                gen,
                id,
                result,
            } => {
                let t = to as usize;
                let slot = &mut self.slots[t];
                if slot.gen != gen || slot.node.is_none() {
                    return true;
                }
                if slot.starved_until.is_some() {
                    slot.backlog
                        .push_back(Backlogged::StreamResult { id, result });
                } else {
                    self.deliver_stream_result(t, id, result);
                }
            }
            Ev::Wake { node, gen } => {
                let i = node as usize;
                let slot = &mut self.slots[i];
                if slot.gen != gen || slot.wake_at != Some(at) {
                    return true;
                }
                slot.wake_at = None;
                if slot.starved_until.is_some() {
                    // Fired late, at resume.
                    return true;
                }
                if let Some(n) = slot.node.as_mut() {
                    n.handle_timeout(at);
                    self.stats.node_inputs += 1;
                    self.after_input(i);
                }
            }
            Ev::Resume { node, gen } => {
                let i = node as usize;
                let slot = &mut self.slots[i];
                if slot.gen != gen || slot.starved_until != Some(at) {
                    return true;
                }
                slot.starved_until = None;
                self.resume(i);
            }
            Ev::Shutdown { node, gen } => {
                let i = node as usize;
                if self.slots[i].gen == gen && self.slots[i].status == Status::Leaving {
                    self.stop(i);
                }
            }
            Ev::Action(a) => self.apply(a),
            Ev::Reconnect => self.reconnect_tick(),
            Ev::Lagged(_) => unreachable!("unwrapped above"),
        }
        true
    }

    /// Runs every entry due up to `t`, then sets the clock to `t`.
    pub fn run_until(&mut self, t: Instant) {
        while self.heap.peek().is_some_and(|e| e.at <= t) {
            self.step();
        }
        self.now = self.now.max(t);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let t = self.now + d;
        self.run_until(t);
    }

    /// Runs in steps of `tick` until `cond` holds or `limit` passes;
    /// returns how long it took.
    pub fn run_while_not(
        &mut self,
        limit: Duration,
        tick: Duration,
        mut cond: impl FnMut(&Sim) -> bool,
    ) -> Option<Duration> {
        let start = self.now;
        loop {
            if cond(self) {
                return Some(self.now - start);
            }
            if self.now - start >= limit {
                return None;
            }
            self.run_for(tick);
        }
    }
}

impl core::fmt::Debug for Sim {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sim")
            .field("seed", &self.seed)
            .field("now", &self.now)
            .field("nodes", &self.slots.len())
            .field("running", &self.running)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip() {
        for i in [0, 1, 255, 256, 65_535, 70_000] {
            assert_eq!(index_of(addr_of(i)), Some(i));
        }
        assert_eq!(index_of("10.0.0.0:7946".parse().unwrap()), None);
        assert_eq!(index_of("10.0.0.1:7947".parse().unwrap()), None);
    }
}
