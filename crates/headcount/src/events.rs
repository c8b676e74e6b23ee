//! The event stream of [`crate::Memberlist::events`]: a snapshot of the
//! members, then the events as the driver drains them from the core.
//!
//! Why there is no gap nor duplicate between the two: the driver publishes
//! each event while it still holds the core's lock it took the event out
//! with ([`EventChannel::publish`]), and a subscriber reads the table, the
//! events still queued in the core and subscribes under that same lock.
//! So every event is either published before the subscription (its effect
//! is in the table, the subscriber never gets it) or after it (the
//! subscriber gets it). The events still queued at that moment are the
//! only ones in both: their effect is already in the table and they will
//! be published after it. [`Events`] drops the membership events among
//! them, which the snapshot already shows, and passes the rest (user
//! messages, conflicts, pings, health).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};

use futures_core::Stream;
use headcount_proto::node::Node;
use tokio::sync::broadcast;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

use crate::Event;

/// The channel behind [`crate::Memberlist::events`].
#[derive(Debug)]
pub(crate) struct EventChannel {
    capacity: usize,
    tx: Mutex<Sender>,
}

#[derive(Debug, Default)]
struct Sender {
    /// Made on first subscription: its ring of `capacity` slots is
    /// preallocated, which is most of an idle node's memory when nobody
    /// listens.
    tx: Option<broadcast::Sender<Event>>,
    /// The node stopped: streams end, new ones get only their snapshot.
    closed: bool,
}

impl EventChannel {
    pub(crate) fn new(capacity: usize) -> Self {
        EventChannel {
            capacity: capacity.max(1),
            tx: Mutex::new(Sender::default()),
        }
    }

    fn sender(&self) -> std::sync::MutexGuard<'_, Sender> {
        // Holds no invariant a panic could break.
        self.tx.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands `e` to the subscribers. The driver calls it with the core
    /// still locked from taking `e` out of it (see the module docs).
    pub(crate) fn publish(&self, e: &Event) {
        let s = self.sender();
        if let Some(tx) = &s.tx {
            // Cloned only for someone: no receiver is the common case.
            if tx.receiver_count() > 0 {
                let _ = tx.send(e.clone());
            }
        }
    }

    /// Ends every stream (once it has read what was sent) when the node
    /// stops.
    pub(crate) fn close(&self) {
        let mut s = self.sender();
        s.closed = true;
        s.tx = None;
    }

    /// A stream of the live members of `node` as joins, then of the events
    /// published from now on. `node` must be the core this channel's
    /// driver publishes from, locked by the caller.
    pub(crate) fn subscribe(&self, node: &Node) -> Events {
        let rx = {
            let mut s = self.sender();
            if s.closed {
                None
            } else {
                let capacity = self.capacity;
                Some(
                    s.tx.get_or_insert_with(|| broadcast::channel(capacity).0)
                        .subscribe(),
                )
            }
        };
        let local = node.local_member();
        let snapshot = std::iter::once(local)
            .chain(node.members().filter(|m| m.name != local.name))
            .filter(|m| !m.state.is_dead_or_left())
            .map(|m| Event::Join(m.info()))
            .collect();
        Events {
            snapshot,
            already_shown: node.queued_events().count(),
            live: rx.map(BroadcastStream::new),
        }
    }
}

/// A stream of this node's [`Event`]s, from [`crate::Memberlist::events`].
///
/// It yields first an [`Event::Join`] for every member alive or suspect
/// when it was made, this node first (the same set as
/// [`crate::Memberlist::members`]), then every event from that moment on,
/// in order: nothing is missed in between and nothing is told twice, so
/// a member list built from the stream is complete. It ends after the node
/// shuts down (at once for a stream made after that, once its snapshot is
/// read).
///
/// Events wait for a slow reader in a ring of
/// [`Options::event_capacity`](crate::Options::event_capacity) per node.
/// When a reader falls further behind, the oldest events it has not read
/// are dropped and it next gets `Err(`[`Lagged`]`(n))` saying how many,
/// then the events after them: the loss is never silent, but a member
/// list built from the stream may then be stale (read
/// [`crate::Memberlist::members`], or make a new stream, to resynchronise).
/// An [`crate::EventDelegate`] misses nothing.
///
/// `Unpin`, so `StreamExt::next` works on it as it is:
///
/// ```no_run
/// # async fn demo(ml: headcount::Memberlist) {
/// use tokio_stream::StreamExt;
/// let mut events = ml.events();
/// while let Some(e) = events.next().await {
///     match e {
///         Ok(headcount::Event::Join(m)) => println!("{} joined", m.name),
///         Ok(_) => {}
///         Err(lagged) => eprintln!("{lagged}"),
///     }
/// }
/// # }
/// ```
pub struct Events {
    snapshot: VecDeque<Event>,
    /// How many events at the head of `live` were queued in the core when
    /// the snapshot was taken: the membership ones among them are already
    /// in it.
    already_shown: usize,
    live: Option<BroadcastStream<Event>>,
}

impl core::fmt::Debug for Events {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Events")
            .field("snapshot_left", &self.snapshot.len())
            .field("ended", &self.live.is_none())
            .finish_non_exhaustive()
    }
}

impl Events {
    /// The next item if one is ready now, without waiting (as
    /// `broadcast::Receiver::try_recv`); `None` when none is, or the
    /// stream has ended.
    pub fn try_next(&mut self) -> Option<Result<Event, Lagged>> {
        /// Nobody to wake: the caller does not wait.
        struct NoWake;
        impl std::task::Wake for NoWake {
            fn wake(self: std::sync::Arc<Self>) {}
        }
        let waker = std::task::Waker::from(std::sync::Arc::new(NoWake));
        // Unconstrained: tokio's task budget would otherwise report an
        // event that is there as not ready.
        let mut next = tokio::task::unconstrained(std::future::poll_fn(|cx| {
            Pin::new(&mut *self).poll_next(cx)
        }));
        match Pin::new(&mut next).poll(&mut Context::from_waker(&waker)) {
            Poll::Ready(item) => item,
            Poll::Pending => None,
        }
    }
}

/// A slow reader of [`Events`] missed this many events, the oldest it had
/// not read: the ring of
/// [`Options::event_capacity`](crate::Options::event_capacity) was full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[error("the event stream fell behind and skipped {0} events")]
pub struct Lagged(pub u64);

/// Whether `e` is a change the member snapshot shows.
fn in_snapshot(e: &Event) -> bool {
    matches!(
        e,
        Event::Join(_) | Event::Leave(_) | Event::Update(_) | Event::Suspect { .. }
    )
}

impl Stream for Events {
    type Item = Result<Event, Lagged>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(e) = this.snapshot.pop_front() {
            return Poll::Ready(Some(Ok(e)));
        }
        loop {
            let Some(live) = &mut this.live else {
                return Poll::Ready(None);
            };
            let item = match Pin::new(live).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(item) => item,
            };
            match item {
                None => {
                    this.live = None;
                    return Poll::Ready(None);
                }
                Some(Err(BroadcastStreamRecvError::Lagged(n))) => {
                    // The dropped ones were the oldest: those first.
                    let n_usize = usize::try_from(n).unwrap_or(usize::MAX);
                    this.already_shown = this.already_shown.saturating_sub(n_usize);
                    return Poll::Ready(Some(Err(Lagged(n))));
                }
                Some(Ok(e)) => {
                    if this.already_shown > 0 {
                        this.already_shown -= 1;
                        if in_snapshot(&e) {
                            continue;
                        }
                    }
                    return Poll::Ready(Some(Ok(e)));
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.snapshot.len();
        (n, self.live.is_none().then_some(n))
    }
}
