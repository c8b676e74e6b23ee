//! `headcount-sim`: deterministic experiments on simulated clusters.
//!
//! Every subcommand takes `--seed S` and `--json`; with `--json` it prints
//! one JSON object whose only machine-dependent field is `wall_s`.

use core::time::Duration;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use headcount_sim::experiments::{self, StarveCycle, Stress};
use headcount_sim::net::Profile;
use headcount_sim::report;
use serde_json::{json, Value};

/// The simulator allocates and frees millions of small buffers (decoded
/// names, packets, events); with glibc's allocator `malloc` alone took
/// about 15% of a 1,000-node run.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "headcount-sim",
    version,
    about = "Deterministic simulator for headcount"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone)]
struct Common {
    /// Master seed: the same seed gives the same report.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Network and protocol preset: lan, wan or local.
    #[arg(long, default_value = "lan")]
    profile: String,
}

#[derive(Subcommand)]
enum Cmd {
    /// Crash nodes; time first suspicion, first death and full agreement.
    Detection {
        #[command(flatten)]
        common: Common,
        /// Cluster size.
        #[arg(long, default_value_t = 50)]
        nodes: usize,
        /// Packet loss probability.
        #[arg(long, default_value_t = 0.0)]
        loss: f64,
        /// Crashes, one after the other.
        #[arg(long, default_value_t = 5)]
        trials: usize,
    },
    /// A node joins, another fails: how fast each piece of news spreads.
    Dissemination {
        #[command(flatten)]
        common: Common,
        /// Cluster sizes, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "100")]
        nodes: Vec<usize>,
        /// Loss rates, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "0")]
        loss: Vec<f64>,
        /// How to build the converged cluster: joins (one real join after
        /// the other), seeded (every node merges one push/pull state
        /// listing everyone), or auto (joins up to 2000 nodes, seeded above).
        #[arg(long, default_value = "auto")]
        bootstrap: String,
    },
    /// Lifeguard paper: D starving members; false positives, SWIM vs Lifeguard.
    Lifeguard {
        #[command(flatten)]
        common: Common,
        /// Cluster size.
        #[arg(long, default_value_t = 64)]
        nodes: usize,
        /// Distressed members, comma-separated (the first is the headline).
        #[arg(long, value_delimiter = ',', default_value = "4")]
        distressed: Vec<usize>,
        /// Packet loss probability.
        #[arg(long, default_value_t = 0.0)]
        loss: f64,
        /// Measured stretch, virtual seconds.
        #[arg(long, default_value_t = 300)]
        duration: u64,
        /// Kind of stress: slow (inbound handled late, timers on time) or
        /// starve (everything stops, then the backlog is handled late).
        #[arg(long, default_value = "slow")]
        stress: String,
        /// Stressed stretch range in ms, "min,max".
        #[arg(long, value_delimiter = ',', default_value = "10000,60000")]
        starve_ms: Vec<u64>,
        /// Healthy stretch range in ms, "min,max".
        #[arg(long, value_delimiter = ',', default_value = "5000,30000")]
        run_ms: Vec<u64>,
        /// Inbound lag range in ms for `--stress slow`, "min,max".
        #[arg(long, value_delimiter = ',', default_value = "500,5000")]
        lag_ms: Vec<u64>,
    },
    /// Simulated node-seconds per wall-clock second, by cluster size.
    Scale {
        #[command(flatten)]
        common: Common,
        /// Cluster sizes, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "100,1000")]
        nodes: Vec<usize>,
        /// Virtual seconds simulated after convergence.
        #[arg(long, default_value_t = 600)]
        seconds: u64,
    },
    /// The tuning model's prediction for a preset beside a simulated run
    /// (what `headcount tune --verify` does for a recommendation).
    Verify {
        #[command(flatten)]
        common: Common,
        /// Cluster size.
        #[arg(long, default_value_t = 100)]
        nodes: usize,
        /// Packet loss probability.
        #[arg(long, default_value_t = 0.0)]
        loss: f64,
        /// Crashes per seed.
        #[arg(long, default_value_t = 3)]
        crashes: usize,
        /// Seeds (clusters built).
        #[arg(long, default_value_t = 3)]
        seeds: u64,
    },
    /// The tuning model's chance that a stall of each length kills the
    /// stalled member, beside the share of simulated stalls that did.
    Stalls {
        #[command(flatten)]
        common: Common,
        /// Cluster size.
        #[arg(long, default_value_t = 100)]
        nodes: usize,
        /// Stall lengths in ms, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "5000,10000,15000")]
        stall_ms: Vec<u64>,
        /// Stalls per length.
        #[arg(long, default_value_t = 20)]
        trials: usize,
    },
    /// Regenerate docs/tuning.md: the tuning model's predictions against
    /// cluster size, against the simulator and against bench runs.
    TuningDocs {
        /// Output directory (the markdown goes there, plots in its
        /// `tuning/` subdirectory).
        #[arg(long, default_value = "docs")]
        out: String,
        /// Verify at 16 and 100 nodes only.
        #[arg(long)]
        quick: bool,
        /// JSON lines of `headcount bench` runs to compare with.
        #[arg(long)]
        bench: Option<String>,
        /// The stored 10,000-node simulations (JSON lines; read, or with
        /// `--sim-10k` written).
        #[arg(long, default_value = "docs/tuning/sim10k.jsonl")]
        sim10k_data: String,
        /// Instead of regenerating the document, run the 10,000-node
        /// simulations (minutes and about 10 GB each, one at a time) and
        /// store them in the `--sim10k-data` file.
        #[arg(long)]
        sim_10k: bool,
        /// With `--sim-10k`: only these configurations (by name, e.g.
        /// "Go lan"; repeat or comma-separate).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// With `--sim-10k`: seeds per configuration.
        #[arg(long, default_value_t = 1)]
        seeds: usize,
    },
    /// Regenerate docs/simulation.md (tables and SVG plots).
    Docs {
        /// Master seed of every experiment in the document.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output directory (the markdown goes there, plots in its
        /// `simulation/` subdirectory).
        #[arg(long, default_value = "docs")]
        out: String,
        /// Smaller runs, for a quick look.
        #[arg(long)]
        quick: bool,
    },
}

fn profile(name: &str) -> Result<Profile, String> {
    Profile::by_name(name).ok_or_else(|| format!("unknown profile {name:?} (lan, wan, local)"))
}

fn range(v: &[u64], what: &str) -> Result<(u64, u64), String> {
    match v {
        [a, b] if a <= b => Ok((*a, *b)),
        _ => Err(format!("--{what} takes \"min,max\" with min <= max")),
    }
}

fn emit(json_out: bool, mut v: Value, wall: Value, text: impl FnOnce(&Value) -> String) {
    v["wall_s"] = wall;
    if json_out {
        println!("{}", serde_json::to_string(&v).expect("serialisable"));
    } else {
        print!("{}", text(&v));
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let w0 = std::time::Instant::now();
    let wall = |w0: std::time::Instant| json!(models_round(w0.elapsed().as_secs_f64()));
    match cli.cmd {
        Cmd::Detection {
            common,
            nodes,
            loss,
            trials,
        } => {
            let r =
                experiments::detection(nodes, common.seed, profile(&common.profile)?, loss, trials);
            let v = serde_json::to_value(&r).expect("serialisable");
            emit(common.json, v, wall(w0), report::detection_text);
        }
        Cmd::Dissemination {
            common,
            nodes,
            loss,
            bootstrap,
        } => {
            let bootstrap = match bootstrap.as_str() {
                "auto" => None,
                "joins" => Some(experiments::Bootstrap::Joins),
                "seeded" => Some(experiments::Bootstrap::Seeded),
                other => {
                    return Err(format!(
                        "unknown bootstrap {other:?}: auto, joins or seeded"
                    ))
                }
            };
            let r = experiments::dissemination_with(
                &nodes,
                &loss,
                common.seed,
                profile(&common.profile)?,
                bootstrap,
            );
            let v = serde_json::to_value(&r).expect("serialisable");
            emit(common.json, v, wall(w0), report::dissemination_text);
        }
        Cmd::Lifeguard {
            common,
            nodes,
            distressed,
            loss,
            duration,
            stress,
            starve_ms,
            run_ms,
            lag_ms,
        } => {
            let stress = match stress.as_str() {
                "slow" => Stress::Slow,
                "starve" => Stress::Starve,
                other => return Err(format!("unknown stress {other:?} (slow, starve)")),
            };
            let (lmin, lmax) = range(&lag_ms, "lag-ms")?;
            let (smin, smax) = range(&starve_ms, "starve-ms")?;
            let (rmin, rmax) = range(&run_ms, "run-ms")?;
            if distressed.is_empty() {
                return Err("--distressed needs at least one value".into());
            }
            let cycle = StarveCycle {
                stress,
                lag_min_ms: lmin,
                lag_max_ms: lmax,
                starve_min_ms: smin,
                starve_max_ms: smax,
                run_min_ms: rmin,
                run_max_ms: rmax,
            };
            let r = experiments::lifeguard(
                nodes,
                &distressed,
                common.seed,
                profile(&common.profile)?,
                loss,
                Duration::from_secs(duration),
                cycle,
            );
            let v = serde_json::to_value(&r).expect("serialisable");
            emit(common.json, v, wall(w0), report::lifeguard_text);
        }
        Cmd::Scale {
            common,
            nodes,
            seconds,
        } => {
            let p = profile(&common.profile)?;
            let mut runs = Vec::new();
            let mut walls = Vec::new();
            for &n in &nodes {
                let (r, w) = experiments::scale_run(n, common.seed, p.clone(), seconds);
                runs.push(r);
                walls.push(w);
            }
            let v = json!({
                "experiment": "scale",
                "seed": common.seed,
                "profile": p.name,
                "runs": runs,
            });
            let total = w0.elapsed().as_secs_f64();
            let wall = json!({ "total": models_round(total), "runs": walls });
            emit(common.json, v, wall, report::scale_text);
        }
        Cmd::Verify {
            common,
            nodes,
            loss,
            crashes,
            seeds,
        } => {
            use headcount_sim::tune::{model, verify};
            let p = profile(&common.profile)?;
            let config = p.proto_config();
            let situation = model::Situation {
                loss,
                ..model::Situation::for_profile(&p, nodes)
            };
            let prediction = model::predict(&config, &situation);
            let effort = verify::Effort {
                seeds: (0..seeds).map(|i| common.seed + i).collect(),
                crashes,
                full_bandwidth: true,
            };
            let measured = verify::simulate(&config, &situation, &effort)?;
            let v = json!({
                "experiment": "verify",
                "profile": p.name,
                "situation": situation,
                "prediction": prediction,
                "measured": measured,
                "comparison": verify::compare(&prediction, &measured),
            });
            emit(common.json, v, wall(w0), |v| {
                serde_json::to_string_pretty(&v["comparison"]).expect("serialisable") + "\n"
            });
        }
        Cmd::Stalls {
            common,
            nodes,
            stall_ms,
            trials,
        } => {
            use headcount_sim::tune::{model, verify};
            let p = profile(&common.profile)?;
            let config = p.proto_config();
            let situation = model::Situation::for_profile(&p, nodes);
            let mut rows = Vec::new();
            for ms in stall_ms {
                let d = Duration::from_millis(ms);
                let predicted = model::stall_death_probability(&config, &situation, d);
                let simulated = verify::stall_deaths(&config, &situation, d, trials, common.seed)?;
                rows.push(
                    json!({ "stall_ms": ms, "predicted": predicted, "simulated": simulated }),
                );
            }
            let v = json!({ "experiment": "stalls", "profile": p.name, "nodes": nodes, "trials": trials, "rows": rows });
            emit(common.json, v, wall(w0), |v| {
                serde_json::to_string_pretty(&v["rows"]).expect("serialisable") + "\n"
            });
        }
        Cmd::TuningDocs {
            out,
            quick,
            bench,
            sim10k_data,
            sim_10k,
            only,
            seeds,
        } => {
            use headcount_sim::tune::sim10k;
            let data = std::path::Path::new(&sim10k_data);
            if sim_10k {
                sim10k::run(data, &only, seeds, &mut |m| eprintln!("tuning docs: {m}"))?;
                eprintln!("wrote {sim10k_data} in {:.1} s", w0.elapsed().as_secs_f64());
                return Ok(());
            }
            let stored = sim10k::read(data)?;
            let lines: Vec<Value> = match bench {
                Some(path) => std::fs::read_to_string(&path)
                    .map_err(|e| format!("{path}: {e}"))?
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| serde_json::from_str(l).map_err(|e| format!("{path}: {e}")))
                    .collect::<Result<_, _>>()?,
                None => Vec::new(),
            };
            headcount_sim::tune::docs::generate(&out, quick, &lines, &stored)
                .map_err(|e| e.to_string())?;
            eprintln!(
                "wrote {out}/tuning.md in {:.1} s",
                w0.elapsed().as_secs_f64()
            );
        }
        Cmd::Docs { seed, out, quick } => {
            report::generate(seed, &out, quick).map_err(|e| e.to_string())?;
            eprintln!(
                "wrote {out}/simulation.md in {:.1} s",
                w0.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}

fn models_round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("headcount-sim: {e}");
            ExitCode::from(2)
        }
    }
}
