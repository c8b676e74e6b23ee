//! The memberlist wire format: message bodies, packets and streams.

pub mod budget;
pub mod codec;
pub mod error;
pub mod limits;
pub mod lzw;
pub mod messages;
pub mod msgpack;
pub mod packet;
pub mod security;
pub mod stream;

pub use budget::{packet_room, Framing, USER_MSG_OVERHEAD};
pub(crate) use codec::AliveRef;
pub use codec::{decode_message, encode_message, encoded_len};
pub use error::EncodeError;
pub use limits::Limits;
pub use messages::*;
pub use msgpack::DecodeError;
pub(crate) use packet::decode_packet_filtered;
pub use packet::{
    decode_packet, decode_packet_with, encode_compound, encode_compound_into, frame_packet,
    PacketError, PacketOptions, PacketSummary, MAX_COMPOUND_PARTS,
};
pub use security::{
    DecryptError, Decryption, Encryption, EncryptionVersion, Keyring, KeyringError, NonceSource,
};
pub use stream::{
    decode_stream, decode_stream_with, encode_stream, encode_stream_with, StreamDecode,
    StreamDecoder, StreamDecryption, StreamError,
};
