//! Writing a whole outgoing stream: the message, compression, encryption
//! and the label header.

use crate::wire::codec::{encode_compress_body, Body, UserMsgHeader};
use crate::wire::error::EncodeError;
use crate::wire::lzw;
use crate::wire::messages::*;
use crate::wire::packet::LABEL_MAX_LEN;
use crate::wire::security::{encrypt_stream_frame, Encryption};

/// Append the plain stream message, type byte first: `[0] ping`,
/// `[2] ackResp`, `[6] header + entries + user state`,
/// `[8] userMsgHeader + bytes`, `[13] errResp`.
pub fn encode_stream_message(msg: &StreamMessage, out: &mut Vec<u8>) {
    match msg {
        StreamMessage::Ping(m) => {
            out.push(MessageType::Ping as u8);
            m.encode_body(out);
        }
        StreamMessage::Ack(m) => {
            out.push(MessageType::Ack as u8);
            m.encode_body(out);
        }
        StreamMessage::Err(m) => {
            out.push(MessageType::Err as u8);
            m.encode_body(out);
        }
        StreamMessage::User(b) => {
            out.push(MessageType::User as u8);
            UserMsgHeader {
                user_msg_len: u32::try_from(b.len()).unwrap_or(u32::MAX),
            }
            .encode_body(out);
            out.extend_from_slice(b);
        }
        StreamMessage::PushPull(pp) => {
            out.push(MessageType::PushPull as u8);
            PushPullHeader {
                nodes: u32::try_from(pp.states.len()).unwrap_or(u32::MAX),
                user_state_len: u32::try_from(pp.user_state.len()).unwrap_or(u32::MAX),
                join: pp.join,
            }
            .encode_body(out);
            for s in &pp.states {
                s.encode_body(out);
            }
            out.extend_from_slice(&pp.user_state);
        }
    }
}

/// The stream message, compressed when asked (always, even if larger:
/// `[9] compress{Algo: 0, Buf: lzw(message with its type byte)}`). This is
/// what encryption applies to.
pub fn encode_stream_body(msg: &StreamMessage, compress: bool, out: &mut Vec<u8>) {
    if compress {
        let mut plain = Vec::new();
        encode_stream_message(msg, &mut plain);
        let buf = lzw::compress(&plain);
        out.push(MessageType::Compress as u8);
        encode_compress_body(out, &buf);
    } else {
        encode_stream_message(msg, out);
    }
}

/// Append a whole outgoing stream without encryption: the label header
/// (`label` non-empty only when we dialed; replies carry none), then the
/// message, compressed when `compress`.
pub fn encode_stream(
    msg: &StreamMessage,
    label: &[u8],
    compress: bool,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    encode_stream_with(msg, label, label, compress, None, out)
}

/// Append a whole outgoing stream: the label header `header_label` (our
/// label when we dialed, empty in a reply), then the message, compressed
/// when `compress`, encrypted when `encryption` is given with the five
/// header bytes and `label` (our configured label, in replies too) as
/// additional data.
pub fn encode_stream_with(
    msg: &StreamMessage,
    header_label: &[u8],
    label: &[u8],
    compress: bool,
    encryption: Option<Encryption<'_>>,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    for l in [header_label, label] {
        if l.len() > LABEL_MAX_LEN {
            return Err(EncodeError::LabelTooLong(l.len()));
        }
    }
    let start = out.len();
    if !header_label.is_empty() {
        out.push(MessageType::HasLabel as u8);
        out.push(header_label.len() as u8);
        out.extend_from_slice(header_label);
    }
    match encryption {
        None => encode_stream_body(msg, compress, out),
        Some(e) => {
            let mut plain = Vec::new();
            encode_stream_body(msg, compress, &mut plain);
            if let Err(err) = encrypt_stream_frame(&e, &plain, label, out) {
                out.truncate(start);
                return Err(err);
            }
        }
    }
    Ok(())
}
