//! Reading an incoming stream incrementally: label, decryption,
//! decompression, and the message parsers, with push/pull progress kept
//! across calls by a [`StreamDecoder`].

use core::fmt;

use crate::wire::codec::{decode_compress_body, Body, UserMsgHeader};
use crate::wire::limits::Limits;
use crate::wire::lzw::{self, LzwError};
use crate::wire::messages::*;
use crate::wire::msgpack::{DecodeError, Reader};
use crate::wire::security::{DecryptError, Keyring, STREAM_HEADER_SIZE};

/// How to read encrypted streams (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamDecryption {
    /// Keys tried, in order.
    pub keyring: Keyring,
    /// Reject plaintext streams (Go `GossipVerifyIncoming`).
    pub verify_incoming: bool,
    /// The label in the additional data when the stream has no label
    /// header: empty for an inbound stream (a dialer without a label),
    /// our configured label when reading the reply on a stream we dialed.
    /// A stream that has a label header uses that label.
    pub label: Vec<u8>,
}

/// The result of feeding buffered stream bytes to the decoder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamDecode {
    /// The message is incomplete. Call again once at least `at_least`
    /// bytes in total are buffered (a lower bound, never more than the
    /// limits allow).
    NeedMore {
        /// Total buffered bytes needed before calling again is useful.
        at_least: usize,
    },
    /// A whole message.
    Complete {
        /// The message.
        msg: StreamMessage,
        /// Bytes of the buffer it used (label included); anything after
        /// is not part of it.
        consumed: usize,
    },
}

/// Why a stream was rejected (the connection should be closed).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamError {
    /// A label header with length 0.
    LabelEmpty,
    /// The stream's label (empty for none) differs from ours.
    LabelMismatch {
        /// The label found.
        got: Vec<u8>,
    },
    /// The stream is encrypted (type 10) and no keyring is configured.
    EncryptionNotConfigured,
    /// Encryption is configured with incoming verification and the stream
    /// is not encrypted.
    NotEncrypted,
    /// An encrypted stream declares a length above
    /// [`Limits::max_encrypted_bytes`].
    EncryptedTooLarge {
        /// Length declared.
        len: u32,
        /// The limit.
        max: usize,
    },
    /// The encrypted payload could not be decrypted.
    Decrypt(DecryptError),
    /// The decrypted plaintext is empty or holds an incomplete message.
    EncryptedTruncated,
    /// A type byte that cannot start a stream message.
    UnexpectedType(u8),
    /// A msgpack body could not be decoded.
    Decode(DecodeError),
    /// A compress message names an algorithm other than LZW (0).
    UnknownCompression(u8),
    /// LZW decompression failed (includes the size cap).
    Decompress(LzwError),
    /// Decompression gave nothing.
    DecompressedEmpty,
    /// The decompressed message is incomplete.
    CompressedTruncated,
    /// A push/pull header with more entries than allowed.
    TooManyNodes {
        /// Entries declared.
        nodes: u32,
        /// The limit.
        max: usize,
    },
    /// A push/pull header with a user state larger than allowed.
    UserStateTooLarge {
        /// Length declared.
        len: u32,
        /// The limit.
        max: usize,
    },
    /// A user message header with a length larger than allowed.
    UserMsgTooLarge {
        /// Length declared.
        len: u32,
        /// The limit.
        max: usize,
    },
    /// The message would need more bytes than the limits allow buffering
    /// ([`Limits::max_stream_bytes`], or 1.5 × the decompression limit for a
    /// compressed message).
    TooLarge {
        /// Bytes that would be needed.
        needed: usize,
        /// The limit.
        max: usize,
    },
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LabelEmpty => f.write_str("label header cannot be empty when present"),
            Self::LabelMismatch { got } => write!(
                f,
                "discarding stream with unacceptable label {:?}",
                String::from_utf8_lossy(got)
            ),
            Self::EncryptionNotConfigured => {
                f.write_str("remote state is encrypted and encryption is not configured")
            }
            Self::NotEncrypted => {
                f.write_str("encryption is configured but remote state is not encrypted")
            }
            Self::EncryptedTooLarge { len, max } => {
                write!(f, "remote node state is larger than limit ({len} > {max})")
            }
            Self::Decrypt(e) => write!(f, "cannot decrypt stream: {e}"),
            Self::EncryptedTruncated => f.write_str("decrypted message is empty or truncated"),
            Self::UnexpectedType(t) => write!(f, "invalid stream message type {t}"),
            Self::Decode(e) => write!(f, "malformed stream message: {e}"),
            Self::UnknownCompression(a) => write!(f, "cannot decompress unknown algorithm {a}"),
            Self::Decompress(e) => write!(f, "decompression failed: {e}"),
            Self::DecompressedEmpty => f.write_str("decompressed message is empty"),
            Self::CompressedTruncated => f.write_str("decompressed message is truncated"),
            Self::TooManyNodes { nodes, max } => {
                write!(
                    f,
                    "number of nodes in header ({nodes}) exceeds limit ({max})"
                )
            }
            Self::UserStateTooLarge { len, max } => {
                write!(f, "user state length ({len}) exceeds limit ({max})")
            }
            Self::UserMsgTooLarge { len, max } => {
                write!(f, "user message length ({len}) exceeds limit ({max})")
            }
            Self::TooLarge { needed, max } => {
                write!(f, "stream message needs {needed} bytes, limit is {max}")
            }
        }
    }
}

impl std::error::Error for StreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Decode(e) => Some(e),
            Self::Decompress(e) => Some(e),
            Self::Decrypt(e) => Some(e),
            _ => None,
        }
    }
}

/// Decode a stream message from everything buffered so far, reparsing from
/// the start (see the module docs; a [`StreamDecoder`] avoids the reparse).
///
/// `our_label` is what a dialer must have sent; pass an empty label when
/// reading the reply on a stream we dialed (replies carry no label).
/// With `skip_label_check` any label or none is accepted.
pub fn decode_stream(
    buf: &[u8],
    our_label: &[u8],
    skip_label_check: bool,
    limits: &Limits,
) -> Result<StreamDecode, StreamError> {
    decode_stream_with(buf, our_label, skip_label_check, limits, None)
}

/// [`decode_stream`] that also reads encrypted streams, and rejects plain
/// ones when `decryption` says to verify (see the module docs).
pub fn decode_stream_with(
    buf: &[u8],
    our_label: &[u8],
    skip_label_check: bool,
    limits: &Limits,
    decryption: Option<&StreamDecryption>,
) -> Result<StreamDecode, StreamError> {
    let mut progress = None;
    decode_with(
        buf,
        our_label,
        skip_label_check,
        limits,
        decryption,
        &mut progress,
    )
}

/// An incremental stream decoder that keeps push/pull progress between
/// calls. Call [`StreamDecoder::decode`] with the whole buffer each time;
/// the buffer may only grow at the end between calls.
#[derive(Clone, Debug)]
pub struct StreamDecoder {
    our_label: Vec<u8>,
    skip_label_check: bool,
    limits: Limits,
    decryption: Option<StreamDecryption>,
    progress: Option<PushPullProgress>,
}

impl StreamDecoder {
    /// A decoder for one incoming stream (see [`decode_stream`] for the
    /// label arguments).
    pub fn new(our_label: &[u8], skip_label_check: bool, limits: Limits) -> Self {
        StreamDecoder {
            our_label: our_label.to_vec(),
            skip_label_check,
            limits,
            decryption: None,
            progress: None,
        }
    }

    /// Also read encrypted streams (and reject plain ones when verifying).
    pub fn with_decryption(mut self, decryption: StreamDecryption) -> Self {
        self.decryption = Some(decryption);
        self
    }

    /// Decode from everything buffered so far.
    pub fn decode(&mut self, buf: &[u8]) -> Result<StreamDecode, StreamError> {
        if self.progress.as_ref().is_some_and(|p| p.next > buf.len()) {
            self.progress = None;
        }
        let r = decode_with(
            buf,
            &self.our_label,
            self.skip_label_check,
            &self.limits,
            self.decryption.as_ref(),
            &mut self.progress,
        );
        if !matches!(r, Ok(StreamDecode::NeedMore { .. })) {
            self.progress = None;
        }
        r
    }

    /// The push/pull entries decoded so far, if any (for tests).
    #[cfg(test)]
    pub(super) fn pending_states(&self) -> Option<&Vec<PushNodeState>> {
        self.progress.as_ref().map(|p| &p.states)
    }
}

/// Push/pull entries decoded so far (uncompressed streams only).
#[derive(Clone, Debug)]
struct PushPullProgress {
    header: PushPullHeader,
    states: Vec<PushNodeState>,
    /// Offset in the stream buffer where the next entry starts.
    next: usize,
}

/// Outcome of parsing a message in a slice.
enum Parsed {
    /// Needs at least this many bytes of the slice.
    Need(usize),
    /// A message and the slice bytes it used.
    Done(StreamMessage, usize),
}

fn decode_with(
    buf: &[u8],
    our_label: &[u8],
    skip_label_check: bool,
    limits: &Limits,
    decryption: Option<&StreamDecryption>,
    progress: &mut Option<PushPullProgress>,
) -> Result<StreamDecode, StreamError> {
    let need = |at_least: usize| Ok(StreamDecode::NeedMore { at_least });
    let mut has_label = false;
    // Label header (dialer only).
    let mut pos = 0;
    let mut label: &[u8] = &[];
    match buf.first() {
        None => return need(1),
        Some(&t) if t == MessageType::HasLabel as u8 => {
            let Some(&len) = buf.get(1) else {
                return need(2);
            };
            if len == 0 {
                return Err(StreamError::LabelEmpty);
            }
            pos = 2 + len as usize;
            match buf.get(2..pos) {
                Some(l) => label = l,
                None => return need(pos),
            }
            has_label = true;
        }
        Some(_) => {}
    }
    if !skip_label_check && label != our_label {
        return Err(StreamError::LabelMismatch {
            got: label.to_vec(),
        });
    }
    let Some(&t) = buf.get(pos) else {
        return need(pos + 1);
    };
    if t == MessageType::Encrypt as u8 {
        let Some(d) = decryption else {
            return Err(StreamError::EncryptionNotConfigured);
        };
        let body = pos + STREAM_HEADER_SIZE;
        let Some(header) = buf.get(pos..body) else {
            return need(body);
        };
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        if len as usize > limits.max_encrypted_bytes {
            return Err(StreamError::EncryptedTooLarge {
                len,
                max: limits.max_encrypted_bytes,
            });
        }
        let end = body + len as usize;
        let Some(payload) = buf.get(body..end) else {
            return need(end);
        };
        let mut ad = header.to_vec();
        ad.extend_from_slice(if has_label { label } else { &d.label });
        let plain = d
            .keyring
            .decrypt(payload, &ad)
            .map_err(StreamError::Decrypt)?;
        let (&inner_t, _) = plain.split_first().ok_or(StreamError::EncryptedTruncated)?;
        let mut local = None;
        return match decode_body(&plain, inner_t, 1, limits, &mut local) {
            Ok(StreamDecode::Complete { msg, .. }) => {
                Ok(StreamDecode::Complete { msg, consumed: end })
            }
            Ok(StreamDecode::NeedMore { .. }) | Err(StreamError::TooLarge { .. }) => {
                Err(StreamError::EncryptedTruncated)
            }
            Err(e) => Err(e),
        };
    }
    if decryption.is_some_and(|d| d.verify_incoming) {
        return Err(StreamError::NotEncrypted);
    }
    decode_body(buf, t, pos + 1, limits, progress)
}

/// Decode the message of type `t` (a compress message or a plain one)
/// whose body starts at `buf[pos]`.
fn decode_body(
    buf: &[u8],
    t: u8,
    pos: usize,
    limits: &Limits,
    progress: &mut Option<PushPullProgress>,
) -> Result<StreamDecode, StreamError> {
    let need = |at_least: usize| Ok(StreamDecode::NeedMore { at_least });
    match MessageType::from_byte(t) {
        Some(MessageType::Compress) => {
            // The compressed Buf may be up to 1.5× the decompression limit
            // (LZW's worst-case expansion); a few bytes more for the map.
            let max = limits
                .max_decompressed_bytes
                .saturating_add(limits.max_decompressed_bytes / 2)
                .saturating_add(64)
                .saturating_add(pos);
            let mut r = Reader::new(&buf[pos..]);
            let (algo, data) = match decode_compress_body(&mut r) {
                Ok(v) => v,
                Err(DecodeError::Truncated { needed }) => {
                    let at_least = pos.saturating_add(needed);
                    if at_least > max {
                        return Err(StreamError::TooLarge {
                            needed: at_least,
                            max,
                        });
                    }
                    return need(at_least);
                }
                Err(e) => return Err(StreamError::Decode(e)),
            };
            let consumed = pos + r.position();
            if algo != 0 {
                return Err(StreamError::UnknownCompression(algo));
            }
            let plain = lzw::decompress(data, limits.max_decompressed_bytes)
                .map_err(StreamError::Decompress)?;
            let (&inner_t, inner) = plain.split_first().ok_or(StreamError::DecompressedEmpty)?;
            let mut local = None;
            match parse_message(inner_t, inner, 0, limits, &mut local)? {
                Parsed::Done(msg, _) => Ok(StreamDecode::Complete { msg, consumed }),
                Parsed::Need(_) => Err(StreamError::CompressedTruncated),
            }
        }
        _ => match parse_message(t, &buf[pos..], pos, limits, progress)? {
            Parsed::Done(msg, used) => Ok(StreamDecode::Complete {
                msg,
                consumed: pos + used,
            }),
            Parsed::Need(n) => {
                let at_least = pos.saturating_add(n);
                if at_least > limits.max_stream_bytes {
                    return Err(StreamError::TooLarge {
                        needed: at_least,
                        max: limits.max_stream_bytes,
                    });
                }
                need(at_least)
            }
        },
    }
}

/// Map a body decode error: truncation means "need more".
fn body<T>(r: Result<T, DecodeError>) -> Result<Result<T, usize>, StreamError> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(DecodeError::Truncated { needed }) => Ok(Err(needed)),
        Err(e) => Err(StreamError::Decode(e)),
    }
}

/// Parse the message of type `t` whose body starts at `s[0]`. `base` is the
/// offset of `s` in the stream buffer (for resumable push/pull progress).
fn parse_message(
    t: u8,
    s: &[u8],
    base: usize,
    limits: &Limits,
    progress: &mut Option<PushPullProgress>,
) -> Result<Parsed, StreamError> {
    let mut r = Reader::new(s);
    macro_rules! simple {
        ($ty:ty, $variant:ident) => {
            match body(<$ty>::decode_body(&mut r))? {
                Ok(m) => Ok(Parsed::Done(StreamMessage::$variant(m), r.position())),
                Err(n) => Ok(Parsed::Need(n)),
            }
        };
    }
    match MessageType::from_byte(t) {
        Some(MessageType::Ping) => simple!(Ping, Ping),
        Some(MessageType::Ack) => simple!(AckResp, Ack),
        Some(MessageType::Err) => simple!(ErrResp, Err),
        Some(MessageType::User) => {
            let h = match body(UserMsgHeader::decode_body(&mut r))? {
                Ok(h) => h,
                Err(n) => return Ok(Parsed::Need(n)),
            };
            if h.user_msg_len as usize > limits.max_user_msg_bytes {
                return Err(StreamError::UserMsgTooLarge {
                    len: h.user_msg_len,
                    max: limits.max_user_msg_bytes,
                });
            }
            match body(r.take(h.user_msg_len as usize))? {
                Ok(b) => Ok(Parsed::Done(StreamMessage::User(b.to_vec()), r.position())),
                Err(n) => Ok(Parsed::Need(n)),
            }
        }
        Some(MessageType::PushPull) => parse_push_pull(s, base, limits, progress),
        _ => Err(StreamError::UnexpectedType(t)),
    }
}

fn parse_push_pull(
    s: &[u8],
    base: usize,
    limits: &Limits,
    progress: &mut Option<PushPullProgress>,
) -> Result<Parsed, StreamError> {
    let mut p = match progress.take() {
        Some(p) if p.next >= base && p.next - base <= s.len() => p,
        _ => {
            let mut r = Reader::new(s);
            let header = match body(PushPullHeader::decode_body(&mut r))? {
                Ok(h) => h,
                Err(n) => return Ok(Parsed::Need(n)),
            };
            if header.nodes as usize > limits.max_push_nodes {
                return Err(StreamError::TooManyNodes {
                    nodes: header.nodes,
                    max: limits.max_push_nodes,
                });
            }
            // Go checks this after reading the entries; checking first
            // rejects an oversized exchange sooner.
            if header.user_state_len as usize > limits.max_user_state_bytes {
                return Err(StreamError::UserStateTooLarge {
                    len: header.user_state_len,
                    max: limits.max_user_state_bytes,
                });
            }
            PushPullProgress {
                header,
                // Never sized from the declared count: grows with what
                // is actually decoded.
                states: Vec::new(),
                next: base + r.position(),
            }
        }
    };
    let nodes = p.header.nodes as usize;
    let user_len = p.header.user_state_len as usize;
    let mut off = p.next - base;
    while p.states.len() < nodes {
        let mut r = Reader::new(&s[off..]);
        match body(PushNodeState::decode_body(&mut r))? {
            Ok(st) => {
                p.states.push(st);
                off += r.position();
                p.next = base + off;
            }
            Err(n) => {
                // Lower bound: this entry as far as known, then at least
                // one byte per remaining entry and the user state.
                let remaining = nodes - p.states.len();
                let need = off
                    .saturating_add(n.max(1))
                    .saturating_add(remaining - 1)
                    .saturating_add(user_len);
                *progress = Some(p);
                return Ok(Parsed::Need(need));
            }
        }
    }
    let end = off.saturating_add(user_len);
    let Some(user_state) = s.get(off..end) else {
        *progress = Some(p);
        return Ok(Parsed::Need(end));
    };
    Ok(Parsed::Done(
        StreamMessage::PushPull(PushPull {
            join: p.header.join,
            states: p.states,
            user_state: user_state.to_vec(),
        }),
        end,
    ))
}
