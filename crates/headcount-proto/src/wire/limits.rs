//! Resource limits applied while decoding untrusted input.

/// Bounds on what a decoder accepts or buffers. [`Limits::default`] holds
/// Go memberlist's values (`net.go`), plus one of our own
/// ([`Limits::max_stream_bytes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most `pushNodeState` entries in one push/pull (Go `maxPushStateNodes`,
    /// 1 048 576).
    pub max_push_nodes: usize,
    /// Largest push/pull user state (Go `maxPushStateBytes`, 20 MiB).
    pub max_user_state_bytes: usize,
    /// Largest reliable user message on a stream (Go `maxUserMsgBytes`,
    /// 20 MiB).
    pub max_user_msg_bytes: usize,
    /// Largest output of one decompression (Go `maxDecompressedBytes`,
    /// 40 MiB). A packet is also held to this in total over all the
    /// compress messages nested in it, and the compressed `Buf` of a stream
    /// may be at most 1.5 times this (LZW's worst-case expansion).
    pub max_decompressed_bytes: usize,
    /// Largest encrypted stream payload length `L` (Go: 20 MiB).
    pub max_encrypted_bytes: usize,
    /// Largest plain (not compressed, not encrypted) stream message we are
    /// willing to buffer, in bytes. Go has no such limit (only its TCP
    /// timeout); this bounds the `at_least` hint of the stream decoder.
    /// Default 64 MiB: a full 20 MiB user state plus a large member table.
    pub max_stream_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_push_nodes: 1024 * 1024,
            max_user_state_bytes: 20 * 1024 * 1024,
            max_user_msg_bytes: 20 * 1024 * 1024,
            max_decompressed_bytes: 40 * 1024 * 1024,
            max_encrypted_bytes: 20 * 1024 * 1024,
            max_stream_bytes: 64 * 1024 * 1024,
        }
    }
}
