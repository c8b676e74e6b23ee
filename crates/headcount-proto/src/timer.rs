//! A deterministic queue of named deadlines.
//!
//! The core has no clock and no timers of its own: it keeps its pending
//! deadlines (next probe, probe timeouts, suspicion timeouts, …) in a
//! [`TimerQueue`], tells the driver the earliest one, and when the driver
//! reports the time, pops whatever has expired. Expired timers come out in
//! deadline order, ties broken by the order in which they were scheduled, so
//! runs are reproducible.

use std::collections::BTreeMap;

use crate::time::Instant;

/// Where a key sits in the deadline order: its deadline, then the sequence
/// number stamped when it was scheduled.
type Slot = (Instant, u64);

/// Pending deadlines, at most one per key.
///
/// ```
/// use headcount_proto::timer::TimerQueue;
/// use headcount_proto::Instant;
///
/// let mut timers = TimerQueue::new();
/// timers.schedule("probe", Instant::from_millis(1_000));
/// timers.schedule("gossip", Instant::from_millis(200));
/// timers.schedule("probe", Instant::from_millis(500)); // replaces 1 000
/// assert_eq!(timers.next_deadline(), Some(Instant::from_millis(200)));
///
/// let now = Instant::from_millis(600);
/// assert_eq!(timers.pop_expired(now), Some(("gossip", Instant::from_millis(200))));
/// assert_eq!(timers.pop_expired(now), Some(("probe", Instant::from_millis(500))));
/// assert_eq!(timers.pop_expired(now), None);
/// assert!(timers.is_empty());
/// ```
#[derive(Clone, Debug)]
pub struct TimerQueue<K> {
    /// Deadline order; the value is the key.
    by_deadline: BTreeMap<Slot, K>,
    /// Key → its slot in `by_deadline`.
    by_key: BTreeMap<K, Slot>,
    /// Next sequence number; orders timers with equal deadlines.
    next_seq: u64,
}

impl<K> Default for TimerQueue<K> {
    fn default() -> Self {
        TimerQueue {
            by_deadline: BTreeMap::new(),
            by_key: BTreeMap::new(),
            next_seq: 0,
        }
    }
}

impl<K: Ord + Clone> TimerQueue<K> {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the deadline of `key` to `at`, replacing any pending deadline for
    /// it. A replaced timer counts as newly scheduled for tie-breaking.
    pub fn schedule(&mut self, key: K, at: Instant) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let slot = (at, seq);
        if let Some(old) = self.by_key.insert(key.clone(), slot) {
            self.by_deadline.remove(&old);
        }
        self.by_deadline.insert(slot, key);
    }

    /// Removes the pending deadline of `key`. Returns whether there was one.
    pub fn cancel(&mut self, key: &K) -> bool {
        match self.by_key.remove(key) {
            Some(slot) => {
                self.by_deadline.remove(&slot);
                true
            }
            None => false,
        }
    }

    /// The earliest pending deadline, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.by_deadline.keys().next().map(|&(at, _)| at)
    }

    /// Removes and returns the earliest timer whose deadline is at or before
    /// `now`, with its deadline. Timers with equal deadlines come out in the
    /// order they were (last) scheduled.
    pub fn pop_expired(&mut self, now: Instant) -> Option<(K, Instant)> {
        let entry = self.by_deadline.first_entry()?;
        if entry.key().0 > now {
            return None;
        }
        let ((at, _), key) = entry.remove_entry();
        self.by_key.remove(&key);
        Some((key, at))
    }

    /// Whether `key` has a pending deadline.
    pub fn is_scheduled(&self, key: &K) -> bool {
        self.by_key.contains_key(key)
    }

    /// The pending deadline of `key`, if any.
    pub fn deadline_of(&self, key: &K) -> Option<Instant> {
        self.by_key.get(key).map(|&(at, _)| at)
    }

    /// The pending timers in the order they would expire.
    pub fn iter(&self) -> impl Iterator<Item = (&K, Instant)> + '_ {
        self.by_deadline.iter().map(|(&(at, _), k)| (k, at))
    }

    /// Removes every pending timer.
    pub fn clear(&mut self) {
        self.by_deadline.clear();
        self.by_key.clear();
    }
}

impl<K> TimerQueue<K> {
    /// The number of pending timers.
    pub fn len(&self) -> usize {
        self.by_deadline.len()
    }

    /// Whether no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.by_deadline.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn drain(q: &mut TimerQueue<&'static str>, now: Instant) -> Vec<(&'static str, u64)> {
        std::iter::from_fn(|| q.pop_expired(now))
            .map(|(k, t)| (k, t.as_micros() / 1000))
            .collect()
    }

    #[test]
    fn pops_in_deadline_then_schedule_order() {
        let mut q = TimerQueue::new();
        q.schedule("c", at(30));
        q.schedule("a", at(10));
        q.schedule("b2", at(20));
        q.schedule("b1", at(20));
        q.schedule("d", at(40));
        assert_eq!(q.len(), 5);
        assert_eq!(q.next_deadline(), Some(at(10)));
        assert_eq!(q.pop_expired(at(9)), None);
        assert_eq!(
            drain(&mut q, at(30)),
            vec![("a", 10), ("b2", 20), ("b1", 20), ("c", 30)]
        );
        assert_eq!(q.len(), 1);
        assert_eq!(q.next_deadline(), Some(at(40)));
        assert_eq!(drain(&mut q, at(1000)), vec![("d", 40)]);
        assert!(q.is_empty());
        assert_eq!(q.next_deadline(), None);
    }

    #[test]
    fn reschedule_replaces_and_counts_as_newer() {
        let mut q = TimerQueue::new();
        q.schedule("x", at(10));
        q.schedule("y", at(10));
        q.schedule("x", at(50));
        assert_eq!(q.len(), 2);
        assert_eq!(q.deadline_of(&"x"), Some(at(50)));
        q.schedule("x", at(10)); // now scheduled after y
        assert_eq!(drain(&mut q, at(10)), vec![("y", 10), ("x", 10)]);
        // Moving a deadline earlier works too.
        q.schedule("z", at(100));
        q.schedule("z", at(1));
        assert_eq!(q.pop_expired(at(1)), Some(("z", at(1))));
        assert!(q.is_empty());
    }

    #[test]
    fn cancel_and_queries() {
        let mut q = TimerQueue::new();
        q.schedule("a", at(5));
        q.schedule("b", at(7));
        assert!(q.is_scheduled(&"a"));
        assert!(q.cancel(&"a"));
        assert!(!q.cancel(&"a"));
        assert!(!q.is_scheduled(&"a"));
        assert_eq!(q.deadline_of(&"a"), None);
        assert_eq!(q.deadline_of(&"b"), Some(at(7)));
        assert_eq!(q.next_deadline(), Some(at(7)));
        assert_eq!(q.iter().collect::<Vec<_>>(), vec![(&"b", at(7))]);
        q.clear();
        assert!(q.is_empty());
        assert!(!q.is_scheduled(&"b"));
    }

    #[test]
    fn popped_key_can_be_rescheduled() {
        let mut q = TimerQueue::new();
        q.schedule(1u32, at(1));
        assert_eq!(q.pop_expired(at(1)), Some((1, at(1))));
        assert!(!q.is_scheduled(&1));
        q.schedule(1, at(2));
        assert_eq!(q.deadline_of(&1), Some(at(2)));
        assert_eq!(q.len(), 1);
    }

    /// A scripted random workload checked against a naive model.
    #[test]
    fn matches_naive_model() {
        let mut q = TimerQueue::new();
        // (key, deadline, seq) — the model.
        let mut model: Vec<(u8, u64, u64)> = Vec::new();
        let mut seq = 0u64;
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut now = 0u64;
        for _ in 0..5000 {
            match rand() % 4 {
                0 | 1 => {
                    let key = (rand() % 16) as u8;
                    let t = now + rand() % 50;
                    q.schedule(key, at(t));
                    model.retain(|e| e.0 != key);
                    model.push((key, t, seq));
                    seq += 1;
                }
                2 => {
                    let key = (rand() % 16) as u8;
                    let had = model.iter().any(|e| e.0 == key);
                    model.retain(|e| e.0 != key);
                    assert_eq!(q.cancel(&key), had);
                }
                _ => {
                    now += rand() % 20;
                    model.sort_by_key(|e| (e.1, e.2));
                    while let Some(&(key, t, _)) = model.first().filter(|e| e.1 <= now) {
                        assert_eq!(q.pop_expired(at(now)), Some((key, at(t))));
                        model.remove(0);
                    }
                    assert_eq!(q.pop_expired(at(now)), None);
                }
            }
            assert_eq!(q.len(), model.len());
            assert_eq!(q.next_deadline(), model.iter().map(|e| at(e.1)).min());
        }
    }
}
