//! Serf-style reconnect in the core: a partition that outlasts the
//! suspicion timeout and `gossip_to_the_dead_time` heals once the network
//! does; without it (memberlist's behaviour) the cluster stays split.

mod common;

use std::time::Duration;

use common::{converged, Cluster, CONVERGE};
use headcount_proto::{Config, MemberState};

const N: usize = 6;

/// Converges `N` nodes, cuts them into {0, 1, 2} and {3, 4, 5} for five
/// minutes (each side declares the other dead and reaps it), then heals
/// the network. Returns the cluster, right after the heal.
fn split_for_long(config: Config, seed: u64) -> Cluster {
    let mut c = Cluster::new(N, config, seed);
    c.join_all_to(0);
    c.run_until(CONVERGE, |c| converged(c, N))
        .expect("converged");
    for i in N / 2..N {
        c.side[i] = 1;
    }
    c.run_for(Duration::from_secs(300));
    for i in 0..N {
        let other = if i < N / 2 { N - 1 } else { 0 };
        let seen = c.state_seen_by(i, &format!("node-{other}"));
        assert!(
            seen.is_none_or(|s| s.is_dead_or_left()),
            "node-{i} still holds node-{other} as {seen:?} after five minutes apart"
        );
    }
    c.side.fill(0);
    c
}

#[test]
fn a_long_partition_heals_with_reconnect() {
    let config = Config::local();
    assert!(!config.reconnect_interval.is_zero(), "on by default");
    let mut c = split_for_long(config.clone(), 21);
    // The first tick comes within one interval; after it, each side learns
    // the other is alive through push/pulls and refutations.
    let bound = config.reconnect_interval * 4 + config.push_pull_interval * 4;
    let t = c.run_until(bound, |c| converged(c, N));
    assert!(t.is_some(), "not healed within {bound:?}");
    let attempts: u64 = c
        .nodes
        .iter()
        .flatten()
        .map(|n| n.stats().reconnect_attempts)
        .sum();
    assert!(attempts > 0);
    // Once everyone is back, nobody is left on a failed list.
    c.run_for(config.reconnect_interval * 2);
    for n in c.nodes.iter().flatten() {
        assert_eq!(n.failed_members().count(), 0, "{} still lists", n.name());
    }
}

#[test]
fn without_reconnect_a_long_partition_stays_split() {
    let mut config = Config::local();
    config.reconnect_interval = Duration::ZERO;
    let mut c = split_for_long(config, 21);
    c.run_for(Duration::from_secs(300));
    assert!(!converged(&c, N));
    for n in c.nodes.iter().flatten() {
        assert_eq!(n.stats().reconnect_attempts, 0);
        assert_eq!(n.failed_members().count(), 0);
    }
}

#[test]
fn a_crashed_member_is_tried_until_the_timeout_then_forgotten() {
    let mut config = Config::local();
    config.reconnect_interval = Duration::from_secs(10);
    config.reconnect_timeout = Duration::from_secs(120);
    let mut c = Cluster::new(4, config, 5);
    c.join_all_to(0);
    c.run_until(CONVERGE, |c| converged(c, 4))
        .expect("converged");
    c.kill(3);
    c.run_until(Duration::from_secs(60), |c| {
        c.all_see("node-3", MemberState::Dead)
    })
    .expect("node-3 declared dead");
    for i in 0..3 {
        let listed: Vec<String> = c
            .node(i)
            .failed_members()
            .map(|(n, _)| n.to_string())
            .collect();
        assert_eq!(listed, ["node-3"]);
    }
    c.run_for(Duration::from_secs(200));
    let attempts: u64 = (0..3).map(|i| c.node(i).stats().reconnect_attempts).sum();
    assert!(attempts > 0, "nobody tried the crashed member");
    for i in 0..3 {
        assert_eq!(c.node(i).failed_members().count(), 0);
    }
}

#[test]
fn a_member_that_left_is_not_reconnected() {
    let mut c = Cluster::new(4, Config::local(), 9);
    c.join_all_to(0);
    c.run_until(CONVERGE, |c| converged(c, 4))
        .expect("converged");
    let now = c.now;
    c.node(3).leave(now);
    c.drain(3);
    c.run_until(Duration::from_secs(10), |c| {
        (0..3).all(|i| c.state_seen_by(i, "node-3") == Some(MemberState::Left))
    })
    .expect("leave propagated");
    c.kill(3);
    c.run_for(Duration::from_secs(120));
    for i in 0..3 {
        assert_eq!(c.node(i).failed_members().count(), 0);
        assert_eq!(c.node(i).stats().reconnect_attempts, 0);
    }
}

#[test]
fn the_keeper_of_a_fresh_failure_tries_it_every_few_seconds() {
    let config = Config::local();
    let fast = config.reconnect_interval / 10;
    let mut c = Cluster::new(4, config.clone(), 11);
    c.join_all_to(0);
    c.run_until(CONVERGE, |c| converged(c, 4))
        .expect("converged");
    c.kill(3);
    c.run_until(Duration::from_secs(60), |c| {
        c.all_see("node-3", MemberState::Dead)
    })
    .expect("node-3 declared dead");
    let before: Vec<u64> = (0..3)
        .map(|i| c.node(i).stats().reconnect_attempts)
        .collect();
    let window = config.reconnect_interval * 2;
    c.run_for(window);
    let tries: Vec<u64> = (0..3)
        .map(|i| c.node(i).stats().reconnect_attempts - before[i])
        .collect();
    // The keeper of node-3 is the first alive name after it, wrapping: node-0.
    let fast_tries = (window.as_secs() / fast.as_secs()) - 1;
    assert!(tries[0] >= fast_tries, "keeper tried {tries:?}");
    // The others follow Serf's rule only: at most once per interval.
    for (i, t) in tries.iter().enumerate().skip(1) {
        assert!(*t <= 3, "node-{i} tried {t} times");
    }
}

#[test]
fn a_cut_off_node_tries_its_suspects_every_few_seconds_and_heals_at_once() {
    let config = Config::local();
    let mut c = Cluster::new(5, config.clone(), 13);
    c.join_all_to(0);
    c.run_until(CONVERGE, |c| converged(c, 5))
        .expect("converged");
    c.side[4] = 1;
    c.run_for(Duration::from_secs(45));
    // node-4 is unhealthy (no acks): its probe rounds and its suspicions
    // of the others are stretched, so it may not have declared anyone dead
    // yet; once it suspects most of them it tries every few seconds.
    assert!(
        c.node(4).stats().reconnect_attempts >= 3,
        "{}",
        c.node(4).stats().reconnect_attempts
    );
    c.side.fill(0);
    let bound = config.reconnect_interval / 10 + Duration::from_secs(10);
    let t = c.run_until(bound, |c| converged(c, 5));
    assert!(t.is_some(), "not healed within {bound:?}");
}
