//! [`MemoryNetwork`]: an in-process network for application tests.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::DuplexStream;
use tokio::sync::mpsc;

use super::{PacketBatch, Transport};

/// Datagrams waiting for a node before further ones are dropped (its
/// socket buffer).
const INBOX_PACKETS: usize = 4096;
/// Connections waiting to be accepted before further ones are refused (its
/// listen backlog).
const ACCEPT_BACKLOG: usize = 1024;
/// Bytes buffered in each direction of an in-memory stream; a writer
/// waits when the reader is this far behind.
const PIPE_BUFFER: usize = 64 * 1024;
/// Largest datagram accepted, as over UDP on IPv4.
const MAX_SEND: usize = 65_507;
/// First port handed out for port 0.
const FIRST_EPHEMERAL_PORT: u16 = 40_000;

/// A datagram in flight: sender and bytes.
type Datagram = (SocketAddr, Vec<u8>);
/// A connection in flight: the acceptor's end and the dialer's address.
type Connection = (DuplexStream, SocketAddr);

/// A network in one process, for testing applications built on headcount
/// without sockets: many nodes in one test, each on a [`MemoryTransport`]
/// from [`MemoryNetwork::transport`], given to
/// [`crate::Memberlist::create_with_transport`].
///
/// Packets go through in-process queues and streams are
/// [`tokio::io::duplex`] pipes. The test controls the links between
/// addresses (each direction on its own): [`MemoryNetwork::set_loss`]
/// (drawn from a seeded generator), [`MemoryNetwork::set_latency`],
/// [`MemoryNetwork::block`] and [`MemoryNetwork::partition`], undone by
/// [`MemoryNetwork::heal`]. Nothing waits on real time, so tests can run
/// under `tokio::time::pause()` (`#[tokio::test(start_paused = true)]`),
/// where the runtime skips ahead to the next timer whenever every node is
/// idle: minutes of protocol time take milliseconds of CPU, and timings
/// are those of the protocol, not of a busy machine. (Runs are close to
/// repeatable, not exactly: tokio picks among ready inputs at random.)
///
/// What a link does:
///
/// - a datagram is dropped with the link's loss probability, when the link
///   is cut, when nobody has the address, or when 4,096 datagrams already
///   wait there; otherwise it arrives after the link's latency;
/// - a stream (a TCP connection) needs both directions: to a cut link,
///   [`Transport::dial`] waits out its timeout and fails with
///   [`io::ErrorKind::TimedOut`]; to an address nobody has, it fails at
///   once with [`io::ErrorKind::ConnectionRefused`]; otherwise it opens
///   after the round-trip latency. Loss does not apply to streams (TCP
///   retransmits), and a stream that is open stays open through a cut.
///
/// Addresses are only names here: any `SocketAddr` works (`10.0.0.1:7946`,
/// or port 0 for a free port), and a cut applies to an address and port,
/// not to a host.
///
/// ```
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use headcount::{Config, MemoryNetwork, Memberlist, Options};
/// let net = MemoryNetwork::with_seed(7);
/// let mut nodes = Vec::new();
/// for i in 1..=3 {
///     let addr = format!("10.0.0.{i}:7946").parse()?;
///     let opts = Options::new(format!("n{i}"), addr, Config::local());
///     nodes.push(Memberlist::create_with_transport(opts, net.transport(addr)?).await?);
/// }
/// nodes[1].join(&["10.0.0.1:7946"]).await?;
/// nodes[2].join(&["10.0.0.1:7946"]).await?;
/// // Cut n3 off from the others, both ways; later put it back.
/// let (a, b) = (nodes[0].local_addr(), nodes[1].local_addr());
/// net.partition(&[a, b], &[nodes[2].local_addr()]);
/// net.heal();
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct MemoryNetwork {
    inner: Arc<Mutex<Net>>,
}

impl core::fmt::Debug for MemoryNetwork {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let net = self.lock();
        f.debug_struct("MemoryNetwork")
            .field("endpoints", &net.endpoints.len())
            .field("cuts", &net.cuts.len())
            .finish_non_exhaustive()
    }
}

/// The state of a [`MemoryNetwork`].
#[derive(Default)]
struct Net {
    endpoints: HashMap<SocketAddr, Endpoint>,
    /// Links cut, as (from, to).
    cuts: HashSet<(SocketAddr, SocketAddr)>,
    /// Loss probability by link, as (from, to).
    loss: HashMap<(SocketAddr, SocketAddr), f64>,
    /// Loss probability of links without their own.
    default_loss: f64,
    latency: HashMap<(SocketAddr, SocketAddr), Duration>,
    /// State of the loss generator (splitmix64).
    rng: u64,
    /// Endpoints made so far, to tell a rebound address's owner from the
    /// transport that had it before.
    generation: u64,
    next_port: u16,
}

/// Where a bound address's datagrams and connections go.
struct Endpoint {
    generation: u64,
    packets: mpsc::Sender<Datagram>,
    connections: mpsc::Sender<Connection>,
}

impl Net {
    /// A uniform number in [0, 1).
    fn random(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    fn latency(&self, from: SocketAddr, to: SocketAddr) -> Duration {
        self.latency
            .get(&(from, to))
            .copied()
            .unwrap_or(Duration::ZERO)
    }

    fn is_cut(&self, from: SocketAddr, to: SocketAddr) -> bool {
        self.cuts.contains(&(from, to))
    }

    /// A port not bound on `addr`'s IP.
    fn free_port(&mut self, addr: SocketAddr) -> io::Result<u16> {
        for _ in 0..=u16::MAX {
            let port = self.next_port.max(FIRST_EPHEMERAL_PORT);
            self.next_port = port.checked_add(1).unwrap_or(FIRST_EPHEMERAL_PORT);
            if !self
                .endpoints
                .contains_key(&SocketAddr::new(addr.ip(), port))
            {
                return Ok(port);
            }
        }
        Err(io::ErrorKind::AddrInUse.into())
    }
}

impl MemoryNetwork {
    /// An empty network; its loss generator has seed 0.
    pub fn new() -> Self {
        MemoryNetwork::default()
    }

    /// An empty network whose loss generator has `seed`.
    pub fn with_seed(seed: u64) -> Self {
        let net = MemoryNetwork::default();
        net.lock().rng = seed;
        net
    }

    fn lock(&self) -> MutexGuard<'_, Net> {
        // The state stays consistent whatever a panicking test did.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A transport bound to `addr` on this network (port 0: a free port on
    /// that IP). Fails with [`io::ErrorKind::AddrInUse`] when another
    /// transport has the address; it is free again once that one is shut
    /// down or dropped.
    pub fn transport(&self, addr: SocketAddr) -> io::Result<MemoryTransport> {
        let mut net = self.lock();
        let mut addr = addr;
        if addr.port() == 0 {
            addr.set_port(net.free_port(addr)?);
        }
        if net.endpoints.contains_key(&addr) {
            return Err(io::ErrorKind::AddrInUse.into());
        }
        net.generation += 1;
        let generation = net.generation;
        let (packets_tx, packets_rx) = mpsc::channel(INBOX_PACKETS);
        let (conn_tx, conn_rx) = mpsc::channel(ACCEPT_BACKLOG);
        net.endpoints.insert(
            addr,
            Endpoint {
                generation,
                packets: packets_tx,
                connections: conn_tx,
            },
        );
        Ok(MemoryTransport {
            net: self.clone(),
            addr,
            generation,
            packets: Mutex::new(packets_rx),
            connections: Mutex::new(conn_rx),
        })
    }

    /// Drops datagrams from `from` to `to` with `probability` (0 to 1).
    pub fn set_loss(&self, from: SocketAddr, to: SocketAddr, probability: f64) {
        self.lock()
            .loss
            .insert((from, to), probability.clamp(0.0, 1.0));
    }

    /// Drops datagrams on every link without a loss of its own (from
    /// [`MemoryNetwork::set_loss`]) with `probability` (0 to 1).
    pub fn set_default_loss(&self, probability: f64) {
        self.lock().default_loss = probability.clamp(0.0, 1.0);
    }

    /// Delays datagrams from `from` to `to` by `latency` (and the opening
    /// of streams by the round trip). Delayed datagrams may be reordered,
    /// as over UDP.
    pub fn set_latency(&self, from: SocketAddr, to: SocketAddr, latency: Duration) {
        self.lock().latency.insert((from, to), latency);
    }

    /// Cuts the link from `from` to `to`, one way: datagrams are dropped,
    /// and streams cannot open either way (a connection needs both).
    pub fn block(&self, from: SocketAddr, to: SocketAddr) {
        self.lock().cuts.insert((from, to));
    }

    /// Restores the link from `from` to `to` cut by
    /// [`MemoryNetwork::block`] or [`MemoryNetwork::partition`].
    pub fn unblock(&self, from: SocketAddr, to: SocketAddr) {
        self.lock().cuts.remove(&(from, to));
    }

    /// Cuts every link between a member of `a` and a member of `b`, both
    /// ways. Links within each side stay as they are.
    pub fn partition(&self, a: &[SocketAddr], b: &[SocketAddr]) {
        let mut net = self.lock();
        for &x in a {
            for &y in b {
                net.cuts.insert((x, y));
                net.cuts.insert((y, x));
            }
        }
    }

    /// Restores every cut link. Loss and latency stay as set.
    pub fn heal(&self) {
        self.lock().cuts.clear();
    }

    /// Delivers a datagram, or drops it as the link says.
    fn send(&self, from: SocketAddr, to: SocketAddr, data: &[u8]) -> io::Result<()> {
        if data.len() > MAX_SEND {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "datagram larger than 65,507 bytes",
            ));
        }
        let mut net = self.lock();
        if net.is_cut(from, to) {
            return Ok(());
        }
        let loss = net
            .loss
            .get(&(from, to))
            .copied()
            .unwrap_or(net.default_loss);
        if loss > 0.0 && net.random() < loss {
            return Ok(());
        }
        let Some(ep) = net.endpoints.get(&to) else {
            // Nobody there: lost, as UDP to a closed port.
            return Ok(());
        };
        let latency = net.latency(from, to);
        let packet = (from, data.to_vec());
        match tokio::runtime::Handle::try_current() {
            Ok(rt) if !latency.is_zero() => {
                let tx = ep.packets.clone();
                drop(net);
                rt.spawn(async move {
                    tokio::time::sleep(latency).await;
                    let _ = tx.try_send(packet);
                });
            }
            // A full inbox drops the datagram, like a full socket buffer.
            _ => drop(ep.packets.try_send(packet)),
        }
        Ok(())
    }

    /// Opens a stream from `from` to `to` within `timeout`.
    async fn connect(
        &self,
        from: SocketAddr,
        to: SocketAddr,
        timeout: Duration,
    ) -> io::Result<DuplexStream> {
        let (cut, rtt) = {
            let net = self.lock();
            (
                net.is_cut(from, to) || net.is_cut(to, from),
                net.latency(from, to) + net.latency(to, from),
            )
        };
        if cut || rtt > timeout {
            // The handshake never completes.
            tokio::time::sleep(timeout).await;
            return Err(io::ErrorKind::TimedOut.into());
        }
        if !rtt.is_zero() {
            tokio::time::sleep(rtt).await;
        }
        let tx = self
            .lock()
            .endpoints
            .get(&to)
            .map(|ep| ep.connections.clone())
            .ok_or(io::ErrorKind::ConnectionRefused)?;
        let (ours, theirs) = tokio::io::duplex(PIPE_BUFFER);
        tx.try_send((theirs, from))
            .map_err(|_| io::ErrorKind::ConnectionRefused)?;
        Ok(ours)
    }

    /// Frees `addr` if `generation` still has it.
    fn unbind(&self, addr: SocketAddr, generation: u64) {
        let mut net = self.lock();
        if net.endpoints.get(&addr).map(|ep| ep.generation) == Some(generation) {
            net.endpoints.remove(&addr);
        }
    }
}

/// A [`Transport`] on a [`MemoryNetwork`], from
/// [`MemoryNetwork::transport`]. Its address is freed when it is shut down
/// (with the node) or dropped.
#[derive(Debug)]
pub struct MemoryTransport {
    net: MemoryNetwork,
    addr: SocketAddr,
    generation: u64,
    packets: Mutex<mpsc::Receiver<Datagram>>,
    connections: Mutex<mpsc::Receiver<Connection>>,
}

impl Transport for MemoryTransport {
    type Stream = DuplexStream;

    fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    fn send_to(&self, data: &[u8], to: SocketAddr) -> io::Result<()> {
        self.net.send(self.addr, to, data)
    }

    fn poll_recv(&self, cx: &mut Context<'_>, batch: &mut PacketBatch) -> Poll<io::Result<()>> {
        let mut rx = self.packets.lock().unwrap_or_else(PoisonError::into_inner);
        // Closed only once unbound: nothing will come any more.
        let Poll::Ready(Some((from, data))) = rx.poll_recv(cx) else {
            return Poll::Pending;
        };
        batch.push(from, &data);
        while !batch.is_full() {
            let Ok((from, data)) = rx.try_recv() else {
                break;
            };
            batch.push(from, &data);
        }
        Poll::Ready(Ok(()))
    }

    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(DuplexStream, SocketAddr)>> {
        let mut rx = self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match rx.poll_recv(cx) {
            Poll::Ready(Some(conn)) => Poll::Ready(Ok(conn)),
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }

    fn dial(
        &self,
        to: SocketAddr,
        timeout: Duration,
    ) -> impl Future<Output = io::Result<DuplexStream>> + Send + 'static {
        let net = self.net.clone();
        let from = self.addr;
        async move { net.connect(from, to, timeout).await }
    }

    fn shutdown(&self) -> impl Future<Output = ()> + Send {
        self.net.unbind(self.addr, self.generation);
        async {}
    }
}

impl Drop for MemoryTransport {
    fn drop(&mut self) {
        self.net.unbind(self.addr, self.generation);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    async fn recv(t: &MemoryTransport) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut batch = PacketBatch::new();
        std::future::poll_fn(|cx| t.poll_recv(cx, &mut batch))
            .await
            .unwrap();
        batch.iter().map(|(f, d)| (f, d.to_vec())).collect()
    }

    /// What `t` has received, without waiting.
    async fn try_recv(t: &MemoryTransport) -> usize {
        let mut batch = PacketBatch::new();
        let _ = std::future::poll_fn(|cx| Poll::Ready(t.poll_recv(cx, &mut batch))).await;
        batch.len()
    }

    #[tokio::test(start_paused = true)]
    async fn packets_follow_the_links() {
        let net = MemoryNetwork::with_seed(1);
        let a = net.transport(addr("10.0.0.1:1")).unwrap();
        let b = net.transport(addr("10.0.0.2:1")).unwrap();
        assert_eq!(
            net.transport(addr("10.0.0.1:1")).unwrap_err().kind(),
            io::ErrorKind::AddrInUse
        );
        a.send_to(b"one", b.local_addr()).unwrap();
        a.send_to(b"two", b.local_addr()).unwrap();
        assert_eq!(
            recv(&b).await,
            vec![
                (a.local_addr(), b"one".to_vec()),
                (a.local_addr(), b"two".to_vec())
            ]
        );
        net.block(a.local_addr(), b.local_addr());
        a.send_to(b"cut", b.local_addr()).unwrap();
        b.send_to(b"back", a.local_addr()).unwrap();
        assert_eq!(try_recv(&b).await, 0);
        assert_eq!(try_recv(&a).await, 1);
        net.heal();
        net.set_loss(a.local_addr(), b.local_addr(), 0.5);
        for _ in 0..1000 {
            a.send_to(b"x", b.local_addr()).unwrap();
        }
        let mut got = 0;
        while got < 1000 {
            let n = try_recv(&b).await;
            if n == 0 {
                break;
            }
            got += n;
        }
        assert!((400..600).contains(&got), "{got} of 1000 arrived");
        net.set_loss(a.local_addr(), b.local_addr(), 0.0);
        net.set_latency(a.local_addr(), b.local_addr(), Duration::from_secs(1));
        let sent = tokio::time::Instant::now();
        a.send_to(b"late", b.local_addr()).unwrap();
        assert_eq!(recv(&b).await[0].1, b"late");
        assert_eq!(sent.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn streams_connect_refuse_and_time_out() {
        let net = MemoryNetwork::new();
        let a = net.transport(addr("10.0.0.1:0")).unwrap();
        let b = net.transport(addr("10.0.0.1:0")).unwrap();
        assert_ne!(a.local_addr(), b.local_addr());
        let timeout = Duration::from_secs(5);
        let mut s = a.dial(b.local_addr(), timeout).await.unwrap();
        let (mut t, from) = std::future::poll_fn(|cx| b.poll_accept(cx)).await.unwrap();
        assert_eq!(from, a.local_addr());
        s.write_all(b"hello").await.unwrap();
        s.shutdown().await.unwrap();
        let mut got = Vec::new();
        t.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"hello");

        let nobody = addr("10.9.9.9:1");
        let e = a.dial(nobody, timeout).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);

        net.block(b.local_addr(), a.local_addr());
        let started = tokio::time::Instant::now();
        let e = a.dial(b.local_addr(), timeout).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), timeout);

        // A dropped transport frees its address.
        let b_addr = b.local_addr();
        drop(b);
        net.heal();
        let e = a.dial(b_addr, timeout).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
        assert!(net.transport(b_addr).is_ok());
    }
}
