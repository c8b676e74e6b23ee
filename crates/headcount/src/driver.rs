//! The driver task: the one owner of the protocol core.
//!
//! It `select!`s on the transport's packets and inbound streams (UDP and
//! TCP by default, see [`crate::transport`]), commands from API handles, messages read by inbound stream tasks, results of dial tasks and
//! the core's next timer, and after every input drains the core's outputs
//! with [`Driver::drain`].
//!
//! The core lives in a [`Core`] shared with the API handles, which read
//! members and counters through its lock on demand (Go memberlist's model:
//! nothing is copied unless someone asks). The driver locks it for each
//! short synchronous step and never across an `.await`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use headcount_proto::event::{
    BroadcastId, Completion, Dial, DialKind, JoinId, Output, PingId, StreamFailure, StreamId,
};
use headcount_proto::wire::{Limits, StreamDecoder, StreamMessage};
use headcount_proto::{ConfigError, PushPullError};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::clock::Clock;
use crate::delegate::Delegates;
use crate::events::EventChannel;
use crate::metrics::ShellMetrics;
use crate::net::{read_message, ReadError};
use crate::security::{reply_failure, Key, SecurityOp};
use crate::shared_core::{lock_for_driver, Core, CoreGuard};
use crate::transport::{PacketBatch, Transport};
use crate::{Error, Event, Target};

/// Most inbound stream handlers running at once (Go's limit on concurrent
/// inbound push/pulls); connections beyond it are closed at once.
pub(crate) const MAX_INBOUND_STREAMS: usize = 128;
/// Most inbound connections waiting for one of those handlers; beyond it
/// new connections are closed at once.
const MAX_WAITING_INBOUND_STREAMS: usize = 1024;
/// Most commands, inbound messages or dial results handled per wakeup.
const MAX_MESSAGES_PER_TURN: usize = 64;
/// Most bytes all inbound stream tasks together may buffer while reading
/// (see [`read_message`]); a stream that would need more is answered with
/// an error.
const INBOUND_STREAM_BUDGET: usize = 256 << 20;

thread_local! {
    /// One packet batch per thread, shared by every driver that runs on
    /// it: a burst is read (in one poll of the transport) and handled to
    /// completion, without awaiting in between, before the next read.
    /// Buffers per node would cost 64 KiB and more each.
    static RECV: std::cell::RefCell<PacketBatch> = std::cell::RefCell::new(PacketBatch::new());
    /// The packets one [`Driver::drain`] produced, sent together at its
    /// end (one `sendmmsg` for a gossip round's packets, a burst's acks).
    /// Per thread for the same reason: a drain runs without awaiting.
    static SEND: std::cell::RefCell<PacketBatch> = std::cell::RefCell::new(PacketBatch::new());
}

/// How a join ended: successes, and failures by address.
pub(crate) type JoinOutcome = (usize, Vec<(SocketAddr, PushPullError)>);

/// A request from an API handle.
pub(crate) enum Command {
    Join {
        addrs: Vec<SocketAddr>,
        done: oneshot::Sender<JoinOutcome>,
    },
    Leave {
        done: oneshot::Sender<Result<(), Error>>,
    },
    UpdateMeta {
        meta: Option<Vec<u8>>,
        done: oneshot::Sender<Result<(), Error>>,
    },
    SendPacket {
        to: Target,
        data: Vec<u8>,
        done: oneshot::Sender<Result<(), Error>>,
    },
    SendReliable {
        to: Target,
        data: Vec<u8>,
        done: oneshot::Sender<Result<(), Error>>,
    },
    Ping {
        name: String,
        addr: SocketAddr,
        done: oneshot::Sender<Result<Duration, Error>>,
    },
    /// A keyring or verification-flag change (or just a look), answered
    /// with the keys installed afterwards.
    Security {
        op: SecurityOp,
        done: oneshot::Sender<Result<Vec<Key>, Error>>,
    },
}

/// What a dial task sends back: the stream and its reply, if any, or why
/// it failed. Boxed on the channel, as [`Inbound`] and [`Command`] are: a
/// tokio channel allocates its slots in blocks of 32 when it is made, and
/// 32 unboxed messages cost every node kilobytes it rarely uses.
type DialResult = (StreamId, Result<Option<StreamMessage>, StreamFailure>);

/// A message an inbound stream task read (or why it could not), with where
/// to put the reply.
pub(crate) struct Inbound {
    from: SocketAddr,
    msg: Result<StreamMessage, ReadError>,
    reply: oneshot::Sender<Option<Vec<u8>>>,
}

/// Counters kept by the shell itself (the core keeps its own).
#[derive(Debug, Default)]
pub(crate) struct ShellCounters {
    pub udp_send_errors: AtomicU64,
    pub udp_recv_errors: AtomicU64,
    pub inbound_streams: AtomicU64,
    pub inbound_streams_rejected: AtomicU64,
    pub inbound_streams_denied: AtomicU64,
    pub inbound_stream_errors: AtomicU64,
    pub dial_failures: AtomicU64,
    pub tcp_bytes_sent: AtomicU64,
}

/// What inbound stream tasks need besides their decoder.
struct StreamCtx {
    limits: Limits,
    tcp_timeout: Duration,
    /// Bytes inbound streams may still buffer, one permit a byte.
    budget: Semaphore,
}

/// Channels between the driver and its handles.
pub(crate) struct DriverParts<T> {
    pub core: Core,
    pub clock: Clock,
    pub transport: T,
    pub delegates: Delegates,
    /// Commands, boxed (see [`DialResult`]).
    pub cmd_rx: mpsc::Receiver<Box<Command>>,
    pub shutdown_rx: watch::Receiver<bool>,
    /// The core's membership version, republished when it changes.
    pub members_tx: watch::Sender<u64>,
    pub events: Arc<EventChannel>,
    pub counters: Arc<ShellCounters>,
}

pub(crate) struct Driver<T> {
    core: Core,
    /// The node's name, for logs.
    name: String,
    clock: Clock,
    transport: T,
    delegates: Delegates,
    cmd_rx: mpsc::Receiver<Box<Command>>,
    shutdown_rx: watch::Receiver<bool>,
    members_tx: watch::Sender<u64>,
    events: Arc<EventChannel>,
    counters: Arc<ShellCounters>,
    inbound_tx: mpsc::Sender<Box<Inbound>>,
    inbound_rx: mpsc::Receiver<Box<Inbound>>,
    dial_tx: mpsc::UnboundedSender<Box<DialResult>>,
    dial_rx: mpsc::UnboundedReceiver<Box<DialResult>>,
    tasks: JoinSet<()>,
    inbound_permits: Arc<Semaphore>,
    inbound_waiting: Arc<Semaphore>,
    stream_ctx: Arc<StreamCtx>,
    /// The membership version last sent on `members_tx`.
    members_version: u64,
    joins: HashMap<JoinId, oneshot::Sender<JoinOutcome>>,
    broadcasts: HashMap<BroadcastId, oneshot::Sender<Result<(), Error>>>,
    reliables: HashMap<StreamId, (SocketAddr, oneshot::Sender<Result<(), Error>>)>,
    pings: HashMap<PingId, (String, oneshot::Sender<Result<Duration, Error>>)>,
    /// What the driver records (a no-op without the `metrics` feature).
    metrics: Arc<ShellMetrics>,
    /// How often `memberlist.queue.broadcasts` is sampled; zero: never.
    queue_check_interval: Duration,
}

impl<T: Transport> Driver<T> {
    pub(crate) fn new(p: DriverParts<T>) -> Self {
        let (inbound_tx, inbound_rx) = mpsc::channel(MAX_INBOUND_STREAMS);
        let (dial_tx, dial_rx) = mpsc::unbounded_channel();
        let (tcp_timeout, name, members_version, metrics, queue_check_interval) = {
            let node = lock_for_driver(&p.core);
            (
                node.config().tcp_timeout,
                node.name().to_string(),
                node.membership_version(),
                Arc::new(ShellMetrics::new(&node.config().metric_labels)),
                node.config().queue_check_interval,
            )
        };
        let stream_ctx = Arc::new(StreamCtx {
            limits: Limits::default(),
            tcp_timeout,
            budget: Semaphore::new(INBOUND_STREAM_BUDGET),
        });
        // Whatever changes before the first drain is published then.
        p.members_tx.send_replace(members_version);
        Driver {
            core: p.core,
            name,
            clock: p.clock,
            transport: p.transport,
            delegates: p.delegates,
            cmd_rx: p.cmd_rx,
            shutdown_rx: p.shutdown_rx,
            members_tx: p.members_tx,
            events: p.events,
            counters: p.counters,
            inbound_tx,
            inbound_rx,
            dial_tx,
            dial_rx,
            tasks: JoinSet::new(),
            inbound_permits: Arc::new(Semaphore::new(MAX_INBOUND_STREAMS)),
            inbound_waiting: Arc::new(Semaphore::new(MAX_WAITING_INBOUND_STREAMS)),
            stream_ctx,
            members_version,
            joins: HashMap::new(),
            broadcasts: HashMap::new(),
            reliables: HashMap::new(),
            pings: HashMap::new(),
            metrics,
            queue_check_interval,
        }
    }

    /// Locks the core for one synchronous step. Take what you need out of
    /// it in one statement (`let x = self.node().f();`): a guard kept in a
    /// `match` or `while let` scrutinee lives through the whole body.
    fn node(&self) -> CoreGuard<'_> {
        lock_for_driver(&self.core)
    }

    /// Runs until shutdown, or until every API handle is dropped.
    pub(crate) async fn run(mut self) {
        self.drain();
        // One timer for the whole life of the driver, moved only when the
        // core's next deadline changes: a fresh `sleep_until` per wakeup
        // would insert into and remove from the timer wheel every time.
        let far = tokio::time::Instant::now() + Duration::from_secs(3600);
        let sleep = tokio::time::sleep_until(far);
        tokio::pin!(sleep);
        // The deadline `sleep` is set to, `None` once it has fired.
        let mut armed: Option<tokio::time::Instant> = None;
        // Go's checkBroadcastQueueDepth: a sample every QueueCheckInterval,
        // the first one an interval after the start.
        let sample_queue = cfg!(feature = "metrics") && !self.queue_check_interval.is_zero();
        let period = if sample_queue {
            self.queue_check_interval
        } else {
            Duration::from_secs(3600)
        };
        let mut queue_check =
            tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        queue_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Guard against timer starvation: an elapsed sleep may still be
            // reported Pending when the task's budget is spent, so compare
            // the deadline with the clock ourselves.
            let deadline = self.node().poll_timeout();
            if let Some(d) = deadline {
                let now = self.clock.now();
                if now >= d {
                    self.fire_timers(now);
                    continue;
                }
            }
            let sleep_at = deadline.map(|d| self.clock.to_tokio(d));
            if let Some(at) = sleep_at {
                if armed != Some(at) {
                    sleep.as_mut().reset(at);
                    armed = Some(at);
                }
            }
            let stop = tokio::select! {
                r = self.shutdown_rx.changed() => r.is_err() || *self.shutdown_rx.borrow(),
                r = std::future::poll_fn(|cx| RECV.with_borrow_mut(|batch| {
                    // Empty already, unless a panic cut the last burst short.
                    batch.clear();
                    self.transport.poll_recv(cx, batch)
                })) => {
                    self.on_datagrams(r);
                    false
                }
                r = std::future::poll_fn(|cx| self.transport.poll_accept(cx)) => {
                    match r {
                        Ok((stream, from)) => self.on_accept(stream, from),
                        Err(e) => {
                            tracing::warn!("accepting a stream failed: {e}");
                            // Errors like EMFILE repeat at once; yield a little.
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                    false
                }
                cmd = self.cmd_rx.recv() => match cmd {
                    None => true,
                    Some(cmd) => {
                        self.handle_batch(*cmd, |d| d.cmd_rx.try_recv().ok().map(|c| *c), Self::on_command);
                        false
                    }
                },
                Some(inb) = self.inbound_rx.recv() => {
                    self.handle_batch(*inb, |d| d.inbound_rx.try_recv().ok().map(|i| *i), Self::on_inbound);
                    false
                }
                Some(res) = self.dial_rx.recv() => {
                    self.handle_batch(*res, |d| d.dial_rx.try_recv().ok().map(|r| *r), Self::on_dial_result);
                    false
                }
                _ = &mut sleep, if sleep_at.is_some() => {
                    armed = None;
                    self.fire_timers(self.clock.now());
                    false
                }
                _ = queue_check.tick(), if sample_queue => {
                    let queued = self.node().queued_broadcasts();
                    self.metrics.queue_broadcasts(queued);
                    false
                }
                Some(_) = self.tasks.join_next(), if !self.tasks.is_empty() => false,
            };
            self.drain();
            if stop {
                break;
            }
        }
        self.transport.shutdown().await;
        tracing::debug!(node = %self.name, "driver stopped");
        // Dropping self closes the sockets and aborts every stream task.
    }

    /// Fires the core's timers due at `now` and carries out what they
    /// asked for. When a gossip round ran, its real duration (the core's
    /// round and the sending of its packets, as Go's `gossip()` measures)
    /// goes to `memberlist.gossip`.
    fn fire_timers(&mut self, now: headcount_proto::Instant) {
        #[cfg(feature = "metrics")]
        let started = std::time::Instant::now();
        // The core counts its gossip rounds: one ran if the count moved.
        let gossiped = {
            let mut node = self.node();
            let before = node.stats().gossip_rounds;
            node.handle_timeout(now);
            node.stats().gossip_rounds != before
        };
        self.drain();
        #[cfg(feature = "metrics")]
        if gossiped {
            self.metrics.gossip(started.elapsed());
        }
        #[cfg(not(feature = "metrics"))]
        let _ = gossiped;
    }

    /// Handles `first`, then up to [`MAX_MESSAGES_PER_TURN`] - 1 more inputs
    /// of its kind already waiting (`next`), draining before each further
    /// one; the caller drains after the last. The bound keeps one busy
    /// channel from starving the other inputs and the timer.
    fn handle_batch<I>(
        &mut self,
        first: I,
        next: fn(&mut Self) -> Option<I>,
        handle: fn(&mut Self, I),
    ) {
        handle(self, first);
        for _ in 1..MAX_MESSAGES_PER_TURN {
            let Some(input) = next(self) else {
                break;
            };
            self.drain();
            handle(self, input);
        }
    }

    /// Hands the burst the transport just read into the thread's batch (up
    /// to [`crate::transport::MAX_BATCH_PACKETS`] datagrams) to the core in
    /// one call. The rest of a flood waits in the transport (the socket
    /// buffer, where the kernel drops what does not fit).
    fn on_datagrams(&mut self, r: std::io::Result<()>) {
        if let Err(e) = r {
            self.count_recv_error(&e);
        }
        RECV.with_borrow_mut(|batch| {
            if !batch.is_empty() {
                self.metrics.udp_received(batch.bytes());
                let now = self.clock.now();
                self.node().handle_packets(now, batch.iter());
            }
            batch.clear();
        });
        self.drain();
    }

    fn count_recv_error(&self, e: &std::io::Error) {
        // On some platforms an ICMP port unreachable from an earlier send
        // surfaces here; it is not fatal.
        self.counters
            .udp_recv_errors
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!("UDP receive error: {e}");
    }

    fn on_accept(&mut self, stream: T::Stream, from: SocketAddr) {
        // Go counts every connection its transport hands over.
        self.metrics.tcp_accept();
        // Go's handleConn checks the allow-list before reading anything.
        if !self.node().config().ip_allowed(from.ip()) {
            self.counters
                .inbound_streams_denied
                .fetch_add(1, Ordering::Relaxed);
            self.metrics.tcp_refused();
            tracing::debug!(%from, "closing a connection from an address outside the allow-list");
            return;
        }
        let Ok(waiting) = self.inbound_waiting.clone().try_acquire_owned() else {
            self.counters
                .inbound_streams_rejected
                .fetch_add(1, Ordering::Relaxed);
            self.metrics.tcp_refused();
            tracing::warn!(%from, "too many inbound streams ({MAX_WAITING_INBOUND_STREAMS}); closing the connection");
            return;
        };
        let permits = self.inbound_permits.clone();
        self.counters
            .inbound_streams
            .fetch_add(1, Ordering::Relaxed);
        let ctx = self.stream_ctx.clone();
        // Made now, so it has the keys and flags in force at accept time.
        let decoder = self.node().stream_decoder(false);
        let tx = self.inbound_tx.clone();
        let counters = self.counters.clone();
        let metrics = self.metrics.clone();
        let task = async move {
            // A join storm opens many connections at once: they wait for
            // their turn (within the TCP timeout) rather than fail.
            let permit = tokio::time::timeout(ctx.tcp_timeout, permits.acquire_owned()).await;
            drop(waiting);
            let Ok(Ok(_permit)) = permit else {
                counters
                    .inbound_stream_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%from, "inbound stream timed out waiting for its turn");
                return;
            };
            if let Err(e) =
                serve_inbound(stream, from, decoder, &ctx, tx, &counters, &metrics).await
            {
                counters
                    .inbound_stream_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%from, "inbound stream failed: {e}");
            }
        };
        // Stream tasks log inside the node's span, as the driver does.
        self.tasks.spawn(task.in_current_span());
    }

    fn on_inbound(&mut self, inb: Inbound) {
        let now = self.clock.now();
        let reply = match inb.msg {
            Ok(msg) => self.node().handle_stream(now, inb.from, msg),
            Err(error) => self.node().handle_stream_error(now, inb.from, &error),
        };
        let _ = inb.reply.send(reply);
    }

    fn on_dial_result(&mut self, (id, res): DialResult) {
        let now = self.clock.now();
        self.node().handle_stream_result(now, id, res);
    }

    fn on_command(&mut self, cmd: Command) {
        let now = self.clock.now();
        match cmd {
            Command::Join { addrs, done } => {
                let id = self.node().join(now, &addrs);
                self.joins.insert(id, done);
            }
            Command::Leave { done } => {
                let id = self.node().leave(now);
                self.answer_after_broadcast(id, done);
            }
            Command::UpdateMeta { meta, done } => {
                let meta = match (meta, &self.delegates.node_meta) {
                    (Some(m), _) => m,
                    (None, Some(d)) => d.node_meta(headcount_proto::config::META_MAX_SIZE),
                    (None, None) => self.node().local_member().meta.to_vec(),
                };
                let r = self.node().update_meta(now, meta);
                match r {
                    Ok(id) => self.answer_after_broadcast(id, done),
                    Err(e) => {
                        let e = match e {
                            ConfigError::MetaTooLarge(size) => Error::MetaTooLarge {
                                size,
                                limit: headcount_proto::config::META_MAX_SIZE,
                            },
                            other => Error::Config(other),
                        };
                        let _ = done.send(Err(e));
                    }
                }
            }
            Command::SendPacket { to, data, done } => {
                let r = self.resolve_target(&to).and_then(|addr| {
                    self.node()
                        .send_packet(now, addr, &data)
                        .map_err(Error::from)
                });
                let _ = done.send(r);
            }
            Command::SendReliable { to, data, done } => {
                let r = self.resolve_target(&to).and_then(|addr| {
                    self.node()
                        .send_reliable(now, addr, data)
                        .map(|id| (id, addr))
                        .map_err(Error::from)
                });
                match r {
                    Ok((id, addr)) => {
                        self.reliables.insert(id, (addr, done));
                    }
                    Err(e) => {
                        let _ = done.send(Err(e));
                    }
                }
            }
            Command::Ping { name, addr, done } => {
                let id = self.node().ping(now, &name, addr);
                let who = if name.is_empty() {
                    addr.to_string()
                } else {
                    format!("{name} ({addr})")
                };
                self.pings.insert(id, (who, done));
            }
            Command::Security { op, done } => {
                let _ = done.send(self.on_security(op));
            }
        }
    }

    /// Answers `done` once broadcast `id` was sent as often as the
    /// retransmit limit asks, or at once without one (nobody to tell, or
    /// we already left).
    fn answer_after_broadcast(
        &mut self,
        id: Option<BroadcastId>,
        done: oneshot::Sender<Result<(), Error>>,
    ) {
        match id {
            Some(id) => {
                self.broadcasts.insert(id, done);
            }
            None => {
                let _ = done.send(Ok(()));
            }
        }
    }

    fn on_security(&mut self, op: SecurityOp) -> Result<Vec<Key>, Error> {
        let mut node = self.node();
        let r = match op {
            SecurityOp::AddKey(k) => node.add_key(&k),
            SecurityOp::UseKey(k) => node.use_key(&k),
            SecurityOp::RemoveKey(k) => node.remove_key(&k),
            SecurityOp::ListKeys => Ok(()),
            SecurityOp::VerifyIncoming(on) => {
                node.set_gossip_verify_incoming(on);
                Ok(())
            }
            SecurityOp::VerifyOutgoing(on) => {
                node.set_gossip_verify_outgoing(on);
                Ok(())
            }
        };
        r.map_err(Error::Keyring)?;
        let keys: Vec<Key> = node
            .keyring()
            .map(|k| k.keys().map(Key::new).collect())
            .unwrap_or_default();
        let primary = node.keyring().map(|k| k.primary_key().to_vec());
        drop(node);
        if let Some(primary) = primary {
            tracing::debug!(
                node = %self.name,
                keys = keys.len(),
                primary = %crate::security::fingerprint(&primary),
                "keyring"
            );
        }
        Ok(keys)
    }

    fn resolve_target(&self, to: &Target) -> Result<SocketAddr, Error> {
        match to {
            Target::Addr(a) => Ok(*a),
            Target::Node(name) => self
                .node()
                .member(name)
                .map(|m| m.addr())
                .ok_or_else(|| Error::UnknownNode(name.clone())),
        }
    }

    /// Carries out everything the core asked for (delegates are called
    /// without the lock), then tells the member watchers when membership
    /// changed.
    fn drain(&mut self) {
        loop {
            // One statement, so the guard is gone before the output is
            // handled.
            let Some(out) = self.next_output() else {
                break;
            };
            match out {
                Output::Packet { to, data } => {
                    // Go counts the bytes before it writes them.
                    self.metrics.udp_sent(data.len());
                    let full = SEND.with_borrow_mut(|batch| {
                        batch.push(to, &data);
                        batch.is_full()
                    });
                    if full {
                        self.send_packets();
                    }
                }
                Output::Dial(dial) => self.spawn_dial(dial),
                Output::Event(e) => self.on_event(e),
                Output::Completion(c) => self.on_completion(c),
            }
        }
        self.send_packets();
        let version = self.node().membership_version();
        if self.members_version != version {
            self.members_version = version;
            self.members_tx.send_replace(version);
        }
    }

    /// The core's next output. An event goes to the event streams before
    /// the lock is released, so that a new stream's member snapshot and
    /// its events meet without a gap (see `events.rs`); the delegates are
    /// told after, without the lock.
    fn next_output(&self) -> Option<Output> {
        let mut node = self.node();
        let out = node.poll_output();
        if let Some(Output::Event(e)) = &out {
            self.events.publish(e);
        }
        out
    }

    /// Sends the packets gathered in the thread's send batch. Never waits:
    /// a packet that cannot go now is lost, which the protocol tolerates
    /// like any other loss.
    fn send_packets(&mut self) {
        SEND.with_borrow_mut(|batch| {
            if batch.is_empty() {
                return;
            }
            let counters = &self.counters;
            let metrics = &self.metrics;
            self.transport.send_batch(batch, &mut |to, e| {
                counters.udp_send_errors.fetch_add(1, Ordering::Relaxed);
                metrics.udp_send_error();
                tracing::debug!(%to, "UDP send failed: {e}");
            });
            batch.clear();
        });
    }

    fn spawn_dial(&mut self, dial: Dial) {
        let tx = self.dial_tx.clone();
        let (decoder, secured) = {
            let node = self.node();
            (
                dial.expect_reply.then(|| node.stream_decoder(true)),
                // The keys as they are now, not as configured at start.
                node.keyring().is_some() || !node.config().label.is_empty(),
            )
        };
        let max_bytes = self.stream_ctx.limits.max_stream_bytes;
        let counters = self.counters.clone();
        let metrics = self.metrics.clone();
        let connect = self.transport.dial(dial.to, dial.timeout);
        let task = async move {
            let Dial {
                id,
                to: _,
                data,
                expect_reply: _,
                timeout,
                kind,
                ..
            } = dial;
            counters
                .tcp_bytes_sent
                .fetch_add(data.len() as u64, Ordering::Relaxed);
            let dialed = DialMetrics {
                metrics: &metrics,
                push_pull: kind == DialKind::PushPull,
            };
            let res = match tokio::time::timeout(
                timeout,
                dial_stream(connect, &data, decoder, max_bytes, secured, dialed),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err(StreamFailure::Timeout),
            };
            if res.is_err() {
                counters.dial_failures.fetch_add(1, Ordering::Relaxed);
                metrics.tcp_dial_failure();
            }
            let _ = tx.send(Box::new((id, res)));
        };
        self.tasks.spawn(task.in_current_span());
    }

    /// Tells the delegates (the event streams were told by
    /// [`Driver::next_output`]).
    fn on_event(&mut self, e: Event) {
        let d = &self.delegates;
        match &e {
            Event::Join(m) => {
                if let Some(d) = &d.event {
                    d.notify_join(m);
                }
            }
            Event::Leave(m) => {
                if let Some(d) = &d.event {
                    d.notify_leave(m);
                }
            }
            Event::Update(m) => {
                if let Some(d) = &d.event {
                    d.notify_update(m);
                }
            }
            Event::Conflict { existing, other } => {
                // The core logs it ("conflicting address for ...").
                if let Some(d) = &d.conflict {
                    d.notify_conflict(existing, other);
                }
            }
            Event::UserMessage(data) => {
                if let Some(d) = &d.message {
                    d.notify_msg(data);
                }
            }
            Event::PingComplete { node, rtt, payload } => {
                if let Some(d) = &d.ping {
                    d.notify_ping_complete(node, *rtt, payload);
                }
            }
            // Suspicion and health have no delegate (Go has none either);
            // events the core adds later reach the stream only.
            _ => {}
        }
    }

    /// Resolves whoever waits for the operation; gone waiters (a dropped
    /// future) are fine.
    fn on_completion(&mut self, c: Completion) {
        match c {
            Completion::PingResult { id, rtt } => {
                if let Some((who, done)) = self.pings.remove(&id) {
                    let _ = done.send(rtt.ok_or(Error::NoAck(who)));
                }
            }
            Completion::JoinFinished {
                id,
                succeeded,
                errors,
            } => {
                if let Some(done) = self.joins.remove(&id) {
                    let _ = done.send((succeeded, errors));
                }
            }
            Completion::ReliableSent { id, result } => {
                if let Some((to, done)) = self.reliables.remove(&id) {
                    let _ = done.send(result.map_err(|reason| Error::SendFailed { to, reason }));
                }
            }
            Completion::BroadcastFinished(id) => {
                if let Some(done) = self.broadcasts.remove(&id) {
                    let _ = done.send(Ok(()));
                }
            }
        }
    }
}

/// Reads one message from an inbound connection, hands it to the driver and
/// writes back the reply, all within the TCP timeout.
async fn serve_inbound(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    from: SocketAddr,
    decoder: StreamDecoder,
    ctx: &StreamCtx,
    tx: mpsc::Sender<Box<Inbound>>,
    counters: &ShellCounters,
    metrics: &ShellMetrics,
) -> Result<(), ServeError> {
    let work = async {
        // A malformed or oversized message is answered with an errResp
        // (which the core frames), then reported as a failure.
        let read = read_message(
            &mut stream,
            decoder,
            ctx.limits.max_stream_bytes,
            Some(&ctx.budget),
            |len| metrics.size_remote(len),
        )
        .await;
        let (msg, failed) = match read {
            Ok(msg) => (Ok(msg), None),
            Err(e) if e.wants_reply() => (Err(e.clone()), Some(e)),
            Err(e) => return Err(ServeError::Read(e)),
        };
        let (reply_tx, reply_rx) = oneshot::channel();
        tx.send(Box::new(Inbound {
            from,
            msg,
            reply: reply_tx,
        }))
        .await
        .map_err(|_| ServeError::Shutdown)?;
        let reply = reply_rx.await.map_err(|_| ServeError::Shutdown)?;
        if let Some(bytes) = reply {
            counters
                .tcp_bytes_sent
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            metrics.tcp_sent(bytes.len());
            let write = |e: std::io::Error| ServeError::Write(e.kind());
            stream.write_all(&bytes).await.map_err(write)?;
            stream.flush().await.map_err(write)?;
        }
        let _ = stream.shutdown().await;
        match failed {
            Some(e) => Err(ServeError::Read(e)),
            None => Ok(()),
        }
    };
    match tokio::time::timeout(ctx.tcp_timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(ServeError::Timeout),
    }
}

/// Why serving an inbound stream failed (logged and counted).
#[derive(Debug, thiserror::Error)]
enum ServeError {
    /// The message could not be read (answered with an error when the
    /// peer should know why).
    #[error("{0}")]
    Read(ReadError),
    /// Writing the reply failed.
    #[error("writing the reply: {0}")]
    Write(std::io::ErrorKind),
    /// The driver stopped before it answered.
    #[error("shutting down")]
    Shutdown,
    /// Not done within the TCP timeout.
    #[error("timed out")]
    Timeout,
}

/// What a dial records: Go counts `memberlist.tcp.connect` once a
/// push/pull's connection is made, and `memberlist.tcp.sent` before each
/// write.
struct DialMetrics<'a> {
    metrics: &'a ShellMetrics,
    push_pull: bool,
}

/// Connects (`connect` is the transport's dial), writes `data` and reads
/// one reply with `reply` when given. `secured`: we have a keyring or a
/// label (for the hint of a refusal).
async fn dial_stream<S: AsyncRead + AsyncWrite + Unpin>(
    connect: impl std::future::Future<Output = std::io::Result<S>>,
    data: &[u8],
    reply: Option<StreamDecoder>,
    max_bytes: usize,
    secured: bool,
    m: DialMetrics<'_>,
) -> Result<Option<StreamMessage>, StreamFailure> {
    let io = |e: std::io::Error| StreamFailure::Io(e.kind());
    let mut stream = connect.await.map_err(|e| match e.kind() {
        // The transport's dial timeout is the one the exchange has.
        std::io::ErrorKind::TimedOut => StreamFailure::Timeout,
        _ => io(e),
    })?;
    if m.push_pull {
        m.metrics.tcp_connect();
    }
    m.metrics.tcp_sent(data.len());
    stream.write_all(data).await.map_err(io)?;
    stream.flush().await.map_err(io)?;
    let Some(decoder) = reply else {
        let _ = stream.shutdown().await;
        return Ok(None);
    };
    let msg = read_message(&mut stream, decoder, max_bytes, None, |len| {
        m.metrics.size_remote(len)
    })
    .await
    .map_err(|e| reply_failure(e, secured))?;
    let _ = stream.shutdown().await;
    Ok(Some(msg))
}
