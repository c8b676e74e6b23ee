//! The protocol core: one memberlist node as a state machine.
//!
//! [`Node`] has four kinds of methods:
//! - **inputs** (`handle_packet`, `handle_stream`, `handle_stream_result`,
//!   `handle_timeout`) feed it what arrived and what time it is;
//! - **commands** (`join`, `leave`, `update_meta`, `ping`, `send_packet`,
//!   `send_reliable`) ask it to do something;
//! - **outputs** (`poll_output`, `poll_timeout`) say what the driver must do:
//!   send packets, dial streams, report events, and when to call
//!   `handle_timeout` next;
//! - **getters** (`members`, `local_member`, `health_score`, `stats`).
//!
//! After every input or command the driver drains `poll_output` until it
//! returns `None`, then sleeps until `poll_timeout` (or the next input).
//! Time never goes backwards; calling `handle_timeout` early does nothing.

use core::time::Duration;
use std::collections::VecDeque;

use crate::fxhash::FxHashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::awareness::Awareness;
use crate::broadcast::{Broadcast, TransmitLimitedQueue};
use crate::config::{Config, ConfigError, META_MAX_SIZE};
use crate::delegate::Hooks;
use crate::event::{BroadcastId, Dial, Event, JoinId, Output, PingId, StreamFailure, StreamId};
use crate::inbound::InboundQueue;
use crate::name::Name;
use crate::state::{socket_addr_from_wire, Member, MemberInfo, MemberState, MemberTable, RawAddr};
use crate::suspicion::{push_pull_scale, suspicion_k, suspicion_timeout, Suspicion};
use crate::time::Instant;
use crate::timer::TimerQueue;
use crate::wire::{
    self, AckResp, Alive, Dead, IndirectPingReq, Limits, Message, NackResp, PacketOptions, Ping,
    PushNodeState, PushPull, StreamMessage, Suspect, Vsn, WireState, VSN_DELEGATE_CUR,
    VSN_DELEGATE_MAX, VSN_DELEGATE_MIN, VSN_PROTOCOL_CUR, VSN_PROTOCOL_MAX, VSN_PROTOCOL_MIN,
};

/// Bytes a compound message adds in front of its parts.
const COMPOUND_HEADER_OVERHEAD: usize = 2;
/// Bytes a compound message adds per part.
const COMPOUND_PART_OVERHEAD: usize = 2;
/// Bytes the type byte of a user message adds.
const USER_MSG_OVERHEAD: usize = 1;
/// Bytes a CRC header adds.
const CRC_OVERHEAD: usize = 5;
/// With compression on, a packet of broadcasts holds at most this many
/// times the packet budget of uncompressed messages (see
/// [`Node::packed_budget`]).
const MAX_PACKING_FACTOR: usize = 8;
/// Fixed-point one for [`Node::compression_ratio`].
const RATIO_ONE: usize = 1024;
/// Largest reliable user message (wire-protocol.md §4).
pub const MAX_RELIABLE_MESSAGE: usize = 20 * 1024 * 1024;

mod builder;
mod reconnect;
mod security;

pub use builder::NodeBuilder;
pub use reconnect::FAILED_MAX;

/// Who this node is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalNode {
    /// Unique name in the cluster.
    pub name: String,
    /// Address and port other nodes reach us at (UDP and TCP).
    pub addr: SocketAddr,
    /// Metadata, at most [`META_MAX_SIZE`] bytes.
    pub meta: Vec<u8>,
}

/// Why a send was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The message does not fit in one packet.
    TooLarge {
        /// Size of the message.
        size: usize,
        /// Largest size that fits.
        limit: usize,
    },
    /// The node has left the cluster.
    Left,
    /// No member has this name.
    UnknownNode(String),
}

impl core::fmt::Display for SendError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SendError::TooLarge { size, limit } => {
                write!(
                    f,
                    "message of {size} bytes exceeds the limit of {limit} bytes"
                )
            }
            SendError::Left => write!(f, "this node has left the cluster"),
            SendError::UnknownNode(n) => write!(f, "no member is called {n:?}"),
        }
    }
}

impl std::error::Error for SendError {}

/// Counters of what the node has seen and done.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets handed to `handle_packet`.
    pub packets_received: u64,
    /// Bytes in those packets.
    pub bytes_received: u64,
    /// Packets emitted.
    pub packets_sent: u64,
    /// Bytes in those packets.
    pub bytes_sent: u64,
    /// Packets dropped whole (bad label, CRC, framing, decryption).
    pub packets_dropped: u64,
    /// Of those, packets that no key could decrypt while incoming
    /// verification was on.
    pub packets_undecryptable: u64,
    /// Messages inside packets that could not be decoded, or were truncated.
    pub messages_malformed: u64,
    /// Messages of an unknown type.
    pub messages_unknown: u64,
    /// Messages that were valid but ignored (bad version, bad address, not for us).
    pub messages_ignored: u64,
    /// Streams the node asked to dial.
    pub streams_dialed: u64,
    /// Inbound stream messages handled.
    pub streams_handled: u64,
    /// Inbound streams the driver could not read (malformed, over a limit)
    /// and answered with an error ([`Node::handle_stream_error`]).
    pub streams_rejected: u64,
    /// Probes started.
    pub probes: u64,
    /// Probes that ended without any ack.
    pub probes_failed: u64,
    /// Packets and inbound stream messages dropped because their source
    /// address is not in [`Config::cidrs_allowed`].
    pub sources_denied: u64,
    /// `alive` messages ignored because they announce a new node or a new
    /// address outside [`Config::cidrs_allowed`].
    pub alives_denied: u64,
    /// Push/pulls started to reconnect with a failed member.
    pub reconnect_attempts: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum TimerKey {
    ProbeTick,
    GossipTick,
    PushPullTick,
    /// The direct ping of a probe went unanswered for `probe_timeout`.
    ProbeTimeout(u32),
    /// An ack handler expires.
    AckDeadline(u32),
    /// A suspected node's time to refute is up.
    Suspicion(String),
    /// Time to try a failed member again (see `node/reconnect.rs`).
    ReconnectTick,
}

#[derive(Debug)]
enum AckHandler {
    /// Our own probe.
    Probe,
    /// An indirect ping we relay for someone else.
    Relay {
        origin: SocketAddr,
        origin_seq: u32,
        nack: bool,
    },
    /// A ping the application asked for.
    UserPing { id: PingId, sent: Instant },
}

#[derive(Debug)]
struct ProbeInFlight {
    seq: u32,
    target: String,
    incarnation: u32,
    sent: Instant,
    expected_nacks: u32,
    nacks: u32,
}

#[derive(Debug)]
enum PendingStream {
    PushPull {
        join: bool,
        join_id: Option<JoinId>,
        addr: SocketAddr,
    },
    Reliable,
    FallbackPing {
        seq: u32,
    },
}

#[derive(Debug, Default)]
struct JoinProgress {
    pending: usize,
    succeeded: usize,
    errors: Vec<(SocketAddr, String)>,
}

/// Room kept in the output queue once it is drained.
const OUTPUTS_RETAINED: usize = 64;

/// One memberlist node, without I/O. See the module documentation.
pub struct Node {
    config: Config,
    limits: Limits,
    name: String,
    advertise: SocketAddr,
    raw_addr: RawAddr,
    vsn: Vsn,
    incarnation: u32,
    members: MemberTable,
    suspicions: FxHashMap<String, Suspicion>,
    awareness: Awareness,
    broadcasts: TransmitLimitedQueue,
    timers: TimerQueue<TimerKey>,
    rng: Xoshiro256PlusPlus,
    outputs: VecDeque<Output>,
    hooks: Box<dyn Hooks>,
    seq_no: u32,
    probe_index: usize,
    probe: Option<ProbeInFlight>,
    probe_tick_pending: bool,
    acks: FxHashMap<u32, AckHandler>,
    streams: FxHashMap<StreamId, PendingStream>,
    joins: FxHashMap<JoinId, JoinProgress>,
    next_id: u64,
    leaving: bool,
    stats: Stats,
    membership_version: u64,
    scratch: Vec<Message>,
    /// Keyring, verification flags and nonce source as they are now
    /// (`config` keeps what the node started with).
    security: security::SecurityState,
    /// Members declared dead, to reconnect to (see `node/reconnect.rs`).
    failed: Vec<reconnect::FailedMember>,
    /// Whether the reconnect timer is scheduled.
    reconnect_armed: bool,
    /// The gossip tick is parked: it found nothing to gossip (and the hooks
    /// never supply broadcasts), so it was not re-armed. Holds the tick it
    /// would have fired at next; queueing a broadcast re-arms it on the
    /// same grid of gossip intervals.
    gossip_parked: Option<Instant>,
    /// The gossip tick was re-armed after parking at a tick that may have
    /// passed: when it fires late, it moves to the next tick of its grid.
    gossip_resumed: bool,
    /// Recent framed/unframed size of packets of several messages, in
    /// 1/[`RATIO_ONE`]: how much compression shrinks them. Starts at one
    /// (no shrinking assumed).
    compression_ratio: usize,
    /// The next periodic push/pull is the one a join brought forward (see
    /// [`Node::bring_push_pull_forward`]): it is there to pull, so it
    /// pushes only our own entry.
    push_pull_pulls_only: bool,
}

impl core::fmt::Debug for Node {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.name)
            .field("advertise", &self.advertise)
            .field("incarnation", &self.incarnation)
            .field("members", &self.members.len())
            .finish_non_exhaustive()
    }
}

impl Node {
    /// See [`NodeBuilder::build`], the only caller: the one place a
    /// configuration is validated on the way to a running node.
    fn new(parts: NodeBuilder, now: Instant) -> Result<Node, ConfigError> {
        let NodeBuilder {
            config,
            local,
            hooks,
            seed,
            nonces,
        } = parts;
        config.validate()?;
        if local.name.is_empty() {
            return Err(ConfigError::EmptyName);
        }
        if local.meta.len() > META_MAX_SIZE {
            return Err(ConfigError::MetaTooLarge(local.meta.len()));
        }
        let security = security::SecurityState::new(&config, nonces)?;
        let raw_addr = RawAddr::from_ip(local.addr.ip());
        let mut node = Node {
            vsn: config.vsn(),
            awareness: Awareness::new(config.awareness_max_multiplier),
            config,
            limits: Limits::default(),
            name: local.name.clone(),
            advertise: local.addr,
            raw_addr,
            incarnation: 0,
            members: MemberTable::new(),
            suspicions: FxHashMap::default(),
            broadcasts: TransmitLimitedQueue::new(),
            timers: TimerQueue::new(),
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            outputs: VecDeque::new(),
            hooks,
            seq_no: 0,
            probe_index: 0,
            probe: None,
            probe_tick_pending: false,
            acks: FxHashMap::default(),
            streams: FxHashMap::default(),
            joins: FxHashMap::default(),
            next_id: 0,
            leaving: false,
            stats: Stats::default(),
            membership_version: 0,
            scratch: Vec::new(),
            security,
            failed: Vec::new(),
            reconnect_armed: false,
            gossip_parked: None,
            gossip_resumed: false,
            compression_ratio: RATIO_ONE,
            push_pull_pulls_only: false,
        };
        let inc = node.next_incarnation();
        let alive = node.local_alive(inc, local.meta);
        node.alive_node(now, alive, None, true);

        let probe_at = now + node.stagger(node.config.probe_interval);
        node.timers.schedule(TimerKey::ProbeTick, probe_at);
        if !node.config.gossip_interval.is_zero() && node.config.gossip_nodes > 0 {
            let at = now + node.stagger(node.config.gossip_interval);
            node.timers.schedule(TimerKey::GossipTick, at);
        }
        if !node.config.push_pull_interval.is_zero() {
            // Like Go: a random stagger, then a whole interval (a join
            // brings the first one forward, see `join_progress`).
            let interval = node.config.push_pull_interval;
            let at = now + node.stagger(interval) + interval;
            node.timers.schedule(TimerKey::PushPullTick, at);
        }
        Ok(node)
    }

    // ----- getters -------------------------------------------------------

    /// The configuration the node was built with. Runtime changes to its
    /// keys and verification flags are not reflected here: see
    /// [`Node::keyring`], [`Node::gossip_verify_incoming`] and
    /// [`Node::gossip_verify_outgoing`].
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Our name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every entry of the membership table (dead and left ones until they
    /// are reaped), in probe order.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.iter()
    }

    /// The member called `name`.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.get(name)
    }

    /// Number of members that are alive or suspect, ourselves included.
    pub fn num_members(&self) -> usize {
        self.members
            .iter()
            .filter(|m| !m.state.is_dead_or_left())
            .count()
    }

    /// Drops every queued membership broadcast without sending it (user
    /// broadcasts live in the application's hooks and are untouched); each
    /// one's notify token is reported as
    /// [`Event::BroadcastFinished`]. memberlist never does this on its
    /// own: it is for drivers that build a node into an already converged
    /// cluster, whose old news everyone has (the simulator's seeded
    /// bootstrap).
    pub fn reset_broadcasts(&mut self) {
        for token in self.broadcasts.reset() {
            self.emit(Event::BroadcastFinished(BroadcastId(token)));
        }
    }

    /// Our own entry.
    pub fn local_member(&self) -> &Member {
        self.members
            .get(&self.name)
            .expect("the local node is always in the table")
    }

    /// The Lifeguard health score: 0 is healthy, higher means this node
    /// has reason to think it is itself slow or cut off.
    pub fn health_score(&self) -> u32 {
        self.awareness.score()
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Grows whenever a member's state, address, incarnation or metadata
    /// changes, so a driver can republish its snapshot only when needed.
    pub fn membership_version(&self) -> u64 {
        self.membership_version
    }

    /// Whether `leave` was called.
    pub fn has_left(&self) -> bool {
        self.leaving
    }

    /// Broadcasts waiting to be gossiped.
    pub fn queued_broadcasts(&self) -> usize {
        self.broadcasts.len()
    }

    /// Whether the gossip tick is parked: the broadcast queue is empty and
    /// the hooks supply no broadcasts ([`Hooks::may_broadcast`]), so no
    /// gossip timer is armed until something is queued.
    pub fn gossip_idle(&self) -> bool {
        self.gossip_parked.is_some()
    }

    // ----- outputs -------------------------------------------------------

    /// The next thing the driver must do. Drain until `None` after every
    /// input and command.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        let out = self.outputs.pop_front();
        if out.is_none() && self.outputs.capacity() > OUTPUTS_RETAINED {
            // A push/pull merge can queue an event per member; do not keep
            // that much room for good once drained.
            self.outputs.shrink_to(OUTPUTS_RETAINED);
        }
        out
    }

    /// When `handle_timeout` should be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    // ----- inputs --------------------------------------------------------

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((key, at)) = self.timers.pop_expired(now) {
            match key {
                TimerKey::ProbeTick => {
                    let next = at + self.config.probe_interval;
                    // Like Go's ticker: if we fell behind, skip missed ticks.
                    let next = if next <= now {
                        now + self.config.probe_interval
                    } else {
                        next
                    };
                    self.timers.schedule(TimerKey::ProbeTick, next);
                    if self.probe.is_some() {
                        self.probe_tick_pending = true;
                    } else {
                        self.probe(now);
                    }
                }
                TimerKey::GossipTick => {
                    let interval = self.config.gossip_interval;
                    let mut at = at;
                    if core::mem::take(&mut self.gossip_resumed) && now - at >= interval / 2 {
                        // Re-armed after parking at a tick that had passed
                        // when the broadcast was queued: move to the first
                        // tick of the grid not before now. (A tick that
                        // fires less than half an interval late is taken as
                        // on time: the timer's own latency, or a broadcast
                        // queued just after the parked tick.)
                        let iv = interval.as_micros().max(1);
                        let ahead = (now - at).as_micros().div_ceil(iv) * iv;
                        at += Duration::from_micros(u64::try_from(ahead).unwrap_or(u64::MAX));
                        if at > now {
                            self.timers.schedule(TimerKey::GossipTick, at);
                            continue;
                        }
                    }
                    if self.broadcasts.is_empty() && !self.hooks.may_broadcast() {
                        // Nothing to gossip: Go's gossip() would pick its
                        // targets and send nothing. Park the tick rather
                        // than wake up every interval for nothing.
                        let next = at + interval;
                        self.gossip_parked = Some(if next <= now { now + interval } else { next });
                    } else {
                        // A backlog (full packets and more waiting, as in
                        // a join storm) is gossiped at twice the rate: the
                        // same messages go out the same number of times,
                        // sooner.
                        let interval = if self.gossip(now) {
                            interval / 2
                        } else {
                            interval
                        };
                        let next = at + interval;
                        let next = if next <= now { now + interval } else { next };
                        self.timers.schedule(TimerKey::GossipTick, next);
                    }
                }
                TimerKey::PushPullTick => {
                    let interval =
                        push_pull_scale(self.config.push_pull_interval, self.members.len());
                    self.timers.schedule(TimerKey::PushPullTick, now + interval);
                    let pulls_only = core::mem::take(&mut self.push_pull_pulls_only);
                    self.periodic_push_pull(pulls_only);
                }
                TimerKey::ProbeTimeout(seq) => self.probe_indirect(now, seq),
                TimerKey::AckDeadline(seq) => self.ack_expired(now, seq),
                TimerKey::Suspicion(name) => self.suspicion_expired(now, name),
                TimerKey::ReconnectTick => self.reconnect_tick(now),
            }
        }
    }

    /// Handles one UDP datagram from `from`
    /// ([`Node::handle_packets`] with one packet).
    pub fn handle_packet(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.handle_packets(now, core::iter::once((from, data)));
    }

    /// Handles a burst of UDP datagrams as Go's handoff queue would (see
    /// [`crate::inbound`]): pings, indirect pings, acks and nacks at once,
    /// in arrival order; alive, suspect, dead and user messages afterwards,
    /// alive messages first and newest first, in windows of at most
    /// [`Config::handoff_queue_depth`] of each kind: when a queue fills, the
    /// queued messages are handled before more are taken.
    pub fn handle_packets<'a>(
        &mut self,
        now: Instant,
        packets: impl IntoIterator<Item = (SocketAddr, &'a [u8])>,
    ) {
        let mut queue = InboundQueue::new(self.config.handoff_queue_depth);
        let mut messages = core::mem::take(&mut self.scratch);
        for (from, data) in packets {
            self.stats.packets_received += 1;
            self.stats.bytes_received += data.len() as u64;
            if !self.config.ip_allowed(from.ip()) {
                self.stats.sources_denied += 1;
                continue;
            }
            messages.clear();
            match wire::decode_packet_with(
                data,
                &self.config.label,
                self.config.skip_inbound_label_check,
                self.decryption(),
                &self.limits,
                &mut messages,
            ) {
                Ok(summary) => {
                    self.stats.messages_unknown += summary.unknown as u64;
                    self.stats.messages_malformed += (summary.malformed + summary.truncated) as u64;
                }
                Err(e) => {
                    self.stats.packets_dropped += 1;
                    if matches!(e, wire::PacketError::Decrypt(_)) {
                        self.stats.packets_undecryptable += 1;
                    }
                }
            }
            for msg in messages.drain(..) {
                let high = match msg {
                    Message::Alive(_) => true,
                    Message::Suspect(_) | Message::Dead(_) | Message::User(_) => false,
                    _ => {
                        self.handle_message(now, from, msg);
                        continue;
                    }
                };
                // Go's handler goroutine drains its queues while packets
                // arrive, so they fill only when it falls behind. Ours is
                // drained after the burst; a burst of large packets would
                // fill it without anything falling behind. Handle what is
                // queued first instead of dropping.
                if queue.is_full(high) {
                    self.handle_queued(now, &mut queue);
                }
                queue.push(high, (from, msg));
            }
        }
        self.scratch = messages;
        self.handle_queued(now, &mut queue);
    }

    fn handle_queued(&mut self, now: Instant, queue: &mut InboundQueue<(SocketAddr, Message)>) {
        while let Some((from, msg)) = queue.pop() {
            self.handle_message(now, from, msg);
        }
    }

    /// Handles a message that arrived on an inbound stream from `from`, and
    /// returns the reply to write back, if any (framing included).
    pub fn handle_stream(
        &mut self,
        now: Instant,
        from: SocketAddr,
        msg: StreamMessage,
    ) -> Option<Vec<u8>> {
        if !self.config.ip_allowed(from.ip()) {
            self.stats.sources_denied += 1;
            return None;
        }
        self.stats.streams_handled += 1;
        match msg {
            StreamMessage::Ping(p) => {
                if !p.node.is_empty() && p.node != self.name {
                    self.stats.messages_ignored += 1;
                    return None;
                }
                let ack = StreamMessage::Ack(AckResp {
                    seq_no: p.seq_no,
                    payload: Vec::new(),
                });
                Some(self.encode_stream_reply(&ack))
            }
            StreamMessage::PushPull(pp) => {
                let reply = self.local_push_pull(pp.join, false);
                let reply = self.encode_stream_reply(&StreamMessage::PushPull(reply));
                // Go answers before merging, and a failed merge only logs.
                let _ = self.merge_remote_state(now, pp.join, pp.states, &pp.user_state);
                Some(reply)
            }
            StreamMessage::User(data) => {
                self.emit(Event::UserMessage(data));
                None
            }
            StreamMessage::Ack(_) | StreamMessage::Err(_) => {
                self.stats.messages_ignored += 1;
                None
            }
        }
    }

    /// Reports that an inbound stream from `from` could not be read
    /// (malformed, or over one of the [`Limits`]), and returns the reply
    /// to write before closing it: `[13] errResp{error}`, framed like any
    /// reply (compressed, encrypted), as Go's `handleConn` answers a failed
    /// `readStream`.
    pub fn handle_stream_error(
        &mut self,
        _now: Instant,
        _from: SocketAddr,
        error: &str,
    ) -> Option<Vec<u8>> {
        self.stats.streams_rejected += 1;
        let msg = StreamMessage::Err(wire::ErrResp {
            error: error.to_string(),
        });
        Some(self.encode_stream_reply(&msg))
    }

    /// Reports how a stream requested by [`Output::Dial`] ended: `Ok(Some)`
    /// with the reply when one was expected, `Ok(None)` when the data was
    /// written and no reply was expected.
    pub fn handle_stream_result(
        &mut self,
        now: Instant,
        id: StreamId,
        result: Result<Option<StreamMessage>, StreamFailure>,
    ) {
        let Some(pending) = self.streams.remove(&id) else {
            return;
        };
        match pending {
            PendingStream::Reliable => {
                let result = result.map(|_| ()).map_err(|e| e.to_string());
                self.emit(Event::ReliableSent { id, result });
            }
            PendingStream::FallbackPing { seq } => {
                if let Ok(Some(StreamMessage::Ack(ack))) = result {
                    if ack.seq_no == seq && self.probe.as_ref().is_some_and(|p| p.seq == seq) {
                        self.acks.remove(&seq);
                        self.probe_succeeded(now, None);
                    }
                }
            }
            PendingStream::PushPull {
                join,
                join_id,
                addr,
            } => {
                let outcome = match result {
                    Ok(Some(StreamMessage::PushPull(pp))) => {
                        self.merge_remote_state(now, join, pp.states, &pp.user_state)
                    }
                    Ok(Some(StreamMessage::Err(e))) => Err(format!("remote error: {}", e.error)),
                    Ok(_) => Err("unexpected reply to push/pull".to_string()),
                    Err(e) => Err(e.to_string()),
                };
                if let Some(jid) = join_id {
                    self.join_progress(now, jid, addr, outcome);
                }
            }
        }
    }

    // ----- commands ------------------------------------------------------

    /// Joins a cluster: a push/pull with every address given. Finishes with
    /// [`Event::JoinFinished`].
    pub fn join(&mut self, now: Instant, addrs: &[SocketAddr]) -> JoinId {
        let id = JoinId(self.next_id());
        if addrs.is_empty() {
            self.emit(Event::JoinFinished {
                id,
                succeeded: 0,
                errors: Vec::new(),
            });
            return id;
        }
        self.joins.insert(
            id,
            JoinProgress {
                pending: addrs.len(),
                ..Default::default()
            },
        );
        for &addr in addrs {
            self.start_push_pull(now, addr, true, Some(id));
        }
        id
    }

    /// Leaves the cluster gracefully: gossips that we left. Returns the
    /// broadcast to wait for ([`Event::BroadcastFinished`]), or `None` when
    /// there is nobody to tell or we already left.
    pub fn leave(&mut self, now: Instant) -> Option<BroadcastId> {
        if self.leaving {
            return None;
        }
        self.leaving = true;
        let token = BroadcastId(self.next_id());
        let d = Dead {
            incarnation: self.incarnation,
            node: self.name.clone(),
            from: self.name.clone(),
        };
        self.dead_node(now, d, Some(token));
        self.any_alive().then_some(token)
    }

    /// Changes our metadata and gossips it with a new incarnation. Returns
    /// the broadcast to wait for, or `None` when there is nobody to tell.
    pub fn update_meta(
        &mut self,
        now: Instant,
        meta: Vec<u8>,
    ) -> Result<Option<BroadcastId>, ConfigError> {
        if meta.len() > META_MAX_SIZE {
            return Err(ConfigError::MetaTooLarge(meta.len()));
        }
        let token = BroadcastId(self.next_id());
        let inc = self.next_incarnation();
        let alive = self.local_alive(inc, meta);
        self.alive_node(now, alive, Some(token), true);
        Ok(self.any_alive().then_some(token))
    }

    /// Pings `addr` (expecting the node called `name`, or anyone if empty)
    /// and reports the round-trip time with [`Event::PingResult`] within
    /// `probe_timeout`.
    pub fn ping(&mut self, now: Instant, name: &str, addr: SocketAddr) -> PingId {
        let id = PingId(self.next_id());
        let seq = self.next_seq();
        let ping = self.make_ping(seq, name);
        self.acks
            .insert(seq, AckHandler::UserPing { id, sent: now });
        self.timers
            .schedule(TimerKey::AckDeadline(seq), now + self.config.probe_timeout);
        self.send_msg(addr, &Message::Ping(ping));
        id
    }

    /// Largest payload [`Node::send_packet`] accepts.
    pub fn max_packet_payload(&self) -> usize {
        // No CRC header: like Go's, a user packet goes without one.
        self.config.udp_buffer_size
            - USER_MSG_OVERHEAD
            - self.label_overhead()
            - self.encryption_overhead()
    }

    /// Sends a best-effort user message in one packet. Errors if it does
    /// not fit the packet budget.
    pub fn send_packet(
        &mut self,
        _now: Instant,
        to: SocketAddr,
        data: &[u8],
    ) -> Result<(), SendError> {
        let limit = self.max_packet_payload();
        if data.len() > limit {
            return Err(SendError::TooLarge {
                size: data.len(),
                limit,
            });
        }
        let mut msg = Vec::with_capacity(data.len() + 1);
        wire::encode_message(&Message::User(data.to_vec()), &mut msg);
        self.send_raw(to, false, msg);
        Ok(())
    }

    /// Sends a user message over a stream. Finishes with
    /// [`Event::ReliableSent`].
    pub fn send_reliable(
        &mut self,
        _now: Instant,
        to: SocketAddr,
        data: Vec<u8>,
    ) -> Result<StreamId, SendError> {
        if data.len() > MAX_RELIABLE_MESSAGE {
            return Err(SendError::TooLarge {
                size: data.len(),
                limit: MAX_RELIABLE_MESSAGE,
            });
        }
        let bytes = self.encode_stream_dial(&StreamMessage::User(data));
        let id = self.dial(to, bytes, false, self.config.tcp_timeout);
        self.streams.insert(id, PendingStream::Reliable);
        Ok(id)
    }

    // ----- probing -------------------------------------------------------

    fn probe(&mut self, now: Instant) {
        let mut checked = 0;
        loop {
            if checked >= self.members.len() {
                return;
            }
            if self.probe_index >= self.members.len() {
                self.reset_members(now);
                self.probe_index = 0;
                checked += 1;
                continue;
            }
            let m = self.members.at(self.probe_index).expect("index checked");
            self.probe_index += 1;
            if m.name == self.name || m.state.is_dead_or_left() {
                checked += 1;
                continue;
            }
            let target = m.name.clone();
            self.probe_node(now, &target);
            return;
        }
    }

    fn reset_members(&mut self, now: Instant) {
        let mut rng = self.rng.clone();
        let reaped = self.members.reap_and_shuffle(
            now,
            self.config.gossip_to_the_dead_time,
            &self.name,
            |s| shuffle(&mut rng, s),
        );
        self.rng = rng;
        for m in reaped {
            self.suspicions.remove(m.name.as_str());
            self.timers
                .cancel(&TimerKey::Suspicion(m.name.as_str().to_owned()));
            self.membership_version += 1;
        }
    }

    fn probe_node(&mut self, now: Instant, target: &str) {
        let Some(m) = self.members.get(target) else {
            return;
        };
        let (addr, state, incarnation) = (m.addr(), m.state, m.incarnation);
        self.stats.probes += 1;
        let interval = self.awareness.scale_timeout(self.config.probe_interval);
        let seq = self.next_seq();
        let ping = self.make_ping(seq, target);
        if state == MemberState::Alive || !self.config.lifeguard_suspect_piggyback {
            self.send_msg(addr, &Message::Ping(ping));
        } else {
            // Tell a suspect node it is suspected, so it can refute at once.
            let suspect = Suspect {
                incarnation,
                node: target.to_string(),
                from: self.name.clone(),
            };
            let parts = [
                encode(&Message::Ping(ping)),
                encode(&Message::Suspect(suspect)),
            ];
            for compound in wire::encode_compound(&parts).unwrap_or_default() {
                self.send_raw(addr, false, compound);
            }
        }
        self.probe = Some(ProbeInFlight {
            seq,
            target: target.to_string(),
            incarnation,
            sent: now,
            expected_nacks: 0,
            nacks: 0,
        });
        self.acks.insert(seq, AckHandler::Probe);
        self.timers
            .schedule(TimerKey::ProbeTimeout(seq), now + self.config.probe_timeout);
        self.timers
            .schedule(TimerKey::AckDeadline(seq), now + interval);
    }

    /// The direct ping went unanswered: ask others, and try TCP.
    fn probe_indirect(&mut self, now: Instant, seq: u32) {
        let Some(probe) = self.probe.as_ref().filter(|p| p.seq == seq) else {
            return;
        };
        let target = probe.target.clone();
        let Some(t) = self.members.get(&target) else {
            return;
        };
        let (t_addr, t_raw, t_port, t_pmax) =
            (t.addr(), t.raw_addr.to_vec(), t.port, t.protocol_max());
        let name = self.name.clone();
        let helpers = self.k_random_members(self.config.indirect_checks, |m| {
            m.name == name || m.name == target || m.state != MemberState::Alive
        });
        let mut expected_nacks = 0;
        for (peer_addr, peer_pmax) in helpers {
            let nack = self.config.lifeguard_nacks && peer_pmax >= 4;
            if nack {
                expected_nacks += 1;
            }
            let ind = IndirectPingReq {
                seq_no: seq,
                target: t_raw.clone(),
                port: t_port,
                node: target.clone(),
                nack,
                source_addr: self.raw_addr.to_vec(),
                source_port: self.advertise.port(),
                source_node: self.name.clone(),
            };
            self.send_msg(peer_addr, &Message::IndirectPing(ind));
        }
        if let Some(p) = self.probe.as_mut() {
            p.expected_nacks = expected_nacks;
        }
        if !self.config.disable_tcp_pings && t_pmax >= 3 {
            let deadline = self
                .timers
                .deadline_of(&TimerKey::AckDeadline(seq))
                .unwrap_or(now);
            let ping = self.make_ping(seq, &target);
            let bytes = self.encode_stream_dial(&StreamMessage::Ping(ping));
            let timeout = deadline - now;
            if !timeout.is_zero() {
                let id = self.dial(t_addr, bytes, true, timeout);
                self.streams.insert(id, PendingStream::FallbackPing { seq });
            }
        }
    }

    fn probe_succeeded(&mut self, now: Instant, payload: Option<Vec<u8>>) {
        let Some(probe) = self.probe.take() else {
            return;
        };
        self.timers.cancel(&TimerKey::ProbeTimeout(probe.seq));
        self.timers.cancel(&TimerKey::AckDeadline(probe.seq));
        self.apply_awareness(-1);
        if let (Some(payload), Some(m)) = (payload, self.members.get(&probe.target)) {
            let node = m.info();
            self.emit(Event::PingComplete {
                node,
                rtt: now - probe.sent,
                payload,
            });
        }
        self.probe_finished(now);
    }

    fn probe_failed(&mut self, now: Instant) {
        let Some(probe) = self.probe.take() else {
            return;
        };
        self.timers.cancel(&TimerKey::ProbeTimeout(probe.seq));
        self.stats.probes_failed += 1;
        let delta = if probe.expected_nacks > 0 {
            probe.expected_nacks.saturating_sub(probe.nacks) as i32
        } else {
            1
        };
        self.apply_awareness(delta);
        let s = Suspect {
            incarnation: probe.incarnation,
            node: probe.target,
            from: self.name.clone(),
        };
        self.suspect_node(now, s);
        self.probe_finished(now);
    }

    fn probe_finished(&mut self, now: Instant) {
        if core::mem::take(&mut self.probe_tick_pending) {
            self.probe(now);
        }
    }

    fn ack_expired(&mut self, now: Instant, seq: u32) {
        match self.acks.remove(&seq) {
            Some(AckHandler::Probe) if self.probe.as_ref().is_some_and(|p| p.seq == seq) => {
                self.probe_failed(now);
            }
            Some(AckHandler::Relay {
                origin,
                origin_seq,
                nack: true,
            }) => {
                let nack = Message::Nack(NackResp { seq_no: origin_seq });
                self.send_msg(origin, &nack);
            }
            Some(AckHandler::UserPing { id, .. }) => self.emit(Event::PingResult { id, rtt: None }),
            _ => {}
        }
    }

    // ----- message handling ---------------------------------------------

    fn handle_message(&mut self, now: Instant, from: SocketAddr, msg: Message) {
        match msg {
            Message::Ping(p) => self.handle_ping(from, p),
            Message::IndirectPing(ind) => self.handle_indirect_ping(now, from, ind),
            Message::Ack(ack) => self.handle_ack(now, ack),
            Message::Nack(nack) => {
                if let Some(p) = self.probe.as_mut().filter(|p| p.seq == nack.seq_no) {
                    p.nacks = (p.nacks + 1).min(p.expected_nacks.max(1));
                }
            }
            Message::Suspect(s) => self.suspect_node(now, s),
            Message::Alive(a) => self.alive_node(now, a, None, false),
            Message::Dead(d) => self.dead_node(now, d, None),
            Message::User(data) => self.emit(Event::UserMessage(data)),
            Message::Err(_) => self.stats.messages_ignored += 1,
        }
    }

    fn handle_ping(&mut self, from: SocketAddr, p: Ping) {
        if !p.node.is_empty() && p.node != self.name {
            self.stats.messages_ignored += 1;
            return;
        }
        let reply_to = self.reply_addr(&p.source_addr, p.source_port, from);
        let ack = AckResp {
            seq_no: p.seq_no,
            payload: self.hooks.ack_payload(),
        };
        self.send_msg(reply_to, &Message::Ack(ack));
    }

    fn handle_indirect_ping(&mut self, now: Instant, from: SocketAddr, ind: IndirectPingReq) {
        let Some(target) = socket_addr_from_wire(&ind.target, ind.port) else {
            self.stats.messages_ignored += 1;
            return;
        };
        let origin = self.reply_addr(&ind.source_addr, ind.source_port, from);
        let local_seq = self.next_seq();
        let ping = self.make_ping(local_seq, &ind.node);
        self.acks.insert(
            local_seq,
            AckHandler::Relay {
                origin,
                origin_seq: ind.seq_no,
                nack: ind.nack,
            },
        );
        self.timers.schedule(
            TimerKey::AckDeadline(local_seq),
            now + self.config.probe_timeout,
        );
        self.send_msg(target, &Message::Ping(ping));
    }

    fn handle_ack(&mut self, now: Instant, ack: AckResp) {
        let Some(handler) = self.acks.remove(&ack.seq_no) else {
            return;
        };
        self.timers.cancel(&TimerKey::AckDeadline(ack.seq_no));
        match handler {
            AckHandler::Probe => {
                if self.probe.as_ref().is_some_and(|p| p.seq == ack.seq_no) {
                    self.probe_succeeded(now, Some(ack.payload));
                }
            }
            AckHandler::Relay {
                origin, origin_seq, ..
            } => {
                let reply = AckResp {
                    seq_no: origin_seq,
                    payload: Vec::new(),
                };
                self.send_msg(origin, &Message::Ack(reply));
            }
            AckHandler::UserPing { id, sent } => {
                self.emit(Event::PingResult {
                    id,
                    rtt: Some(now - sent),
                });
            }
        }
    }

    fn reply_addr(&self, raw: &[u8], port: u16, from: SocketAddr) -> SocketAddr {
        if !raw.is_empty() && port > 0 {
            socket_addr_from_wire(raw, port).unwrap_or(from)
        } else {
            from
        }
    }

    // ----- state transitions (Go: aliveNode, suspectNode, deadNode) --------

    fn alive_node(
        &mut self,
        now: Instant,
        mut a: Alive,
        notify: Option<BroadcastId>,
        bootstrap: bool,
    ) {
        let is_local = a.node == self.name;
        if self.leaving && is_local {
            return;
        }
        let (pmin, pmax) = (a.vsn[VSN_PROTOCOL_MIN], a.vsn[VSN_PROTOCOL_MAX]);
        if pmin == 0 || pmax == 0 || pmin > pmax {
            self.stats.messages_ignored += 1;
            return;
        }
        let (Some(addr), Some(raw_addr)) = (
            socket_addr_from_wire(&a.addr, a.port),
            RawAddr::new(&a.addr),
        ) else {
            self.stats.messages_ignored += 1;
            return;
        };
        // Go `IPAllowed` on new nodes and address changes. A known node
        // keeps an address that passed this check (the list is fixed), so
        // checking every alive is the same.
        if !is_local && !self.config.ip_allowed(addr.ip()) {
            self.stats.alives_denied += 1;
            return;
        }
        if !is_local {
            // The hook sees every alive, as in Go. Lend it the name and
            // metadata rather than copying them.
            let info = MemberInfo {
                name: core::mem::take(&mut a.node),
                addr,
                meta: core::mem::take(&mut a.meta),
                state: MemberState::Alive,
                incarnation: a.incarnation,
                vsn: a.vsn,
            };
            let allowed = self.hooks.allow_alive(&info).is_ok();
            a.node = info.name;
            a.meta = info.meta;
            if !allowed {
                self.stats.messages_ignored += 1;
                return;
            }
        }

        let mut updates_node = false;
        let pos = match self.members.position(&a.node) {
            None => {
                let n = self.members.len();
                let offset = if n == 0 {
                    0
                } else {
                    (self.rng.next_u64() % n as u64) as usize
                };
                let member = Member {
                    name: Name::new(&a.node),
                    raw_addr,
                    port: a.port,
                    meta: a.meta.as_slice().into(),
                    incarnation: 0,
                    state: MemberState::Dead,
                    state_change: now,
                    vsn: a.vsn,
                };
                self.members.insert_at(member, offset.min(n));
                self.membership_version += 1;
                offset.min(n)
            }
            Some(i) => i,
        };
        let Some(m) = self.members.at(pos) else {
            return; // unreachable: present
        };
        if m.raw_addr != raw_addr || m.port != a.port {
            {
                let reclaim = &self.config.dead_node_reclaim_time;
                let can_reclaim = !reclaim.is_zero() && now - m.state_change > *reclaim;
                if m.state == MemberState::Left || (m.state == MemberState::Dead && can_reclaim) {
                    updates_node = true;
                } else {
                    let existing = m.info();
                    let other = MemberInfo {
                        name: a.node,
                        addr,
                        meta: a.meta,
                        state: MemberState::Alive,
                        incarnation: a.incarnation,
                        vsn: a.vsn,
                    };
                    self.emit(Event::Conflict { existing, other });
                    return;
                }
            }
        }

        if a.incarnation <= m.incarnation && !is_local && !updates_node {
            return;
        }
        if a.incarnation < m.incarnation && is_local {
            return;
        }
        let (old_state, old_inc, old_vsn) = (m.state, m.incarnation, m.vsn);
        // Share the table's name with the broadcast key.
        let key = m.name.clone();
        let old_meta_differs = *m.meta != *a.meta;
        self.cancel_suspicion(&a.node);

        if !bootstrap && is_local {
            if a.incarnation == old_inc && !old_meta_differs && a.vsn == old_vsn {
                return;
            }
            self.refute(a.incarnation);
            return;
        }
        let msg = Message::Alive(a);
        self.queue_broadcast(key, &msg, notify);
        let Message::Alive(a) = msg else {
            return; // unreachable: built just above
        };
        let Some(m) = self.members.at_mut(pos) else {
            return; // unreachable: present
        };
        m.vsn = a.vsn;
        m.incarnation = a.incarnation;
        if old_meta_differs {
            m.meta = a.meta.into_boxed_slice();
        }
        m.raw_addr = raw_addr;
        m.port = a.port;
        if m.state != MemberState::Alive {
            m.state = MemberState::Alive;
            m.state_change = now;
        }
        self.membership_version += 1;
        if old_state.is_dead_or_left() {
            let info = m.info();
            self.emit(Event::Join(info));
        } else if old_meta_differs {
            let info = m.info();
            self.emit(Event::Update(info));
        }
    }

    fn suspect_node(&mut self, now: Instant, s: Suspect) {
        let Some(m) = self.members.get(&s.node) else {
            return;
        };
        if s.incarnation < m.incarnation {
            if s.node == self.name {
                self.reassert_alive();
            }
            return;
        }
        if let Some(susp) = self.suspicions.get_mut(&s.node) {
            if susp.confirm(&s.from) {
                let deadline = susp.deadline();
                self.timers
                    .schedule(TimerKey::Suspicion(s.node.clone()), deadline);
                self.queue_broadcast(Name::new(&s.node), &Message::Suspect(s), None);
            }
            return;
        }
        if m.state != MemberState::Alive {
            return;
        }
        if s.node == self.name {
            self.refute(s.incarnation);
            return;
        }
        self.queue_broadcast(m.name.clone(), &Message::Suspect(s.clone()), None);

        let n = self.members.len();
        let m = self.members.get_mut(&s.node).expect("present");
        m.incarnation = s.incarnation;
        m.state = MemberState::Suspect;
        m.state_change = now;
        let info = m.info();
        self.membership_version += 1;

        let mult = self.config.suspicion_mult;
        let k = suspicion_k(mult, n);
        let min = suspicion_timeout(mult, n, self.config.probe_interval);
        let max = min * self.config.suspicion_max_timeout_mult;
        let susp = Suspicion::new(&s.from, k, min, max, now);
        self.timers
            .schedule(TimerKey::Suspicion(s.node.clone()), susp.deadline());
        self.suspicions.insert(s.node.clone(), susp);
        self.emit(Event::Suspect {
            member: info,
            from: s.from,
        });
    }

    fn suspicion_expired(&mut self, now: Instant, name: String) {
        let Some(susp) = self.suspicions.remove(&name) else {
            return;
        };
        if self.config.lifeguard_health_scaled_suspicion {
            // A node that knows itself to be unhealthy gives the suspect's
            // refutation longer to get through its own backlog.
            let deadline = susp.start() + self.awareness.scale_timeout(susp.timeout());
            if now < deadline {
                self.timers
                    .schedule(TimerKey::Suspicion(name.clone()), deadline);
                self.suspicions.insert(name, susp);
                return;
            }
        }
        let Some(m) = self.members.get(&name) else {
            return;
        };
        if m.state != MemberState::Suspect {
            return;
        }
        let d = Dead {
            incarnation: m.incarnation,
            node: name,
            from: self.name.clone(),
        };
        self.dead_node(now, d, None);
    }

    fn dead_node(&mut self, now: Instant, d: Dead, notify: Option<BroadcastId>) {
        let Some(m) = self.members.get(&d.node) else {
            return;
        };
        if d.incarnation < m.incarnation {
            if d.node == self.name && !self.leaving {
                self.reassert_alive();
            }
            return;
        }
        self.cancel_suspicion(&d.node);
        let m = self.members.get(&d.node).expect("present");
        if m.state.is_dead_or_left() {
            return;
        }
        if d.node == self.name && !self.leaving {
            self.refute(d.incarnation);
            return;
        }
        self.queue_broadcast(Name::new(&d.node), &Message::Dead(d.clone()), notify);
        let m = self.members.get_mut(&d.node).expect("present");
        m.incarnation = d.incarnation;
        m.state = if d.node == d.from {
            MemberState::Left
        } else {
            MemberState::Dead
        };
        m.state_change = now;
        let info = m.info();
        self.membership_version += 1;
        if info.state == MemberState::Dead {
            self.note_failed(now, &info.name, info.addr);
        } else {
            self.forget_failed(&info.name);
        }
        self.emit(Event::Leave(info));
    }

    /// Someone accused us at `accused`: outbid it and say we are alive.
    fn refute(&mut self, accused: u32) {
        let mut inc = self.next_incarnation();
        if accused >= inc {
            // Saturate instead of wrapping (a Go defect): at u32::MAX we can
            // no longer outbid, but we never fall back to 0.
            inc = accused.saturating_add(1);
            self.incarnation = inc;
        }
        self.apply_awareness(1);
        let me = self
            .members
            .get_mut(&self.name)
            .expect("local node present");
        me.incarnation = inc;
        let meta = me.meta.to_vec();
        self.membership_version += 1;
        let alive = self.local_alive(inc, meta);
        self.queue_broadcast(Name::new(&self.name), &Message::Alive(alive), None);
    }

    /// Someone still accuses us at an incarnation we already refuted: our
    /// refutation missed them (say, a partition ate it). Go ignores such
    /// stale accusations, and the accuser then declares us dead when its
    /// timer runs out, a split only a push/pull repairs. We gossip our
    /// current alive again instead (no new incarnation, nothing new on the
    /// wire), unless one is already queued.
    fn reassert_alive(&mut self) {
        if self.leaving || self.broadcasts.contains_key(&self.name) {
            return;
        }
        let me = self.members.get(&self.name).expect("local node present");
        let alive = self.local_alive(me.incarnation, me.meta.to_vec());
        self.queue_broadcast(Name::new(&self.name), &Message::Alive(alive), None);
    }

    fn cancel_suspicion(&mut self, name: &str) {
        if self.suspicions.remove(name).is_some() {
            self.timers.cancel(&TimerKey::Suspicion(name.to_string()));
        }
    }

    // ----- push/pull -----------------------------------------------------

    fn periodic_push_pull(&mut self, pulls_only: bool) {
        let name = self.name.clone();
        let peers = self.k_random_members(1, |m| m.name == name || m.state != MemberState::Alive);
        if let Some(&(addr, _)) = peers.first() {
            let pp = self.local_push_pull(false, pulls_only);
            self.dial_push_pull(addr, pp, false, None);
        }
    }

    fn start_push_pull(
        &mut self,
        _now: Instant,
        addr: SocketAddr,
        join: bool,
        join_id: Option<JoinId>,
    ) {
        let pp = self.local_push_pull(join, false);
        self.dial_push_pull(addr, pp, join, join_id);
    }

    fn dial_push_pull(
        &mut self,
        addr: SocketAddr,
        pp: PushPull,
        join: bool,
        join_id: Option<JoinId>,
    ) {
        let bytes = self.encode_stream_dial(&StreamMessage::PushPull(pp));
        let id = self.dial(addr, bytes, true, self.config.tcp_timeout);
        self.streams.insert(
            id,
            PendingStream::PushPull {
                join,
                join_id,
                addr,
            },
        );
    }

    /// Our side of a push/pull: every member, or with `only_self` just our
    /// own entry. The remote merges whatever entries it gets and answers
    /// with its whole state either way, so a push of one entry still pulls
    /// everything, for half the bytes.
    fn local_push_pull(&mut self, join: bool, only_self: bool) -> PushPull {
        let name = &self.name;
        let states = self
            .members
            .iter()
            .filter(|m| !only_self || m.name == *name)
            .map(|m| PushNodeState {
                name: m.name.to_string(),
                addr: m.raw_addr.to_vec(),
                port: m.port,
                meta: m.meta.to_vec(),
                incarnation: m.incarnation,
                state: m.state.to_wire(),
                vsn: m.vsn,
            })
            .collect();
        let user_state = self.hooks.local_state(join);
        PushPull {
            join,
            states,
            user_state,
        }
    }

    /// Lets the merge hook veto a remote state (Go `NotifyMerge`).
    fn vet_merge(&mut self, states: &[PushNodeState]) -> Result<(), String> {
        let infos: Vec<MemberInfo> = states
            .iter()
            .filter_map(|s| {
                Some(MemberInfo {
                    name: s.name.clone(),
                    addr: socket_addr_from_wire(&s.addr, s.port)?,
                    meta: s.meta.clone(),
                    state: match s.state {
                        WireState::Alive => MemberState::Alive,
                        WireState::Suspect => MemberState::Suspect,
                        WireState::Dead => MemberState::Dead,
                        WireState::Left => MemberState::Left,
                    },
                    incarnation: s.incarnation,
                    vsn: s.vsn,
                })
            })
            .collect();
        self.hooks.allow_merge(&infos)
    }

    fn merge_remote_state(
        &mut self,
        now: Instant,
        join: bool,
        states: Vec<PushNodeState>,
        user_state: &[u8],
    ) -> Result<(), String> {
        self.verify_protocol(&states)?;
        if self.hooks.vets_merges() {
            self.vet_merge(&states)?;
        }
        // A joining node learns the whole cluster at once: size its table
        // for it (with a little room for the next joins) rather than
        // doubling its way there.
        if states.len() > self.members.len() {
            let more = states.len() - self.members.len();
            self.members.reserve(more + states.len() / 32 + 8);
        }
        for s in states {
            match s.state {
                WireState::Alive => {
                    let a = Alive {
                        incarnation: s.incarnation,
                        node: s.name,
                        addr: s.addr,
                        port: s.port,
                        meta: s.meta,
                        vsn: s.vsn,
                    };
                    self.alive_node(now, a, None, false);
                }
                WireState::Left => {
                    let d = Dead {
                        incarnation: s.incarnation,
                        from: s.name.clone(),
                        node: s.name,
                    };
                    self.dead_node(now, d, None);
                }
                WireState::Dead | WireState::Suspect => {
                    let sus = Suspect {
                        incarnation: s.incarnation,
                        node: s.name,
                        from: self.name.clone(),
                    };
                    self.suspect_node(now, sus);
                }
            }
        }
        if !user_state.is_empty() {
            self.hooks.merge_remote_state(user_state, join);
        }
        Ok(())
    }

    /// Go's `verifyProtocol`: every entry's current versions must lie in
    /// the range all alive nodes (theirs and ours) support.
    fn verify_protocol(&self, remote: &[PushNodeState]) -> Result<(), String> {
        let (mut max_pmin, mut min_pmax, mut max_dmin, mut min_dmax) = (0u8, u8::MAX, 0u8, u8::MAX);
        let alive_vsns = remote
            .iter()
            .filter(|r| r.state == WireState::Alive)
            .map(|r| r.vsn)
            .chain(
                self.members
                    .iter()
                    .filter(|m| m.state == MemberState::Alive)
                    .map(|m| m.vsn),
            );
        for v in alive_vsns {
            max_pmin = max_pmin.max(v[VSN_PROTOCOL_MIN]);
            min_pmax = min_pmax.min(v[VSN_PROTOCOL_MAX]);
            max_dmin = max_dmin.max(v[VSN_DELEGATE_MIN]);
            min_dmax = min_dmax.min(v[VSN_DELEGATE_MAX]);
        }
        let all = remote
            .iter()
            .map(|r| (r.name.as_str(), r.vsn))
            .chain(self.members.iter().map(|m| (m.name.as_str(), m.vsn)));
        for (name, v) in all {
            let (p, d) = (v[VSN_PROTOCOL_CUR], v[VSN_DELEGATE_CUR]);
            if p < max_pmin || p > min_pmax {
                return Err(format!(
                    "node '{name}' protocol version ({p}) is incompatible: [{max_pmin}, {min_pmax}]"
                ));
            }
            if d < max_dmin || d > min_dmax {
                return Err(format!(
                    "node '{name}' delegate protocol version ({d}) is incompatible: [{max_dmin}, {min_dmax}]"
                ));
            }
        }
        Ok(())
    }

    fn join_progress(
        &mut self,
        now: Instant,
        id: JoinId,
        addr: SocketAddr,
        outcome: Result<(), String>,
    ) {
        if outcome.is_ok() {
            self.bring_push_pull_forward(now);
        }
        let Some(p) = self.joins.get_mut(&id) else {
            return;
        };
        match outcome {
            Ok(()) => p.succeeded += 1,
            Err(e) => p.errors.push((addr, e)),
        }
        p.pending -= 1;
        if p.pending == 0 {
            let p = self.joins.remove(&id).expect("present");
            self.emit(Event::JoinFinished {
                id,
                succeeded: p.succeeded,
                errors: p.errors,
            });
        }
    }

    /// After a join: the next periodic push/pull comes within one to two
    /// probe intervals, with a random member, instead of up to two
    /// push/pull intervals later. In a join storm the seed tells each
    /// joiner only the members it knew at that moment, and gossip of the
    /// later ones can leave early joiners unaware of some for a long time
    /// (Go's behaviour); one early push/pull fixes that. It is the normal
    /// periodic push/pull moved earlier, so the count of push/pulls over
    /// time is unchanged. It exists to pull, so it pushes only our own
    /// entry: the remote still answers with everything it knows.
    fn bring_push_pull_forward(&mut self, now: Instant) {
        if self.config.push_pull_interval.is_zero() {
            return;
        }
        let probe = self.config.probe_interval;
        let at = now + probe + self.stagger(probe);
        match self.timers.deadline_of(&TimerKey::PushPullTick) {
            Some(d) if d <= at => {}
            _ => {
                self.timers.schedule(TimerKey::PushPullTick, at);
                self.push_pull_pulls_only = true;
            }
        }
    }

    // ----- gossip --------------------------------------------------------

    /// One gossip round. Returns whether there is a backlog: the last
    /// packet was more than half full and broadcasts are still queued.
    fn gossip(&mut self, now: Instant) -> bool {
        let name = &self.name;
        let dead_time = self.config.gossip_to_the_dead_time;
        let targets = k_random_members(
            &mut self.rng,
            &self.members,
            self.config.gossip_nodes,
            |m| {
                m.name == *name
                    || match m.state {
                        MemberState::Alive | MemberState::Suspect => false,
                        MemberState::Dead => now - m.state_change > dead_time,
                        MemberState::Left => true,
                    }
            },
        );
        let avail = self.config.udp_buffer_size
            - COMPOUND_HEADER_OVERHEAD
            - self.label_overhead()
            - CRC_OVERHEAD
            - self.encryption_overhead();
        let budget = self.packed_budget(avail);
        let mut full = false;
        for (addr, pmax) in targets {
            let msgs = self.get_broadcasts(COMPOUND_PART_OVERHEAD, budget);
            if msgs.is_empty() {
                return false;
            }
            let used: usize = msgs.iter().map(|m| m.len() + COMPOUND_PART_OVERHEAD).sum();
            full = used > budget / 2;
            // Go adds a CRC only to gossip (the one send that knows its
            // recipient's protocol version); so do we.
            self.send_parts(addr, pmax >= 5, &msgs);
        }
        full && !self.broadcasts.is_empty()
    }

    /// Broadcasts to piggyback: ours first, then the application's in the
    /// space left.
    fn get_broadcasts(&mut self, overhead: usize, limit: usize) -> Vec<Arc<[u8]>> {
        let n = self.members.len();
        let (mut msgs, finished) =
            self.broadcasts
                .get_broadcasts(overhead, limit, n, self.config.retransmit_mult);
        for token in finished {
            self.emit(Event::BroadcastFinished(BroadcastId(token)));
        }
        let used: usize = msgs.iter().map(|m| m.len() + overhead).sum();
        let avail = limit.saturating_sub(used);
        if avail > overhead + USER_MSG_OVERHEAD {
            for user in self.hooks.broadcasts(overhead + USER_MSG_OVERHEAD, avail) {
                let mut buf = Vec::with_capacity(user.len() + 1);
                wire::encode_message(&Message::User(user), &mut buf);
                msgs.push(buf.into());
            }
        }
        msgs
    }

    fn queue_broadcast(&mut self, key: Name, msg: &Message, notify: Option<BroadcastId>) {
        let b = Broadcast {
            key: Some(key),
            payload: encode(msg).into(),
            notify: notify.map(|b| b.0),
        };
        for token in self.broadcasts.queue(b) {
            self.emit(Event::BroadcastFinished(BroadcastId(token)));
        }
        if let Some(at) = self.gossip_parked.take() {
            self.timers.schedule(TimerKey::GossipTick, at);
            self.gossip_resumed = true;
        }
    }

    // ----- sending -------------------------------------------------------

    /// Sends a message, piggybacking queued broadcasts when they fit.
    ///
    /// No CRC: Go's `sendMsg` adds none (it does not look the recipient
    /// up), and receivers accept packets without one.
    fn send_msg(&mut self, to: SocketAddr, msg: &Message) {
        let msg = encode(msg);
        let packet = self.config.udp_buffer_size.saturating_sub(
            COMPOUND_HEADER_OVERHEAD + self.label_overhead() + self.encryption_overhead(),
        );
        let avail = self
            .packed_budget(packet)
            .saturating_sub(msg.len() + COMPOUND_PART_OVERHEAD);
        let extra = self.get_broadcasts(COMPOUND_PART_OVERHEAD, avail);
        if extra.is_empty() {
            self.send_raw(to, false, msg);
            return;
        }
        let mut parts: Vec<Arc<[u8]>> = Vec::with_capacity(extra.len() + 1);
        parts.push(msg.into());
        parts.extend(extra);
        self.send_parts(to, false, &parts);
    }

    /// How many bytes of encoded messages to put in a packet whose framed
    /// size must stay within `limit`. Without compression that is `limit`
    /// (Go's rule). With it, Go still fills only `limit` and then
    /// compresses: a packet of gossip goes out at a third of the size it
    /// could have. We fill by the expected compressed size instead
    /// (the recent ratio, with an eighth to spare, at most
    /// [`MAX_PACKING_FACTOR`] times `limit`): fewer packets, and fewer
    /// bytes, because LZW does better on more input. Receivers read
    /// datagrams of up to 64 KiB and decompress without a small bound, Go
    /// included; [`Node::send_parts`] splits a packet that still comes
    /// out too large.
    fn packed_budget(&self, limit: usize) -> usize {
        if !self.config.enable_compression {
            return limit;
        }
        let ratio = self.compression_ratio.max(RATIO_ONE / MAX_PACKING_FACTOR);
        let expected = limit.saturating_mul(RATIO_ONE) / ratio;
        let spare = expected / 8;
        (expected - spare)
            .max(limit)
            .min(limit.saturating_mul(MAX_PACKING_FACTOR))
    }

    /// Sends encoded messages to one address: as they are when there is
    /// one, else as compound messages. A packet that comes out of framing
    /// larger than `udp_buffer_size` is split in two, so no datagram
    /// exceeds it whatever the compression did.
    fn send_parts(&mut self, to: SocketAddr, crc: bool, parts: &[Arc<[u8]>]) {
        match parts {
            [] => {}
            [one] => self.send_raw(to, crc, one.to_vec()),
            _ if parts.len() > wire::MAX_COMPOUND_PARTS => {
                for chunk in parts.chunks(wire::MAX_COMPOUND_PARTS) {
                    self.send_parts(to, crc, chunk);
                }
            }
            _ => {
                let mut compound = Vec::new();
                if wire::encode_compound_into(parts, &mut compound).is_err() {
                    // Every part came from our own encoder and fits a packet.
                    return;
                }
                let raw_len = compound.len();
                let Some(data) = self.frame(crc, &compound) else {
                    return;
                };
                if data.len() > self.config.udp_buffer_size {
                    let (a, b) = parts.split_at(parts.len() / 2);
                    self.send_parts(to, crc, a);
                    self.send_parts(to, crc, b);
                    return;
                }
                self.learn_compression(raw_len, data.len());
                self.push_packet(to, data);
            }
        }
    }

    /// Folds one packet's framed/unframed size into the running ratio that
    /// [`Node::packed_budget`] packs by. Small packets say little about how
    /// well a full one compresses, so only those of a few hundred bytes
    /// and more count.
    fn learn_compression(&mut self, raw_len: usize, framed_len: usize) {
        if !self.config.enable_compression || raw_len < 512 {
            return;
        }
        let sample = (framed_len * RATIO_ONE / raw_len).min(RATIO_ONE);
        self.compression_ratio = (3 * self.compression_ratio + sample) / 4;
    }

    /// Frames (compression, CRC, encryption, label) and emits one packet.
    fn send_raw(&mut self, to: SocketAddr, crc: bool, msg: Vec<u8>) {
        if let Some(data) = self.frame(crc, &msg) {
            self.push_packet(to, data);
        }
    }

    /// Frames an encoded message for the wire: compression, CRC,
    /// encryption, label.
    fn frame(&mut self, crc: bool, msg: &[u8]) -> Option<Vec<u8>> {
        let mut data = Vec::with_capacity(msg.len() + 16);
        let seal = self.seal_params();
        let opts = PacketOptions {
            compress: self.config.enable_compression,
            crc,
            label: &self.config.label,
            encryption: self.encryption(seal),
        };
        // Only a label over 255 bytes fails, and config validation rules
        // that out.
        wire::frame_packet(msg, &opts, &mut data).ok()?;
        Some(data)
    }

    fn push_packet(&mut self, to: SocketAddr, data: Vec<u8>) {
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += data.len() as u64;
        self.outputs.push_back(Output::Packet { to, data });
    }

    fn dial(
        &mut self,
        to: SocketAddr,
        data: Vec<u8>,
        expect_reply: bool,
        timeout: Duration,
    ) -> StreamId {
        let id = StreamId(self.next_id());
        self.stats.streams_dialed += 1;
        self.outputs.push_back(Output::Dial(Dial {
            id,
            to,
            data,
            expect_reply,
            timeout,
        }));
        id
    }

    fn encode_stream_dial(&mut self, msg: &StreamMessage) -> Vec<u8> {
        self.encode_stream_out(msg, true)
    }

    fn encode_stream_reply(&mut self, msg: &StreamMessage) -> Vec<u8> {
        self.encode_stream_out(msg, false)
    }

    // ----- helpers -------------------------------------------------------

    fn emit(&mut self, e: Event) {
        self.outputs.push_back(Output::Event(e));
    }

    fn apply_awareness(&mut self, delta: i32) {
        if let Some(score) = self.awareness.apply_delta(delta) {
            self.emit(Event::HealthChanged(score));
        }
    }

    fn next_seq(&mut self) -> u32 {
        self.seq_no = self.seq_no.wrapping_add(1);
        self.seq_no
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn next_incarnation(&mut self) -> u32 {
        self.incarnation = self.incarnation.saturating_add(1);
        self.incarnation
    }

    fn stagger(&mut self, interval: Duration) -> Duration {
        let micros = interval.as_micros().max(1) as u64;
        Duration::from_micros(self.rng.next_u64() % micros)
    }

    fn label_overhead(&self) -> usize {
        if self.config.label.is_empty() {
            0
        } else {
            2 + self.config.label.len()
        }
    }

    fn make_ping(&self, seq: u32, target: &str) -> Ping {
        Ping {
            seq_no: seq,
            node: target.to_string(),
            source_addr: self.raw_addr.to_vec(),
            source_port: self.advertise.port(),
            source_node: self.name.clone(),
        }
    }

    fn local_alive(&self, incarnation: u32, meta: Vec<u8>) -> Alive {
        Alive {
            incarnation,
            node: self.name.clone(),
            addr: self.raw_addr.to_vec(),
            port: self.advertise.port(),
            meta,
            vsn: self.vsn,
        }
    }

    fn any_alive(&self) -> bool {
        self.members
            .iter()
            .any(|m| m.name != self.name && !m.state.is_dead_or_left())
    }

    /// Up to `k` distinct random members not excluded, as (address, pMax).
    /// Go's `kRandomNodes`: an exhaustive shuffle for small tables, else
    /// up to 3n random draws.
    fn k_random_members(
        &mut self,
        k: usize,
        exclude: impl Fn(&Member) -> bool,
    ) -> Vec<(SocketAddr, u8)> {
        k_random_members(&mut self.rng, &self.members, k, exclude)
    }
}

/// Up to `k` members not excluded, picked at random (Go `kRandomNodes`).
fn k_random_members(
    rng: &mut Xoshiro256PlusPlus,
    members: &MemberTable,
    k: usize,
    exclude: impl Fn(&Member) -> bool,
) -> Vec<(SocketAddr, u8)> {
    let n = members.len();
    let mut picked: Vec<usize> = Vec::with_capacity(k);
    if k == 0 || n == 0 {
        return Vec::new();
    }
    if n < k * 3 {
        let mut idx: Vec<usize> = (0..n).collect();
        shuffle(rng, &mut idx);
        for i in idx {
            if picked.len() >= k {
                break;
            }
            if !exclude(members.at(i).expect("in range")) {
                picked.push(i);
            }
        }
    } else {
        for _ in 0..3 * n {
            if picked.len() >= k {
                break;
            }
            let i = (rng.next_u64() % n as u64) as usize;
            if picked.contains(&i) || exclude(members.at(i).expect("in range")) {
                continue;
            }
            picked.push(i);
        }
    }
    picked
        .into_iter()
        .map(|i| {
            let m = members.at(i).expect("in range");
            (m.addr(), m.protocol_max())
        })
        .collect()
}

fn encode(msg: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    wire::encode_message(msg, &mut out);
    out
}

/// Fisher-Yates with our own generator, so results depend only on the seed.
fn shuffle<T>(rng: &mut Xoshiro256PlusPlus, s: &mut [T]) {
    for i in (1..s.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        s.swap(i, j);
    }
}
