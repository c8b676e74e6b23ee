//! Events the application can await instead of (or besides) delegates.

use std::time::Duration;

use crate::MemberInfo;

/// Something that happened in the cluster, as seen by this node. Receive
/// them with [`crate::Memberlist::events`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A node joined, or came back from dead or left. The local node is
    /// announced too when the memberlist starts.
    Join(MemberInfo),
    /// A node was declared dead, or left gracefully (`state` tells which).
    Leave(MemberInfo),
    /// A node changed its metadata.
    Update(MemberInfo),
    /// A node became suspect.
    Suspect {
        /// The suspected node.
        member: MemberInfo,
        /// The node that accused it.
        from: String,
    },
    /// Another node claims the name of a node we know from another address.
    Conflict {
        /// What we know.
        existing: MemberInfo,
        /// What the other node claims.
        other: MemberInfo,
    },
    /// A user message arrived (best-effort or reliable).
    UserMessage(Vec<u8>),
    /// A probe of a node was answered.
    PingComplete {
        /// The probed node.
        node: MemberInfo,
        /// Round-trip time.
        rtt: Duration,
        /// The payload of the ack.
        payload: Vec<u8>,
    },
    /// The Lifeguard health score changed (0 is healthy).
    HealthChanged(u32),
}
