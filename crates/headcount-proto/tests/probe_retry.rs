//! A probe whose first direct ping is lost pings the target once more
//! (`Config::retry_direct_ping`) and does not suspect it; switched off, as
//! in memberlist, the same losses make it suspect a healthy member.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use common::{converged, Cluster};
use headcount_proto::wire::{self, Limits, Message};
use headcount_proto::{Config, Event, MemberState};

/// Whether `data` carries a ping (alone or in a compound packet).
fn is_ping(data: &[u8]) -> bool {
    let mut msgs = Vec::new();
    let _ = wire::decode_packet(data, &[], false, &Limits::default(), &mut msgs);
    msgs.iter().any(|m| matches!(m, Message::Ping(_)))
}

/// Two nodes (no indirect helpers, no TCP ping); after they converge,
/// every other ping from node 0 to node 1 is lost for 60 s. Returns how
/// many probes node 0 saw fail, the retries it sent, and whether it
/// suspected node 1.
fn lose_every_other_ping(retry: bool) -> (u64, u64, bool) {
    let config = Config::local()
        .with_disable_tcp_pings(true)
        .with_retry_direct_ping(retry);
    let mut c = Cluster::new(2, config, 7);
    c.join_all_to(0);
    assert!(
        c.run_until(Duration::from_secs(30), |c| converged(c, 2))
            .is_some(),
        "the two nodes did not converge"
    );
    let lost = Rc::new(RefCell::new(0u64));
    let seen = Rc::new(RefCell::new(0u64));
    let (l, s) = (lost.clone(), seen.clone());
    c.deliver = Some(Box::new(move |from, to, data| {
        if from != 0 || to != 1 || !is_ping(data) {
            return true;
        }
        *s.borrow_mut() += 1;
        if *s.borrow() % 2 == 1 {
            *l.borrow_mut() += 1;
            return false;
        }
        true
    }));
    let failed_before = c.node(0).stats().probes_failed;
    let events_before = c.events.len();
    c.run_for(Duration::from_secs(60));
    assert!(
        *lost.borrow() >= 10,
        "too few pings lost: {}",
        lost.borrow()
    );
    let suspected = c.events[events_before..].iter().any(|(i, _, e)| {
        *i == 0 && matches!(e, Event::Suspect { member, .. } if member.name == "node-1")
    }) || c.state_seen_by(0, "node-1") != Some(MemberState::Alive);
    let stats = c.node(0).stats();
    (
        stats.probes_failed - failed_before,
        stats.direct_ping_retries,
        suspected,
    )
}

#[test]
fn a_second_direct_ping_saves_the_probe() {
    let (failed, retries, suspected) = lose_every_other_ping(true);
    assert_eq!(failed, 0, "probes failed although every retry arrived");
    assert!(retries >= 20, "retries sent: {retries}");
    assert!(!suspected);
}

#[test]
fn without_the_retry_the_same_losses_suspect_a_healthy_member() {
    let (failed, retries, suspected) = lose_every_other_ping(false);
    assert!(failed >= 10, "probes failed: {failed}");
    assert_eq!(retries, 0);
    assert!(suspected);
}
