//! Membership state transitions: Go's `aliveNode`, `suspectNode` and
//! `deadNode` rules, suspicion timers, refutation, and the local node's
//! own changes (`leave`, `update_meta`).
//!
//! Every message that says something about a member's state (gossip,
//! push/pull entries, our own announcements) ends up here; these rules
//! decide whether it is news, and only news is applied, gossiped on and
//! reported as an event. Accusations against ourselves are refuted with a
//! higher incarnation.

use std::net::SocketAddr;

use rand_core::RngCore;

use super::{Node, TimerKey};
use crate::config::{ConfigError, META_MAX_SIZE};
use crate::event::{BroadcastId, Event};
use crate::name::Name;
use crate::state::{socket_addr_from_wire, Member, MemberInfo, MemberState, RawAddr};
use crate::suspicion::{suspicion_k, suspicion_timeout, Suspicion};
use crate::time::Instant;
use crate::wire::{
    Alive, AliveRef, Dead, Message, Suspect, Vsn, VSN_PROTOCOL_MAX, VSN_PROTOCOL_MIN,
};

/// How the address of an alive compares with the one we hold for its node.
enum AddressCheck {
    /// The same address.
    Same,
    /// A different one, but the name may move there: its holder left, or
    /// has been dead longer than `dead_node_reclaim_time`.
    Reclaim,
    /// A different one, and the name is taken.
    Conflict,
}

/// What the table held for a node before an alive about it is applied.
struct Prior {
    state: MemberState,
    incarnation: u32,
    vsn: Vsn,
    /// The alive carries other metadata.
    meta_differs: bool,
    /// The table's name, shared with the broadcast key.
    key: Name,
}

impl Node {
    /// Leaves the cluster gracefully: gossips that we left. Returns the
    /// broadcast to wait for
    /// ([`Completion::BroadcastFinished`](crate::Completion::BroadcastFinished)),
    /// or `None` when there is nobody to tell or we already left.
    pub fn leave(&mut self, now: Instant) -> Option<BroadcastId> {
        if self.leaving {
            return None;
        }
        self.leaving = true;
        let token = BroadcastId(self.next_id());
        let d = Dead {
            incarnation: self.incarnation,
            node: crate::name::Name::new(&self.name),
            from: crate::name::Name::new(&self.name),
        };
        self.dead_node(now, d, Some(token));
        self.any_alive().then_some(token)
    }

    /// Changes our metadata and gossips it with a new incarnation. Returns
    /// the broadcast to wait for, or `None` when there is nobody to tell.
    pub fn update_meta(
        &mut self,
        now: Instant,
        meta: Vec<u8>,
    ) -> Result<Option<BroadcastId>, ConfigError> {
        if meta.len() > META_MAX_SIZE {
            return Err(ConfigError::MetaTooLarge(meta.len()));
        }
        let token = BroadcastId(self.next_id());
        let inc = self.next_incarnation();
        let alive = self.local_alive(inc, meta);
        self.alive_node(now, alive, Some(token), true);
        Ok(self.any_alive().then_some(token))
    }

    /// Whether anyone but us is alive or suspect: someone to tell.
    fn any_alive(&self) -> bool {
        self.members
            .iter()
            .any(|m| m.name != self.name && !m.state.is_dead_or_left())
    }

    /// Go's `aliveNode`: `a` says a node is alive. `notify` is reported
    /// when the resulting broadcast is done; `bootstrap` is set for our own
    /// announcements (start-up, `update_meta`), which are applied rather
    /// than refuted.
    pub(super) fn alive_node(
        &mut self,
        now: Instant,
        mut a: Alive,
        notify: Option<BroadcastId>,
        bootstrap: bool,
    ) {
        let is_local = a.node == self.name;
        if self.leaving && is_local {
            return;
        }
        let Some((addr, raw_addr)) = self.validate_alive(&a) else {
            return;
        };
        if !is_local && !self.admit_alive(&mut a, addr) {
            return;
        }
        let pos = self.alive_slot(now, &a, raw_addr);
        let reclaim = match self.address_check(now, pos, raw_addr, a.port) {
            AddressCheck::Same => false,
            AddressCheck::Reclaim => {
                if let Some(m) = self.members.at(pos) {
                    tracing::info!(
                        "updating address for left or failed node {} from {} to {addr}",
                        a.node,
                        m.addr()
                    );
                }
                true
            }
            AddressCheck::Conflict => {
                self.report_conflict(pos, a, addr);
                return;
            }
        };
        let Some(prior) = self.alive_news(pos, &a, is_local, reclaim) else {
            if !is_local {
                self.alive_ignored(now, pos, a.incarnation);
            }
            return;
        };
        self.cancel_suspicion(&a.node);
        if is_local && !bootstrap {
            // An alive about us from the network: refute it unless it is
            // exactly what we hold (our own gossip coming back).
            if a.incarnation != prior.incarnation || prior.meta_differs || a.vsn != prior.vsn {
                tracing::warn!("refuting an alive message for '{}' ({addr})", a.node);
                self.refute(a.incarnation);
            }
            return;
        }
        self.apply_alive(now, pos, a, raw_addr, prior, notify);
    }

    /// Whether `a`, still in its packet, is a repeat that
    /// [`Node::alive_node`] would ignore without a trace: about another
    /// node we hold alive or suspect at the same address, with an
    /// incarnation not above ours, and no `allow_alive` hook to show it
    /// to. A join storm sends every node each alive a dozen times or
    /// more; dropping the repeats here saves copying their names,
    /// addresses and metadata. Anything else takes the full path.
    pub(super) fn alive_is_repeat(&self, a: &AliveRef<'_>) -> bool {
        let (pmin, pmax) = (a.vsn[VSN_PROTOCOL_MIN], a.vsn[VSN_PROTOCOL_MAX]);
        if self.hooks.vets_alives() || a.node == self.name || pmin == 0 || pmin > pmax {
            return false;
        }
        let Some(m) = self
            .members
            .position(a.node)
            .and_then(|i| self.members.at(i))
        else {
            return false;
        };
        matches!(m.state, MemberState::Alive | MemberState::Suspect)
            && a.incarnation <= m.incarnation
            && m.port == a.port
            && RawAddr::new(a.addr) == Some(m.raw_addr)
    }

    /// The address an alive announces, if its versions and address are
    /// well formed (else it is counted as ignored).
    fn validate_alive(&mut self, a: &Alive) -> Option<(SocketAddr, RawAddr)> {
        let (pmin, pmax) = (a.vsn[VSN_PROTOCOL_MIN], a.vsn[VSN_PROTOCOL_MAX]);
        if pmin == 0 || pmax == 0 || pmin > pmax {
            self.stats.messages_ignored += 1;
            return None;
        }
        let parsed = socket_addr_from_wire(&a.addr, a.port).zip(RawAddr::new(&a.addr));
        if parsed.is_none() {
            self.stats.messages_ignored += 1;
        }
        parsed
    }

    /// Whether an alive about another node may be applied: its address
    /// must be in `cidrs_allowed` and the `allow_alive` hook must agree.
    fn admit_alive(&mut self, a: &mut Alive, addr: SocketAddr) -> bool {
        // Go `IPAllowed` on new nodes and address changes. A known node
        // keeps an address that passed this check (the list is fixed), so
        // checking every alive is the same.
        if !self.config.ip_allowed(addr.ip()) {
            self.stats.alives_denied += 1;
            return false;
        }
        // The hook sees every alive, as in Go. Lend it the name and
        // metadata rather than copying them.
        let info = MemberInfo {
            name: core::mem::take(&mut a.node),
            addr,
            meta: core::mem::take(&mut a.meta),
            state: MemberState::Alive,
            incarnation: a.incarnation,
            vsn: a.vsn,
        };
        let allowed = self.hooks.allow_alive(&info).is_ok();
        a.node = info.name;
        a.meta = info.meta;
        if !allowed {
            self.stats.messages_ignored += 1;
        }
        allowed
    }

    /// The table position of `a`'s node, inserting it (dead, incarnation
    /// 0, at a random position, as Go does) when it is new. The random
    /// draw happens only for a new node in a non-empty table.
    fn alive_slot(&mut self, now: Instant, a: &Alive, raw_addr: RawAddr) -> usize {
        if let Some(i) = self.members.position(&a.node) {
            return i;
        }
        let n = self.members.len();
        let offset = if n == 0 {
            0
        } else {
            (self.rng.next_u64() % n as u64) as usize
        };
        let member = Member {
            name: Name::new(&a.node),
            raw_addr,
            port: a.port,
            meta: a.meta.as_slice().into(),
            incarnation: 0,
            state: MemberState::Dead,
            state_change: now,
            vsn: a.vsn,
        };
        self.members.insert_at(member, offset.min(n));
        self.membership_version += 1;
        offset.min(n)
    }

    /// How the address of an alive compares with the entry at `pos`.
    fn address_check(
        &self,
        now: Instant,
        pos: usize,
        raw_addr: RawAddr,
        port: u16,
    ) -> AddressCheck {
        let m = self
            .members
            .at(pos)
            .expect("alive_slot returns a position in the table");
        if m.raw_addr == raw_addr && m.port == port {
            return AddressCheck::Same;
        }
        let reclaim = &self.config.dead_node_reclaim_time;
        let can_reclaim = !reclaim.is_zero() && now - m.state_change > *reclaim;
        if m.state == MemberState::Left || (m.state == MemberState::Dead && can_reclaim) {
            AddressCheck::Reclaim
        } else {
            AddressCheck::Conflict
        }
    }

    /// Two nodes claim one name from different addresses: tell the
    /// application, change nothing.
    fn report_conflict(&mut self, pos: usize, a: Alive, addr: SocketAddr) {
        let existing = self
            .members
            .at(pos)
            .expect("alive_slot returns a position in the table")
            .info();
        let other = MemberInfo {
            name: a.node,
            addr,
            meta: a.meta,
            state: MemberState::Alive,
            incarnation: a.incarnation,
            vsn: a.vsn,
        };
        // Go logs this at ERR: two nodes share a name.
        tracing::error!(
            "conflicting address for {}: mine {}, theirs {addr}, old state {}",
            other.name,
            existing.addr,
            existing.state
        );
        self.emit(Event::Conflict { existing, other });
    }

    /// What the entry at `pos` held, if `a` is news for it: a higher
    /// incarnation (or a reclaimed name) for another node; for us, any
    /// incarnation not below ours.
    fn alive_news(&self, pos: usize, a: &Alive, is_local: bool, reclaim: bool) -> Option<Prior> {
        let m = self
            .members
            .at(pos)
            .expect("alive_slot returns a position in the table");
        if a.incarnation <= m.incarnation && !is_local && !reclaim {
            return None;
        }
        if a.incarnation < m.incarnation && is_local {
            return None;
        }
        Some(Prior {
            state: m.state,
            incarnation: m.incarnation,
            vsn: m.vsn,
            meta_differs: *m.meta != *a.meta,
            // Share the table's name with the broadcast key.
            key: m.name.clone(),
        })
    }

    /// Gossips `a`, writes it into the entry at `pos`, and reports a join
    /// (the node was dead or left) or an update (its metadata changed).
    fn apply_alive(
        &mut self,
        now: Instant,
        pos: usize,
        a: Alive,
        raw_addr: RawAddr,
        prior: Prior,
        notify: Option<BroadcastId>,
    ) {
        let (incarnation, vsn, port) = (a.incarnation, a.vsn, a.port);
        let meta: Option<Box<[u8]>> = prior.meta_differs.then(|| a.meta.as_slice().into());
        self.queue_broadcast(prior.key, &Message::Alive(a), notify);
        if prior.state.is_dead_or_left() {
            // The gossip path looks at this (`settle_after_growth`).
            self.push_pull_pacing.members_joined += 1;
        }
        let m = self
            .members
            .at_mut(pos)
            .expect("alive_slot returns a position in the table");
        m.vsn = vsn;
        m.incarnation = incarnation;
        if let Some(meta) = meta {
            m.meta = meta;
        }
        m.raw_addr = raw_addr;
        m.port = port;
        if m.state != MemberState::Alive {
            m.state = MemberState::Alive;
            m.state_change = now;
        }
        self.membership_version += 1;
        // Go counts an applied alive here, after the state update.
        self.metrics.msg_alive();
        if prior.state.is_dead_or_left() {
            let info = m.info();
            tracing::info!("member joined: {} {}", info.name, info.addr);
            self.emit(Event::Join(info));
        } else if prior.meta_differs {
            let info = m.info();
            tracing::debug!("member updated: {} {}", info.name, info.addr);
            self.emit(Event::Update(info));
        }
    }

    pub(super) fn suspect_node(&mut self, now: Instant, s: Suspect) {
        let Some(m) = self.members.get(&s.node) else {
            return;
        };
        if s.incarnation < m.incarnation {
            if s.node == self.name {
                self.reassert_alive();
            }
            return;
        }
        if let Some(susp) = self.suspicions.get_mut(s.node.as_str()) {
            if susp.confirm(&s.from) {
                let deadline = susp.deadline();
                self.timers
                    .schedule(TimerKey::Suspicion(Name::new(&s.node)), deadline);
                self.queue_broadcast(Name::new(&s.node), &Message::Suspect(s), None);
            }
            return;
        }
        if m.state != MemberState::Alive {
            return;
        }
        if s.node == self.name {
            tracing::warn!("refuting a suspect message (from: {})", s.from);
            self.refute(s.incarnation);
            return;
        }
        self.queue_broadcast(m.name.clone(), &Message::Suspect(s.clone()), None);
        self.metrics.msg_suspect();

        let n = self.members.len();
        let m = self.members.get_mut(&s.node).expect("present");
        m.incarnation = s.incarnation;
        m.state = MemberState::Suspect;
        m.state_change = now;
        let info = m.info();
        self.membership_version += 1;

        let mult = self.config.suspicion_mult;
        let k = suspicion_k(mult, n);
        let min = suspicion_timeout(mult, n, self.config.probe_interval);
        let max = min * self.config.suspicion_max_timeout_mult;
        let susp = Suspicion::new(&s.from, k, min, max, now);
        self.timers
            .schedule(TimerKey::Suspicion(Name::new(&s.node)), susp.deadline());
        self.suspicions.insert(Name::new(&s.node), susp);
        tracing::debug!("suspecting {} (from: {})", info.name, s.from);
        self.emit(Event::Suspect {
            member: info,
            from: s.from.to_string(),
        });
        self.note_suspect(now);
    }

    pub(super) fn suspicion_expired(&mut self, now: Instant, name: Name) {
        let Some(susp) = self.suspicions.remove(&name) else {
            return;
        };
        if self.config.lifeguard_health_scaled_suspicion {
            // A node that knows itself to be unhealthy gives the suspect's
            // refutation longer to get through its own backlog.
            let deadline = susp.start() + self.awareness.scale_timeout(susp.timeout());
            if now < deadline {
                self.timers
                    .schedule(TimerKey::Suspicion(name.clone()), deadline);
                self.suspicions.insert(name, susp);
                return;
            }
        }
        let Some(m) = self.members.get(&name) else {
            return;
        };
        if m.state != MemberState::Suspect {
            return;
        }
        if susp.k() > 0 && susp.confirmations() < susp.k() {
            self.metrics.degraded_timeout();
        }
        tracing::info!(
            "marking {name} as failed, suspect timeout reached ({} peer confirmations)",
            susp.confirmations()
        );
        let d = Dead {
            incarnation: m.incarnation,
            node: name,
            from: crate::name::Name::new(&self.name),
        };
        self.dead_node(now, d, None);
    }

    pub(super) fn dead_node(&mut self, now: Instant, d: Dead, notify: Option<BroadcastId>) {
        let Some(m) = self.members.get(&d.node) else {
            return;
        };
        if d.incarnation < m.incarnation {
            if d.node == self.name && !self.leaving {
                self.reassert_alive();
            }
            return;
        }
        self.cancel_suspicion(&d.node);
        let m = self.members.get(&d.node).expect("present");
        if m.state.is_dead_or_left() {
            return;
        }
        if d.node == self.name && !self.leaving {
            tracing::warn!("refuting a dead message (from: {})", d.from);
            self.refute(d.incarnation);
            return;
        }
        self.queue_broadcast(Name::new(&d.node), &Message::Dead(d.clone()), notify);
        self.metrics.msg_dead();
        let m = self.members.get_mut(&d.node).expect("present");
        m.incarnation = d.incarnation;
        m.state = if d.node == d.from {
            MemberState::Left
        } else {
            MemberState::Dead
        };
        m.state_change = now;
        let info = m.info();
        self.membership_version += 1;
        if info.state == MemberState::Dead {
            // When we declared it ourselves, "marking ... as failed" said so.
            tracing::info!(
                "member failed: {} {} (from: {})",
                info.name,
                info.addr,
                d.from
            );
            self.note_failed(now, &info.name, info.addr);
        } else {
            tracing::info!("member left: {} {}", info.name, info.addr);
            self.forget_failed(&info.name);
        }
        self.emit(Event::Leave(info));
    }

    /// Someone accused us at `accused`: outbid it and say we are alive.
    fn refute(&mut self, accused: u32) {
        let mut inc = self.next_incarnation();
        if accused >= inc {
            // Saturate instead of wrapping (a Go defect): at u32::MAX we can
            // no longer outbid, but we never fall back to 0.
            inc = accused.saturating_add(1);
            self.incarnation = inc;
        }
        self.apply_awareness(1);
        let me = self
            .members
            .get_mut(&self.name)
            .expect("local node present");
        me.incarnation = inc;
        let meta = me.meta.to_vec();
        self.membership_version += 1;
        let alive = self.local_alive(inc, meta);
        self.queue_broadcast(Name::new(&self.name), &Message::Alive(alive), None);
    }

    /// Someone still accuses us at an incarnation we already refuted: our
    /// refutation missed them (say, a partition ate it). Go ignores such
    /// stale accusations, and the accuser then declares us dead when its
    /// timer runs out, a split only a push/pull repairs. We gossip our
    /// current alive again instead (no new incarnation, nothing new on the
    /// wire), unless one is already queued.
    fn reassert_alive(&mut self) {
        if self.leaving || self.broadcasts.contains_key(&self.name) {
            return;
        }
        let me = self.members.get(&self.name).expect("local node present");
        let alive = self.local_alive(me.incarnation, me.meta.to_vec());
        self.queue_broadcast(Name::new(&self.name), &Message::Alive(alive), None);
    }

    fn cancel_suspicion(&mut self, name: &str) {
        if self.suspicions.remove(name).is_some() {
            self.timers.cancel(&TimerKey::Suspicion(Name::new(name)));
        }
    }
}
