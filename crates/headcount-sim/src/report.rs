//! Human-readable summaries and the `docs/simulation.md` generator.

use serde_json::Value;

fn f(v: &Value) -> String {
    match v.as_f64() {
        Some(x) => format!("{x:.3}"),
        None => "—".into(),
    }
}

/// Text summary of a `detection` report.
pub fn detection_text(v: &Value) -> String {
    format!(
        "detection: {} nodes, seed {}, loss {}\n  suspicion bounds {}–{} s, detection bound {} s\n  crash → first suspect: mean {} s (max {})\n  crash → first dead:    mean {} s (max {})\n  crash → all agree:     mean {} s (max {})\n  false positives: {}\n  wall {} s\n",
        v["nodes"], v["seed"], v["loss"],
        f(&v["suspicion_min_s"]), f(&v["suspicion_max_s"]), f(&v["detection_bound_s"]),
        f(&v["first_suspect_s"]["mean"]), f(&v["first_suspect_s"]["max"]),
        f(&v["first_dead_s"]["mean"]), f(&v["first_dead_s"]["max"]),
        f(&v["all_dead_s"]["mean"]), f(&v["all_dead_s"]["max"]),
        v["false_positives"], f(&v["wall_s"]),
    )
}

/// Text summary of a `dissemination` report.
pub fn dissemination_text(v: &Value) -> String {
    let mut s = String::from("dissemination (time s / rounds; model rounds swim|serf)\n");
    for r in v["runs"].as_array().into_iter().flatten() {
        for what in ["join", "failure"] {
            s += &format!("  n={} loss={} {what}:", r["nodes"], r["loss"]);
            for q in r[what]["quantiles"].as_array().into_iter().flatten() {
                s += &format!(
                    "  {}%: {}/{} ({}|{})",
                    q["share"].as_f64().unwrap_or(0.0) * 100.0,
                    f(&q["time_s"]),
                    f(&q["rounds"]),
                    q["swim_model_rounds"],
                    q["serf_model_rounds"]
                );
            }
            s += "\n";
        }
    }
    s += &format!("  wall {} s\n", f(&v["wall_s"]));
    s
}

/// Text summary of a `lifeguard` report.
pub fn lifeguard_text(v: &Value) -> String {
    let mut s = format!(
        "lifeguard: {} nodes, {} s, seed {}\n     D   swim(all/healthy/by distressed/seen by healthy)   lifeguard(same)   reduction\n",
        v["nodes"], v["duration_s"], v["seed"]
    );
    for r in v["runs"].as_array().into_iter().flatten() {
        let c = |d: &str| {
            format!(
                "{} / {} / {} / {}",
                r[d]["false_positives"],
                r[d]["false_positives_healthy"],
                r[d]["declared_by_distressed"],
                r[d]["seen_by_healthy"]
            )
        };
        s += &format!(
            "  {:>4}   {:<24} {:<24} {}\n",
            r["distressed"],
            c("swim"),
            c("lifeguard"),
            f(&r["reduction"])
        );
    }
    s += &format!("  wall {} s\n", f(&v["wall_s"]));
    s
}

/// Text summary of a `scale` report.
pub fn scale_text(v: &Value) -> String {
    let mut s = String::from("scale\n");
    let walls = v["wall_s"]["runs"].as_array().cloned().unwrap_or_default();
    for (r, w) in v["runs"].as_array().into_iter().flatten().zip(walls) {
        s += &format!(
            "  n={:<6} bootstrap {} s sim in {} s wall; {} s sim in {} s wall: {} node-s/s ({} steps)\n",
            r["nodes"], f(&r["bootstrap_sim_s"]), f(&w["bootstrap"]), r["sim_s"], f(&w["run"]),
            f(&w["node_seconds_per_s"]), r["steps"]
        );
    }
    s
}

/// One line of a plot.
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Points, in data coordinates.
    pub points: Vec<(f64, f64)>,
}

const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// A line plot as a standalone SVG document. `log_x` plots x on a log2
/// scale (for D from 1 to 32).
pub fn svg_plot(title: &str, xlabel: &str, ylabel: &str, series: &[Series], log_x: bool) -> String {
    let (w, h, ml, mr, mt, mb) = (640.0, 400.0, 60.0, 180.0, 30.0, 45.0);
    let tx = |x: f64| if log_x { x.max(1e-9).log2() } else { x };
    let pts = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, 0.0f64, f64::MIN);
    for &(x, y) in pts {
        x0 = x0.min(tx(x));
        x1 = x1.max(tx(x));
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 >= x1 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    let px = |x: f64| ml + (tx(x) - x0) / (x1 - x0) * (w - ml - mr);
    let py = |y: f64| h - mb - (y - y0) / (y1 - y0) * (h - mt - mb);
    let mut o = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{}\" y=\"18\" text-anchor=\"middle\" font-size=\"14\">{}</text>\n",
        (w - mr + ml) / 2.0,
        esc(title)
    );
    // Axes and ticks.
    o += &format!(
        "<line x1=\"{ml}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n<line x1=\"{ml}\" y1=\"{mt}\" x2=\"{ml}\" y2=\"{}\" stroke=\"black\"/>\n",
        h - mb, w - mr, h - mb, h - mb
    );
    for k in 0..=5 {
        let fx = x0 + (x1 - x0) * k as f64 / 5.0;
        let label = if log_x {
            format!("{:.0}", fx.exp2())
        } else {
            format!("{fx:.3}")
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_string()
        };
        let xx = ml + (w - ml - mr) * k as f64 / 5.0;
        o += &format!("<line x1=\"{xx:.1}\" y1=\"{}\" x2=\"{xx:.1}\" y2=\"{}\" stroke=\"black\"/><text x=\"{xx:.1}\" y=\"{}\" text-anchor=\"middle\">{label}</text>\n", h - mb, h - mb + 4.0, h - mb + 16.0);
        let fy = y0 + (y1 - y0) * k as f64 / 5.0;
        let yy = py(fy);
        let label = format!("{fy:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string();
        o += &format!("<line x1=\"{}\" y1=\"{yy:.1}\" x2=\"{ml}\" y2=\"{yy:.1}\" stroke=\"black\"/><line x1=\"{ml}\" y1=\"{yy:.1}\" x2=\"{}\" y2=\"{yy:.1}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>\n", ml - 4.0, w - mr, ml - 6.0, yy + 4.0);
    }
    o += &format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n<text x=\"14\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {})\">{}</text>\n",
        (w - mr + ml) / 2.0, h - 8.0, esc(xlabel), (h - mb + mt) / 2.0, (h - mb + mt) / 2.0, esc(ylabel)
    );
    for (k, s) in series.iter().enumerate() {
        let c = COLOURS[k % COLOURS.len()];
        let path: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        o += &format!(
            "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{}\"/>\n",
            path.join(" ")
        );
        let ly = mt + 10.0 + 18.0 * k as f64;
        o += &format!("<line x1=\"{}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{c}\" stroke-width=\"2\"/><text x=\"{}\" y=\"{}\">{}</text>\n", w - mr + 10.0, w - mr + 30.0, w - mr + 35.0, ly + 4.0, esc(&s.label));
    }
    o += "</svg>\n";
    o
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn opt(v: Option<f64>) -> String {
    v.map_or("—".into(), |x| format!("{x:.2}"))
}

/// A reduction factor; when Lifeguard had none, a lower bound (`> N`, N
/// being SWIM's count), or a dash when neither had any.
fn reduction(v: Option<f64>, swim: usize) -> String {
    match v {
        Some(x) => format!("{x:.1}×"),
        None if swim > 0 => format!("> {swim}"),
        None => "—".into(),
    }
}

fn opt_u(v: Option<usize>) -> String {
    v.map_or("—".into(), |x| x.to_string())
}

/// Measured speed and memory (issue 4), kept as text: wall-clock figures
/// depend on the machine, so the generator cannot recompute them.
const SCALE_NOTES: &str = "\
### Scale and memory (measured 2026-11-25, one core of an AMD EPYC shared with another developer's builds, load ≈ 1, release build; wall times vary by about ±20% between runs)

| figure | before | after |
|---|---|---|
| table entry (`Member`) | 120 B + a heap `String` per name, `Vec` doubling (up to 2×) | 80 B, names ≤ 23 B inline (smol_str), growth by 1/8 (3% slack after a join) |
| broadcast rank (in the queue's B-tree and its key index) | 24 B | 16 B |
| peak RSS, `dissemination --nodes 1000` (joins bootstrap) | 546 MB (≈ 546 B per node × member) | 456 MB |
| peak RSS, `dissemination --nodes 1000 --bootstrap seeded` | — | 158 MB (≈ 158 B per node × member) |
| peak RSS, `dissemination --nodes 10000` | ≈ 55 GB projected (not runnable) | 10.2 GB (≈ 102 B per node × member; 9.1 GB with glibc malloc) |
| wall, `dissemination --nodes 10000` | not run (10,000 sequential joins: O(n²) gossip) | 5 min 25 s (297 s user; seeded bootstrap) |
| wall, `scale --nodes 1000 --seconds 600`: 600 simulated s | 43.7 s and 59.4 s (two runs; 58.8 s in the earlier README measurement) | 17.0 s, 20.6 s and 19.9 s (three runs, interleaved with those: ≈ 2.6–3× faster; 29,000–35,000 node-seconds per second) |
| wall, the same run's bootstrap (43 simulated s) | 37.8 s, 42.7 s | 25.4 s, 27.3 s, 29.0 s |

Where the time went: glibc `malloc` (≈ 25% of the 1,000-node run; the simulator binary now uses mimalloc), weezl's LZW encoder on push/pull state (replaced by our own encoder following Go's algorithm, byte-identical to Go's output even past a code-table fill, where weezl's was not), and cloning every decoded push/pull entry before merging it. At 10,000 nodes the measured phase is dominated by push/pulls of the 10,000-entry state (LZW and msgpack coding), which is the protocol's own cost. `dissemination --nodes 10000 --seed 1`: the newcomer reaches 50/99/99.9/100% of the nodes in 0.52/0.80/0.93/1.07 s (2.6/4.0/4.6/5.3 gossip rounds); the crash is first declared 18.1 s after it and then reaches 50/99/99.9/100% in 0.38/0.57/0.64/0.80 s.";

/// Regenerates `<out>/simulation.md` and its plots in `<out>/simulation/`.
/// Every table and plot names the command and seed that made it.
pub fn generate(seed: u64, out: &str, quick: bool) -> std::io::Result<()> {
    use crate::experiments::{self, StarveCycle};
    use crate::net::Profile;
    use std::fmt::Write as _;

    let dir = format!("{out}/simulation");
    std::fs::create_dir_all(&dir)?;
    let sizes: Vec<usize> = if quick {
        vec![10, 100]
    } else {
        vec![10, 100, 1000]
    };
    let losses = [0.0, 0.1, 0.3];
    let ds: Vec<usize> = if quick {
        vec![1, 4, 16]
    } else {
        vec![1, 2, 4, 8, 16, 32]
    };
    let (lg_nodes, lg_secs) = if quick { (32, 120) } else { (64, 600) };
    let det_sizes: Vec<usize> = if quick {
        vec![10, 50]
    } else {
        vec![10, 50, 200]
    };
    let list = |v: &[usize]| {
        v.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut md = String::new();
    let _ = writeln!(md, "# Simulation results\n\nGenerated by `cargo run --release -p headcount-sim -- docs --seed {seed}{}`: do not edit by hand. Every number below comes from real `headcount-proto` nodes exchanging real encoded packets and streams over the simulated network of `crates/headcount-sim` (see its crate docs), under the `lan` profile (`Config::lan()`, 0.1–0.5 ms links) unless said otherwise. The same seed gives the same numbers on any machine.\n", if quick { " --quick" } else { "" });
    let _ = writeln!(md, "Clusters are bootstrapped through real joins: node *k* starts 20 ms after node *k − 1* and joins (push/pull) a node picked uniformly among those already started; gossip and push/pull do the rest. Measurements start once every node holds every other alive.\n");
    let _ = writeln!(md, "Above {} nodes (`dissemination --bootstrap auto`, or `--bootstrap seeded` at any size) joins one by one cost O(n²) gossip (10,000 joins would queue news of every node at every node), so the `dissemination` experiment starts from a *seeded* cluster instead: all nodes start at once, one push/pull state listing every node alive (each entry is the node's own view of itself) is encoded once, uncompressed, and every node joins and is handed it as its contact's reply, which it decodes with `wire::decode_stream` and merges by the ordinary join path; then the gossip those merges queued is dropped (`Node::reset_broadcasts`), as in a cluster that has run long enough to send it all. The measured phase (a node joins, another crashes) runs the unmodified protocol either way; at 1,000 nodes the two bootstraps' spread times differ by no more than one seed's from another's (up to about 0.2 s on the 50–100% times, seeds 1–3).\n", experiments::Bootstrap::SEEDED_ABOVE);

    // Dissemination.
    let cmd = format!(
        "headcount-sim dissemination --nodes {} --loss {} --seed {seed} --json",
        list(&sizes),
        losses
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut d = experiments::dissemination(&sizes, &losses, seed, Profile::lan());
    // 10,000 nodes take minutes and gigabytes: one loss rate only.
    let big_cmd =
        format!("headcount-sim dissemination --nodes 10000 --loss 0 --seed {seed} --json");
    if !quick {
        let big = experiments::dissemination(&[10_000], &[0.0], seed, Profile::lan());
        d.runs.extend(big.runs);
    }
    let cmd = if quick {
        cmd
    } else {
        format!("{cmd}` and `{big_cmd}")
    };
    let _ = writeln!(md, "## Dissemination\n\n`{cmd}`\n\nA node joins (timed from its join call; a node \"knows\" when it holds the newcomer alive) and then another node crashes (timed from the first death declaration; \"knows\" = holds it dead). Time in seconds, rounds in gossip intervals ({} s, fanout {}). *SWIM model*: mean-field push gossip with memberlist's retransmit limit; *Serf model*: the same without the limit (every informed node keeps gossiping), as in Serf's convergence simulator; *closed form*: log₍₁₊f₎ n + ln n / f rounds to reach everyone, f = fanout × (1 − loss). Loss applies to every datagram; streams (push/pull) are reliable. The models count synchronous rounds; real nodes gossip at independent random phases and also piggyback news on probes and acks, so news can cross several hops within one interval and the measured rounds come out below the models'.\n", d.gossip_interval_s, d.gossip_nodes);
    let _ = writeln!(md, "| n | loss | news | 50% s (rounds) | 99% s (rounds) | 99.9% s | 100% s (rounds) | SWIM model rounds 50/99/100% | Serf model rounds 50/99/100% | closed form 100% |\n|---|---|---|---|---|---|---|---|---|---|");
    for r in &d.runs {
        for sp in [&r.join, &r.failure] {
            let q = &sp.quantiles;
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} ({}) | {} ({}) | {} | {} ({}) | {}/{}/{} | {}/{}/{} | {:.1} |",
                r.nodes,
                r.loss,
                sp.what,
                opt(q[0].time_s),
                opt(q[0].rounds),
                opt(q[1].time_s),
                opt(q[1].rounds),
                opt(q[2].time_s),
                opt(q[3].time_s),
                opt(q[3].rounds),
                opt_u(q[0].swim_model_rounds),
                opt_u(q[1].swim_model_rounds),
                opt_u(q[3].swim_model_rounds),
                opt_u(q[0].serf_model_rounds),
                opt_u(q[1].serf_model_rounds),
                opt_u(q[3].serf_model_rounds),
                r.swim_rounds_all_closed_form
            );
        }
    }
    for what in ["join", "failure"] {
        let series: Vec<Series> = d
            .runs
            .iter()
            .map(|r| {
                let sp = if what == "join" { &r.join } else { &r.failure };
                Series {
                    label: format!("n={} loss={}", r.nodes, r.loss),
                    points: sp.curve.iter().map(|p| (p[0], p[1])).collect(),
                }
            })
            .collect();
        let file = format!("dissemination-{what}.svg");
        std::fs::write(
            format!("{dir}/{file}"),
            svg_plot(
                &format!("Share of nodes informed ({what})"),
                "seconds",
                "share informed",
                &series,
                false,
            ),
        )?;
        let _ = writeln!(md, "\n![share informed over time, {what}](simulation/{file})\n\n*{what}: share of nodes informed over time. Command: `{cmd}`.*");
    }

    // Detection.
    let _ = writeln!(md, "\n## Failure detection\n\nA random node crashes, five times in a row; seconds from the crash. The bound is the one the property tests hold every run to: two round-robin probe passes, one more probe, the maximum suspicion timeout of wire-protocol.md §8, and ten gossip intervals.\n\n| n | command | first suspicion (mean / max) | first death (mean / max) | all agree (mean / max) | suspicion min–max | bound | false positives |\n|---|---|---|---|---|---|---|---|");
    for &n in &det_sizes {
        let r = experiments::detection(n, seed, Profile::lan(), 0.0, 5);
        let _ = writeln!(md, "| {n} | `headcount-sim detection --nodes {n} --seed {seed} --json` | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2}–{:.2} | {:.1} | {} |",
            r.first_suspect_s.mean, r.first_suspect_s.max, r.first_dead_s.mean, r.first_dead_s.max, r.all_dead_s.mean, r.all_dead_s.max, r.suspicion_min_s, r.suspicion_max_s, r.detection_bound_s, r.false_positives);
    }

    // Lifeguard.
    let _ = writeln!(md, "\n## Lifeguard: false positives against distressed members\n\nD of the members are *distressed* in cycles: a slow stretch of {}–{} s, then {}–{} s healthy (lengths uniform). In a slow stretch the member's receive path is one FIFO queue in which every packet and stream leg waits a fixed lag (drawn per stretch) before it is handled, while its timers fire on time: a CPU-starved process whose message handling falls behind while its probe and suspicion deadlines still come due. When the stretch ends the queue drains in order; nothing overtakes it. Nothing ever crashes, so every death declaration is a false positive. *SWIM* is memberlist with every Lifeguard mechanism off: `awareness_max_multiplier = 1` (no health score), `suspicion_max_timeout_mult = 1` (fixed suspicion timeout, {:.1} s here), `lifeguard_suspect_piggyback = false` and `lifeguard_nacks = false`. *Lifeguard* is memberlist's defaults plus two local extensions of headcount's: `lifeguard_health_scaled_suspicion`, a node whose own health score is above zero waits score + 1 times its suspicion timeout before it declares a suspect dead itself (healthy nodes still declare on time, and their `dead` gossip reaches the slow one), and `retry_direct_ping`, a probe whose first ping goes unanswered pings the target directly once more beside the indirect pings. Before it, what remained were slow members declaring other slow members dead while the refutation sat in their own backlog; the switch removed nearly all of those (nothing on the wire changes). Both detectors see the same distress schedule.\n\nColumns: *declared* counts distinct (member, incarnation) death declarations; *about healthy* those about members that were never distressed; *by distressed* those first declared by a distressed member (its own suspicion timer ran out while the refutation sat in its queue); *seen by healthy* those that at least one healthy member believed. See the crate README for why each count is there.\n",
        StarveCycle::default().starve_min_ms / 1000, StarveCycle::default().starve_max_ms / 1000, StarveCycle::default().run_min_ms / 1000, StarveCycle::default().run_max_ms / 1000,
        4.0 * (lg_nodes as f64).log10());
    let variants = [
        ("lifeguard", StarveCycle::default()),
        (
            "lifeguard-mild",
            StarveCycle {
                lag_min_ms: 200,
                lag_max_ms: 2_000,
                ..StarveCycle::default()
            },
        ),
    ];
    for (name, cycle) in variants {
        lifeguard_section(&mut md, &dir, name, lg_nodes, lg_secs, seed, &ds, cycle)?;
    }

    // Speed.
    let _ = writeln!(md, "\n## Speed\n\nWall-clock figures depend on the machine; run `headcount-sim scale --nodes 100,1000 --seconds 600` and `headcount-sim dissemination --nodes 10000` to measure yours. See the crate README for the last measured numbers.\n\n{SCALE_NOTES}");
    std::fs::write(format!("{out}/simulation.md"), md)?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn lifeguard_section(
    md: &mut String,
    dir: &str,
    name: &str,
    nodes: usize,
    secs: u64,
    seed: u64,
    ds: &[usize],
    cycle: crate::experiments::StarveCycle,
) -> std::io::Result<()> {
    use crate::experiments;
    use crate::net::Profile;
    use core::time::Duration;
    use std::fmt::Write as _;
    let list = ds
        .iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let lag = format!(
        "{}–{} s",
        cycle.lag_min_ms as f64 / 1000.0,
        cycle.lag_max_ms as f64 / 1000.0
    );
    let cmd = format!(
        "headcount-sim lifeguard --nodes {nodes} --distressed {list} --duration {secs} --lag-ms {},{} --seed {seed} --json",
        cycle.lag_min_ms, cycle.lag_max_ms
    );
    let l = experiments::lifeguard(
        nodes,
        ds,
        seed,
        Profile::lan(),
        0.0,
        Duration::from_secs(secs),
        cycle,
    );
    let _ = writeln!(md, "\n### Inbound lag {lag}\n\n`{cmd}`\n\n| D | SWIM: declared | about healthy | by distressed | seen by healthy | Lifeguard: declared | about healthy | by distressed | seen by healthy | reduction: declared | about healthy | seen by healthy |\n|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &l.runs {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.distressed,
            r.swim.false_positives,
            r.swim.false_positives_healthy,
            r.swim.declared_by_distressed,
            r.swim.seen_by_healthy,
            r.lifeguard.false_positives,
            r.lifeguard.false_positives_healthy,
            r.lifeguard.declared_by_distressed,
            r.lifeguard.seen_by_healthy,
            reduction(r.reduction, r.swim.false_positives),
            reduction(r.reduction_healthy, r.swim.false_positives_healthy),
            reduction(r.reduction_seen_by_healthy, r.swim.seen_by_healthy),
        );
    }
    let sum = |f: &dyn Fn(&crate::experiments::LifeguardRun) -> usize| -> usize {
        l.runs.iter().map(f).sum()
    };
    let (swim_all, lg_all) = (
        sum(&|r| r.swim.false_positives),
        sum(&|r| r.lifeguard.false_positives),
    );
    let (swim_h, lg_h) = (
        sum(&|r| r.swim.false_positives_healthy),
        sum(&|r| r.lifeguard.false_positives_healthy),
    );
    let (swim_s, lg_s) = (
        sum(&|r| r.swim.seen_by_healthy),
        sum(&|r| r.lifeguard.seen_by_healthy),
    );
    let ratio = |a: usize, b: usize| (b > 0).then(|| a as f64 / b as f64);
    let _ = writeln!(
        md,
        "| all D | {swim_all} | {swim_h} | {} | {swim_s} | {lg_all} | {lg_h} | {} | {lg_s} | {} | {} | {} |",
        sum(&|r| r.swim.declared_by_distressed),
        sum(&|r| r.lifeguard.declared_by_distressed),
        reduction(ratio(swim_all, lg_all), swim_all),
        reduction(ratio(swim_h, lg_h), swim_h),
        reduction(ratio(swim_s, lg_s), swim_s),
    );
    let _ = writeln!(
        md,
        "\nThe Lifeguard paper reports 50–100× fewer false positives. A reduction shown as *> N* means Lifeguard had none where SWIM had N."
    );
    let pts = |f: &dyn Fn(&crate::experiments::LifeguardRun) -> usize| -> Vec<(f64, f64)> {
        l.runs
            .iter()
            .map(|r| (r.distressed as f64, f(r) as f64))
            .collect()
    };
    let series = vec![
        Series {
            label: "SWIM, all".into(),
            points: pts(&|r| r.swim.false_positives),
        },
        Series {
            label: "Lifeguard, all".into(),
            points: pts(&|r| r.lifeguard.false_positives),
        },
        Series {
            label: "SWIM, healthy".into(),
            points: pts(&|r| r.swim.false_positives_healthy),
        },
        Series {
            label: "Lifeguard, healthy".into(),
            points: pts(&|r| r.lifeguard.false_positives_healthy),
        },
    ];
    std::fs::write(
        format!("{dir}/{name}.svg"),
        svg_plot(
            &format!("False positives against distressed members, lag {lag}"),
            "D (log scale)",
            "false positives",
            &series,
            true,
        ),
    )?;
    let _ = writeln!(md, "\n![false positives against D, lag {lag}](simulation/{name}.svg)\n\n*False positives against D, SWIM beside Lifeguard, inbound lag {lag}. Command: `{cmd}`.*");
    Ok(())
}
