//! The hasher of the name-keyed tables: `rustc-hash`'s Fx hash.
//!
//! Names are short and hashed on every message, so SipHash with a random key
//! (std's default) showed up in profiles. Fx is fast and has no random
//! state, so no table's contents or layout depend on anything but its
//! inputs. Nothing iterates these tables to make protocol decisions; they
//! only answer lookups.

use core::hash::BuildHasher;

pub use rustc_hash::FxHashMap;

/// The hash of a name, as the name-keyed `HashTable`s store it.
#[inline]
pub fn hash_str(s: &str) -> u64 {
    rustc_hash::FxBuildHasher.hash_one(s)
}
