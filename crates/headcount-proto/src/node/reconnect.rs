//! Reconnecting to failed members, as Serf does on top of memberlist, and
//! a little sooner.
//!
//! memberlist never talks to a member again once it is dead and reaped, so
//! a partition that outlasts the suspicion timeout and
//! `gossip_to_the_dead_time` splits the cluster for good: each side holds
//! the other dead and nothing ever crosses. Serf heals that by remembering
//! failed members and joining one of them now and then. headcount does the
//! same in the core, so every driver (and the simulator) gets it. Every
//! `reconnect_interval` a node push/pulls with one failed member when one
//! of three rules says so:
//!
//! - **Serf's rule**: with probability `failed / alive`, a random failed
//!   member. It keeps a mostly healthy cluster from dialling its dead all
//!   the time, but leaves it to chance whether anyone on the healthy side
//!   tries in a given interval (with one failed member among five, no one
//!   does a third of the time).
//! - **The keeper**: each failed member has one keeper, the first alive
//!   member after it in name order (wrapping). Members that agree on who is
//!   alive agree on the keeper, so every failed member is tried by someone
//!   every interval, and for the first ten intervals after it failed at the
//!   fast interval: one dial every few seconds per failed member, cluster
//!   wide. This is what brings back a cut-off Go node, which never
//!   reconnects by itself.
//! - **Cut off**: a node that holds at least as many members unreachable
//!   (suspect, or failed) as reachable (alive, itself included) is probably
//!   the one cut off. It tries every [`Node::reconnect_fast_interval`]
//!   (a tenth of the interval, at least a probe interval), and also its
//!   suspects: a node cut off counts as unhealthy, so Lifeguard stretches
//!   its suspicion timeouts and it may not have declared anyone dead when
//!   the network heals, while the others have already forgotten it and
//!   send it nothing. A push/pull with a suspect carries the accusation to
//!   it (it refutes) and our own entry (it learns we are alive).
//!
//! When a reconnect push/pull succeeds the network is evidently back: the
//! next few ticks come at the fast interval too, so the other failed
//! members are tried soon rather than one per interval.
//!
//! The exchange tells each side that the other believes it dead; both
//! refute, and the next push/pulls and probes carry the rest of the news
//! across. A member stays on the list from its death until it is alive
//! again, leaves, or `reconnect_timeout` passes; at most [`FAILED_MAX`] are
//! kept (the oldest go first), since names come from the network.

use std::net::SocketAddr;

use core::time::Duration;

use rand_core::RngCore;

use super::{Node, TimerKey};
use crate::state::MemberState;
use crate::time::Instant;

/// Most failed members remembered for reconnection.
pub const FAILED_MAX: usize = 1024;

/// For this many reconnect intervals after a member failed, its keeper
/// tries it at the fast interval (see the module documentation).
const KEEPER_FAST_INTERVALS: u32 = 10;

/// Ticks at the fast interval after a reconnect push/pull succeeded, at
/// most (see [`ReconnectState::eager_ticks`]).
const EAGER_TICKS_MAX: u32 = 16;

/// The failed members to reconnect to, and whether the timer that tries
/// them is armed.
#[derive(Debug, Default)]
pub(super) struct ReconnectState {
    /// Oldest first, at most [`FAILED_MAX`].
    failed: Vec<FailedMember>,
    /// When the reconnect timer is due, if it is scheduled.
    due: Option<Instant>,
    /// Ticks still to come at the fast interval because a reconnect
    /// succeeded (the network to the failed members is likely back).
    eager_ticks: u32,
    /// A member to push/pull with again at the next tick: the one a
    /// reconnect just reached. Each side answers a push/pull with its state
    /// from before the merge, so the first exchange carries the old
    /// accusations and the second the refutations they caused.
    again: Option<SocketAddr>,
    /// The follow-up push/pull in flight, which is not followed up itself.
    following_up: Option<SocketAddr>,
    /// Whether the last tick found this node cut off.
    was_cut_off: bool,
    /// When Serf's rule (and the keeper's try at an old failure) is next
    /// due; ticks in between only try recent failures this node keeps.
    next_roll: Option<Instant>,
}

/// A member we declared dead (not one that left).
#[derive(Debug)]
pub(super) struct FailedMember {
    name: String,
    addr: SocketAddr,
    since: Instant,
    /// When an alive message about it last made us try it out of turn.
    disputed: Option<Instant>,
}

/// What one reconnect tick found.
struct Survey {
    /// Alive members, this node included.
    reachable: usize,
    /// Suspect members, plus the failed ones remembered.
    unreachable: usize,
}

impl Node {
    /// How often a node that looks cut off (or just reconnected) tries:
    /// a tenth of `reconnect_interval`, at least one probe interval, at
    /// most the interval itself.
    pub fn reconnect_fast_interval(&self) -> Duration {
        let interval = self.config.reconnect_interval;
        (interval / 10)
            .max(self.config.probe_interval)
            .min(interval)
    }

    /// Arms the reconnect timer to fire by `at`, unless it fires earlier.
    fn arm_reconnect(&mut self, at: Instant) {
        if self.config.reconnect_interval.is_zero() {
            return;
        }
        if self.reconnect.due.is_some_and(|due| due <= at) {
            return;
        }
        self.reconnect.due = Some(at);
        self.timers.schedule(TimerKey::ReconnectTick, at);
    }

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
            disputed: None,
        });
        // Soon: the keeper of a fresh failure tries it at the fast interval.
        self.arm_reconnect(now + self.reconnect_fast_interval());
    }

    /// A member became suspect: if that leaves this node looking cut off,
    /// make sure the reconnect timer comes at the fast interval.
    pub(super) fn note_suspect(&mut self, now: Instant) {
        if self.config.reconnect_interval.is_zero() || self.leaving {
            return;
        }
        let s = self.survey();
        if s.unreachable >= s.reachable {
            self.arm_reconnect(now + self.reconnect_fast_interval());
        }
    }

    /// An alive message about the member at `pos` was ignored. If we
    /// hold that member dead at the same incarnation, someone else believes
    /// it alive: one of us missed a refutation, which will never come now
    /// that the member's news has stopped. Push/pull with it soon; if it is
    /// alive, our state tells it we hold it dead, and it refutes.
    pub(super) fn alive_ignored(&mut self, now: Instant, pos: usize, incarnation: u32) {
        let Some(m) = self.members.at(pos) else {
            return;
        };
        if m.state != MemberState::Dead || m.incarnation != incarnation {
            return;
        }
        let name = m.name.clone();
        if let Some(i) = self
            .reconnect
            .failed
            .iter()
            .position(|f| f.name == name.as_str())
        {
            self.try_soon(now, i);
        }
    }

    /// A ping came from `addr`. If a failed member lives there, it is up,
    /// reachable, and holds us alive while we hold it dead (reaped, maybe):
    /// push/pull with it soon.
    pub(super) fn pinged_by(&mut self, now: Instant, addr: SocketAddr) {
        if let Some(i) = self.reconnect.failed.iter().position(|f| f.addr == addr) {
            self.try_soon(now, i);
        }
    }

    /// Push/pulls with failed member `i` at the next tick, one probe
    /// interval from now, unless it was tried out of turn within the fast
    /// interval.
    fn try_soon(&mut self, now: Instant, i: usize) {
        if self.leaving || self.reconnect.again.is_some() {
            return;
        }
        let fast = self.reconnect_fast_interval();
        let f = &mut self.reconnect.failed[i];
        if f.disputed.is_some_and(|t| now.saturating_since(t) < fast) {
            return;
        }
        f.disputed = Some(now);
        self.reconnect.again = Some(f.addr);
        self.arm_reconnect(now + self.config.probe_interval);
    }

    /// `name` left gracefully: it is not coming back at that address.
    pub(super) fn forget_failed(&mut self, name: &str) {
        self.reconnect.failed.retain(|f| f.name != name);
    }

    /// A reconnect push/pull with `addr` came back with the remote's
    /// state: the network to it works again, so try the other failed
    /// members soon.
    pub(super) fn reconnect_succeeded(&mut self, now: Instant, addr: SocketAddr) {
        tracing::info!("reconnected to {addr}");
        self.stats.reconnect_successes += 1;
        if self.reconnect.following_up == Some(addr) {
            self.reconnect.following_up = None;
        } else {
            self.reconnect.again = Some(addr);
        }
        let survey = self.survey();
        self.reconnect.eager_ticks = (2 * survey.unreachable as u32).min(EAGER_TICKS_MAX);
        let soon = if self.reconnect.again.is_some() {
            self.config.probe_interval
        } else {
            self.reconnect_fast_interval()
        };
        self.arm_reconnect(now + soon);
    }

    /// Members remembered for reconnection.
    pub fn failed_members(&self) -> impl Iterator<Item = (&str, SocketAddr)> {
        self.reconnect
            .failed
            .iter()
            .map(|f| (f.name.as_str(), f.addr))
    }

    fn survey(&self) -> Survey {
        let (mut reachable, mut suspect) = (0, 0);
        for m in self.members.iter() {
            match m.state {
                MemberState::Alive => reachable += 1,
                MemberState::Suspect => suspect += 1,
                MemberState::Dead | MemberState::Left => {}
            }
        }
        Survey {
            reachable,
            unreachable: suspect + self.reconnect.failed.len(),
        }
    }

    /// Whether this node is the keeper of failed member `name`: the first
    /// alive member after it in name order, wrapping (`alive` sorted).
    fn keeps(&self, alive: &[&str], name: &str) -> bool {
        let after = alive.partition_point(|a| *a <= name);
        let keeper = alive.get(after).or(alive.first());
        keeper.is_some_and(|k| *k == self.name.as_str())
    }

    pub(super) fn reconnect_tick(&mut self, now: Instant) {
        self.reconnect.due = None;
        let timeout = self.config.reconnect_timeout;
        let members = &self.members;
        self.reconnect.failed.retain(|f| {
            now.saturating_since(f.since) < timeout
                && members
                    .get(&f.name)
                    // Reaped members stay; ones that came back or left go.
                    .is_none_or(|m| m.state == MemberState::Dead)
        });
        if self.leaving {
            return;
        }
        let survey = self.survey();
        let cut_off = survey.unreachable > 0 && survey.unreachable >= survey.reachable;
        let again = self.reconnect.again.take();
        if self.reconnect.was_cut_off && !cut_off {
            // No longer cut off: the network is back, or partly. The members
            // on the other side may have forgotten us and will not refute
            // our suspicions of them; push/pull with them.
            self.reconnect.eager_ticks = (2 * survey.unreachable as u32).min(EAGER_TICKS_MAX);
        }
        self.reconnect.was_cut_off = cut_off;
        if self.reconnect.failed.is_empty() && survey.unreachable == 0 && again.is_none() {
            self.reconnect.eager_ticks = 0;
            return;
        }
        let eager = self.reconnect.eager_ticks > 0;
        self.reconnect.eager_ticks = self.reconnect.eager_ticks.saturating_sub(1);
        if self.reconnect.failed.is_empty() && !cut_off && !eager && again.is_none() {
            // Only suspects, and not cut off: probes and gossip handle them.
            return;
        }
        let fast = self.reconnect_fast_interval();
        let interval = self.config.reconnect_interval;
        let (target, next) = if let Some(addr) = again {
            self.reconnect.following_up = Some(addr);
            let next = if cut_off || eager { fast } else { interval };
            (Some(("again".to_string(), addr)), now + next)
        } else if cut_off || eager {
            // Every failed member and every suspect.
            let suspects: Vec<(String, SocketAddr)> = self
                .members
                .iter()
                .filter(|m| m.state == MemberState::Suspect)
                .map(|m| (m.name.to_string(), m.addr()))
                .collect();
            let failed = self.reconnect.failed.len();
            let n = failed + suspects.len();
            let target = if n == 0 {
                None
            } else {
                let pick = (self.rng.next_u64() % n as u64) as usize;
                match self.reconnect.failed.get(pick) {
                    Some(f) => Some((f.name.clone(), f.addr)),
                    None => suspects.into_iter().nth(pick - failed),
                }
            };
            (target, now + fast)
        } else {
            let mut alive: Vec<&str> = self
                .members
                .iter()
                .filter(|m| m.state == MemberState::Alive)
                .map(|m| m.name.as_str())
                .collect();
            alive.sort_unstable();
            let recent = interval * KEEPER_FAST_INTERVALS;
            let kept: Vec<usize> = (0..self.reconnect.failed.len())
                .filter(|&i| self.keeps(&alive, &self.reconnect.failed[i].name))
                .collect();
            let kept_recent: Vec<usize> = kept
                .iter()
                .copied()
                .filter(|&i| now.saturating_since(self.reconnect.failed[i].since) < recent)
                .collect();
            let failed = self.reconnect.failed.len() as u64;
            let alive = self.num_members().max(1) as u64;
            let roll_due = self.reconnect.next_roll.is_none_or(|t| now >= t);
            let target = if roll_due {
                self.reconnect.next_roll = Some(now + interval);
                if !kept.is_empty() {
                    let pick = kept[(self.rng.next_u64() % kept.len() as u64) as usize];
                    let f = &self.reconnect.failed[pick];
                    Some((f.name.clone(), f.addr))
                } else if failed >= alive || self.rng.next_u64() % alive < failed {
                    // Serf's rule: with probability min(1, failed / alive).
                    let pick = (self.rng.next_u64() % failed) as usize;
                    let f = &self.reconnect.failed[pick];
                    Some((f.name.clone(), f.addr))
                } else {
                    None
                }
            } else if !kept_recent.is_empty() {
                let pick = kept_recent[(self.rng.next_u64() % kept_recent.len() as u64) as usize];
                let f = &self.reconnect.failed[pick];
                Some((f.name.clone(), f.addr))
            } else {
                None
            };
            let roll = self.reconnect.next_roll.unwrap_or(now + interval);
            let next = if kept_recent.is_empty() {
                roll
            } else {
                roll.min(now + fast)
            };
            (target, next)
        };
        self.arm_reconnect(next);
        if let Some((name, addr)) = target {
            tracing::info!("attempting reconnect to {name} {addr}");
            self.stats.reconnect_attempts += 1;
            self.metrics.reconnect_attempt();
            self.start_push_pull(now, addr, true, None);
        }
    }
}
