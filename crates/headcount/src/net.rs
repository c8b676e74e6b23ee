//! Sockets: binding UDP and TCP to one port, and reading one stream message.

use std::io;
use std::net::SocketAddr;

use headcount_proto::wire::{StreamDecode, StreamDecoder, StreamError, StreamMessage};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::Error;

/// How often to retry when the TCP port that matches an ephemeral UDP port
/// is taken.
const BIND_ATTEMPTS: usize = 10;

/// Largest stream message we buffer, whatever the limits say.
const MAX_STREAM_BYTES: usize = 64 * 1024 * 1024;

/// Binds UDP and TCP to the same address. With port 0, binds UDP to an
/// ephemeral port first, then TCP to the port UDP got, retrying a few times
/// if that TCP port is taken.
pub(crate) async fn bind(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), Error> {
    let bind_err = |addr: SocketAddr, e: io::Error| Error::Bind {
        addr,
        kind: e.kind(),
    };
    if addr.port() != 0 {
        let udp = UdpSocket::bind(addr).await.map_err(|e| bind_err(addr, e))?;
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(|e| bind_err(addr, e))?;
        return Ok((udp, tcp));
    }
    let mut last = None;
    for _ in 0..BIND_ATTEMPTS {
        let udp = UdpSocket::bind(addr).await.map_err(|e| bind_err(addr, e))?;
        let got = udp.local_addr().map_err(|e| bind_err(addr, e))?;
        match TcpListener::bind(got).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(bind_err(got, e)),
        }
    }
    Err(last.expect("at least one attempt"))
}

/// Why reading a stream message failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ReadError {
    Io(io::ErrorKind),
    /// The peer closed the connection after this many bytes, before the
    /// message was complete.
    Closed(usize),
    Decode(StreamError),
    /// The message is larger than this many bytes, the most we buffer.
    TooLarge(usize),
    /// The shared budget of inbound stream buffers is used up.
    Busy,
}

impl ReadError {
    /// Whether the peer should be told why with an `errResp` before the
    /// connection is closed. Go answers every `readStream` failure but
    /// EOF; we answer malformed and oversized messages, but not a label
    /// mismatch (Go closes those silently) nor I/O failures and early
    /// closes (nobody is listening).
    pub(crate) fn wants_reply(&self) -> bool {
        match self {
            ReadError::Decode(StreamError::LabelEmpty | StreamError::LabelMismatch { .. }) => false,
            ReadError::Decode(_) | ReadError::TooLarge(_) | ReadError::Busy => true,
            ReadError::Io(_) | ReadError::Closed(_) => false,
        }
    }
}

impl core::fmt::Display for ReadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ReadError::Io(kind) => write!(f, "{kind}"),
            ReadError::Closed(0) => f.write_str("connection closed before any data"),
            ReadError::Closed(n) => write!(
                f,
                "connection closed after {n} bytes of an incomplete message"
            ),
            ReadError::Decode(e) => write!(f, "{e}"),
            ReadError::TooLarge(max) => write!(f, "message larger than {max} bytes"),
            ReadError::Busy => {
                f.write_str("too much inbound stream data buffered; try again later")
            }
        }
    }
}

impl std::error::Error for ReadError {}

/// Reads exactly one stream message with the incremental decoder (made by
/// `Node::stream_decoder`, which knows our label, keys and limits),
/// buffering at most `max_bytes` (further capped at 64 MiB). The peer
/// may keep its write half open, so we never read to EOF: we read until the
/// decoder has a complete message, fetching at least as many bytes as its
/// `at_least` hint asks for before calling it again.
///
/// With a `budget`, every byte the buffer grows by is first taken from it
/// (one permit a byte) and given back when this returns, so that all the
/// connections read at once cannot buffer more than the budget together.
///
/// `encrypted` is told the length field of an encrypted message as soon as
/// it is read, before any limit is checked (Go samples it into
/// `memberlist.size.remote` there).
pub(crate) async fn read_message<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
    mut decoder: StreamDecoder,
    max_bytes: usize,
    budget: Option<&Semaphore>,
    encrypted: impl FnOnce(u32),
) -> Result<StreamMessage, ReadError> {
    let mut encrypted = Some(encrypted);
    let max = max_bytes.min(MAX_STREAM_BYTES);
    let mut buf: Vec<u8> = Vec::new();
    let mut held: Option<SemaphorePermit<'_>> = None;
    let mut need = 1usize;
    loop {
        while buf.len() < need {
            if buf.len() >= max {
                return Err(ReadError::TooLarge(max));
            }
            let want = (need - buf.len()).clamp(4096, 1 << 20);
            if let Some(sem) = budget {
                if buf.len() + want > buf.capacity() {
                    let grow = u32::try_from(buf.len() + want - buf.capacity())
                        .map_err(|_| ReadError::TooLarge(max))?;
                    let p = sem.try_acquire_many(grow).map_err(|_| ReadError::Busy)?;
                    match &mut held {
                        Some(h) => h.merge(p),
                        None => held = Some(p),
                    }
                    buf.reserve_exact(buf.len() + want - buf.capacity());
                }
            }
            let start = buf.len();
            buf.resize(start + want, 0);
            let n = r
                .read(&mut buf[start..])
                .await
                .map_err(|e| ReadError::Io(e.kind()))?;
            buf.truncate(start + n);
            if n == 0 {
                return Err(ReadError::Closed(buf.len()));
            }
        }
        if encrypted.is_some() {
            if let Some(len) = crate::metrics::encrypted_len(&buf) {
                if let Some(f) = encrypted.take() {
                    f(len);
                }
            }
        }
        match decoder.decode(&buf) {
            Ok(StreamDecode::Complete { msg, .. }) => return Ok(msg),
            // Always ask for one more byte than we have, so that a wrong
            // hint cannot make us spin.
            Ok(StreamDecode::NeedMore { at_least }) => need = at_least.max(buf.len() + 1),
            Err(e) => return Err(ReadError::Decode(e)),
        }
    }
}
