//! Streams: dialing, serving a request on the far side, carrying the answer
//! leg back and decoding it on the dialing side.

use core::time::Duration;

use headcount_proto::wire::{self, Limits, StreamDecode};
use headcount_proto::{Dial, StreamFailure, StreamId, StreamMessage};

use super::{addr_of, index_of, Ev, Sim};

/// The answer leg of a stream, as bytes on the wire (decoded on delivery).
pub(super) enum StreamLeg {
    Reply(Vec<u8>),
    Written,
    Failed(StreamFailure),
}

impl Sim {
    pub(super) fn serve_stream(
        &mut self,
        to: usize,
        from: u32,
        from_gen: u32,
        id: StreamId,
        data: &[u8],
        expect_reply: bool,
    ) {
        let now = self.now;
        let node = self.slots[to].node.as_mut().expect("running");
        let label = node.config().label.clone();
        let skip = node.config().skip_inbound_label_check;
        let msg = match wire::decode_stream(data, &label, skip, &self.limits) {
            Ok(StreamDecode::Complete { msg, .. }) => msg,
            other => panic!(
                "seed {}: a stream from node {from} did not decode at node {to}: {other:?}",
                self.seed
            ),
        };
        let push_pull = matches!(msg, StreamMessage::PushPull(_));
        if push_pull {
            self.stats.push_pull_bytes += data.len() as u64;
        }
        let reply = node.handle_stream(now, addr_of(from as usize), msg);
        self.stats.node_inputs += 1;
        self.after_input(to);
        let leg = match (expect_reply, reply) {
            (false, _) => StreamLeg::Written,
            (true, Some(bytes)) => {
                self.stats.stream_bytes += bytes.len() as u64;
                self.stats.stream_replies += 1;
                self.stats.stream_reply_bytes += bytes.len() as u64;
                if push_pull {
                    self.stats.push_pull_replies += 1;
                    self.stats.push_pull_reply_bytes += bytes.len() as u64;
                    self.stats.push_pull_bytes += bytes.len() as u64;
                }
                StreamLeg::Reply(bytes)
            }
            (true, None) => StreamLeg::Failed(StreamFailure::Unanswered { secured: false }),
        };
        self.answer_stream(to, from, from_gen, id, leg);
    }

    pub(super) fn answer_stream(
        &mut self,
        server: usize,
        to: u32,
        gen: u32,
        id: StreamId,
        leg: StreamLeg,
    ) {
        if self.net.blocked(server, to as usize) {
            // The dialer times out on its own (see `dial`).
            return;
        }
        let lat = self.net.latency(&mut self.rng, server, to as usize);
        self.push(
            self.now + lat,
            Ev::StreamResult {
                to,
                gen,
                id,
                result: leg,
            },
        );
    }

    pub(super) fn deliver_stream_result(&mut self, to: usize, id: StreamId, leg: StreamLeg) {
        let result = match leg {
            StreamLeg::Written => Ok(None),
            StreamLeg::Failed(e) => Err(e),
            StreamLeg::Reply(bytes) => {
                match wire::decode_stream(&bytes, &[], false, &self.limits) {
                    Ok(StreamDecode::Complete { msg, .. }) => Ok(Some(msg)),
                    Ok(StreamDecode::NeedMore { .. }) => Err(StreamFailure::Truncated {
                        received: bytes.len(),
                    }),
                    Err(e) => Err(StreamFailure::Decode(e)),
                }
            }
        };
        let now = self.now;
        let node = self.slots[to].node.as_mut().expect("running");
        node.handle_stream_result(now, id, result);
        self.stats.node_inputs += 1;
        self.after_input(to);
    }

    /// A stream: the request arrives after one latency and is served
    /// there; the reply (or the refusal) comes back after another. A
    /// timeout result is always scheduled at the dial's deadline too; the
    /// node ignores whichever of the two comes second.
    pub(super) fn dial(&mut self, from: usize, d: Dial) {
        self.stats.streams += 1;
        self.stats.stream_bytes += d.data.len() as u64;
        let gen = self.slots[from].gen;
        let from32 = from as u32;
        self.push(
            self.now + d.timeout,
            Ev::StreamResult {
                to: from32,
                gen,
                id: d.id,
                result: StreamLeg::Failed(StreamFailure::Timeout),
            },
        );
        let Some(j) = index_of(d.to).filter(|&j| j < self.slots.len()) else {
            let lat = Duration::from_micros(self.net.profile().base_lo_us);
            self.push(
                self.now + lat,
                Ev::StreamResult {
                    to: from32,
                    gen,
                    id: d.id,
                    // No such host: its address is not available.
                    result: StreamLeg::Failed(StreamFailure::Io(
                        std::io::ErrorKind::AddrNotAvailable,
                    )),
                },
            );
            return;
        };
        if self.net.blocked(from, j) {
            return;
        }
        let lat = self.net.latency(&mut self.rng, from, j);
        self.push(
            self.now + lat,
            Ev::StreamRequest {
                from: from32,
                from_gen: gen,
                to: j as u32,
                id: d.id,
                data: d.data,
                expect_reply: d.expect_reply,
            },
        );
    }
}

/// Decodes a stream reply as the dialing side does; exposed for tests.
pub fn decode_reply(bytes: &[u8]) -> Option<StreamMessage> {
    match wire::decode_stream(bytes, &[], false, &Limits::default()) {
        Ok(StreamDecode::Complete { msg, .. }) => Some(msg),
        _ => None,
    }
}
