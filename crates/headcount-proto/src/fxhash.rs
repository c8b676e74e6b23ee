//! A small, fast, deterministic hasher for the name-keyed tables.
//!
//! Names are short and hashed on every message, so SipHash with a random key
//! (std's default) showed up in profiles. This is the Fx hash used by rustc:
//! fixed, without random state, so no table's contents or layout depend on
//! anything but its inputs. Nothing iterates these tables to make protocol
//! decisions; they only answer lookups.

use core::hash::{BuildHasherDefault, Hasher};

/// The rustc "Fx" hasher: a multiply-rotate over 8-byte words.
#[derive(Clone, Copy, Debug, Default)]
pub struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, mut bytes: &[u8]) {
        while bytes.len() >= 8 {
            let (w, rest) = bytes.split_at(8);
            self.add(u64::from_le_bytes(w.try_into().unwrap_or([0; 8])));
            bytes = rest;
        }
        if bytes.len() >= 4 {
            let (w, rest) = bytes.split_at(4);
            self.add(u64::from(u32::from_le_bytes(
                w.try_into().unwrap_or([0; 4]),
            )));
            bytes = rest;
        }
        for &b in bytes {
            self.add(u64::from(b));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// Builds [`FxHasher`]s.
pub type FxBuildHasher = BuildHasherDefault<FxHasher>;

/// A `std` hash map with the Fx hasher.
pub type FxHashMap<K, V> = std::collections::HashMap<K, V, FxBuildHasher>;

/// The Fx hash of a string, as the name-keyed tables use it.
#[inline]
pub fn hash_str(s: &str) -> u64 {
    let mut h = FxHasher::default();
    h.write(s.as_bytes());
    // Mix the length in, then fold a wide multiply so that both the top
    // bits (hashbrown's control bytes) and the bottom bits (its bucket)
    // depend on every input bit.
    h.write_usize(s.len());
    let x = u128::from(h.finish()) * 0x9e37_79b9_7f4a_7c15;
    (x >> 64) as u64 ^ x as u64
}
