//! Push/pull: the full state exchange over a stream, for joins, the
//! periodic anti-entropy round, and reconnecting to failed members.
//!
//! We send our table (or only our own entry, see `local_push_pull`), the
//! remote answers with its own, and each side merges the other's entries
//! through the usual state transitions, after Go's protocol version check
//! and the application's merge veto. A join is a push/pull with each
//! given address; a successful one brings the next periodic push/pull
//! forward (`bring_push_pull_forward`).

use core::time::Duration;
use std::net::SocketAddr;

use super::{Node, PendingStream, TimerKey};
use crate::error::{MergeError, PushPullError};
use crate::event::{Completion, DialKind, JoinId, StreamFailure};
use crate::name::Name;
use crate::state::{socket_addr_from_wire, MemberInfo, MemberState};
use crate::time::Instant;
use crate::wire::{
    Alive, Dead, Message, PushNodeState, PushPull, StreamMessage, Suspect, WireState,
    VSN_DELEGATE_CUR, VSN_DELEGATE_MAX, VSN_DELEGATE_MIN, VSN_PROTOCOL_CUR, VSN_PROTOCOL_MAX,
    VSN_PROTOCOL_MIN,
};

/// Number of nodes up to which the push/pull interval is not scaled.
pub const PUSH_PULL_SCALE_THRESHOLD: usize = 32;

/// The push/pull interval for a cluster of `n` nodes: `interval` up to
/// [`PUSH_PULL_SCALE_THRESHOLD`] nodes, then
/// `interval × (ceil(log2(n) − 5) + 1)`, so 33–64 nodes double it, 65–128
/// triple it, and so on. Computed exactly in integers; saturates.
pub fn push_pull_scale(interval: Duration, n: usize) -> Duration {
    if n <= PUSH_PULL_SCALE_THRESHOLD {
        return interval;
    }
    // ceil(log2(n)) for n ≥ 2 is the bit length of n − 1.
    let ceil_log2 = usize::BITS - (n - 1).leading_zeros();
    // log2(32) = 5; n > 32 means ceil_log2 ≥ 6.
    let multiplier = ceil_log2 - 5 + 1;
    interval.saturating_mul(multiplier)
}

/// After a join, members learned by gossip bring a pull forward once they
/// stop coming for this many probe intervals (see
/// [`Node::settle_after_growth`]).
const SETTLE_QUIET_PROBES: u32 = 2;
/// At most this many such pulls per join.
const SETTLE_PULLS: u8 = 3;

/// What the next periodic push/pull sends, and when it comes early.
#[derive(Debug, Default)]
pub(super) struct PushPullPacing {
    /// The next periodic push/pull is the one a join brought forward (see
    /// [`Node::bring_push_pull_forward`]): it is there to pull, so it
    /// pushes only our own entry.
    pulls_only: bool,
    /// Members that went from dead, left or unknown to alive so far (the
    /// gossip path compares it before and after an alive).
    pub(super) members_joined: u64,
    /// Until when, after our join, growth by gossip brings a pull forward.
    settle_until: Option<Instant>,
    /// How many more pulls growth may bring forward.
    settle_pulls_left: u8,
    /// The next push/pull is one that growth brought forward.
    settle_pending: bool,
}

/// How far a join (a push/pull with each of its addresses) has got.
#[derive(Debug, Default)]
pub(super) struct JoinProgress {
    pending: usize,
    succeeded: usize,
    errors: Vec<(SocketAddr, PushPullError)>,
}

impl Node {
    /// Joins a cluster: a push/pull with every address given. Finishes with
    /// [`Completion::JoinFinished`].
    pub fn join(&mut self, now: Instant, addrs: &[SocketAddr]) -> JoinId {
        let id = JoinId(self.next_id());
        if addrs.is_empty() {
            self.complete(Completion::JoinFinished {
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

    /// The push/pull timer fired: re-arm it (scaled to the cluster size)
    /// and push/pull with a random member.
    pub(super) fn push_pull_tick(&mut self, now: Instant) {
        let interval = push_pull_scale(self.config.push_pull_interval, self.members.len());
        self.timers.schedule(TimerKey::PushPullTick, now + interval);
        let pacing = &mut self.push_pull_pacing;
        let pulls_only = core::mem::take(&mut pacing.pulls_only);
        if core::mem::take(&mut pacing.settle_pending) {
            pacing.settle_pulls_left = pacing.settle_pulls_left.saturating_sub(1);
        }
        self.periodic_push_pull(now, pulls_only);
    }

    fn periodic_push_pull(&mut self, now: Instant, pulls_only: bool) {
        let name = self.name.clone();
        let peers = self.k_random_members(1, |m| m.name == name || m.state != MemberState::Alive);
        if let Some(&(addr, _)) = peers.first() {
            self.dial_push_pull(now, addr, false, pulls_only, None);
        }
    }

    pub(super) fn start_push_pull(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        join: bool,
        join_id: Option<JoinId>,
    ) {
        self.dial_push_pull(now, addr, join, false, join_id);
    }

    fn dial_push_pull(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        join: bool,
        only_self: bool,
        join_id: Option<JoinId>,
    ) {
        let bytes = self.encode_local_push_pull(join, only_self, true);
        let id = self.dial_kind(
            addr,
            bytes,
            true,
            self.config.tcp_timeout,
            DialKind::PushPull,
        );
        self.streams.insert(
            id,
            PendingStream::PushPull {
                join,
                join_id,
                addr,
                started: now,
            },
        );
    }

    /// Our side of a push/pull, encoded for a dial or a reply, recorded as
    /// Go's `sendLocalState` does (`memberlist.node.instances`,
    /// `memberlist.size.local`).
    pub(super) fn encode_local_push_pull(
        &mut self,
        join: bool,
        only_self: bool,
        dial: bool,
    ) -> Vec<u8> {
        let pp = self.local_push_pull(join, only_self);
        // Counted only when metrics are compiled in.
        self.metrics.node_instances(|| {
            let mut counts = [0usize; 4];
            for m in self.members.iter() {
                counts[match m.state {
                    MemberState::Alive => 0,
                    MemberState::Suspect => 1,
                    MemberState::Dead => 2,
                    MemberState::Left => 3,
                }] += 1;
            }
            counts
        });
        let msg = StreamMessage::PushPull(pp);
        let bytes = if dial {
            self.encode_stream_dial(&msg)
        } else {
            self.encode_stream_reply(&msg)
        };
        self.metrics.size_local(bytes.len());
        bytes
    }

    /// Our side of a push/pull: every member, or with `only_self` just our
    /// own entry. The remote merges whatever entries it gets and answers
    /// with its whole state either way, so a push of one entry still pulls
    /// everything, for half the bytes.
    pub(super) fn local_push_pull(&mut self, join: bool, only_self: bool) -> PushPull {
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

    /// A push/pull we dialed to `addr` ended: merge the reply, and count
    /// it towards its join.
    pub(super) fn push_pull_result(
        &mut self,
        now: Instant,
        join: bool,
        join_id: Option<JoinId>,
        addr: SocketAddr,
        started: Instant,
        result: Result<Option<StreamMessage>, StreamFailure>,
    ) {
        let outcome = match result {
            Ok(Some(StreamMessage::PushPull(pp))) => self
                .merge_remote_state(now, join, pp.states, &pp.user_state)
                .map_err(PushPullError::Merge),
            Ok(Some(StreamMessage::Err(e))) => Err(PushPullError::Remote(e.error)),
            Ok(_) => Err(PushPullError::UnexpectedReply),
            Err(e) => Err(PushPullError::Stream(e)),
        };
        // Go's pushPullNode is measured whether it succeeded or not.
        self.metrics.push_pull_node(now - started);
        if let Some(jid) = join_id {
            // A join: its caller is told of each failed address.
            self.join_progress(now, jid, addr, outcome);
        } else if join && outcome.is_ok() {
            self.reconnect_succeeded(now, addr);
        } else if let Err(e) = &outcome {
            if join {
                // A reconnect attempt: the member is down, as expected.
                tracing::debug!("reconnect to {addr} failed: {e}");
            } else {
                tracing::warn!("push/pull with {addr} failed: {e}");
            }
        }
    }

    /// Lets the merge hook veto a remote state (Go `NotifyMerge`).
    fn vet_merge(&mut self, states: &[PushNodeState]) -> Result<(), MergeError> {
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
        self.hooks.allow_merge(&infos).map_err(MergeError::Vetoed)
    }

    pub(super) fn merge_remote_state(
        &mut self,
        now: Instant,
        join: bool,
        states: Vec<PushNodeState>,
        user_state: &[u8],
    ) -> Result<(), MergeError> {
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
                        from: s.name.clone().into(),
                        node: s.name.into(),
                    };
                    self.dead_node(now, d, None);
                }
                // A joining node's view of the others is empty or, when it
                // rejoins after a partition (Serf's and our reconnect join),
                // stale: it suspected everyone it could not hear. Go turns
                // these into suspicions of its own, which the rejoining node
                // then counts as independent confirmations of its stale
                // suspicions, so it declares healthy members dead the moment
                // the network heals. Claims about ourselves still count (we
                // refute them); claims about others wait for our own probes.
                // The accused still hears of it, from us alone: if we hold it
                // alive, we send it the accusation, it refutes, and its
                // refutation reaches the rejoining node by gossip (Go never
                // reconnects, so a Go node that rejoins through us would
                // otherwise keep holding it dead until a push/pull with it).
                WireState::Dead | WireState::Suspect if join && s.name != self.name => {
                    self.stats.stale_accusations_ignored += 1;
                    self.tell_accused(&s.name, s.incarnation);
                }
                WireState::Dead | WireState::Suspect => {
                    let sus = Suspect {
                        incarnation: s.incarnation,
                        node: s.name.into(),
                        from: crate::name::Name::new(&self.name),
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

    /// Sends member `name`, if we hold it alive, a suspect message about
    /// itself at `incarnation` (or the one we hold, if higher), so that it
    /// refutes and gossips a fresh alive. No suspicion starts anywhere.
    fn tell_accused(&mut self, name: &str, incarnation: u32) {
        let Some(m) = self.members.get(name) else {
            return;
        };
        if m.state != MemberState::Alive {
            return;
        }
        let (addr, incarnation) = (m.addr(), incarnation.max(m.incarnation));
        let msg = Message::Suspect(Suspect {
            incarnation,
            node: Name::new(name),
            from: Name::new(&self.name),
        });
        self.send_msg(addr, &msg);
    }

    /// Go's `verifyProtocol`: every entry's current versions must lie in
    /// the range all alive nodes (theirs and ours) support.
    fn verify_protocol(&self, remote: &[PushNodeState]) -> Result<(), MergeError> {
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
                return Err(MergeError::ProtocolIncompatible {
                    node: name.to_string(),
                    version: p,
                    min: max_pmin,
                    max: min_pmax,
                });
            }
            if d < max_dmin || d > min_dmax {
                return Err(MergeError::DelegateIncompatible {
                    node: name.to_string(),
                    version: d,
                    min: max_dmin,
                    max: min_dmax,
                });
            }
        }
        Ok(())
    }

    fn join_progress(
        &mut self,
        now: Instant,
        id: JoinId,
        addr: SocketAddr,
        outcome: Result<(), PushPullError>,
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
            self.complete(Completion::JoinFinished {
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
        let window = push_pull_scale(self.config.push_pull_interval, self.members.len());
        let pacing = &mut self.push_pull_pacing;
        pacing.settle_until = Some(now + window);
        pacing.settle_pulls_left = SETTLE_PULLS;
        let probe = self.config.probe_interval;
        let at = now + probe + self.stagger(probe);
        match self.timers.deadline_of(&TimerKey::PushPullTick) {
            Some(d) if d <= at => {}
            _ => {
                self.timers.schedule(TimerKey::PushPullTick, at);
                self.push_pull_pacing.pulls_only = true;
            }
        }
    }

    /// Gossip just told us of a member we did not hold alive, within the
    /// first push/pull interval after our join. Members still arriving
    /// that way mean others are joining too (a join storm), and in a
    /// storm gossip about some of them can end before it reaches us: in a
    /// cluster of 1,000 a few (observer, member) pairs stay unknown until
    /// the next periodic push/pull, minutes later (`e^-limit` per pair,
    /// bench/notes.md). So once such news stops coming for
    /// [`SETTLE_QUIET_PROBES`] probe intervals, we pull a full table from
    /// a random member, at most [`SETTLE_PULLS`] times per join. A join
    /// into a settled cluster learns everything from its seed and pulls
    /// no more than before. It is the periodic push/pull moved earlier,
    /// as [`Node::bring_push_pull_forward`] does; nothing new is on the
    /// wire.
    pub(super) fn settle_after_growth(&mut self, now: Instant) {
        let pacing = &mut self.push_pull_pacing;
        match pacing.settle_until {
            Some(until) if now < until && pacing.settle_pulls_left > 0 => {}
            Some(_) => {
                pacing.settle_until = None;
                return;
            }
            None => return,
        }
        let probe = self.config.probe_interval;
        let at = now + probe * SETTLE_QUIET_PROBES + self.stagger(probe);
        let pacing = &mut self.push_pull_pacing;
        match self.timers.deadline_of(&TimerKey::PushPullTick) {
            // A push/pull comes sooner anyway, and it is not ours to
            // delay: the join's early pull or a periodic one.
            Some(d) if d <= at && !pacing.settle_pending => {}
            // Ours, or nothing sooner: (re)arm it after the quiet time.
            _ => {
                self.timers.schedule(TimerKey::PushPullTick, at);
                pacing.pulls_only = true;
                pacing.settle_pending = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECS: fn(u64) -> Duration = Duration::from_secs;

    /// Go's `TestPushPullScale`, extended.
    #[test]
    fn push_pull_scale_table() {
        let sec = SECS(1);
        for n in 0..=32 {
            assert_eq!(push_pull_scale(sec, n), sec, "n = {n}");
        }
        for n in 33..=64 {
            assert_eq!(push_pull_scale(sec, n), 2 * sec, "n = {n}");
        }
        for n in 65..=128 {
            assert_eq!(push_pull_scale(sec, n), 3 * sec, "n = {n}");
        }
        assert_eq!(push_pull_scale(sec, 129), 4 * sec);
        assert_eq!(push_pull_scale(SECS(30), 1024), SECS(30 * 6));
        assert_eq!(push_pull_scale(SECS(30), 1025), SECS(30 * 7));
        assert_eq!(
            push_pull_scale(sec, usize::MAX),
            SECS(u64::from(usize::BITS) - 4)
        );
        assert_eq!(push_pull_scale(Duration::MAX, 1000), Duration::MAX);
    }
}
