//! Encryption and allow-list glue of the shell: the OS nonce source, key
//! handles that never print their bytes, and the hints given when a peer
//! refuses us.

use core::fmt;

use headcount_proto::event::StreamFailure;
use headcount_proto::wire::{EncryptionVersion, Keyring, NonceSource};

use crate::error::RandomError;
use crate::net::ReadError;
use crate::Error;

/// Fills `buf` from the operating system's secure random generator.
pub(crate) fn os_random(buf: &mut [u8]) -> Result<(), Error> {
    getrandom::getrandom(buf).map_err(|e| Error::Random(RandomError(e)))
}

/// The nonce source of a real node: the OS generator. Checked once at
/// start ([`os_random`]); a failure later is fatal, since encrypting with
/// a non-random nonce would break AES-GCM.
pub(crate) fn os_nonce_source() -> NonceSource {
    NonceSource::from_fn(|b| {
        if let Err(e) = getrandom::getrandom(b) {
            panic!("the OS random generator failed while drawing a nonce: {e}");
        }
    })
}

/// An installed encryption key. Its `Debug` shows only its length and
/// [`Key::fingerprint`], never the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(Vec<u8>);

impl Key {
    pub(crate) fn new(bytes: &[u8]) -> Key {
        Key(bytes.to_vec())
    }

    /// The key itself (16, 24 or 32 bytes). Handle with care.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// A short public name for the key (8 hex digits) to tell keys apart
    /// in logs and output: a key check value, the first 4 bytes of the
    /// AES-GCM tag of an empty message under a fixed nonce. It reveals
    /// nothing useful about the key.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.0)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Key({} bytes, fingerprint {})",
            self.0.len(),
            self.fingerprint()
        )
    }
}

/// The fixed nonce of [`Key::fingerprint`]; never drawn as a real nonce
/// except by a 2^-96 chance.
const FINGERPRINT_NONCE: [u8; 12] = *b"hc-key-check";

/// See [`Key::fingerprint`]. `"invalid"` for a key of a bad length.
pub(crate) fn fingerprint(key: &[u8]) -> String {
    let Ok(ring) = Keyring::new(key) else {
        return "invalid".to_string();
    };
    let mut out = Vec::new();
    ring.encrypt(
        EncryptionVersion::V1,
        &FINGERPRINT_NONCE,
        b"",
        b"",
        &mut out,
    );
    // [version][nonce 12][tag 16]
    out[13..17].iter().map(|b| format!("{b:02x}")).collect()
}

/// What the driver may be asked to do with the keyring and flags.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum SecurityOp {
    AddKey(Vec<u8>),
    UseKey(Vec<u8>),
    RemoveKey(Vec<u8>),
    ListKeys,
    VerifyIncoming(bool),
    VerifyOutgoing(bool),
}

/// Turns a failure to read the reply of a stream we dialed into what the
/// core (and so a failed join) reports. A peer that closes the connection
/// without a word may be refusing our encryption key or label, and the
/// failure says so ([`StreamFailure::Unanswered`]); `secured`: we have a
/// keyring or a label, which picks the hint.
///
/// What a refusing peer does: Go memberlist closes a stream whose label
/// differs without a word, and answers one it cannot decrypt with an error
/// message encrypted under its own key (which we cannot read); headcount
/// closes both without a word.
pub(crate) fn reply_failure(e: ReadError, secured: bool) -> StreamFailure {
    use std::io::ErrorKind;
    match e {
        ReadError::Closed(0)
        | ReadError::Io(
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe,
        ) => StreamFailure::Unanswered { secured },
        ReadError::Closed(received) => StreamFailure::Truncated { received },
        ReadError::Io(kind) => StreamFailure::Io(kind),
        ReadError::Decode(d) => StreamFailure::Decode(d),
        ReadError::TooLarge(limit) => StreamFailure::TooLarge { limit },
        // Replies are read without the inbound budget, so this does not
        // happen; if it did, buffer space ran out.
        ReadError::Busy => StreamFailure::Io(ErrorKind::OutOfMemory),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use headcount_proto::wire::StreamError;

    #[test]
    fn key_debug_hides_the_key() {
        let k = Key::new(&[0x41; 32]);
        let d = format!("{k:?}");
        assert!(d.starts_with("Key(32 bytes, fingerprint "), "{d}");
        assert!(!d.contains("41, 41") && !d.contains("AAAA"), "{d}");
        assert_eq!(k.fingerprint().len(), 8);
        assert_ne!(k.fingerprint(), Key::new(&[0x42; 32]).fingerprint());
        assert_eq!(k.fingerprint(), fingerprint(&[0x41; 32]));
        assert_eq!(fingerprint(&[1; 5]), "invalid");
    }

    #[test]
    fn refusals_get_a_hint() {
        let f = reply_failure(ReadError::Closed(0), true);
        assert!(
            f.to_string().contains("wrong encryption key or label?"),
            "{f}"
        );
        let f = reply_failure(
            ReadError::Decode(StreamError::Decrypt(
                headcount_proto::wire::DecryptError::NoKeyMatched,
            )),
            true,
        );
        assert!(
            f.to_string().contains("wrong encryption key or label?"),
            "{f}"
        );
        let f = reply_failure(ReadError::Closed(10), true);
        assert_eq!(f, StreamFailure::Truncated { received: 10 });
        assert!(!f.to_string().contains("key"), "{f}");
        assert_eq!(
            reply_failure(ReadError::Io(std::io::ErrorKind::ConnectionReset), false),
            StreamFailure::Unanswered { secured: false }
        );
    }
}
