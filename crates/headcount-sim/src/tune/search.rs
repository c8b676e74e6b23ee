//! The knob search behind `headcount tune`: every combination of a grid of
//! timing knobs is predicted by the [`model`](super::model), the ones that
//! meet every target compete on a balanced score, and when none meets them
//! all the answer says which targets conflict and shows the trade-off.

use core::time::Duration;

use headcount_proto::Config;
use serde::Serialize;

use std::collections::HashMap;

use super::model::{predict_with, Curves, Prediction, Shared, Situation, DETECTION_DRAWS};

/// The timing knobs `headcount tune` chooses. Everything else stays as in
/// the preset the search starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Knobs {
    /// `probe_interval`.
    #[serde(serialize_with = "ser_dur")]
    pub probe_interval: Duration,
    /// `probe_timeout`.
    #[serde(serialize_with = "ser_dur")]
    pub probe_timeout: Duration,
    /// `suspicion_mult`.
    pub suspicion_mult: u32,
    /// `suspicion_max_timeout_mult`.
    pub suspicion_max_timeout_mult: u32,
    /// `gossip_interval`.
    #[serde(serialize_with = "ser_dur")]
    pub gossip_interval: Duration,
    /// `gossip_nodes`.
    pub gossip_nodes: usize,
    /// `retransmit_mult`.
    pub retransmit_mult: u32,
    /// `push_pull_interval`.
    #[serde(serialize_with = "ser_dur")]
    pub push_pull_interval: Duration,
}

fn ser_dur<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&fmt_duration(*d))
}

/// A duration as the agent's configuration file writes it: `200ms`, `1s`,
/// `1.5s`, `2m` (`0.5ms` below a millisecond).
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        format!("{}ms", d.as_micros() as f64 / 1000.0)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{}s", ms as f64 / 1000.0)
    }
}

impl Knobs {
    /// The knobs of a config.
    pub fn of(c: &Config) -> Self {
        Knobs {
            probe_interval: c.probe_interval,
            probe_timeout: c.probe_timeout,
            suspicion_mult: c.suspicion_mult,
            suspicion_max_timeout_mult: c.suspicion_max_timeout_mult,
            gossip_interval: c.gossip_interval,
            gossip_nodes: c.gossip_nodes,
            retransmit_mult: c.retransmit_mult,
            push_pull_interval: c.push_pull_interval,
        }
    }

    /// `base` with these knobs.
    pub fn apply(&self, base: &Config) -> Config {
        base.clone()
            .with_probe_interval(self.probe_interval)
            .with_probe_timeout(self.probe_timeout)
            .with_suspicion_mult(self.suspicion_mult)
            .with_suspicion_max_timeout_mult(self.suspicion_max_timeout_mult)
            .with_gossip_interval(self.gossip_interval)
            .with_gossip_nodes(self.gossip_nodes)
            .with_retransmit_mult(self.retransmit_mult)
            .with_push_pull_interval(self.push_pull_interval)
    }
}

/// What the user asks for; `None` is "no target".
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Targets {
    /// Crash to everyone knowing, median, seconds.
    pub detect: Option<f64>,
    /// News to 99 % of the members, seconds.
    pub spread: Option<f64>,
    /// UDP + TCP bytes per member per second.
    pub bandwidth: Option<f64>,
    /// False deaths per cluster per day.
    pub false_deaths: Option<f64>,
}

/// One target's figure: the name, the predicted value, the target.
fn figures(p: &Prediction, t: &Targets) -> [(&'static str, f64, Option<f64>); 4] {
    [
        ("detection", p.detect_median, t.detect),
        ("dissemination", p.spread_99, t.spread),
        ("bandwidth", p.bandwidth.total, t.bandwidth),
        ("false deaths", p.false_deaths_per_day, t.false_deaths),
    ]
}

/// The worst ratio of a figure to its target (≤ 1: every target met).
pub fn violation(p: &Prediction, t: &Targets) -> f64 {
    figures(p, t)
        .iter()
        .filter_map(|&(_, v, t)| t.map(|t| ratio(v, t)))
        .fold(0.0, f64::max)
}

fn ratio(v: f64, t: f64) -> f64 {
    if t > 0.0 {
        v / t
    } else if v > 0.0 {
        f64::INFINITY
    } else {
        0.0
    }
}

/// A candidate and its prediction.
#[derive(Clone, Debug, Serialize)]
pub struct Candidate {
    /// The knobs.
    pub knobs: Knobs,
    /// What the model predicts for them (at the largest size).
    pub prediction: Prediction,
    /// For a range of sizes: `prediction` with each targeted figure
    /// replaced by the worse of its values at the two ends (false deaths
    /// under stalls, for one, are worse at the small end). What the
    /// targets are checked against.
    pub worst_case: Option<Prediction>,
}

impl Candidate {
    /// The prediction the targets are checked against.
    pub fn checked(&self) -> &Prediction {
        self.worst_case.as_ref().unwrap_or(&self.prediction)
    }
}

/// `high` with each targeted figure the worse of `high`'s and `low`'s.
fn worse(high: &Prediction, low: &Prediction) -> Prediction {
    let mut w = high.clone();
    w.detect_median = high.detect_median.max(low.detect_median);
    w.spread_99 = high.spread_99.max(low.spread_99);
    w.bandwidth.total = high.bandwidth.total.max(low.bandwidth.total);
    w.false_deaths_per_day = high.false_deaths_per_day.max(low.false_deaths_per_day);
    w
}

/// A target no candidate meets, with the best value any reaches.
#[derive(Clone, Debug, Serialize)]
pub struct Unreachable {
    /// Which target.
    pub target: &'static str,
    /// Its value.
    pub wanted: f64,
    /// The best any configuration in the search reaches, ignoring the other
    /// targets.
    pub best: f64,
    /// That configuration.
    pub knobs: Knobs,
}

/// The search's answer.
#[derive(Clone, Debug, Serialize)]
pub struct Recommendation {
    /// Whether the recommended configuration meets every target.
    pub feasible: bool,
    /// The recommendation (the least violating one when none is feasible).
    pub best: Candidate,
    /// Targets no configuration meets even alone.
    pub unreachable: Vec<Unreachable>,
    /// Targets reachable alone but not together with the others.
    pub conflicting: Vec<&'static str>,
    /// When infeasible: configurations along the trade-off curve between
    /// the conflicting targets (each best for one target within a growing
    /// allowance on the others).
    pub trade_off: Vec<Candidate>,
    /// Candidates predicted.
    pub searched: usize,
}

/// The grid the search walks for situation `s`.
pub fn grid(s: &Situation) -> Vec<Knobs> {
    // A probe timeout covers the p99 round trip twice (and at least 10 ms,
    // timers and scheduling); the interval leaves time for the indirect
    // probes after it.
    let pt_floor = (s.rtt_p99 * 2).max(Duration::from_millis(10));
    let ms = Duration::from_millis;
    let intervals = [
        ms(100),
        ms(200),
        ms(300),
        ms(500),
        ms(750),
        ms(1000),
        ms(1500),
        ms(2000),
        ms(3000),
        ms(5000),
        ms(10_000),
    ];
    let mut out = Vec::new();
    for pi in intervals {
        let pt = pt_floor.max(pi / 5);
        if pt * 2 > pi {
            continue;
        }
        // Round the timeout to whole milliseconds for readable configs.
        let pt = ms(pt.as_millis() as u64);
        for sm in [2, 3, 4, 5, 6, 8] {
            for smax in [2, 4, 6] {
                for gi in [ms(50), ms(100), ms(200), ms(500), ms(1000)] {
                    for gn in [2, 3, 4, 6] {
                        for rm in [2, 3, 4, 6] {
                            for ppi in [15, 30, 60, 120] {
                                out.push(Knobs {
                                    probe_interval: pi,
                                    probe_timeout: pt,
                                    suspicion_mult: sm,
                                    suspicion_max_timeout_mult: smax,
                                    gossip_interval: gi,
                                    gossip_nodes: gn,
                                    retransmit_mult: rm,
                                    push_pull_interval: Duration::from_secs(ppi),
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// The balanced score (lower is better). A figure with a target counts as
/// its ratio to the target but no less than 0.7: beating a target by more
/// than 30 % earns nothing, so the search spends what is left on the other
/// figures instead of overshooting one. A figure without a target counts
/// as its ratio to what `reference` (the base preset) gives (times again
/// no less than 0.7). False deaths
/// count per one a day (or per the target). A small share of every ratio
/// to the reference breaks ties towards the cheaper, calmer config.
fn score(p: &Prediction, t: &Targets, reference: &Prediction) -> f64 {
    let term = |v: f64, target: Option<f64>, refv: f64, floor: f64| {
        let tie = 0.01 * v / refv.max(1e-9);
        tie + match target {
            Some(t) => (v / t.max(1e-9)).max(0.7),
            None => (v / refv.max(1e-9)).max(floor),
        }
    };
    // Untargeted times get no credit below 70 % of the preset's either;
    // untargeted bandwidth is worth saving all the way down.
    term(p.detect_median, t.detect, reference.detect_median, 0.7)
        + term(p.spread_99, t.spread, reference.spread_99, 0.7)
        + term(p.bandwidth.total, t.bandwidth, reference.bandwidth.total, 0.0)
        + p.false_deaths_per_day / t.false_deaths.unwrap_or(1.0).max(1e-9)
        // Fewer than three suspicion multiples leave Lifeguard no
        // confirmations to wait for (k = mult − 2): a member that misses a
        // few probes is declared on the shortest timeout.
        + if p.suspicion_k == 0 { 0.5 } else { 0.0 }
}

/// How far knobs are from the base preset's: 0.05 per doubling or halving
/// of each knob. Added to the score so that knobs no target needs stay
/// where Go's preset has them (gossip faster than needed costs no bytes in
/// the model, but it costs wake-ups and bursts).
fn distance(k: &Knobs, base: &Knobs) -> f64 {
    let d = |a: f64, b: f64| (a.max(1e-9) / b.max(1e-9)).log2().abs();
    let t = |a: Duration, b: Duration| d(a.as_secs_f64(), b.as_secs_f64());
    0.05 * (t(k.probe_interval, base.probe_interval)
        + t(k.gossip_interval, base.gossip_interval)
        + t(k.push_pull_interval, base.push_pull_interval)
        + d(k.suspicion_mult as f64, base.suspicion_mult as f64)
        + d(
            k.suspicion_max_timeout_mult as f64,
            base.suspicion_max_timeout_mult as f64,
        )
        + d(k.gossip_nodes as f64, base.gossip_nodes as f64)
        + d(k.retransmit_mult as f64, base.retransmit_mult as f64))
}

/// Searches the [`grid`] from `base` (whose other settings are kept) for
/// the configuration that meets `targets` in `s` at the best balanced score
/// (each figure over its target, or over what `base` itself gives where
/// there is none).
pub fn recommend(base: &Config, s: &Situation, targets: &Targets) -> Recommendation {
    recommend_range(base, None, s, targets)
}

/// [`recommend`] for every size from `low.nodes` to `s.nodes`: the targets
/// must hold at both ends (the model's figures are monotonic in between).
pub fn recommend_range(
    base: &Config,
    low: Option<&Situation>,
    s: &Situation,
    targets: &Targets,
) -> Recommendation {
    let shared = Shared::new(base, s);
    let shared_low = low.map(|l| Shared::new(base, l));
    let reference = predict_with(base, s, &shared, &Curves::new(base, s), 0);
    let grid = grid(s);
    // The curves depend on five knobs only: compute each once per end.
    type Key = (bool, Duration, Duration, usize, u32, Duration);
    let mut curves: HashMap<Key, Curves> = HashMap::new();
    let mut curves_of = |k: &Knobs, at_low: bool| -> Curves {
        let key = (
            at_low,
            k.probe_interval,
            k.gossip_interval,
            k.gossip_nodes,
            k.retransmit_mult,
            k.push_pull_interval,
        );
        let sit = if at_low { low.unwrap_or(s) } else { s };
        curves
            .entry(key)
            .or_insert_with(|| Curves::new(&k.apply(base), sit))
            .clone()
    };
    let all: Vec<Candidate> = grid
        .iter()
        .map(|k| {
            let config = k.apply(base);
            let prediction = predict_with(&config, s, &shared, &curves_of(k, false), 0);
            let worst_case = match (low, &shared_low) {
                (Some(l), Some(sl)) => {
                    let p = predict_with(&config, l, sl, &curves_of(k, true), 0);
                    Some(worse(&prediction, &p))
                }
                _ => None,
            };
            Candidate {
                knobs: *k,
                prediction,
                worst_case,
            }
        })
        .collect();
    let searched = all.len();
    let full = |k: &Knobs| {
        let config = k.apply(base);
        let prediction = predict_with(
            &config,
            s,
            &shared,
            &Curves::new(&config, s),
            DETECTION_DRAWS,
        );
        let worst_case = match (low, &shared_low) {
            (Some(l), Some(sl)) => {
                let p = predict_with(&config, l, sl, &Curves::new(&config, l), DETECTION_DRAWS);
                Some(worse(&prediction, &p))
            }
            _ => None,
        };
        Candidate {
            knobs: *k,
            prediction,
            worst_case,
        }
    };
    // The best few by the fast model, re-predicted in full.
    let mut ranked: Vec<&Candidate> = all.iter().collect();
    let base_knobs = Knobs::of(base);
    let key = |c: &Candidate| {
        let v = violation(c.checked(), targets);
        (
            if v <= 1.0 { 0.0 } else { v },
            score(c.checked(), targets, &reference) + distance(&c.knobs, &base_knobs),
        )
    };
    ranked.sort_by(|a, b| {
        let (ka, kb) = (key(a), key(b));
        ka.0.total_cmp(&kb.0).then(ka.1.total_cmp(&kb.1))
    });
    let mut top: Vec<Candidate> = ranked.iter().take(8).map(|c| full(&c.knobs)).collect();
    top.sort_by(|a, b| {
        let (ka, kb) = (key(a), key(b));
        ka.0.total_cmp(&kb.0).then(ka.1.total_cmp(&kb.1))
    });
    let best = top.swap_remove(0);
    let feasible = violation(best.checked(), targets) <= 1.0;

    let mut unreachable = Vec::new();
    let mut conflicting = Vec::new();
    let mut trade_off = Vec::new();
    if !feasible {
        for (i, (name, _, target)) in figures(best.checked(), targets).iter().enumerate() {
            let Some(target) = *target else { continue };
            let value = |c: &Candidate| figures(c.checked(), targets)[i].1;
            let Some(b) = all.iter().min_by(|a, b| value(a).total_cmp(&value(b))) else {
                continue;
            };
            // Confirm with the full model before calling it unreachable.
            let b = full(&b.knobs);
            if value(&b) > target {
                unreachable.push(Unreachable {
                    target: name,
                    wanted: target,
                    best: value(&b),
                    knobs: b.knobs,
                });
            } else if ratio(figures(best.checked(), targets)[i].1, target) > 1.0 {
                conflicting.push(*name);
            }
        }
        // The trade-off: for allowances of 1×, 1.5×, 2×, 3×, 5× on every
        // other target, the configuration that does best on the most
        // violated one.
        let worst = figures(best.checked(), targets)
            .iter()
            .enumerate()
            .filter_map(|(i, &(_, v, t))| t.map(|t| (i, ratio(v, t))))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i);
        if let Some(w) = worst {
            for allowance in [1.0, 1.5, 2.0, 3.0, 5.0] {
                let ok = |c: &Candidate| {
                    figures(c.checked(), targets)
                        .iter()
                        .enumerate()
                        .all(|(i, &(_, v, t))| i == w || t.is_none_or(|t| v <= t * allowance))
                };
                let pick = all.iter().filter(|c| ok(c)).min_by(|a, b| {
                    let va = figures(a.checked(), targets)[w].1;
                    let vb = figures(b.checked(), targets)[w].1;
                    va.total_cmp(&vb).then(
                        score(a.checked(), targets, &reference).total_cmp(&score(
                            b.checked(),
                            targets,
                            &reference,
                        )),
                    )
                });
                if let Some(c) = pick {
                    if trade_off.iter().all(|t: &Candidate| t.knobs != c.knobs) {
                        trade_off.push(full(&c.knobs));
                    }
                }
            }
            // Keep the Pareto front: drop an option another one beats or
            // equals on every targeted figure.
            let targeted = |c: &Candidate| -> Vec<f64> {
                figures(c.checked(), targets)
                    .iter()
                    .filter(|f| f.2.is_some())
                    .map(|f| f.1)
                    .collect()
            };
            let all_t: Vec<Vec<f64>> = trade_off.iter().map(targeted).collect();
            let dominated = |i: usize| {
                all_t.iter().enumerate().any(|(j, o)| {
                    j != i
                        && o.iter().zip(&all_t[i]).all(|(a, b)| a <= b)
                        && (o != &all_t[i] || j < i)
                })
            };
            let keep: Vec<bool> = (0..trade_off.len()).map(|i| !dominated(i)).collect();
            let mut i = 0;
            trade_off.retain(|_| {
                i += 1;
                keep[i - 1]
            });
        }
    }
    Recommendation {
        feasible,
        best,
        unreachable,
        conflicting,
        trade_off,
        searched,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_the_agent_reads_them() {
        assert_eq!(fmt_duration(Duration::from_millis(200)), "200ms");
        assert_eq!(fmt_duration(Duration::from_secs(1)), "1s");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(fmt_duration(Duration::from_secs(120)), "2m");
    }

    #[test]
    fn knobs_round_trip_through_a_config() {
        let k = Knobs::of(&Config::wan());
        assert_eq!(
            k.apply(&Config::lan()),
            Config::wan()
                .with_tcp_timeout(Config::lan().tcp_timeout)
                .with_gossip_to_the_dead_time(Config::lan().gossip_to_the_dead_time)
        );
    }
}
