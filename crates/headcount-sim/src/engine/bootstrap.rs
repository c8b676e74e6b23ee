//! Bootstrapping clusters: by real joins, spaced in time, or seeded at once
//! from one shared push/pull state.

use core::time::Duration;

use headcount_proto::wire::{self, StreamDecode};
use headcount_proto::{Output, StreamMessage};
use rand_core::RngCore;

use super::{addr_of, drain, Action, Sim};

impl Sim {
    /// Starts `n` nodes, `spacing` apart: node 0 alone, then each node
    /// joins a uniformly random node among those already started. Every
    /// join is a real push/pull; nobody's table is filled by hand.
    pub fn bootstrap(&mut self, n: usize, spacing: Duration) {
        let base = self.slots.len();
        self.ensure_slot(base + n.saturating_sub(1));
        let t0 = self.now;
        for k in 0..n {
            let join = if base + k == 0 {
                None
            } else {
                Some((self.rng.next_u64() % (base + k) as u64) as usize)
            };
            let at = t0 + spacing * k as u32;
            self.schedule(
                at,
                Action::Start {
                    node: base + k,
                    join,
                },
            );
        }
    }

    /// Starts `n` nodes at once and makes them a converged cluster without
    /// replaying its history: one push/pull state listing every new node
    /// alive (each entry is the node's own view of itself) is encoded
    /// once, uncompressed, as a push/pull reply; each node then joins,
    /// and instead of dialing its contact it is handed that reply, which
    /// it decodes and merges by the ordinary join path (so its table is
    /// filled by the real `decode_stream` and merge code, in its own
    /// random probe order). What is skipped: the contacts never see the
    /// joiners' push/pulls, and the gossip the joins would have caused is
    /// dropped ([`Node::reset_broadcasts`]), as in a cluster that has run
    /// long enough for all of it to be sent. Nodes already started are not
    /// listed, and do not learn the new ones. O(n²) time, and only one
    /// node's worth of extra memory at a time.
    ///
    /// [`Node::reset_broadcasts`]: headcount_proto::Node::reset_broadcasts
    pub fn bootstrap_seeded(&mut self, n: usize) {
        use headcount_proto::wire::{PushNodeState, PushPull, WireState};
        let base = self.slots.len();
        if n == 0 {
            return;
        }
        for k in 0..n {
            self.start(base + k, None);
        }
        let states: Vec<PushNodeState> = (base..base + n)
            .map(|i| {
                let m = self.slots[i].node.as_ref().expect("started").local_member();
                PushNodeState {
                    name: m.name.to_string(),
                    addr: m.raw_addr.to_vec(),
                    port: m.port,
                    meta: m.meta.to_vec(),
                    incarnation: m.incarnation,
                    state: WireState::Alive,
                    vsn: m.vsn,
                }
            })
            .collect();
        let msg = StreamMessage::PushPull(PushPull {
            join: false,
            states,
            user_state: Vec::new(),
        });
        let mut reply = Vec::new();
        wire::encode_stream(&msg, &[], false, &mut reply).expect("encodable state");
        drop(msg);
        let now = self.now;
        let mut buf = Vec::new();
        for k in 0..n {
            let i = base + k;
            let contact = base + (k + 1) % n;
            let node = self.slots[i].node.as_mut().expect("started");
            node.join(now, &[addr_of(contact)]);
            drain(node, now, &mut buf);
            let mut dial = None;
            for out in buf.drain(..) {
                match out {
                    Output::Dial(d) if dial.is_none() => dial = Some(d.id),
                    Output::Event(e) => self.observe(i, e),
                    Output::Completion(c) => self.completed(i, c),
                    other => panic!("seeded bootstrap: unexpected output {other:?}"),
                }
            }
            let id = dial.expect("a join dials its contact");
            let msg = match wire::decode_stream(&reply, &[], false, &self.limits) {
                Ok(StreamDecode::Complete { msg, .. }) => msg,
                other => panic!("seeded bootstrap: state did not decode: {other:?}"),
            };
            let node = self.slots[i].node.as_mut().expect("started");
            node.handle_stream_result(now, id, Ok(Some(msg)));
            node.reset_broadcasts();
            self.stats.node_inputs += 1;
            self.after_input(i);
        }
    }

    /// [`Sim::bootstrap_seeded`], then check that every node holds every
    /// other (it should at once). Returns whether they do.
    pub fn bootstrap_seeded_and_converge(&mut self, n: usize) -> bool {
        self.bootstrap_seeded(n);
        let target = self.slots.len();
        self.running == target && self.converged()
    }

    /// [`Sim::bootstrap`] then run until every node holds every other
    /// (checked each second), for at most `limit`. Returns the time taken.
    pub fn bootstrap_and_converge(
        &mut self,
        n: usize,
        spacing: Duration,
        limit: Duration,
    ) -> Option<Duration> {
        let start = self.now;
        self.bootstrap(n, spacing);
        self.run_for(spacing * n as u32);
        let target = self.slots.len();
        self.run_while_not(limit, Duration::from_secs(1), |s| {
            s.running == target && s.converged()
        })
        .map(|_| self.now - start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::Profile;
    use headcount_proto::Config;

    #[test]
    fn small_cluster_converges() {
        let mut sim = Sim::new(1, Config::lan(), Profile::lan(), 0.0);
        let t = sim.bootstrap_and_converge(8, Duration::from_millis(50), Duration::from_secs(60));
        assert!(t.is_some(), "did not converge");
        sim.check_tables();
        assert!(sim.agree());
    }
}
