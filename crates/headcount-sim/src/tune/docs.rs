//! The generator of `docs/tuning.md`: predictions against cluster size for
//! Go's presets and five tuned configurations (SVG plots, drawn by
//! [`crate::report::svg_plot`]), the model against the simulator, and the
//! model against `headcount bench` runs when their JSON lines are given.

use std::fmt::Write as _;

use headcount_proto::Config;
use serde_json::Value;

use super::model::{predict, Names, Prediction, Situation};
use super::search::{fmt_duration, recommend, Knobs, Targets};
use super::verify::{compare, simulate, Comparison, Effort, Measured};
use crate::net::Profile;
use crate::report::{svg_plot, Series};

/// A configuration the document follows.
pub struct Subject {
    /// Short name.
    pub name: String,
    /// How it was obtained.
    pub origin: String,
    /// The network it is for: `lan`, `wan` or `local`.
    pub network: &'static str,
    /// Loss it is verified under.
    pub loss: f64,
    /// The config.
    pub config: Config,
}

/// The five tuned scenarios: name, network, loss, size tuned for, targets,
/// and the command line that asks for it.
fn scenarios() -> Vec<(
    &'static str,
    &'static str,
    f64,
    usize,
    Targets,
    &'static str,
)> {
    let t = |d: Option<f64>, s: Option<f64>, b: Option<f64>, f: Option<f64>| Targets {
        detect: d,
        spread: s,
        bandwidth: b,
        false_deaths: f,
    };
    vec![
        (
            "fast-100",
            "lan",
            0.0,
            100,
            t(Some(3.0), None, None, None),
            "--nodes 100 --rtt lan --detect 3s",
        ),
        (
            "budget-1000",
            "lan",
            0.0,
            1000,
            t(Some(8.0), None, Some(300.0), None),
            "--nodes 1000 --rtt lan --detect 8s --bandwidth 300B/s",
        ),
        (
            "spread-5000",
            "lan",
            0.0,
            5000,
            t(None, Some(0.3), Some(1000.0), None),
            "--nodes 5000 --rtt lan --spread 300ms --bandwidth 1KB/s",
        ),
        (
            "wan-500",
            "wan",
            0.0,
            500,
            t(Some(25.0), None, Some(100.0), None),
            "--nodes 500 --rtt wan --detect 25s --bandwidth 100B/s",
        ),
        (
            "lossy-200",
            "lan",
            0.02,
            200,
            t(Some(5.0), None, None, Some(1.0 / 7.0)),
            "--nodes 200 --rtt lan --loss 2% --detect 5s --false-deaths 1/week",
        ),
    ]
}

/// The situation a configuration is verified in: its network profile's
/// round trips, `n` members, `loss`.
pub fn situation(network: &str, n: usize, loss: f64) -> Situation {
    let p = Profile::by_name(network).unwrap_or_else(Profile::lan);
    Situation {
        loss,
        ..Situation::for_profile(&p, n)
    }
}

/// Go's presets and the five tuned configurations.
pub fn subjects() -> Vec<Subject> {
    let mut v = vec![
        Subject {
            name: "Go lan".into(),
            origin: "`DefaultLANConfig`".into(),
            network: "lan",
            loss: 0.0,
            config: Config::lan(),
        },
        Subject {
            name: "Go wan".into(),
            origin: "`DefaultWANConfig`".into(),
            network: "wan",
            loss: 0.0,
            config: Config::wan(),
        },
        Subject {
            name: "Go local".into(),
            origin: "`DefaultLocalConfig`".into(),
            network: "local",
            loss: 0.0,
            config: Config::local(),
        },
    ];
    for (name, network, loss, n, targets, cmd) in scenarios() {
        let base = if network == "wan" {
            Config::wan()
        } else {
            Config::lan()
        };
        let s = Situation {
            names: Names::Len(16),
            ..situation(network, n, loss)
        };
        let r = recommend(&base, &s, &targets);
        v.push(Subject {
            name: name.into(),
            origin: format!(
                "`headcount tune {cmd}`{}",
                if r.feasible { "" } else { " (best effort)" }
            ),
            network,
            loss,
            config: r.best.knobs.apply(&base),
        });
    }
    v
}

fn knobs_line(c: &Config) -> String {
    let k = Knobs::of(c);
    format!(
        "probe {} / {}, suspicion ×{} (max ×{}), gossip {} to {}, retransmit ×{}, push/pull {}",
        fmt_duration(k.probe_interval),
        fmt_duration(k.probe_timeout),
        k.suspicion_mult,
        k.suspicion_max_timeout_mult,
        fmt_duration(k.gossip_interval),
        k.gossip_nodes,
        k.retransmit_mult,
        fmt_duration(k.push_pull_interval),
    )
}

const PLOT_SIZES: [usize; 11] = [16, 32, 64, 128, 256, 512, 1000, 2000, 4000, 7000, 10_000];

fn plot(
    subjects: &[Subject],
    pick: &dyn Fn(&Subject) -> bool,
    f: &dyn Fn(&Prediction) -> f64,
    title: &str,
    ylabel: &str,
) -> String {
    let series: Vec<Series> = subjects
        .iter()
        .filter(|s| pick(s))
        .map(|s| Series {
            label: s.name.clone(),
            points: PLOT_SIZES
                .iter()
                .map(|&n| {
                    let p = predict(&s.config, &situation(s.network, n, s.loss));
                    (n as f64, f(&p))
                })
                .collect(),
        })
        .collect();
    svg_plot(title, "cluster size (log scale)", ylabel, &series, true)
}

fn fmt_err(c: &Comparison) -> String {
    if !c.error.is_finite() {
        return "n/a".into();
    }
    let mark = match c.bound {
        Some(_) if !c.within() => " **✗**",
        _ => "",
    };
    format!("{:+.0}%{mark}", c.error * 100.0)
}

fn cell(c: &Comparison) -> String {
    let f = |x: f64| {
        if c.figure.contains("bytes") {
            format!("{x:.0}")
        } else {
            format!("{x:.2}")
        }
    };
    format!("{} / {} ({})", f(c.predicted), f(c.simulated), fmt_err(c))
}

/// One row of the model-against-simulator table: the cells, and the bounded
/// comparisons outside their bound (as list items).
fn verify_row(s: &Subject, n: usize, m: &Measured, wall: f64) -> (String, usize, Vec<String>) {
    let p = predict(&s.config, &situation(s.network, n, s.loss));
    let c = compare(&p, m);
    let get = |f: &str| c.iter().find(|x| x.figure.starts_with(f)).cloned();
    let row: Vec<String> = [
        "detection",
        "join to 50",
        "join to 99",
        "UDP",
        "TCP",
        "first suspicion",
    ]
    .iter()
    .map(|f| get(f).map_or("—".into(), |c| cell(&c)))
    .collect();
    let mut total = 0;
    let mut missed = Vec::new();
    for x in c.iter().filter(|x| x.bound.is_some()) {
        total += 1;
        if !x.within() {
            missed.push(format!(
                "{} at {n}: {} {:+.0}%",
                s.name,
                x.figure,
                x.error * 100.0
            ));
        }
    }
    let line = format!("| {} | {n} | {} | {wall:.1} |", s.name, row.join(" | "));
    (line, total, missed)
}

/// Writes `<out>/tuning.md` and `<out>/tuning/*.svg`. `bench` holds the
/// JSON lines of `headcount bench` runs to compare with (may be empty);
/// `sim10k` the stored 10,000-node simulations ([`super::sim10k`]), shown
/// beside the model's current predictions (a configuration without one
/// gets a row saying so). `quick` verifies at 16 and 100 nodes only.
pub fn generate(
    out: &str,
    quick: bool,
    bench: &[Value],
    sim10k: &[super::sim10k::Record],
) -> std::io::Result<()> {
    let dir = format!("{out}/tuning");
    std::fs::create_dir_all(&dir)?;
    let subjects = subjects();
    let mut md = String::new();
    md.push_str(INTRO);

    md.push_str("\n## The configurations\n\n| name | from | knobs |\n|---|---|---|\n");
    for s in &subjects {
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            s.name,
            s.origin,
            knobs_line(&s.config)
        );
    }

    // Plots.
    md.push_str(PLOTS_TEXT);
    let not_wan = |s: &Subject| s.network != "wan";
    let wan = |s: &Subject| s.network == "wan";
    let all = |_: &Subject| true;
    let plots: [(&str, String, &str); 5] = [
        (
            "detection",
            plot(&subjects, &not_wan, &|p| p.detect_median, "Detection, LAN configurations (median)", "seconds"),
            "Crash until every member holds it dead, median, predicted (LAN-profile configurations).",
        ),
        (
            "detection-wan",
            plot(&subjects, &wan, &|p| p.detect_median, "Detection, WAN configurations (median)", "seconds"),
            "The same for the WAN configurations.",
        ),
        (
            "dissemination",
            plot(&subjects, &all, &|p| p.spread_99, "News reaching 99% of members", "seconds"),
            "News from one member reaching 99% of the others, predicted.",
        ),
        (
            "bandwidth",
            plot(&subjects, &not_wan, &|p| p.bandwidth.total, "Bytes sent per member per second", "bytes/s"),
            "UDP + TCP bytes each member sends per second in a quiet cluster, predicted (LAN-profile configurations).",
        ),
        (
            "bandwidth-wan",
            plot(&subjects, &wan, &|p| p.bandwidth.total, "Bytes per member per second, WAN", "bytes/s"),
            "The same for the WAN configurations.",
        ),
    ];
    for (file, svg, caption) in &plots {
        std::fs::write(format!("{dir}/{file}.svg"), svg)?;
        let _ = writeln!(md, "![{caption}](tuning/{file}.svg)\n\n*{caption}*\n");
    }

    // The model against the simulator.
    let sizes: &[usize] = if quick { &[16, 100] } else { &[16, 100, 1000] };
    md.push_str(VERIFY_TEXT);
    md.push_str(
        "| configuration | n | detection | join 50% | join 99% | UDP B/s | TCP B/s | first suspicion | \
         wall s |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    let (mut total, mut missed) = (0usize, Vec::new());
    for s in &subjects {
        for &n in sizes {
            let sit = situation(s.network, n, s.loss);
            let w0 = std::time::Instant::now();
            let m = match simulate(&s.config, &sit, &Effort::for_size(1, n)) {
                Ok(m) => m,
                Err(e) => {
                    let _ = writeln!(md, "| {} | {n} | simulation failed: {e} |||||||", s.name);
                    continue;
                }
            };
            let wall = w0.elapsed().as_secs_f64();
            let (line, t, mut miss) = verify_row(s, n, &m, wall);
            total += t;
            missed.append(&mut miss);
            let _ = writeln!(md, "{line}");
            eprintln!("tuning docs: {} at {n} in {wall:.1} s", s.name);
        }
        let n = super::sim10k::NODES;
        match sim10k.iter().find(|r| r.name == s.name) {
            Some(r) => {
                let (line, t, mut miss) = verify_row(s, n, &r.measured, r.wall_s);
                total += t;
                missed.append(&mut miss);
                let _ = writeln!(md, "{line}");
            }
            None => {
                let _ = writeln!(
                    md,
                    "| {} | {n} | not simulated (no line in `docs/tuning/sim10k.jsonl`) |||||||",
                    s.name
                );
            }
        }
    }
    let _ = write!(
        md,
        "\n{} of {total} bounded comparisons are within their bound (20% for times, 15% for bandwidth).",
        total - missed.len()
    );
    if missed.is_empty() {
        md.push('\n');
    } else {
        md.push_str(" Outside it:\n\n");
        for m in &missed {
            let _ = writeln!(md, "- {m}");
        }
    }
    if !sim10k.is_empty() {
        md.push_str(SIM10K_TEXT);
        md.push_str(
            "| configuration | seeds | crashes | simulated s | wall s | peak RSS |\n|---|---|---|---|---|---|\n",
        );
        for r in sim10k {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.0} | {:.0} | {} |",
                r.name,
                r.seeds
                    .iter()
                    .map(|s| format!("{s:#x}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                r.crashes,
                r.measured.simulated_s,
                r.wall_s,
                r.peak_rss_mb
                    .map_or("—".into(), |m| format!("{:.1} GB", m / 1024.0)),
            );
        }
    }
    let not_run: Vec<&str> = subjects
        .iter()
        .filter(|s| !sim10k.iter().any(|r| r.name == s.name))
        .map(|s| s.name.as_str())
        .collect();
    if !not_run.is_empty() {
        let _ = writeln!(
            md,
            "\nNot simulated at 10,000 nodes yet: {} (the session that added these runs ran out of \
             time; `tuning-docs --sim-10k --only NAME` adds one, about ten minutes and 10 GB each).",
            not_run.join(", ")
        );
    }
    md.push_str(BREAKS_TEXT);

    // Loss: where the model is shown, not held to the bound.
    md.push_str(LOSS_TEXT);
    md.push_str("| configuration | n | loss | detection | join 50% | join 99% | UDP B/s |\n|---|---|---|---|---|---|---|\n");
    for loss in [0.1, 0.3] {
        let sit = situation("lan", 100, loss);
        let p = predict(&Config::lan(), &sit);
        if let Ok(m) = simulate(&Config::lan(), &sit, &Effort::for_size(1, 100)) {
            let c = compare(&p, &m);
            let get = |f: &str| {
                c.iter()
                    .find(|x| x.figure.starts_with(f))
                    .map_or("—".into(), cell)
            };
            let _ = writeln!(
                md,
                "| Go lan | 100 | {loss} | {} | {} | {} | {} |",
                get("detection"),
                get("join to 50"),
                get("join to 99"),
                get("UDP")
            );
        }
    }

    // Stalls: the false-death model's stall term against simulated stalls.
    md.push_str(STALLS_TEXT);
    let stall_subjects: Vec<&Subject> = subjects
        .iter()
        .filter(|s| s.name == "Go lan" || s.name == "fast-100")
        .collect();
    md.push_str("| configuration | stall | predicted P(death) | simulated share (20 stalls) |\n|---|---|---|---|\n");
    for s in stall_subjects {
        let sit = situation(s.network, 100, 0.0);
        let (min, _) = headcount_proto::suspicion::suspicion_bounds(
            s.config.suspicion_mult,
            s.config.suspicion_max_timeout_mult,
            100,
            s.config.probe_interval,
        );
        // Around the threshold: from half the minimum timeout to twice it.
        for f in [0.5, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0] {
            let d = min.mul_f64(f) + s.config.probe_interval;
            let d = std::time::Duration::from_millis(d.as_millis() as u64 / 100 * 100);
            let p = super::model::stall_death_probability(&s.config, &sit, d);
            let m = super::verify::stall_deaths(&s.config, &sit, d, 20, 1)
                .map_or_else(|e| e, |x| format!("{x:.2}"));
            let _ = writeln!(md, "| {} | {} | {p:.2} | {m} |", s.name, fmt_duration(d));
        }
    }

    // headcount bench.
    md.push_str(BENCH_TEXT);
    if bench.is_empty() {
        md.push_str("\n(No bench results were given to this run of the generator.)\n");
    } else {
        md.push_str("| n | detection: predicted / bench | UDP B/s: quiet prediction / with the run's changes / bench | TCP B/s: predicted / bench | bench run |\n|---|---|---|---|---|\n");
        for b in bench {
            let n = b["nodes"].as_u64().unwrap_or(0) as usize;
            let profile = b["profile"].as_str().unwrap_or("lan");
            let config = match profile {
                "wan" => Config::wan(),
                "local" => Config::local(),
                _ => Config::lan(),
            };
            let sit = Situation {
                names: Names::Node,
                ..situation("local", n, 0.0)
            };
            let p = predict(&config, &sit);
            let f = |k: &str| b[k].as_f64();
            let err = |pred: f64, real: Option<f64>| match real {
                Some(r) if r > 0.0 => {
                    format!("{pred:.1} / {r:.1} ({:+.0}%)", (pred - r) / r * 100.0)
                }
                _ => format!("{pred:.1} / —"),
            };
            // The run's membership changes: n joins, then one suspicion
            // and one death, each retransmitted by every member.
            let elapsed = f("elapsed_s").unwrap_or(40.0).max(1.0);
            let with_changes =
                p.bandwidth.udp + (n + 2) as f64 * p.bandwidth.gossip_per_event / elapsed;
            let _ = writeln!(
                md,
                "| {n} | {} | {:.1} / {} | {} | {profile}, {} s, kill at {} s, {} killed, join converged in {} s |",
                err(p.detect_median, f("detect_all_s")),
                p.bandwidth.udp,
                err(with_changes, f("udp_bytes_per_node_s")),
                err(p.bandwidth.tcp, f("tcp_bytes_per_node_s")),
                b["elapsed_s"].as_f64().map_or("?".into(), |x| format!("{x:.0}")),
                b["kill_at_s"],
                b["killed"],
                b["join_converge_s"].as_f64().map_or("—".into(), |x| format!("{x:.2}")),
            );
        }
        md.push_str(BENCH_AFTER);
    }
    std::fs::write(format!("{out}/tuning.md"), md)
}

const INTRO: &str = "# Tuning: what `headcount tune` predicts, and how close it lands

Generated by `cargo run --release -p headcount-sim -- tuning-docs --bench docs/tuning/bench.jsonl`
(about 10 minutes; the bench lines are `headcount bench` output, see the last section; the
10,000-node simulations are read from `docs/tuning/sim10k.jsonl`, which
`tuning-docs --sim-10k` rewrites in about ten minutes and 10 GB per configuration); do not edit
by hand. Predictions and simulations are deterministic; the bench lines are one measurement.

`headcount tune --nodes N --rtt … --loss … [--stalls …] [--detect …] [--spread …] [--bandwidth …]
[--false-deaths …]` searches eight timing knobs (probe interval and timeout, suspicion multiplier and
maximum, gossip interval and fanout, retransmit multiplier, push/pull interval; 63,360 combinations
from the base preset) with a closed-form model of the protocol, and prints the best configuration
beside Go's three presets. `--verify` runs the simulator with it. The model is
`headcount_sim::tune::model`; the search `tune::search`; the verification `tune::verify`.

## How the predictions are made

Every formula the protocol itself uses comes from the core, so the model and the nodes cannot
disagree on them: the suspicion timeouts (`min = suspicion_mult × max(1, log10 n) × probe_interval`,
`max = suspicion_max_timeout_mult × min`, Lifeguard's `k = suspicion_mult − 2` confirmations and
its `max − ln(c+1)/ln(k+1) × (max − min)` shrinking), the retransmit limit
(`retransmit_mult × ceil(log10(n + 1))`) and the push/pull scaling
(`push_pull_interval × (ceil(log2 n) − 4)` above 32 nodes). On top of them:

- **First suspicion.** Each survivor probes its `n − 1` peers in a shuffled round, one per probe
  interval. For one survivor the crashed member is at a uniform place in the current pass, or, if
  the survivor is past it, in the next (reshuffled) one; the wait has the piecewise-cubic survival
  function `S(x)` (`x` in passes; mean 7/12 of a pass). The first of `n − 1` survivors probes it at
  the minimum of their waits (`S(x)^(n−1)`; for large `n` close to an exponential with a mean of one
  probe interval) and suspects it one probe interval later, when its ack deadline passes.
- **Detection.** The first accuser declares the death at
  `min over c ≤ k of max(t₁ + T(c), arrival of the c-th confirmation)`, `T(c)` being Lifeguard's
  timeout after `c` confirmations; a confirmation is the next survivor's failed probe (the order
  statistics of the waits, drawn 2,000 times from a fixed seed) plus the time its suspicion takes
  to reach the first accuser (drawn from the spread curve below). Everyone else knows once the
  `dead` message has spread; the spread is helped by every member's own suspicion timer, which runs
  out one minimum timeout after that member heard the suspicion, so the `dead` curve is the gossip
  epidemic plus that hazard. Detection = declaration + the time for that curve to reach everyone.
- **Dissemination.** A mean-field, continuous-time push epidemic: an informed member sends the news
  in `gossip_nodes` packets every `gossip_interval` (at a random phase) and piggybacks it on its
  ping and its ack every probe interval, until it has sent it `retransmit_limit` times; each packet
  reaches a uniformly random member with probability `1 − loss`, half a round trip later. p% is the
  time at which the expected informed count reaches p% of the members (within half a member), 100%
  the time at which fewer than ln 2 members are expected uninformed (the median time of the last
  one); what gossip misses, push/pull repairs at two exchanges per scaled push/pull interval. A join
  starts at the contact after half a round trip (the push/pull request), and the newcomer gossips
  too after a whole one.
- **Bandwidth.** The codec encodes a ping, an ack, an indirect ping, a nack, an `alive` and a
  push/pull state of `n` members (in shuffled order, as a table is sent, compressed as the config
  says, with the given name length and metadata). A member sends one ping and one ack per probe
  interval; a direct probe that fails (loss, or a round trip over the probe timeout on a log-normal
  fitted to the typical and p99 round trips) adds the indirect probes, their pings, acks and nacks
  and a TCP fallback ping; each scaled push/pull interval adds one request and one reply of the
  whole state. An idle cluster sends no gossip (headcount parks an idle gossip tick); `--churn`
  adds `retransmit_limit × (alive + 8 bytes)` per member per membership change.
- **False deaths.** A healthy member is probed `n / probe_interval` times a second across the
  cluster. A probe fails outright when the direct ping, every indirect probe (four packets, and two
  round trips before the interval ends) and the TCP fallback (a lost SYN costs a 1 s retransmission
  timeout) all fail; the suspicion then becomes a death only when the member has not heard of it
  and refuted within the minimum timeout (the spread curve's miss probability). A stall of length
  `d` kills when `d + (refutation spread) > (first probe wait) + probe_interval + min`, the first
  probe wait being exponential with a mean of one probe interval.
";

const PLOTS_TEXT: &str = "
## Predictions against cluster size

Sizes 16 to 10,000 (the model is instant at any size). Every configuration on its own network
profile (the simulator's `lan`, `wan` or `local` round trips), no loss, the simulator's node names.
";

const VERIFY_TEXT: &str = "
## The model against the simulator

Each configuration on its network at 16, 100 and 1,000 nodes: the simulator builds a converged
cluster (seeded: every node merges one push/pull state at once), measures bandwidth over whole
scaled push/pull intervals, times one join, then crashes three members one after the other; nine
seeds up to 100 nodes, three above (`Effort::for_size`, what `headcount tune --verify` runs by
default). Each cell is
*predicted / simulated (error)*; the detection, join 50% and 99% medians are held to 20%, UDP and
TCP bandwidth to 15% (a **✗** marks a miss); first suspicion is shown only (its median over nine
crashes moves by ±0.3 probe intervals between seeds, more for the WAN preset's 5 s interval). The wall time is the simulation's on the
shared 2-core development machine.

At 10,000 nodes the same measurement is stored rather than re-run: a simulated cluster of that
size holds 10,000 tables of 10,000 members (about 10 GB) and takes minutes per configuration, so
`cargo run --release -p headcount-sim -- tuning-docs --sim-10k [--only NAME]` runs it once per
configuration, one after the other, with the first seed of `Effort::for_size` (one seed, three
crashes: a single join and three detections, so those cells carry one seed's scatter), and stores
what the simulator measured in `docs/tuning/sim10k.jsonl`. Each regeneration sets the model's
current predictions beside those stored measurements (the 10000 rows; their wall time is the stored
run's, and each run's peak memory is in the table after the list of misses). At 10,000 nodes UDP is
measured over 20 probe intervals and TCP is the push/pull state measured in the push/pulls that
follow the joins (every member's first one, a whole 10,000-member state per reply), twice per
scaled push/pull interval, plus the other streams (TCP fallback pings under loss) measured over the
20 probe intervals, as `headcount tune --verify` does above 200,000 node-seconds: a whole
scaled interval is 150 to 1,200 virtual seconds there, and each holds 10,000 exchanges of the whole
state, so the TCP cell checks the model's state size (both sides take the interval from the
core's scaling), not a measured window.

";

const SIM10K_TEXT: &str = "
The stored 10,000-node runs (`docs/tuning/sim10k.jsonl`): seeds, virtual seconds simulated, wall
time on the shared 2-core development machine (release build, one simulation at a time) and the
process's peak resident memory during each run (`VmHWM`, reset before it).

";

const BREAKS_TEXT: &str = "
### Where the model is weak

- **Small clusters.** With fewer than about 100 members, \"99%\" is the last member, whose
  arrival time is a maximum of random delays; the mean-field model's \"fewer than ln 2 expected
  uninformed\" is only its median, and nine joins per configuration scatter widely around it. At 16
  members a join reaches half of them within one or two hops (20–150 ms), where the phase of a
  single gossip tick decides and a mean-field rate does not: most misses above are join times at 16
  members.
- **Join to 50% is one or three joins' luck.** Every miss above is a join time. Above 100 members
  they are budget-1000 at 100 (0.12 s against 0.17 s) and the 50% times of budget-1000 and
  lossy-200 at 1,000 and 10,000 members: simulated slower than predicted at 1,000 (−19% and
  −30%) and faster at 10,000 (+22% and +25%). The two configurations gossip alike (200 ms to six)
  and are simulated with the same seeds, so one join's luck shows in both rows; the 99% times,
  which rest on the whole spread, stay within 19%. Scatter around the mean-field time, not a trend
  the closed form misses; not fixed.
- **10,000 members.** One seed per configuration (a single join and three crashes), so the 10,000
  rows carry one run's scatter where the smaller sizes carry the median of three or nine. In the
  runs stored on 2026-12-02 two bounded figures miss, the join-to-50% times above. The rest hold
  as at 1,000 (detection medians within 6%, join times within 17%, bandwidth within 2%), and
  `headcount tune` warns above 5,000 members that its join times there rest on one join each. The first suspicion,
  shown only, is the median of three crashes, each one probe interval after an exponential wait
  with a mean of one interval: three draws move it by about ±0.4 intervals (1.25 s against the
  model's 1.69 s for Go lan, 10.4 s against 8.5 s for Go wan). The TCP cell checks the state size
  and, under loss, the fallback pings (see above); a first run of lossy-200 put TCP at 254 B/s
  against the model's 330 (+30% in this table's terms): the simulator's quick measurement had
  averaged the acks of TCP fallback pings (stream replies too) into the push/pull state size. That
  was fixed in the measurement, not the model, and the row re-run (331.6 B/s, −1%). Above 10,000
  members the model is not checked, and `headcount tune` says so.
- **Loss.** The simulator's streams are reliable, so under loss every TCP fallback ping succeeds and
  no healthy member is ever suspected from loss alone, while the model charges real TCP's 1 s SYN
  retransmission; and the health score that loss raises (it stretches probe timeouts) is not
  modelled. The model's loss is independent per datagram, as the simulator's; at 30% loss it
  expects the last members later than the simulator sees them (below).
- **Stalls** are checked one stall length at a time (below), not as a rate over days; a stall that
  slows the member rather than stopping it (docs/simulation.md's Lifeguard experiment) is not
  modelled.
- **Churn bursts.** A join storm or a mass failure queues many broadcasts at once; gossip then packs
  several to a packet and runs at twice the rate (architecture.md). The model's per-change cost
  assumes changes arrive one at a time.
";

const LOSS_TEXT: &str = "
### Under loss (shown, not held to the bound)

Go's LAN preset at 100 nodes with 10% and 30% of datagrams lost (streams reliable):
*predicted / simulated (error)*.

";

const STALLS_TEXT: &str = "
### Stalls

The false-death estimate under `--stalls RATE:DURATION` is the stall rate times the chance that
one stall kills (the formula above). Here that chance is checked on its own: 100 members, twenty
stalls one after the other (the member handles nothing for the stall's length, then its backlog),
counting the stalls after which anyone declared the stalled member dead.

";

const BENCH_TEXT: &str = "
## The model against `headcount bench`

`headcount bench --nodes N --profile lan --duration 40 --kill-at 15` (release build, one run each
on 2026-12-01, on loopback in a private network namespace; the lines are in
`docs/tuning/bench.jsonl`) runs N real nodes in one process, each joining node 0
at start, and kills one at 15 s. Its detection is the crash until every survivor holds it dead;
its bytes are everything the nodes sent over the whole run divided by nodes and seconds, **join
storm included**, while the model predicts a quiet cluster. The machine is a shared 2-core VM with
other developers' builds running: the bench's nodes compete for the CPU with each other and with
those builds, so its figures are noisy (one run each).

";

const BENCH_AFTER: &str = "
The bench's UDP figure includes the join storm (every node's `alive` gossiped to everyone in the
first seconds) and the detection's suspicion and `dead` gossip, which the quiet-cluster prediction
leaves out; the middle figure adds them as `n + 2` membership changes at the model's per-change
cost (`retransmit_limit × (alive + 8 bytes)` per member), which assumes one change per datagram:
a storm packs many, compressed, so that figure is an upper bound. The TCP figure includes each
join's push/pull. Detection compares like with like, but the bench's nodes share two cores.
";
