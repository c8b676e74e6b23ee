//! The protocol core: one memberlist node as a state machine.
//!
//! [`Node`] has four kinds of methods:
//! - **inputs** (`handle_packet`, `handle_stream`, `handle_stream_result`,
//!   `handle_timeout`) feed it what arrived and what time it is;
//! - **commands** (`join`, `leave`, `update_meta`, `ping`, `send_packet`,
//!   `send_reliable`) ask it to do something;
//! - **outputs** (`poll_output`, `poll_timeout`) say what the driver must do:
//!   send packets, dial streams, report events to the application, route
//!   completions to whoever waits, and when to call `handle_timeout` next;
//! - **getters** (`members`, `local_member`, `health_score`, `stats`).
//!
//! After every input or command the driver drains `poll_output` until it
//! returns `None`, then sleeps until `poll_timeout` (or the next input).
//! Time never goes backwards; calling `handle_timeout` early does nothing.
//!
//! The methods live by protocol concern, one `impl Node` per file:
//! - `node/inputs.rs`: packets and streams in, dispatched by message type;
//! - `node/probe.rs`: failure detection (probes, indirect probes, nacks,
//!   the TCP fallback ping, pings and acks);
//! - `node/transitions.rs`: the alive/suspect/dead/left rules, refutation
//!   and the local node's own changes (`leave`, `update_meta`);
//! - `node/push_pull.rs`: joins and the periodic push/pull (state merge);
//! - `node/gossip.rs`: gossip rounds, the broadcast queue and how
//!   messages are packed into packets;
//! - `node/messaging.rs`: user messages (`send_packet`, `send_reliable`);
//! - `node/reconnect.rs`: reconnecting to failed members;
//! - `node/security.rs`: keyring and encryption glue;
//! - `node/select.rs`: random choice of members.
//!
//! This file holds the state, the constructor, the getters, the outputs,
//! timer dispatch and the small helpers every concern shares.

use core::cell::Cell;
use core::time::Duration;
use std::collections::VecDeque;
use std::net::SocketAddr;

use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::awareness::Awareness;
use crate::broadcast::TransmitLimitedQueue;
use crate::config::{Config, ConfigError, META_MAX_SIZE};
use crate::delegate::Hooks;
use crate::event::{BroadcastId, Completion, Dial, Event, JoinId, Output, StreamId};
use crate::fxhash::FxHashMap;
use crate::name::Name;
use crate::state::{Member, MemberTable, RawAddr};
use crate::suspicion::Suspicion;
use crate::time::Instant;
use crate::timer::TimerQueue;
use crate::wire::{
    self, Alive, EncryptionVersion, Framing, Limits, Message, PacketOptions, StreamMessage, Vsn,
};

/// Largest reliable user message (wire-protocol.md §4).
pub const MAX_RELIABLE_MESSAGE: usize = 20 * 1024 * 1024;

mod builder;
mod gossip;
mod inputs;
mod messaging;
mod probe;
pub(crate) mod push_pull;
mod reconnect;
mod security;
mod select;
mod transitions;

pub use builder::NodeBuilder;
pub use reconnect::FAILED_MAX;

use gossip::GossipPacing;
use probe::{AckHandler, ProbeState};
use push_pull::{JoinProgress, PushPullPacing};
use reconnect::ReconnectState;

/// Who this node is. Build it with [`LocalNode::new`] (it is
/// `#[non_exhaustive]`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalNode {
    /// Unique name in the cluster.
    pub name: String,
    /// Address and port other nodes reach us at (UDP and TCP).
    pub addr: SocketAddr,
    /// Metadata, at most [`META_MAX_SIZE`] bytes.
    pub meta: Vec<u8>,
}

impl LocalNode {
    /// A node called `name`, reached at `addr`, without metadata.
    pub fn new(name: impl Into<String>, addr: SocketAddr) -> Self {
        LocalNode {
            name: name.into(),
            addr,
            meta: Vec::new(),
        }
    }

    /// The same node with metadata `meta` (at most [`META_MAX_SIZE`]
    /// bytes).
    #[must_use]
    pub fn with_meta(mut self, meta: impl Into<Vec<u8>>) -> Self {
        self.meta = meta.into();
        self
    }
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

/// Counters of what the node has seen and done (`#[non_exhaustive]`: new
/// counters may be added).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
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
    /// Direct pings sent a second time because the first went unanswered
    /// ([`Config::retry_direct_ping`]).
    pub direct_ping_retries: u64,
    /// Packets and inbound stream messages dropped because their source
    /// address is not in [`Config::cidrs_allowed`].
    pub sources_denied: u64,
    /// `alive` messages ignored because they announce a new node or a new
    /// address outside [`Config::cidrs_allowed`].
    pub alives_denied: u64,
    /// Push/pulls started to reconnect with a failed member.
    pub reconnect_attempts: u64,
    /// Gossip rounds run (rounds that found nothing to send included).
    pub gossip_rounds: u64,
    /// Reconnect push/pulls that got the remote's state back.
    pub reconnect_successes: u64,
    /// Suspect or dead entries about other members in a join push/pull,
    /// not turned into suspicions (see `node/push_pull.rs`).
    pub stale_accusations_ignored: u64,
    /// Alive messages dropped before they were copied out of their packet
    /// because they repeat what this node holds (see
    /// [`Hooks::vets_alives`]); Go ignores the
    /// same messages after decoding them.
    pub repeated_alives: u64,
    /// Gossip rounds skipped because their tick fired a whole gossip
    /// interval late or more: the node (or the process it shares) is not
    /// keeping up, and gossip is the work it can defer.
    pub gossip_rounds_skipped: u64,
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
    Suspicion(Name),
    /// Time to try a failed member again (see `node/reconnect.rs`).
    ReconnectTick,
}

#[derive(Debug)]
enum PendingStream {
    PushPull {
        join: bool,
        join_id: Option<JoinId>,
        addr: SocketAddr,
        /// When it was dialed, for `memberlist.pushPullNode`.
        started: Instant,
    },
    Reliable,
    FallbackPing {
        seq: u32,
    },
}

/// Room kept in the output queue once it is drained. An output is about
/// 150 bytes and a drain usually finds a handful: 64 slots kept 10 KiB in
/// every node for good.
const OUTPUTS_RETAINED: usize = 16;

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
    /// Keyed by `Name` (inline up to 23 bytes), as is the suspicion's timer.
    suspicions: FxHashMap<Name, Suspicion>,
    awareness: Awareness,
    broadcasts: TransmitLimitedQueue,
    timers: TimerQueue<TimerKey>,
    rng: Xoshiro256PlusPlus,
    outputs: VecDeque<Output>,
    hooks: Box<dyn Hooks>,
    seq_no: u32,
    /// Probe rounds: where the round is, the probe in flight.
    probing: ProbeState,
    /// Who waits for which ack (our probes, relayed pings, user pings).
    acks: FxHashMap<u32, AckHandler>,
    streams: FxHashMap<StreamId, PendingStream>,
    joins: FxHashMap<JoinId, JoinProgress>,
    next_id: u64,
    leaving: bool,
    stats: Stats,
    membership_version: u64,
    /// `num_members` as of a `membership_version`: every change to a
    /// member's state bumps the version, so the count is recomputed only
    /// after one, not on every packet that asks for it (user broadcasts
    /// are handed the cluster size each time a packet is filled).
    live_count: Cell<(u64, usize)>,
    /// Keyring, verification flags and nonce source as they are now
    /// (`config` keeps what the node started with).
    security: security::SecurityState,
    /// Members declared dead, to reconnect to (see `node/reconnect.rs`).
    reconnect: ReconnectState,
    /// When gossip rounds run, and how full their packets are packed.
    gossip_pacing: GossipPacing,
    /// What the next periodic push/pull sends.
    push_pull_pacing: PushPullPacing,
    /// Go memberlist's metrics (a no-op without the `metrics` feature).
    metrics: crate::metrics::NodeMetrics,
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
        let metrics = crate::metrics::NodeMetrics::new(&config.metric_labels);
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
            probing: ProbeState::default(),
            acks: FxHashMap::default(),
            streams: FxHashMap::default(),
            joins: FxHashMap::default(),
            next_id: 0,
            leaving: false,
            stats: Stats::default(),
            membership_version: 0,
            live_count: Cell::new((u64::MAX, 0)),
            security,
            reconnect: ReconnectState::default(),
            gossip_pacing: GossipPacing::default(),
            push_pull_pacing: PushPullPacing::default(),
            metrics,
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
    /// are reaped), in probe order: the core's view, which the probe and
    /// gossip rounds walk. Go's `Members()` (and `headcount`'s
    /// `Memberlist::members`) list only those alive or suspect, the ones
    /// [`Node::num_members`] counts.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.iter()
    }

    /// The member called `name`.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.get(name)
    }

    /// Number of members that are alive or suspect, ourselves included.
    pub fn num_members(&self) -> usize {
        let (version, count) = self.live_count.get();
        if version == self.membership_version {
            return count;
        }
        let count = self
            .members
            .iter()
            .filter(|m| !m.state.is_dead_or_left())
            .count();
        self.live_count.set((self.membership_version, count));
        count
    }

    /// Drops every queued membership broadcast without sending it (user
    /// broadcasts live in the application's hooks and are untouched); each
    /// one's notify token is reported as
    /// [`Completion::BroadcastFinished`]. memberlist never does this on its
    /// own: it is for drivers that build a node into an already converged
    /// cluster, whose old news everyone has (the simulator's seeded
    /// bootstrap).
    pub fn reset_broadcasts(&mut self) {
        for token in self.broadcasts.reset() {
            self.complete(Completion::BroadcastFinished(BroadcastId(token)));
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
        self.gossip_pacing.is_parked()
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

    /// The events queued for [`Node::poll_output`] and not yet taken, in
    /// order. Their effect is already in the membership table: a driver
    /// that hands out a snapshot of the table and then the events it
    /// drains from now on uses this to tell which of those the snapshot
    /// already shows.
    pub fn queued_events(&self) -> impl Iterator<Item = &Event> {
        self.outputs.iter().filter_map(|o| match o {
            Output::Event(e) => Some(e),
            _ => None,
        })
    }

    /// When `handle_timeout` should be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    // ----- inputs: timers -------------------------------------------------

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((key, at)) = self.timers.pop_expired(now) {
            match key {
                TimerKey::ProbeTick => self.probe_tick(now, at),
                TimerKey::GossipTick => self.gossip_tick(now, at),
                TimerKey::PushPullTick => self.push_pull_tick(now),
                TimerKey::ProbeTimeout(seq) => self.probe_indirect(now, seq),
                TimerKey::AckDeadline(seq) => self.ack_expired(now, seq),
                TimerKey::Suspicion(name) => self.suspicion_expired(now, name),
                TimerKey::ReconnectTick => self.reconnect_tick(now),
            }
        }
    }

    // ----- output primitives ---------------------------------------------

    /// How a packet we send is framed, for [`wire::packet_room`]: our
    /// label and, when we encrypt, our encryption version.
    fn framing(&self, compound: bool, crc: bool) -> Framing {
        Framing {
            compound,
            crc,
            label_len: self.config.label.len(),
            encryption: self
                .encrypts_outgoing()
                .then(|| EncryptionVersion::for_protocol(self.config.protocol_version)),
        }
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

    fn dial_kind(
        &mut self,
        to: SocketAddr,
        data: Vec<u8>,
        expect_reply: bool,
        timeout: Duration,
        kind: crate::event::DialKind,
    ) -> StreamId {
        let id = StreamId(self.next_id());
        self.stats.streams_dialed += 1;
        self.outputs.push_back(Output::Dial(Dial {
            id,
            to,
            data,
            expect_reply,
            timeout,
            kind,
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

    // Into the same queue as events, so outputs keep their order.
    fn complete(&mut self, c: Completion) {
        self.outputs.push_back(Output::Completion(c));
    }

    fn apply_awareness(&mut self, delta: i32) {
        if let Some(score) = self.awareness.apply_delta(delta) {
            self.metrics.health_score(score);
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
}

fn encode(msg: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    wire::encode_message(msg, &mut out);
    out
}
