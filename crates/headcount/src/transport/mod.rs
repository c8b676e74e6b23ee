//! Pluggable transports: how a node sends and receives packets and streams
//! (Go memberlist's `Transport`).
//!
//! A [`crate::Memberlist`] does all its I/O through one [`Transport`]:
//!
//! - [`TokioTransport`], the default ([`crate::Memberlist::create`]): UDP
//!   and TCP bound to the same port, as Go's `NetTransport`, and the only
//!   transport Go peers can talk to;
//! - [`MemoryNetwork`], an in-process network for application tests: many
//!   nodes in one process, with loss, one-way cuts and partitions set by
//!   the test, and no sockets (so `tokio::time::pause` can drive it);
//! - your own, given to [`crate::Memberlist::create_with_transport`].
//!
//! The driver task is generic over the transport, so the default path has
//! no dynamic dispatch, and no allocation or channel hop per datagram; the
//! [`crate::Memberlist`] handle is not.
//!
//! # Writing a TLS or QUIC transport
//!
//! The protocol needs two services from a transport: best-effort
//! datagrams (probes, acks and gossip, each at most
//! [`Config::udp_buffer_size`](crate::Config::udp_buffer_size) bytes,
//! sent by [`Transport::send_to`] and received by [`Transport::poll_recv`])
//! and reliable byte streams (push/pull, reliable user messages and the
//! fallback ping, by [`Transport::dial`] and [`Transport::poll_accept`]).
//! The [`Transport::Stream`] type is any `AsyncRead + AsyncWrite`, so:
//!
//! - **TLS** for streams: keep a UDP socket for packets (or encrypt them
//!   with [`Config::keyring`](crate::Config::keyring), which also covers
//!   streams) and wrap the TCP streams, e.g. with `tokio-rustls`:
//!   `Stream = tokio_rustls::TlsStream<TcpStream>`; `dial` connects and runs
//!   the client handshake within its timeout, and `poll_accept` hands out
//!   connections whose server handshake finished (run handshakes on tasks
//!   feeding a channel, so one slow client does not hold the others up).
//! - **QUIC** (e.g. quinn): one endpoint on one UDP port. Packets become
//!   QUIC datagrams on a connection per peer (opened on first send, cached;
//!   `send_to` must not wait, so it queues and drops when the connection is
//!   not up yet) and streams become bidirectional QUIC streams (`Stream`
//!   joins the send and receive halves). Tasks reading each connection's
//!   datagrams and accepted streams feed the channels `poll_recv` and
//!   `poll_accept` read.
//!
//! The addresses a transport reports must be the ones peers reach it at:
//! the `from` of a packet or stream is the peer's address as the transport
//! sees it (it is checked against
//! [`Config::cidrs_allowed`](crate::Config::cidrs_allowed)), and the
//! address a node advertises (its [`Transport::local_addr`] unless
//! [`crate::Options::advertise_addr`] says otherwise) is where others
//! send its packets and dial its streams. A transport that uses another
//! port or addressing scheme underneath maps it to and from these
//! `SocketAddr`s itself. Peers on different transports cannot talk: Go
//! peers need [`TokioTransport`].
//!
//! Hostile-input limits do not depend on the transport: the driver caps
//! how many streams it serves, how long each may take and how many bytes
//! they buffer, and the core checks every datagram.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::task::{Context, Poll};
use std::time::Duration;

use ::tokio::io::{AsyncRead, AsyncWrite};

mod memory;
#[cfg(target_os = "linux")]
mod mmsg;
mod socket;

pub use memory::{MemoryNetwork, MemoryTransport};
pub use socket::TokioTransport;

/// Most datagrams in one [`PacketBatch`], handed to the core as one burst
/// ([`Node::handle_packets`](headcount_proto::node::Node::handle_packets),
/// which orders their gossip like Go's handoff queue) before the driver
/// looks at its other inputs and timers again.
pub const MAX_BATCH_PACKETS: usize = 256;
/// Most bytes of datagrams in one [`PacketBatch`] (it may go over by one
/// read of the transport: [`TokioTransport`] reads up to 32 datagrams at
/// once).
pub const MAX_BATCH_BYTES: usize = 1 << 20;
/// Largest datagram received; longer ones are truncated, as by a UDP read
/// into a buffer of this size.
pub const MAX_DATAGRAM: usize = 65_536;

/// A network transport for a node: best-effort packets and reliable
/// streams, with addresses as `SocketAddr`s (Go memberlist's `Transport`).
///
/// One driver task owns the transport: it polls [`Transport::poll_recv`]
/// and [`Transport::poll_accept`] from that task only, calls
/// [`Transport::send_to`] from it, and runs the futures of
/// [`Transport::dial`] on tasks of their own. See the [module
/// documentation](self) for how to write one.
pub trait Transport: Send + Sync + 'static {
    /// A reliable, ordered byte stream to or from a peer (a TCP connection,
    /// a TLS session over one, a QUIC stream, an in-memory pipe). The
    /// driver writes a message and may read one reply; it shuts the write
    /// half down when done and drops the stream, which must close it.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// The address this transport receives at: the default address the
    /// node advertises to others.
    fn local_addr(&self) -> SocketAddr;

    /// Sends one datagram to `to`, best effort, without waiting: a packet
    /// that cannot go now (a full send buffer, no route) is lost, which the
    /// protocol tolerates like any other loss. Delivery, ordering and
    /// uniqueness are not required. An error is counted
    /// ([`crate::Stats::udp_send_errors`]) and logged, never retried.
    fn send_to(&self, data: &[u8], to: SocketAddr) -> io::Result<()>;

    /// Sends every datagram of `batch`, each as [`Transport::send_to`]
    /// would (best effort, without waiting), and reports each one that
    /// could not go to `failed`. The driver gathers the packets the core
    /// produced for one input (a gossip round's, a burst's acks) and sends
    /// them with one call. Default: `send_to` for each;
    /// [`TokioTransport`] sends up to 32 per system call on Linux
    /// (`sendmmsg`).
    fn send_batch(&self, batch: &PacketBatch, failed: &mut dyn FnMut(SocketAddr, io::Error)) {
        for (to, data) in batch.iter() {
            if let Err(e) = self.send_to(data, to) {
                failed(to, e);
            }
        }
    }

    /// Receives the datagrams waiting now into `batch`, without waiting for
    /// more, until [`PacketBatch::is_full`] or none is left. Returns
    /// `Ready(Ok(()))` once at least one was added, and `Pending` (with
    /// nothing added, and the waker registered) when none is waiting.
    /// `Ready(Err(_))` reports a receive error (counted in
    /// [`crate::Stats::udp_recv_errors`]); datagrams added before it are
    /// still handled, and the driver polls again.
    fn poll_recv(&self, cx: &mut Context<'_>, batch: &mut PacketBatch) -> Poll<io::Result<()>>;

    /// Accepts an inbound stream and says who opened it. Errors are logged
    /// and the driver polls again a little later (as after `EMFILE`).
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(Self::Stream, SocketAddr)>>;

    /// Opens a stream to `to`, within `timeout` (then fails with
    /// [`io::ErrorKind::TimedOut`]); an address nobody listens on fails
    /// with [`io::ErrorKind::ConnectionRefused`] when the transport can
    /// tell. The error's kind reaches the application as
    /// [`crate::StreamFailure::Io`]. The future must not borrow the
    /// transport: it runs on a task of its own and may outlive the driver
    /// (which bounds the whole exchange by the timeout as well).
    fn dial(
        &self,
        to: SocketAddr,
        timeout: Duration,
    ) -> impl Future<Output = io::Result<Self::Stream>> + Send + 'static;

    /// Called once when the node shuts down, after its last send: release
    /// what dropping the transport would not release at once (listeners
    /// registered elsewhere, connections to close gracefully). The driver
    /// drops the transport right after. Default: nothing.
    fn shutdown(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// A burst of datagrams with their peers, back to back in one buffer:
/// received ones, filled by [`Transport::poll_recv`] (the driver keeps one
/// per thread and hands the whole burst to the protocol core at once), or
/// ones to send, given to [`Transport::send_batch`] (the peer is then the
/// destination).
#[derive(Debug)]
pub struct PacketBatch {
    /// One datagram being received (see [`PacketBatch::recv_with`]).
    scratch: Vec<u8>,
    /// The datagrams, back to back.
    data: Vec<u8>,
    /// Sender and place in `data` of each datagram.
    spans: Vec<(SocketAddr, Range<usize>)>,
}

impl Default for PacketBatch {
    fn default() -> Self {
        PacketBatch::new()
    }
}

impl PacketBatch {
    /// An empty batch.
    pub fn new() -> Self {
        PacketBatch {
            scratch: Vec::new(),
            data: Vec::new(),
            spans: Vec::new(),
        }
    }

    /// Whether no more datagrams should be added: [`MAX_BATCH_PACKETS`]
    /// or [`MAX_BATCH_BYTES`] reached. The rest wait in the transport
    /// (a socket buffer, where the kernel drops what does not fit).
    pub fn is_full(&self) -> bool {
        self.spans.len() >= MAX_BATCH_PACKETS || self.data.len() >= MAX_BATCH_BYTES
    }

    /// Number of datagrams in the batch.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Bytes in the batch's datagrams.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// Whether the batch holds no datagram.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Adds a datagram from `from` (truncated to [`MAX_DATAGRAM`] bytes).
    pub fn push(&mut self, from: SocketAddr, datagram: &[u8]) {
        let datagram = &datagram[..datagram.len().min(MAX_DATAGRAM)];
        let start = self.data.len();
        self.data.extend_from_slice(datagram);
        self.spans.push((from, start..self.data.len()));
    }

    /// Receives one datagram with `recv`, which reads into the buffer it is
    /// given ([`MAX_DATAGRAM`] bytes) and says how long it is and who sent
    /// it, as `UdpSocket::try_recv_from` does, and adds it. Errors
    /// (including `WouldBlock`) add nothing. The buffer is reused, so a
    /// socket read costs no allocation.
    pub fn recv_with(
        &mut self,
        recv: impl FnOnce(&mut [u8]) -> io::Result<(usize, SocketAddr)>,
    ) -> io::Result<()> {
        if self.scratch.len() < MAX_DATAGRAM {
            self.scratch.resize(MAX_DATAGRAM, 0);
        }
        let (n, from) = recv(&mut self.scratch)?;
        let start = self.data.len();
        self.data
            .extend_from_slice(&self.scratch[..n.min(MAX_DATAGRAM)]);
        self.spans.push((from, start..self.data.len()));
        Ok(())
    }

    /// The datagrams in the order they were added, with their senders.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (SocketAddr, &[u8])> + '_ {
        self.spans
            .iter()
            .map(|(from, r)| (*from, &self.data[r.clone()]))
    }

    /// Empties the batch, keeping its buffers.
    pub fn clear(&mut self) {
        self.data.clear();
        self.spans.clear();
    }
}
