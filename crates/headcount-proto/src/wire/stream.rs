//! Streams (TCP): one logical message each way per connection
//! (wire-protocol.md §4).
//!
//! A stream message is self-delimiting (msgpack plus declared raw lengths)
//! and Go does not close its write half after sending, so reading is
//! incremental: [`decode_stream`] (or a [`StreamDecoder`]) is called with
//! everything buffered so far and answers either
//! [`StreamDecode::NeedMore`] with a lower bound on the total length worth
//! waiting for, or [`StreamDecode::Complete`].
//!
//! [`decode_stream`] reparses from the start on every call. That is cheap
//! for everything but a large push/pull, where the `at_least` hint is only
//! a lower bound (an entry may be as small as one byte). A
//! [`StreamDecoder`] kept across calls remembers the push/pull entries
//! already decoded and resumes after them, so total work stays linear.
//!
//! **Encryption** (§4, §5). [`encode_stream_with`] encrypts the output of
//! [`encode_stream_body`] as `[10][u32 BE L][version][nonce][ct + tag]`,
//! after the label header (dialer only). The additional data is the five
//! header bytes followed by the label, which is also used by replies that
//! carry no label header. Reading (given a [`StreamDecryption`]): an
//! encrypted stream is decrypted once all `L` bytes are there (`L` at most
//! [`Limits::max_encrypted_bytes`](super::Limits::max_encrypted_bytes)) and its plaintext, possibly compressed,
//! is parsed as a complete message; with incoming verification on, a
//! plaintext stream is rejected ([`StreamError::NotEncrypted`]). Without a
//! [`StreamDecryption`] an encrypted stream gives
//! [`StreamError::EncryptionNotConfigured`].
//!
//! The two directions live apart: `encode` writes whole streams;
//! `decode` reads them incrementally (the [`StreamDecoder`] and the
//! parsers it resumes).

mod decode;
mod encode;
#[cfg(test)]
mod tests;

pub use decode::{
    decode_stream, decode_stream_with, StreamDecode, StreamDecoder, StreamDecryption, StreamError,
};
pub use encode::{encode_stream, encode_stream_body, encode_stream_message, encode_stream_with};
