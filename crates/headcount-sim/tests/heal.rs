//! Partitions on the lan profile heal within one reconnect interval (plus
//! 10 s) after the network heals: one host cut off for 45 s, and a 2|3
//! split, five nodes, over many seeds. The same scenarios run on real hosts
//! in crates/headcount-cli/tests/faults.rs.

use core::time::Duration;

use headcount_sim::engine::{Action, Kind, Sim};
use headcount_sim::net::{Cut, Partition, Profile};

/// Time from the heal until every node agrees, or `None` past `limit`.
fn heal_time(
    seed: u64,
    side: &[bool],
    cut_for: Duration,
    limit: Duration,
) -> (Option<Duration>, usize) {
    let profile = Profile::lan();
    let mut sim = Sim::new(seed, profile.proto_config(), profile, 0.0);
    let n = side.len();
    sim.recording = true;
    let t = sim.bootstrap_and_converge(n, Duration::from_millis(30), Duration::from_secs(120));
    assert!(t.is_some(), "seed {seed}: {n} nodes did not converge");
    // Some seconds of steady state, different per seed, so timers are out of phase.
    sim.run_for(Duration::from_millis(1000 + seed % 30 * 1000));
    sim.act(Action::Partition(Partition {
        id: 1,
        side: side.to_vec(),
        cut: Cut::Both,
    }));
    sim.run_for(cut_for);
    sim.act(Action::Heal(1));
    let t = sim.run_while_not(limit, Duration::from_millis(100), |s| s.agree());
    // How often a member of the healthy side (the larger one) is held dead
    // by another member of it. It happens only around the heal: a member
    // of the cut-off side whose suspicion of a healthy member runs out just
    // then gossips the death into the healed cluster, and the victim
    // refutes within a fraction of a second. Reported, not asserted (see
    // the report line): 72 of 200 split seeds before join push/pulls
    // stopped spreading the rejoining side's stale accusations, 5 after (26
    // on the slower-healing main branch); one host cut off: 0.
    let healthy_side = side.iter().filter(|&&b| !b).count() * 2 > n;
    let healthy = |i: usize| side[i] != healthy_side;
    let bad: Vec<_> = sim
        .log
        .iter()
        .filter(|r| r.kind == Kind::Dead && healthy(r.node as usize) && healthy(r.subject as usize))
        .collect();
    if !bad.is_empty() {
        eprintln!("seed {seed}: healthy members held dead: {bad:?}");
    }
    (t, bad.len())
}

fn report(what: &str, side: &[bool], seeds: u64) -> Vec<Option<Duration>> {
    let limit = Duration::from_secs(300);
    let runs: Vec<_> = (1..=seeds)
        .map(|seed| heal_time(seed, side, Duration::from_secs(45), limit))
        .collect();
    let false_deaths = runs.iter().filter(|r| r.1 > 0).count();
    eprintln!("{what}: {false_deaths} of {seeds} seeds held a healthy member dead");
    let times: Vec<_> = runs.iter().map(|r| r.0).collect();
    for (i, t) in times.iter().enumerate() {
        if t.is_none_or(|t| t > Duration::from_secs(10)) {
            eprintln!("{what}: seed {}: {t:?}", i + 1);
        }
    }
    let mut secs: Vec<f64> = times
        .iter()
        .map(|t| t.map_or(f64::INFINITY, |t| t.as_secs_f64()))
        .collect();
    secs.sort_by(f64::total_cmp);
    eprintln!(
        "{what}: {seeds} seeds, heal time median {:.1} s, p90 {:.1} s, max {:.1} s",
        secs[secs.len() / 2],
        secs[secs.len() * 9 / 10],
        secs[secs.len() - 1]
    );
    times
}

#[test]
fn one_host_cut_off_heals_within_one_reconnect_interval() {
    let side = [false, false, false, false, true];
    let bound = Profile::lan().proto_config().reconnect_interval + Duration::from_secs(10);
    for (seed, t) in report("one host", &side, 200).into_iter().enumerate() {
        assert!(
            t.is_some_and(|t| t <= bound),
            "seed {}: {t:?} > {bound:?}",
            seed + 1
        );
    }
}

#[test]
fn two_three_split_heals_within_one_reconnect_interval() {
    let side = [true, true, false, false, false];
    let bound = Profile::lan().proto_config().reconnect_interval + Duration::from_secs(10);
    for (seed, t) in report("2|3 split", &side, 200).into_iter().enumerate() {
        assert!(
            t.is_some_and(|t| t <= bound),
            "seed {}: {t:?} > {bound:?}",
            seed + 1
        );
    }
}

/// A debugging aid, not a check: prints every node's view (A alive, S
/// suspect, D dead, - unknown), health score, reconnect attempts/successes
/// and failed-list length, second by second around a 45 s cut.
/// `SEED=16 SIDE=00001 cargo test --release -p headcount-sim --test heal
/// trace_one -- --ignored --nocapture`
#[test]
#[ignore = "a debugging aid: SEED=.. SIDE=.. (see its doc)"]
fn trace_one() {
    let seed: u64 = std::env::var("SEED").unwrap().parse().unwrap();
    let side: Vec<bool> = std::env::var("SIDE")
        .unwrap()
        .chars()
        .map(|c| c == '1')
        .collect();
    let profile = Profile::lan();
    let mut sim = Sim::new(seed, profile.proto_config(), profile, 0.0);
    let n = side.len();
    sim.bootstrap_and_converge(n, Duration::from_millis(30), Duration::from_secs(120))
        .unwrap();
    sim.run_for(Duration::from_millis(1000 + seed % 30 * 1000));
    sim.act(Action::Partition(Partition {
        id: 1,
        side: side.clone(),
        cut: Cut::Both,
    }));
    let show = |sim: &Sim, t: i64| {
        let mut line = format!("t={t:>4}");
        for i in 0..n {
            let node = sim.node(i).unwrap();
            let v: String = (0..n)
                .map(|j| match sim.state_seen(i, j) {
                    None => '-',
                    Some(s) => format!("{s:?}").chars().next().unwrap(),
                })
                .collect();
            line += &format!(
                " | {i}:{v} h{} r{}/{} f{}",
                node.health_score(),
                node.stats().reconnect_attempts,
                node.stats().reconnect_successes,
                node.failed_members().count()
            );
        }
        eprintln!("{line}");
    };
    for t in 0..45 {
        if t % 5 == 0 {
            show(&sim, t - 45);
        }
        sim.run_for(Duration::from_secs(1));
    }
    sim.act(Action::Heal(1));
    for t in 0..100 {
        show(&sim, t);
        if sim.agree() {
            break;
        }
        sim.run_for(Duration::from_secs(1));
    }
}
