//! Failure detection: SWIM probe rounds with Lifeguard's additions.
//!
//! Every probe interval the node pings the next member of its (shuffled)
//! round; when no ack comes within `probe_timeout` it asks
//! `indirect_checks` others to ping it too (with nacks, so a silent helper
//! counts against our own health rather than the target's) and tries a
//! TCP ping; when the probe interval ends without any ack the member is
//! suspected. Acks also answer relayed indirect pings and the
//! application's own pings, so every ack handler lives here.

use std::net::SocketAddr;

use super::select::shuffle;
use super::{encode, Node, PendingStream, TimerKey};
use crate::event::{Completion, Event, PingId, StreamFailure};
use crate::state::{socket_addr_from_wire, MemberState};
use crate::time::Instant;
use crate::wire::{
    self, AckResp, IndirectPingReq, Message, NackResp, Ping, StreamMessage, Suspect,
};

/// Where the probe rounds stand. One probe is in flight at a time; a tick
/// that finds one still running is remembered and starts the next probe
/// as soon as it ends.
#[derive(Debug, Default)]
pub(super) struct ProbeState {
    /// Next position in the member table's probe order.
    index: usize,
    /// The probe waiting for its ack, if any.
    in_flight: Option<ProbeInFlight>,
    /// A probe tick fired while a probe was in flight.
    tick_pending: bool,
}

impl ProbeState {
    /// Whether the probe in flight is the one with sequence number `seq`.
    fn awaits(&self, seq: u32) -> bool {
        self.in_flight.as_ref().is_some_and(|p| p.seq == seq)
    }
}

/// The probe in flight: whom we probe, and what came back so far.
#[derive(Debug)]
struct ProbeInFlight {
    seq: u32,
    target: String,
    incarnation: u32,
    sent: Instant,
    expected_nacks: u32,
    nacks: u32,
}

#[derive(Debug)]
pub(super) enum AckHandler {
    /// Our own probe.
    Probe,
    /// An indirect ping we relay for someone else.
    Relay {
        origin: SocketAddr,
        origin_seq: u32,
        nack: bool,
    },
    /// A ping the application asked for.
    UserPing { id: PingId, sent: Instant },
}

impl Node {
    /// The probe timer fired (at `at`, handled at `now`): re-arm it and
    /// probe the next member, or note the tick if a probe is in flight.
    pub(super) fn probe_tick(&mut self, now: Instant, at: Instant) {
        let next = at + self.config.probe_interval;
        // Like Go's ticker: if we fell behind, skip missed ticks.
        let next = if next <= now {
            now + self.config.probe_interval
        } else {
            next
        };
        self.timers.schedule(TimerKey::ProbeTick, next);
        if self.probing.in_flight.is_some() {
            self.probing.tick_pending = true;
        } else {
            self.probe(now);
        }
    }

    /// Pings `addr` (expecting the node called `name`, or anyone if empty)
    /// and reports the round-trip time with [`Completion::PingResult`] within
    /// `probe_timeout`.
    pub fn ping(&mut self, now: Instant, name: &str, addr: SocketAddr) -> PingId {
        let id = PingId(self.next_id());
        let seq = self.next_seq();
        let ping = self.make_ping(seq, name);
        self.acks
            .insert(seq, AckHandler::UserPing { id, sent: now });
        self.timers
            .schedule(TimerKey::AckDeadline(seq), now + self.config.probe_timeout);
        self.send_msg(addr, &Message::Ping(ping));
        id
    }

    fn probe(&mut self, now: Instant) {
        let mut checked = 0;
        loop {
            if checked >= self.members.len() {
                return;
            }
            if self.probing.index >= self.members.len() {
                self.reset_members(now);
                self.probing.index = 0;
                checked += 1;
                continue;
            }
            let m = self.members.at(self.probing.index).expect("index checked");
            self.probing.index += 1;
            if m.name == self.name || m.state.is_dead_or_left() {
                checked += 1;
                continue;
            }
            let target = m.name.clone();
            self.probe_node(now, &target);
            return;
        }
    }

    fn reset_members(&mut self, now: Instant) {
        let mut rng = self.rng.clone();
        let reaped = self.members.reap_and_shuffle(
            now,
            self.config.gossip_to_the_dead_time,
            &self.name,
            |s| shuffle(&mut rng, s),
        );
        self.rng = rng;
        for m in reaped {
            self.suspicions.remove(m.name.as_str());
            self.timers.cancel(&TimerKey::Suspicion(m.name.clone()));
            self.membership_version += 1;
        }
    }

    fn probe_node(&mut self, now: Instant, target: &str) {
        let Some(m) = self.members.get(target) else {
            return;
        };
        let (addr, state, incarnation) = (m.addr(), m.state, m.incarnation);
        self.stats.probes += 1;
        let interval = self.awareness.scale_timeout(self.config.probe_interval);
        if interval > self.config.probe_interval {
            self.metrics.degraded_probe();
        }
        let seq = self.next_seq();
        self.send_probe_ping(addr, seq, target, state, incarnation);
        self.probing.in_flight = Some(ProbeInFlight {
            seq,
            target: target.to_string(),
            incarnation,
            sent: now,
            expected_nacks: 0,
            nacks: 0,
        });
        self.acks.insert(seq, AckHandler::Probe);
        self.timers
            .schedule(TimerKey::ProbeTimeout(seq), now + self.config.probe_timeout);
        self.timers
            .schedule(TimerKey::AckDeadline(seq), now + interval);
    }

    /// Sends the probe's ping with sequence number `seq` to `target` at
    /// `addr`; to a suspect (Lifeguard) with the accusation beside it, so
    /// it can refute at once.
    fn send_probe_ping(
        &mut self,
        addr: SocketAddr,
        seq: u32,
        target: &str,
        state: MemberState,
        incarnation: u32,
    ) {
        let ping = self.make_ping(seq, target);
        if state == MemberState::Alive || !self.config.lifeguard_suspect_piggyback {
            self.send_msg(addr, &Message::Ping(ping));
        } else {
            let suspect = Suspect {
                incarnation,
                node: target.to_string().into(),
                from: crate::name::Name::new(&self.name),
            };
            let parts = [
                encode(&Message::Ping(ping)),
                encode(&Message::Suspect(suspect)),
            ];
            for compound in wire::encode_compound(&parts).unwrap_or_default() {
                self.send_raw(addr, false, compound);
            }
        }
    }

    /// The direct ping went unanswered: ask others, try TCP and (unless
    /// [`Config::retry_direct_ping`](crate::Config::retry_direct_ping) is
    /// off) ping the target directly once more.
    pub(super) fn probe_indirect(&mut self, now: Instant, seq: u32) {
        let Some(probe) = self.probing.in_flight.as_ref().filter(|p| p.seq == seq) else {
            return;
        };
        let target = probe.target.clone();
        let Some(t) = self.members.get(&target) else {
            return;
        };
        let (t_addr, t_raw, t_port, t_pmax, t_state, t_incarnation) = (
            t.addr(),
            t.raw_addr.to_vec(),
            t.port,
            t.protocol_max(),
            t.state,
            t.incarnation,
        );
        if self.config.retry_direct_ping {
            // Same sequence number: whichever ack comes first ends the
            // probe; a late one for the first ping counts as well.
            self.stats.direct_ping_retries += 1;
            self.send_probe_ping(t_addr, seq, &target, t_state, t_incarnation);
        }
        let name = self.name.clone();
        let helpers = self.k_random_members(self.config.indirect_checks, |m| {
            m.name == name || m.name == target || m.state != MemberState::Alive
        });
        tracing::debug!("failed ping: {target} (timeout reached)");
        let mut expected_nacks = 0;
        for (peer_addr, peer_pmax) in helpers {
            let nack = self.config.lifeguard_nacks && peer_pmax >= 4;
            if nack {
                expected_nacks += 1;
            }
            let ind = IndirectPingReq {
                seq_no: seq,
                target: t_raw.clone(),
                port: t_port,
                node: target.clone(),
                nack,
                source_addr: self.raw_addr.to_vec(),
                source_port: self.advertise.port(),
                source_node: self.name.clone(),
            };
            self.send_msg(peer_addr, &Message::IndirectPing(ind));
        }
        if let Some(p) = self.probing.in_flight.as_mut() {
            p.expected_nacks = expected_nacks;
        }
        // The hook is asked last, only when a fallback ping would be sent.
        if !self.config.disable_tcp_pings
            && t_pmax >= 3
            && !self.hooks.disable_tcp_pings_for_node(&target)
        {
            let deadline = self
                .timers
                .deadline_of(&TimerKey::AckDeadline(seq))
                .unwrap_or(now);
            let ping = self.make_ping(seq, &target);
            let bytes = self.encode_stream_dial(&StreamMessage::Ping(ping));
            let timeout = deadline - now;
            if !timeout.is_zero() {
                let id = self.dial_kind(t_addr, bytes, true, timeout, crate::event::DialKind::Ping);
                self.streams.insert(id, PendingStream::FallbackPing { seq });
            }
        }
    }

    /// The reply to our TCP fallback ping for the probe `seq` came back.
    pub(super) fn fallback_ping_result(
        &mut self,
        now: Instant,
        seq: u32,
        result: Result<Option<StreamMessage>, StreamFailure>,
    ) {
        if let Ok(Some(StreamMessage::Ack(ack))) = result {
            if ack.seq_no == seq && self.probing.awaits(seq) {
                self.acks.remove(&seq);
                self.probe_succeeded(now, None);
            }
        }
    }

    fn probe_succeeded(&mut self, now: Instant, payload: Option<Vec<u8>>) {
        let Some(probe) = self.probing.in_flight.take() else {
            return;
        };
        self.timers.cancel(&TimerKey::ProbeTimeout(probe.seq));
        self.timers.cancel(&TimerKey::AckDeadline(probe.seq));
        self.apply_awareness(-1);
        self.metrics.probe_node(now - probe.sent);
        if let (Some(payload), Some(m)) = (payload, self.members.get(&probe.target)) {
            let node = m.info();
            self.emit(Event::PingComplete {
                node,
                rtt: now - probe.sent,
                payload,
            });
        }
        self.probe_finished(now);
    }

    fn probe_failed(&mut self, now: Instant) {
        let Some(probe) = self.probing.in_flight.take() else {
            return;
        };
        self.timers.cancel(&TimerKey::ProbeTimeout(probe.seq));
        self.stats.probes_failed += 1;
        self.metrics.probe_failed();
        let delta = if probe.expected_nacks > 0 {
            probe.expected_nacks.saturating_sub(probe.nacks) as i32
        } else {
            1
        };
        self.apply_awareness(delta);
        tracing::info!("suspect {} has failed, no acks received", probe.target);
        let s = Suspect {
            incarnation: probe.incarnation,
            node: probe.target.into(),
            from: crate::name::Name::new(&self.name),
        };
        self.suspect_node(now, s);
        // Go's probeNode returns (and is measured) after suspecting.
        self.metrics.probe_node(now - probe.sent);
        self.probe_finished(now);
    }

    fn probe_finished(&mut self, now: Instant) {
        if core::mem::take(&mut self.probing.tick_pending) {
            self.probe(now);
        }
    }

    pub(super) fn ack_expired(&mut self, now: Instant, seq: u32) {
        match self.acks.remove(&seq) {
            Some(AckHandler::Probe) if self.probing.awaits(seq) => {
                self.probe_failed(now);
            }
            Some(AckHandler::Relay {
                origin,
                origin_seq,
                nack: true,
            }) => {
                let nack = Message::Nack(NackResp { seq_no: origin_seq });
                self.send_msg(origin, &nack);
            }
            Some(AckHandler::UserPing { id, .. }) => {
                self.complete(Completion::PingResult { id, rtt: None })
            }
            _ => {}
        }
    }

    pub(super) fn handle_ping(&mut self, now: Instant, from: SocketAddr, p: Ping) {
        if !p.node.is_empty() && p.node != self.name {
            self.stats.messages_ignored += 1;
            return;
        }
        let reply_to = self.reply_addr(&p.source_addr, p.source_port, from);
        let ack = AckResp {
            seq_no: p.seq_no,
            payload: self.hooks.ack_payload(),
        };
        self.send_msg(reply_to, &Message::Ack(ack));
        self.pinged_by(now, reply_to);
    }

    pub(super) fn handle_indirect_ping(
        &mut self,
        now: Instant,
        from: SocketAddr,
        ind: IndirectPingReq,
    ) {
        let Some(target) = socket_addr_from_wire(&ind.target, ind.port) else {
            self.stats.messages_ignored += 1;
            return;
        };
        let origin = self.reply_addr(&ind.source_addr, ind.source_port, from);
        let local_seq = self.next_seq();
        let ping = self.make_ping(local_seq, &ind.node);
        self.acks.insert(
            local_seq,
            AckHandler::Relay {
                origin,
                origin_seq: ind.seq_no,
                nack: ind.nack,
            },
        );
        self.timers.schedule(
            TimerKey::AckDeadline(local_seq),
            now + self.config.probe_timeout,
        );
        self.send_msg(target, &Message::Ping(ping));
    }

    pub(super) fn handle_ack(&mut self, now: Instant, ack: AckResp) {
        let Some(handler) = self.acks.remove(&ack.seq_no) else {
            return;
        };
        self.timers.cancel(&TimerKey::AckDeadline(ack.seq_no));
        match handler {
            AckHandler::Probe => {
                if self.probing.awaits(ack.seq_no) {
                    self.probe_succeeded(now, Some(ack.payload));
                }
            }
            AckHandler::Relay {
                origin, origin_seq, ..
            } => {
                let reply = AckResp {
                    seq_no: origin_seq,
                    payload: Vec::new(),
                };
                self.send_msg(origin, &Message::Ack(reply));
            }
            AckHandler::UserPing { id, sent } => {
                self.complete(Completion::PingResult {
                    id,
                    rtt: Some(now - sent),
                });
            }
        }
    }

    /// A helper of our probe could not reach the target either.
    pub(super) fn handle_nack(&mut self, nack: NackResp) {
        if let Some(p) = self
            .probing
            .in_flight
            .as_mut()
            .filter(|p| p.seq == nack.seq_no)
        {
            p.nacks = (p.nacks + 1).min(p.expected_nacks.max(1));
        }
    }

    /// A ping for `target` (anyone, if empty) with our return address.
    fn make_ping(&self, seq: u32, target: &str) -> Ping {
        Ping {
            seq_no: seq,
            node: target.to_string(),
            source_addr: self.raw_addr.to_vec(),
            source_port: self.advertise.port(),
            source_node: self.name.clone(),
        }
    }

    fn reply_addr(&self, raw: &[u8], port: u16, from: SocketAddr) -> SocketAddr {
        if !raw.is_empty() && port > 0 {
            socket_addr_from_wire(raw, port).unwrap_or(from)
        } else {
            from
        }
    }
}
