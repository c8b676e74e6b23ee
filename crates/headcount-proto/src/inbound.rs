//! A bounded, prioritized queue of inbound messages, like the handoff
//! queue of Go memberlist (`net.go` `handleCommand` / `getNextMessage`).
//!
//! Go answers pings, indirect pings, acks and nacks at once and hands
//! alive, suspect, dead and user messages to a second goroutine through
//! two queues of `HandoffQueueDepth` entries each: alive messages in the
//! high-priority one, the rest in the low-priority one. The handler takes
//! the newest message of the high queue first, then the newest of the low
//! one; a message that finds its queue full is dropped.
//!
//! The core handles a burst of datagrams
//! ([`crate::Node::handle_packets`]) the same way: acks and pings
//! immediately, the rest through an [`InboundQueue`] drained after the
//! burst, so that a flood of suspicions cannot delay alive messages (and
//! refutations) and cannot make the node buffer without bound.

use std::collections::VecDeque;

/// Two bounded LIFO queues, high and low priority. Pure data structure.
#[derive(Clone, Debug)]
pub struct InboundQueue<T> {
    high: VecDeque<T>,
    low: VecDeque<T>,
    depth: usize,
    dropped: u64,
}

impl<T> InboundQueue<T> {
    /// An empty queue holding at most `depth` entries per priority (at
    /// least one).
    pub fn new(depth: usize) -> Self {
        InboundQueue {
            high: VecDeque::new(),
            low: VecDeque::new(),
            depth: depth.max(1),
            dropped: 0,
        }
    }

    /// Queues `item` with high or low priority. Returns `false`, and counts
    /// the drop, when that priority's queue is full (the new item is the
    /// one lost, as in Go).
    pub fn push(&mut self, high: bool, item: T) -> bool {
        let q = if high { &mut self.high } else { &mut self.low };
        if q.len() >= self.depth {
            self.dropped += 1;
            return false;
        }
        q.push_back(item);
        true
    }

    /// Whether the queue of that priority is full: the next
    /// [`InboundQueue::push`] to it would drop.
    pub fn is_full(&self, high: bool) -> bool {
        let q = if high { &self.high } else { &self.low };
        q.len() >= self.depth
    }

    /// The next item to handle: the newest high-priority one, else the
    /// newest low-priority one.
    pub fn pop(&mut self) -> Option<T> {
        self.high.pop_back().or_else(|| self.low.pop_back())
    }

    /// Items queued.
    pub fn len(&self) -> usize {
        self.high.len() + self.low.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.high.is_empty() && self.low.is_empty()
    }

    /// Most entries per priority.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Items dropped because their queue was full, in total.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn high_first_then_newest_first() {
        let mut q = InboundQueue::new(8);
        q.push(false, "low1");
        q.push(true, "alive1");
        q.push(false, "low2");
        q.push(true, "alive2");
        assert_eq!(q.len(), 4);
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, ["alive2", "alive1", "low2", "low1"]);
        assert!(q.is_empty());
    }

    #[test]
    fn overflow_drops_the_new_item_and_counts_it() {
        let mut q = InboundQueue::new(2);
        assert!(q.push(false, 1));
        assert!(q.push(false, 2));
        assert!(!q.push(false, 3));
        // The other priority has its own room.
        assert!(q.push(true, 10));
        assert!(q.push(true, 11));
        assert!(!q.push(true, 12));
        assert_eq!(q.dropped(), 2);
        assert_eq!(q.len(), 4);
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, [11, 10, 2, 1]);
    }

    #[test]
    fn zero_depth_still_holds_one() {
        let mut q = InboundQueue::new(0);
        assert_eq!(q.depth(), 1);
        assert!(q.push(true, ()));
        assert!(!q.push(true, ()));
    }
}
