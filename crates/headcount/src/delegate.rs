//! Delegates: how the application hooks into the memberlist.
//!
//! Each trait mirrors one of Go memberlist's delegate interfaces and has a
//! default for every method that does what Go does without that delegate.
//! All of them are called on the driver task: they must return quickly and
//! must never block (send the work to another task if it is slow).
//!
//! The broadcast, state, merge and alive delegates and
//! [`PingDelegate::ack_payload`] run while the protocol core holds its
//! state locked, so they must not read their own [`crate::Memberlist`] (its
//! `members`, `member`, `num_members`, `local_node`, `stats`,
//! `health_score`, or a [`crate::MembersWatch`]): that panics rather than
//! deadlock. The event, message, conflict and ping-complete delegates run
//! after the lock is released and may read it.
//!
//! Set them on [`crate::Options`] with its `with_*` methods.

use std::sync::Arc;
use std::time::Duration;

use headcount_proto::delegate::Hooks;
/// What [`BroadcastDelegate::get_broadcasts`] is asked for: the byte
/// budget, the cluster size and the retransmit multiplier.
pub use headcount_proto::BroadcastContext;

pub use headcount_proto::Veto;

use crate::MemberInfo;

/// Supplies this node's metadata (Go: `Delegate.NodeMeta`).
pub trait NodeMetaDelegate: Send + Sync {
    /// The metadata to announce, at most `limit` bytes. Called when the
    /// memberlist is created and by [`crate::Memberlist::update_node`].
    fn node_meta(&self, limit: usize) -> Vec<u8> {
        let _ = limit;
        Vec::new()
    }
}

/// Receives user messages (Go: `Delegate.NotifyMsg`).
pub trait MessageDelegate: Send + Sync {
    /// A user message arrived, best-effort (UDP) or reliable (TCP).
    fn notify_msg(&self, msg: &[u8]) {
        let _ = msg;
    }
}

/// Supplies user broadcasts to piggyback on gossip (Go:
/// `Delegate.GetBroadcasts`).
///
/// A [`crate::TransmitLimitedQueue`] is the store Go applications use for
/// them, and it needs the cluster size to know how often to send each
/// message. Go applications read it with `NumMembers()`; this delegate
/// runs while the node holds its state locked, where reading the
/// [`crate::Memberlist`] panics, so the node passes it in
/// [`BroadcastContext::num_nodes`]:
///
/// ```
/// use std::sync::Mutex;
/// use headcount::{Broadcast, BroadcastContext, BroadcastDelegate, TransmitLimitedQueue};
///
/// #[derive(Default)]
/// struct Broadcasts(Mutex<TransmitLimitedQueue>);
///
/// impl Broadcasts {
///     /// Gossips `value` under `key`, replacing a queued value of that key.
///     fn publish(&self, key: &str, value: Vec<u8>) {
///         self.0.lock().unwrap().queue(Broadcast::keyed(key, value));
///     }
/// }
///
/// impl BroadcastDelegate for Broadcasts {
///     fn get_broadcasts(&self, ctx: &BroadcastContext) -> Vec<Vec<u8>> {
///         self.0.lock().unwrap().get_broadcasts_for(ctx)
///     }
/// }
/// ```
pub trait BroadcastDelegate: Send + Sync {
    /// Messages to piggyback, each costing its length plus `ctx.overhead`,
    /// together at most `ctx.limit` bytes. `ctx.num_nodes` counts the
    /// members alive or suspect (Go's `NumMembers()`).
    fn get_broadcasts(&self, ctx: &BroadcastContext) -> Vec<Vec<u8>> {
        let _ = ctx;
        Vec::new()
    }
}

/// Exchanges application state during push/pull (Go:
/// `Delegate.LocalState` and `Delegate.MergeRemoteState`).
pub trait StateDelegate: Send + Sync {
    /// The state to send; `join` tells whether this push/pull is a join.
    fn local_state(&self, join: bool) -> Vec<u8> {
        let _ = join;
        Vec::new()
    }

    /// The state a peer sent; `join` tells whether this push/pull is a join.
    fn merge_remote_state(&self, buf: &[u8], join: bool) {
        let _ = (buf, join);
    }
}

/// Learns about membership changes (Go: `EventDelegate`).
pub trait EventDelegate: Send + Sync {
    /// A node joined, or came back from dead or left. Also called for the
    /// local node when the memberlist starts.
    fn notify_join(&self, node: &MemberInfo) {
        let _ = node;
    }

    /// A node was declared dead, or left gracefully (`node.state` tells).
    fn notify_leave(&self, node: &MemberInfo) {
        let _ = node;
    }

    /// A node changed its metadata.
    fn notify_update(&self, node: &MemberInfo) {
        let _ = node;
    }
}

/// Learns about name conflicts (Go: `ConflictDelegate`).
pub trait ConflictDelegate: Send + Sync {
    /// Another node claims the name of `existing` from a different address.
    fn notify_conflict(&self, existing: &MemberInfo, other: &MemberInfo) {
        let _ = (existing, other);
    }
}

/// Vetoes merges of remote state (Go: `MergeDelegate`).
pub trait MergeDelegate: Send + Sync {
    /// Called before the members a peer sent in a push/pull are merged; a
    /// [`Veto`] rejects the whole exchange (and fails the join it belongs
    /// to, with [`MergeError::Vetoed`](crate::MergeError::Vetoed) carrying
    /// it).
    fn notify_merge(&self, peers: &[MemberInfo]) -> Result<(), Veto> {
        let _ = peers;
        Ok(())
    }
}

/// Filters alive messages (Go: `AliveDelegate`).
pub trait AliveDelegate: Send + Sync {
    /// Called for every alive message about another node; a [`Veto`]
    /// ignores it.
    fn notify_alive(&self, peer: &MemberInfo) -> Result<(), Veto> {
        let _ = peer;
        Ok(())
    }
}

/// Adds a payload to acks and learns probe round-trip times (Go:
/// `PingDelegate`).
pub trait PingDelegate: Send + Sync {
    /// The payload to put in the acks this node sends.
    fn ack_payload(&self) -> Vec<u8> {
        Vec::new()
    }

    /// A probe of `node` was answered after `rtt` with `payload`.
    fn notify_ping_complete(&self, node: &MemberInfo, rtt: Duration, payload: &[u8]) {
        let _ = (node, rtt, payload);
    }

    /// Whether to skip the TCP fallback ping when a probe of `node` goes
    /// unanswered (Go: `Config.DisableTcpPingsForNode`;
    /// [`Config::disable_tcp_pings`](crate::Config::disable_tcp_pings)
    /// skips it for everyone). Called on the driver's task: be quick.
    fn disable_tcp_pings_for_node(&self, node: &str) -> bool {
        let _ = node;
        false
    }
}

/// The delegates of one memberlist; `None` means Go's behaviour without it.
/// `#[non_exhaustive]`, so that a delegate can be added: start from
/// `Delegates::default()` and assign fields, or use the
/// `Options::with_*_delegate` methods.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct Delegates {
    /// Supplies node metadata.
    pub node_meta: Option<Arc<dyn NodeMetaDelegate>>,
    /// Receives user messages.
    pub message: Option<Arc<dyn MessageDelegate>>,
    /// Supplies user broadcasts.
    pub broadcast: Option<Arc<dyn BroadcastDelegate>>,
    /// Exchanges push/pull state.
    pub state: Option<Arc<dyn StateDelegate>>,
    /// Learns about membership changes.
    pub event: Option<Arc<dyn EventDelegate>>,
    /// Learns about name conflicts.
    pub conflict: Option<Arc<dyn ConflictDelegate>>,
    /// Vetoes merges.
    pub merge: Option<Arc<dyn MergeDelegate>>,
    /// Filters alive messages.
    pub alive: Option<Arc<dyn AliveDelegate>>,
    /// Ack payloads and probe round-trip times.
    pub ping: Option<Arc<dyn PingDelegate>>,
}

impl core::fmt::Debug for Delegates {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Delegates")
            .field("node_meta", &self.node_meta.is_some())
            .field("message", &self.message.is_some())
            .field("broadcast", &self.broadcast.is_some())
            .field("state", &self.state.is_some())
            .field("event", &self.event.is_some())
            .field("conflict", &self.conflict.is_some())
            .field("merge", &self.merge.is_some())
            .field("alive", &self.alive.is_some())
            .field("ping", &self.ping.is_some())
            .finish()
    }
}

/// The synchronous delegates, adapted to the core's [`Hooks`].
pub(crate) struct HooksAdapter(pub(crate) Delegates);

impl Hooks for HooksAdapter {
    fn broadcasts(&mut self, ctx: &BroadcastContext) -> Vec<Vec<u8>> {
        match &self.0.broadcast {
            Some(d) => d.get_broadcasts(ctx),
            None => Vec::new(),
        }
    }

    fn may_broadcast(&self) -> bool {
        self.0.broadcast.is_some()
    }

    fn local_state(&mut self, join: bool) -> Vec<u8> {
        match &self.0.state {
            Some(d) => d.local_state(join),
            None => Vec::new(),
        }
    }

    fn merge_remote_state(&mut self, state: &[u8], join: bool) {
        if let Some(d) = &self.0.state {
            d.merge_remote_state(state, join);
        }
    }

    fn allow_merge(&mut self, peers: &[MemberInfo]) -> Result<(), Veto> {
        match &self.0.merge {
            Some(d) => d.notify_merge(peers),
            None => Ok(()),
        }
    }

    fn vets_merges(&self) -> bool {
        self.0.merge.is_some()
    }

    fn vets_alives(&self) -> bool {
        self.0.alive.is_some()
    }

    fn allow_alive(&mut self, peer: &MemberInfo) -> Result<(), Veto> {
        match &self.0.alive {
            Some(d) => d.notify_alive(peer),
            None => Ok(()),
        }
    }

    fn ack_payload(&mut self) -> Vec<u8> {
        match &self.0.ping {
            Some(d) => d.ack_payload(),
            None => Vec::new(),
        }
    }

    fn disable_tcp_pings_for_node(&mut self, node: &str) -> bool {
        self.0
            .ping
            .as_ref()
            .is_some_and(|d| d.disable_tcp_pings_for_node(node))
    }
}
