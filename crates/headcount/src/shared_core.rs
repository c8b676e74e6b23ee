//! The protocol core shared by the driver and the API handles, and the
//! lock discipline around it.
//!
//! The driver locks the core for each short synchronous step
//! ([`lock_for_driver`]) and marks the thread as inside that step, so that
//! an API handle reading the same core from a delegate the step calls
//! ([`lock_for_read`]) panics instead of deadlocking. The clock is in its
//! own module: it is a plain value each side keeps, not shared state, and
//! has nothing to do with this lock.

use std::cell::Cell;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use headcount_proto::node::Node;

/// The protocol core, shared by the driver and the API handles.
pub(crate) type Core = Arc<Mutex<Node>>;

thread_local! {
    /// The core (its address) whose lock the driver on this thread holds,
    /// 0 for none: set by [`CoreGuard`] for the length of one synchronous
    /// step.
    static DRIVER_LOCKED: Cell<usize> = const { Cell::new(0) };
}

/// The address of a core, to compare with [`DRIVER_LOCKED`].
fn core_id(core: &Mutex<Node>) -> usize {
    core as *const Mutex<Node> as usize
}

/// The driver's lock on the core, which marks the thread as inside a
/// protocol step of that core (see [`lock_for_read`]).
pub(crate) struct CoreGuard<'a> {
    guard: MutexGuard<'a, Node>,
    /// What [`DRIVER_LOCKED`] was before.
    was: usize,
}

impl std::ops::Deref for CoreGuard<'_> {
    type Target = Node;
    fn deref(&self) -> &Node {
        &self.guard
    }
}

impl std::ops::DerefMut for CoreGuard<'_> {
    fn deref_mut(&mut self) -> &mut Node {
        &mut self.guard
    }
}

impl Drop for CoreGuard<'_> {
    fn drop(&mut self) {
        DRIVER_LOCKED.with(|l| l.set(self.was));
    }
}

/// Locks the core for the driver. A poisoned lock means an earlier step
/// panicked, which ended the driver task; whoever holds the core now only
/// reads it, so the poison is ignored rather than turned into a second
/// panic.
pub(crate) fn lock_for_driver(core: &Mutex<Node>) -> CoreGuard<'_> {
    let guard = core.lock().unwrap_or_else(PoisonError::into_inner);
    let was = DRIVER_LOCKED.with(|l| l.replace(core_id(core)));
    CoreGuard { guard, was }
}

/// Locks the core for an API handle.
///
/// A poisoned lock (the driver panicked in the middle of a step, which
/// ended it) is taken over instead of panicking: the table is still memory
/// safe and at worst one step stale or half-applied, and a read of a dead
/// node's members should not bring down the caller.
///
/// Panics, instead of deadlocking, when called on a thread that is inside
/// one of this core's driver steps: that is, from a delegate the core runs
/// under the lock (broadcast, state, merge and alive delegates, ack
/// payloads). Reading another node from there is fine. A broadcast
/// delegate is handed the cluster size it needs instead
/// (`BroadcastContext::num_nodes`).
pub(crate) fn lock_for_read(core: &Mutex<Node>) -> MutexGuard<'_, Node> {
    if DRIVER_LOCKED.with(Cell::get) == core_id(core) {
        panic!(
            "a Memberlist was read from inside a delegate the protocol core calls while it \
             holds its state (broadcast, state, merge, alive or ack payload): this would \
             deadlock; read it before or after, or use the arguments the delegate is given"
        );
    }
    core.lock().unwrap_or_else(PoisonError::into_inner)
}
