//! Reconnecting to failed members, as Serf does on top of memberlist.
//!
//! memberlist never talks to a member again once it is dead and reaped, so
//! a partition that outlasts the suspicion timeout and
//! `gossip_to_the_dead_time` splits the cluster for good: each side holds
//! the other dead and nothing ever crosses. Serf heals that by remembering
//! failed members and joining one of them now and then. headcount does the
//! same in the core, so every driver (and the simulator) gets it: every
//! `reconnect_interval`, with probability `failed / alive` (Serf's rule,
//! which keeps a mostly healthy cluster from dialling its dead all the
//! time while a node cut off from everyone tries every time), it push/pulls
//! with one failed member picked at random. The exchange tells each side
//! that the other believes it dead; both refute, and the next push/pulls
//! carry the rest of the news across.
//!
//! A member stays on the list from its death until it is alive again,
//! leaves, or `reconnect_timeout` passes; at most [`FAILED_MAX`] are kept
//! (the oldest go first), since names come from the network.

use std::net::SocketAddr;

use rand_core::RngCore;

use super::{Node, TimerKey};
use crate::state::MemberState;
use crate::time::Instant;

/// Most failed members remembered for reconnection.
pub const FAILED_MAX: usize = 1024;

/// The failed members to reconnect to, and whether the timer that tries
/// them is armed.
#[derive(Debug, Default)]
pub(super) struct ReconnectState {
    /// Oldest first, at most [`FAILED_MAX`].
    failed: Vec<FailedMember>,
    /// Whether the reconnect timer is scheduled.
    armed: bool,
}

/// A member we declared dead (not one that left).
#[derive(Debug)]
pub(super) struct FailedMember {
    name: String,
    addr: SocketAddr,
    since: Instant,
}

impl Node {
    /// `name` at `addr` was just declared dead: remember it, and arm the
    /// reconnect timer if it is not running.
    pub(super) fn note_failed(&mut self, now: Instant, name: &str, addr: SocketAddr) {
        if self.config.reconnect_interval.is_zero() || name == self.name {
            return;
        }
        self.reconnect.failed.retain(|f| f.name != name);
        if self.reconnect.failed.len() >= FAILED_MAX {
            self.reconnect.failed.remove(0);
        }
        self.reconnect.failed.push(FailedMember {
            name: name.to_string(),
            addr,
            since: now,
        });
        if !self.reconnect.armed {
            self.reconnect.armed = true;
            self.timers.schedule(
                TimerKey::ReconnectTick,
                now + self.config.reconnect_interval,
            );
        }
    }

    /// `name` left gracefully: it is not coming back at that address.
    pub(super) fn forget_failed(&mut self, name: &str) {
        self.reconnect.failed.retain(|f| f.name != name);
    }

    /// Members remembered for reconnection.
    pub fn failed_members(&self) -> impl Iterator<Item = (&str, SocketAddr)> {
        self.reconnect
            .failed
            .iter()
            .map(|f| (f.name.as_str(), f.addr))
    }

    pub(super) fn reconnect_tick(&mut self, now: Instant) {
        let timeout = self.config.reconnect_timeout;
        let members = &self.members;
        self.reconnect.failed.retain(|f| {
            now.saturating_since(f.since) < timeout
                && members
                    .get(&f.name)
                    // Reaped members stay; ones that came back or left go.
                    .is_none_or(|m| m.state == MemberState::Dead)
        });
        if self.reconnect.failed.is_empty() || self.leaving {
            self.reconnect.armed = false;
            return;
        }
        self.timers.schedule(
            TimerKey::ReconnectTick,
            now + self.config.reconnect_interval,
        );
        let failed = self.reconnect.failed.len() as u64;
        let alive = self.num_members().max(1) as u64;
        // Attempt with probability min(1, failed / alive).
        if failed < alive && self.rng.next_u64() % alive >= failed {
            return;
        }
        let pick = (self.rng.next_u64() % failed) as usize;
        let addr = self.reconnect.failed[pick].addr;
        tracing::info!(
            "attempting reconnect to {} {addr}",
            self.reconnect.failed[pick].name
        );
        self.stats.reconnect_attempts += 1;
        self.metrics.reconnect_attempt();
        self.start_push_pull(now, addr, true, None);
    }
}
