//! Hooks the core calls synchronously while it works.
//!
//! Most of what memberlist's delegates do is reporting, and the core reports
//! through [`crate::Event`]s instead. What remains are questions the core
//! must have answered on the spot: which user broadcasts to piggyback, what
//! user state to send in a push/pull, whether to accept a node or a merge.
//! Hooks run on the driver's task: they must be quick and must not block.

pub use crate::error::Veto;
use crate::state::MemberInfo;

/// What [`Hooks::broadcasts`] is asked for: the byte budget, and what a
/// [`TransmitLimitedQueue`](crate::broadcast::TransmitLimitedQueue) of user
/// broadcasts needs to know to count retransmissions. Go's delegate gets
/// only `overhead` and `limit` and the application's queue calls
/// `NumMembers()` itself; here the hook runs while the node is busy, so
/// the node hands the count over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BroadcastContext {
    /// Bytes of framing each returned message costs on top of its length.
    pub overhead: usize,
    /// Most bytes all returned messages may take together, each counted
    /// as its length plus `overhead`.
    pub limit: usize,
    /// Members alive or suspect, this node included (Go's `NumMembers()`,
    /// what Go applications give their queue's `NumNodes`).
    pub num_nodes: usize,
    /// The node's [`Config::retransmit_mult`](crate::Config::retransmit_mult).
    pub retransmit_mult: u32,
}

impl BroadcastContext {
    /// A context with these values (for testing a hook outside a node).
    pub fn new(overhead: usize, limit: usize, num_nodes: usize, retransmit_mult: u32) -> Self {
        BroadcastContext {
            overhead,
            limit,
            num_nodes,
            retransmit_mult,
        }
    }
}

/// Synchronous hooks into the protocol. Every method has a default that does
/// what Go memberlist does without a delegate.
pub trait Hooks: Send {
    /// User broadcasts to piggyback on gossip, together at most
    /// `ctx.limit` bytes counting `ctx.overhead` per message (Go:
    /// `Delegate.GetBroadcasts`). Serve them from a
    /// [`TransmitLimitedQueue`](crate::broadcast::TransmitLimitedQueue)
    /// with [`get_broadcasts_for`](crate::broadcast::TransmitLimitedQueue::get_broadcasts_for).
    /// Called only when [`Hooks::may_broadcast`] says so.
    fn broadcasts(&mut self, ctx: &BroadcastContext) -> Vec<Vec<u8>> {
        let _ = ctx;
        Vec::new()
    }

    /// Whether [`Hooks::broadcasts`] may ever return something. When it
    /// may not, the core never asks it, and skips its gossip ticks while
    /// its own broadcast queue is empty instead of waking up every gossip
    /// interval to send nothing. The default, `true`, always ticks.
    fn may_broadcast(&self) -> bool {
        true
    }

    /// User state to send in a push/pull (Go: `Delegate.LocalState`).
    fn local_state(&mut self, join: bool) -> Vec<u8> {
        let _ = join;
        Vec::new()
    }

    /// User state received in a push/pull (Go: `Delegate.MergeRemoteState`).
    fn merge_remote_state(&mut self, state: &[u8], join: bool) {
        let _ = (state, join);
    }

    /// Veto a push/pull merge: a [`Veto`] rejects the whole remote state,
    /// and a join it belongs to fails with
    /// [`MergeError::Vetoed`](crate::MergeError::Vetoed)
    /// (Go: `MergeDelegate.NotifyMerge`).
    fn allow_merge(&mut self, peers: &[MemberInfo]) -> Result<(), Veto> {
        let _ = peers;
        Ok(())
    }

    /// Whether [`Hooks::allow_merge`] needs calling at all. Building its
    /// list costs a copy of every entry of every push/pull, so hooks that
    /// never veto merges say `false` and the node skips it. Defaults to
    /// `true`, so an `allow_merge` of yours is never skipped by mistake.
    fn vets_merges(&self) -> bool {
        true
    }

    /// Veto an alive message about a node: a [`Veto`] ignores it
    /// (Go: `AliveDelegate.NotifyAlive`).
    fn allow_alive(&mut self, peer: &MemberInfo) -> Result<(), Veto> {
        let _ = peer;
        Ok(())
    }

    /// Whether [`Hooks::allow_alive`] needs calling at all. Go asks its
    /// alive delegate about every alive message, even one that repeats
    /// what the node already holds; hooks that never veto say `false`,
    /// and the node may then drop such a repeat before decoding it in
    /// full (a join storm repeats each alive a dozen times to every
    /// node). Defaults to `true`, so an `allow_alive` of yours sees
    /// every alive.
    fn vets_alives(&self) -> bool {
        true
    }

    /// Payload to put in acks we send (Go: `PingDelegate.AckPayload`).
    fn ack_payload(&mut self) -> Vec<u8> {
        Vec::new()
    }

    /// Whether to skip the TCP fallback ping when probing `node` (Go:
    /// `Config.DisableTcpPingsForNode`; [`Config::disable_tcp_pings`]
    /// skips it for everyone). Asked only when a probe's direct ping went
    /// unanswered and a fallback ping would otherwise be sent. A predicate
    /// rather than a `Config` field so that the config stays plain data.
    ///
    /// [`Config::disable_tcp_pings`]: crate::Config::disable_tcp_pings
    fn disable_tcp_pings_for_node(&mut self, node: &str) -> bool {
        let _ = node;
        false
    }
}

/// Hooks that do nothing: the behaviour of Go memberlist without delegates.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHooks;

impl Hooks for NoHooks {
    fn vets_merges(&self) -> bool {
        false
    }

    fn vets_alives(&self) -> bool {
        false
    }

    fn may_broadcast(&self) -> bool {
        false
    }
}
