//! The memberlist wire format: message bodies, packets and streams.

pub mod codec;
pub mod lzw;
pub mod messages;
pub mod msgpack;

pub use codec::{decode_message, encode_message, encoded_len};
pub use messages::*;
pub use msgpack::DecodeError;
