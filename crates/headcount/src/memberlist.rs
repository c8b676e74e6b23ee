//! The public handle: [`Memberlist`].

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use headcount_proto::node::{LocalNode, Node};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument;

use crate::clock::Clock;
use crate::delegate::HooksAdapter;
use crate::driver::{Command, Driver, DriverParts, ShellCounters};
use crate::events::{EventChannel, Events};
use crate::resolve::Resolver;
use crate::security::{os_nonce_source, os_random, Key, SecurityOp};
use crate::shared_core::{lock_for_read, Core};
use crate::transport::{TokioTransport, Transport};
use crate::{advertise, Config, CoreStats, Error, JoinError, MemberInfo, Options, Target};

/// Capacity of the command channel from handles to the driver.
const COMMAND_QUEUE: usize = 256;

/// Counters of a running memberlist.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// The protocol core's counters: packets, malformed or dropped
    /// messages, probes, streams.
    pub core: CoreStats,
    /// UDP sends that failed (the packet was lost).
    pub udp_send_errors: u64,
    /// UDP receive errors.
    pub udp_recv_errors: u64,
    /// Inbound TCP connections served.
    pub inbound_streams: u64,
    /// Inbound TCP connections closed at once because too many were open
    /// or waiting.
    pub inbound_streams_rejected: u64,
    /// Inbound TCP connections closed at once because their source address
    /// is outside [`Config::cidrs_allowed`] (packets so refused are counted
    /// in `core.sources_denied`).
    pub inbound_streams_denied: u64,
    /// Inbound TCP connections that failed (bad data, timeout, closed early,
    /// a wrong label or key).
    pub inbound_stream_errors: u64,
    /// Outbound streams that failed to connect, write or read.
    pub dial_failures: u64,
    /// Bytes this node wrote to TCP streams: the messages it dialed out
    /// with and the replies it wrote to inbound streams (counted when the
    /// write starts, whether or not it completes).
    pub tcp_bytes_sent: u64,
}

struct Inner {
    name: String,
    local_addr: SocketAddr,
    advertise_addr: SocketAddr,
    config: Config,
    cmd_tx: mpsc::Sender<Box<Command>>,
    /// The protocol core, read through its lock on demand.
    core: Core,
    /// The core's membership version, sent by the driver when it changes;
    /// closed when the driver stops.
    members_rx: watch::Receiver<u64>,
    events: Arc<EventChannel>,
    shutdown_tx: watch::Sender<bool>,
    done_rx: watch::Receiver<bool>,
    counters: Arc<ShellCounters>,
    resolver: Resolver,
}

/// A running cluster member. Cheap to clone: clones are handles to the same
/// node. The node runs on a tokio task until [`Memberlist::shutdown`] is
/// called or every handle is dropped (which does not leave gracefully).
#[derive(Clone)]
pub struct Memberlist {
    inner: Arc<Inner>,
}

impl core::fmt::Debug for Memberlist {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Memberlist")
            .field("name", &self.inner.name)
            .field("advertise_addr", &self.inner.advertise_addr)
            .finish_non_exhaustive()
    }
}

impl Memberlist {
    /// Binds UDP and TCP on `options.bind_addr` (a [`TokioTransport`]),
    /// starts the node and returns a handle to it. The node knows only
    /// itself until [`Memberlist::join`]. Must be called inside a tokio
    /// runtime.
    pub async fn create(options: Options) -> Result<Memberlist, Error> {
        let transport = TokioTransport::bind(options.bind_addr).await?;
        Memberlist::create_with_transport(options, transport).await
    }

    /// Starts the node on `transport` (e.g. a [`crate::MemoryNetwork`]'s,
    /// for tests) and returns a handle to it. `options.bind_addr` is not
    /// used: the transport is bound already, and its
    /// [`Transport::local_addr`] is the default advertised address. Must be
    /// called inside a tokio runtime.
    pub async fn create_with_transport<T: Transport>(
        options: Options,
        transport: T,
    ) -> Result<Memberlist, Error> {
        let Options {
            name,
            bind_addr,
            advertise_addr,
            dns_config_path,
            config,
            meta,
            delegates,
            seed,
            event_capacity,
        } = options;
        // The config, name and metadata are validated once, when the node
        // is built below (after binding: the advertised address may be the
        // bound one).
        // The transport is bound already (to `bind_addr` by `create`).
        let _ = bind_addr;
        let local_addr = transport.local_addr();
        let advertise =
            advertise::final_addr(advertise_addr, local_addr, advertise::unspecified_bind)?;
        let meta = match &delegates.node_meta {
            Some(d) => d.node_meta(headcount_proto::config::META_MAX_SIZE),
            None => meta,
        };
        let seed = seed.unwrap_or_else(random_seed);
        let clock = Clock::start();
        let hooks = Box::new(HooksAdapter(delegates.clone()));
        let local = LocalNode::new(name.clone(), advertise).with_meta(meta);
        // Every node gets the OS generator for nonces, so keys can be added
        // at run time even when it starts in plaintext. Check it once here.
        os_random(&mut [0u8; 12])?;
        // Everything the node logs, from its own first alive to the driver
        // task's last word, is inside one span carrying its name.
        let span = tracing::info_span!("node", name = %name);
        let node = span
            .in_scope(|| {
                Node::builder(config.clone(), local)
                    .hooks(hooks)
                    .seed(seed)
                    .nonce_source(os_nonce_source())
                    .build(clock.now())
            })
            .map_err(Error::Config)?;

        let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (done_tx, done_rx) = watch::channel(false);
        let (members_tx, members_rx) = watch::channel(node.membership_version());
        let core: Core = Arc::new(Mutex::new(node));
        let events = Arc::new(EventChannel::new(event_capacity));
        let counters = Arc::new(ShellCounters::default());
        let driver = Driver::new(DriverParts {
            core: core.clone(),
            clock,
            transport,
            delegates,
            cmd_rx,
            shutdown_rx,
            members_tx,
            events: events.clone(),
            counters: counters.clone(),
        });
        let closer = CloseEvents(events.clone());
        let run = async move {
            // Dropped when the driver ends, even by a panic: event streams
            // must end with it rather than wait forever.
            let _closer = closer;
            driver.run().await;
            let _ = done_tx.send(true);
        };
        tokio::spawn(run.instrument(span));
        tracing::debug!(node = %name, addr = %advertise, "memberlist started");
        Ok(Memberlist {
            inner: Arc::new(Inner {
                name,
                local_addr,
                advertise_addr: advertise,
                config,
                cmd_tx,
                core,
                members_rx,
                events,
                shutdown_tx,
                done_rx,
                counters,
                // Go's resolveAddr defaults to config.BindPort, the bound port.
                resolver: Resolver::new(local_addr.port(), dns_config_path),
            }),
        })
    }

    /// Sends the driver the command `make` builds around a reply channel,
    /// and waits for the reply.
    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Error> {
        let rx = self.start(make).await?;
        rx.await.map_err(|_| Error::Shutdown)
    }

    /// Sends the driver the command `make` builds around a reply channel,
    /// and returns that channel, for callers that wait with a timeout.
    async fn start<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<oneshot::Receiver<T>, Error> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .cmd_tx
            .send(Box::new(make(tx)))
            .await
            .map_err(|_| Error::Shutdown)?;
        Ok(rx)
    }

    /// Joins a cluster by a push/pull with every address given, and
    /// returns how many completed one. Accepts `host:port`, `name/host:port`
    /// (the name is ignored but must not be empty), `[v6]:port`, bare IPs
    /// and DNS names. Fails when no address answered, saying why for each.
    ///
    /// As in Go memberlist (`resolveAddr`):
    /// - an address without a port (`host`, `name/host`, `[v6]`, a bare
    ///   IPv6 address) uses this node's bound port, the one
    ///   [`Memberlist::local_addr`] reports, not [`crate::DEFAULT_PORT`];
    /// - a DNS name resolves to all its A and AAAA records, each tried. A
    ///   name with a dot is first looked up over TCP at the first name
    ///   server of [`Options::dns_config_path`] (UDP answers may be cut
    ///   short), then over the usual transports with search domains and
    ///   the hosts file, then by the system resolver.
    pub async fn join<S: AsRef<str>>(&self, addrs: &[S]) -> Result<usize, Error> {
        let mut failures: Vec<(String, JoinError)> = Vec::new();
        let mut resolved: Vec<SocketAddr> = Vec::new();
        for a in addrs {
            let a = a.as_ref();
            match self.inner.resolver.resolve(a).await {
                Ok(list) => {
                    for s in list {
                        if !resolved.contains(&s) {
                            resolved.push(s);
                        }
                    }
                }
                Err(reason) => failures.push((a.to_string(), JoinError::Address(reason))),
            }
        }
        if resolved.is_empty() {
            return Err(Error::JoinFailed { failures });
        }
        let (succeeded, errors) = self
            .call(|done| Command::Join {
                addrs: resolved,
                done,
            })
            .await?;
        if succeeded == 0 {
            failures.extend(
                errors
                    .into_iter()
                    .map(|(a, e)| (a.to_string(), JoinError::PushPull(e))),
            );
            return Err(Error::JoinFailed { failures });
        }
        // The error above says why; here only a partial failure needs a log.
        for (addr, e) in &errors {
            tracing::warn!(node = %self.inner.name, "join: {addr} failed: {e}");
        }
        Ok(succeeded)
    }

    /// Leaves the cluster gracefully: gossips that this node leaves and
    /// waits until that was sent as often as the retransmit limit asks, or
    /// `timeout` passed ([`Error::Timeout`]). Returns at once when there is
    /// nobody to tell. The node keeps running (and answering) until
    /// [`Memberlist::shutdown`].
    pub async fn leave(&self, timeout: Duration) -> Result<(), Error> {
        let rx = self.start(|done| Command::Leave { done }).await?;
        wait(rx, timeout, "leave").await
    }

    /// Asks the [`crate::NodeMetaDelegate`] for fresh metadata and gossips
    /// it with a new incarnation, waiting like [`Memberlist::leave`]. Without
    /// a metadata delegate the current metadata is announced again.
    pub async fn update_node(&self, timeout: Duration) -> Result<(), Error> {
        let rx = self
            .start(|done| Command::UpdateMeta { meta: None, done })
            .await?;
        wait(rx, timeout, "update_node").await
    }

    /// Sets this node's metadata to `meta` (at most 512 bytes) and gossips
    /// it, waiting like [`Memberlist::leave`].
    pub async fn update_meta(&self, meta: Vec<u8>, timeout: Duration) -> Result<(), Error> {
        let rx = self
            .start(|done| Command::UpdateMeta {
                meta: Some(meta),
                done,
            })
            .await?;
        wait(rx, timeout, "update_meta").await
    }

    /// Stops the node without leaving: closes its sockets and ends its
    /// task. Other nodes will find it failed. Idempotent.
    pub async fn shutdown(&self) {
        self.inner.shutdown_tx.send_replace(true);
        let mut done = self.inner.done_rx.clone();
        let _ = done.wait_for(|d| *d).await;
    }

    /// Whether the node was shut down.
    pub fn is_shutdown(&self) -> bool {
        *self.inner.done_rx.borrow() || *self.inner.shutdown_tx.borrow()
    }

    /// The members alive or suspect, this node included (while it has not
    /// left), as Go's `Members()`: as many as [`Memberlist::num_members`]
    /// counts at the same moment (two calls may see different moments).
    /// Members declared dead or gone are in [`Memberlist::members_all`].
    /// Copies them under the node's lock, which the protocol waits for
    /// meanwhile.
    ///
    /// # Panics
    ///
    /// Like every method that reads the node's state
    /// ([`Memberlist::members_all`], [`Memberlist::member`],
    /// [`Memberlist::num_members`], [`Memberlist::local_node`],
    /// [`Memberlist::health_score`], [`Memberlist::stats`],
    /// [`Memberlist::events`], [`MembersWatch::members`]), when called from
    /// a delegate that the protocol runs while it holds that lock (the
    /// broadcast, state, merge and alive delegates and
    /// [`crate::PingDelegate::ack_payload`]), which would otherwise
    /// deadlock. Event, message, conflict and ping-complete delegates may
    /// call it. A [`crate::BroadcastDelegate`] is given the count it needs.
    pub fn members(&self) -> Vec<MemberInfo> {
        members_of(&self.inner.core, Which::Live)
    }

    /// Every member this node knows, itself included, in every state: the
    /// dead and left ones stay until they are reaped (after
    /// [`Config::gossip_to_the_dead_time`]). Panics like
    /// [`Memberlist::members`].
    pub fn members_all(&self) -> Vec<MemberInfo> {
        members_of(&self.inner.core, Which::All)
    }

    /// The member called `name`, if known, in any state (also dead or
    /// left, until reaped).
    pub fn member(&self, name: &str) -> Option<MemberInfo> {
        lock_for_read(&self.inner.core)
            .member(name)
            .map(|m| m.info())
    }

    /// Number of members that are alive or suspect, this node included:
    /// the length of [`Memberlist::members`] (Go: `NumMembers()`).
    pub fn num_members(&self) -> usize {
        lock_for_read(&self.inner.core).num_members()
    }

    /// A watch on the membership, told whenever a member's state, address,
    /// incarnation or metadata changes. Useful to await a condition:
    /// `ml.watch_members().wait_for(|members| ...)`.
    pub fn watch_members(&self) -> MembersWatch {
        let mut rx = self.inner.members_rx.clone();
        rx.borrow_and_update();
        MembersWatch {
            core: self.inner.core.clone(),
            rx,
        }
    }

    /// This node as the cluster sees it.
    pub fn local_node(&self) -> MemberInfo {
        lock_for_read(&self.inner.core).local_member().info()
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The address the transport is bound to (UDP and TCP by default).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// The address announced to other nodes.
    pub fn advertise_addr(&self) -> SocketAddr {
        self.inner.advertise_addr
    }

    /// The configuration the node was created with. Keys and verification
    /// flags may have changed since ([`Memberlist::keys`]).
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Sends `msg` to a member (by name) or an address in one UDP packet,
    /// without delivery guarantee. Fails with [`Error::TooLarge`] when it
    /// does not fit in a packet.
    pub async fn send_best_effort(&self, to: impl Into<Target>, msg: &[u8]) -> Result<(), Error> {
        let to = to.into();
        let data = msg.to_vec();
        self.call(|done| Command::SendPacket { to, data, done })
            .await?
    }

    /// Sends `msg` to an address in one UDP packet (Go: `SendToAddress`).
    pub async fn send_to_address(&self, addr: SocketAddr, msg: &[u8]) -> Result<(), Error> {
        self.send_best_effort(addr, msg).await
    }

    /// Sends `msg` to a member (by name) or an address over TCP, and waits
    /// until it was written to the peer (or failed, or the TCP timeout
    /// passed).
    pub async fn send_reliable(&self, to: impl Into<Target>, msg: &[u8]) -> Result<(), Error> {
        let to = to.into();
        let data = msg.to_vec();
        self.call(|done| Command::SendReliable { to, data, done })
            .await?
    }

    /// Pings the node called `name` at `addr` (an empty name accepts any
    /// node there) and returns the round-trip time, or [`Error::NoAck`] when
    /// no ack came within the probe timeout.
    pub async fn ping(&self, name: &str, addr: SocketAddr) -> Result<Duration, Error> {
        let name = name.to_string();
        self.call(|done| Command::Ping { name, addr, done }).await?
    }

    /// The Lifeguard health score: 0 is healthy, higher means this node
    /// suspects it is itself slow or cut off.
    pub fn health_score(&self) -> u32 {
        lock_for_read(&self.inner.core).health_score()
    }

    /// Counters of the protocol core and of the sockets.
    pub fn stats(&self) -> Stats {
        let c = &self.inner.counters;
        Stats {
            core: lock_for_read(&self.inner.core).stats().clone(),
            udp_send_errors: c.udp_send_errors.load(Ordering::Relaxed),
            udp_recv_errors: c.udp_recv_errors.load(Ordering::Relaxed),
            inbound_streams: c.inbound_streams.load(Ordering::Relaxed),
            inbound_streams_rejected: c.inbound_streams_rejected.load(Ordering::Relaxed),
            inbound_streams_denied: c.inbound_streams_denied.load(Ordering::Relaxed),
            inbound_stream_errors: c.inbound_stream_errors.load(Ordering::Relaxed),
            dial_failures: c.dial_failures.load(Ordering::Relaxed),
            tcp_bytes_sent: c.tcp_bytes_sent.load(Ordering::Relaxed),
        }
    }

    async fn security(&self, op: SecurityOp) -> Result<Vec<Key>, Error> {
        self.call(|done| Command::Security { op, done }).await?
    }

    /// Installs an encryption key (16, 24 or 32 bytes; Go `AddKey`) and
    /// returns the installed keys, primary first. A key already installed
    /// is a no-op. On a node without keys the key becomes the primary and
    /// encryption starts at once, as far as the verification flags say: to
    /// move a running plaintext cluster to encryption, first turn both
    /// flags off on every node ([`Memberlist::set_gossip_verify_incoming`],
    /// [`Memberlist::set_gossip_verify_outgoing`]), then install the key
    /// everywhere, then turn outgoing on everywhere, then incoming.
    pub async fn add_key(&self, key: &[u8]) -> Result<Vec<Key>, Error> {
        self.security(SecurityOp::AddKey(key.to_vec())).await
    }

    /// Makes an installed key the primary, the one we encrypt with (Go
    /// `UseKey`). Rotation: add the new key on every node, then use it on
    /// every node, then remove the old one.
    pub async fn use_key(&self, key: &[u8]) -> Result<Vec<Key>, Error> {
        self.security(SecurityOp::UseKey(key.to_vec())).await
    }

    /// Removes an installed key (Go `RemoveKey`); the primary cannot be
    /// removed ([`KeyringError::RemovePrimaryKey`](crate::KeyringError)).
    pub async fn remove_key(&self, key: &[u8]) -> Result<Vec<Key>, Error> {
        self.security(SecurityOp::RemoveKey(key.to_vec())).await
    }

    /// The installed keys, primary first; empty when encryption is off.
    /// [`Key`]'s `Debug` shows a fingerprint, never the key.
    pub async fn keys(&self) -> Result<Vec<Key>, Error> {
        self.security(SecurityOp::ListKeys).await
    }

    /// Sets Go's `GossipVerifyIncoming` while running: with keys, drop
    /// packets and streams that are not encrypted with one of them. Off,
    /// plaintext is accepted too (for migrations).
    pub async fn set_gossip_verify_incoming(&self, on: bool) -> Result<(), Error> {
        self.security(SecurityOp::VerifyIncoming(on))
            .await
            .map(drop)
    }

    /// Sets Go's `GossipVerifyOutgoing` while running: with keys, encrypt
    /// what we send. Off, we send plaintext (for migrations).
    pub async fn set_gossip_verify_outgoing(&self, on: bool) -> Result<(), Error> {
        self.security(SecurityOp::VerifyOutgoing(on))
            .await
            .map(drop)
    }

    /// A [`Stream`](futures_core::Stream) of this node's events: first a
    /// [`crate::Event::Join`] for each current member (alive or suspect,
    /// this node first, as [`Memberlist::members`]), then every event from
    /// then on, with no gap or repeat between the two, so every stream
    /// sees this node's own join however late it is made. A slow reader
    /// is told what it missed with a [`crate::Lagged`] item; see
    /// [`Events`]. Panics like [`Memberlist::members`].
    pub fn events(&self) -> Events {
        // Under the lock the driver publishes under: see `events.rs`.
        let node = lock_for_read(&self.inner.core);
        self.inner.events.subscribe(&node)
    }
}

/// A watch on a node's membership, from [`Memberlist::watch_members`]:
/// [`MembersWatch::changed`] completes when the membership changed, and
/// [`MembersWatch::members`] reads it. Nothing is copied until asked for.
#[derive(Clone)]
pub struct MembersWatch {
    core: Core,
    rx: watch::Receiver<u64>,
}

impl core::fmt::Debug for MembersWatch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MembersWatch")
            .field("version", &*self.rx.borrow())
            .finish_non_exhaustive()
    }
}

impl MembersWatch {
    /// Waits until the membership changed (a member's state, address,
    /// incarnation or metadata) since this watch was made or `changed`
    /// last returned. Several changes may be reported as one. Fails with
    /// [`Error::Shutdown`] once the node has stopped and every change was
    /// reported.
    pub async fn changed(&mut self) -> Result<(), Error> {
        self.rx.changed().await.map_err(|_| Error::Shutdown)
    }

    /// The members alive or suspect now, like [`Memberlist::members`]
    /// (which says when it panics). Still readable after shutdown.
    pub fn members(&self) -> Vec<MemberInfo> {
        members_of(&self.core, Which::Live)
    }

    /// Every member the node knows now, dead and left ones included, like
    /// [`Memberlist::members_all`].
    pub fn members_all(&self) -> Vec<MemberInfo> {
        members_of(&self.core, Which::All)
    }

    /// Waits until the members alive or suspect ([`MembersWatch::members`])
    /// satisfy `cond`, and returns them. Checks at once, then after every
    /// change. Fails with [`Error::Shutdown`] when the node stops before
    /// they do. To wait for a member to be declared dead or to have left,
    /// use [`MembersWatch::wait_for_all`].
    pub async fn wait_for(
        &mut self,
        cond: impl FnMut(&[MemberInfo]) -> bool,
    ) -> Result<Vec<MemberInfo>, Error> {
        self.wait(Which::Live, cond).await
    }

    /// [`MembersWatch::wait_for`] on every member the node knows
    /// ([`MembersWatch::members_all`]), e.g. until one is
    /// [`MemberState::Dead`](crate::MemberState::Dead).
    pub async fn wait_for_all(
        &mut self,
        cond: impl FnMut(&[MemberInfo]) -> bool,
    ) -> Result<Vec<MemberInfo>, Error> {
        self.wait(Which::All, cond).await
    }

    async fn wait(
        &mut self,
        which: Which,
        mut cond: impl FnMut(&[MemberInfo]) -> bool,
    ) -> Result<Vec<MemberInfo>, Error> {
        loop {
            // Marked seen before the read: a change after it wakes
            // `changed`, so none is missed.
            self.rx.borrow_and_update();
            let members = members_of(&self.core, which);
            if cond(&members) {
                return Ok(members);
            }
            self.changed().await?;
        }
    }
}

/// Which members a list holds.
#[derive(Clone, Copy)]
enum Which {
    /// Alive or suspect (Go's `Members()`).
    Live,
    /// Every entry of the table, dead and left ones until reaped.
    All,
}

/// Copies members of `core`.
fn members_of(core: &Mutex<Node>, which: Which) -> Vec<MemberInfo> {
    let node = lock_for_read(core);
    let all = matches!(which, Which::All);
    node.members()
        .filter(|m| all || !m.state.is_dead_or_left())
        .map(|m| m.info())
        .collect()
}

/// Ends the event streams when dropped with the driver's task.
struct CloseEvents(Arc<EventChannel>);

impl Drop for CloseEvents {
    fn drop(&mut self) {
        self.0.close();
    }
}

async fn wait<T>(
    rx: oneshot::Receiver<Result<T, Error>>,
    timeout: Duration,
    what: &'static str,
) -> Result<T, Error> {
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err(Error::Shutdown),
        Err(_) => Err(Error::Timeout(what)),
    }
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}
