//! LZW as Go's `compress/lzw` does it with `lzw.LSB` and literal width 8
//! (wire-protocol.md §6): our own encoder, which follows the same algorithm
//! as Go's writer so that its output matches byte for byte, and the
//! `weezl` crate for decoding.
//!
//! The stream starts with a clear code (256) and ends with the end code
//! (257); the first byte of any output is therefore `00` (the low 8 bits of
//! the 9-bit clear code). The encoder's output is byte-identical to Go's,
//! checked below against vectors produced by Go, including an input large
//! enough to fill the code table (where weezl's encoder, used before, clears
//! one code later than Go).

use core::cell::RefCell;
use core::fmt;
#[cfg(test)]
use weezl::encode::Encoder;
use weezl::{decode::Decoder, BitOrder, LzwStatus};

/// Why decompression failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LzwError {
    /// The stream holds a code that is not valid at that point.
    InvalidCode,
    /// The input ended before the end code.
    MissingEnd,
    /// The output would be larger than the cap given.
    TooLarge {
        /// The cap in bytes.
        cap: usize,
    },
}

impl fmt::Display for LzwError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidCode => f.write_str("invalid code in LZW stream"),
            Self::MissingEnd => f.write_str("LZW stream ends without an end code"),
            Self::TooLarge { cap } => {
                write!(
                    f,
                    "decompressed data is larger than the limit ({cap} bytes)"
                )
            }
        }
    }
}

impl std::error::Error for LzwError {}

thread_local! {
    // One encoder and one decoder per thread, reset between uses: building
    // them allocates and grows their code tables, which cost more than
    // compressing a packet (every packet sent is compressed to see whether
    // that makes it smaller, as Go does).
    #[cfg(test)]
    static ENCODER: RefCell<Option<Encoder>> = const { RefCell::new(None) };
    static DECODER: RefCell<Option<Decoder>> = const { RefCell::new(None) };
}

/// Runs `f` with a reset cached coder, or a fresh one when the cache is in
/// use (re-entrancy) or gone (thread teardown).
fn with_cached<C, R>(
    key: &'static std::thread::LocalKey<RefCell<Option<C>>>,
    make: fn() -> C,
    reset: fn(&mut C),
    f: impl FnOnce(&mut C) -> R,
) -> R {
    let mut f = Some(f);
    let cached = key.try_with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        let coder = match slot.as_mut() {
            Some(c) => {
                reset(c);
                c
            }
            None => slot.insert(make()),
        };
        f.take().map(|f| f(coder))
    });
    match cached {
        Ok(Some(r)) => r,
        _ => match f.take() {
            Some(f) => f(&mut make()),
            None => unreachable!("f runs at most once"),
        },
    }
}

thread_local! {
    /// [`compress_go`]'s hash table, reused between calls.
    static TABLE: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

/// Largest code: Go emits a clear code instead of assigning it.
const MAX_CODE: u32 = (1 << 12) - 1;
/// Go's hash table size (`4 * 1 << 12`), enough for a full code table.
const FULL_TABLE: usize = 4 << 12;

/// LZW as Go's `compress/lzw` writer does it (LSB, literal width 8), so the
/// codes come out identical: the
/// same hash-table dictionary, code widths and clear point (a clear code
/// when the next code would be 4095). Smaller inputs get a table sized to
/// them (it needs at most one slot per input byte), which is cheaper to
/// reset than Go's fixed 16,384 slots and changes no output bit.
fn compress_go(input: &[u8], table: &mut Vec<u32>, out: &mut Vec<u8>) {
    const CLEAR: u32 = 256;
    const EOF: u32 = 257;
    const EMPTY: u32 = u32::MAX;
    let mut bits = 0u64;
    let mut n_bits = 0u32;
    let mut width = 9u32;
    let mut write = |code: u32, width: u32, out: &mut Vec<u8>| {
        bits |= u64::from(code) << n_bits;
        n_bits += width;
        while n_bits >= 8 {
            out.push(bits as u8);
            bits >>= 8;
            n_bits -= 8;
        }
    };
    write(CLEAR, width, out);
    let Some((&first, rest)) = input.split_first() else {
        write(EOF, width, out);
        if n_bits > 0 {
            out.push(bits as u8);
        }
        return;
    };
    // At least twice as many slots as codes that can be added.
    let size = (2 * input.len()).next_power_of_two().clamp(64, FULL_TABLE);
    let mask = size - 1;
    table.clear();
    table.resize(size, EMPTY);
    let mut hi = EOF;
    let mut overflow = 512u32;
    let mut code = u32::from(first);
    'bytes: for &x in rest {
        let key = (code << 8) | u32::from(x);
        let mut h = ((key >> 12) ^ key) as usize & mask;
        loop {
            let t = table[h];
            if t == EMPTY {
                break;
            }
            if t >> 12 == key {
                code = t & MAX_CODE;
                continue 'bytes;
            }
            h = (h + 1) & mask;
        }
        write(code, width, out);
        code = u32::from(x);
        hi += 1;
        if hi == overflow {
            width += 1;
            overflow <<= 1;
        }
        if hi == MAX_CODE {
            write(CLEAR, width, out);
            width = 9;
            hi = EOF;
            overflow = 512;
            table.fill(EMPTY);
            continue;
        }
        table[h] = (key << 12) | hi;
    }
    write(code, width, out);
    hi += 1;
    if hi == overflow {
        width += 1;
    }
    if hi == MAX_CODE {
        write(CLEAR, width, out);
        width = 9;
    }
    write(EOF, width, out);
    if n_bits > 0 {
        out.push(bits as u8);
    }
}

/// Compress `input` like Go's `lzw.NewWriter(w, lzw.LSB, 8)`, byte for
/// byte.
pub fn compress(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() / 2 + 8);
    let done = TABLE.try_with(|t| {
        if let Ok(mut t) = t.try_borrow_mut() {
            compress_go(input, &mut t, &mut out);
            true
        } else {
            false
        }
    });
    if done != Ok(true) {
        out.clear();
        compress_go(input, &mut Vec::new(), &mut out);
    }
    out
}

/// Compress with weezl (any input size); the tests hold [`compress_go`]
/// to it up to the point where the code table fills.
#[cfg(test)]
fn compress_weezl(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() / 2 + 8);
    with_cached(
        &ENCODER,
        || Encoder::new(BitOrder::Lsb, 8),
        Encoder::reset,
        |enc| {
            let res = enc.into_vec(&mut out).encode_all(input);
            // With a literal width of 8 every byte is a valid literal, so
            // the encoder cannot report an invalid code.
            debug_assert!(res.status.is_ok());
        },
    );
    out
}

/// Decompress a Go LZW stream, failing rather than producing more than
/// `cap` bytes (Go: `maxDecompressedBytes`, 40 MiB). Bytes after the end
/// code are ignored, as Go does. Output exactly `cap` bytes long is fine.
pub fn decompress(input: &[u8], cap: usize) -> Result<Vec<u8>, LzwError> {
    with_cached(
        &DECODER,
        || Decoder::new(BitOrder::Lsb, 8),
        Decoder::reset,
        |dec| decompress_with(dec, input, cap),
    )
}

fn decompress_with(dec: &mut Decoder, input: &[u8], cap: usize) -> Result<Vec<u8>, LzwError> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut inp = input;
    loop {
        let r = dec.decode_bytes(inp, &mut chunk);
        inp = inp.get(r.consumed_in..).unwrap_or(&[]);
        let produced = chunk.get(..r.consumed_out).unwrap_or(&[]);
        if produced.len() > cap.saturating_sub(out.len()) {
            return Err(LzwError::TooLarge { cap });
        }
        out.extend_from_slice(produced);
        match r.status {
            Err(_) => return Err(LzwError::InvalidCode),
            Ok(LzwStatus::Done) => return Ok(out),
            Ok(LzwStatus::NoProgress) => return Err(LzwError::MissingEnd),
            Ok(LzwStatus::Ok) => {
                if r.consumed_in == 0 && r.consumed_out == 0 {
                    return Err(LzwError::MissingEnd);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::codec::tests::hx;
    use proptest::prelude::*;

    /// Below this many bytes no input can fill the code table, so Go,
    /// weezl and `compress_go` agree.
    const SMALL_INPUT: usize = 2048;

    #[test]
    fn small_encoder_matches_weezl() {
        let mut table = Vec::new();
        let mut check = |input: &[u8]| {
            let mut ours = Vec::new();
            compress_go(input, &mut table, &mut ours);
            assert_eq!(ours, compress_weezl(input), "len {}", input.len());
        };
        for n in 0..SMALL_INPUT {
            check(&lcg_bytes(n, n as u32, |x| (x >> 16) as u8));
            check(&lcg_bytes(n, 7, |x| ((x >> 16) % 5) as u8 + b'a'));
            check(&vec![b'z'; n]);
        }
    }

    proptest! {
        #[test]
        fn small_encoder_matches_weezl_prop(input in proptest::collection::vec(0u8..4, 0..SMALL_INPUT)) {
            let mut ours = Vec::new();
            compress_go(&input, &mut Vec::new(), &mut ours);
            prop_assert_eq!(ours, compress_weezl(&input));
        }
    }

    #[test]
    fn go_vectors() {
        assert_eq!(
            compress(b"hello hello hello"),
            hx("00d19461c3e60d0881040d222c1810")
        );
        assert_eq!(compress(b""), hx("000302"));
        assert_eq!(
            decompress(&hx("00d19461c3e60d0881040d222c1810"), 100).unwrap(),
            b"hello hello hello"
        );
        assert_eq!(decompress(&hx("000302"), 0).unwrap(), b"");
    }

    fn lcg_bytes(n: usize, seed: u32, f: impl Fn(u32) -> u8) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(1103515245).wrapping_add(12345);
                f(x)
            })
            .collect()
    }

    /// Go's output once the code table has filled: Go emits its clear code
    /// when the next code would be 4095 (weezl one code later); ours is
    /// Go's, byte for byte.
    #[test]
    fn go_output_after_table_fill() {
        let input = lcg_bytes(8000, 12345, |x| (x >> 16) as u8);
        let go = include_bytes!("testdata/lzw_go_8000.bin");
        assert_eq!(decompress(go, input.len()).unwrap(), input);
        let ours = compress(&input);
        assert_eq!(ours, go);
        // weezl's differs after the fill but still round-trips.
        let weezl = compress_weezl(&input);
        assert_ne!(weezl, go);
        assert_eq!(decompress(&weezl, input.len()).unwrap(), input);
    }

    /// 200 000 bytes of low-entropy input (Go's output is 84 511 bytes,
    /// weezl's 84 454): round trip through our own codec.
    #[test]
    fn large_round_trip() {
        let low = lcg_bytes(200_000, 12345, |x| ((x >> 16) % 7) as u8 + b'a');
        let c = compress(&low);
        assert!(c.len() < 90_000);
        assert_eq!(decompress(&c, low.len()).unwrap(), low);
    }

    #[test]
    fn cap_and_errors() {
        let data = vec![b'a'; 100_000];
        let c = compress(&data);
        assert_eq!(decompress(&c, 100_000).unwrap().len(), 100_000);
        assert_eq!(
            decompress(&c, 99_999),
            Err(LzwError::TooLarge { cap: 99_999 })
        );
        assert_eq!(
            decompress(&c[..c.len() - 2], 1 << 20),
            Err(LzwError::MissingEnd)
        );
        assert_eq!(decompress(&[], 10), Err(LzwError::MissingEnd));
        // Code 300 right after a clear code does not exist yet.
        assert_eq!(
            decompress(&[0x00, 0x59, 0x02], 10),
            Err(LzwError::InvalidCode)
        );
    }

    proptest! {
        #[test]
        fn round_trip(data in proptest::collection::vec(any::<u8>(), 0..3000)) {
            prop_assert_eq!(decompress(&compress(&data), data.len()).unwrap(), data);
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decompress(&data, 1000);
        }
    }
}
