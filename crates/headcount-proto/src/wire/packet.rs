//! Packets (UDP): compound messages, compression, CRC and label framing
//! (wire-protocol.md §3).
//!
//! Send side, innermost first: message (or compound) → compression (kept
//! only when smaller) → CRC → *encryption* → label. Receive side: label →
//! *decryption* → CRC → dispatch by type.
//!
//! **Encryption** (§5, [`super::security`]) sits between the two halves of
//! each direction: [`frame_packet_body`] (compression + CRC), then
//! encryption when [`PacketOptions::encryption`] is set, then [`add_label`]
//! on the send side; [`strip_packet_label`], then decryption when a
//! [`Decryption`] is given ([`decode_packet_with`]), then
//! [`decode_packet_body`] (CRC + dispatch) on the receive side. The label
//! is the additional data.

use core::fmt;

use super::codec::{
    decode_compress_body, decode_message, encode_compress_body, encode_message, AliveRef,
};
use super::limits::Limits;
use super::lzw;
use super::messages::{Message, MessageType};
use super::msgpack::Reader;
use super::security::{DecryptError, Decryption, Encryption};

pub use super::error::EncodeError;

/// Most parts in one compound message (the count is a `u8`).
pub const MAX_COMPOUND_PARTS: usize = 255;

/// Deepest nesting of compound/compress messages we dispatch. Go has no
/// bound; its own packets nest at most compress → compound.
pub const MAX_NESTING: usize = 8;

/// Longest label (its length is a `u8`).
pub const LABEL_MAX_LEN: usize = 255;

/// Bytes a compound adds in front of its parts.
pub const COMPOUND_HEADER_OVERHEAD: usize = 2;
/// Bytes a compound adds per part.
pub const COMPOUND_PART_OVERHEAD: usize = 2;
/// Bytes of the CRC header (`[12][u32]`).
pub const CRC_OVERHEAD: usize = 5;
/// Bytes a label header adds besides the label itself (`[244][len]`).
pub const LABEL_HEADER_OVERHEAD: usize = 2;

/// Bytes a label header adds (0 for no label).
pub fn label_overhead(label: &[u8]) -> usize {
    label_len_overhead(label.len())
}

/// Bytes a label header of a `len`-byte label adds (0 for no label).
pub const fn label_len_overhead(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        LABEL_HEADER_OVERHEAD + len
    }
}

/// Append one compound message `[7][n][n × u16 BE len][parts]` holding at
/// most [`MAX_COMPOUND_PARTS`] parts.
pub fn encode_compound_into<P: AsRef<[u8]>>(
    parts: &[P],
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    if parts.len() > MAX_COMPOUND_PARTS {
        return Err(EncodeError::TooManyParts(parts.len()));
    }
    let mut lens = Vec::with_capacity(parts.len());
    for (index, p) in parts.iter().enumerate() {
        let len = p.as_ref().len();
        lens.push(u16::try_from(len).map_err(|_| EncodeError::PartTooLarge { index, len })?);
    }
    out.push(MessageType::Compound as u8);
    out.push(parts.len() as u8);
    for l in lens {
        out.extend_from_slice(&l.to_be_bytes());
    }
    for p in parts {
        out.extend_from_slice(p.as_ref());
    }
    Ok(())
}

/// Pack encoded messages into compound messages, splitting into several
/// when there are more than [`MAX_COMPOUND_PARTS`] (like Go's
/// `makeCompoundMessages`). No parts give no compounds.
pub fn encode_compound<P: AsRef<[u8]>>(parts: &[P]) -> Result<Vec<Vec<u8>>, EncodeError> {
    parts
        .chunks(MAX_COMPOUND_PARTS)
        .map(|chunk| {
            let mut out = Vec::new();
            encode_compound_into(chunk, &mut out)?;
            Ok(out)
        })
        .collect()
}

/// How to frame an outgoing packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketOptions<'a> {
    /// Try LZW compression; kept only when strictly smaller.
    pub compress: bool,
    /// Add a CRC-32 header (peer's pMax ≥ 5).
    pub crc: bool,
    /// Cluster label; empty for none.
    pub label: &'a [u8],
    /// Encrypt with this (key, version, fresh nonce); `None` sends
    /// plaintext.
    pub encryption: Option<Encryption<'a>>,
}

/// Append `[9] compress{Algo: 0, Buf: lzw(msg)}` to `out`.
pub fn encode_compress(msg: &[u8], out: &mut Vec<u8>) {
    let buf = lzw::compress(msg);
    out.push(MessageType::Compress as u8);
    encode_compress_body(out, &buf);
}

/// Bytes of a `compress` message around a non-empty LZW buffer of under
/// 256 bytes (type byte, map header, `Algo` key and value, `Buf` key and
/// length header; checked by a test). Longer buffers have longer headers.
const COMPRESS_MIN_OVERHEAD: usize = 13;

/// A lower bound on the length of [`encode_compress`]'s output for an
/// input of `n` bytes.
///
/// LZW's `i`-th code stands for at most `i` bytes (each dictionary entry
/// is an earlier code's string plus one byte), so `n` bytes need at least
/// the smallest `m` codes with `m(m+1)/2 >= n`, plus the end code, each at
/// least 9 bits wide with 8-bit literals.
pub fn compressed_len_lower_bound(n: usize) -> usize {
    let mut m = 0usize;
    let mut covered = 0usize;
    while covered < n {
        m += 1;
        covered += m;
    }
    COMPRESS_MIN_OVERHEAD + (9 * (m + 1)).div_ceil(8)
}

/// Compression and CRC framing of an encoded message (a plain message or a
/// compound), appended to `out`. Encryption, when configured, applies to
/// this output, before [`add_label`].
pub fn frame_packet_body(msg: &[u8], compress: bool, crc: bool, out: &mut Vec<u8>) {
    let mut compressed = Vec::new();
    let mut body = msg;
    // The compressed form is kept only when strictly smaller; skip the
    // attempt when it provably cannot be (acks and other tiny messages).
    // The bytes sent are the same either way.
    if compress && compressed_len_lower_bound(msg.len()) < msg.len() {
        encode_compress(msg, &mut compressed);
        if compressed.len() < msg.len() {
            body = &compressed;
        }
    }
    if crc {
        out.push(MessageType::HasCrc as u8);
        out.extend_from_slice(&crc32fast::hash(body).to_be_bytes());
    }
    out.extend_from_slice(body);
}

/// Prefix `[244][len][label]` to `packet` (nothing for an empty label).
pub fn add_label(label: &[u8], packet: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if label.len() > LABEL_MAX_LEN {
        return Err(EncodeError::LabelTooLong(label.len()));
    }
    if !label.is_empty() {
        out.push(MessageType::HasLabel as u8);
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
    out.extend_from_slice(packet);
    Ok(())
}

/// Frame an encoded message for sending: compression, CRC, encryption
/// (when [`PacketOptions::encryption`] is set, with the label as
/// additional data), label. Appends to `out`.
pub fn frame_packet(
    msg: &[u8],
    opts: &PacketOptions<'_>,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let mut body = Vec::with_capacity(msg.len() + CRC_OVERHEAD);
    frame_packet_body(msg, opts.compress, opts.crc, &mut body);
    if let Some(e) = &opts.encryption {
        if opts.label.len() > LABEL_MAX_LEN {
            return Err(EncodeError::LabelTooLong(opts.label.len()));
        }
        let mut sealed = Vec::with_capacity(e.version.encrypted_len(body.len()));
        e.keyring
            .encrypt(e.version, &e.nonce, &body, opts.label, &mut sealed);
        body = sealed;
    }
    add_label(opts.label, &body, out)
}

/// Encode `msg` and frame it with [`frame_packet`].
pub fn encode_packet(
    msg: &Message,
    opts: &PacketOptions<'_>,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let mut m = Vec::new();
    encode_message(msg, &mut m);
    frame_packet(&m, opts, out)
}

/// Why a whole packet was dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PacketError {
    /// The packet starts with a label header that is cut short.
    LabelTruncated,
    /// The label header says length 0.
    LabelEmpty,
    /// The packet's label (empty for none) differs from ours.
    LabelMismatch {
        /// The label found.
        got: Vec<u8>,
    },
    /// Decryption failed while incoming verification is on.
    Decrypt(DecryptError),
    /// The CRC-32 in the header does not match the contents.
    CrcMismatch {
        /// CRC in the header.
        expected: u32,
        /// CRC of the contents.
        computed: u32,
    },
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LabelTruncated => f.write_str("cannot decode label; packet has been truncated"),
            Self::LabelEmpty => f.write_str("label header cannot be empty when present"),
            Self::LabelMismatch { got } => write!(
                f,
                "discarding packet with unacceptable label {:?}",
                String::from_utf8_lossy(got)
            ),
            Self::Decrypt(e) => write!(f, "decrypt packet failed: {e}"),
            Self::CrcMismatch { expected, computed } => write!(
                f,
                "invalid checksum for packet: header {expected:08x}, contents {computed:08x}"
            ),
        }
    }
}

impl std::error::Error for PacketError {}

/// What was found in a packet that was not dropped as a whole.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketSummary {
    /// Messages decoded and appended to the output.
    pub messages: usize,
    /// Messages of an unknown type, or of a type that is not handled in
    /// packets (push/pull, encrypt, a nested CRC or label header). Go logs
    /// and drops them.
    pub unknown: usize,
    /// Messages or framing that could not be decoded (bad msgpack, empty
    /// part, bad compound header, decompression failure, nesting deeper
    /// than [`MAX_NESTING`]). Go logs and drops them.
    pub malformed: usize,
    /// Compound parts cut off because a declared length passed the end.
    pub truncated: usize,
    /// Alive messages left out of the output because they repeat what
    /// the receiving node already holds. Always zero from the public
    /// decoders; a [`Node`](crate::Node) decoding its packets counts them
    /// in [`Stats::repeated_alives`](crate::Stats::repeated_alives).
    pub repeated_alives: usize,
    /// Whether the packet had a (valid) CRC header.
    pub had_crc: bool,
    /// Whether the packet was encrypted (and decrypted with one of our
    /// keys).
    pub decrypted: bool,
}

/// Remove a label header, if any, and check it. Returns the rest of the
/// packet and the label found (empty for none).
///
/// With `skip_label_check`, any label (or none) is accepted and stripped.
/// (Go instead drops labelled packets in that mode; the spec lists this as
/// a Go defect not to copy.) Otherwise the label must equal `our_label`,
/// an unlabelled packet having the empty label.
pub fn strip_packet_label<'a>(
    data: &'a [u8],
    our_label: &[u8],
    skip_label_check: bool,
) -> Result<(&'a [u8], &'a [u8]), PacketError> {
    let (rest, label) = match data.split_first() {
        Some((&t, after)) if t == MessageType::HasLabel as u8 => {
            let (&len, after) = after.split_first().ok_or(PacketError::LabelTruncated)?;
            if len == 0 {
                return Err(PacketError::LabelEmpty);
            }
            let len = len as usize;
            let label = after.get(..len).ok_or(PacketError::LabelTruncated)?;
            (&after[len..], label)
        }
        _ => (data, &[][..]),
    };
    if !skip_label_check && label != our_label {
        return Err(PacketError::LabelMismatch {
            got: label.to_vec(),
        });
    }
    Ok((rest, label))
}

/// Decode a plaintext packet: label check, CRC check, then every message in
/// it (appended to `out`). [`decode_packet_with`] also decrypts.
///
/// Errors drop the whole packet (bad label, CRC mismatch). Problems inside
/// (unknown types, malformed or truncated parts) are counted in the
/// summary while the rest is still processed, as Go does; messages decoded
/// before a problem are kept.
pub fn decode_packet(
    data: &[u8],
    our_label: &[u8],
    skip_label_check: bool,
    limits: &Limits,
    out: &mut Vec<Message>,
) -> Result<PacketSummary, PacketError> {
    decode_packet_with(data, our_label, skip_label_check, None, limits, out)
}

/// [`decode_packet`] with decryption when `decryption` is given: after the
/// label is stripped, every key is tried with the label found as
/// additional data. A packet that does not decrypt is dropped
/// ([`PacketError::Decrypt`]) when incoming verification is on, and read
/// as plaintext otherwise (Go does the same).
///
/// With `skip_label_check`, the additional data is the label the packet
/// carries (what its sender used), not ours; Go uses its own label there,
/// which only works when both are equal.
pub fn decode_packet_with(
    data: &[u8],
    our_label: &[u8],
    skip_label_check: bool,
    decryption: Option<Decryption<'_>>,
    limits: &Limits,
    out: &mut Vec<Message>,
) -> Result<PacketSummary, PacketError> {
    let keep_all = |_: &AliveRef<'_>| false;
    let labels = (our_label, skip_label_check);
    decode_packet_filtered(data, labels, decryption, limits, out, &keep_all)
}

/// [`decode_packet_with`] (`labels`: our label and whether to skip its
/// check), leaving out alive messages for which `repeated` says they
/// repeat what the node holds, before they are copied out of the packet.
pub(crate) fn decode_packet_filtered(
    data: &[u8],
    (our_label, skip_label_check): (&[u8], bool),
    decryption: Option<Decryption<'_>>,
    limits: &Limits,
    out: &mut Vec<Message>,
    repeated: &dyn Fn(&AliveRef<'_>) -> bool,
) -> Result<PacketSummary, PacketError> {
    let (rest, label) = strip_packet_label(data, our_label, skip_label_check)?;
    let Some(d) = decryption else {
        return decode_body_filtered(rest, limits, out, repeated);
    };
    match d.keyring.decrypt(rest, label) {
        Ok(plain) => {
            let mut s = decode_body_filtered(&plain, limits, out, repeated)?;
            s.decrypted = true;
            Ok(s)
        }
        Err(e) if d.verify_incoming => Err(PacketError::Decrypt(e)),
        Err(_) => decode_body_filtered(rest, limits, out, repeated),
    }
}

/// Decode a packet after label removal (and decryption): verify the CRC
/// when the first byte is 12 and at least 5 bytes are present, then
/// dispatch. See [`decode_packet`].
pub fn decode_packet_body(
    buf: &[u8],
    limits: &Limits,
    out: &mut Vec<Message>,
) -> Result<PacketSummary, PacketError> {
    decode_body_filtered(buf, limits, out, &|_| false)
}

fn decode_body_filtered(
    buf: &[u8],
    limits: &Limits,
    out: &mut Vec<Message>,
    repeated: &dyn Fn(&AliveRef<'_>) -> bool,
) -> Result<PacketSummary, PacketError> {
    let mut summary = PacketSummary::default();
    let mut body = buf;
    if buf.len() >= CRC_OVERHEAD && buf[0] == MessageType::HasCrc as u8 {
        let expected = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
        body = &buf[CRC_OVERHEAD..];
        let computed = crc32fast::hash(body);
        if computed != expected {
            return Err(PacketError::CrcMismatch { expected, computed });
        }
        summary.had_crc = true;
    }
    let mut d = Dispatch {
        limits,
        budget: limits.max_decompressed_bytes,
        summary: &mut summary,
        out,
        repeated,
    };
    dispatch(body, 0, &mut d);
    Ok(summary)
}

/// Where [`dispatch`] puts what it finds, and what it may spend.
struct Dispatch<'x> {
    limits: &'x Limits,
    /// Decompressed bytes still allowed for this packet.
    budget: usize,
    summary: &'x mut PacketSummary,
    out: &'x mut Vec<Message>,
    repeated: &'x dyn Fn(&AliveRef<'_>) -> bool,
}

fn dispatch(buf: &[u8], depth: usize, d: &mut Dispatch<'_>) {
    let Some((&t, body)) = buf.split_first() else {
        d.summary.malformed += 1;
        return;
    };
    match MessageType::from_byte(t) {
        Some(MessageType::Compound) => {
            if depth >= MAX_NESTING {
                d.summary.malformed += 1;
                return;
            }
            let Some((&n, rest)) = body.split_first() else {
                d.summary.malformed += 1;
                return;
            };
            let n = n as usize;
            let Some(lens) = rest.get(..2 * n) else {
                d.summary.malformed += 1;
                return;
            };
            let mut rest = &rest[2 * n..];
            for (i, l) in lens.chunks_exact(2).enumerate() {
                let len = u16::from_be_bytes([l[0], l[1]]) as usize;
                if rest.len() < len {
                    d.summary.truncated += n - i;
                    return;
                }
                let (part, after) = rest.split_at(len);
                rest = after;
                dispatch(part, depth + 1, d);
            }
        }
        Some(MessageType::Compress) => {
            if depth >= MAX_NESTING {
                d.summary.malformed += 1;
                return;
            }
            let Ok((0, data)) = decode_compress_body(&mut Reader::new(body)) else {
                d.summary.malformed += 1;
                return;
            };
            let cap = d.budget.min(d.limits.max_decompressed_bytes);
            match lzw::decompress(data, cap) {
                Ok(plain) => {
                    d.budget -= plain.len();
                    dispatch(&plain, depth + 1, d);
                }
                Err(_) => d.summary.malformed += 1,
            }
        }
        Some(MessageType::Alive) => match AliveRef::decode_body(&mut Reader::new(body)) {
            Ok(a) if (d.repeated)(&a) => d.summary.repeated_alives += 1,
            Ok(a) => {
                d.summary.messages += 1;
                d.out.push(Message::Alive(a.to_owned()));
            }
            Err(_) => d.summary.malformed += 1,
        },
        Some(
            MessageType::Ping
            | MessageType::IndirectPing
            | MessageType::Ack
            | MessageType::Nack
            | MessageType::Suspect
            | MessageType::Dead
            | MessageType::User
            | MessageType::Err,
        ) => match decode_message(buf) {
            Ok(m) => {
                d.summary.messages += 1;
                d.out.push(m);
            }
            Err(_) => d.summary.malformed += 1,
        },
        Some(
            MessageType::PushPull
            | MessageType::Encrypt
            | MessageType::HasCrc
            | MessageType::HasLabel,
        )
        | None => d.summary.unknown += 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_len_lower_bound_holds() {
        let mut one = Vec::new();
        encode_compress(&[0], &mut one);
        let lzw_one = lzw::compress(&[0]).len();
        assert_eq!(one.len() - lzw_one, COMPRESS_MIN_OVERHEAD);
        // Worst cases for the bound (runs of one byte, which LZW
        // compresses best) and ordinary text, at every length up to 600.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let random: Vec<u8> = (0..600)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 56) as u8
            })
            .collect();
        let text: Vec<u8> = b"alive node-0042 incarnation 7 meta addr "
            .iter()
            .copied()
            .cycle()
            .take(600)
            .collect();
        for n in 0..600 {
            for input in [vec![b'a'; n], random[..n].to_vec(), text[..n].to_vec()] {
                let mut out = Vec::new();
                encode_compress(&input, &mut out);
                let bound = compressed_len_lower_bound(n);
                assert!(out.len() >= bound, "n={n}: {} < {bound}", out.len());
            }
        }
        // Tiny messages are never compressed.
        assert!(compressed_len_lower_bound(20) >= 20);
    }
    use crate::wire::codec::tests::{
        arb_bytes, arb_message, hx, ping_with_source, suspect, PING_WITH_SOURCE, SUSPECT,
    };
    use crate::wire::messages::*;
    use proptest::prelude::*;

    fn compound_hex() -> String {
        format!("0702003b001d{PING_WITH_SOURCE}{SUSPECT}")
    }

    fn decode(data: &[u8], label: &[u8]) -> Result<(PacketSummary, Vec<Message>), PacketError> {
        let mut out = Vec::new();
        let s = decode_packet(data, label, false, &Limits::default(), &mut out)?;
        Ok((s, out))
    }

    fn expected_pair() -> Vec<Message> {
        vec![
            Message::Ping(ping_with_source()),
            Message::Suspect(suspect()),
        ]
    }

    #[test]
    fn golden_compound() {
        let parts = [hx(PING_WITH_SOURCE), hx(SUSPECT)];
        let c = encode_compound(&parts).unwrap();
        assert_eq!(c, vec![hx(&compound_hex())]);
        let (s, msgs) = decode(&c[0], b"").unwrap();
        assert_eq!(msgs, expected_pair());
        assert_eq!(
            (s.messages, s.unknown, s.malformed, s.truncated),
            (2, 0, 0, 0)
        );
    }

    #[test]
    fn golden_compound_crc_label() {
        let compound = hx(&compound_hex());
        let crc = hx(&format!("0ca6552711{}", compound_hex()));
        let labelled = hx(&format!("f403666f6f0ca6552711{}", compound_hex()));
        assert_eq!(crc32fast::hash(b"123456789"), 0xcbf43926);

        let mut out = Vec::new();
        let opts = PacketOptions {
            crc: true,
            ..Default::default()
        };
        frame_packet(&compound, &opts, &mut out).unwrap();
        assert_eq!(out, crc);
        let (s, msgs) = decode(&crc, b"").unwrap();
        assert!(s.had_crc);
        assert_eq!(msgs, expected_pair());

        out.clear();
        let opts = PacketOptions {
            crc: true,
            label: b"foo",
            ..Default::default()
        };
        frame_packet(&compound, &opts, &mut out).unwrap();
        assert_eq!(out, labelled);
        let (s, msgs) = decode(&labelled, b"foo").unwrap();
        assert_eq!(s.messages, 2);
        assert_eq!(msgs, expected_pair());
    }

    #[test]
    fn golden_compress_wrapping_ping() {
        let want = hx("0982a4416c676f00a3427566da003a00011422e5e40d9932a1c4949a52264ec100aaa6bca923674c992064c8c821a50000008812295a2c7830549888132b9681f2460e9d661f140404");
        let mut out = Vec::new();
        encode_compress(&hx(PING_WITH_SOURCE), &mut out);
        assert_eq!(out, want);
        let (_, msgs) = decode(&want, b"").unwrap();
        assert_eq!(msgs, vec![Message::Ping(ping_with_source())]);
        // The compressed form (70 bytes) is longer than the ping (59): not kept.
        out.clear();
        let opts = PacketOptions {
            compress: true,
            ..Default::default()
        };
        frame_packet(&hx(PING_WITH_SOURCE), &opts, &mut out).unwrap();
        assert_eq!(out, hx(PING_WITH_SOURCE));
    }

    #[test]
    fn compression_kept_when_smaller() {
        let msg = Message::User(vec![b'x'; 1000]);
        let mut out = Vec::new();
        let opts = PacketOptions {
            compress: true,
            crc: true,
            label: b"lbl",
            encryption: None,
        };
        encode_packet(&msg, &opts, &mut out).unwrap();
        assert!(out.len() < 200);
        assert_eq!(&out[..5], b"\xf4\x03lbl");
        assert_eq!(out[5], 12);
        assert_eq!(out[10], 9);
        let (s, msgs) = decode(&out, b"lbl").unwrap();
        assert_eq!(msgs, vec![msg]);
        assert!(s.had_crc);
    }

    #[test]
    fn crc_mismatch_dropped() {
        let mut crc = hx(&format!("0ca6552711{}", compound_hex()));
        let last = crc.len() - 1;
        crc[last] ^= 1;
        assert!(matches!(
            decode(&crc, b""),
            Err(PacketError::CrcMismatch {
                expected: 0xa6552711,
                ..
            })
        ));
        // Fewer than 5 bytes: not a CRC header, an unsupported type.
        let (s, _) = decode(&[12, 1, 2], b"").unwrap();
        assert_eq!(s.unknown, 1);
    }

    #[test]
    fn label_checks() {
        let labelled = hx(&format!("f403666f6f{}", PING_WITH_SOURCE));
        assert_eq!(
            decode(&labelled, b"bar"),
            Err(PacketError::LabelMismatch {
                got: b"foo".to_vec()
            })
        );
        assert_eq!(
            decode(&labelled, b""),
            Err(PacketError::LabelMismatch {
                got: b"foo".to_vec()
            })
        );
        assert_eq!(
            decode(&hx(PING_WITH_SOURCE), b"foo"),
            Err(PacketError::LabelMismatch { got: vec![] })
        );
        assert_eq!(decode(&[244], b""), Err(PacketError::LabelTruncated));
        assert_eq!(
            decode(&[244, 3, b'f'], b""),
            Err(PacketError::LabelTruncated)
        );
        assert_eq!(decode(&[244, 0, 0], b""), Err(PacketError::LabelEmpty));
        // Skipping the check accepts any label, or none.
        let mut out = Vec::new();
        let s = decode_packet(&labelled, b"bar", true, &Limits::default(), &mut out).unwrap();
        assert_eq!(s.messages, 1);
        let s = decode_packet(
            &hx(PING_WITH_SOURCE),
            b"bar",
            true,
            &Limits::default(),
            &mut out,
        )
        .unwrap();
        assert_eq!(s.messages, 1);
    }

    #[test]
    fn truncated_compound_keeps_earlier_parts() {
        let mut c = hx(&compound_hex());
        c.truncate(c.len() - 1);
        let (s, msgs) = decode(&c, b"").unwrap();
        assert_eq!(msgs, vec![Message::Ping(ping_with_source())]);
        assert_eq!((s.messages, s.truncated), (1, 1));
        // Length slice cut short: the compound is malformed.
        let (s, msgs) = decode(&[7, 3, 0, 1], b"").unwrap();
        assert!(msgs.is_empty());
        assert_eq!(s.malformed, 1);
    }

    #[test]
    fn problems_inside_are_counted() {
        // Parts: unknown type 99, malformed ping, nested compound with a
        // suspect, an empty part, a push/pull (not for packets), a user msg.
        let inner = {
            let mut v = Vec::new();
            encode_compound_into(&[hx(SUSPECT)], &mut v).unwrap();
            v
        };
        let parts: Vec<Vec<u8>> = vec![
            vec![99, 1, 2],
            vec![0, 0xc1],
            inner,
            vec![],
            vec![6, 0x80],
            vec![8, 1, 2, 3],
        ];
        let c = encode_compound(&parts).unwrap();
        let (s, msgs) = decode(&c[0], b"").unwrap();
        assert_eq!(
            msgs,
            vec![Message::Suspect(suspect()), Message::User(vec![1, 2, 3])]
        );
        assert_eq!(
            (s.messages, s.unknown, s.malformed, s.truncated),
            (2, 2, 2, 0)
        );
    }

    #[test]
    fn split_over_255_parts() {
        let parts: Vec<Vec<u8>> = (0..600u32)
            .map(|i| {
                let mut v = Vec::new();
                encode_message(&Message::Nack(NackResp { seq_no: i }), &mut v);
                v
            })
            .collect();
        let cs = encode_compound(&parts).unwrap();
        assert_eq!(cs.len(), 3);
        assert_eq!((cs[0][1], cs[1][1], cs[2][1]), (255, 255, 90));
        let mut all = Vec::new();
        for c in &cs {
            decode_packet(c, b"", false, &Limits::default(), &mut all).unwrap();
        }
        assert_eq!(all.len(), 600);
        assert_eq!(all[599], Message::Nack(NackResp { seq_no: 599 }));
        assert!(encode_compound(&[vec![0u8; 70000]]).is_err());
        assert!(encode_compound_into(&parts, &mut Vec::new()).is_err());
    }

    #[test]
    fn nesting_and_decompression_budget() {
        // A compress bomb nested in compounds is bounded by the budget.
        let mut m = vec![b'a'; 100_001];
        m[0] = 8;
        let mut c = Vec::new();
        encode_compress(&m, &mut c);
        let parts = vec![c; 20];
        let packet = encode_compound(&parts).unwrap().remove(0);
        let limits = Limits {
            max_decompressed_bytes: 450_000,
            ..Limits::default()
        };
        let mut out = Vec::new();
        let s = decode_packet(&packet, b"", false, &limits, &mut out).unwrap();
        assert_eq!((s.messages, s.malformed), (4, 16));
        // Deep nesting is cut off.
        let mut p = hx(SUSPECT);
        for _ in 0..20 {
            let mut v = Vec::new();
            encode_compound_into(&[p], &mut v).unwrap();
            p = v;
        }
        let mut out = Vec::new();
        let s = decode_packet(&p, b"", false, &Limits::default(), &mut out).unwrap();
        assert_eq!((s.messages, s.malformed), (0, 1));
    }

    mod encrypted {
        use super::*;
        use crate::wire::security::tests::{KEY, NONCE, PLAIN};
        use crate::wire::security::{EncryptionVersion, Keyring};

        fn seal(k: &Keyring, v: EncryptionVersion, label: &[u8], crc: bool) -> Vec<u8> {
            let mut out = Vec::new();
            let opts = PacketOptions {
                compress: false,
                crc,
                label,
                encryption: Some(Encryption {
                    keyring: k,
                    version: v,
                    nonce: NONCE,
                }),
            };
            frame_packet(&hx(PLAIN), &opts, &mut out).unwrap();
            out
        }

        pub(super) fn open(
            data: &[u8],
            k: &Keyring,
            label: &[u8],
            verify_incoming: bool,
        ) -> Result<(PacketSummary, Vec<Message>), PacketError> {
            let mut out = Vec::new();
            let d = Decryption {
                keyring: k,
                verify_incoming,
            };
            let s = decode_packet_with(data, label, false, Some(d), &Limits::default(), &mut out)?;
            Ok((s, out))
        }

        fn ack() -> Vec<Message> {
            vec![Message::Ack(AckResp {
                seq_no: 7,
                payload: vec![],
            })]
        }

        #[test]
        fn golden_vectors_both_ways() {
            let k = Keyring::new(&KEY).unwrap();
            let cases: [(EncryptionVersion, &[u8], &str); 3] = [
                (
                    EncryptionVersion::V1,
                    b"",
                    "01 a0a1a2a3a4a5a6a7a8a9aaab a8079de81bf87d658d ec90742b647441dad2a2cc297612a5e8",
                ),
                (
                    EncryptionVersion::V1,
                    b"foo",
                    "f403666f6f 01 a0a1a2a3a4a5a6a7a8a9aaab a8079de81bf87d658d 8236c4cfd603d06a68018c0c3c451e7d",
                ),
                (
                    EncryptionVersion::V0,
                    b"",
                    "00 a0a1a2a3a4a5a6a7a8a9aaab a8079de81bf87d658d7fb2074115b76706a717447f95602365a8d719df6396f6",
                ),
            ];
            for (v, label, want) in cases {
                let want = hx(want);
                assert_eq!(seal(&k, v, label, false), want);
                let (s, msgs) = open(&want, &k, label, true).unwrap();
                assert!(s.decrypted);
                assert_eq!(msgs, ack());
                // Every truncation is rejected without a panic.
                for i in 0..want.len() {
                    assert!(open(&want[..i], &k, label, true).is_err(), "{i}");
                }
            }
            // The label is authenticated: a packet relabelled under skip
            // mode does not decrypt.
            let mut relabelled = hx("f403626172");
            relabelled.extend_from_slice(&seal(&k, EncryptionVersion::V1, b"foo", false)[5..]);
            let mut out = Vec::new();
            let d = Decryption {
                keyring: &k,
                verify_incoming: true,
            };
            assert_eq!(
                decode_packet_with(
                    &relabelled,
                    b"",
                    true,
                    Some(d),
                    &Limits::default(),
                    &mut out
                ),
                Err(PacketError::Decrypt(DecryptError::NoKeyMatched))
            );
        }

        #[test]
        fn crc_inside_encryption() {
            let k = Keyring::new(&[3; 32]).unwrap();
            let p = seal(&k, EncryptionVersion::V1, b"lbl", true);
            assert_eq!(p.len(), 5 + 29 + 5 + hx(PLAIN).len());
            let (s, msgs) = open(&p, &k, b"lbl", true).unwrap();
            assert!(s.had_crc && s.decrypted);
            assert_eq!(msgs, ack());
        }

        #[test]
        fn verification_modes() {
            let k = Keyring::new(&KEY).unwrap();
            let wrong = Keyring::new(&[9; 16]).unwrap();
            let sealed = seal(&k, EncryptionVersion::V1, b"", false);
            // Wrong key, verifying: dropped.
            assert_eq!(
                open(&sealed, &wrong, b"", true),
                Err(PacketError::Decrypt(DecryptError::NoKeyMatched))
            );
            // Wrong key, not verifying: read as plaintext, which here is
            // an indirect ping (type 1) of garbage.
            let (s, msgs) = open(&sealed, &wrong, b"", false).unwrap();
            assert!(msgs.is_empty() && !s.decrypted);
            assert_eq!(s.malformed, 1);
            // Plaintext, verifying: dropped; not verifying: accepted.
            let plain = hx(PLAIN);
            assert!(matches!(
                open(&plain, &k, b"", true),
                Err(PacketError::Decrypt(_))
            ));
            let (s, msgs) = open(&plain, &k, b"", false).unwrap();
            assert!(!s.decrypted);
            assert_eq!(msgs, ack());
            // A keyring whose second key matches.
            let ring = Keyring::with_keys(&[9; 16], [KEY]).unwrap();
            assert_eq!(open(&sealed, &ring, b"", true).unwrap().1, ack());
        }
    }

    proptest! {
        #[test]
        fn packet_round_trip(
            msgs in proptest::collection::vec(arb_message(), 1..6),
            compress: bool,
            crc: bool,
            label in proptest::collection::vec(any::<u8>(), 0..5),
        ) {
            let parts: Vec<Vec<u8>> = msgs.iter().map(|m| {
                let mut v = Vec::new();
                encode_message(m, &mut v);
                v
            }).collect();
            let c = encode_compound(&parts).unwrap().remove(0);
            let mut packet = Vec::new();
            frame_packet(&c, &PacketOptions { compress, crc, label: &label, encryption: None }, &mut packet).unwrap();
            let mut out = Vec::new();
            let s = decode_packet(&packet, &label, false, &Limits::default(), &mut out).unwrap();
            prop_assert_eq!(s.had_crc, crc);
            prop_assert_eq!(out, msgs);
            for i in 0..packet.len() {
                let _ = decode_packet(&packet[..i], &label, false, &Limits::default(), &mut Vec::new());
            }
        }

        #[test]
        fn encrypted_packet_round_trip(
            msgs in proptest::collection::vec(arb_message(), 1..6),
            compress: bool,
            crc: bool,
            v0: bool,
            nonce: [u8; 12],
            label in proptest::collection::vec(any::<u8>(), 0..5),
        ) {
            use crate::wire::security::{EncryptionVersion, Keyring};
            let k = Keyring::new(&[7; 24]).unwrap();
            let parts: Vec<Vec<u8>> = msgs.iter().map(|m| {
                let mut v = Vec::new();
                encode_message(m, &mut v);
                v
            }).collect();
            let c = encode_compound(&parts).unwrap().remove(0);
            let version = if v0 { EncryptionVersion::V0 } else { EncryptionVersion::V1 };
            let encryption = Some(Encryption { keyring: &k, version, nonce });
            let mut packet = Vec::new();
            frame_packet(&c, &PacketOptions { compress, crc, label: &label, encryption }, &mut packet).unwrap();
            let (s, out) = encrypted::open(&packet, &k, &label, true).unwrap();
            prop_assert!(s.decrypted);
            prop_assert_eq!(out, msgs);
            for i in 0..packet.len() {
                prop_assert!(encrypted::open(&packet[..i], &k, &label, true).is_err());
            }
        }

        #[test]
        fn arbitrary_packets_never_panic(data in arb_bytes(300)) {
            let mut out = Vec::new();
            let _ = decode_packet(&data, b"", true, &Limits::default(), &mut out);
            for t in [7u8, 9, 12] {
                let mut d = vec![t];
                d.extend_from_slice(&data);
                let _ = decode_packet(&d, b"", false, &Limits::default(), &mut out);
            }
        }
    }
}
