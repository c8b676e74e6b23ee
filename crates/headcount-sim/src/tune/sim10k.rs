//! The 10,000-node verification: too slow and too large (minutes and
//! gigabytes per configuration) to run on every regeneration of
//! `docs/tuning.md`, so `tuning-docs --sim-10k` runs it once and stores what
//! the simulator measured as JSON lines (`docs/tuning/sim10k.jsonl`, one
//! line per configuration); the normal `tuning-docs` run reads that file and
//! sets the stored measurements beside the model's current predictions.
//!
//! Only the measurements are stored: the predictions are recomputed at each
//! regeneration, so a change to the model shows at 10,000 nodes without
//! re-running the simulations.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::verify::{Effort, Measured};

/// The cluster size of the stored runs.
pub const NODES: usize = 10_000;

/// One configuration's 10,000-node simulation, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The configuration's name in `docs/tuning.md` (`Go lan`, `fast-100`, …).
    pub name: String,
    /// Cluster size.
    pub nodes: usize,
    /// The seeds simulated (clusters built).
    pub seeds: Vec<u64>,
    /// Crashes per seed.
    pub crashes: usize,
    /// Wall time of the whole run, seconds.
    pub wall_s: f64,
    /// Peak resident memory of the process during the run, MB (`VmHWM`,
    /// reset before the run), when the platform reports it.
    pub peak_rss_mb: Option<f64>,
    /// What the simulator measured.
    pub measured: Measured,
}

/// Parses the stored runs: one JSON object per non-empty line. A line that
/// does not parse, or a record for another size than [`NODES`], is an error
/// naming the line.
pub fn parse(text: &str) -> Result<Vec<Record>, String> {
    let mut out: Vec<Record> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let r: Record = serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        if r.nodes != NODES {
            return Err(format!(
                "line {}: {} at {} nodes (this file holds {NODES}-node runs)",
                i + 1,
                r.name,
                r.nodes
            ));
        }
        if out.iter().any(|o| o.name == r.name) {
            return Err(format!("line {}: {} appears twice", i + 1, r.name));
        }
        out.push(r);
    }
    Ok(out)
}

/// Reads and parses `path` ([`parse`]); errors name the file.
pub fn read(path: &Path) -> Result<Vec<Record>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "{}: {e} (the 10,000-node runs are made by `headcount-sim tuning-docs --sim-10k`)",
            path.display()
        )
    })?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes `records` to `path` as JSON lines (through a temporary file, so
/// an interrupted write leaves the old file).
pub fn write(path: &Path, records: &[Record]) -> Result<(), String> {
    let mut text = String::new();
    for r in records {
        text.push_str(&serde_json::to_string(r).map_err(|e| e.to_string())?);
        text.push('\n');
    }
    let tmp = path.with_extension("jsonl.tmp");
    std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Replaces the record of the same name in `records`, or appends it, and
/// keeps `order`'s order (names not in it go last).
pub fn upsert(records: &mut Vec<Record>, r: Record, order: &[String]) {
    records.retain(|o| o.name != r.name);
    records.push(r);
    let pos = |name: &str| order.iter().position(|o| o == name).unwrap_or(usize::MAX);
    records.sort_by_key(|o| pos(&o.name));
}

/// The effort of a stored run: the first `seeds` seeds of
/// [`Effort::for_size`] (seed 1) and three crashes each; UDP measured over
/// 20 probe intervals and TCP from the push/pull state size measured in the
/// push/pulls that follow the joins (`full_bandwidth` off): whole scaled
/// push/pull intervals are 150–1,200 virtual seconds at 10,000 nodes, each
/// holding 10,000 exchanges of the whole 10,000-member state.
pub fn effort(seeds: usize) -> Effort {
    let mut e = Effort::for_size(1, NODES);
    e.seeds.truncate(seeds.max(1));
    e.full_bandwidth = false;
    e
}

/// Runs the 10,000-node verification of every configuration of
/// `docs/tuning.md` (or of those named in `only`), one after the other,
/// each over the first `seeds` seeds ([`effort`]), and stores each result in
/// `path` as soon as it is measured (replacing that configuration's line,
/// keeping the others). `progress` is told what runs and what it took.
pub fn run(
    path: &Path,
    only: &[String],
    seeds: usize,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Record>, String> {
    let subjects = super::docs::subjects();
    let order: Vec<String> = subjects.iter().map(|s| s.name.clone()).collect();
    if let Some(bad) = only.iter().find(|o| !order.contains(o)) {
        return Err(format!(
            "unknown configuration {bad:?} (one of: {})",
            order.join(", ")
        ));
    }
    let mut records = if path.exists() {
        read(path)?
    } else {
        Vec::new()
    };
    let effort = effort(seeds);
    for s in subjects
        .iter()
        .filter(|s| only.is_empty() || only.contains(&s.name))
    {
        progress(&format!(
            "{} at {NODES} nodes, seeds {:?}, {} crashes each",
            s.name, effort.seeds, effort.crashes
        ));
        let sit = super::docs::situation(s.network, NODES, s.loss);
        let reset = reset_peak_rss();
        let w0 = std::time::Instant::now();
        let measured = super::verify::simulate(&s.config, &sit, &effort)
            .map_err(|e| format!("{} at {NODES} nodes: {e}", s.name))?;
        let wall_s = (w0.elapsed().as_secs_f64() * 10.0).round() / 10.0;
        let peak = if reset { peak_rss_mb() } else { None };
        let r = Record {
            name: s.name.clone(),
            nodes: NODES,
            seeds: effort.seeds.clone(),
            crashes: effort.crashes,
            wall_s,
            peak_rss_mb: peak.map(|m| m.round()),
            measured,
        };
        progress(&format!(
            "{}: {wall_s:.0} s wall, peak RSS {}",
            s.name,
            peak.map_or("unknown".into(), |m| format!("{m:.0} MB"))
        ));
        upsert(&mut records, r, &order);
        write(path, &records)?;
    }
    Ok(records)
}

/// Resets the process's peak resident memory (Linux: `VmHWM`), so that
/// [`peak_rss_mb`] reports the peak from now on. Returns whether it could.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The process's peak resident memory in MB since it started or since
/// [`reset_peak_rss`], where the platform reports it (Linux).
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_hwm_kb(&status).map(|kb| kb as f64 / 1024.0)
}

fn parse_hwm_kb(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line["VmHWM:".len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str) -> Record {
        Record {
            name: name.into(),
            nodes: NODES,
            seeds: vec![7],
            crashes: 3,
            wall_s: 300.0,
            peak_rss_mb: Some(9000.0),
            measured: Measured {
                crashes: 3,
                detect_median: 18.5,
                join_50: 0.5,
                udp: 85.0,
                ..Measured::default()
            },
        }
    }

    #[test]
    fn round_trip() {
        let dir = std::env::temp_dir().join(format!("sim10k-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sim10k.jsonl");
        let order = vec!["a".to_string(), "b".to_string()];
        let mut rs = Vec::new();
        upsert(&mut rs, record("b"), &order);
        upsert(&mut rs, record("a"), &order);
        let mut b2 = record("b");
        b2.wall_s = 1.0;
        upsert(&mut rs, b2.clone(), &order);
        assert_eq!(rs.len(), 2);
        assert_eq!(rs[0].name, "a");
        assert_eq!(rs[1], b2);
        write(&path, &rs).unwrap();
        assert_eq!(read(&path).unwrap(), rs);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_file_is_a_clear_error() {
        let e = read(Path::new("/nonexistent/sim10k.jsonl")).unwrap_err();
        assert!(e.starts_with("/nonexistent/sim10k.jsonl: "), "{e}");
        assert!(e.contains("--sim-10k"), "{e}");
    }

    #[test]
    fn bad_lines_name_the_line() {
        let good = serde_json::to_string(&record("a")).unwrap();
        let e = parse(&format!("{good}\n\nnot json\n")).unwrap_err();
        assert!(e.starts_with("line 3: "), "{e}");
        let e = parse(&format!("{good}\n{good}\n")).unwrap_err();
        assert!(e.contains("line 2: a appears twice"), "{e}");
        let mut small = record("c");
        small.nodes = 1000;
        let e = parse(&serde_json::to_string(&small).unwrap()).unwrap_err();
        assert!(e.contains("line 1: c at 1000 nodes"), "{e}");
        // A field missing or of the wrong type: an error, not a panic.
        let e = parse(r#"{"name":"x","nodes":10000}"#).unwrap_err();
        assert!(e.starts_with("line 1: missing field"), "{e}");
        let e = parse(&good.replace("\"wall_s\":300.0", "\"wall_s\":\"long\"")).unwrap_err();
        assert!(e.starts_with("line 1: invalid type"), "{e}");
        assert_eq!(parse("\n  \n").unwrap(), Vec::new());
    }

    #[test]
    fn nan_figures_survive_the_file() {
        // serde_json writes a NaN (a median of nothing) as null.
        let mut r = record("a");
        r.measured.join_100 = f64::NAN;
        r.peak_rss_mb = None;
        let line = serde_json::to_string(&r).unwrap();
        assert!(line.contains("\"join_100\":null"), "{line}");
        let back = parse(&line).unwrap();
        assert!(back[0].measured.join_100.is_nan());
        assert_eq!(back[0].measured.detect_median, 18.5);
        assert_eq!(back[0].peak_rss_mb, None);
    }

    #[test]
    fn peak_rss_line() {
        assert_eq!(
            parse_hwm_kb("Name:\tx\nVmHWM:\t  13528 kB\nVmRSS:\t 1 kB\n"),
            Some(13528)
        );
        assert_eq!(parse_hwm_kb("Name:\tx\n"), None);
        assert_eq!(parse_hwm_kb("VmHWM:\tlots kB\n"), None);
    }
}
