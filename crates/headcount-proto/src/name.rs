//! [`Name`]: a member name stored without a heap allocation when short.
//!
//! Every node keeps one table entry per member, and often a queued
//! broadcast keyed by the same name, so in a cluster of `n` nodes there are
//! about `n²` names in memory. Names of up to [`Name::INLINE_MAX`] bytes
//! (the common case: host names, `node-42`, UUIDs without dashes fit) are
//! stored inline in the 24 bytes a `String` header would take; longer ones
//! live in one shared `Arc<str>`, so cloning a name never copies it.

use core::borrow::Borrow;
use core::cmp::Ordering;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::ops::Deref;

use smol_str::SmolStr;

/// A member name: an immutable string that clones without allocating.
///
/// Compares, orders and hashes exactly like the `str` it holds, so a
/// `Name` key can be looked up with a `&str`. The storage is `smol_str`'s
/// (inline up to [`Name::INLINE_MAX`] bytes, one shared `Arc<str>` beyond);
/// this newtype only keeps the crate's API independent of it.
#[derive(Clone)]
pub struct Name(SmolStr);

impl Name {
    /// Longest name stored inline.
    pub const INLINE_MAX: usize = 23;

    /// A name holding `s`.
    pub fn new(s: &str) -> Name {
        Name(SmolStr::new(s))
    }

    /// The name as a string slice.
    #[inline]
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The name's bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl Default for Name {
    fn default() -> Name {
        Name::new("")
    }
}

impl Deref for Name {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Name {
        Name::new(s)
    }
}

impl From<&String> for Name {
    fn from(s: &String) -> Name {
        Name::new(s)
    }
}

impl From<String> for Name {
    fn from(s: String) -> Name {
        Name(SmolStr::from(s))
    }
}

impl From<&Name> for Name {
    fn from(s: &Name) -> Name {
        s.clone()
    }
}

impl From<Name> for String {
    fn from(n: Name) -> String {
        n.as_str().to_owned()
    }
}

impl PartialEq for Name {
    #[inline]
    fn eq(&self, o: &Name) -> bool {
        self.as_bytes() == o.as_bytes()
    }
}

impl Eq for Name {}

impl PartialEq<str> for Name {
    #[inline]
    fn eq(&self, o: &str) -> bool {
        self.as_bytes() == o.as_bytes()
    }
}

impl PartialEq<&str> for Name {
    #[inline]
    fn eq(&self, o: &&str) -> bool {
        self.as_bytes() == o.as_bytes()
    }
}

impl PartialEq<String> for Name {
    #[inline]
    fn eq(&self, o: &String) -> bool {
        self.as_bytes() == o.as_bytes()
    }
}

impl PartialEq<Name> for str {
    fn eq(&self, o: &Name) -> bool {
        self.as_bytes() == o.as_bytes()
    }
}

impl PartialEq<Name> for &str {
    fn eq(&self, o: &Name) -> bool {
        self.as_bytes() == o.as_bytes()
    }
}

impl PartialEq<Name> for String {
    fn eq(&self, o: &Name) -> bool {
        self.as_bytes() == o.as_bytes()
    }
}

impl PartialOrd for Name {
    fn partial_cmp(&self, o: &Name) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for Name {
    fn cmp(&self, o: &Name) -> Ordering {
        self.as_bytes().cmp(o.as_bytes())
    }
}

impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fxhash::hash_str;

    #[test]
    fn fits_in_a_string_header() {
        assert_eq!(core::mem::size_of::<Name>(), core::mem::size_of::<String>());
    }

    #[test]
    fn inline_and_shared_behave_like_str() {
        for s in [
            "",
            "n1",
            "exactly-twenty-three-b!",
            "a-much-longer-name-than-fits-inline",
        ] {
            let n = Name::new(s);
            assert_eq!(n.as_str(), s);
            assert_eq!(n, s);
            assert_eq!(Name::from(s.to_string()), n);
            assert_eq!(hash_str(&n), hash_str(s));
            assert_eq!(String::from(n.clone()), s);
            assert_eq!(format!("{n}"), s);
            assert_eq!(format!("{n:?}"), format!("{s:?}"));
        }
        assert!(Name::new("a") < Name::new("b"));
        assert!(Name::new("é").len() == 2);
    }
}
