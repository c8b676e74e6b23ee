//! A minimal msgpack writer and a bounded msgpack reader, written by hand
//! for memberlist's wire format.
//!
//! Why not a msgpack crate:
//!
//! - **Byte-exact output for old Go decoders.** Go memberlist uses the old
//!   msgpack spec: strings *and* byte slices are written as the legacy raw
//!   type (`a0|len`, `da` + u16, `db` + u32). It never emits `str8` (`d9`) or
//!   `bin` (`c4`..`c6`), and older Go decoders reject `bin` for a string field.
//!   Signed `int` fields use signed markers (`d1`/`d2`/`d3`) above 127 like
//!   memberlist >= 0.5.1. General-purpose crates pick `str8`/`bin` and their
//!   own int forms, so their output is neither byte-exact nor always accepted.
//! - **Hostile input.** Decoding must never panic and never allocate more
//!   than the bytes actually present: a declared length larger than the
//!   remaining input is an error ([`DecodeError::Truncated`]), not an
//!   allocation, and skipping unknown values has a bounded recursion depth.
//!   Byte and string values are returned as borrowed slices of the input.
//!
//! The writer goes through the [`Sink`] trait so that the same code computes
//! encoded lengths ([`Counter`]) without allocating.

use core::fmt;

/// Deepest nesting of maps/arrays the reader will skip through.
pub const MAX_SKIP_DEPTH: usize = 32;

/// Something msgpack bytes can be written to.
pub trait Sink {
    /// Append bytes.
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// A [`Sink`] that only counts the bytes written to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter(pub usize);

impl Sink for Counter {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

/// Write a map header for `n` entries.
pub fn write_map_len<S: Sink>(out: &mut S, n: usize) {
    if n < 16 {
        out.put(&[0x80 | n as u8]);
    } else if n <= u16::MAX as usize {
        out.put(&[0xde]);
        out.put(&(n as u16).to_be_bytes());
    } else {
        out.put(&[0xdf]);
        out.put(&(n as u32).to_be_bytes());
    }
}

/// Write bytes (or a string) as the legacy msgpack raw type, like Go.
///
/// Lengths above `u32::MAX` cannot be represented; callers never produce
/// them (all wire fields are far smaller).
pub fn write_raw<S: Sink>(out: &mut S, bytes: &[u8]) {
    let n = bytes.len();
    if n < 32 {
        out.put(&[0xa0 | n as u8]);
    } else if n <= u16::MAX as usize {
        out.put(&[0xda]);
        out.put(&(n as u16).to_be_bytes());
    } else {
        out.put(&[0xdb]);
        out.put(&(n as u32).to_be_bytes());
    }
    out.put(bytes);
}

/// Write a byte slice that Go holds as a possibly-nil `[]byte`: empty is
/// written as nil (`c0`), anything else as legacy raw.
pub fn write_bytes_or_nil<S: Sink>(out: &mut S, bytes: &[u8]) {
    if bytes.is_empty() {
        out.put(&[0xc0]);
    } else {
        write_raw(out, bytes);
    }
}

/// Write an unsigned integer in its smallest form.
pub fn write_uint<S: Sink>(out: &mut S, v: u64) {
    if v <= 0x7f {
        out.put(&[v as u8]);
    } else if v <= u8::MAX as u64 {
        out.put(&[0xcc, v as u8]);
    } else if v <= u16::MAX as u64 {
        out.put(&[0xcd]);
        out.put(&(v as u16).to_be_bytes());
    } else if v <= u32::MAX as u64 {
        out.put(&[0xce]);
        out.put(&(v as u32).to_be_bytes());
    } else {
        out.put(&[0xcf]);
        out.put(&v.to_be_bytes());
    }
}

/// Write a signed integer like go-msgpack (memberlist >= 0.5.1): fixints in
/// -32..=127, otherwise the smallest signed marker (`d0`..`d3`).
pub fn write_int<S: Sink>(out: &mut S, v: i64) {
    if (-32..=127).contains(&v) {
        out.put(&[v as i8 as u8]);
    } else if i8::try_from(v).is_ok() {
        out.put(&[0xd0, v as i8 as u8]);
    } else if let Ok(v) = i16::try_from(v) {
        out.put(&[0xd1]);
        out.put(&v.to_be_bytes());
    } else if let Ok(v) = i32::try_from(v) {
        out.put(&[0xd2]);
        out.put(&v.to_be_bytes());
    } else {
        out.put(&[0xd3]);
        out.put(&v.to_be_bytes());
    }
}

/// Write a boolean.
pub fn write_bool<S: Sink>(out: &mut S, v: bool) {
    out.put(&[if v { 0xc3 } else { 0xc2 }]);
}

/// What went wrong while decoding a message body.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// There was no type byte at all.
    Empty,
    /// The input ended early: at least `needed` bytes (counted from the
    /// start of the input given to the reader) are required.
    Truncated {
        /// Total input length that would be needed to go on.
        needed: usize,
    },
    /// A value had a msgpack type that does not fit where it was found.
    UnexpectedMarker {
        /// What was being read (a field name or a structural element).
        what: &'static str,
        /// The marker byte found.
        marker: u8,
        /// Offset of the marker in the input.
        offset: usize,
    },
    /// An integer did not fit the field's Go type (e.g. negative for `uint16`).
    IntegerOutOfRange {
        /// The field.
        what: &'static str,
        /// The value found.
        value: i128,
    },
    /// A string field was not valid UTF-8.
    InvalidUtf8 {
        /// The field.
        what: &'static str,
    },
    /// `pushNodeState.State` held a number that is not a known state.
    InvalidState {
        /// The value found.
        value: i64,
    },
    /// Unknown values nested deeper than [`MAX_SKIP_DEPTH`].
    TooDeep,
    /// The type byte is not one memberlist defines.
    UnknownType(u8),
    /// The type byte is a framing type (compound, compress, CRC, label,
    /// encrypt, push/pull) that is not a single plain message.
    NotAPlainMessage(u8),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("missing message type byte"),
            Self::Truncated { needed } => {
                write!(f, "input truncated: at least {needed} bytes needed")
            }
            Self::UnexpectedMarker {
                what,
                marker,
                offset,
            } => write!(
                f,
                "unexpected msgpack marker 0x{marker:02x} for {what} at offset {offset}"
            ),
            Self::IntegerOutOfRange { what, value } => {
                write!(f, "integer {value} out of range for {what}")
            }
            Self::InvalidUtf8 { what } => write!(f, "{what} is not valid UTF-8"),
            Self::InvalidState { value } => write!(f, "unknown node state {value}"),
            Self::TooDeep => write!(f, "msgpack nesting deeper than {MAX_SKIP_DEPTH}"),
            Self::UnknownType(t) => write!(f, "unknown message type {t}"),
            Self::NotAPlainMessage(t) => {
                write!(f, "message type {t} is framing, not a plain message")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// A bounded, panic-free msgpack reader over a byte slice.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Current offset in the input.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    /// Take `n` bytes, or fail with [`DecodeError::Truncated`] without
    /// allocating anything.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(DecodeError::Truncated { needed: usize::MAX })?;
        match self.buf.get(self.pos..end) {
            Some(s) => {
                self.pos = end;
                Ok(s)
            }
            None => Err(DecodeError::Truncated { needed: end }),
        }
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn be(&mut self, n: usize) -> Result<u64, DecodeError> {
        let s = self.take(n)?;
        Ok(s.iter().fold(0u64, |acc, &b| (acc << 8) | b as u64))
    }

    fn unexpected(&self, what: &'static str, marker: u8) -> DecodeError {
        DecodeError::UnexpectedMarker {
            what,
            marker,
            offset: self.pos.saturating_sub(1),
        }
    }

    /// Read a map header; nil counts as an empty map.
    pub fn read_map_len(&mut self, what: &'static str) -> Result<usize, DecodeError> {
        let m = self.byte()?;
        Ok(match m {
            0x80..=0x8f => (m & 0x0f) as usize,
            0xde => self.be(2)? as usize,
            0xdf => self.be(4)? as usize,
            0xc0 => 0,
            _ => return Err(self.unexpected(what, m)),
        })
    }

    /// Read any integer form (fixints, `cc`..`cf`, `d0`..`d3`); nil is 0.
    pub fn read_int(&mut self, what: &'static str) -> Result<i128, DecodeError> {
        let m = self.byte()?;
        Ok(match m {
            0x00..=0x7f => m as i128,
            0xe0..=0xff => m as i8 as i128,
            0xcc => self.be(1)? as i128,
            0xcd => self.be(2)? as i128,
            0xce => self.be(4)? as i128,
            0xcf => self.be(8)? as i128,
            0xd0 => self.be(1)? as u8 as i8 as i128,
            0xd1 => self.be(2)? as u16 as i16 as i128,
            0xd2 => self.be(4)? as u32 as i32 as i128,
            0xd3 => self.be(8)? as i64 as i128,
            0xc0 => 0,
            _ => return Err(self.unexpected(what, m)),
        })
    }

    /// Read an integer that must fit `T`.
    pub fn read_int_as<T: TryFrom<i128>>(&mut self, what: &'static str) -> Result<T, DecodeError> {
        let v = self.read_int(what)?;
        T::try_from(v).map_err(|_| DecodeError::IntegerOutOfRange { what, value: v })
    }

    /// Read a boolean; nil is false.
    pub fn read_bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        let m = self.byte()?;
        match m {
            0xc2 | 0xc0 => Ok(false),
            0xc3 => Ok(true),
            _ => Err(self.unexpected(what, m)),
        }
    }

    /// Read a byte/string value: fixstr, `str8/16/32`, `bin8/16/32` or nil
    /// (empty). Borrowed from the input, never allocated.
    pub fn read_bytes(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let m = self.byte()?;
        let n = match m {
            0xa0..=0xbf => (m & 0x1f) as usize,
            0xd9 | 0xc4 => self.be(1)? as usize,
            0xda | 0xc5 => self.be(2)? as usize,
            0xdb | 0xc6 => self.be(4)? as usize,
            0xc0 => 0,
            _ => return Err(self.unexpected(what, m)),
        };
        self.take(n)
    }

    /// Read a string field (see [`Reader::read_bytes`]); it must be UTF-8.
    pub fn read_str(&mut self, what: &'static str) -> Result<&'a str, DecodeError> {
        let b = self.read_bytes(what)?;
        core::str::from_utf8(b).map_err(|_| DecodeError::InvalidUtf8 { what })
    }

    /// Read a map key: a string/bytes value, or `None` for a key of another
    /// type (which has been skipped).
    pub fn read_key(&mut self) -> Result<Option<&'a [u8]>, DecodeError> {
        match self.buf.get(self.pos) {
            Some(0xa0..=0xbf | 0xd9..=0xdb | 0xc4..=0xc6) => self.read_bytes("map key").map(Some),
            Some(_) => {
                self.skip()?;
                Ok(None)
            }
            None => Err(DecodeError::Truncated {
                needed: self.pos + 1,
            }),
        }
    }

    /// Skip one value of any type, nested up to [`MAX_SKIP_DEPTH`].
    pub fn skip(&mut self) -> Result<(), DecodeError> {
        // Pending values to skip, as a counter per nesting level; the
        // explicit stack bounds depth without recursion.
        let mut pending: [u64; MAX_SKIP_DEPTH + 1] = [0; MAX_SKIP_DEPTH + 1];
        let mut depth = 0usize;
        pending[0] = 1;
        loop {
            while pending[depth] == 0 {
                if depth == 0 {
                    return Ok(());
                }
                depth -= 1;
            }
            pending[depth] -= 1;
            let m = self.byte()?;
            // Number of child values, for containers.
            let children: u64 = match m {
                0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => 0,
                0x80..=0x8f => 2 * (m & 0x0f) as u64,
                0x90..=0x9f => (m & 0x0f) as u64,
                0xa0..=0xbf => {
                    self.take((m & 0x1f) as usize)?;
                    0
                }
                0xc4 | 0xd9 => {
                    let n = self.be(1)? as usize;
                    self.take(n)?;
                    0
                }
                0xc5 | 0xda => {
                    let n = self.be(2)? as usize;
                    self.take(n)?;
                    0
                }
                0xc6 | 0xdb => {
                    let n = self.be(4)? as usize;
                    self.take(n)?;
                    0
                }
                0xc7 => {
                    let n = self.be(1)? as usize;
                    self.take(n.saturating_add(1))?;
                    0
                }
                0xc8 => {
                    let n = self.be(2)? as usize;
                    self.take(n.saturating_add(1))?;
                    0
                }
                0xc9 => {
                    let n = self.be(4)? as usize;
                    self.take(n.saturating_add(1))?;
                    0
                }
                0xca => {
                    self.take(4)?;
                    0
                }
                0xcb => {
                    self.take(8)?;
                    0
                }
                0xcc | 0xd0 => {
                    self.take(1)?;
                    0
                }
                0xcd | 0xd1 => {
                    self.take(2)?;
                    0
                }
                0xce | 0xd2 => {
                    self.take(4)?;
                    0
                }
                0xcf | 0xd3 => {
                    self.take(8)?;
                    0
                }
                0xd4 => {
                    self.take(2)?;
                    0
                }
                0xd5 => {
                    self.take(3)?;
                    0
                }
                0xd6 => {
                    self.take(5)?;
                    0
                }
                0xd7 => {
                    self.take(9)?;
                    0
                }
                0xd8 => {
                    self.take(17)?;
                    0
                }
                0xdc => self.be(2)?,
                0xdd => self.be(4)?,
                0xde => 2 * self.be(2)?,
                0xdf => 2 * self.be(4)?,
                0xc1 => return Err(self.unexpected("value", m)),
            };
            if children > 0 {
                if depth == MAX_SKIP_DEPTH {
                    return Err(DecodeError::TooDeep);
                }
                depth += 1;
                pending[depth] = children;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_forms() {
        let mut v = Vec::new();
        write_int(&mut v, 200);
        write_int(&mut v, 40000);
        write_int(&mut v, 5);
        write_int(&mut v, -1);
        write_int(&mut v, -100);
        assert_eq!(
            v,
            [0xd1, 0x00, 0xc8, 0xd2, 0, 0, 0x9c, 0x40, 5, 0xff, 0xd0, 0x9c]
        );
        let mut r = Reader::new(&v);
        assert_eq!(r.read_int("a").unwrap(), 200);
        assert_eq!(r.read_int("a").unwrap(), 40000);
        assert_eq!(r.read_int("a").unwrap(), 5);
        assert_eq!(r.read_int("a").unwrap(), -1);
        assert_eq!(r.read_int("a").unwrap(), -100);
        let mut v = Vec::new();
        write_uint(&mut v, 200);
        write_uint(&mut v, 7946);
        write_uint(&mut v, 70000);
        write_uint(&mut v, u64::MAX);
        let mut r = Reader::new(&v);
        assert_eq!(r.read_int("a").unwrap(), 200);
        assert_eq!(r.read_int("a").unwrap(), 7946);
        assert_eq!(r.read_int("a").unwrap(), 70000);
        assert_eq!(r.read_int("a").unwrap(), u64::MAX as i128);
    }

    #[test]
    fn raw_forms() {
        let mut v = Vec::new();
        write_raw(&mut v, &[7u8; 31]);
        assert_eq!(v[0], 0xbf);
        v.clear();
        write_raw(&mut v, &[7u8; 32]);
        assert_eq!(&v[..3], &[0xda, 0, 32]);
        v.clear();
        write_raw(&mut v, &[7u8; 70000]);
        assert_eq!(&v[..5], &[0xdb, 0, 1, 0x11, 0x70]);
        assert_eq!(Reader::new(&v).read_bytes("x").unwrap().len(), 70000);
    }

    #[test]
    fn declared_length_past_end_is_truncation() {
        let data = [0xdb, 0xff, 0xff, 0xff, 0xff, 1, 2];
        assert_eq!(
            Reader::new(&data).read_bytes("x"),
            Err(DecodeError::Truncated {
                needed: 5 + 0xffff_ffff
            })
        );
        let mut r = Reader::new(&[0xdf, 0xff, 0xff, 0xff, 0xff, 1]);
        assert!(matches!(r.skip(), Err(DecodeError::Truncated { .. })));
    }

    #[test]
    fn skip_nested_and_depth_bound() {
        // {"a": [1, {"b": nil}], "c": 1.5f64}
        let data = [
            0x82, 0xa1, b'a', 0x92, 0x01, 0x81, 0xa1, b'b', 0xc0, 0xa1, b'c', 0xcb, 0, 0, 0, 0, 0,
            0, 0, 0, 0x05,
        ];
        let mut r = Reader::new(&data);
        r.skip().unwrap();
        assert_eq!(r.position(), data.len() - 1);
        let deep = vec![0x91u8; 100];
        assert_eq!(Reader::new(&deep).skip(), Err(DecodeError::TooDeep));
    }
}
