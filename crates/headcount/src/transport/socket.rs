//! [`TokioTransport`]: UDP and TCP on one port, the default transport.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::{PacketBatch, Transport};
use crate::{net, Error};

#[cfg(target_os = "linux")]
thread_local! {
    /// `recvmmsg` buffers, one set per thread, like the driver's batch.
    static RECV_BUFFERS: std::cell::RefCell<Option<super::mmsg::RecvBuffers>> =
        const { std::cell::RefCell::new(None) };
}

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
        set_udp_recv_buffer(&udp);
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

/// The UDP receive buffer Go's `NetTransport` asks for (`udpRecvBufSize`),
/// so that a burst of gossip (a join storm) waits in the kernel rather
/// than being dropped. Linux caps it at `net.core.rmem_max` (and doubles
/// it for bookkeeping); like Go, a refused size is halved until one is
/// taken, and failing altogether keeps the system default.
const UDP_RECV_BUFFER: usize = 2 * 1024 * 1024;

fn set_udp_recv_buffer(udp: &UdpSocket) {
    let sock = socket2::SockRef::from(udp);
    let mut size = UDP_RECV_BUFFER;
    while size > 0 {
        match sock.set_recv_buffer_size(size) {
            Ok(()) => return,
            Err(e) if size == 1 => tracing::debug!("setting the UDP receive buffer failed: {e}"),
            Err(_) => {}
        }
        size /= 2;
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

    /// On Linux: `sendmmsg`, up to 32 datagrams per system call.
    #[cfg(target_os = "linux")]
    fn send_batch(&self, batch: &PacketBatch, failed: &mut dyn FnMut(SocketAddr, io::Error)) {
        use std::os::fd::AsRawFd;
        let fd = self.udp.as_raw_fd();
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
        let mut chunk: [(SocketAddr, &[u8]); super::mmsg::BATCH] =
            [(unspecified, &[]); super::mmsg::BATCH];
        let mut packets = batch.iter();
        let mut n = 0;
        loop {
            // Fill the chunk up.
            for (to, data) in packets.by_ref().take(super::mmsg::BATCH - n) {
                chunk[n] = (to, data);
                n += 1;
            }
            if n == 0 {
                return;
            }
            // Never wait for the socket: a full send buffer loses packets.
            let sent = match self.udp.try_io(tokio::io::Interest::WRITABLE, || {
                super::mmsg::send(fd, &chunk[..n])
            }) {
                Ok(0) => {
                    failed(chunk[0].0, io::ErrorKind::WriteZero.into());
                    1
                }
                Ok(sent) => sent,
                // The first one could not go: count it, go on after it.
                Err(e) => {
                    failed(chunk[0].0, e);
                    1
                }
            };
            let sent = sent.min(n);
            chunk.copy_within(sent..n, 0);
            n -= sent;
        }
    }

    /// On Linux: `recvmmsg`, up to 32 datagrams per system call. A call
    /// that returns fewer than it asked for found the socket empty, so the
    /// socket's readiness is cleared then and there, without the extra
    /// call that would only say `WouldBlock` (tokio's readiness is
    /// edge-triggered: a datagram arriving after the call raises it again;
    /// and an unconnected UDP socket without `IP_RECVERR` queues no ICMP
    /// errors that could have cut the call short).
    #[cfg(target_os = "linux")]
    fn poll_recv(&self, cx: &mut Context<'_>, batch: &mut PacketBatch) -> Poll<io::Result<()>> {
        use std::os::fd::AsRawFd;
        let fd = self.udp.as_raw_fd();
        loop {
            ready!(self.udp.poll_recv_ready(cx))?;
            let r = RECV_BUFFERS.with_borrow_mut(|bufs| {
                let bufs =
                    bufs.get_or_insert_with(|| super::mmsg::RecvBuffers::new(super::MAX_DATAGRAM));
                loop {
                    if batch.is_full() {
                        return Ok(());
                    }
                    let want = (super::MAX_BATCH_PACKETS - batch.len()).min(super::mmsg::BATCH);
                    let read = self.udp.try_io(tokio::io::Interest::READABLE, || {
                        let n = bufs.recv(fd, want, |from, data| batch.push(from, data))?;
                        if n < want {
                            // Drained: clear the readiness now.
                            Err(io::ErrorKind::WouldBlock.into())
                        } else {
                            Ok(())
                        }
                    });
                    match read {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                        Err(e) => return Err(e),
                    }
                }
            });
            if let Err(e) = r {
                // On some platforms an ICMP port unreachable from an
                // earlier send surfaces here; the driver counts it and
                // polls again. Datagrams read before it are in the batch.
                return Poll::Ready(Err(e));
            }
            if !batch.is_empty() {
                return Poll::Ready(Ok(()));
            }
            // Nothing was waiting: poll the readiness again so that the
            // waker is registered.
        }
    }

    #[cfg(not(target_os = "linux"))]
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
