//! Inputs from the network: packets (decoded, then handled in the order
//! Go's handoff queue would), inbound stream messages, and the results of
//! streams we dialed, each dispatched to the concern that handles it.

use std::cell::Cell;
use std::net::SocketAddr;

use super::{Node, PendingStream};
use crate::event::{Completion, Event, StreamFailure, StreamId};
use crate::inbound::InboundQueue;
use crate::time::Instant;
use crate::wire::{self, AckResp, Message, StreamMessage};

thread_local! {
    /// The messages decoded from one packet (see `handle_packets`).
    static DECODED: Cell<Vec<Message>> = const { Cell::new(Vec::new()) };
}

impl Node {
    /// Handles one UDP datagram from `from`
    /// ([`Node::handle_packets`] with one packet).
    pub fn handle_packet(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.handle_packets(now, core::iter::once((from, data)));
    }

    /// Handles a burst of UDP datagrams as Go's handoff queue would (see
    /// [`crate::inbound`]): pings, indirect pings, acks and nacks at once,
    /// in arrival order; alive, suspect, dead and user messages afterwards,
    /// alive messages first and newest first, in windows of at most
    /// [`Config::handoff_queue_depth`](crate::Config::handoff_queue_depth) of each kind: when a queue fills, the
    /// queued messages are handled before more are taken.
    pub fn handle_packets<'a>(
        &mut self,
        now: Instant,
        packets: impl IntoIterator<Item = (SocketAddr, &'a [u8])>,
    ) {
        let mut queue = InboundQueue::new(self.config.handoff_queue_depth);
        // One buffer per thread, not per node: it grows to the messages of
        // the largest packet (~100 of them in a packed gossip packet), and
        // kept per node that was 14 KiB each.
        let mut messages = DECODED.try_with(Cell::take).unwrap_or_default();
        for (from, data) in packets {
            self.stats.packets_received += 1;
            self.stats.bytes_received += data.len() as u64;
            if !self.config.ip_allowed(from.ip()) {
                self.stats.sources_denied += 1;
                continue;
            }
            messages.clear();
            let repeated = |a: &wire::AliveRef<'_>| self.alive_is_repeat(a);
            match wire::decode_packet_filtered(
                data,
                (&self.config.label, self.config.skip_inbound_label_check),
                self.decryption(),
                &self.limits,
                &mut messages,
                &repeated,
            ) {
                Ok(summary) => {
                    self.stats.repeated_alives += summary.repeated_alives as u64;
                    self.stats.messages_unknown += summary.unknown as u64;
                    let bad = (summary.malformed + summary.truncated) as u64;
                    self.stats.messages_malformed += bad;
                    let unusable = bad + summary.unknown as u64;
                    if unusable > 0 {
                        self.metrics.messages_malformed(unusable);
                    }
                }
                Err(e) => {
                    self.stats.packets_dropped += 1;
                    self.metrics.packets_dropped(1);
                    if matches!(e, wire::PacketError::Decrypt(_)) {
                        self.stats.packets_undecryptable += 1;
                    }
                }
            }
            for msg in messages.drain(..) {
                let high = match msg {
                    Message::Alive(_) => true,
                    Message::Suspect(_) | Message::Dead(_) | Message::User(_) => false,
                    _ => {
                        self.handle_message(now, from, msg);
                        continue;
                    }
                };
                // Go's handler goroutine drains its queues while packets
                // arrive, so they fill only when it falls behind. Ours is
                // drained after the burst; a burst of large packets would
                // fill it without anything falling behind. Handle what is
                // queued first instead of dropping.
                if queue.is_full(high) {
                    self.handle_queued(now, &mut queue);
                }
                queue.push(high, (from, msg));
            }
        }
        messages.clear();
        let _ = DECODED.try_with(|d| d.set(messages));
        if !queue.is_empty() {
            self.metrics.inbound_depth(queue.len());
        }
        self.handle_queued(now, &mut queue);
    }

    fn handle_queued(&mut self, now: Instant, queue: &mut InboundQueue<(SocketAddr, Message)>) {
        while let Some((from, msg)) = queue.pop() {
            self.handle_message(now, from, msg);
        }
    }

    fn handle_message(&mut self, now: Instant, from: SocketAddr, msg: Message) {
        match msg {
            Message::Ping(p) => self.handle_ping(now, from, p),
            Message::IndirectPing(ind) => self.handle_indirect_ping(now, from, ind),
            Message::Ack(ack) => self.handle_ack(now, ack),
            Message::Nack(nack) => self.handle_nack(nack),
            Message::Suspect(s) => self.suspect_node(now, s),
            Message::Alive(a) => {
                let joined = self.push_pull_pacing.members_joined;
                self.alive_node(now, a, None, false);
                if self.push_pull_pacing.members_joined != joined {
                    self.settle_after_growth(now);
                }
            }
            Message::Dead(d) => self.dead_node(now, d, None),
            Message::User(data) => self.emit(Event::UserMessage(data)),
            Message::Err(_) => self.stats.messages_ignored += 1,
        }
    }

    /// Handles a message that arrived on an inbound stream from `from`, and
    /// returns the reply to write back, if any (framing included).
    pub fn handle_stream(
        &mut self,
        now: Instant,
        from: SocketAddr,
        msg: StreamMessage,
    ) -> Option<Vec<u8>> {
        if !self.config.ip_allowed(from.ip()) {
            self.stats.sources_denied += 1;
            return None;
        }
        self.stats.streams_handled += 1;
        match msg {
            StreamMessage::Ping(p) => {
                if !p.node.is_empty() && p.node != self.name {
                    self.stats.messages_ignored += 1;
                    return None;
                }
                let ack = StreamMessage::Ack(AckResp {
                    seq_no: p.seq_no,
                    payload: Vec::new(),
                });
                Some(self.encode_stream_reply(&ack))
            }
            StreamMessage::PushPull(pp) => {
                let reply = self.encode_local_push_pull(pp.join, false, false);
                // Go answers before merging, and a failed merge only logs.
                let _ = self.merge_remote_state(now, pp.join, pp.states, &pp.user_state);
                Some(reply)
            }
            StreamMessage::User(data) => {
                self.emit(Event::UserMessage(data));
                None
            }
            StreamMessage::Ack(_) | StreamMessage::Err(_) => {
                self.stats.messages_ignored += 1;
                None
            }
        }
    }

    /// Reports that an inbound stream from `from` could not be read
    /// (malformed, or over one of the [`Limits`](crate::wire::Limits)), and returns the reply
    /// to write before closing it: `[13] errResp{error}`, framed like any
    /// reply (compressed, encrypted), as Go's `handleConn` answers a failed
    /// `readStream`. The error's message is what the peer is told: the
    /// wire carries it as text.
    pub fn handle_stream_error(
        &mut self,
        _now: Instant,
        _from: SocketAddr,
        error: &dyn core::fmt::Display,
    ) -> Option<Vec<u8>> {
        self.stats.streams_rejected += 1;
        let msg = StreamMessage::Err(wire::ErrResp {
            error: error.to_string(),
        });
        Some(self.encode_stream_reply(&msg))
    }

    /// Reports how a stream requested by [`Output::Dial`](crate::Output::Dial) ended: `Ok(Some)`
    /// with the reply when one was expected, `Ok(None)` when the data was
    /// written and no reply was expected.
    pub fn handle_stream_result(
        &mut self,
        now: Instant,
        id: StreamId,
        result: Result<Option<StreamMessage>, StreamFailure>,
    ) {
        let Some(pending) = self.streams.remove(&id) else {
            return;
        };
        match pending {
            PendingStream::Reliable => {
                let result = result.map(|_| ());
                self.complete(Completion::ReliableSent { id, result });
            }
            PendingStream::FallbackPing { seq } => self.fallback_ping_result(now, seq, result),
            PendingStream::PushPull {
                join,
                join_id,
                addr,
                started,
            } => self.push_pull_result(now, join, join_id, addr, started, result),
        }
    }
}
