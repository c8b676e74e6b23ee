//! The packet budget: how many bytes of encoded messages fit in one UDP
//! packet once it is framed.
//!
//! Every send path asks the same question (how much room is left once the
//! framing has taken its share of `udp_buffer_size`?), and each used to
//! answer it with its own sum of constants. [`packet_room`] is the one
//! answer, built from the constants of the framing code itself
//! ([`super::packet`], [`super::security`]); the tests frame maximal
//! messages with [`super::frame_packet`] to pin it to the real output.
//!
//! **Compression** never appears in the sum: [`super::frame_packet`] keeps
//! the compressed form only when it is strictly smaller, so compression
//! can only shrink a packet, and the worst case (incompressible input)
//! is the uncompressed one. Packing *more* than the room in the hope that
//! compression makes it fit is a separate, optimistic decision (the node's
//! gossip packing), which must check the framed size itself.

use super::packet::{label_len_overhead, COMPOUND_HEADER_OVERHEAD, CRC_OVERHEAD};
use super::security::EncryptionVersion;

/// Bytes the type byte of a user message adds to its data (`[8][data]`).
pub const USER_MSG_OVERHEAD: usize = 1;

/// How an outgoing packet is framed, as far as its size goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Framing {
    /// The messages go in a compound message: its `[7][count]` header is
    /// reserved here; each part's two-byte length
    /// ([`COMPOUND_PART_OVERHEAD`](super::packet::COMPOUND_PART_OVERHEAD))
    /// is the packer's to count per part.
    pub compound: bool,
    /// A CRC header `[12][u32]` is (or may be) added.
    pub crc: bool,
    /// Length of the cluster label (0 for none).
    pub label_len: usize,
    /// The packet is encrypted with this version (`None` for plaintext).
    /// Version 0 is charged its worst-case padding (a whole block).
    pub encryption: Option<EncryptionVersion>,
}

impl Framing {
    /// The most bytes this framing adds around the encoded message(s).
    pub const fn overhead(&self) -> usize {
        let compound = if self.compound {
            COMPOUND_HEADER_OVERHEAD
        } else {
            0
        };
        let crc = if self.crc { CRC_OVERHEAD } else { 0 };
        let encryption = match self.encryption {
            Some(v) => v.overhead(),
            None => 0,
        };
        compound + crc + label_len_overhead(self.label_len) + encryption
    }
}

/// Bytes of encoded messages that fit in a packet of at most
/// `udp_buffer_size` bytes framed as `framing` (saturating at 0). With
/// [`Framing::compound`], this is the room for the parts *and* their
/// per-part lengths. Compression is not an input: it never makes a packet
/// larger (see the module documentation).
pub const fn packet_room(udp_buffer_size: usize, framing: &Framing) -> usize {
    udp_buffer_size.saturating_sub(framing.overhead())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::packet::{encode_compound_into, COMPOUND_PART_OVERHEAD};
    use crate::wire::security::{Keyring, NONCE_SIZE};
    use crate::wire::{frame_packet, Encryption, PacketOptions};

    const LABEL: &[u8] = b"a-cluster-label";

    /// Every framing the node sends with, under every encryption.
    fn framings() -> Vec<Framing> {
        let mut out = Vec::new();
        for encryption in [
            None,
            Some(EncryptionVersion::V0),
            Some(EncryptionVersion::V1),
        ] {
            for label_len in [0, LABEL.len()] {
                for (compound, crc) in [(false, false), (true, false), (true, true), (false, true)]
                {
                    out.push(Framing {
                        compound,
                        crc,
                        label_len,
                        encryption,
                    });
                }
            }
        }
        out
    }

    /// Incompressible bytes (LZW output of these is longer than the input).
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    /// The message of `room` bytes of encoded messages: one message, or a
    /// compound of parts whose lengths plus per-part overhead add up to
    /// `room`.
    fn message(framing: &Framing, room: usize, seed: u64) -> Vec<u8> {
        if !framing.compound {
            return noise(room, seed);
        }
        // Parts of a few hundred bytes, the last one taking the rest.
        let mut parts = Vec::new();
        let mut left = room;
        while left > 0 {
            let take = left.min(300);
            assert!(take > COMPOUND_PART_OVERHEAD, "test sizes leave room");
            parts.push(noise(
                take - COMPOUND_PART_OVERHEAD,
                seed + parts.len() as u64,
            ));
            left -= take;
        }
        let mut out = Vec::new();
        encode_compound_into(&parts, &mut out).unwrap();
        out
    }

    fn framed_len(framing: &Framing, msg: &[u8], compress: bool, keyring: &Keyring) -> usize {
        let label: &[u8] = &LABEL[..framing.label_len];
        let opts = PacketOptions {
            compress,
            crc: framing.crc,
            label,
            encryption: framing.encryption.map(|version| Encryption {
                keyring,
                version,
                nonce: [7; NONCE_SIZE],
            }),
        };
        let mut out = Vec::new();
        frame_packet(msg, &opts, &mut out).unwrap();
        out.len()
    }

    /// The overheads, one framing at a time.
    #[test]
    fn overheads() {
        let plain = Framing::default();
        assert_eq!(plain.overhead(), 0);
        assert_eq!(packet_room(1400, &plain), 1400);
        let f = |f: Framing| packet_room(1400, &f);
        assert_eq!(
            f(Framing {
                compound: true,
                ..plain
            }),
            1398
        );
        assert_eq!(f(Framing { crc: true, ..plain }), 1395);
        assert_eq!(
            f(Framing {
                label_len: 10,
                ..plain
            }),
            1388
        );
        assert_eq!(
            f(Framing {
                encryption: Some(EncryptionVersion::V0),
                ..plain
            }),
            1355
        );
        assert_eq!(
            f(Framing {
                encryption: Some(EncryptionVersion::V1),
                ..plain
            }),
            1371
        );
        // Gossip: compound, CRC, a label, v1.
        assert_eq!(
            f(Framing {
                compound: true,
                crc: true,
                label_len: 10,
                encryption: Some(EncryptionVersion::V1),
            }),
            1400 - 2 - 5 - 12 - 29
        );
        assert_eq!(packet_room(10, &Framing { crc: true, ..plain }), 5);
        assert_eq!(packet_room(3, &Framing { crc: true, ..plain }), 0);
    }

    /// What pins the arithmetic: a message that fills the room exactly,
    /// framed for real, never exceeds `udp_buffer_size`; it reaches it
    /// exactly, and one byte more would exceed it. Version 0 pads to whole
    /// blocks and the room reserves the worst case (a whole block, as Go
    /// does), so there both happen at one size in 16: exact when the
    /// plaintext is a block multiple, tight when it is one short of one.
    /// An overhead off by one either way fails one of the three.
    /// Incompressible data, so compression (tried, and kept only when
    /// smaller) changes nothing.
    #[test]
    fn maximal_messages_fill_the_packet_exactly() {
        let keyring = Keyring::new(&[3; 16]).unwrap();
        for framing in framings() {
            for compress in [false, true] {
                let (mut exact, mut tight) = (0, 0);
                for udp in 512..512 + 32 {
                    let room = packet_room(udp, &framing);
                    let len = framed_len(&framing, &message(&framing, room, 1), compress, &keyring);
                    assert!(len <= udp, "{framing:?} udp {udp}: {len} bytes");
                    exact += usize::from(len == udp);
                    let more = message(&framing, room + 1, 1);
                    tight += usize::from(framed_len(&framing, &more, compress, &keyring) > udp);
                    let block = message(&framing, room + 16, 1);
                    assert!(framed_len(&framing, &block, compress, &keyring) > udp);
                }
                let want = if framing.encryption == Some(EncryptionVersion::V0) {
                    2
                } else {
                    32
                };
                assert_eq!((exact, tight), (want, want), "{framing:?}");
            }
        }
    }

    /// Compressible data comes out smaller, never larger: the room does not
    /// depend on compression.
    #[test]
    fn compression_only_shrinks() {
        let keyring = Keyring::new(&[3; 16]).unwrap();
        for framing in framings() {
            let room = packet_room(1400, &framing);
            let msg = if framing.compound {
                let part = vec![b'a'; room - COMPOUND_PART_OVERHEAD];
                let mut out = Vec::new();
                encode_compound_into(&[part], &mut out).unwrap();
                out
            } else {
                vec![b'a'; room]
            };
            let plain = framed_len(&framing, &msg, false, &keyring);
            assert!(plain <= 1400, "{framing:?}");
            assert!(framed_len(&framing, &msg, true, &keyring) < plain / 2);
        }
    }
}
