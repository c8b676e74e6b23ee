//! The closed-form model: what a [`Config`] gives at `n` nodes in a given
//! [`Situation`], from the protocol's own formulas.
//!
//! - Suspicion bounds, the expected confirmations `k`, the retransmit limit
//!   and the push/pull interval come straight from the core
//!   ([`headcount_proto::suspicion`]), so they are the numbers the nodes use.
//! - **First suspicion**: every survivor probes its `m = n − 1` peers in a
//!   shuffled round, one per probe interval; the crashed member sits at a
//!   uniform place in the current pass (or the next, reshuffled, one), so
//!   one survivor's wait `W` for it has the survival function `S(x)` of
//!   [`probe_wait_survival`] (`x = W / (m × probe_interval)`). The first
//!   survivor to probe it suspects it one probe interval later.
//! - **Detection**: the first accuser declares the death at
//!   `min over c of max(t₁ + T(c), arrival of the c-th confirmation)`, with
//!   `T(c)` Lifeguard's shrinking timeout (the core's
//!   [`remaining_suspicion_time`]) and confirmations the next accusers'
//!   failed probes (the order statistics of `W`) plus their gossip delay.
//!   Everyone then knows after the `dead` message has spread, helped by the
//!   other members' own timers, which run out one suspicion timeout after
//!   they heard the suspicion. Median and p99 are taken over 2,000 draws of
//!   these order statistics from a fixed seed (no simulation of nodes).
//! - **Dissemination**: a mean-field, continuous-time push epidemic. A member
//!   passes news on at `gossip_nodes / gossip_interval` packets a second
//!   (its gossip ticks are at a random phase) plus two piggybacks a probe
//!   interval (its ping and its ack), until the message has gone out
//!   `retransmit_limit` times; each packet reaches a random peer with
//!   probability `1 − loss`, after half a round trip. `p%` is reached when
//!   the expected informed count is within half a node of `p% × n`; 100 %
//!   when fewer than `ln 2` members are expected uninformed (the median of
//!   the last one's time). Members the gossip missed learn by push/pull.
//! - **Bandwidth**: the real codec encodes a ping, an ack, an indirect ping
//!   and a push/pull state of `n` members (names as given, compressed as
//!   the config says); a member sends one ping and one ack a probe interval,
//!   a second ping and indirect probes when a direct one fails, and a push/pull request and a
//!   reply each scaled push/pull interval. An idle cluster sends no gossip.
//! - **False deaths**: a healthy member is probed `n / probe_interval` times
//!   a second in the cluster; a probe fails when the direct ping, the
//!   second direct ping (`retry_direct_ping`), all indirect ones and the
//!   TCP fallback fail; the suspicion then becomes a
//!   death only if the member has not heard of it and refuted within the
//!   minimum suspicion timeout. A stall of `d` kills when the suspicion it
//!   causes runs out before the member wakes up and its refutation spreads.

use core::time::Duration;

use headcount_proto::suspicion::{
    push_pull_scale, remaining_suspicion_time, retransmit_limit, suspicion_bounds, suspicion_k,
};
use headcount_proto::wire::{
    self, AckResp, IndirectPingReq, Message, NackResp, PacketOptions, Ping, PushNodeState,
    PushPull, StreamMessage, WireState,
};
use headcount_proto::Config;
use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Serialize;

/// How long members stall (stop answering, then catch up), for the
/// false-death estimate.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Stalls {
    /// Stalls per member per hour.
    pub per_hour: f64,
    /// How long each stall lasts.
    #[serde(serialize_with = "ser_secs")]
    pub duration: Duration,
}

/// How member names are spelled, for the encoded sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Names {
    /// The simulator's names, `n0`, `n1`, …
    Sim,
    /// `node-0`, `node-1`, … (`headcount bench` and `demo`).
    Node,
    /// Names of this many bytes (host names are often 10–30).
    Len(usize),
}

/// The cluster and network a configuration is for.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Situation {
    /// Cluster size.
    pub nodes: usize,
    /// Typical round-trip time between two members.
    #[serde(serialize_with = "ser_secs")]
    pub rtt: Duration,
    /// 99th percentile round-trip time.
    #[serde(serialize_with = "ser_secs")]
    pub rtt_p99: Duration,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Member stalls, if any.
    pub stalls: Option<Stalls>,
    /// Name spelling, for sizes.
    pub names: Names,
    /// Metadata bytes per member (Serf tags, for example).
    pub meta_bytes: usize,
    /// Membership changes (joins, leaves, deaths, updates) per member per
    /// hour: the gossip they cause is the only gossip an idle cluster
    /// sends.
    pub churn_per_hour: f64,
}

impl Situation {
    /// The round trips of a simulator profile (two legs of its base
    /// latency range and jitter; its tail for the p99), no loss.
    pub fn for_profile(p: &crate::net::Profile, n: usize) -> Self {
        let mid = (p.base_lo_us + p.base_hi_us) as f64 / 2.0 + p.jitter_mean_us as f64;
        let rtt = Duration::from_micros((2.0 * mid) as u64);
        let p99 = Duration::from_micros(2 * (p.base_hi_us + 2 * p.jitter_mean_us))
            + Duration::from_micros(p.tail_us * u64::from(p.tail_per_million > 5_000));
        Situation {
            nodes: n,
            rtt,
            rtt_p99: p99.max(rtt),
            loss: 0.0,
            stalls: None,
            names: Names::Sim,
            meta_bytes: 0,
            churn_per_hour: 0.0,
        }
    }

    /// `n` members on a LAN (0.5 ms round trips, 2 ms at p99), no loss,
    /// the simulator's names.
    pub fn lan(n: usize) -> Self {
        Situation {
            nodes: n,
            rtt: Duration::from_micros(600),
            rtt_p99: Duration::from_millis(2),
            loss: 0.0,
            stalls: None,
            names: Names::Sim,
            meta_bytes: 0,
            churn_per_hour: 0.0,
        }
    }
}

fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(round4(d.as_secs_f64()))
}

/// Rounds to four significant decimals for reports.
pub fn round4(x: f64) -> f64 {
    if !x.is_finite() || x == 0.0 {
        return x;
    }
    let mag = 10f64.powi(3 - x.abs().log10().floor() as i32);
    (x * mag).round() / mag
}

/// Encoded sizes of the messages the model counts, in bytes on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct WireSizes {
    /// A framed ping datagram.
    pub ping: usize,
    /// A framed ack datagram.
    pub ack: usize,
    /// A framed indirect ping request.
    pub indirect_ping: usize,
    /// A framed nack.
    pub nack: usize,
    /// A push/pull state of `n` members, as written on the stream.
    pub push_pull: usize,
    /// An `alive` message as gossip carries it (unframed, in a compound).
    pub alive: usize,
}

fn name(names: Names, i: usize) -> String {
    match names {
        Names::Sim => format!("n{i}"),
        Names::Node => format!("node-{i}"),
        Names::Len(len) => {
            let digits = format!("{i}");
            let pad = len.saturating_sub(digits.len() + 1).max(1);
            let mut s = String::with_capacity(len);
            s.push_str(&"node-member-host-name-"[..pad.min(22)]);
            while s.len() < pad {
                s.push('x');
            }
            s.push('-');
            s.push_str(&digits);
            s
        }
    }
}

fn addr(i: usize) -> Vec<u8> {
    let n = (i + 1) as u32;
    ((10u32 << 24) | (n & 0x00ff_ffff)).to_be_bytes().to_vec()
}

/// The sequence number the sizes are encoded with: msgpack spends 3 bytes
/// on it from 256 to 65,535 (a member's first 18 hours at one probe a
/// second), 5 beyond.
const SEQ: u32 = 1000;

/// Encodes the messages the model counts with the real codec.
pub fn wire_sizes(config: &Config, s: &Situation) -> WireSizes {
    let n = s.nodes.max(1);
    let frame = |msg: &Message| -> usize {
        let mut raw = Vec::new();
        wire::encode_message(msg, &mut raw);
        let opts = PacketOptions {
            compress: config.enable_compression,
            crc: false,
            label: &config.label,
            encryption: None,
        };
        let mut out = Vec::new();
        match wire::frame_packet(&raw, &opts, &mut out) {
            Ok(()) => out.len(),
            Err(_) => raw.len(),
        }
    };
    let ping = frame(&Message::Ping(Ping {
        seq_no: SEQ,
        node: name(s.names, n / 2),
        source_addr: addr(1),
        source_port: 7946,
        source_node: name(s.names, 1),
    }));
    let ack = frame(&Message::Ack(AckResp {
        seq_no: SEQ,
        payload: Vec::new(),
    }));
    let nack = frame(&Message::Nack(NackResp { seq_no: 123_456 }));
    let indirect_ping = frame(&Message::IndirectPing(IndirectPingReq {
        seq_no: SEQ,
        target: addr(n / 2),
        port: 7946,
        node: name(s.names, n / 2),
        nack: true,
        source_addr: addr(1),
        source_port: 7946,
        source_node: name(s.names, 1),
    }));
    let state = |i: usize| PushNodeState {
        name: name(s.names, i),
        addr: addr(i),
        port: 7946,
        meta: vec![b'm'; s.meta_bytes],
        incarnation: 1,
        state: WireState::Alive,
        vsn: config.vsn(),
    };
    // In the table's probe order, which is shuffled (LZW finds less to
    // share between neighbours than in name order).
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(n as u64);
    for i in (1..order.len()).rev() {
        order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    let pp = StreamMessage::PushPull(PushPull {
        join: false,
        states: order.into_iter().map(state).collect(),
        user_state: Vec::new(),
    });
    let mut out = Vec::new();
    let push_pull = match wire::encode_stream_with(
        &pp,
        &config.label,
        &config.label,
        config.enable_compression,
        None,
        &mut out,
    ) {
        Ok(()) => out.len(),
        Err(_) => 0,
    };
    let alive = wire::encoded_len(&Message::Alive(wire::Alive {
        incarnation: 1,
        node: name(s.names, n / 2),
        addr: addr(n / 2),
        port: 7946,
        meta: vec![b'm'; s.meta_bytes],
        vsn: config.vsn(),
    }));
    WireSizes {
        ping,
        ack,
        indirect_ping,
        nack,
        push_pull,
        alive,
    }
}

// ----- probe order -----------------------------------------------------------

/// `P(W > x · m · probe_interval)` for one survivor's wait `W` until it
/// probes a given member: its own place `i` and the member's place `j` in
/// the current pass are uniform; if `j` is still ahead the wait is `j − i`,
/// otherwise the rest of the pass plus a uniform place in the next
/// (reshuffled) pass. Piecewise polynomial, `x` in `[0, 2]`.
pub fn probe_wait_survival(x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    if x >= 2.0 {
        return 0.0;
    }
    if x <= 1.0 {
        let a = 1.0 - x;
        // j ahead of i by more than x, plus j behind i with
        // (1 − i) + j' > x.
        let ahead = a * a / 2.0;
        let behind = a * a / 2.0 + (1.0 + a) * (1.0 - a * a) / 2.0 - (1.0 - a * a * a) / 3.0;
        ahead + behind
    } else {
        (2.0 - x).powi(3) / 6.0
    }
}

/// Inverse of [`probe_wait_survival`]: the `x` with `S(x) = s`.
fn probe_wait_quantile(s: f64) -> f64 {
    let (mut lo, mut hi) = (0.0f64, 2.0f64);
    for _ in 0..60 {
        let mid = (lo + hi) / 2.0;
        if probe_wait_survival(mid) > s {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo + hi) / 2.0
}

/// The `r` smallest of `m` waits, in units of `m × probe_interval`, drawn
/// by the sequential construction of uniform order statistics.
fn smallest_waits(rng: &mut Xoshiro256PlusPlus, m: usize, r: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(r.min(m));
    let mut u = 0.0f64;
    for i in 0..r.min(m) {
        let v = unit(rng);
        u = 1.0 - (1.0 - u) * v.powf(1.0 / (m - i) as f64);
        out.push(probe_wait_quantile(1.0 - u));
    }
    out
}

fn unit(rng: &mut Xoshiro256PlusPlus) -> f64 {
    // (0, 1]: never exactly zero, so powers and logs stay finite.
    ((rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
}

// ----- epidemic ----------------------------------------------------------------

/// A spread computed by the mean-field epidemic: expected informed
/// members over time.
#[derive(Clone, Debug)]
pub struct SpreadCurve {
    dt: f64,
    /// Expected informed members of the audience at `k × dt`.
    informed: Vec<f64>,
    audience: f64,
    /// After the last point, the uninformed decay at this rate (push/pull).
    tail_rate: f64,
}

impl SpreadCurve {
    /// Seconds until the expected informed count reaches `share` of the
    /// audience (`share = 1`: fewer than `ln 2` expected uninformed).
    pub fn time_to(&self, share: f64) -> f64 {
        let n = self.audience;
        // `share` means ceil(share × n) members, as in the measurements;
        // when that is all of them, the last one's median (ln 2 expected
        // uninformed), else within half a member.
        let need = (share * n).ceil().min(n);
        let left = if need >= n {
            core::f64::consts::LN_2.min(n)
        } else {
            n - need + 0.5
        };
        let need = n - left;
        if let Some(k) = self.informed.iter().position(|&x| x >= need) {
            if k == 0 {
                return 0.0;
            }
            // Linear between the two points around it.
            let (a, b) = (self.informed[k - 1], self.informed[k]);
            let f = if b > a { (need - a) / (b - a) } else { 1.0 };
            return (k as f64 - 1.0 + f) * self.dt;
        }
        let end = (self.informed.len() - 1) as f64 * self.dt;
        let u_end = n - self.informed.last().copied().unwrap_or(0.0);
        if self.tail_rate <= 0.0 || u_end <= 0.0 {
            return f64::INFINITY;
        }
        end + (u_end / left).ln().max(0.0) / self.tail_rate
    }

    /// The share informed at time `t`.
    pub fn share_at(&self, t: f64) -> f64 {
        let k = (t / self.dt).floor();
        if k < 0.0 {
            return 0.0;
        }
        let k = k as usize;
        let x = match self.informed.get(k) {
            Some(&x) => x,
            None => {
                let end = (self.informed.len() - 1) as f64 * self.dt;
                let u_end = self.audience - self.informed.last().copied().unwrap_or(0.0);
                self.audience - u_end * (-(t - end) * self.tail_rate).exp()
            }
        };
        x / self.audience
    }
}

/// Parameters of one epidemic.
struct Epidemic<'a> {
    /// Members that can learn (the curve counts these).
    audience: f64,
    /// Informed members present at time 0 within the audience.
    seeds: f64,
    /// Spreaders outside the audience, and when they start.
    outside: &'a [f64],
    /// Packets a second that an active spreader sends.
    rate: f64,
    /// How long a spreader stays active, seconds.
    active: f64,
    /// One-way delay of a hop.
    hop: f64,
    loss: f64,
    /// Push/pull: each uninformed member learns at this rate times the
    /// informed share.
    push_pull_rate: f64,
    /// Extra per-member hazard of learning on its own (own timers).
    hazard: Option<&'a dyn Fn(f64) -> f64>,
    dt: f64,
    horizon: f64,
}

fn epidemic(e: &Epidemic<'_>) -> SpreadCurve {
    let steps = (e.horizon / e.dt).ceil() as usize + 1;
    let delay = (e.hop / e.dt).round() as usize;
    let window = ((e.active / e.dt).round() as usize).max(1);
    // started[k]: spreaders that became informed in step k.
    let mut started = vec![0.0f64; steps + 1];
    started[0] += e.seeds;
    for &t in e.outside {
        let k = ((t / e.dt).round() as usize).min(steps);
        started[k] += 1.0;
    }
    // Prefix sums, kept incrementally.
    let mut prefix = vec![0.0f64; steps + 2];
    let mut informed = e.seeds.min(e.audience);
    let mut curve = Vec::with_capacity(steps);
    curve.push(informed);
    let peers = (e.audience + e.outside.len() as f64 - 1.0).max(1.0);
    for k in 0..steps {
        prefix[k + 1] = prefix[k] + started[k];
        // Active spreaders: started in steps (k − delay − window, k − delay].
        let active = if k >= delay {
            let hi = k - delay;
            let lo = (hi + 1).saturating_sub(window);
            prefix[hi + 1] - prefix[lo]
        } else {
            0.0
        };
        let t = k as f64 * e.dt;
        let mut lambda =
            e.rate * (1.0 - e.loss) * active / peers + e.push_pull_rate * (informed / e.audience);
        if let Some(h) = e.hazard {
            lambda += h(t);
        }
        let uninformed = e.audience - informed;
        let gained = uninformed * (1.0 - (-lambda * e.dt).exp());
        informed += gained;
        started[k + 1] += gained;
        curve.push(informed);
        if e.audience - informed < 1e-4 {
            break;
        }
        // Gossip over and nothing left but push/pull: stop; the tail is
        // analytic.
        if t > e.hop + e.active * 2.0 && active < 1e-9 && e.hazard.is_none() {
            break;
        }
    }
    SpreadCurve {
        dt: e.dt,
        informed: curve,
        audience: e.audience,
        tail_rate: e.push_pull_rate,
    }
}

/// The gossip parameters the epidemic needs, from a config at `n`.
struct GossipRates {
    /// Packets a second an informed member sends that carry the news.
    rate: f64,
    /// Seconds a member keeps sending it.
    active: f64,
    limit: usize,
    push_pull_rate: f64,
}

fn gossip_rates(config: &Config, n: usize) -> GossipRates {
    let gi = config.gossip_interval.as_secs_f64().max(1e-6);
    let pi = config.probe_interval.as_secs_f64().max(1e-6);
    let limit = retransmit_limit(config.retransmit_mult, n);
    let rate = config.gossip_nodes as f64 / gi + 2.0 / pi;
    let pp = push_pull_scale(config.push_pull_interval, n).as_secs_f64();
    GossipRates {
        rate,
        active: limit as f64 / rate,
        limit,
        push_pull_rate: if pp > 0.0 { 2.0 / pp } else { 0.0 },
    }
}

/// How news from one member spreads to the other `n − 1` at `n` nodes.
pub fn spread_curve(config: &Config, s: &Situation) -> SpreadCurve {
    let n = s.nodes.max(2);
    let g = gossip_rates(config, n);
    let hop = s.rtt.as_secs_f64() / 2.0;
    let dt = (config.gossip_interval.as_secs_f64() / 40.0)
        .min(config.probe_interval.as_secs_f64() / 40.0)
        .max(1e-5);
    epidemic(&Epidemic {
        audience: n as f64,
        seeds: 1.0,
        outside: &[],
        rate: g.rate,
        active: g.active,
        hop,
        loss: s.loss,
        push_pull_rate: g.push_pull_rate,
        hazard: None,
        dt,
        horizon: g.active * 8.0 + hop * 40.0 + 5.0,
    })
}

/// How a join spreads: the contact learns after half a round trip (the
/// push/pull request), the newcomer starts gossiping after a whole one.
pub fn join_curve(config: &Config, s: &Situation) -> SpreadCurve {
    let n = s.nodes.max(2);
    let g = gossip_rates(config, n + 1);
    let hop = s.rtt.as_secs_f64() / 2.0;
    let dt = (config.gossip_interval.as_secs_f64() / 40.0)
        .min(config.probe_interval.as_secs_f64() / 40.0)
        .max(1e-5);
    // Shift: the contact (in the audience) is the seed at `hop`; express
    // the newcomer relative to it.
    let curve = epidemic(&Epidemic {
        audience: n as f64,
        seeds: 1.0,
        outside: &[hop],
        rate: g.rate,
        active: g.active,
        hop,
        loss: s.loss,
        push_pull_rate: g.push_pull_rate,
        hazard: None,
        dt,
        horizon: g.active * 8.0 + hop * 40.0 + 5.0,
    });
    let shift = (hop / dt).round() as usize;
    let mut informed = vec![0.0; shift];
    informed.extend(curve.informed);
    SpreadCurve { informed, ..curve }
}

// ----- the prediction ----------------------------------------------------------

/// UDP and TCP bytes a member sends a second, by cause.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bandwidth {
    /// Pings and acks.
    pub probe_udp: f64,
    /// Indirect probes and nacks caused by loss.
    pub indirect_udp: f64,
    /// Gossip of the situation's churn (an idle cluster sends none: parked
    /// gossip ticks send nothing).
    pub gossip_udp: f64,
    /// All UDP.
    pub udp: f64,
    /// Push/pull (request and reply) and TCP fallback pings.
    pub tcp: f64,
    /// Both.
    pub total: f64,
    /// Bytes each member sends for one membership change (an `alive` or
    /// `dead`), over its retransmissions; cluster-wide it is `n` times
    /// this.
    pub gossip_per_event: f64,
}

/// Everything the model predicts for one config at one situation. Times in
/// seconds, bandwidth in bytes per member per second.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Prediction {
    /// Cluster size.
    pub nodes: usize,
    /// Crash to first suspicion anywhere, median.
    pub first_suspect_median: f64,
    /// Crash to first suspicion anywhere, mean.
    pub first_suspect_mean: f64,
    /// Lifeguard's shortest suspicion timeout at `n`.
    pub suspicion_min: f64,
    /// Longest suspicion timeout.
    pub suspicion_max: f64,
    /// Independent confirmations a suspicion expects.
    pub suspicion_k: u32,
    /// Crash to first death declaration, median.
    pub first_dead_median: f64,
    /// Crash to everyone holding it dead, median.
    pub detect_median: f64,
    /// Crash to everyone holding it dead, 99th percentile.
    pub detect_p99: f64,
    /// News from one member reaches 50 % of the others.
    pub spread_50: f64,
    /// 99 %.
    pub spread_99: f64,
    /// Everyone.
    pub spread_100: f64,
    /// A join reaches half of the members (from the join call).
    pub join_50: f64,
    /// A join reaches 99 % of the members.
    pub join_99: f64,
    /// A join reaches everyone.
    pub join_100: f64,
    /// Transmissions of each broadcast per member.
    pub retransmit_limit: usize,
    /// Push/pull interval after scaling for `n`.
    pub push_pull_interval: f64,
    /// One push/pull state on the wire, bytes (each exchange sends two).
    pub push_pull_bytes: usize,
    /// Bandwidth.
    pub bandwidth: Bandwidth,
    /// Probability that one probe of a healthy member fails outright.
    pub false_suspicion_per_probe: f64,
    /// Expected false deaths in the whole cluster per day.
    pub false_deaths_per_day: f64,
    /// Things the model warns about (probe timeout below the p99 RTT, …).
    pub warnings: Vec<String>,
    /// Encoded sizes used.
    pub sizes: WireSizes,
}

/// The largest cluster size docs/tuning.md checks the model against the
/// simulator at; a prediction above it carries a warning.
pub const VERIFIED_UP_TO: usize = 10_000;

/// Draws for the detection quantiles.
pub const DETECTION_DRAWS: usize = 2000;

/// Predicts what `config` gives in situation `s`.
pub fn predict(config: &Config, s: &Situation) -> Prediction {
    let shared = Shared::new(config, s);
    let curves = Curves::new(config, s);
    predict_with(config, s, &shared, &curves, DETECTION_DRAWS)
}

/// What a prediction needs that depends on the situation only (and on the
/// label and compression), not on the timing knobs: the encoded sizes and
/// the first-probe statistics in units of the probe interval.
#[derive(Clone, Debug)]
pub struct Shared {
    /// Encoded sizes.
    pub sizes: WireSizes,
    /// Median of the first survivor's wait, in probe intervals.
    first_wait_median: f64,
    /// Mean of it.
    first_wait_mean: f64,
}

impl Shared {
    /// Computes them for situation `s`.
    pub fn new(config: &Config, s: &Situation) -> Self {
        let m = s.nodes.max(2) - 1;
        let pass = m as f64;
        let first_wait_median = probe_wait_quantile(0.5f64.powf(1.0 / pass)) * pass;
        // E[min] = ∫ S(x)^m dx, by the trapezoid rule on [0, 2].
        let steps = 4000;
        let mut integral = 0.0;
        for i in 0..=steps {
            let x = 2.0 * i as f64 / steps as f64;
            let w = if i == 0 || i == steps { 0.5 } else { 1.0 };
            integral += w * probe_wait_survival(x).powf(pass);
        }
        Shared {
            sizes: wire_sizes(config, s),
            first_wait_median,
            first_wait_mean: integral * 2.0 / steps as f64 * pass,
        }
    }
}

/// The spread curves of a config in a situation: they depend on the gossip
/// knobs, the probe interval (piggybacking) and the push/pull interval.
#[derive(Clone, Debug)]
pub struct Curves {
    /// News from one member.
    pub spread: SpreadCurve,
    /// A join.
    pub join: SpreadCurve,
    /// First death declaration to every survivor holding it dead.
    pub dead_all: f64,
}

impl Curves {
    /// Computes them.
    pub fn new(config: &Config, s: &Situation) -> Self {
        let n = s.nodes.max(2);
        let spread = spread_curve(config, s);
        let join = join_curve(config, s);
        // The dead message's spread once the first member declares: gossip
        // from the declarer, plus every member's own timer, running out one
        // minimum timeout after it heard the suspicion (the suspicion's
        // spread, shifted by that timeout).
        let susp = spread.clone();
        let hazard = move |u: f64| -> f64 {
            let h = 1e-3;
            let a = susp.share_at(u);
            let b = susp.share_at(u + h);
            if a >= 1.0 {
                return 0.0;
            }
            ((b - a) / h / (1.0 - a)).max(0.0)
        };
        let g = gossip_rates(config, n);
        let dt = (config.gossip_interval.as_secs_f64() / 40.0)
            .min(config.probe_interval.as_secs_f64() / 40.0)
            .max(1e-5);
        let dead = epidemic(&Epidemic {
            audience: (n - 1) as f64,
            seeds: 1.0,
            outside: &[],
            rate: g.rate,
            active: g.active,
            hop: s.rtt.as_secs_f64() / 2.0,
            loss: s.loss,
            push_pull_rate: g.push_pull_rate,
            hazard: Some(&hazard),
            dt,
            horizon: g.active * 8.0 + 5.0 + spread.time_to(1.0).min(600.0),
        });
        Curves {
            dead_all: dead.time_to(1.0),
            spread,
            join,
        }
    }
}

/// [`predict`] from precomputed parts, with `draws` draws of the probe
/// order for the detection quantiles; `draws = 0` estimates them without
/// drawing (confirmations one probe interval apart), for the search.
pub fn predict_with(
    config: &Config,
    s: &Situation,
    shared: &Shared,
    curves: &Curves,
    draws: usize,
) -> Prediction {
    let sizes = shared.sizes;
    let n = s.nodes.max(2);
    let m = n - 1;
    let pi = config.probe_interval.as_secs_f64();
    let pt = config.probe_timeout.as_secs_f64();
    let (min, max) = suspicion_bounds(
        config.suspicion_mult,
        config.suspicion_max_timeout_mult,
        n,
        config.probe_interval,
    );
    let k = suspicion_k(config.suspicion_mult, n);
    let spread = &curves.spread;
    let join = &curves.join;
    let pass = m as f64 * pi;
    let first_median = shared.first_wait_median * pi + pi;
    let first_mean = shared.first_wait_mean * pi + pi;
    let min_s = min.as_secs_f64();
    let dead_all = curves.dead_all;
    let g = gossip_rates(config, n);
    let timeouts: Vec<f64> = (0..=k)
        .map(|c| remaining_suspicion_time(c, k, Duration::ZERO, min, max).as_secs_f64())
        .collect();

    // Declarations, over draws of the probe order.
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0x7475_6e65);
    let mut firsts = Vec::with_capacity(draws.max(1));
    let mut alls = Vec::with_capacity(draws.max(1));
    if draws == 0 {
        let half = spread.time_to(0.5);
        let mut declare = timeouts[0];
        for (c, &timeout) in timeouts.iter().enumerate().skip(1) {
            let arrival = c as f64 * pi * (m as f64 / (m - c.min(m - 1)) as f64) + half;
            declare = declare.min(timeout.max(arrival));
        }
        firsts.push(first_median + declare);
        alls.push(first_median + declare + dead_all);
    }
    for _ in 0..draws {
        let waits = smallest_waits(&mut rng, m, k as usize + 1);
        let t1 = waits[0] * pass + pi;
        let mut declare = t1 + timeouts[0];
        for (&timeout, &w) in timeouts.iter().zip(&waits).skip(1) {
            // The c-th confirmation: that accuser's failed probe, then its
            // gossip reaching the first accuser.
            let gossip = spread_delay(spread, unit(&mut rng));
            let arrival = w * pass + pi + gossip;
            declare = declare.min((t1 + timeout).max(arrival));
        }
        firsts.push(declare);
        alls.push(declare + dead_all);
    }
    let q = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * p).round() as usize]
    };

    // Bandwidth.
    let p = s.loss;
    let direct_fail = 1.0 - (1.0 - p) * (1.0 - p) * (1.0 - rtt_exceeds(s, pt));
    let ki = config.indirect_checks as f64;
    let probe_udp = (sizes.ping + sizes.ack) as f64 / pi;
    // Per failed direct probe, by the prober and its helpers: the requests,
    // the helpers' pings, the target's acks and the helpers' forwarded
    // acks or nacks.
    let per_failed = ki
        * (sizes.indirect_ping as f64
            + (1.0 - p)
                * (sizes.ping as f64
                    + (1.0 - p) * sizes.ack as f64
                    + if config.lifeguard_nacks {
                        sizes.ack.max(sizes.nack) as f64
                    } else {
                        (1.0 - p) * (1.0 - p) * sizes.ack as f64
                    }));
    // headcount's second direct ping (`retry_direct_ping`) and its ack.
    let retry = if config.retry_direct_ping {
        sizes.ping as f64 + (1.0 - p) * (1.0 - p) * sizes.ack as f64
    } else {
        0.0
    };
    let indirect_udp = direct_fail * (per_failed + retry) / pi;
    let ppi = push_pull_scale(config.push_pull_interval, n).as_secs_f64();
    let tcp_ping = if config.disable_tcp_pings {
        0.0
    } else {
        direct_fail * (sizes.ping + sizes.ack + 8) as f64 / pi
    };
    let tcp = 2.0 * sizes.push_pull as f64 / ppi + tcp_ping;
    // Each change is sent `limit` times by every member, mostly one to a
    // datagram (compound and CRC framing) when changes are rare.
    let per_event = (g.limit * (sizes.alive + 8)) as f64;
    let gossip_udp = n as f64 * s.churn_per_hour / 3600.0 * per_event;
    let udp = probe_udp + indirect_udp + gossip_udp;
    let bandwidth = Bandwidth {
        probe_udp: round4(probe_udp),
        indirect_udp: round4(indirect_udp),
        gossip_udp: round4(gossip_udp),
        udp: round4(udp),
        tcp: round4(tcp),
        total: round4(udp + tcp),
        gossip_per_event: round4(per_event),
    };

    // False deaths.
    let remaining = (pi - pt).max(0.0);
    let indirect_fail = 1.0 - (1.0 - p).powi(4) * (1.0 - rtt_exceeds2(s, remaining));
    let tcp_fail = if config.disable_tcp_pings {
        1.0
    } else if remaining < 1.0 {
        // A lost SYN or SYN-ACK costs a 1 s retransmission timeout.
        1.0 - (1.0 - p) * (1.0 - p)
    } else {
        p * p
    };
    // The second direct ping has what is left of the interval.
    let retry_fail = if config.retry_direct_ping {
        1.0 - (1.0 - p) * (1.0 - p) * (1.0 - rtt_exceeds(s, remaining))
    } else {
        1.0
    };
    let per_probe = direct_fail * retry_fail * indirect_fail.powf(ki) * tcp_fail;
    // The suspected member must hear of it (gossip, and the suspect
    // piggybacked on every later probe) and its refutation reach everyone
    // within the minimum timeout.
    let not_refuted = (1.0 - spread.share_at(min_s / 2.0)).max(0.0) * 2.0;
    let probes_per_s = n as f64 / pi;
    let mut per_s = probes_per_s * per_probe * not_refuted.min(1.0);
    let mut warnings = Vec::new();
    if let Some(st) = s.stalls {
        // Stalled for d: the first probe comes after W ~ Exp(pi) (large n),
        // the suspicion after one more interval, the death one minimum
        // timeout later unless the member woke and its refutation spread.
        let p_dead = stall_death(st.duration.as_secs_f64(), spread, pi, min_s);
        per_s += n as f64 * st.per_hour / 3600.0 * p_dead;
    }
    if pt < s.rtt_p99.as_secs_f64() {
        warnings.push(format!(
            "probe_timeout {:.3}s is below the p99 round trip {:.3}s: direct probes fail often",
            pt,
            s.rtt_p99.as_secs_f64()
        ));
    }
    if s.loss > 0.1 {
        warnings.push(format!(
            "loss {:.0}% is above 10%: the model's dissemination times are less reliable there \
             (docs/tuning.md); check with --verify",
            s.loss * 100.0
        ));
    }
    if n < 100 {
        warnings.push(
            "below 100 members the 99% and 100% times are the last member's, which scatter \
             widely from run to run (the figures are medians)"
                .into(),
        );
    }
    if n > 5000 {
        warnings.push(
            "above 5,000 members the join times are checked against one simulated join per \
             configuration at 10,000 members: two of eight landed 22-25% faster than predicted \
             at 50% (docs/tuning.md)"
                .into(),
        );
    }
    if n > VERIFIED_UP_TO {
        warnings.push(format!(
            "above {VERIFIED_UP_TO} members the model is extrapolated: docs/tuning.md checks it \
             against the simulator from 16 to {VERIFIED_UP_TO} members only"
        ));
    }
    if config.gossip_nodes == 0 {
        warnings.push("gossip_nodes = 0: news spreads only by probes and push/pull".into());
    }
    Prediction {
        nodes: n,
        first_suspect_median: round4(first_median),
        first_suspect_mean: round4(first_mean),
        suspicion_min: round4(min_s),
        suspicion_max: round4(max.as_secs_f64()),
        suspicion_k: k,
        first_dead_median: round4(q(&mut firsts, 0.5)),
        detect_median: round4(q(&mut alls, 0.5)),
        detect_p99: round4(q(&mut alls, 0.99)),
        spread_50: round4(spread.time_to(0.5)),
        spread_99: round4(spread.time_to(0.99)),
        spread_100: round4(spread.time_to(1.0)),
        join_50: round4(join.time_to(0.5)),
        join_99: round4(join.time_to(0.99)),
        join_100: round4(join.time_to(1.0)),
        retransmit_limit: g.limit,
        push_pull_interval: round4(ppi),
        push_pull_bytes: sizes.push_pull,
        bandwidth,
        false_suspicion_per_probe: per_probe,
        false_deaths_per_day: per_s * 86_400.0,
        warnings,
        sizes,
    }
}

/// The probability that one stall of `d` seconds ends in a death: the
/// first probe of the stalled member comes after `W ~ Exp(pi)`, the
/// suspicion one probe interval later and the death one minimum timeout
/// after that (the failed probes during the stall confirm it), unless the
/// member woke up and its refutation reached everyone first.
fn stall_death(d: f64, spread: &SpreadCurve, pi: f64, min: f64) -> f64 {
    let slack = d + spread.time_to(0.99) - pi - min;
    if slack <= 0.0 {
        0.0
    } else {
        1.0 - (-slack / pi).exp()
    }
}

/// [`predict`]'s probability that a member stalled for `d` is declared dead.
pub fn stall_death_probability(config: &Config, s: &Situation, d: Duration) -> f64 {
    let n = s.nodes.max(2);
    let (min, _) = suspicion_bounds(
        config.suspicion_mult,
        config.suspicion_max_timeout_mult,
        n,
        config.probe_interval,
    );
    stall_death(
        d.as_secs_f64(),
        &spread_curve(config, s),
        config.probe_interval.as_secs_f64(),
        min.as_secs_f64(),
    )
}

/// A random member's delay in hearing news: the inverse of the spread
/// curve at `u`.
fn spread_delay(c: &SpreadCurve, u: f64) -> f64 {
    let target = u * c.audience;
    match c.informed.iter().position(|&x| x >= target) {
        Some(k) => k as f64 * c.dt,
        None => c.time_to(1.0),
    }
}

/// `P(round trip > t)`: log-normal through the typical (median) and p99
/// round trips.
pub fn rtt_exceeds(s: &Situation, t: f64) -> f64 {
    let med = s.rtt.as_secs_f64().max(1e-7);
    let p99 = s.rtt_p99.as_secs_f64().max(med * 1.0001);
    if t <= 0.0 {
        return 1.0;
    }
    let sigma = (p99 / med).ln() / 2.326_348;
    let z = (t / med).ln() / sigma;
    0.5 * erfc(z / core::f64::consts::SQRT_2)
}

/// `P(two round trips in a row > t)` (an indirect probe's relay), as one
/// round trip against `t / 2`.
fn rtt_exceeds2(s: &Situation, t: f64) -> f64 {
    rtt_exceeds(s, t / 2.0)
}

/// Complementary error function (Numerical Recipes' `erfcc`, |ε| < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_beyond_the_verified_sizes() {
        let beyond = |n: usize| {
            predict(&Config::lan(), &Situation::lan(n))
                .warnings
                .iter()
                .any(|w| w.contains("extrapolated"))
        };
        assert!(!beyond(VERIFIED_UP_TO));
        assert!(beyond(VERIFIED_UP_TO + 1));
    }

    #[test]
    fn survival_is_continuous_and_has_the_right_mean() {
        assert!((probe_wait_survival(0.0) - 1.0).abs() < 1e-12);
        let l = probe_wait_survival(1.0 - 1e-9);
        let r = probe_wait_survival(1.0 + 1e-9);
        assert!((l - r).abs() < 1e-6, "{l} {r}");
        assert!((probe_wait_survival(1.0) - 1.0 / 6.0).abs() < 1e-9);
        // E[W] = ∫ S = 7/12 of a pass (a third plus a quarter).
        let steps = 20_000;
        let mean: f64 = (0..steps)
            .map(|i| probe_wait_survival(2.0 * (i as f64 + 0.5) / steps as f64))
            .sum::<f64>()
            * 2.0
            / steps as f64;
        assert!((mean - 7.0 / 12.0).abs() < 1e-6, "{mean}");
    }

    #[test]
    fn lan_preset_by_hand() {
        // LAN at 100 nodes: min = 4 × log10(100) × 1 s = 8 s, max = 6 × 8 =
        // 48 s, k = 4 − 2 = 2, retransmit limit 4 × ceil(log10(101)) = 12,
        // push/pull 30 s × (ceil(log2 100) − 5 + 1) = 30 × 3 = 90 s.
        let p = predict(&Config::lan(), &Situation::lan(100));
        assert_eq!(p.suspicion_min, 8.0);
        assert_eq!(p.suspicion_max, 48.0);
        assert_eq!(p.suspicion_k, 2);
        assert_eq!(p.retransmit_limit, 12);
        assert_eq!(p.push_pull_interval, 90.0);
        // Pings and acks once a second each.
        let s = p.sizes;
        assert!((p.bandwidth.probe_udp - (s.ping + s.ack) as f64).abs() < 0.5);
        // Detection: first suspicion ≈ 1.7 s (ln 2 of a probe interval, then
        // the interval), death one minimum timeout later, then the spread.
        assert!((1.6..1.8).contains(&p.first_suspect_median), "{p:?}");
        assert!(p.first_dead_median >= 8.0 + 1.6 && p.first_dead_median < 10.0);
        assert!(p.detect_median > p.first_dead_median);
        assert!(p.detect_p99 >= p.detect_median);
        assert!(p.spread_50 < p.spread_99 && p.spread_99 <= p.spread_100);
        assert_eq!(p.false_deaths_per_day, 0.0);
    }

    #[test]
    fn wan_and_local_presets_by_hand() {
        // WAN at 1000: min = 6 × 3 × 5 s = 90 s, max = 540 s, k = 4.
        let p = predict(&Config::wan(), &Situation::lan(1000));
        assert_eq!(
            (p.suspicion_min, p.suspicion_max, p.suspicion_k),
            (90.0, 540.0, 4)
        );
        // Retransmit 4 × 4 = 16; push/pull 60 × (10 − 5 + 1) = 360 s.
        assert_eq!(p.retransmit_limit, 16);
        assert_eq!(p.push_pull_interval, 360.0);
        // Local at 16: min = 3 × max(1, 1.204) × 1 s = 3.612 s, k = 1.
        let p = predict(&Config::local(), &Situation::lan(16));
        assert_eq!((p.suspicion_min, p.suspicion_k), (3.612, 1));
        assert_eq!(p.retransmit_limit, 4);
        assert_eq!(p.push_pull_interval, 15.0);
    }

    #[test]
    fn bigger_clusters_are_slower_and_loss_costs() {
        let lan = Config::lan();
        let a = predict(&lan, &Situation::lan(16));
        let b = predict(&lan, &Situation::lan(1000));
        assert!(b.detect_median > a.detect_median);
        assert!(b.spread_100 > a.spread_100);
        assert!(b.bandwidth.tcp > a.bandwidth.tcp);
        let mut lossy = Situation::lan(1000);
        lossy.loss = 0.2;
        let c = predict(&lan.clone().with_disable_tcp_pings(true), &lossy);
        assert!(c.spread_99 > b.spread_99);
        assert!(c.bandwidth.indirect_udp > 0.0);
        assert!(c.false_deaths_per_day > 0.0);
    }

    #[test]
    fn long_stalls_kill_short_ones_do_not() {
        let mut s = Situation::lan(100);
        s.stalls = Some(Stalls {
            per_hour: 1.0,
            duration: Duration::from_secs(1),
        });
        assert_eq!(predict(&Config::lan(), &s).false_deaths_per_day, 0.0);
        s.stalls = Some(Stalls {
            per_hour: 1.0,
            duration: Duration::from_secs(60),
        });
        let p = predict(&Config::lan(), &s);
        // Nearly every 60 s stall outlasts 1 + 8 s: ≈ 100 × 24 a day.
        assert!((2000.0..2500.0).contains(&p.false_deaths_per_day), "{p:?}");
    }

    #[test]
    fn spread_quantiles_are_ordered() {
        let c = spread_curve(&Config::lan(), &Situation::lan(1000));
        let (a, b, d) = (c.time_to(0.5), c.time_to(0.99), c.time_to(1.0));
        assert!(a > 0.0 && a < b && b <= d && d.is_finite(), "{a} {b} {d}");
    }
}
