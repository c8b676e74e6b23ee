//! Small simulations over many seeds. Each failure message carries the
//! seed, so a counterexample replays with `Sim::new(seed, ..)`.

use core::time::Duration;

use headcount_proto::Config;
use headcount_sim::engine::{Action, Kind, Sim};
use headcount_sim::experiments::{self, detection_bound};
use headcount_sim::net::{Cut, Partition, Profile};
use proptest::prelude::*;

fn cluster(seed: u64, n: usize) -> Sim {
    cluster_with(seed, n, Profile::local().proto_config())
}

fn cluster_with(seed: u64, n: usize, config: Config) -> Sim {
    let profile = Profile::local();
    let mut sim = Sim::new(seed, config, profile, 0.0);
    sim.check_invariants = true;
    let t = sim.bootstrap_and_converge(n, Duration::from_millis(30), Duration::from_secs(120));
    assert!(t.is_some(), "seed {seed}: {n} nodes did not converge");
    sim.check_tables();
    sim
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// With no faults and no loss, nobody is ever suspected.
    #[test]
    fn no_faults_no_false_positives(seed in any::<u64>(), n in 2usize..8) {
        let mut sim = cluster(seed, n);
        sim.recording = true;
        sim.run_for(Duration::from_secs(40));
        let bad: Vec<_> = sim
            .log
            .iter()
            .filter(|r| matches!(r.kind, Kind::Suspect | Kind::Dead | Kind::Left))
            .collect();
        prop_assert!(bad.is_empty(), "seed {}: {:?}", seed, bad);
        prop_assert!(sim.agree(), "seed {}", seed);
        sim.check_tables();
    }

    /// A crashed node is held dead by every survivor within the bound
    /// derived from wire-protocol.md §8 (see `detection_bound`).
    #[test]
    fn crash_is_detected_within_bound(seed in any::<u64>(), n in 3usize..8, pick in any::<u64>()) {
        let mut sim = cluster(seed, n);
        let victim = (pick % n as u64) as usize;
        let bound = detection_bound(sim.config(), n);
        sim.act(Action::Crash(victim));
        let t = sim.run_while_not(bound, Duration::from_millis(100), |s| {
            (0..s.len())
                .filter(|&i| s.is_running(i))
                .all(|i| s.state_seen(i, victim).is_none_or(|st| st.is_dead_or_left()))
        });
        prop_assert!(t.is_some(), "seed {}: node {} not dead everywhere within {:?}", seed, victim, bound);
        let t = t.unwrap();
        let min = headcount_proto::suspicion::suspicion_timeout(
            sim.config().suspicion_mult, n, sim.config().probe_interval);
        prop_assert!(t >= min, "seed {}: dead after {:?}, before the minimum suspicion {:?}", seed, t, min);
        sim.run_for(Duration::from_secs(2));
        prop_assert!(sim.agree(), "seed {}", seed);
    }

    /// After a partition (either way, or one way only) heals, all members
    /// agree again within a bound. See `heal_bound` for which partitions
    /// memberlist can heal on its own.
    #[test]
    fn partitions_heal(
        seed in any::<u64>(),
        n in 3usize..8,
        mask in 1u64..255,
        cut in 0u8..3,
        secs in 1u64..20,
    ) {
        let mut sim = cluster(seed, n);
        let side: Vec<bool> = (0..n).map(|i| mask >> i & 1 == 1).collect();
        prop_assume!(side.iter().any(|&b| b) && side.iter().any(|&b| !b));
        let cut = [Cut::Both, Cut::Outbound, Cut::Inbound][cut as usize];
        // A cut (full or one-way) that outlasts the suspicion timeout splits
        // memberlist for good (see `full_partition_past_suspicion_splits_for_good`):
        // without reconnect, keep cuts shorter than the earliest death.
        let secs = 1 + secs % earliest_death_s(sim.config(), n);
        sim.act(Action::Partition(Partition { id: 1, side, cut }));
        sim.run_for(Duration::from_secs(secs));
        sim.act(Action::Heal(1));
        let bound = heal_bound(sim.config(), n);
        let t = sim.run_while_not(bound, Duration::from_millis(200), |s| s.agree());
        prop_assert!(t.is_some(), "seed {}: no agreement within {:?} after a {:?} partition of {} s healed", seed, bound, cut, secs);
    }

    /// With a Serf-style reconnect loop, any partition, however long and
    /// whichever way, heals within the reconnect interval plus the bound.
    #[test]
    fn partitions_heal_with_reconnect(
        seed in any::<u64>(),
        n in 3usize..8,
        mask in 1u64..255,
        cut in 0u8..3,
        secs in 1u64..300,
    ) {
        // The core's own reconnect (Config::reconnect_interval, on by
        // default), not the simulator's.
        let mut sim = cluster(seed, n);
        let reconnect = sim.config().reconnect_interval;
        let side: Vec<bool> = (0..n).map(|i| mask >> i & 1 == 1).collect();
        prop_assume!(side.iter().any(|&b| b) && side.iter().any(|&b| !b));
        let cut = [Cut::Both, Cut::Outbound, Cut::Inbound][cut as usize];
        sim.act(Action::Partition(Partition { id: 1, side, cut }));
        sim.run_for(Duration::from_secs(secs));
        sim.act(Action::Heal(1));
        let bound = heal_bound(sim.config(), n) + reconnect * 3;
        let t = sim.run_while_not(bound, Duration::from_millis(200), |s| s.agree());
        prop_assert!(t.is_some(), "seed {}: no agreement within {:?} after a {:?} partition of {} s healed", seed, bound, cut, secs);
    }
}

/// Whole seconds before which no node can be declared dead: a probe
/// fails one probe interval after it is sent, then the suspicion runs at
/// least its minimum.
fn earliest_death_s(config: &Config, n: usize) -> u64 {
    let min = headcount_proto::suspicion::suspicion_timeout(
        config.suspicion_mult,
        n,
        config.probe_interval,
    );
    (config.probe_interval + min).as_secs().max(1)
}

/// Time for a healed cluster to agree: suspicions raised during the cut are
/// refuted at the first probe or gossip that gets through, and a node
/// already declared dead refutes as soon as a dead message about it reaches
/// it, which gossip to the dead guarantees only for
/// `gossip_to_the_dead_time` after the declaration. Partitions are kept
/// shorter than that window plus the minimum suspicion timeout; longer
/// ones can split memberlist for good (see docs/simulation.md).
fn heal_bound(config: &Config, n: usize) -> Duration {
    detection_bound(config, n) + config.push_pull_interval
}

/// Four nodes, cut {0, 3} | {1, 2} both ways for 40 s: longer than the
/// maximum suspicion timeout (18 s for 4 nodes under the local profile)
/// plus gossip_to_the_dead_time (15 s), so both sides have declared the
/// other dead and reaped it. The cut is still in place (id 1).
fn split_past_suspicion(config: Config) -> Sim {
    let mut sim = cluster_with(546_000_292_847_365_689, 4, config);
    sim.act(Action::Partition(Partition {
        id: 1,
        side: vec![true, false, false, true],
        cut: Cut::Both,
    }));
    sim.run_for(Duration::from_secs(40));
    sim
}

/// Go memberlist behaves the same: once both sides of a full partition
/// have declared each other dead, nothing crosses after the heal (gossip
/// goes to the dead only while there is news to send, push/pull and probes
/// only to live members), and the dead are reaped after
/// `gossip_to_the_dead_time`. Serf repairs this with its reconnect loop;
/// memberlist alone does not. This test pins the behaviour down.
#[test]
fn full_partition_past_suspicion_splits_for_good_without_reconnect() {
    let mut config = Profile::local().proto_config();
    config.reconnect_interval = Duration::ZERO;
    let mut sim = split_past_suspicion(config);
    sim.act(Action::Heal(1));
    sim.run_for(Duration::from_secs(120));
    assert!(!sim.agree());
    assert_eq!(
        sim.state_seen(0, 3),
        Some(headcount_proto::MemberState::Alive)
    );
    assert_eq!(sim.state_seen(0, 1), None, "reaped");
    // An application-level rejoin (Serf's reconnect) heals it.
    sim.act(Action::Rejoin { node: 0, peer: 1 });
    let t = sim.run_while_not(Duration::from_secs(60), Duration::from_millis(200), |s| {
        s.agree()
    });
    assert!(t.is_some(), "rejoin did not heal the split");
}

#[test]
fn same_seed_same_report_byte_for_byte() {
    let run = || {
        let r = experiments::detection(6, 42, Profile::local(), 0.05, 2);
        serde_json::to_string(&r).unwrap()
    };
    let a = run();
    assert_eq!(a, run());
    let other =
        serde_json::to_string(&experiments::detection(6, 43, Profile::local(), 0.05, 2)).unwrap();
    assert_ne!(a, other);
}

#[test]
fn restart_and_leave() {
    let mut sim = cluster(5, 5);
    sim.recording = true;
    sim.act(Action::Crash(2));
    sim.run_for(Duration::from_secs(40));
    assert!(sim.agree(), "crash not agreed");
    sim.act(Action::Start {
        node: 2,
        join: Some(0),
    });
    let t = sim.run_while_not(Duration::from_secs(30), Duration::from_millis(100), |s| {
        s.agree()
    });
    assert!(t.is_some(), "restarted node not agreed alive");
    sim.act(Action::Leave(4));
    let t = sim.run_while_not(Duration::from_secs(10), Duration::from_millis(100), |s| {
        (0..4).all(|i| s.state_seen(i, 4) == Some(headcount_proto::MemberState::Left))
    });
    assert!(t.is_some(), "leave not seen");
    assert!(!sim.is_running(4));
    sim.check_tables();
}

#[test]
fn starved_node_handles_backlog_late() {
    let mut sim = cluster(9, 4);
    sim.recording = true;
    sim.act(Action::Starve(1, Duration::from_secs(3)));
    assert!(sim.is_starved(1));
    sim.run_for(Duration::from_secs(2));
    assert!(sim.is_starved(1));
    sim.run_for(Duration::from_secs(2));
    assert!(!sim.is_starved(1));
    // Starved past the probe deadline, node 1 was suspected by someone.
    let suspected = sim
        .log
        .iter()
        .any(|r| r.kind == Kind::Suspect && r.subject == 1);
    assert!(suspected);
    sim.run_for(Duration::from_secs(30));
    assert!(sim.agree(), "cluster did not recover from starvation");
}

/// Found by `partitions_heal`: during a 4 s one-way cut, node 2 suspects
/// nodes 0 and 1, whose refutations never reach it. After the heal its
/// probes carry the stale accusation (incarnation 1) to nodes already at
/// incarnation 2; Go ignores such accusations, so node 2 declared both
/// dead ~15 s later and the split lasted until a lucky push/pull. The
/// accused now gossip their current alive again, and everyone agrees.
#[test]
fn stale_accusation_after_a_short_one_way_partition_is_answered() {
    let n = 3;
    let mut sim = cluster(4_304_175_295_352_186_983, n);
    sim.recording = true;
    let side = vec![true, true, false];
    sim.act(Action::Partition(Partition {
        id: 1,
        side,
        cut: Cut::Outbound,
    }));
    sim.run_for(Duration::from_secs(4));
    sim.act(Action::Heal(1));
    // Deaths a suspicion timer started during the cut may still land a
    // moment after the heal; a second later, nobody may die any more.
    let settled = sim.now() + Duration::from_secs(1);
    let bound = heal_bound(sim.config(), n);
    let t = sim.run_while_not(bound, Duration::from_millis(200), |s| s.agree());
    assert!(t.is_some(), "no agreement within {bound:?}");
    sim.run_for(Duration::from_secs(30));
    assert!(sim.agree());
    let late: Vec<_> = sim
        .log
        .iter()
        .filter(|r| matches!(r.kind, Kind::Dead) && r.t > settled)
        .collect();
    assert!(late.is_empty(), "deaths after the heal: {late:?}");
}

/// The same partition heals by itself with the core's reconnect (on by
/// default): a node that holds members dead push/pulls with one of them
/// every `reconnect_interval`.
#[test]
fn full_partition_past_suspicion_heals_with_core_reconnect() {
    let mut sim = split_past_suspicion(Profile::local().proto_config());
    assert!(!sim.agree(), "the cut should have split the cluster");
    sim.act(Action::Heal(1));
    let bound = heal_bound(sim.config(), 4) + sim.config().reconnect_interval * 3;
    let t = sim.run_while_not(bound, Duration::from_millis(200), |s| s.agree());
    assert!(t.is_some(), "no agreement within {bound:?} after the heal");
}

#[test]
fn seeded_bootstrap_is_converged_and_stays_so() {
    let mut sim = Sim::new(7, Config::lan(), Profile::lan(), 0.0);
    assert!(sim.bootstrap_seeded_and_converge(24));
    sim.check_tables();
    assert!(sim.agree());
    // The merges' gossip was dropped: nothing is left to send.
    assert!((0..24).all(|i| sim.node(i).unwrap().queued_broadcasts() == 0));
    sim.run_for(Duration::from_secs(60));
    sim.check_tables();
    assert!(sim.converged() && sim.agree(), "seeded cluster drifted");
}

#[test]
fn seeded_dissemination_is_deterministic() {
    let run = || {
        let r = experiments::dissemination_with(
            &[30],
            &[0.0],
            5,
            Profile::lan(),
            Some(experiments::Bootstrap::Seeded),
        );
        serde_json::to_string(&r).unwrap()
    };
    let a = run();
    assert_eq!(a, run());
    assert!(a.contains("\"bootstrap\":\"seeded\""));
}
