//! User messages: best-effort ones in a packet (with the size limit the
//! packet budget sets) and reliable ones over a stream.

use std::net::SocketAddr;

use super::{Node, PendingStream, SendError, MAX_RELIABLE_MESSAGE};
use crate::event::StreamId;
use crate::time::Instant;
use crate::wire::{self, Message, StreamMessage, USER_MSG_OVERHEAD};

impl Node {
    /// Largest payload [`Node::send_packet`] accepts.
    pub fn max_packet_payload(&self) -> usize {
        // No CRC header: like Go's, a user packet goes without one.
        wire::packet_room(self.config.udp_buffer_size, &self.framing(false, false))
            - USER_MSG_OVERHEAD
    }

    /// Sends a best-effort user message in one packet. Errors if it does
    /// not fit the packet budget.
    pub fn send_packet(
        &mut self,
        _now: Instant,
        to: SocketAddr,
        data: &[u8],
    ) -> Result<(), SendError> {
        let limit = self.max_packet_payload();
        if data.len() > limit {
            return Err(SendError::TooLarge {
                size: data.len(),
                limit,
            });
        }
        let mut msg = Vec::with_capacity(data.len() + 1);
        wire::encode_message(&Message::User(data.to_vec()), &mut msg);
        self.send_raw(to, false, msg);
        Ok(())
    }

    /// Sends a user message over a stream. Finishes with
    /// [`Completion::ReliableSent`](crate::Completion::ReliableSent).
    pub fn send_reliable(
        &mut self,
        _now: Instant,
        to: SocketAddr,
        data: Vec<u8>,
    ) -> Result<StreamId, SendError> {
        if data.len() > MAX_RELIABLE_MESSAGE {
            return Err(SendError::TooLarge {
                size: data.len(),
                limit: MAX_RELIABLE_MESSAGE,
            });
        }
        let bytes = self.encode_stream_dial(&StreamMessage::User(data));
        let id = self.dial_kind(
            to,
            bytes,
            false,
            self.config.tcp_timeout,
            crate::event::DialKind::Reliable,
        );
        self.streams.insert(id, PendingStream::Reliable);
        Ok(id)
    }
}
