//! The messages of memberlist's wire protocol as Rust types.
//!
//! Field names follow the Go structs (wire-protocol.md §2). Byte fields are
//! kept exactly as they arrived: an `Addr` of 4 or 16 bytes stays as it was,
//! because Go compares addresses by their raw bytes.

use crate::name::Name;

/// The version vector `[pMin, pMax, pCur, dMin, dMax, dCur]` carried by
/// `alive` and `pushNodeState`.
pub type Vsn = [u8; 6];

/// Index of the minimum protocol version in a [`Vsn`].
pub const VSN_PROTOCOL_MIN: usize = 0;
/// Index of the maximum protocol version in a [`Vsn`].
pub const VSN_PROTOCOL_MAX: usize = 1;
/// Index of the current protocol version in a [`Vsn`].
pub const VSN_PROTOCOL_CUR: usize = 2;
/// Index of the minimum delegate protocol version in a [`Vsn`].
pub const VSN_DELEGATE_MIN: usize = 3;
/// Index of the maximum delegate protocol version in a [`Vsn`].
pub const VSN_DELEGATE_MAX: usize = 4;
/// Index of the current delegate protocol version in a [`Vsn`].
pub const VSN_DELEGATE_CUR: usize = 5;

/// The first byte of every message (wire-protocol.md §1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// Direct probe (packet) or TCP fallback ping (stream).
    Ping = 0,
    /// Ask a peer to probe a target for us.
    IndirectPing = 1,
    /// Answer to a ping.
    Ack = 2,
    /// Accusation that a node is suspect.
    Suspect = 3,
    /// A node announces itself alive.
    Alive = 4,
    /// A node is dead, or has left when `From == Node`.
    Dead = 5,
    /// Full state exchange (stream only).
    PushPull = 6,
    /// Several messages in one packet.
    Compound = 7,
    /// Application data.
    User = 8,
    /// LZW-compressed message.
    Compress = 9,
    /// Encrypted stream payload.
    Encrypt = 10,
    /// Negative acknowledgement from an indirect-probe helper.
    Nack = 11,
    /// CRC-32 framed packet.
    HasCrc = 12,
    /// Error reply on a stream.
    Err = 13,
    /// Label prefix.
    HasLabel = 244,
}

impl MessageType {
    /// The message type for a type byte, if it is one we know.
    pub fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            0 => Self::Ping,
            1 => Self::IndirectPing,
            2 => Self::Ack,
            3 => Self::Suspect,
            4 => Self::Alive,
            5 => Self::Dead,
            6 => Self::PushPull,
            7 => Self::Compound,
            8 => Self::User,
            9 => Self::Compress,
            10 => Self::Encrypt,
            11 => Self::Nack,
            12 => Self::HasCrc,
            13 => Self::Err,
            244 => Self::HasLabel,
            _ => return None,
        })
    }
}

/// `ping`: a direct probe, or a TCP fallback ping.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ping {
    /// Probe sequence number, echoed in the ack.
    pub seq_no: u32,
    /// Name of the node meant to answer; empty for none. A node whose name
    /// differs does not answer.
    pub node: String,
    /// Where the sender wants the ack (omitted when empty).
    pub source_addr: Vec<u8>,
    /// Port for the ack (omitted when zero).
    pub source_port: u16,
    /// Name of the sender (omitted when empty).
    pub source_node: String,
}

/// `indirectPingReq`: ask a helper to probe `target:port` for us.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndirectPingReq {
    /// Sequence number the helper echoes back to us.
    pub seq_no: u32,
    /// Raw address bytes of the target.
    pub target: Vec<u8>,
    /// Port of the target.
    pub port: u16,
    /// Name of the target.
    pub node: String,
    /// Whether the helper should send a nack when the target does not answer.
    pub nack: bool,
    /// Our address (omitted when empty).
    pub source_addr: Vec<u8>,
    /// Our port (omitted when zero).
    pub source_port: u16,
    /// Our name (omitted when empty).
    pub source_node: String,
}

/// `ackResp`: the answer to a ping.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AckResp {
    /// Sequence number of the ping being answered.
    pub seq_no: u32,
    /// Ping delegate payload; empty is written as msgpack nil.
    pub payload: Vec<u8>,
}

/// `nackResp`: a helper could not reach the target of an indirect ping.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NackResp {
    /// Sequence number of the indirect ping.
    pub seq_no: u32,
}

/// `errResp`: an error reply on a stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrResp {
    /// What went wrong, in words.
    pub error: String,
}

/// `suspect`: `from` suspects `node` at `incarnation`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Suspect {
    /// Incarnation the accusation is about.
    pub incarnation: u32,
    /// Accused node.
    pub node: Name,
    /// Accuser.
    pub from: Name,
}

/// `alive`: a node announces itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Alive {
    /// The node's incarnation.
    pub incarnation: u32,
    /// The node's name.
    pub node: String,
    /// Raw address bytes (4 or 16).
    pub addr: Vec<u8>,
    /// Port.
    pub port: u16,
    /// Node metadata; empty is written as msgpack nil.
    pub meta: Vec<u8>,
    /// Version vector.
    pub vsn: Vsn,
}

/// `dead`: `from` declares `node` dead; `from == node` is a graceful leave.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dead {
    /// Incarnation the declaration is about.
    pub incarnation: u32,
    /// The dead node.
    pub node: Name,
    /// Who declares it.
    pub from: Name,
}

/// `pushPullHeader`: starts a push/pull exchange.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushPullHeader {
    /// Number of `pushNodeState` entries that follow.
    pub nodes: u32,
    /// Length of the raw user state after the entries.
    pub user_state_len: u32,
    /// Whether this exchange is part of a join.
    pub join: bool,
}

/// Member state as carried in `pushNodeState.State`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WireState {
    /// 0
    #[default]
    Alive,
    /// 1
    Suspect,
    /// 2
    Dead,
    /// 3
    Left,
}

impl WireState {
    /// The state for its wire number; unknown numbers give `None`.
    pub fn from_i64(v: i64) -> Option<Self> {
        Some(match v {
            0 => Self::Alive,
            1 => Self::Suspect,
            2 => Self::Dead,
            3 => Self::Left,
            _ => return None,
        })
    }

    /// The wire number.
    pub fn as_i64(self) -> i64 {
        self as i64
    }
}

/// `pushNodeState`: one member table entry in a push/pull.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushNodeState {
    /// Node name.
    pub name: String,
    /// Raw address bytes.
    pub addr: Vec<u8>,
    /// Port.
    pub port: u16,
    /// Metadata; empty is written as msgpack nil.
    pub meta: Vec<u8>,
    /// Incarnation.
    pub incarnation: u32,
    /// State.
    pub state: WireState,
    /// Version vector.
    pub vsn: Vsn,
}

/// A whole push/pull message: header, entries and user state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushPull {
    /// Whether this exchange is part of a join.
    pub join: bool,
    /// Member table entries.
    pub states: Vec<PushNodeState>,
    /// Opaque user (delegate) state.
    pub user_state: Vec<u8>,
}

/// A message that can travel in a packet (after label, CRC, compound and
/// compression framing have been removed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Direct probe.
    Ping(Ping),
    /// Indirect probe request.
    IndirectPing(IndirectPingReq),
    /// Ack.
    Ack(AckResp),
    /// Nack.
    Nack(NackResp),
    /// Suspect.
    Suspect(Suspect),
    /// Alive.
    Alive(Alive),
    /// Dead.
    Dead(Dead),
    /// Raw user bytes (best-effort user message).
    User(Vec<u8>),
    /// Error reply (streams only in practice, accepted anywhere).
    Err(ErrResp),
}

/// A message that arrives on a stream (after label, encryption and
/// compression framing have been removed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamMessage {
    /// TCP fallback ping.
    Ping(Ping),
    /// Answer to a TCP fallback ping.
    Ack(AckResp),
    /// Push/pull exchange.
    PushPull(PushPull),
    /// Reliable user message.
    User(Vec<u8>),
    /// Error reply.
    Err(ErrResp),
}
