//! `headcount tune`: a recommended configuration for a cluster size, a
//! network and goals, with the model's predictions beside Go's presets,
//! and (`--verify`) the simulator's measurements beside the predictions.
//!
//! The model, the search and the verification live in
//! `headcount_sim::tune`; this module parses the situation and the goals
//! and writes the answer as a table, agent TOML, Rust, Go or JSON.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use headcount_proto::Config;
use headcount_sim::net::Profile;
use headcount_sim::tune::model::{self, Names, Prediction, Situation, Stalls};
use headcount_sim::tune::search::{self, fmt_duration, Knobs, Recommendation, Targets};
use headcount_sim::tune::verify::{self, Comparison, Effort, Measured};
use serde_json::json;

use crate::agent::agent_config::parse_duration;

/// `headcount tune`'s arguments.
#[derive(Args, Debug)]
#[command(after_help = "\
EXAMPLES:
  headcount tune --nodes 500 --rtt lan --detect 5s --bandwidth 2KB/s
  headcount tune --nodes 64..1000 --rtt 20ms,80ms --loss 1% --false-deaths 1/week --format go
  headcount tune --nodes 1000 --detect 10s --verify

Times are medians of the model (docs/tuning.md): detection is a crash until
every member holds it dead, dissemination is news reaching 99% of members.
Bandwidth is UDP + TCP bytes each member sends per second.")]
pub struct TuneArgs {
    /// Cluster size, or a range LOW..HIGH (the targets must hold at both
    /// ends: detection and bandwidth are worst at the top, false deaths
    /// under stalls at the bottom).
    #[arg(long, value_name = "N|LOW..HIGH", allow_hyphen_values = true)]
    nodes: String,
    /// Round-trip times: a profile (lan, wan, local) or TYPICAL[,P99], e.g.
    /// 2ms,10ms.
    #[arg(
        long,
        value_name = "PROFILE|RTT[,P99]",
        allow_hyphen_values = true,
        default_value = "lan"
    )]
    rtt: String,
    /// Datagram loss: a fraction (0.01) or a percentage (1%).
    #[arg(
        long,
        value_name = "RATE",
        allow_hyphen_values = true,
        default_value = "0"
    )]
    loss: String,
    /// Member stalls, for false deaths: RATE:DURATION, e.g. 1/h:10s (each
    /// member stops answering once an hour for 10 s).
    #[arg(long, value_name = "RATE:DURATION", allow_hyphen_values = true)]
    stalls: Option<String>,
    /// Membership changes per member per hour, for the gossip they cost.
    #[arg(
        long,
        value_name = "PER_HOUR",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    churn: f64,
    /// Length of member names in bytes (for the encoded sizes).
    #[arg(long, value_name = "BYTES", default_value_t = 16)]
    name_len: usize,
    /// Metadata bytes per member (Serf tags, for example).
    #[arg(long, value_name = "BYTES", default_value_t = 0)]
    meta_bytes: usize,
    /// Target: crash to everyone knowing, median (e.g. 5s).
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    detect: Option<String>,
    /// Target: news to 99% of the members (e.g. 1s).
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    spread: Option<String>,
    /// Target: bytes each member sends per second (e.g. 2KB/s, 500B/s).
    #[arg(long, value_name = "RATE", allow_hyphen_values = true)]
    bandwidth: Option<String>,
    /// Target: false deaths per cluster (e.g. 1/day, 1/week).
    #[arg(long, value_name = "RATE", allow_hyphen_values = true)]
    false_deaths: Option<String>,
    /// The preset whose other settings the recommendation keeps (default:
    /// wan when the typical RTT is above 20 ms, else lan).
    #[arg(long, value_enum)]
    base: Option<Preset>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Same as --format json.
    #[arg(long)]
    json: bool,
    /// Run the simulator with the recommendation and print predicted
    /// against simulated figures.
    #[arg(long)]
    verify: bool,
    /// Seeds (simulated clusters) for --verify [default: 9 up to 100
    /// nodes, 3 above].
    #[arg(long, value_name = "N")]
    seeds: Option<u64>,
    /// With --verify: measure TCP over whole scaled push/pull intervals
    /// even where that is slow (large clusters).
    #[arg(long)]
    verify_full: bool,
    /// Crashes per seed for --verify.
    #[arg(long, value_name = "N", default_value_t = 3)]
    crashes: usize,
}

/// Go's presets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Preset {
    /// DefaultLANConfig.
    Lan,
    /// DefaultWANConfig.
    Wan,
    /// DefaultLocalConfig.
    Local,
}

impl Preset {
    fn config(self) -> Config {
        match self {
            Preset::Lan => Config::lan(),
            Preset::Wan => Config::wan(),
            Preset::Local => Config::local(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Preset::Lan => "lan",
            Preset::Wan => "wan",
            Preset::Local => "local",
        }
    }
}

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table for people: the recommendation beside Go's presets.
    Table,
    /// The agent's configuration file (`headcount agent --config`).
    Toml,
    /// Rust: a `headcount::Config` expression.
    Rust,
    /// Go: `memberlist.Config` field assignments.
    Go,
    /// Everything, as one JSON object.
    Json,
}

// ----- parsing ---------------------------------------------------------------

/// Parses `N` or `LOW..HIGH`.
pub fn parse_nodes(s: &str) -> Result<(usize, usize), String> {
    let one = |p: &str| -> Result<usize, String> {
        let p = p.trim().replace('_', "");
        let n: usize = p
            .parse()
            .map_err(|_| format!("--nodes: {p:?} is not a whole number of nodes"))?;
        if n < 3 {
            return Err(format!("--nodes: {n} is too small (at least 3)"));
        }
        if n > 1_000_000 {
            return Err(format!(
                "--nodes: {n} is beyond what the model covers (1,000,000)"
            ));
        }
        Ok(n)
    };
    match s.split_once("..") {
        Some((a, b)) => {
            let (a, b) = (one(a)?, one(b)?);
            if a > b {
                return Err(format!("--nodes: the range {a}..{b} is empty"));
            }
            Ok((a, b))
        }
        None => one(s).map(|n| (n, n)),
    }
}

/// Parses `--rtt`: a profile name or `TYPICAL[,P99]`.
pub fn parse_rtt(s: &str) -> Result<(Duration, Duration), String> {
    if let Some(p) = Profile::by_name(s.trim()) {
        let sit = Situation::for_profile(&p, 2);
        return Ok((sit.rtt, sit.rtt_p99));
    }
    let mut parts = s.split(',');
    let typical = parts
        .next()
        .map(|p| parse_duration(p).map_err(|e| format!("--rtt: {e}")))
        .transpose()?
        .ok_or("--rtt: empty")?;
    let p99 = match parts.next() {
        Some(p) => parse_duration(p).map_err(|e| format!("--rtt: {e}"))?,
        None => typical * 3,
    };
    if parts.next().is_some() {
        return Err("--rtt takes a profile (lan, wan, local) or TYPICAL[,P99]".into());
    }
    if typical.is_zero() {
        return Err("--rtt: the typical round trip must be above zero".into());
    }
    if p99 < typical {
        return Err(format!(
            "--rtt: the p99 ({p99:?}) is below the typical round trip ({typical:?})"
        ));
    }
    if typical > Duration::from_secs(10) {
        return Err("--rtt: round trips above 10 s are beyond the model".into());
    }
    Ok((typical, p99))
}

/// Parses a probability: `0.01` or `1%`.
pub fn parse_loss(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (num, scale) = match t.strip_suffix('%') {
        Some(n) => (n, 100.0),
        None => (t, 1.0),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("--loss: {s:?} is not a fraction (0.01) or a percentage (1%)"))?;
    let v = v / scale;
    if !(0.0..1.0).contains(&v) {
        return Err(format!(
            "--loss: {s:?} must be at least 0 and below 1 (100%)"
        ));
    }
    Ok(v)
}

/// Parses a byte rate: `2KB/s`, `1.5KiB/s`, `800B/s`, `1MB/s` (the `/s`
/// may be left out).
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("--bandwidth: {s:?} is not a rate (e.g. 2KB/s, 800B/s)"))?;
    let scale = match unit.trim() {
        "B" | "" => 1.0,
        "KB" | "kB" | "K" | "k" => 1e3,
        "KiB" => 1024.0,
        "MB" | "M" => 1e6,
        "MiB" => 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "--bandwidth: unknown unit {other:?} in {s:?} (B, KB, KiB, MB, MiB per second)"
            ))
        }
    };
    if v <= 0.0 {
        return Err("--bandwidth must be above zero".into());
    }
    Ok(v * scale)
}

/// Parses `COUNT/PERIOD` (`1/day`, `2/week`, `1/h`) into a count per
/// day; a bare number is per day.
pub fn parse_per_day(s: &str, flag: &str) -> Result<f64, String> {
    let (num, period) = match s.split_once('/') {
        Some((n, p)) => (n.trim(), p.trim()),
        None => (s.trim(), "day"),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{flag}: {s:?} is not a rate (e.g. 1/day, 1/week)"))?;
    if !(v >= 0.0 && v.is_finite()) {
        return Err(format!("{flag}: {s:?} must not be negative"));
    }
    let days = match period {
        "s" | "sec" | "second" => 1.0 / 86_400.0,
        "m" | "min" | "minute" => 1.0 / 1440.0,
        "h" | "hour" => 1.0 / 24.0,
        "d" | "day" => 1.0,
        "w" | "week" => 7.0,
        "month" => 30.0,
        "y" | "year" => 365.0,
        other => {
            return Err(format!(
                "{flag}: unknown period {other:?} (s, min, h, day, week, month, year)"
            ))
        }
    };
    Ok(v / days)
}

/// Parses `--stalls RATE:DURATION`.
pub fn parse_stalls(s: &str) -> Result<Stalls, String> {
    let (rate, dur) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("--stalls: {s:?} is not RATE:DURATION (e.g. 1/h:10s)"))?;
    let per_day = parse_per_day(rate, "--stalls")?;
    let duration = parse_duration(dur).map_err(|e| format!("--stalls: {e}"))?;
    Ok(Stalls {
        per_hour: per_day / 24.0,
        duration,
    })
}

fn duration_target(s: &Option<String>, flag: &str) -> Result<Option<f64>, String> {
    s.as_deref()
        .map(|v| {
            let d = parse_duration(v).map_err(|e| format!("{flag}: {e}"))?;
            if d.is_zero() {
                return Err(format!("{flag} must be above zero"));
            }
            Ok(d.as_secs_f64())
        })
        .transpose()
}

/// The parsed question.
#[derive(Debug)]
pub struct Question {
    /// Smallest and largest cluster size.
    pub nodes: (usize, usize),
    /// The situation at the largest size.
    pub situation: Situation,
    /// The goals.
    pub targets: Targets,
    /// The preset the recommendation starts from.
    pub base: Preset,
}

/// Checks and converts the arguments.
pub fn question(a: &TuneArgs) -> Result<Question, String> {
    let nodes = parse_nodes(&a.nodes)?;
    let (rtt, rtt_p99) = parse_rtt(&a.rtt)?;
    let loss = parse_loss(&a.loss)?;
    let stalls = a.stalls.as_deref().map(parse_stalls).transpose()?;
    if !(a.churn >= 0.0 && a.churn.is_finite()) {
        return Err("--churn must not be negative".into());
    }
    if a.name_len == 0 || a.name_len > 255 {
        return Err("--name-len must be 1 to 255 bytes".into());
    }
    if a.meta_bytes > 512 {
        return Err("--meta-bytes: memberlist carries at most 512 bytes of metadata".into());
    }
    let targets = Targets {
        detect: duration_target(&a.detect, "--detect")?,
        spread: duration_target(&a.spread, "--spread")?,
        bandwidth: a.bandwidth.as_deref().map(parse_rate).transpose()?,
        false_deaths: a
            .false_deaths
            .as_deref()
            .map(|s| parse_per_day(s, "--false-deaths"))
            .transpose()?,
    };
    let base = a.base.unwrap_or(if rtt > Duration::from_millis(20) {
        Preset::Wan
    } else {
        Preset::Lan
    });
    Ok(Question {
        nodes,
        situation: Situation {
            nodes: nodes.1,
            rtt,
            rtt_p99,
            loss,
            stalls,
            names: Names::Len(a.name_len),
            meta_bytes: a.meta_bytes,
            churn_per_hour: a.churn,
        },
        targets,
        base,
    })
}

// ----- answering ---------------------------------------------------------------

/// The answer, before formatting.
struct Answer {
    q: Question,
    rec: Recommendation,
    /// The recommendation at the smallest size of a range.
    at_low: Option<Prediction>,
    presets: Vec<(Preset, Prediction)>,
    verified: Option<(Measured, Vec<Comparison>)>,
}

/// Runs `headcount tune`.
pub fn run(a: TuneArgs) -> ExitCode {
    match answer(&a) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("headcount tune: {e}");
            ExitCode::from(2)
        }
    }
}

/// The text `headcount tune` prints for these arguments.
pub fn answer(a: &TuneArgs) -> Result<String, String> {
    let q = question(a)?;
    let base = q.base.config();
    let low = (q.nodes.0 != q.nodes.1).then(|| Situation {
        nodes: q.nodes.0,
        ..q.situation.clone()
    });
    let rec = search::recommend_range(&base, low.as_ref(), &q.situation, &q.targets);
    let at_low = low.map(|s| model::predict(&rec.best.knobs.apply(&base), &s));
    let presets = [Preset::Lan, Preset::Wan, Preset::Local]
        .into_iter()
        .map(|p| (p, model::predict(&p.config(), &q.situation)))
        .collect();
    let verified = if a.verify {
        let config = rec.best.knobs.apply(&base);
        // The simulator names nodes n0, n1, … and carries no metadata and no
        // churn: predict for exactly that.
        let s = Situation {
            names: Names::Sim,
            meta_bytes: 0,
            churn_per_hour: 0.0,
            ..q.situation.clone()
        };
        let seeds = a.seeds.unwrap_or(if s.nodes <= 100 { 9 } else { 3 });
        if seeds == 0 || seeds > 100 {
            return Err("--seeds must be 1 to 100".into());
        }
        if a.crashes == 0 || a.crashes > 100 {
            return Err("--crashes must be 1 to 100".into());
        }
        if s.nodes > 5000 {
            return Err(format!(
                "--verify simulates every node: {} nodes would need about {} GB; verify at 5000 or fewer",
                s.nodes,
                s.nodes * s.nodes / 10_000_000 + 1
            ));
        }
        // Whole push/pull intervals while they are cheap to simulate
        // (up to about 200,000 node-seconds), else the state size measured
        // in the joins' push/pulls on the core's schedule.
        let window = verify::bandwidth_window(&config, s.nodes);
        let effort = Effort {
            seeds: (1..=seeds).collect(),
            crashes: a.crashes,
            full_bandwidth: a.verify_full || window.as_secs_f64() * s.nodes as f64 <= 200_000.0,
        };
        let p = model::predict(&config, &s);
        let m = verify::simulate(&config, &s, &effort)?;
        let c = verify::compare(&p, &m);
        Some((m, c))
    } else {
        None
    };
    let ans = Answer {
        q,
        rec,
        at_low,
        presets,
        verified,
    };
    let format = if a.json { Format::Json } else { a.format };
    Ok(match format {
        Format::Table => table(&ans),
        Format::Toml => toml(&ans),
        Format::Rust => rust(&ans),
        Format::Go => go(&ans),
        Format::Json => {
            serde_json::to_string_pretty(&json_value(&ans)).expect("serialisable") + "\n"
        }
    })
}

fn secs(x: f64) -> String {
    if !x.is_finite() {
        "never".into()
    } else if x < 0.01 {
        format!("{:.1} ms", x * 1000.0)
    } else if x < 1.0 {
        format!("{:.0} ms", x * 1000.0)
    } else if x < 100.0 {
        format!("{x:.2} s")
    } else {
        format!("{x:.0} s")
    }
}

fn bytes(x: f64) -> String {
    if x < 1000.0 {
        format!("{x:.0} B")
    } else if x < 1e6 {
        format!("{:.1} KB", x / 1e3)
    } else {
        format!("{:.1} MB", x / 1e6)
    }
}

fn rate(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if x >= 0.1 {
        format!("{x:.2}")
    } else {
        format!("{x:.1e}")
    }
}

fn describe(q: &Question) -> String {
    let s = &q.situation;
    let nodes = if q.nodes.0 == q.nodes.1 {
        format!("{} nodes", q.nodes.1)
    } else {
        format!("{}..{} nodes", q.nodes.0, q.nodes.1)
    };
    let stalls = match s.stalls {
        Some(st) => format!(
            ", stalls of {} {}/member/h",
            fmt_duration(st.duration),
            rate(st.per_hour)
        ),
        None => String::new(),
    };
    format!(
        "{nodes}, RTT {} (p99 {}), loss {}%{stalls}, churn {}/member/h",
        secs(s.rtt.as_secs_f64()),
        secs(s.rtt_p99.as_secs_f64()),
        s.loss * 100.0,
        s.churn_per_hour
    )
}

fn describe_targets(t: &Targets) -> String {
    let mut v = Vec::new();
    if let Some(x) = t.detect {
        v.push(format!("detection ≤ {}", secs(x)));
    }
    if let Some(x) = t.spread {
        v.push(format!("dissemination (99%) ≤ {}", secs(x)));
    }
    if let Some(x) = t.bandwidth {
        v.push(format!("bandwidth ≤ {}/s", bytes(x)));
    }
    if let Some(x) = t.false_deaths {
        v.push(format!("false deaths ≤ {}/day", rate(x)));
    }
    if v.is_empty() {
        "none (balanced against the base preset)".into()
    } else {
        v.join(", ")
    }
}

fn misses(p: &Prediction, t: &Targets) -> String {
    let mut v = Vec::new();
    if t.detect.is_some_and(|x| p.detect_median > x) {
        v.push("detection");
    }
    if t.spread.is_some_and(|x| p.spread_99 > x) {
        v.push("dissemination");
    }
    if t.bandwidth.is_some_and(|x| p.bandwidth.total > x) {
        v.push("bandwidth");
    }
    if t.false_deaths.is_some_and(|x| p.false_deaths_per_day > x) {
        v.push("false deaths");
    }
    if v.is_empty() {
        "yes".into()
    } else {
        format!("no: {}", v.join(", "))
    }
}

/// Rows of the comparison table: knobs, then predictions.
fn rows(cols: &[(Knobs, &Prediction)], t: &Targets) -> Vec<(String, Vec<String>)> {
    type KnobFn = fn(&Knobs) -> String;
    type PredFn = fn(&Prediction) -> String;
    let knob_rows: [(&str, KnobFn); 8] = [
        ("probe_interval", |k| fmt_duration(k.probe_interval)),
        ("probe_timeout", |k| fmt_duration(k.probe_timeout)),
        ("suspicion_mult", |k| k.suspicion_mult.to_string()),
        ("suspicion_max_timeout_mult", |k| {
            k.suspicion_max_timeout_mult.to_string()
        }),
        ("gossip_interval", |k| fmt_duration(k.gossip_interval)),
        ("gossip_nodes", |k| k.gossip_nodes.to_string()),
        ("retransmit_mult", |k| k.retransmit_mult.to_string()),
        ("push_pull_interval", |k| fmt_duration(k.push_pull_interval)),
    ];
    let pred_rows: [(&str, PredFn); 11] = [
        ("first suspicion (median)", |p| secs(p.first_suspect_median)),
        ("suspicion timeout min–max", |p| {
            format!("{}–{}", secs(p.suspicion_min), secs(p.suspicion_max))
        }),
        ("detection median / p99", |p| {
            format!("{} / {}", secs(p.detect_median), secs(p.detect_p99))
        }),
        ("dissemination 99% / 100%", |p| {
            format!("{} / {}", secs(p.spread_99), secs(p.spread_100))
        }),
        ("UDP per member", |p| {
            format!("{}/s", bytes(p.bandwidth.udp))
        }),
        ("TCP per member", |p| {
            format!("{}/s", bytes(p.bandwidth.tcp))
        }),
        ("total per member", |p| {
            format!("{}/s", bytes(p.bandwidth.total))
        }),
        ("push/pull: every / state", |p| {
            format!(
                "{} / {}",
                secs(p.push_pull_interval),
                bytes(p.push_pull_bytes as f64)
            )
        }),
        ("gossip per change, member", |p| {
            bytes(p.bandwidth.gossip_per_event)
        }),
        ("false deaths per day", |p| rate(p.false_deaths_per_day)),
        ("retransmit limit", |p| p.retransmit_limit.to_string()),
    ];
    let mut out = Vec::new();
    for (name, f) in knob_rows {
        out.push((name.to_string(), cols.iter().map(|(k, _)| f(k)).collect()));
    }
    out.push((String::new(), vec![String::new(); cols.len()]));
    for (name, f) in pred_rows {
        out.push((name.to_string(), cols.iter().map(|(_, p)| f(p)).collect()));
    }
    out.push((
        "meets the targets".into(),
        cols.iter().map(|(_, p)| misses(p, t)).collect(),
    ));
    out
}

fn render(header: &[String], rows: &[(String, Vec<String>)]) -> String {
    let w0 = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    let ws: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r.1[i].chars().count())
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut s = String::new();
    let pad = |s: &mut String, text: &str, w: usize| {
        s.push_str(text);
        for _ in text.chars().count()..w {
            s.push(' ');
        }
    };
    pad(&mut s, "", w0);
    for (h, w) in header.iter().zip(&ws) {
        s.push_str("  ");
        pad(&mut s, h, *w);
    }
    s.truncate(s.trim_end().len());
    s.push('\n');
    for (name, cells) in rows {
        pad(&mut s, name, w0);
        for (c, w) in cells.iter().zip(&ws) {
            s.push_str("  ");
            pad(&mut s, c, *w);
        }
        s.truncate(s.trim_end().len());
        s.push('\n');
    }
    s
}

fn table(a: &Answer) -> String {
    let mut s = String::new();
    let t = &a.q.targets;
    let _ = writeln!(s, "situation: {}", describe(&a.q));
    let _ = writeln!(s, "targets:   {}", describe_targets(t));
    let _ = writeln!(
        s,
        "searched {} configurations (from Go's {} preset)\n",
        a.rec.searched,
        a.q.base.name()
    );
    let mut cols: Vec<(Knobs, &Prediction)> = vec![(a.rec.best.knobs, &a.rec.best.prediction)];
    let mut header = vec!["recommended".to_string()];
    if let Some(p) = &a.at_low {
        cols.push((a.rec.best.knobs, p));
        header.push(format!("same at {}", a.q.nodes.0));
    }
    for (preset, p) in &a.presets {
        cols.push((Knobs::of(&preset.config()), p));
        header.push(format!("Go {}", preset.name()));
    }
    s.push_str(&render(&header, &rows(&cols, t)));
    s.push('\n');
    s.push_str(&explain(a));
    for w in &a.rec.best.prediction.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    if let Some((m, cmp)) = &a.verified {
        s.push('\n');
        s.push_str(&verified_table(m, cmp));
    }
    s.push_str("\nPaste it in: --format toml (agent --config), rust, go or json.\n");
    s
}

/// The explanation when targets conflict or cannot be met.
fn explain(a: &Answer) -> String {
    let mut s = String::new();
    if a.rec.feasible {
        if a.q.targets != Targets::default() {
            s.push_str("The recommendation meets every target.\n");
        }
        return s;
    }
    s.push_str("No configuration meets every target.\n");
    for u in &a.rec.unreachable {
        let (wanted, best) = match u.target {
            "bandwidth" => (
                format!("{}/s", bytes(u.wanted)),
                format!("{}/s", bytes(u.best)),
            ),
            "false deaths" => (
                format!("{}/day", rate(u.wanted)),
                format!("{}/day", rate(u.best)),
            ),
            _ => (secs(u.wanted), secs(u.best)),
        };
        let why = match u.target {
            "detection" => format!(
                "detection needs a failed probe, a suspicion timeout of at least \
                 suspicion_mult × log10({n}) probe intervals and the news of the death to \
                 spread",
                n = a.q.situation.nodes
            ),
            "dissemination" => "news needs about log(n) gossip rounds and a network round trip per hop".into(),
            "bandwidth" => format!(
                "every member pings once per probe interval and exchanges its {}-member state by push/pull",
                a.q.situation.nodes
            ),
            _ => "with this loss and these stalls, probes fail and members cannot refute in time".into(),
        };
        let _ = writeln!(
            s,
            "- {} {wanted} cannot be met by any configuration searched, even ignoring the other \
             targets: the best is {best} (probe_interval {}, suspicion_mult {}, gossip_interval \
             {}, push_pull_interval {}); {why}.",
            u.target,
            fmt_duration(u.knobs.probe_interval),
            u.knobs.suspicion_mult,
            fmt_duration(u.knobs.gossip_interval),
            fmt_duration(u.knobs.push_pull_interval),
        );
    }
    if !a.rec.conflicting.is_empty() {
        let (what, verb) = match a.rec.conflicting.as_slice() {
            [one] => (one.to_string(), "can be met"),
            many => (many.join(" and "), "can each be met"),
        };
        let _ = writeln!(
            s,
            "- {what} {verb} alone but not together with the other targets; the \
             recommendation misses its targets by the least (the worst ratio of a figure to its \
             target)."
        );
    }
    if !a.rec.trade_off.is_empty() {
        s.push_str("\nThe nearest reachable alternatives (trade-off curve):\n");
        let header: Vec<String> = (1..=a.rec.trade_off.len())
            .map(|i| format!("option {i}"))
            .collect();
        let cols: Vec<(Knobs, &Prediction)> = a
            .rec
            .trade_off
            .iter()
            .map(|c| (c.knobs, &c.prediction))
            .collect();
        s.push_str(&render(&header, &rows(&cols, &a.q.targets)));
    }
    s
}

fn verified_table(m: &Measured, cmp: &[Comparison]) -> String {
    let mut s = format!(
        "Verified in the simulator ({} crashes, {:.0} simulated seconds; the simulator names \
         nodes n0, n1, … without metadata, so sizes are predicted for that):\n",
        m.crashes, m.simulated_s
    );
    let header = vec![
        "predicted".to_string(),
        "simulated".to_string(),
        "error".to_string(),
        "bound".to_string(),
    ];
    let rows: Vec<(String, Vec<String>)> = cmp
        .iter()
        .map(|c| {
            let f = |x: f64| {
                if c.figure.contains("bytes") {
                    format!("{x:.1}")
                } else {
                    secs(x)
                }
            };
            (
                c.figure.to_string(),
                vec![
                    f(c.predicted),
                    f(c.simulated),
                    if c.error.is_finite() {
                        format!("{:+.1}%", c.error * 100.0)
                    } else {
                        "n/a".into()
                    },
                    match c.bound {
                        Some(b) if c.within() => format!("±{:.0}% ok", b * 100.0),
                        Some(b) => format!("±{:.0}% MISSED", b * 100.0),
                        None => "shown only".into(),
                    },
                ],
            )
        })
        .collect();
    s.push_str(&render(&header, &rows));
    if !m.tcp_measured_over_intervals {
        s.push_str(
            "TCP: twice the mean push/pull reply measured in the simulated joins, once per scaled \
             push/pull interval (--verify-full simulates whole intervals).\n",
        );
    }
    if m.undetected > 0 {
        let _ = writeln!(
            s,
            "{} crash(es) were not detected by every member within the limit.",
            m.undetected
        );
    }
    if cmp.iter().any(|c| !c.within()) {
        s.push_str(
            "The model missed its bound here: see docs/tuning.md for where it breaks; trust the \
             simulated figures.\n",
        );
    }
    s
}

fn header_comment(a: &Answer, prefix: &str) -> String {
    let p = &a.rec.best.prediction;
    let mut s = format!(
        "{prefix} headcount tune: {}\n{prefix} predicted: detection {} (p99 {}), dissemination {} \
         (99%), {}/s per member, {} false deaths/day\n",
        describe(&a.q),
        secs(p.detect_median),
        secs(p.detect_p99),
        secs(p.spread_99),
        bytes(p.bandwidth.total),
        rate(p.false_deaths_per_day),
    );
    if !a.rec.feasible {
        let _ = writeln!(
            s,
            "{prefix} WARNING: misses the targets ({}); see `headcount tune` without --format",
            misses(p, &a.q.targets).trim_start_matches("no: ")
        );
    }
    s
}

/// A knob's value, written in each output's own notation.
enum KnobValue {
    Duration(Duration),
    Count(u64),
}

/// The eight knobs: agent config key, Rust `Config` setter, Go field, value.
fn knob_rows(k: &Knobs) -> [(&'static str, &'static str, &'static str, KnobValue); 8] {
    use KnobValue::{Count, Duration as D};
    [
        (
            "probe-interval",
            "with_probe_interval",
            "ProbeInterval",
            D(k.probe_interval),
        ),
        (
            "probe-timeout",
            "with_probe_timeout",
            "ProbeTimeout",
            D(k.probe_timeout),
        ),
        (
            "suspicion-mult",
            "with_suspicion_mult",
            "SuspicionMult",
            Count(k.suspicion_mult.into()),
        ),
        (
            "suspicion-max-timeout-mult",
            "with_suspicion_max_timeout_mult",
            "SuspicionMaxTimeoutMult",
            Count(k.suspicion_max_timeout_mult.into()),
        ),
        (
            "gossip-interval",
            "with_gossip_interval",
            "GossipInterval",
            D(k.gossip_interval),
        ),
        (
            "gossip-nodes",
            "with_gossip_nodes",
            "GossipNodes",
            Count(k.gossip_nodes as u64),
        ),
        (
            "retransmit-mult",
            "with_retransmit_mult",
            "RetransmitMult",
            Count(k.retransmit_mult.into()),
        ),
        (
            "push-pull-interval",
            "with_push_pull_interval",
            "PushPullInterval",
            D(k.push_pull_interval),
        ),
    ]
}

/// The agent's configuration file.
fn toml(a: &Answer) -> String {
    let mut s = header_comment(a, "#");
    let _ = writeln!(s, "profile = \"{}\"", a.q.base.name());
    for (key, _, _, v) in knob_rows(&a.rec.best.knobs) {
        let _ = match v {
            KnobValue::Duration(d) => writeln!(s, "{key} = \"{}\"", fmt_duration(d)),
            KnobValue::Count(n) => writeln!(s, "{key} = {n}"),
        };
    }
    s
}

fn rust_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("Duration::from_secs({})", ms / 1000)
    } else {
        format!("Duration::from_millis({ms})")
    }
}

/// Rust: a `Config` expression.
fn rust(a: &Answer) -> String {
    let mut s = header_comment(a, "//");
    s.push_str("use std::time::Duration;\n\n");
    let _ = write!(s, "let config = headcount::Config::{}()", a.q.base.name());
    for (_, setter, _, v) in knob_rows(&a.rec.best.knobs) {
        let v = match v {
            KnobValue::Duration(d) => rust_duration(d),
            KnobValue::Count(n) => n.to_string(),
        };
        let _ = write!(s, "\n    .{setter}({v})");
    }
    s.push_str(";\n");
    s
}

fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{} * time.Second", ms / 1000)
    } else {
        format!("{ms} * time.Millisecond")
    }
}

/// Go: `memberlist.Config` field assignments.
fn go(a: &Answer) -> String {
    let mut s = header_comment(a, "//");
    let preset = match a.q.base {
        Preset::Lan => "DefaultLANConfig",
        Preset::Wan => "DefaultWANConfig",
        Preset::Local => "DefaultLocalConfig",
    };
    let _ = writeln!(s, "conf := memberlist.{preset}()");
    for (_, _, field, v) in knob_rows(&a.rec.best.knobs) {
        let v = match v {
            KnobValue::Duration(d) => go_duration(d),
            KnobValue::Count(n) => n.to_string(),
        };
        let _ = writeln!(s, "conf.{field} = {v}");
    }
    s
}

fn json_value(a: &Answer) -> serde_json::Value {
    json!({
        "situation": a.q.situation,
        "nodes": { "low": a.q.nodes.0, "high": a.q.nodes.1 },
        "targets": a.q.targets,
        "base": a.q.base.name(),
        "feasible": a.rec.feasible,
        "recommended": {
            "knobs": a.rec.best.knobs,
            "prediction": a.rec.best.prediction,
            "prediction_at_low": a.at_low,
        },
        "unreachable": a.rec.unreachable,
        "conflicting": a.rec.conflicting,
        "trade_off": a.rec.trade_off,
        "searched": a.rec.searched,
        "presets": a.presets.iter().map(|(p, pred)| json!({
            "preset": p.name(),
            "knobs": Knobs::of(&p.config()),
            "prediction": pred,
        })).collect::<Vec<_>>(),
        "verify": a.verified.as_ref().map(|(m, c)| json!({
            "measured": m,
            "comparison": c,
            "within_bounds": c.iter().all(Comparison::within),
        })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_units() {
        assert_eq!(parse_rate("2KB/s").unwrap(), 2000.0);
        assert_eq!(parse_rate("1KiB/s").unwrap(), 1024.0);
        assert_eq!(parse_rate("800B").unwrap(), 800.0);
        assert!(parse_rate("2 furlongs/s")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(parse_rate("-1KB/s").is_err());
        assert_eq!(parse_per_day("1/week", "x").unwrap(), 1.0 / 7.0);
        assert_eq!(parse_per_day("2/h", "x").unwrap(), 48.0);
        assert!(parse_per_day("1/fortnight", "x").is_err());
        assert_eq!(parse_loss("1%").unwrap(), 0.01);
        assert_eq!(parse_loss("0.2").unwrap(), 0.2);
        assert!(parse_loss("150%").is_err());
        assert!(parse_loss("-0.1").is_err());
        assert_eq!(parse_nodes("64..1000").unwrap(), (64, 1000));
        assert_eq!(parse_nodes("10_000").unwrap(), (10_000, 10_000));
        assert!(parse_nodes("-5").is_err());
        assert!(parse_nodes("1000..64").is_err());
        let (t, p) = parse_rtt("2ms,10ms").unwrap();
        assert_eq!(
            (t, p),
            (Duration::from_millis(2), Duration::from_millis(10))
        );
        assert!(parse_rtt("10ms,2ms").is_err());
        assert!(parse_rtt("fast").is_err());
        let st = parse_stalls("1/h:10s").unwrap();
        assert_eq!(st.per_hour, 1.0);
        assert_eq!(st.duration, Duration::from_secs(10));
    }

    #[test]
    fn durations_for_rust_and_go() {
        assert_eq!(
            rust_duration(Duration::from_millis(500)),
            "Duration::from_millis(500)"
        );
        assert_eq!(go_duration(Duration::from_secs(30)), "30 * time.Second");
    }
}
