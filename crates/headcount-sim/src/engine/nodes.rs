//! Node lifecycle: slots, start and stop, resuming a starved node, inbound
//! lag and the Serf-style reconnect loop.

use core::time::Duration;
use std::collections::VecDeque;

use headcount_proto::{Instant, LocalNode, Node};
use rand_core::RngCore;

use super::{addr_of, name_of, Action, Backlogged, Ev, Sim, Slot, Status};
use crate::net::splitmix64;

impl Sim {
    /// Makes sure slots up to `i` exist.
    pub(super) fn ensure_slot(&mut self, i: usize) {
        while self.slots.len() <= i {
            self.slots.push(Slot {
                node: None,
                gen: 0,
                status: Status::Down,
                starved_until: None,
                backlog: VecDeque::new(),
                wake_at: None,
                last_inc: 0,
                known: 0,
                leave_token: None,
                ever_started: false,
                left: false,
                lag: None,
                lag_floor: Instant::ZERO,
                logged_inc: 0,
            });
        }
    }

    /// Starts (or restarts) node `i` now and joins `join` if given. Each
    /// start gets its own seed, derived from the master seed, the index and
    /// the number of earlier starts.
    pub fn start(&mut self, i: usize, join: Option<usize>) {
        self.ensure_slot(i);
        if self.slots[i].status != Status::Down {
            return;
        }
        let gen = self.slots[i].gen + 1;
        let seed = splitmix64(self.seed ^ splitmix64((i as u64) << 20 ^ u64::from(gen)));
        let local = LocalNode::new(name_of(i), addr_of(i));
        let node = Node::builder(self.config.clone(), local)
            .seed(seed)
            .build(self.now)
            .expect("valid config");
        let slot = &mut self.slots[i];
        slot.gen = gen;
        slot.node = Some(node);
        slot.status = Status::Running;
        slot.starved_until = None;
        slot.backlog.clear();
        slot.wake_at = None;
        slot.last_inc = 0;
        slot.known = 0;
        slot.leave_token = None;
        slot.ever_started = true;
        slot.left = false;
        slot.lag = None;
        slot.logged_inc = 0;
        self.running += 1;
        if let Some(j) = join {
            let now = self.now;
            let node = self.slots[i].node.as_mut().expect("just started");
            let _ = node.join(now, &[addr_of(j)]);
        }
        self.after_input(i);
    }

    pub(super) fn stop(&mut self, i: usize) {
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        if slot.status == Status::Running {
            self.running -= 1;
        }
        slot.node = None;
        slot.status = Status::Down;
        slot.gen += 1;
        slot.starved_until = None;
        slot.backlog.clear();
        slot.wake_at = None;
        slot.known = 0;
    }

    pub(super) fn lag_of(&mut self, i: usize) -> Option<Duration> {
        let slot = self.slots.get_mut(i)?;
        match slot.lag {
            Some((lag, until)) if until > self.now => Some(lag),
            Some(_) => {
                slot.lag = None;
                None
            }
            None => None,
        }
    }

    /// Turns on a Serf-style reconnect loop: every `interval`, each running
    /// node that holds some started, not-left node dead (or has forgotten
    /// it) joins one of them, picked at random. memberlist alone never
    /// rejoins a member it declared dead, so without this a full partition
    /// that outlasts the suspicion timeout splits the cluster for good.
    /// O(n²) per tick: for tests and small experiments.
    pub fn enable_reconnect(&mut self, interval: Duration) {
        if self.reconnect.is_none() {
            self.push(self.now + interval, Ev::Reconnect);
        }
        self.reconnect = Some(interval);
    }

    pub(super) fn reconnect_tick(&mut self) {
        let Some(interval) = self.reconnect else {
            return;
        };
        for i in 0..self.slots.len() {
            if self.status(i) != Status::Running || self.is_starved(i) {
                continue;
            }
            let lost: Vec<usize> = (0..self.slots.len())
                .filter(|&j| {
                    j != i
                        && self.slots[j].ever_started
                        && !self.slots[j].left
                        && self.state_seen(i, j).is_none_or(|st| st.is_dead_or_left())
                })
                .collect();
            if lost.is_empty() {
                continue;
            }
            let peer = lost[(self.rng.next_u64() % lost.len() as u64) as usize];
            self.apply(Action::Rejoin { node: i, peer });
        }
        self.push(self.now + interval, Ev::Reconnect);
    }

    /// A starved node resumes: first the timers that came due while it
    /// slept fire (all at once, with the resume time as `now`), then it
    /// handles its backlog in arrival order, late. This is the pessimistic
    /// order Lifeguard studies: a probe deadline is seen before the ack
    /// that sits in the socket buffer.
    pub(super) fn resume(&mut self, i: usize) {
        let now = self.now;
        if let Some(n) = self.slots[i].node.as_mut() {
            n.handle_timeout(now);
            self.stats.node_inputs += 1;
            self.after_input(i);
        }
        while self.slots[i].starved_until.is_none() {
            let Some(item) = self.slots[i].backlog.pop_front() else {
                break;
            };
            if self.slots[i].node.is_none() {
                break;
            }
            match item {
                Backlogged::Packet { from, data } => self.deliver_packet(i, from, &data),
                Backlogged::StreamRequest {
                    from,
                    from_gen,
                    id,
                    data,
                    expect_reply,
                } => self.serve_stream(i, from, from_gen, id, &data, expect_reply),
                Backlogged::StreamResult { id, result } => {
                    self.deliver_stream_result(i, id, result)
                }
            }
        }
        self.reschedule(i);
    }
}
