//! Gossip: the broadcast queue, the periodic gossip round, and how
//! messages are packed into packets.
//!
//! Membership news is queued as broadcasts and sent a limited number of
//! times: by the gossip round to `gossip_nodes` random members (and to
//! recently dead ones, so a node wrongly declared dead hears it and
//! refutes), and piggybacked on every other packet we send (`send_msg`).
//! The gossip tick parks itself while there is nothing to send and runs
//! at twice the rate while a backlog lasts. With compression on, packets
//! are filled by their expected compressed size (`packed_budget`), learned
//! from the packets sent; `send_parts` splits any that still come out too
//! large.

use core::time::Duration;
use std::net::SocketAddr;
use std::sync::Arc;

use super::select::k_random_members;
use super::{encode, Node, TimerKey};
use crate::broadcast::Broadcast;
use crate::delegate::BroadcastContext;
use crate::event::{BroadcastId, Completion};
use crate::name::Name;
use crate::state::MemberState;
use crate::time::Instant;
use crate::wire::packet::COMPOUND_PART_OVERHEAD;
use crate::wire::{self, Message, USER_MSG_OVERHEAD};

/// With compression on, a packet of broadcasts holds at most this many
/// times the packet budget of uncompressed messages (see
/// [`Node::packed_budget`]).
const MAX_PACKING_FACTOR: usize = 8;
/// Fixed-point one for [`GossipPacing::compression_ratio`].
const RATIO_ONE: usize = 1024;

/// When gossip rounds run, and how full their packets are packed.
#[derive(Debug)]
pub(super) struct GossipPacing {
    /// The gossip tick is parked: it found nothing to gossip (and the hooks
    /// never supply broadcasts), so it was not re-armed. Holds the tick it
    /// would have fired at next; queueing a broadcast re-arms it on the
    /// same grid of gossip intervals.
    parked: Option<Instant>,
    /// The gossip tick was re-armed after parking at a tick that may have
    /// passed: when it fires late, it moves to the next tick of its grid.
    resumed: bool,
    /// Recent framed/unframed size of packets of several messages, in
    /// 1/[`RATIO_ONE`]: how much compression shrinks them. Starts at one
    /// (no shrinking assumed).
    compression_ratio: usize,
}

impl Default for GossipPacing {
    fn default() -> Self {
        GossipPacing {
            parked: None,
            resumed: false,
            compression_ratio: RATIO_ONE,
        }
    }
}

impl GossipPacing {
    /// Whether the gossip tick is parked (see [`Node::gossip_idle`]).
    pub(super) fn is_parked(&self) -> bool {
        self.parked.is_some()
    }
}

impl Node {
    /// The gossip timer fired (at `at`, handled at `now`): gossip, or park
    /// the tick when there is nothing to gossip.
    pub(super) fn gossip_tick(&mut self, now: Instant, at: Instant) {
        let interval = self.config.gossip_interval;
        let mut at = at;
        let resumed = core::mem::take(&mut self.gossip_pacing.resumed);
        if resumed && now - at >= interval / 2 {
            // Re-armed after parking at a tick that had passed when the
            // broadcast was queued: move to the first tick of the grid not
            // before now. (A tick that fires less than half an interval
            // late is taken as on time: the timer's own latency, or a
            // broadcast queued just after the parked tick.)
            let iv = interval.as_micros().max(1);
            let ahead = (now - at).as_micros().div_ceil(iv) * iv;
            at += Duration::from_micros(u64::try_from(ahead).unwrap_or(u64::MAX));
            if at > now {
                self.timers.schedule(TimerKey::GossipTick, at);
                return;
            }
        }
        // A tick a quarter of an interval late or more means this node (or
        // the process it shares, as in a one-process cluster) is not
        // keeping up: see `gossip`. A timer of a node that keeps up fires
        // within a millisecond or two. (A resumed tick is late by design.)
        let late = if resumed { Duration::ZERO } else { now - at };
        let starved = late >= interval / 4;
        if late >= interval && !self.broadcasts.is_empty() {
            // A whole interval late: skip the round; what is queued waits
            // for a round when the node has caught up (and rides on its
            // pings meanwhile).
            self.stats.gossip_rounds_skipped += 1;
            self.timers.schedule(TimerKey::GossipTick, now + interval);
            return;
        }
        if self.broadcasts.is_empty() && !self.hooks.may_broadcast() {
            // Nothing to gossip: Go's gossip() would pick its targets and
            // send nothing. Park the tick rather than wake up every
            // interval for nothing.
            let next = at + interval;
            self.gossip_pacing.parked = Some(if next <= now { now + interval } else { next });
        } else {
            // A backlog (full packets and more waiting, as in a join storm)
            // is gossiped at twice the rate: the same messages go out the
            // same number of times, sooner.
            let interval = if self.gossip(now, starved) && !starved {
                interval / 2
            } else {
                interval
            };
            let next = at + interval;
            let next = if next <= now { now + interval } else { next };
            self.timers.schedule(TimerKey::GossipTick, next);
        }
    }

    /// One gossip round. Returns whether there is a backlog: the last
    /// packet was more than half full and broadcasts are still queued.
    ///
    /// A `starved` node (its tick came a quarter interval late or more)
    /// sends one packet, of Go's size, to one member instead of a packed
    /// one to each of `gossip_nodes`, and no backlog doubles its rate.
    /// Gossip is the work a node can defer: each message still goes out
    /// its transmit-limit number of times, later. Handling what a round
    /// sends costs its receivers more than the round costs the sender, so
    /// a process that runs many nodes and falls behind (a join storm of
    /// 1,000 in one process) otherwise stays behind, answering pings late,
    /// and its members suspect each other. A node that keeps up never
    /// takes this path.
    fn gossip(&mut self, now: Instant, starved: bool) -> bool {
        self.stats.gossip_rounds += 1;
        let name = &self.name;
        let dead_time = self.config.gossip_to_the_dead_time;
        let targets = k_random_members(
            &mut self.rng,
            &self.members,
            self.config.gossip_nodes,
            |m| {
                m.name == *name
                    || match m.state {
                        MemberState::Alive | MemberState::Suspect => false,
                        MemberState::Dead => now - m.state_change > dead_time,
                        MemberState::Left => true,
                    }
            },
        );
        // Room for a compound with a CRC, whether or not each target's
        // version gets one: one budget for the whole round.
        let avail = wire::packet_room(self.config.udp_buffer_size, &self.framing(true, true));
        let budget = if starved {
            avail
        } else {
            self.packed_budget(avail)
        };
        let mut full = false;
        for (addr, pmax) in targets
            .into_iter()
            .take(if starved { 1 } else { usize::MAX })
        {
            let msgs = self.get_broadcasts(COMPOUND_PART_OVERHEAD, budget);
            if msgs.is_empty() {
                return false;
            }
            let used: usize = msgs.iter().map(|m| m.len() + COMPOUND_PART_OVERHEAD).sum();
            full = used > budget / 2;
            // Go adds a CRC only to gossip (the one send that knows its
            // recipient's protocol version); so do we.
            self.send_parts(addr, pmax >= 5, &msgs);
        }
        full && !self.broadcasts.is_empty()
    }

    /// Broadcasts to piggyback: ours first, then the application's in the
    /// space left.
    fn get_broadcasts(&mut self, overhead: usize, limit: usize) -> Vec<Arc<[u8]>> {
        let n = self.members.len();
        let (mut msgs, finished) =
            self.broadcasts
                .get_broadcasts(overhead, limit, n, self.config.retransmit_mult);
        for token in finished {
            self.complete(Completion::BroadcastFinished(BroadcastId(token)));
        }
        let used: usize = msgs.iter().map(|m| m.len() + overhead).sum();
        let avail = limit.saturating_sub(used);
        // Hooks that never broadcast are not asked (their documented contract).
        if avail > overhead + USER_MSG_OVERHEAD && self.hooks.may_broadcast() {
            let ctx = BroadcastContext {
                overhead: overhead + USER_MSG_OVERHEAD,
                limit: avail,
                num_nodes: self.num_members(),
                retransmit_mult: self.config.retransmit_mult,
            };
            for user in self.hooks.broadcasts(&ctx) {
                let mut buf = Vec::with_capacity(user.len() + 1);
                wire::encode_message(&Message::User(user), &mut buf);
                msgs.push(buf.into());
            }
        }
        msgs
    }

    pub(super) fn queue_broadcast(
        &mut self,
        key: Name,
        msg: &Message,
        notify: Option<BroadcastId>,
    ) {
        let b = Broadcast {
            key: Some(key),
            payload: encode(msg).into(),
            notify: notify.map(|b| b.0),
        };
        for token in self.broadcasts.queue(b) {
            self.complete(Completion::BroadcastFinished(BroadcastId(token)));
        }
        if let Some(at) = self.gossip_pacing.parked.take() {
            self.timers.schedule(TimerKey::GossipTick, at);
            self.gossip_pacing.resumed = true;
        }
    }

    /// Sends a message, piggybacking queued broadcasts when they fit.
    ///
    /// No CRC: Go's `sendMsg` adds none (it does not look the recipient
    /// up), and receivers accept packets without one.
    pub(super) fn send_msg(&mut self, to: SocketAddr, msg: &Message) {
        let msg = encode(msg);
        let packet = wire::packet_room(self.config.udp_buffer_size, &self.framing(true, false));
        let avail = self
            .packed_budget(packet)
            .saturating_sub(msg.len() + COMPOUND_PART_OVERHEAD);
        let extra = self.get_broadcasts(COMPOUND_PART_OVERHEAD, avail);
        if extra.is_empty() {
            self.send_raw(to, false, msg);
            return;
        }
        let mut parts: Vec<Arc<[u8]>> = Vec::with_capacity(extra.len() + 1);
        parts.push(msg.into());
        parts.extend(extra);
        self.send_parts(to, false, &parts);
    }

    /// How many bytes of encoded messages to put in a packet whose framed
    /// size must stay within `limit`. Without compression that is `limit`
    /// (Go's rule). With it, Go still fills only `limit` and then
    /// compresses: a packet of gossip goes out at a third of the size it
    /// could have. We fill by the expected compressed size instead
    /// (the recent ratio, with an eighth to spare, at most
    /// [`MAX_PACKING_FACTOR`] times `limit`): fewer packets, and fewer
    /// bytes, because LZW does better on more input. Receivers read
    /// datagrams of up to 64 KiB and decompress without a small bound, Go
    /// included; [`Node::send_parts`] splits a packet that still comes
    /// out too large.
    fn packed_budget(&self, limit: usize) -> usize {
        if !self.config.enable_compression {
            return limit;
        }
        let ratio = self
            .gossip_pacing
            .compression_ratio
            .max(RATIO_ONE / MAX_PACKING_FACTOR);
        let expected = limit.saturating_mul(RATIO_ONE) / ratio;
        let spare = expected / 8;
        (expected - spare)
            .max(limit)
            .min(limit.saturating_mul(MAX_PACKING_FACTOR))
    }

    /// Sends encoded messages to one address: as they are when there is
    /// one, else as compound messages. A packet that comes out of framing
    /// larger than `udp_buffer_size` is split in two, so no datagram
    /// exceeds it whatever the compression did.
    fn send_parts(&mut self, to: SocketAddr, crc: bool, parts: &[Arc<[u8]>]) {
        match parts {
            [] => {}
            [one] => self.send_raw(to, crc, one.to_vec()),
            _ if parts.len() > wire::MAX_COMPOUND_PARTS => {
                for chunk in parts.chunks(wire::MAX_COMPOUND_PARTS) {
                    self.send_parts(to, crc, chunk);
                }
            }
            _ => {
                let mut compound = Vec::new();
                if wire::encode_compound_into(parts, &mut compound).is_err() {
                    // Every part came from our own encoder and fits a packet.
                    return;
                }
                let raw_len = compound.len();
                let Some(data) = self.frame(crc, &compound) else {
                    return;
                };
                if data.len() > self.config.udp_buffer_size {
                    let (a, b) = parts.split_at(parts.len() / 2);
                    self.send_parts(to, crc, a);
                    self.send_parts(to, crc, b);
                    return;
                }
                self.learn_compression(raw_len, data.len());
                self.push_packet(to, data);
            }
        }
    }

    /// Folds one packet's framed/unframed size into the running ratio that
    /// [`Node::packed_budget`] packs by. Small packets say little about how
    /// well a full one compresses, so only those of a few hundred bytes
    /// and more count.
    fn learn_compression(&mut self, raw_len: usize, framed_len: usize) {
        if !self.config.enable_compression || raw_len < 512 {
            return;
        }
        let sample = (framed_len * RATIO_ONE / raw_len).min(RATIO_ONE);
        self.gossip_pacing.compression_ratio =
            (3 * self.gossip_pacing.compression_ratio + sample) / 4;
    }
}
