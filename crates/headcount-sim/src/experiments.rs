//! The experiments behind the `headcount-sim` subcommands. Each returns a
//! serialisable report that depends only on its arguments (wall-clock
//! measurements are kept apart by the caller, see `main.rs`).

use core::time::Duration;
use std::collections::BTreeSet;

use headcount_proto::suspicion::{retransmit_limit, suspicion_bounds};
use headcount_proto::{Config, Instant};
use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Serialize;

use crate::engine::{Action, Kind, Record, Sim};
use crate::models;
use crate::net::{splitmix64, Profile};

/// Gap between node starts when bootstrapping a cluster.
pub const JOIN_SPACING: Duration = Duration::from_millis(20);

fn secs(d: Duration) -> f64 {
    // Whole microseconds divided by a power of ten: exact and portable
    // up to the last printed digit.
    d.as_micros() as f64 / 1e6
}

fn since(t: Instant, t0: Instant) -> f64 {
    secs(t - t0)
}

/// How long a bootstrap may take before we give up: long enough for two
/// rounds of (scaled) push/pull to repair what gossip missed.
pub fn bootstrap_limit(config: &Config, n: usize) -> Duration {
    let pp = headcount_proto::suspicion::push_pull_scale(config.push_pull_interval, n);
    pp * 2 + Duration::from_secs(60)
}

/// Builds a simulation of `n` converged nodes. Bootstrapping is lossless
/// (each node joins a random node already in, by a real push/pull, and
/// gossip spreads the rest); `loss` applies from the end of it.
pub fn converged_cluster(seed: u64, config: Config, profile: Profile, loss: f64, n: usize) -> Sim {
    let mut sim = Sim::new(seed, config, profile, 0.0);
    let limit = bootstrap_limit(sim.config(), n);
    let t = sim.bootstrap_and_converge(n, JOIN_SPACING, limit);
    assert!(
        t.is_some(),
        "seed {seed}: {n} nodes did not converge within {limit:?}"
    );
    if loss > 0.0 {
        sim.act(Action::Loss(loss));
    }
    sim
}

/// How an experiment builds its converged cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bootstrap {
    /// One node after the other joins a random earlier one by a real
    /// push/pull, gossip spreads the rest ([`Sim::bootstrap_and_converge`]).
    /// O(n²) gossip traffic: fine up to a few thousand nodes.
    Joins,
    /// Every node merges one encoded push/pull state listing everyone
    /// ([`Sim::bootstrap_seeded`]); the cluster is converged at once.
    Seeded,
}

impl Bootstrap {
    /// Sizes above this use [`Bootstrap::Seeded`] by default.
    pub const SEEDED_ABOVE: usize = 2000;

    /// The default for `n` nodes: joins up to [`Self::SEEDED_ABOVE`],
    /// seeded above.
    pub fn auto(n: usize) -> Bootstrap {
        if n > Self::SEEDED_ABOVE {
            Bootstrap::Seeded
        } else {
            Bootstrap::Joins
        }
    }
}

/// [`converged_cluster`], built the way `bootstrap` says.
pub fn converged_cluster_with(
    seed: u64,
    config: Config,
    profile: Profile,
    loss: f64,
    n: usize,
    bootstrap: Bootstrap,
) -> Sim {
    if bootstrap == Bootstrap::Joins {
        return converged_cluster(seed, config, profile, loss, n);
    }
    let mut sim = Sim::new(seed, config, profile, 0.0);
    assert!(
        sim.bootstrap_seeded_and_converge(n),
        "seed {seed}: {n} seeded nodes are not converged"
    );
    if loss > 0.0 {
        sim.act(Action::Loss(loss));
    }
    sim
}

/// Picks a running node uniformly with the simulation's generator.
fn random_running(sim: &mut Sim, exclude: &BTreeSet<usize>) -> usize {
    let candidates: Vec<usize> = (0..sim.len())
        .filter(|&i| sim.is_running(i) && !exclude.contains(&i))
        .collect();
    assert!(!candidates.is_empty(), "no running node to pick");
    candidates[(sim.random() % candidates.len() as u64) as usize]
}

/// Mean, smallest and largest of a sample.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Number of values.
    pub count: usize,
    /// Mean.
    pub mean: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Summary {
    fn of(v: &[f64]) -> Summary {
        if v.is_empty() {
            return Summary::default();
        }
        let sum: f64 = v.iter().sum();
        Summary {
            count: v.len(),
            mean: models::round6(sum / v.len() as f64),
            min: v.iter().copied().fold(f64::INFINITY, f64::min),
            max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

// ----- detection -------------------------------------------------------------

/// One crash.
#[derive(Clone, Debug, Serialize)]
pub struct DetectionTrial {
    /// The crashed node.
    pub victim: usize,
    /// Crash to the first suspicion anywhere, seconds.
    pub first_suspect_s: Option<f64>,
    /// Crash to the first death declaration anywhere, seconds.
    pub first_dead_s: Option<f64>,
    /// Crash to every running node holding the victim dead, seconds.
    pub all_dead_s: Option<f64>,
}

/// The `detection` report.
#[derive(Clone, Debug, Serialize)]
pub struct DetectionReport {
    /// Experiment name.
    pub experiment: &'static str,
    /// Cluster size.
    pub nodes: usize,
    /// Master seed.
    pub seed: u64,
    /// Network and protocol preset.
    pub profile: &'static str,
    /// Packet loss.
    pub loss: f64,
    /// Suspicion timeout bounds of wire-protocol.md §8 for this size, s.
    pub suspicion_min_s: f64,
    /// Upper suspicion bound, s.
    pub suspicion_max_s: f64,
    /// The bound the property tests hold `all_dead_s` to, s.
    pub detection_bound_s: f64,
    /// Each crash.
    pub trials: Vec<DetectionTrial>,
    /// Summaries over trials.
    pub first_suspect_s: Summary,
    /// Summary of `first_dead_s`.
    pub first_dead_s: Summary,
    /// Summary of `all_dead_s`.
    pub all_dead_s: Summary,
    /// Death declarations about nodes that had not crashed.
    pub false_positives: usize,
}

/// The bound within which every node must hold a crashed node dead, from
/// the crash: every survivor probes each member once per round-robin pass
/// (a reshuffle can make that up to two passes of `n − 1` probes), the
/// probe fails after one interval, the suspicion runs at most its maximum
/// (wire-protocol.md §8), and the dead message then needs a few gossip
/// rounds: allow 10 gossip intervals and one more probe interval.
pub fn detection_bound(config: &Config, n: usize) -> Duration {
    let (_, max) = suspicion_bounds(
        config.suspicion_mult,
        config.suspicion_max_timeout_mult,
        n,
        config.probe_interval,
    );
    let passes = config.probe_interval * (2 * n.saturating_sub(1) as u32).max(1);
    passes + config.probe_interval * 2 + max + config.gossip_interval * 10
}

/// Crash `trials` random nodes one after the other in a converged cluster
/// of `n`; time suspicion, first death and full agreement.
pub fn detection(
    n: usize,
    seed: u64,
    profile: Profile,
    loss: f64,
    trials: usize,
) -> DetectionReport {
    let config = profile.proto_config();
    let mut sim = converged_cluster(seed, config.clone(), profile.clone(), loss, n);
    sim.run_for(Duration::from_secs(5));
    sim.recording = true;
    let start_log = sim.log.len();
    let mut crashed = BTreeSet::new();
    let mut out = Vec::new();
    let bound = detection_bound(&config, n);
    for _ in 0..trials.min(n.saturating_sub(2)) {
        let victim = random_running(&mut sim, &crashed);
        crashed.insert(victim);
        let t0 = sim.now();
        let from = sim.log.len();
        sim.act(Action::Crash(victim));
        let all = sim.run_while_not(bound * 3, Duration::from_millis(50), |s| {
            (0..s.len()).filter(|&i| s.is_running(i)).all(|i| {
                s.state_seen(i, victim)
                    .is_none_or(|st| st.is_dead_or_left())
            })
        });
        let first = |k: Kind, log: &[Record]| {
            log[from..]
                .iter()
                .find(|r| r.kind == k && r.subject as usize == victim)
                .map(|r| since(r.t, t0))
        };
        out.push(DetectionTrial {
            victim,
            first_suspect_s: first(Kind::Suspect, &sim.log),
            first_dead_s: first(Kind::Dead, &sim.log),
            all_dead_s: all.map(secs),
        });
        sim.run_for(Duration::from_secs(2));
    }
    let false_positives = sim.log[start_log..]
        .iter()
        .filter(|r| r.kind == Kind::Dead && !crashed.contains(&(r.subject as usize)))
        .count();
    let pick =
        |f: fn(&DetectionTrial) -> Option<f64>| -> Vec<f64> { out.iter().filter_map(f).collect() };
    let (min, max) = suspicion_bounds(
        config.suspicion_mult,
        config.suspicion_max_timeout_mult,
        n,
        config.probe_interval,
    );
    DetectionReport {
        experiment: "detection",
        nodes: n,
        seed,
        profile: profile.name,
        loss,
        suspicion_min_s: secs(min),
        suspicion_max_s: secs(max),
        detection_bound_s: secs(bound),
        first_suspect_s: Summary::of(&pick(|t| t.first_suspect_s)),
        first_dead_s: Summary::of(&pick(|t| t.first_dead_s)),
        all_dead_s: Summary::of(&pick(|t| t.all_dead_s)),
        trials: out,
        false_positives,
    }
}

// ----- dissemination ---------------------------------------------------------

/// Time and gossip rounds until a share of the nodes know.
#[derive(Clone, Debug, Serialize)]
pub struct Quantile {
    /// The share (0.5, 0.99, 0.999, 1).
    pub share: f64,
    /// Nodes that must know.
    pub nodes: usize,
    /// Seconds from the start of the spread, if reached.
    pub time_s: Option<f64>,
    /// `time_s` in gossip intervals.
    pub rounds: Option<f64>,
    /// What the SWIM model (with retransmit limit) expects, in rounds.
    pub swim_model_rounds: Option<usize>,
    /// What Serf's convergence model expects, in rounds.
    pub serf_model_rounds: Option<usize>,
}

/// How one piece of news spread.
#[derive(Clone, Debug, Serialize)]
pub struct Spread {
    /// What spread and from when it is timed.
    pub what: &'static str,
    /// Nodes that could learn it.
    pub audience: usize,
    /// Per share.
    pub quantiles: Vec<Quantile>,
    /// `[seconds, share informed]`, at most 64 points, for plots.
    pub curve: Vec<[f64; 2]>,
}

/// One cluster size and loss rate.
#[derive(Clone, Debug, Serialize)]
pub struct DisseminationRun {
    /// Cluster size before the join.
    pub nodes: usize,
    /// Packet loss.
    pub loss: f64,
    /// How the cluster was built.
    pub bootstrap: Bootstrap,
    /// Time to bootstrap and converge, seconds (virtual; 0 when seeded).
    pub bootstrap_s: f64,
    /// A node joins: timed from its join call, "know" = hold it alive.
    pub join: Spread,
    /// A node crashes: timed from the first death declaration, "know" =
    /// hold it dead.
    pub failure: Spread,
    /// Crash to first death declaration, seconds.
    pub failure_detected_s: Option<f64>,
    /// Classic closed form for push gossip to reach everyone, rounds.
    pub swim_rounds_all_closed_form: f64,
    /// Retransmit limit for this size.
    pub retransmit_limit: usize,
}

/// The `dissemination` report.
#[derive(Clone, Debug, Serialize)]
pub struct DisseminationReport {
    /// Experiment name.
    pub experiment: &'static str,
    /// Master seed.
    pub seed: u64,
    /// Network and protocol preset.
    pub profile: &'static str,
    /// Gossip interval, seconds (one round).
    pub gossip_interval_s: f64,
    /// Gossip fanout.
    pub gossip_nodes: usize,
    /// One run per size and loss.
    pub runs: Vec<DisseminationRun>,
}

/// Shares reported.
pub const SHARES: [f64; 4] = [0.5, 0.99, 0.999, 1.0];

fn spread(
    what: &'static str,
    times: &mut [f64],
    audience: usize,
    config: &Config,
    loss: f64,
) -> Spread {
    times.sort_by(f64::total_cmp);
    let gi = secs(config.gossip_interval);
    let limit = retransmit_limit(config.retransmit_mult, audience);
    let swim = models::swim_curve(audience, config.gossip_nodes, loss, limit, 10_000);
    let serf = models::serf_curve(audience, config.gossip_nodes, loss, 10_000);
    let quantiles = SHARES
        .iter()
        .map(|&share| {
            let need = ((share * audience as f64).ceil() as usize).clamp(1, audience);
            let time_s = times.get(need - 1).copied();
            Quantile {
                share,
                nodes: need,
                time_s,
                rounds: time_s.map(|t| models::round6(t / gi)),
                swim_model_rounds: models::rounds_to(&swim, share, audience),
                serf_model_rounds: models::rounds_to(&serf, share, audience),
            }
        })
        .collect();
    let step = times.len().div_ceil(63).max(1);
    let mut curve: Vec<[f64; 2]> = vec![[0.0, 0.0]];
    for (k, &t) in times.iter().enumerate() {
        if (k + 1) % step == 0 || k + 1 == times.len() {
            curve.push([t, models::round6((k + 1) as f64 / audience as f64)]);
        }
    }
    Spread {
        what,
        audience,
        quantiles,
        curve,
    }
}

/// One dissemination run: `n` nodes, loss `loss`, bootstrapped the
/// default way for the size ([`Bootstrap::auto`]).
pub fn dissemination_run(n: usize, seed: u64, profile: Profile, loss: f64) -> DisseminationRun {
    dissemination_run_with(n, seed, profile, loss, Bootstrap::auto(n))
}

/// The first record, per other node, of that node seeing `newcomer` join:
/// when the news of a join reached each member.
pub(crate) fn first_joins_seen(log: &[Record], newcomer: usize) -> impl Iterator<Item = &Record> {
    let mut seen = BTreeSet::new();
    log.iter().filter(move |r| {
        r.kind == Kind::Join
            && r.subject as usize == newcomer
            && r.node as usize != newcomer
            && seen.insert(r.node)
    })
}

/// [`dissemination_run`] with the given bootstrap.
pub fn dissemination_run_with(
    n: usize,
    seed: u64,
    profile: Profile,
    loss: f64,
    bootstrap: Bootstrap,
) -> DisseminationRun {
    let config = profile.proto_config();
    let mut sim = converged_cluster_with(seed, config.clone(), profile, loss, n, bootstrap);
    let bootstrap_s = since(sim.now(), Instant::ZERO);
    sim.run_for(Duration::from_secs(3));
    sim.recording = true;
    // Long enough for push/pull to fill what gossip misses.
    let limit = bootstrap_limit(&config, n);

    // A node joins.
    let newcomer = sim.len();
    let contact = random_running(&mut sim, &BTreeSet::new());
    let t0 = sim.now();
    let from = sim.log.len();
    sim.act(Action::Start {
        node: newcomer,
        join: Some(contact),
    });
    let target = n;
    sim.run_while_not(limit, Duration::from_millis(100), |s| {
        s.log[from..]
            .iter()
            .filter(|r| r.kind == Kind::Join && r.subject as usize == newcomer)
            .count()
            > target
    });
    let mut times: Vec<f64> = first_joins_seen(&sim.log[from..], newcomer)
        .map(|r| since(r.t, t0))
        .collect();
    let join = spread("join", &mut times, n, &config, loss);

    // Another node fails.
    sim.run_for(Duration::from_secs(2));
    let mut not = BTreeSet::new();
    not.insert(newcomer);
    let victim = random_running(&mut sim, &not);
    let tc = sim.now();
    let from = sim.log.len();
    sim.act(Action::Crash(victim));
    let bound = detection_bound(&config, n + 1);
    sim.run_while_not(bound + limit, Duration::from_millis(100), |s| {
        (0..s.len()).filter(|&i| s.is_running(i)).all(|i| {
            s.state_seen(i, victim)
                .is_none_or(|st| st.is_dead_or_left())
        })
    });
    let first_dead = sim.log[from..]
        .iter()
        .find(|r| r.kind == Kind::Dead && r.subject as usize == victim)
        .map(|r| r.t);
    let mut seen = BTreeSet::new();
    let mut times: Vec<f64> = match first_dead {
        Some(td) => sim.log[from..]
            .iter()
            .filter(|r| r.kind == Kind::Dead && r.subject as usize == victim && seen.insert(r.node))
            .map(|r| since(r.t, td))
            .collect(),
        None => Vec::new(),
    };
    let failure = spread("failure", &mut times, n, &config, loss);
    DisseminationRun {
        nodes: n,
        loss,
        bootstrap,
        bootstrap_s,
        join,
        failure,
        failure_detected_s: first_dead.map(|t| since(t, tc)),
        swim_rounds_all_closed_form: models::swim_rounds_all(n, config.gossip_nodes, loss),
        retransmit_limit: retransmit_limit(config.retransmit_mult, n),
    }
}

/// Every size × loss combination.
pub fn dissemination(
    sizes: &[usize],
    losses: &[f64],
    seed: u64,
    profile: Profile,
) -> DisseminationReport {
    dissemination_with(sizes, losses, seed, profile, None)
}

/// [`dissemination`], every run bootstrapped as `bootstrap` says (`None`:
/// [`Bootstrap::auto`] for each size).
pub fn dissemination_with(
    sizes: &[usize],
    losses: &[f64],
    seed: u64,
    profile: Profile,
    bootstrap: Option<Bootstrap>,
) -> DisseminationReport {
    let config = profile.proto_config();
    let mut runs = Vec::new();
    for &n in sizes {
        for &loss in losses {
            let s = splitmix64(seed ^ (n as u64) << 16 ^ (loss * 1e6) as u64);
            let b = bootstrap.unwrap_or(Bootstrap::auto(n));
            runs.push(dissemination_run_with(n, s, profile.clone(), loss, b));
        }
    }
    DisseminationReport {
        experiment: "dissemination",
        seed,
        profile: profile.name,
        gossip_interval_s: secs(config.gossip_interval),
        gossip_nodes: config.gossip_nodes,
        runs,
    }
}

// ----- lifeguard -------------------------------------------------------------

/// Which failure detector the nodes run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Detector {
    /// Plain SWIM: fixed suspicion timeout, no health score, no nacks, no
    /// suspect piggyback.
    Swim,
    /// memberlist's defaults (Lifeguard on).
    Lifeguard,
}

/// The one place that turns Lifeguard off, giving plain SWIM:
///
/// - `awareness_max_multiplier = 1` pins the health score at 0 (no local
///   health multiplier);
/// - `suspicion_max_timeout_mult = 1` makes the suspicion timeout fixed at
///   its minimum (no dynamic suspicion: confirmations change nothing);
/// - `lifeguard_suspect_piggyback = false`: probes of a suspect node carry
///   no accusation (no "buddy system");
/// - `lifeguard_nacks = false`: indirect probes ask for no nacks;
/// - `lifeguard_health_scaled_suspicion = false`: a node's own health does
///   not stretch its suspicion timeouts (headcount's extension; with the
///   score pinned at 0 it would change nothing anyway);
/// - `retry_direct_ping = false`: one direct ping per probe, as SWIM and
///   memberlist send (headcount's second direct ping is not Lifeguard, but
///   the baseline stays the protocol as published).
pub fn plain_swim(mut c: Config) -> Config {
    c.awareness_max_multiplier = 1;
    c.suspicion_max_timeout_mult = 1;
    c.lifeguard_suspect_piggyback = false;
    c.lifeguard_nacks = false;
    c.lifeguard_health_scaled_suspicion = false;
    c.retry_direct_ping = false;
    c
}

/// How distressed nodes suffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stress {
    /// Stop processing entirely (timers and input), then catch up late.
    Starve,
    /// Keep timers on time but handle every inbound message `lag` late.
    Slow,
}

/// How distressed nodes are stressed, in cycles: a stressed stretch, then
/// a healthy one, lengths uniform in the given ranges.
#[derive(Clone, Debug, Serialize)]
pub struct StarveCycle {
    /// Kind of stress.
    pub stress: Stress,
    /// Shortest stressed stretch, ms.
    pub starve_min_ms: u64,
    /// Longest stressed stretch, ms.
    pub starve_max_ms: u64,
    /// Shortest healthy stretch between, ms.
    pub run_min_ms: u64,
    /// Longest healthy stretch, ms.
    pub run_max_ms: u64,
    /// Smallest inbound lag of a slow stretch, ms (`slow` only).
    pub lag_min_ms: u64,
    /// Largest inbound lag, ms (`slow` only).
    pub lag_max_ms: u64,
}

impl Default for StarveCycle {
    fn default() -> Self {
        StarveCycle {
            stress: Stress::Slow,
            starve_min_ms: 10_000,
            starve_max_ms: 60_000,
            run_min_ms: 5_000,
            run_max_ms: 30_000,
            lag_min_ms: 500,
            lag_max_ms: 5_000,
        }
    }
}

/// False positives under one detector.
#[derive(Clone, Debug, Serialize)]
pub struct FalsePositives {
    /// Distinct (member, incarnation) death declarations, all about
    /// members that never crashed.
    pub false_positives: usize,
    /// Those about members that were not distressed.
    pub false_positives_healthy: usize,
    /// Death events over all observers (one declaration seen by k nodes
    /// counts k times).
    pub dead_events: usize,
    /// Those about healthy members.
    pub dead_events_healthy: usize,
    /// Of `false_positives`, those first declared by a distressed member
    /// (its own suspicion timer ran out while the refutation sat in its
    /// slow receive queue).
    pub declared_by_distressed: usize,
    /// Of `false_positives`, those that at least one healthy member
    /// believed: what the healthy part of the cluster saw.
    pub seen_by_healthy: usize,
    /// Death events at healthy observers (one declaration believed by k
    /// healthy members counts k times).
    pub dead_events_at_healthy: usize,
    /// Suspicion events over all observers.
    pub suspect_events: usize,
    /// Refutations: incarnation bumps of distressed members.
    pub refutations_distressed: u64,
    /// Refutations of healthy members.
    pub refutations_healthy: u64,
    /// Highest health score any distressed member reached.
    pub max_score_distressed: u32,
    /// Highest health score any healthy member reached.
    pub max_score_healthy: u32,
    /// Datagrams sent during the measurement.
    pub packets: u64,
}

/// One value of D.
#[derive(Clone, Debug, Serialize)]
pub struct LifeguardRun {
    /// Distressed members.
    pub distressed: usize,
    /// Which ones.
    pub distressed_nodes: Vec<usize>,
    /// Plain SWIM (as far as [`plain_swim`] can make it).
    pub swim: FalsePositives,
    /// Lifeguard.
    pub lifeguard: FalsePositives,
    /// SWIM total / Lifeguard total (`null` when Lifeguard had none).
    pub reduction: Option<f64>,
    /// Same for false positives about healthy members.
    pub reduction_healthy: Option<f64>,
    /// Same for declarations some healthy member believed.
    pub reduction_seen_by_healthy: Option<f64>,
}

/// The `lifeguard` report.
#[derive(Clone, Debug, Serialize)]
pub struct LifeguardReport {
    /// Experiment name.
    pub experiment: &'static str,
    /// Cluster size.
    pub nodes: usize,
    /// Master seed.
    pub seed: u64,
    /// Network and protocol preset.
    pub profile: &'static str,
    /// Packet loss.
    pub loss: f64,
    /// Measured stretch, seconds.
    pub duration_s: u64,
    /// Starvation pattern.
    pub cycle: StarveCycle,
    /// One run per D (the first is the headline one).
    pub runs: Vec<LifeguardRun>,
    /// Of the first run, for convenience: SWIM's counts.
    pub swim: FalsePositives,
    /// Of the first run: Lifeguard's counts.
    pub lifeguard: FalsePositives,
    /// Of the first run: SWIM total / Lifeguard total.
    pub reduction: Option<f64>,
}

#[allow(clippy::too_many_arguments)]
fn measure_false_positives(
    n: usize,
    seed: u64,
    config: Config,
    profile: Profile,
    loss: f64,
    distressed: &[usize],
    schedule: &[(Duration, Action)],
    duration: Duration,
) -> FalsePositives {
    let mut sim = converged_cluster(seed, config, profile, loss, n);
    sim.run_for(Duration::from_secs(5));
    sim.recording = true;
    let t0 = sim.now();
    let p0 = sim.stats().packets_sent;
    for (at, action) in schedule {
        sim.schedule(t0 + *at, action.clone());
    }
    let inc = |sim: &Sim| -> Vec<u32> {
        (0..n)
            .map(|i| sim.node(i).map_or(0, |x| x.local_member().incarnation))
            .collect()
    };
    let inc0 = inc(&sim);
    sim.run_for(duration);
    let inc1 = inc(&sim);
    let bad: BTreeSet<u32> = distressed.iter().map(|&i| i as u32).collect();
    let mut distinct = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let mut fp = FalsePositives {
        false_positives: 0,
        false_positives_healthy: 0,
        dead_events: 0,
        dead_events_healthy: 0,
        declared_by_distressed: 0,
        seen_by_healthy: 0,
        dead_events_at_healthy: 0,
        suspect_events: 0,
        refutations_distressed: 0,
        refutations_healthy: 0,
        max_score_distressed: 0,
        max_score_healthy: 0,
        packets: sim.stats().packets_sent - p0,
    };
    for (i, (a, b)) in inc0.iter().zip(&inc1).enumerate() {
        let bumps = u64::from(b.saturating_sub(*a));
        if bad.contains(&(i as u32)) {
            fp.refutations_distressed += bumps;
        } else {
            fp.refutations_healthy += bumps;
        }
    }
    for r in &sim.log {
        match r.kind {
            Kind::Dead => {
                let healthy = !bad.contains(&r.subject);
                let observer_healthy = !bad.contains(&r.node);
                fp.dead_events += 1;
                fp.dead_events_healthy += usize::from(healthy);
                fp.dead_events_at_healthy += usize::from(observer_healthy);
                // The first to record a (member, incarnation) death is
                // the one whose suspicion timer ran out; the rest learnt it.
                if distinct.insert((r.subject, r.inc)) {
                    fp.false_positives += 1;
                    fp.false_positives_healthy += usize::from(healthy);
                    fp.declared_by_distressed += usize::from(!observer_healthy);
                }
                if observer_healthy && seen.insert((r.subject, r.inc)) {
                    fp.seen_by_healthy += 1;
                }
            }
            Kind::Suspect => fp.suspect_events += 1,
            Kind::Health => {
                if bad.contains(&r.node) {
                    fp.max_score_distressed = fp.max_score_distressed.max(r.inc);
                } else {
                    fp.max_score_healthy = fp.max_score_healthy.max(r.inc);
                }
            }
            _ => {}
        }
    }
    fp
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| models::round6(a as f64 / b as f64))
}

/// The Lifeguard paper's experiment: for each D, D random members starve
/// in cycles for `duration`; count false death declarations with plain
/// SWIM and with Lifeguard, on the same starvation schedule.
pub fn lifeguard(
    n: usize,
    ds: &[usize],
    seed: u64,
    profile: Profile,
    loss: f64,
    duration: Duration,
    cycle: StarveCycle,
) -> LifeguardReport {
    let base = profile.proto_config();
    let mut runs = Vec::new();
    for &d in ds {
        let d = d.min(n);
        // The victims and the schedule come from their own generator so
        // that both detectors see exactly the same distress.
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(splitmix64(seed ^ 0x5eed ^ d as u64));
        let mut pool: Vec<usize> = (0..n).collect();
        let mut distressed = Vec::new();
        for _ in 0..d {
            let k = (rng.next_u64() % pool.len() as u64) as usize;
            distressed.push(pool.swap_remove(k));
        }
        distressed.sort_unstable();
        let uni = |rng: &mut Xoshiro256PlusPlus, lo: u64, hi: u64| {
            Duration::from_millis(lo + rng.next_u64() % (hi - lo + 1))
        };
        let mut schedule = Vec::new();
        for &node in &distressed {
            let mut t = uni(&mut rng, 0, cycle.run_max_ms);
            while t < duration {
                let s = uni(&mut rng, cycle.starve_min_ms, cycle.starve_max_ms);
                let action = match cycle.stress {
                    Stress::Starve => Action::Starve(node, s),
                    Stress::Slow => {
                        let lag = uni(&mut rng, cycle.lag_min_ms, cycle.lag_max_ms);
                        Action::Slow(node, lag, s)
                    }
                };
                schedule.push((t, action));
                t += s + uni(&mut rng, cycle.run_min_ms, cycle.run_max_ms);
            }
        }
        let run_seed = splitmix64(seed ^ d as u64);
        let swim = measure_false_positives(
            n,
            run_seed,
            plain_swim(base.clone()),
            profile.clone(),
            loss,
            &distressed,
            &schedule,
            duration,
        );
        let lg = measure_false_positives(
            n,
            run_seed,
            base.clone(),
            profile.clone(),
            loss,
            &distressed,
            &schedule,
            duration,
        );
        runs.push(LifeguardRun {
            distressed: d,
            distressed_nodes: distressed,
            reduction: ratio(swim.false_positives, lg.false_positives),
            reduction_healthy: ratio(swim.false_positives_healthy, lg.false_positives_healthy),
            reduction_seen_by_healthy: ratio(swim.seen_by_healthy, lg.seen_by_healthy),
            swim,
            lifeguard: lg,
        });
    }
    let first = runs.first().cloned();
    LifeguardReport {
        experiment: "lifeguard",
        nodes: n,
        seed,
        profile: profile.name,
        loss,
        duration_s: duration.as_secs(),
        cycle,
        swim: first
            .as_ref()
            .map(|r| r.swim.clone())
            .expect("at least one D"),
        lifeguard: first
            .as_ref()
            .map(|r| r.lifeguard.clone())
            .expect("at least one D"),
        reduction: first.and_then(|r| r.reduction),
        runs,
    }
}

// ----- scale -----------------------------------------------------------------

/// One cluster size, deterministic part.
#[derive(Clone, Debug, Serialize)]
pub struct ScaleRun {
    /// Cluster size.
    pub nodes: usize,
    /// Virtual seconds to bootstrap and converge.
    pub bootstrap_sim_s: f64,
    /// Virtual seconds simulated after convergence.
    pub sim_s: f64,
    /// Heap entries processed in that stretch.
    pub steps: u64,
    /// Node inputs handled in that stretch.
    pub node_inputs: u64,
    /// Datagrams sent in that stretch.
    pub packets: u64,
    /// Streams dialed in that stretch.
    pub streams: u64,
}

/// Wall-clock part of one size.
#[derive(Clone, Debug, Serialize)]
pub struct ScaleWall {
    /// Cluster size.
    pub nodes: usize,
    /// Wall seconds to bootstrap.
    pub bootstrap: f64,
    /// Wall seconds for the measured stretch.
    pub run: f64,
    /// Simulated node-seconds per wall-clock second in the stretch.
    pub node_seconds_per_s: f64,
}

/// Bootstraps `n` nodes, then simulates `sim_s` seconds; returns the
/// deterministic counts and the wall times.
pub fn scale_run(n: usize, seed: u64, profile: Profile, sim_s: u64) -> (ScaleRun, ScaleWall) {
    let config = profile.proto_config();
    let w0 = std::time::Instant::now();
    let mut sim = converged_cluster(seed, config, profile, 0.0, n);
    let boot_wall = w0.elapsed().as_secs_f64();
    let boot_sim = since(sim.now(), Instant::ZERO);
    let s0 = sim.stats().clone();
    let w1 = std::time::Instant::now();
    sim.run_for(Duration::from_secs(sim_s));
    let run_wall = w1.elapsed().as_secs_f64();
    let s1 = sim.stats().clone();
    (
        ScaleRun {
            nodes: n,
            bootstrap_sim_s: boot_sim,
            sim_s: sim_s as f64,
            steps: s1.steps - s0.steps,
            node_inputs: s1.node_inputs - s0.node_inputs,
            packets: s1.packets_sent - s0.packets_sent,
            streams: s1.streams - s0.streams,
        },
        ScaleWall {
            nodes: n,
            bootstrap: boot_wall,
            run: run_wall,
            node_seconds_per_s: (n as f64 * sim_s as f64) / run_wall.max(1e-9),
        },
    )
}
