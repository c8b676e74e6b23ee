//! Routing a node's output: draining it after each input, sending its
//! datagrams over the network, delivering inbound ones and re-arming its
//! wake-up.

use std::net::SocketAddr;

use headcount_proto::Output;

use super::{addr_of, drain, index_of, Ev, Kind, Record, Sim};

impl Sim {
    pub(super) fn deliver_packet(&mut self, to: usize, from: u32, data: &[u8]) {
        let now = self.now;
        let node = self.slots[to].node.as_mut().expect("running");
        node.handle_packet(now, addr_of(from as usize), data);
        self.stats.node_inputs += 1;
        self.after_input(to);
    }

    /// Drains node `i`, routes what it emitted, checks invariants and
    /// re-arms its wake-up.
    pub(super) fn after_input(&mut self, i: usize) {
        let mut buf = core::mem::take(&mut self.outbuf);
        let now = self.now;
        if let Some(node) = self.slots[i].node.as_mut() {
            drain(node, now, &mut buf);
            let inc = node.local_member().incarnation;
            let slot = &mut self.slots[i];
            if inc > slot.logged_inc {
                slot.logged_inc = inc;
                if self.recording {
                    self.log.push(Record {
                        t: now,
                        node: i as u32,
                        subject: i as u32,
                        kind: Kind::Refute,
                        inc,
                    });
                }
            }
        }
        for out in buf.drain(..) {
            match out {
                Output::Packet { to, data } => self.send(i, to, data),
                Output::Dial(d) => self.dial(i, d),
                Output::Event(e) => self.observe(i, e),
                Output::Completion(c) => self.completed(i, c),
            }
        }
        self.outbuf = buf;
        if self.check_invariants {
            self.check(i);
        }
        self.reschedule(i);
    }

    pub(super) fn reschedule(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        if slot.starved_until.is_some() {
            return;
        }
        let Some(d) = slot.node.as_ref().and_then(|n| n.poll_timeout()) else {
            return;
        };
        let d = d.max(self.now);
        if slot.wake_at.is_none_or(|w| d < w) {
            slot.wake_at = Some(d);
            let gen = slot.gen;
            self.push(
                d,
                Ev::Wake {
                    node: i as u32,
                    gen,
                },
            );
        }
    }

    pub(super) fn send(&mut self, from: usize, to: SocketAddr, data: Vec<u8>) {
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += data.len() as u64;
        let Some(j) = index_of(to).filter(|&j| j < self.slots.len()) else {
            self.stats.packets_undeliverable += 1;
            return;
        };
        if self.net.blocked(from, j) {
            self.stats.packets_blocked += 1;
            return;
        }
        if self.net.lost(&mut self.rng) {
            self.stats.packets_lost += 1;
            return;
        }
        let lat = self.net.latency(&mut self.rng, from, j);
        self.push(
            self.now + lat,
            Ev::Packet {
                from: from as u32,
                to: j as u32,
                data,
            },
        );
    }
}
