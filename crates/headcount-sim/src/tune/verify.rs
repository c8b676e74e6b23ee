//! `--verify`: run the simulator with a configuration in a situation and
//! measure what the model predicts, over a few seeds.
//!
//! Each seed builds a converged cluster of `n` nodes at once
//! ([`Sim::bootstrap_seeded`], so a thousand nodes take about a second),
//! lets the joins' push/pulls settle, then measures, in this order:
//! bandwidth over a quiet stretch (UDP datagram bytes and stream bytes sent
//! per node per second), one join (time until 99 % and 100 % of the members
//! hold the newcomer alive) and a few crashes one after the other (crash to
//! first suspicion, first death, and every survivor holding it dead).

use core::time::Duration;
use std::collections::BTreeSet;

use headcount_proto::{Config, Instant};
use serde::{Deserialize, Deserializer, Serialize};

use super::model::{round4, Situation};
use crate::engine::{Action, Kind, Sim};
use crate::experiments::first_joins_seen;
use crate::net::{splitmix64, Profile};

/// How much to simulate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Effort {
    /// Seeds (clusters built).
    pub seeds: Vec<u64>,
    /// Crashes per seed.
    pub crashes: usize,
    /// Measure TCP over whole scaled push/pull intervals (slow at large
    /// sizes); otherwise from the state size measured in the joins'
    /// push/pulls and the core's push/pull schedule.
    pub full_bandwidth: bool,
}

impl Effort {
    /// Three seeds, three crashes each.
    pub fn quick(seed: u64) -> Self {
        Self::seeds(seed, 3)
    }

    /// The default for `n` nodes: nine seeds up to 100 nodes (a small
    /// cluster is cheap, and its joins and crashes scatter more), three
    /// above; three crashes each.
    pub fn for_size(seed: u64, n: usize) -> Self {
        Self::seeds(seed, if n <= 100 { 9 } else { 3 })
    }

    fn seeds(seed: u64, k: u64) -> Self {
        Effort {
            seeds: (0..k).map(|i| splitmix64(seed ^ (i * 0x9e37))).collect(),
            crashes: 3,
            full_bandwidth: true,
        }
    }
}

/// What the simulator measured. Times in seconds, bandwidth in bytes per
/// node per second; medians over every crash (or join) of every seed. A
/// figure with nothing to take the median of is NaN, which JSON writes as
/// `null` and reads back as NaN.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// Crashes measured.
    pub crashes: usize,
    /// Crash to first suspicion, median.
    #[serde(deserialize_with = "nan_if_null")]
    pub first_suspect_median: f64,
    /// Crash to first death, median.
    #[serde(deserialize_with = "nan_if_null")]
    pub first_dead_median: f64,
    /// Crash to every survivor holding it dead, median.
    #[serde(deserialize_with = "nan_if_null")]
    pub detect_median: f64,
    /// Largest of those.
    #[serde(deserialize_with = "nan_if_null")]
    pub detect_max: f64,
    /// Crashes some survivor never held dead within the limit.
    pub undetected: usize,
    /// Join to half of the members holding the newcomer alive, median.
    #[serde(deserialize_with = "nan_if_null")]
    pub join_50: f64,
    /// Join to 99 % of the members, median.
    #[serde(deserialize_with = "nan_if_null")]
    pub join_99: f64,
    /// Join to every member, median.
    #[serde(deserialize_with = "nan_if_null")]
    pub join_100: f64,
    /// UDP bytes sent per node per second.
    #[serde(deserialize_with = "nan_if_null")]
    pub udp: f64,
    /// Datagrams sent per node per second.
    #[serde(deserialize_with = "nan_if_null")]
    pub udp_packets: f64,
    /// Stream (TCP) bytes sent per node per second.
    #[serde(deserialize_with = "nan_if_null")]
    pub tcp: f64,
    /// Whether `tcp` was measured over whole push/pull intervals (else:
    /// twice the mean push/pull reply measured in the joins' push/pulls,
    /// once per scaled push/pull interval, plus the other streams, TCP
    /// fallback pings and their acks, measured over the UDP window).
    pub tcp_measured_over_intervals: bool,
    /// Death declarations about members that never crashed.
    pub false_deaths: usize,
    /// Virtual seconds simulated, all seeds.
    #[serde(deserialize_with = "nan_if_null")]
    pub simulated_s: f64,
}

/// A stored figure: a number, or `null` for NaN (what serde_json writes
/// for a NaN).
fn nan_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// A network profile for the situation: one-way base latencies spread
/// ±40 % around half the typical round trip, 5 % jitter, and one leg in a
/// hundred delayed by up to twice the gap to the p99 round trip.
pub fn profile_for(s: &Situation) -> Profile {
    let half = (s.rtt.as_micros() as u64 / 2).max(2);
    let gap = s.rtt_p99.saturating_sub(s.rtt).as_micros() as u64;
    Profile {
        name: "tune",
        base_lo_us: (half * 6 / 10).max(1),
        base_hi_us: (half * 14 / 10).max(2),
        jitter_mean_us: half / 20,
        tail_per_million: if gap > 0 { 10_000 } else { 0 },
        tail_us: gap * 2,
    }
}

fn secs(d: Duration) -> f64 {
    d.as_micros() as f64 / 1e6
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let k = v.len();
    if !k.is_multiple_of(2) {
        v[k / 2]
    } else {
        (v[k / 2 - 1] + v[k / 2]) / 2.0
    }
}

/// The quiet stretch over which bandwidth is measured: whole scaled
/// push/pull intervals, at least 20 probe intervals. The seeded joins all
/// happen at once, so every node's periodic push/pulls keep the same phase
/// a scaled interval apart: a window of whole intervals holds exactly one
/// per node each.
pub fn bandwidth_window(config: &Config, n: usize) -> Duration {
    let ppi = headcount_proto::suspicion::push_pull_scale(config.push_pull_interval, n);
    if ppi.is_zero() {
        return config.probe_interval * 20;
    }
    let need = (config.probe_interval * 20).as_secs_f64() / ppi.as_secs_f64();
    ppi * (need.ceil() as u32).max(1)
}

/// Runs the simulator as [`Effort`] says and measures.
pub fn simulate(config: &Config, s: &Situation, effort: &Effort) -> Result<Measured, String> {
    config
        .validate()
        .map_err(|e| format!("invalid config: {e}"))?;
    let n = s.nodes;
    if n < 3 {
        return Err("verification needs at least 3 nodes".into());
    }
    let profile = profile_for(s);
    let mut m = Measured::default();
    let (mut first_s, mut first_d, mut all) = (Vec::new(), Vec::new(), Vec::new());
    let (mut j50, mut j99, mut j100) = (Vec::new(), Vec::new(), Vec::new());
    let (mut udp, mut tcp, mut packets) = (0.0, 0.0, 0.0);
    for &seed in &effort.seeds {
        let mut sim = Sim::new(seed, config.clone(), profile.clone(), 0.0);
        if !sim.bootstrap_seeded_and_converge(n) {
            return Err(format!("seed {seed}: the seeded cluster did not converge"));
        }
        if s.loss > 0.0 {
            sim.act(Action::Loss(s.loss));
        }
        // The joins bring a push/pull forward by one or two probe intervals.
        let b0 = sim.stats().clone();
        sim.run_for(config.probe_interval * 3 + Duration::from_secs(2));
        let b1 = sim.stats().clone();
        sim.recording = true;
        let start_log = sim.log.len();

        // Bandwidth, on the first seed only (it barely varies).
        if seed == effort.seeds[0] {
            let ppi = headcount_proto::suspicion::push_pull_scale(config.push_pull_interval, n);
            let replies = b1.push_pull_replies - b0.push_pull_replies;
            let quick = !effort.full_bandwidth && replies > 0 && !ppi.is_zero();
            let w = if quick {
                config.probe_interval * 20
            } else {
                bandwidth_window(config, n)
            };
            let s0 = sim.stats().clone();
            sim.run_for(w);
            let s1 = sim.stats().clone();
            let per = n as f64 * secs(w);
            udp = (s1.bytes_sent - s0.bytes_sent) as f64 / per;
            packets = (s1.packets_sent - s0.packets_sent) as f64 / per;
            if quick {
                // Each member sends a whole state once per interval as a
                // request and answers one request with a reply of the same
                // size (the push/pull replies only: under loss, the acks
                // to TCP fallback pings are replies too, and small). The
                // other streams (fallback pings and their acks) are
                // measured over the window.
                let reply =
                    (b1.push_pull_reply_bytes - b0.push_pull_reply_bytes) as f64 / replies as f64;
                let other = ((s1.stream_bytes - s0.stream_bytes)
                    .saturating_sub(s1.push_pull_bytes - s0.push_pull_bytes))
                    as f64
                    / per;
                tcp = 2.0 * reply / secs(ppi) + other;
            } else {
                tcp = (s1.stream_bytes - s0.stream_bytes) as f64 / per;
                m.tcp_measured_over_intervals = true;
            }
        }

        // A join.
        let limit = crate::experiments::bootstrap_limit(config, n);
        let newcomer = sim.len();
        let contact = (sim.random() % n as u64) as usize;
        let t0 = sim.now();
        let from = sim.log.len();
        sim.act(Action::Start {
            node: newcomer,
            join: Some(contact),
        });
        sim.run_while_not(limit, Duration::from_millis(100), |sim| {
            first_joins_seen(&sim.log[from..], newcomer).count() >= n
        });
        let mut times: Vec<f64> = first_joins_seen(&sim.log[from..], newcomer)
            .map(|r| secs(r.t - t0))
            .collect();
        times.sort_by(f64::total_cmp);
        let need50 = ((0.5 * n as f64).ceil() as usize).clamp(1, n);
        if let Some(&t) = times.get(need50 - 1) {
            j50.push(t);
        }
        let need99 = ((0.99 * n as f64).ceil() as usize).clamp(1, n);
        if let Some(&t) = times.get(need99 - 1) {
            j99.push(t);
        }
        if times.len() >= n {
            j100.push(times[n - 1]);
        }
        sim.run_for(Duration::from_secs(2));

        // Crashes.
        let bound = crate::experiments::detection_bound(config, n) * 2;
        let mut crashed = BTreeSet::new();
        for _ in 0..effort.crashes.min(n.saturating_sub(3)) {
            let candidates: Vec<usize> = (0..sim.len())
                .filter(|&i| sim.is_running(i) && !crashed.contains(&i) && i != newcomer)
                .collect();
            let victim = candidates[(sim.random() % candidates.len() as u64) as usize];
            crashed.insert(victim);
            let t0 = sim.now();
            let from = sim.log.len();
            sim.act(Action::Crash(victim));
            let done = sim.run_while_not(bound, Duration::from_millis(100), |sim| {
                (0..sim.len()).filter(|&i| sim.is_running(i)).all(|i| {
                    sim.state_seen(i, victim)
                        .is_none_or(|st| st.is_dead_or_left())
                })
            });
            m.crashes += 1;
            let first = |k: Kind| {
                sim.log[from..]
                    .iter()
                    .find(|r| r.kind == k && r.subject as usize == victim)
                    .map(|r| secs(r.t - t0))
            };
            if let Some(t) = first(Kind::Suspect) {
                first_s.push(t);
            }
            if let Some(t) = first(Kind::Dead) {
                first_d.push(t);
            }
            if done.is_some() {
                // The exact time the last survivor learnt it.
                let last: Instant = sim.log[from..]
                    .iter()
                    .filter(|r| {
                        matches!(r.kind, Kind::Dead | Kind::Left) && r.subject as usize == victim
                    })
                    .map(|r| r.t)
                    .max()
                    .unwrap_or(sim.now());
                all.push(secs(last - t0));
            } else {
                m.undetected += 1;
            }
            sim.run_for(Duration::from_secs(1));
        }
        m.false_deaths += sim.log[start_log..]
            .iter()
            .filter(|r| {
                r.kind == Kind::Dead
                    && !crashed.contains(&(r.subject as usize))
                    && r.node != r.subject
            })
            .map(|r| (r.subject, r.inc))
            .collect::<BTreeSet<_>>()
            .len();
        m.simulated_s += secs(sim.now() - Instant::ZERO);
    }
    m.first_suspect_median = round4(median(&mut first_s));
    m.first_dead_median = round4(median(&mut first_d));
    m.detect_median = round4(median(&mut all));
    m.detect_max = round4(all.iter().copied().fold(0.0, f64::max));
    m.join_50 = round4(median(&mut j50));
    m.join_99 = round4(median(&mut j99));
    m.join_100 = round4(median(&mut j100));
    m.udp = round4(udp);
    m.tcp = round4(tcp);
    m.udp_packets = round4(packets);
    Ok(m)
}

/// One figure, predicted beside simulated.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    /// What is compared.
    pub figure: &'static str,
    /// The model's value.
    pub predicted: f64,
    /// The simulator's.
    pub simulated: f64,
    /// `(predicted − simulated) / simulated`.
    pub error: f64,
    /// The bound the model is held to (0.20 for times, 0.15 for
    /// bandwidth), or `None` for figures only shown.
    pub bound: Option<f64>,
}

impl Comparison {
    /// Whether the error is within the bound (always, without one).
    pub fn within(&self) -> bool {
        self.bound.is_none_or(|b| self.error.abs() <= b)
    }
}

/// Sets the model's figures beside the simulator's.
pub fn compare(p: &super::model::Prediction, m: &Measured) -> Vec<Comparison> {
    let c = |figure, predicted: f64, simulated: f64, bound| Comparison {
        figure,
        predicted,
        simulated,
        error: if simulated != 0.0 && simulated.is_finite() {
            round4((predicted - simulated) / simulated)
        } else {
            f64::NAN
        },
        bound,
    };
    vec![
        c(
            "first suspicion (median)",
            p.first_suspect_median,
            m.first_suspect_median,
            None,
        ),
        c(
            "first death (median)",
            p.first_dead_median,
            m.first_dead_median,
            None,
        ),
        c(
            "detection (median)",
            p.detect_median,
            m.detect_median,
            Some(0.20),
        ),
        c("join to 50% (median)", p.join_50, m.join_50, Some(0.20)),
        c("join to 99% (median)", p.join_99, m.join_99, Some(0.20)),
        c("join to 100% (median)", p.join_100, m.join_100, None),
        c("UDP bytes/node/s", p.bandwidth.udp, m.udp, Some(0.15)),
        c("TCP bytes/node/s", p.bandwidth.tcp, m.tcp, Some(0.15)),
    ]
}

/// Stalls `trials` members of a converged cluster one after the other, each
/// for `stall` (it handles nothing, then its backlog), and returns the share
/// of stalls after which some member declared the stalled one dead: the
/// simulated counterpart of [`super::model::stall_death_probability`].
pub fn stall_deaths(
    config: &Config,
    s: &Situation,
    stall: Duration,
    trials: usize,
    seed: u64,
) -> Result<f64, String> {
    config
        .validate()
        .map_err(|e| format!("invalid config: {e}"))?;
    let n = s.nodes;
    if n < 3 || trials == 0 {
        return Err("stalls need at least 3 nodes and one trial".into());
    }
    let mut sim = Sim::new(seed, config.clone(), profile_for(s), 0.0);
    if !sim.bootstrap_seeded_and_converge(n) {
        return Err(format!("seed {seed}: the seeded cluster did not converge"));
    }
    if s.loss > 0.0 {
        sim.act(Action::Loss(s.loss));
    }
    sim.run_for(config.probe_interval * 3 + Duration::from_secs(2));
    sim.recording = true;
    let (min, max) = headcount_proto::suspicion::suspicion_bounds(
        config.suspicion_mult,
        config.suspicion_max_timeout_mult,
        n,
        config.probe_interval,
    );
    let mut killed = 0;
    for _ in 0..trials {
        let v = (sim.random() % n as u64) as usize;
        let from = sim.log.len();
        sim.act(Action::Starve(v, stall));
        // Long enough for any suspicion raised during the stall to end,
        // and for a refuted member to settle.
        sim.run_for(stall + max.min(min * 3) + config.probe_interval * 4);
        if sim.log[from..]
            .iter()
            .any(|r| r.kind == Kind::Dead && r.subject as usize == v)
        {
            killed += 1;
        }
        sim.run_for(Duration::from_secs(5));
    }
    Ok(killed as f64 / trials as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Under loss, direct probes fail and TCP fallback pings run beside
    /// the indirect ones; their acks are stream replies too. The quick TCP
    /// figure (push/pull state size on the core's schedule) must take the
    /// state size from the push/pull replies only, and add the fallback
    /// streams it measures: it then lands near the figure measured over a
    /// whole push/pull interval.
    #[test]
    fn quick_tcp_under_loss_matches_whole_intervals() {
        let config = Config::lan();
        let s = Situation {
            loss: 0.05,
            ..Situation::lan(40)
        };
        let run = |full| {
            let effort = Effort {
                seeds: vec![3],
                crashes: 1,
                full_bandwidth: full,
            };
            simulate(&config, &s, &effort).expect("simulates")
        };
        let (full, quick) = (run(true), run(false));
        assert!(full.tcp_measured_over_intervals);
        assert!(!quick.tcp_measured_over_intervals);
        let err = (quick.tcp - full.tcp) / full.tcp;
        assert!(
            err.abs() < 0.15,
            "quick {} against whole intervals {} ({:+.0}%)",
            quick.tcp,
            full.tcp,
            err * 100.0
        );
    }
}
