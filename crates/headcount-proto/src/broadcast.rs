//! The transmit-limited broadcast queue that feeds gossip.
//!
//! Every gossip round piggybacks queued messages onto the packets it sends.
//! Each message is sent a limited number of times (the retransmit limit,
//! `retransmit_mult × ceil(log10(n + 1))` in a cluster of `n` nodes), freshest
//! first, and a newer message about the same subject replaces the queued one.
//! This is memberlist's `TransmitLimitedQueue`, without locks or callbacks:
//! instead of calling `Finished()`, operations return the notify tokens of the
//! broadcasts that will no longer be sent.

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use hashbrown::HashTable;

use crate::delegate::BroadcastContext;

thread_local! {
    /// The broadcasts taken by one `get_broadcasts` call, reinserted after
    /// it: one buffer per thread rather than per queue (a packet packed by
    /// compressed size takes ~100, and every node kept room for them).
    static REINSERT: Cell<Vec<(Rank, Broadcast)>> = const { Cell::new(Vec::new()) };
}
use crate::fxhash::hash_str;
use crate::name::Name;

/// How many times each gossip message is retransmitted in a cluster of `n`
/// nodes: `retransmit_mult × ceil(log10(n + 1))`.
///
/// `ceil(log10(n + 1))` is computed exactly in integers (the number of
/// decimal digits of `n`, and 0 for `n = 0`), which is what Go's float
/// computation yields: 0 nodes → 0, 1–9 → 1, 10–99 → 2, and so on.
pub fn retransmit_limit(retransmit_mult: u32, n: usize) -> usize {
    // Smallest d with 10^d ≥ n + 1, i.e. 10^d > n.
    let mut digits = 0usize;
    let mut rest = n;
    while rest > 0 {
        digits += 1;
        rest /= 10;
    }
    (retransmit_mult as usize).saturating_mul(digits)
}

/// A message to gossip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broadcast {
    /// What the message is about. Queueing a broadcast with a key drops a
    /// queued broadcast with the same key (memberlist keys its own messages
    /// by node name). `None` for messages that never invalidate each other.
    pub key: Option<Name>,
    /// The encoded message, shared rather than copied on every transmission.
    pub payload: Arc<[u8]>,
    /// A token reported back when the queue is done with this broadcast:
    /// sent often enough, replaced, pruned or reset.
    pub notify: Option<u64>,
}

impl Broadcast {
    /// A broadcast that never replaces nor is replaced by another.
    pub fn unique(payload: impl Into<Arc<[u8]>>) -> Self {
        Broadcast {
            key: None,
            payload: payload.into(),
            notify: None,
        }
    }

    /// A broadcast that replaces any queued broadcast with the same `key`.
    pub fn keyed(key: impl Into<Name>, payload: impl Into<Arc<[u8]>>) -> Self {
        Broadcast {
            key: Some(key.into()),
            payload: payload.into(),
            notify: None,
        }
    }

    /// The same broadcast, reporting `token` when the queue is done with it.
    pub fn with_notify(mut self, token: u64) -> Self {
        self.notify = Some(token);
        self
    }
}

/// A queued broadcast's place in the send order: fewest transmissions first,
/// then the largest payload, then the newest (highest id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    transmits: u32,
    /// Payload length, saturated at `u32::MAX` (16 bytes a rank, not 24:
    /// a node that just joined holds one per member).
    len: Reverse<u32>,
    id: Reverse<u64>,
}

/// A length as stored in a [`Rank`].
fn rank_len(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

impl Rank {
    /// The first rank of tier `transmits` whose payload is at most `len`.
    fn first_fitting(transmits: u32, len: usize) -> Rank {
        Rank {
            transmits,
            len: Reverse(rank_len(len)),
            id: Reverse(u64::MAX),
        }
    }

    /// A rank after every real rank of tier `transmits` (ids start at 1).
    fn tier_end(transmits: u32) -> Rank {
        Rank {
            transmits,
            len: Reverse(0),
            id: Reverse(0),
        }
    }
}

/// Messages waiting to be gossiped, each sent a limited number of times.
///
/// [`get_broadcasts`](Self::get_broadcasts) fills a byte budget by walking
/// the queue in priority order: fewest transmissions first, then the largest
/// payload, then the newest. A message that does not fit is skipped in favour
/// of the next one that does. Every message taken has its transmission count
/// raised; once it reaches the retransmit limit for the current cluster size
/// it leaves the queue and its notify token is returned.
///
/// The same queue serves memberlist's own membership messages and is offered
/// to applications for their own broadcasts (the `GetBroadcasts` delegate
/// hook).
///
/// ```
/// use headcount_proto::broadcast::{Broadcast, TransmitLimitedQueue};
///
/// let mut q = TransmitLimitedQueue::new();
/// q.queue(Broadcast::keyed("n1", b"alive n1 #1".to_vec()).with_notify(1));
/// q.queue(Broadcast::unique(b"hello".to_vec()));
/// // A newer message about n1 replaces the queued one, whose token comes back.
/// assert_eq!(q.queue(Broadcast::keyed("n1", b"alive n1 #2".to_vec()).with_notify(2)), vec![1]);
/// assert_eq!(q.len(), 2);
///
/// // 3 nodes, retransmit multiplier 1: each message is sent once.
/// // Budget 20 bytes, 2 bytes of framing per message: 13 + 7 = 20.
/// let (msgs, finished) = q.get_broadcasts(2, 20, 3, 1);
/// assert_eq!(msgs, vec![b"alive n1 #2"[..].into(), b"hello"[..].into()]);
/// assert_eq!(finished, vec![2]);
/// assert!(q.is_empty());
/// ```
#[derive(Clone, Debug, Default)]
pub struct TransmitLimitedQueue {
    order: BTreeMap<Rank, Broadcast>,
    /// The ranks of keyed broadcasts, hashed by the key stored in the
    /// broadcast (keys are not duplicated). Ranks are unique, so an entry
    /// whose rank is known is found by comparing ranks.
    by_key: HashTable<Rank>,
    /// The last id handed out; 0 when the queue is empty.
    last_id: u64,
}

impl TransmitLimitedQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of queued broadcasts.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Whether a broadcast with this key is queued.
    pub fn contains_key(&self, key: &str) -> bool {
        self.rank_of(key).is_some()
    }

    /// The queued broadcasts with their transmission counts, in the order
    /// they would be sent given an unlimited budget.
    pub fn iter(&self) -> impl Iterator<Item = (&Broadcast, u32)> + '_ {
        self.order.iter().map(|(rank, b)| (b, rank.transmits))
    }

    /// The rank of the queued broadcast with this key.
    fn rank_of(&self, key: &str) -> Option<Rank> {
        let order = &self.order;
        self.by_key
            .find(hash_str(key), |r| {
                order.get(r).and_then(|b| b.key.as_deref()) == Some(key)
            })
            .copied()
    }

    /// Removes the index entry of the broadcast with `key` and `rank`.
    fn unindex(&mut self, key: &str, rank: Rank) {
        if let Ok(entry) = self.by_key.find_entry(hash_str(key), |r| *r == rank) {
            entry.remove();
        }
    }

    /// Queues `b`, first dropping a queued broadcast with the same key.
    /// Returns the notify tokens of the broadcasts it replaced.
    pub fn queue(&mut self, b: Broadcast) -> Vec<u64> {
        self.queue_with_transmits(b, 0)
    }

    /// [`queue`](Self::queue) with a starting transmission count (tests).
    fn queue_with_transmits(&mut self, b: Broadcast, transmits: u32) -> Vec<u64> {
        let mut finished = Vec::new();
        // Take the id after removing the old entry, so that emptying the
        // queue (which resets ids) cannot rank this broadcast as older
        // than later ones.
        let old = b.key.as_deref().and_then(|key| self.rank_of(key));
        if let (Some(old), Some(key)) = (old, b.key.as_deref()) {
            self.unindex(key, old);
            if let Some(gone) = self.order.remove(&old) {
                finished.extend(gone.notify);
            }
            self.reset_ids_if_empty();
        }
        self.last_id = self.last_id.wrapping_add(1).max(1);
        let rank = Rank {
            transmits,
            len: Reverse(rank_len(b.payload.len())),
            id: Reverse(self.last_id),
        };
        if let Some(key) = &b.key {
            let order = &self.order;
            self.by_key.insert_unique(hash_str(key), rank, |r| {
                order
                    .get(r)
                    .and_then(|b| b.key.as_deref())
                    .map_or(0, hash_str)
            });
        }
        self.order.insert(rank, b);
        finished
    }

    fn reset_ids_if_empty(&mut self) {
        if self.order.is_empty() {
            self.last_id = 0;
            self.release_index();
        }
    }

    /// Frees the key index of an empty queue when it grew large (a hash
    /// table keeps its capacity when emptied, and a node that once queued
    /// news about every member would keep that table for good).
    fn release_index(&mut self) {
        if self.by_key.capacity() > 64 {
            self.by_key = HashTable::new();
        }
    }

    /// Takes the broadcasts to piggyback on one packet.
    ///
    /// Each message costs `overhead + payload.len()` bytes of the `limit`
    /// budget. In priority order, the first message that fits the remaining
    /// budget is taken, until no queued message fits. Taken messages count
    /// one more transmission; those that reach
    /// [`retransmit_limit`]`(retransmit_mult, num_nodes)` leave the queue.
    ///
    /// Returns the payloads in the order taken and the notify tokens of the
    /// broadcasts that left the queue.
    pub fn get_broadcasts(
        &mut self,
        overhead: usize,
        limit: usize,
        num_nodes: usize,
        retransmit_mult: u32,
    ) -> (Vec<Arc<[u8]>>, Vec<u64>) {
        let mut msgs = Vec::new();
        let mut finished = Vec::new();
        self.get_broadcasts_into(
            overhead,
            limit,
            num_nodes,
            retransmit_mult,
            &mut msgs,
            &mut finished,
        );
        (msgs, finished)
    }

    /// The user-broadcast hook's answer: [`get_broadcasts`](Self::get_broadcasts)
    /// with the budget, cluster size and retransmit multiplier the node
    /// passes to [`Hooks::broadcasts`](crate::Hooks::broadcasts), each
    /// payload copied out. The notify tokens of broadcasts that are done
    /// are dropped; call `get_broadcasts` to keep them.
    ///
    /// ```
    /// use headcount_proto::broadcast::{Broadcast, TransmitLimitedQueue};
    /// use headcount_proto::BroadcastContext;
    ///
    /// let mut q = TransmitLimitedQueue::new();
    /// q.queue(Broadcast::keyed("config", b"v1".to_vec()));
    /// // A newer value under the same key replaces the queued one.
    /// q.queue(Broadcast::keyed("config", b"v2".to_vec()));
    /// let ctx = BroadcastContext::new(2, 1400, 5, 4);
    /// assert_eq!(q.get_broadcasts_for(&ctx), vec![b"v2".to_vec()]);
    /// ```
    pub fn get_broadcasts_for(&mut self, ctx: &BroadcastContext) -> Vec<Vec<u8>> {
        let (msgs, _finished) =
            self.get_broadcasts(ctx.overhead, ctx.limit, ctx.num_nodes, ctx.retransmit_mult);
        msgs.iter().map(|m| m.to_vec()).collect()
    }

    /// [`get_broadcasts`](Self::get_broadcasts) appending to caller-owned
    /// buffers, to avoid allocating on every gossip round. Returns the bytes
    /// used, overheads included.
    pub fn get_broadcasts_into(
        &mut self,
        overhead: usize,
        limit: usize,
        num_nodes: usize,
        retransmit_mult: u32,
        msgs: &mut Vec<Arc<[u8]>>,
        finished: &mut Vec<u64>,
    ) -> usize {
        let Some(first) = self.order.keys().next() else {
            return 0;
        };
        let transmit_limit = retransmit_limit(retransmit_mult, num_nodes) as u64;
        let mut tier = first.transmits;
        let mut used = 0usize;
        let mut reinsert = REINSERT.try_with(Cell::take).unwrap_or_default();
        loop {
            let free = limit.saturating_sub(used.saturating_add(overhead));
            if free == 0 {
                break;
            }
            // Common case first: the queue's first broadcast is of this
            // tier and fits, so it is the one the range search below would
            // find (the smallest rank of the tier whose length fits), and
            // `pop_first` takes it without comparing keys on the way down.
            if let Some(entry) = self.order.first_entry() {
                let rank = *entry.key();
                if rank.transmits == tier && rank.len.0 as usize <= free {
                    let b = entry.remove();
                    used += self.take(
                        rank,
                        b,
                        overhead,
                        transmit_limit,
                        msgs,
                        finished,
                        &mut reinsert,
                    );
                    continue;
                }
            }
            let found = self
                .order
                .range(Rank::first_fitting(tier, free)..)
                .next()
                .map(|(rank, _)| *rank)
                .filter(|rank| rank.transmits == tier);
            let Some(rank) = found else {
                // Nothing left in this tier fits: move to the next tier.
                let next = self
                    .order
                    .range((Bound::Excluded(Rank::tier_end(tier)), Bound::Unbounded))
                    .next();
                match next {
                    Some((rank, _)) => {
                        tier = rank.transmits;
                        continue;
                    }
                    None => break,
                }
            };
            let Some(b) = self.order.remove(&rank) else {
                break; // unreachable: the rank was just found
            };
            used += self.take(
                rank,
                b,
                overhead,
                transmit_limit,
                msgs,
                finished,
                &mut reinsert,
            );
        }
        for (rank, b) in reinsert.drain(..) {
            self.order.insert(rank, b);
        }
        let _ = REINSERT.try_with(|r| r.set(reinsert));
        self.reset_ids_if_empty();
        used
    }

    /// Takes `b` (just removed from `order`, at `rank`) into `msgs`: it
    /// leaves the queue when this was its last transmission, or goes to
    /// `reinsert` one transmission further. Returns the bytes it used.
    #[allow(clippy::too_many_arguments)]
    fn take(
        &mut self,
        rank: Rank,
        b: Broadcast,
        overhead: usize,
        transmit_limit: u64,
        msgs: &mut Vec<Arc<[u8]>>,
        finished: &mut Vec<u64>,
        reinsert: &mut Vec<(Rank, Broadcast)>,
    ) -> usize {
        let used = overhead + b.payload.len();
        if u64::from(rank.transmits) + 1 >= transmit_limit {
            if let Some(key) = &b.key {
                self.unindex(key, rank);
            }
            finished.extend(b.notify);
            msgs.push(b.payload);
        } else {
            msgs.push(Arc::clone(&b.payload));
            // Reinserted after the walk, so it is not taken twice.
            let bumped = Rank {
                transmits: rank.transmits.saturating_add(1),
                ..rank
            };
            if let Some(key) = &b.key {
                if let Some(slot) = self.by_key.find_mut(hash_str(key), |r| *r == rank) {
                    *slot = bumped;
                }
            }
            reinsert.push((bumped, b));
        }
        used
    }

    /// Drops queued broadcasts beyond the `max_retain` highest-priority ones
    /// (the most transmitted, then smallest, then oldest go first). Returns
    /// their notify tokens.
    pub fn prune(&mut self, max_retain: usize) -> Vec<u64> {
        let mut finished = Vec::new();
        while self.order.len() > max_retain {
            let Some((rank, b)) = self.order.pop_last() else {
                break;
            };
            if let Some(key) = &b.key {
                self.unindex(key, rank);
            }
            finished.extend(b.notify);
        }
        self.reset_ids_if_empty();
        finished
    }

    /// Drops every queued broadcast. Returns their notify tokens, in
    /// priority order.
    pub fn reset(&mut self) -> Vec<u64> {
        let finished = self.order.values().filter_map(|b| b.notify).collect();
        self.order.clear();
        self.by_key.clear();
        self.last_id = 0;
        self.release_index();
        finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG18: [&str; 4] = [
        "1. this is a test.",
        "2. this is a test.",
        "3. this is a test.",
        "4. this is a test.",
    ];

    fn text(p: &Arc<[u8]>) -> &str {
        std::str::from_utf8(p).unwrap()
    }

    /// The queued payloads (as text) with their transmit counts, in send
    /// order.
    fn view(q: &TransmitLimitedQueue) -> Vec<(&str, u32)> {
        q.iter().map(|(b, t)| (text(&b.payload), t)).collect()
    }

    fn keyed(key: &str, payload: &str, token: u64) -> Broadcast {
        Broadcast::keyed(key, payload.as_bytes()).with_notify(token)
    }

    /// Go's `TestTransmitLimited_Queue`: equal lengths, newest first; a
    /// keyed broadcast replaces the queued one and becomes the newest.
    #[test]
    fn newest_first_and_invalidation_by_key() {
        let mut q = TransmitLimitedQueue::new();
        assert!(q.queue(keyed("test", "", 1)).is_empty());
        assert!(q.queue(keyed("foo", "", 2)).is_empty());
        assert!(q.queue(keyed("bar", "", 3)).is_empty());
        assert_eq!(q.len(), 3);
        let keys = |q: &TransmitLimitedQueue| -> Vec<String> {
            q.iter()
                .map(|(b, _)| b.key.clone().unwrap().into())
                .collect()
        };
        assert_eq!(keys(&q), ["bar", "foo", "test"]);

        assert_eq!(q.queue(keyed("test", "", 4)), vec![1]);
        assert_eq!(q.len(), 3);
        assert_eq!(keys(&q), ["test", "bar", "foo"]);
        assert!(q.contains_key("test"));
        assert!(!q.contains_key("nope"));
    }

    /// Go's `TestLimitedBroadcastLess` and `TestTransmitLimited_ordering`.
    #[test]
    fn order_is_transmits_then_larger_then_newer() {
        let mut q = TransmitLimitedQueue::new();
        q.queue_with_transmits(Broadcast::unique(&b"node0"[..]), 0);
        q.queue_with_transmits(Broadcast::unique(&b"node1"[..]), 10);
        q.queue_with_transmits(Broadcast::unique(&b"node2"[..]), 3);
        q.queue_with_transmits(Broadcast::unique(&b"node3"[..]), 4);
        q.queue_with_transmits(Broadcast::unique(&b"node4"[..]), 7);
        assert_eq!(
            view(&q),
            [
                ("node0", 0),
                ("node2", 3),
                ("node3", 4),
                ("node4", 7),
                ("node1", 10)
            ]
        );

        let mut q = TransmitLimitedQueue::new();
        q.queue(Broadcast::unique(&b"small-old"[..]));
        q.queue(Broadcast::unique(&b"larger-older"[..]));
        q.queue(Broadcast::unique(&b"larger-newer"[..]));
        q.queue(Broadcast::unique(&b"small-new"[..]));
        q.queue_with_transmits(Broadcast::unique(&b"a much larger but sent once"[..]), 1);
        assert_eq!(
            view(&q),
            [
                ("larger-newer", 0),
                ("larger-older", 0),
                ("small-new", 0),
                ("small-old", 0),
                ("a much larger but sent once", 1),
            ]
        );
    }

    /// Go's `TestTransmitLimited_GetBroadcasts`.
    #[test]
    fn budget_counts_overhead() {
        let mut q = TransmitLimitedQueue::new();
        for (key, msg) in ["test", "foo", "bar", "baz"].iter().zip(MSG18) {
            q.queue(Broadcast::keyed(*key, msg.as_bytes()));
        }
        // 4 × (18 + 2) = 80: all fit.
        let (all, _) = q.get_broadcasts(2, 80, 10, 3);
        assert_eq!(all.len(), 4);
        // 3 × (18 + 3) = 63, 17 left: only three.
        let (partial, _) = q.get_broadcasts(3, 80, 10, 3);
        assert_eq!(partial.len(), 3);
    }

    /// Go's `TestRetransmitLimit` plus the digit boundaries.
    #[test]
    fn retransmit_limit_table() {
        let cases: &[(u32, usize, usize)] = &[
            (3, 0, 0),
            (3, 1, 3),
            (3, 99, 6),
            (4, 9, 4),
            (4, 10, 8),
            (4, 999, 12),
            (4, 1000, 16),
            (2, usize::MAX, 40),
        ];
        for &(mult, n, want) in cases {
            assert_eq!(retransmit_limit(mult, n), want, "mult {mult}, n {n}");
        }
    }

    /// Go's `TestTransmitLimited_GetBroadcasts_Limit`, with tokens.
    #[test]
    fn retransmit_limit_removes_and_reports() {
        let mut q = TransmitLimitedQueue::new();
        assert_eq!(retransmit_limit(1, 10), 2);
        for (i, msg) in MSG18.iter().enumerate() {
            q.queue(Broadcast::unique(msg.as_bytes()).with_notify(i as u64 + 1));
        }
        assert_eq!(q.last_id, 4);

        let (m1, f1) = q.get_broadcasts(3, 80, 10, 1);
        assert_eq!(
            m1.iter().map(text).collect::<Vec<_>>(),
            [MSG18[3], MSG18[2], MSG18[1]]
        );
        assert!(f1.is_empty());
        assert_eq!(q.last_id, 4);

        // The untouched one first, then two second sends, which finish.
        let (m2, f2) = q.get_broadcasts(3, 80, 10, 1);
        assert_eq!(
            m2.iter().map(text).collect::<Vec<_>>(),
            [MSG18[0], MSG18[3], MSG18[2]]
        );
        assert_eq!(f2, vec![4, 3]);
        assert_eq!(q.last_id, 4);

        let (m3, f3) = q.get_broadcasts(3, 80, 10, 1);
        assert_eq!(
            m3.iter().map(text).collect::<Vec<_>>(),
            [MSG18[1], MSG18[0]]
        );
        assert_eq!(f3, vec![2, 1]);
        assert!(q.is_empty());
        assert_eq!(q.last_id, 0, "ids restart once empty");

        let (m4, f4) = q.get_broadcasts(3, 80, 10, 1);
        assert!(m4.is_empty() && f4.is_empty());
    }

    #[test]
    fn limit_zero_sends_once() {
        // No known nodes: retransmit limit 0, every message goes out once.
        let mut q = TransmitLimitedQueue::new();
        q.queue(Broadcast::unique(&b"x"[..]).with_notify(9));
        let (m, f) = q.get_broadcasts(0, 100, 0, 4);
        assert_eq!(m.len(), 1);
        assert_eq!(f, vec![9]);
        assert!(q.is_empty());
    }

    /// Too-large messages are skipped for smaller ones, across tiers.
    #[test]
    fn skips_what_does_not_fit() {
        let mut q = TransmitLimitedQueue::new();
        q.queue(Broadcast::unique(&[b'a'; 50][..]));
        q.queue(Broadcast::unique(&[b'b'; 30][..]));
        q.queue(Broadcast::unique(&[b'c'; 10][..]));
        q.queue_with_transmits(Broadcast::unique(&[b'd'; 5][..]), 2);
        q.queue_with_transmits(Broadcast::unique(&[b'e'; 20][..]), 1);
        // Budget 45, overhead 1. Tier 0: a (51) does not fit, b (31) does,
        // 13 left; c (11) does, 2 left. Tiers 1 and 2: e (21), d (6) don't.
        let (m, _) = q.get_broadcasts(1, 45, 10, 10);
        assert_eq!(m.iter().map(|p| p.len()).collect::<Vec<_>>(), [30, 10]);
        // Budget 35. Tier 0: a no. Tier 1 (b, e, c by size): b (31), 3
        // left; nothing else fits.
        let (m, _) = q.get_broadcasts(1, 35, 10, 10);
        assert_eq!(m.iter().map(|p| p.len()).collect::<Vec<_>>(), [30]);
        // Budget 40. Tier 0: a no. Tier 1 (e, c): e (21), 18 left; c (11),
        // 7 left. Tier 2 (b, d): b no, d (6), 1 left.
        let (m, _) = q.get_broadcasts(1, 40, 10, 10);
        assert_eq!(m.iter().map(|p| p.len()).collect::<Vec<_>>(), [20, 10, 5]);
        // a was never sent.
        assert_eq!(
            q.iter().next().map(|(b, t)| (b.payload.len(), t)),
            Some((50, 0))
        );
    }

    #[test]
    fn exact_fit_and_zero_free() {
        let mut q = TransmitLimitedQueue::new();
        q.queue(Broadcast::unique(&[0u8; 8][..]));
        q.queue(Broadcast::unique(&[][..]));
        // 8 + 2 = 10 fills the budget; then free is 0 and even the empty
        // message is not taken (as in Go).
        let mut msgs = Vec::new();
        let mut fin = Vec::new();
        let used = q.get_broadcasts_into(2, 10, 5, 3, &mut msgs, &mut fin);
        assert_eq!(used, 10);
        assert_eq!(msgs.len(), 1);
        // Overhead alone exceeds the budget.
        assert!(q.get_broadcasts(20, 10, 5, 3).0.is_empty());
        // Huge overhead does not overflow.
        assert!(q.get_broadcasts(usize::MAX, usize::MAX, 5, 3).0.is_empty());
    }

    #[test]
    fn rescheduled_keyed_broadcast_keeps_key_index() {
        let mut q = TransmitLimitedQueue::new();
        q.queue(keyed("n1", "old", 1));
        q.get_broadcasts(0, 100, 10, 3); // n1 now at 1 transmit
        assert!(q.contains_key("n1"));
        // Replacing after a transmit still finds and removes it.
        assert_eq!(q.queue(keyed("n1", "new", 2)), vec![1]);
        assert_eq!(view(&q), [("new", 0)]);
    }

    /// Go's `TestTransmitLimited_Prune`.
    #[test]
    fn prune_drops_lowest_priority() {
        let mut q = TransmitLimitedQueue::new();
        q.queue(keyed("test", MSG18[0], 1));
        q.queue(keyed("foo", MSG18[1], 2));
        q.queue(keyed("bar", MSG18[2], 3));
        q.queue(keyed("baz", MSG18[3], 4));
        assert_eq!(q.prune(2), vec![1, 2]);
        assert_eq!(q.len(), 2);
        assert_eq!(view(&q), [(MSG18[3], 0), (MSG18[2], 0)]);
        assert!(!q.contains_key("test"));
        assert!(q.prune(5).is_empty());
        assert_eq!(q.prune(0), vec![3, 4]);
        assert!(q.is_empty());
        assert!(q.by_key.is_empty());
    }

    #[test]
    fn reset_reports_everything() {
        let mut q = TransmitLimitedQueue::new();
        q.queue(keyed("a", "aa", 1));
        q.queue(Broadcast::unique(&b"b"[..]));
        q.queue(keyed("c", "ccc", 3));
        assert_eq!(q.reset(), vec![3, 1]);
        assert!(q.is_empty());
        assert!(!q.contains_key("a"));
        assert!(q.queue(keyed("a", "x", 5)).is_empty());
    }

    /// A scripted random workload against a naive sorted-vector model.
    #[test]
    fn matches_naive_model() {
        // Model entry: (transmits, len, id, key, token).
        type M = (u32, usize, u64, Option<u8>, u64);
        let mut q = TransmitLimitedQueue::new();
        let mut model: Vec<M> = Vec::new();
        let mut id = 0u64;
        let mut token = 0u64;
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let sort = |m: &mut Vec<M>| m.sort_by_key(|e| (e.0, Reverse(e.1), Reverse(e.2)));
        for _ in 0..3000 {
            match rand() % 5 {
                0..=2 => {
                    let len = (rand() % 40) as usize;
                    let key = (rand() % 3 != 0).then(|| (rand() % 12) as u8);
                    token += 1;
                    let mut b = Broadcast::unique(vec![0u8; len]).with_notify(token);
                    b.key = key.map(|k| Name::from(k.to_string()));
                    let got = q.queue(b);
                    let mut want = Vec::new();
                    if key.is_some() {
                        model.retain(|e| {
                            let same = e.3 == key;
                            if same {
                                want.push(e.4);
                            }
                            !same
                        });
                        if model.is_empty() {
                            id = 0;
                        }
                    }
                    id += 1;
                    model.push((0, len, id, key, token));
                    assert_eq!(got, want);
                }
                3 => {
                    let overhead = (rand() % 4) as usize;
                    let limit = (rand() % 120) as usize;
                    let nodes = (rand() % 30) as usize;
                    let tl = retransmit_limit(2, nodes) as u32;
                    let (got, fin) = q.get_broadcasts(overhead, limit, nodes, 2);
                    // Model: walk tiers in order, take the first that fits.
                    sort(&mut model);
                    let mut used = 0;
                    let mut taken = Vec::new();
                    let mut want_fin = Vec::new();
                    let mut remaining: Vec<M> = Vec::new();
                    for e in model.drain(..) {
                        let free = limit.saturating_sub(used + overhead);
                        if free > 0 && e.1 <= free {
                            used += overhead + e.1;
                            taken.push(e.1);
                            if e.0 + 1 >= tl {
                                want_fin.push(e.4);
                            } else {
                                remaining.push((e.0 + 1, e.1, e.2, e.3, e.4));
                            }
                        } else {
                            remaining.push(e);
                        }
                    }
                    model = remaining;
                    if model.is_empty() {
                        id = 0;
                    }
                    assert_eq!(got.iter().map(|p| p.len()).collect::<Vec<_>>(), taken);
                    assert_eq!(fin, want_fin);
                }
                _ => {
                    let keep = (rand() % 20) as usize;
                    sort(&mut model);
                    let mut want = Vec::new();
                    while model.len() > keep {
                        want.push(model.pop().unwrap().4);
                    }
                    if model.is_empty() {
                        id = 0;
                    }
                    assert_eq!(q.prune(keep), want);
                }
            }
            sort(&mut model);
            let got: Vec<(u32, usize, Option<String>)> = q
                .iter()
                .map(|(b, t)| (t, b.payload.len(), b.key.as_ref().map(|k| k.to_string())))
                .collect();
            let want: Vec<(u32, usize, Option<String>)> = model
                .iter()
                .map(|e| (e.0, e.1, e.3.map(|k| k.to_string())))
                .collect();
            assert_eq!(got, want);
            assert_eq!(
                q.by_key.len(),
                model.iter().filter(|e| e.3.is_some()).count()
            );
        }
    }
}
