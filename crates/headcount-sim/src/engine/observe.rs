//! Observing nodes: completions and membership events turned into
//! [`Record`]s, and the invariants checked after every input.

use headcount_proto::{Completion, Event, MemberState};

use super::{index_of, Ev, Kind, Record, Sim, Status};

impl Sim {
    /// Only a leave's broadcast is waited for: once sent, the node shuts
    /// down. Nothing in the simulation waits for joins, pings or sends.
    pub(super) fn completed(&mut self, i: usize, c: Completion) {
        if let Completion::BroadcastFinished(t) = c {
            if self.slots[i].leave_token == Some(t) && self.slots[i].status == Status::Leaving {
                let gen = self.slots[i].gen;
                self.push(
                    self.now,
                    Ev::Shutdown {
                        node: i as u32,
                        gen,
                    },
                );
            }
        }
    }

    pub(super) fn observe(&mut self, i: usize, e: Event) {
        let (kind, info) = match e {
            Event::Join(info) => {
                self.slots[i].known += 1;
                (Kind::Join, info)
            }
            Event::Leave(info) => {
                self.slots[i].known -= 1;
                let k = if info.state == MemberState::Left {
                    Kind::Left
                } else {
                    Kind::Dead
                };
                (k, info)
            }
            Event::Suspect { member, .. } => (Kind::Suspect, member),
            Event::Update(info) => (Kind::Update, info),
            Event::HealthChanged(score) => {
                if self.recording {
                    self.log.push(Record {
                        t: self.now,
                        node: i as u32,
                        subject: i as u32,
                        kind: Kind::Health,
                        inc: score,
                    });
                }
                return;
            }
            _ => return,
        };
        if self.recording {
            if let Some(subject) = index_of(info.addr) {
                self.log.push(Record {
                    t: self.now,
                    node: i as u32,
                    subject: subject as u32,
                    kind,
                    inc: info.incarnation,
                });
            }
        }
    }

    /// Invariants that hold after every input of a node.
    pub(super) fn check(&mut self, i: usize) {
        let seed = self.seed;
        let now = self.now;
        let slot = &mut self.slots[i];
        let Some(node) = slot.node.as_ref() else {
            return;
        };
        let me = node.local_member();
        if !node.has_left() {
            assert_eq!(
                me.state,
                MemberState::Alive,
                "seed {seed}, t={now:?}: running node {i} believes itself {:?}",
                me.state
            );
        }
        assert!(
            me.incarnation >= slot.last_inc,
            "seed {seed}, t={now:?}: node {i} incarnation went from {} to {}",
            slot.last_inc,
            me.incarnation
        );
        slot.last_inc = me.incarnation;
        assert!(
            node.has_left() || (slot.known >= 1 && slot.known as usize <= node.members().count()),
            "seed {seed}, t={now:?}: node {i} event count {} disagrees with its table",
            slot.known
        );
    }

    /// Checks, in O(n²), that each node's event-derived count of live
    /// members matches its table. Panics with the seed if not.
    pub fn check_tables(&self) {
        for (i, s) in self.slots.iter().enumerate() {
            if let Some(n) = s.node.as_ref() {
                assert_eq!(
                    s.known as usize,
                    n.num_members(),
                    "seed {}: node {i} counted {} live members from events, table has {}",
                    self.seed,
                    s.known,
                    n.num_members()
                );
            }
        }
    }
}
