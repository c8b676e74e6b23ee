//! What the core hands back to its driver: outputs to carry out, events to
//! report to the application and completions to route to their waiters.

use core::time::Duration;
use std::net::SocketAddr;

use crate::state::MemberInfo;

/// Identifies an outbound stream the core asked the driver to dial.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u64);

/// Identifies a join started with [`crate::Node::join`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JoinId(pub u64);

/// Identifies a ping started with [`crate::Node::ping`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PingId(pub u64);

/// Identifies a broadcast whose completion the caller waits for
/// (leave and metadata updates).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BroadcastId(pub u64);

/// Something the driver must do, or be told.
#[derive(Debug)]
#[must_use]
pub enum Output {
    /// Send one UDP datagram.
    Packet {
        /// Destination.
        to: SocketAddr,
        /// The complete datagram, framing included.
        data: Vec<u8>,
    },
    /// Open a TCP stream, write `data`, then read one reply message if
    /// `expect_reply`, and report with [`crate::Node::handle_stream_result`].
    Dial(Dial),
    /// Something the application may want to know.
    Event(Event),
    /// An operation started through the [`crate::Node`] API finished. Never
    /// shown to the application: the driver routes it to whoever waits
    /// (the join, ping, send or leave future).
    Completion(Completion),
}

/// A request to open a stream (see [`Output::Dial`]).
#[derive(Debug)]
pub struct Dial {
    /// Identifies the stream in [`crate::Node::handle_stream_result`].
    pub id: StreamId,
    /// Where to connect.
    pub to: SocketAddr,
    /// Bytes to write, framing included.
    pub data: Vec<u8>,
    /// Whether one reply message must be read back.
    pub expect_reply: bool,
    /// Give up (and report a failure) after this long.
    pub timeout: Duration,
}

/// What went wrong with a stream, as the driver reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamFailure {
    /// Connecting, writing or reading failed.
    Io(String),
    /// The operation took longer than the dial's timeout.
    Timeout,
    /// The reply could not be decoded.
    Decode(String),
}

impl core::fmt::Display for StreamFailure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StreamFailure::Io(e) => write!(f, "i/o error: {e}"),
            StreamFailure::Timeout => write!(f, "timed out"),
            StreamFailure::Decode(e) => write!(f, "bad reply: {e}"),
        }
    }
}

/// Something that happened in the cluster, as seen by this node: what an
/// application may want to know. The driver hands these to the
/// application (delegates, an event stream); completions of operations
/// travel separately, as [`Completion`]s.
///
/// New kinds of event may be added, so matches need a catch-all arm.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A node joined, or came back from dead or left (Go: `NotifyJoin`).
    /// The local node is announced too: it is a new node's first event, so
    /// an application sees itself join when it starts.
    Join(MemberInfo),
    /// A node was declared dead, or left gracefully (Go: `NotifyLeave`);
    /// `state` says which.
    Leave(MemberInfo),
    /// A node changed its metadata (Go: `NotifyUpdate`).
    Update(MemberInfo),
    /// A node became suspect. Not in Go's delegates; reported for
    /// observability.
    Suspect {
        /// The suspected node.
        member: MemberInfo,
        /// Who accused it.
        from: String,
    },
    /// Another node claims a name we know at a different address
    /// (Go: `NotifyConflict`).
    Conflict {
        /// What we have.
        existing: MemberInfo,
        /// What the other node claims.
        other: MemberInfo,
    },
    /// A user message arrived (best-effort or reliable).
    UserMessage(Vec<u8>),
    /// A probe of `node` was answered (Go: `NotifyPingComplete`).
    PingComplete {
        /// The probed node.
        node: MemberInfo,
        /// Round-trip time.
        rtt: Duration,
        /// The ack payload the peer sent.
        payload: Vec<u8>,
    },
    /// The Lifeguard health score changed (0 is healthy).
    HealthChanged(u32),
}

/// An operation someone waits for finished. The application never sees
/// these: the driver routes each one to whoever waits for it (the join,
/// ping, reliable send or leave / metadata update in flight).
///
/// Deliberately exhaustive: a new kind of completion must be routed by
/// every driver, or its waiter would hang.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Completion {
    /// A [`crate::Node::ping`] finished; `rtt` is `None` when no ack came.
    PingResult {
        /// The ping.
        id: PingId,
        /// Round-trip time, if answered.
        rtt: Option<Duration>,
    },
    /// A join finished: every address was tried.
    JoinFinished {
        /// The join.
        id: JoinId,
        /// How many addresses completed a push/pull.
        succeeded: usize,
        /// The addresses that failed, with why.
        errors: Vec<(SocketAddr, String)>,
    },
    /// A reliable send finished.
    ReliableSent {
        /// The stream that carried it.
        id: StreamId,
        /// Whether it was delivered to the peer's socket.
        result: Result<(), String>,
    },
    /// A broadcast the caller waits for has been sent as often as the
    /// retransmit limit asks, or was superseded.
    BroadcastFinished(BroadcastId),
}
