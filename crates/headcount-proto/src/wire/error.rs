//! The error of the encoding side of the wire format, shared by packets,
//! encryption and streams.
//!
//! It lives apart so that `packet`, `security` and `stream` can all return
//! it without importing one another (`packet` needs `security` to encrypt;
//! `security` used to reach back into `packet` for this type alone).

use core::fmt;

/// Why a packet or stream could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// A compound part is longer than a `u16` length can say.
    PartTooLarge {
        /// Index of the part.
        index: usize,
        /// Its length.
        len: usize,
    },
    /// More than [`MAX_COMPOUND_PARTS`](super::MAX_COMPOUND_PARTS) parts given to
    /// [`encode_compound_into`](super::encode_compound_into).
    TooManyParts(usize),
    /// A label longer than [`LABEL_MAX_LEN`](super::packet::LABEL_MAX_LEN) bytes.
    LabelTooLong(usize),
    /// An encrypted stream payload longer than a `u32` length can say.
    EncryptedTooLarge(usize),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PartTooLarge { index, len } => {
                write!(f, "compound part {index} is {len} bytes, more than 65535")
            }
            Self::TooManyParts(n) => write!(f, "{n} compound parts, more than 255"),
            Self::LabelTooLong(n) => write!(f, "label of {n} bytes, more than 255"),
            Self::EncryptedTooLarge(n) => {
                write!(f, "encrypted payload of {n} bytes, more than 4 GiB")
            }
        }
    }
}

impl std::error::Error for EncodeError {}
