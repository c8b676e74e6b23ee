//! [`TokioTransport`]: UDP and TCP on one port, the default transport.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::{PacketBatch, Transport};
use crate::{net, Error};

/// UDP for packets and TCP for streams, bound to the same address and port,
/// as Go memberlist's `NetTransport` (the one Go peers speak). The default
/// transport of [`crate::Memberlist::create`].
#[derive(Debug)]
pub struct TokioTransport {
    udp: UdpSocket,
    listener: TcpListener,
    local_addr: SocketAddr,
}

impl TokioTransport {
    /// Binds UDP and TCP to `addr`. With port 0, both get the same free
    /// port. Fails with [`Error::Bind`].
    pub async fn bind(addr: SocketAddr) -> Result<TokioTransport, Error> {
        let (udp, listener) = net::bind(addr).await?;
        let local_addr = udp.local_addr().map_err(|e| Error::Bind {
            addr,
            kind: e.kind(),
        })?;
        Ok(TokioTransport {
            udp,
            listener,
            local_addr,
        })
    }
}

impl Transport for TokioTransport {
    type Stream = TcpStream;

    fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    fn send_to(&self, data: &[u8], to: SocketAddr) -> io::Result<()> {
        // Never wait for the socket: a full send buffer loses the packet.
        self.udp.try_send_to(data, to).map(drop)
    }

    fn poll_recv(&self, cx: &mut Context<'_>, batch: &mut PacketBatch) -> Poll<io::Result<()>> {
        loop {
            ready!(self.udp.poll_recv_ready(cx))?;
            while !batch.is_full() {
                match batch.recv_with(|buf| self.udp.try_recv_from(buf)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // On some platforms an ICMP port unreachable from an
                    // earlier send surfaces here; the driver counts it and
                    // polls again.
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            if !batch.is_empty() {
                return Poll::Ready(Ok(()));
            }
            // Readiness was spurious and is cleared now: poll it again so
            // that the waker is registered.
        }
    }

    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        self.listener.poll_accept(cx)
    }

    // Not an `async fn`: its future would borrow `self`, and dial futures
    // must be `'static`.
    #[allow(clippy::manual_async_fn)]
    fn dial(
        &self,
        to: SocketAddr,
        timeout: Duration,
    ) -> impl Future<Output = io::Result<TcpStream>> + Send + 'static {
        async move {
            let stream = tokio::time::timeout(timeout, TcpStream::connect(to))
                .await
                .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
    }
}
