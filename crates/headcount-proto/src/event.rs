//! What the core hands back to its driver: outputs to carry out, events to
//! report to the application and completions to route to their waiters.

use core::time::Duration;
use std::net::SocketAddr;

use crate::error::PushPullError;
use crate::state::MemberInfo;
use crate::wire::StreamError;

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

/// What a stream the node dials is for (see [`Dial::kind`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DialKind {
    /// A push/pull: a join, the periodic exchange or a reconnect attempt.
    PushPull,
    /// A reliable user message (`send_reliable`).
    Reliable,
    /// A TCP fallback ping of a probe.
    Ping,
}

/// A request to open a stream (see [`Output::Dial`]).
#[derive(Debug)]
#[non_exhaustive]
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
    /// What the stream is for (Go counts `memberlist.tcp.connect` only
    /// for push/pulls).
    pub kind: DialKind,
}

/// What went wrong with a stream, as the driver reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamFailure {
    /// Connecting, writing or reading failed.
    Io(std::io::ErrorKind),
    /// The operation took longer than the dial's timeout.
    Timeout,
    /// The peer closed (or reset) the connection without a word where a
    /// reply was expected. That is how a peer refuses a stream whose label
    /// differs or that it cannot decrypt, so the message hints at it:
    /// `secured` says whether we dialed with an encryption key or a label.
    Unanswered {
        /// We have a keyring or a label.
        secured: bool,
    },
    /// The peer closed the connection partway through its reply.
    Truncated {
        /// Bytes of the reply received.
        received: usize,
    },
    /// The reply is larger than we accept.
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The reply could not be decoded.
    Decode(StreamError),
}

impl core::fmt::Display for StreamFailure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StreamFailure::Io(kind) => write!(f, "{kind}"),
            StreamFailure::Timeout => write!(f, "timed out"),
            StreamFailure::Unanswered { secured: true } => write!(
                f,
                "closed the connection without answering: wrong encryption key or label?"
            ),
            StreamFailure::Unanswered { secured: false } => write!(
                f,
                "closed the connection without answering (does it need an encryption key or a label, or refuse our address?)"
            ),
            StreamFailure::Truncated { received } => write!(
                f,
                "connection closed after {received} bytes of an incomplete reply"
            ),
            StreamFailure::TooLarge { limit } => {
                write!(f, "reply larger than {limit} bytes")
            }
            StreamFailure::Decode(e) => {
                f.write_str("bad reply: ")?;
                match e {
                    StreamError::Decrypt(_) => f.write_str(
                        "it did not decrypt with any of our keys: wrong encryption key or label?",
                    ),
                    StreamError::NotEncrypted => f.write_str(
                        "it is not encrypted: the peer has no encryption key (or turn incoming verification off while migrating)",
                    ),
                    StreamError::EncryptionNotConfigured => {
                        f.write_str("it is encrypted and we have no encryption key")
                    }
                    e => write!(f, "{e}"),
                }
            }
        }
    }
}

impl std::error::Error for StreamFailure {}

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
        errors: Vec<(SocketAddr, PushPullError)>,
    },
    /// A reliable send finished.
    ReliableSent {
        /// The stream that carried it.
        id: StreamId,
        /// Whether it was delivered to the peer's socket.
        result: Result<(), StreamFailure>,
    },
    /// A broadcast the caller waits for has been sent as often as the
    /// retransmit limit asks, or was superseded.
    BroadcastFinished(BroadcastId),
}
