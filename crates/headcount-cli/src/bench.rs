//! `headcount bench`: N nodes in one process on 127.0.0.1, node i joining
//! node 0 at start; at `--kill-at` the first K nodes are shut down without
//! leaving. Prints one JSON line of figures (see `docs/benchmarks.md`).
//!
//! `bench/go/` holds the same program on Go memberlist; both must measure
//! the same things in the same way:
//!
//! * membership is followed through the event delegate (join adds a name to
//!   the observer's alive set, leave removes it), polled every 20 ms;
//! * CPU is user + system time of the whole process from `/proc/self/stat`,
//!   peak memory is `VmHWM` from `/proc/self/status` (what `getrusage`
//!   reports as `ru_maxrss`);
//! * bytes are what the nodes send: UDP datagrams as handed to the socket,
//!   TCP bytes as written to streams (dialed and replies).

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use headcount::{Config, EventDelegate, MemberInfo, Memberlist, Options};
use serde::Serialize;

/// How often the harness looks at the nodes' views.
const POLL: Duration = Duration::from_millis(20);

/// Configuration preset, as in Go's `DefaultLANConfig`, `DefaultWANConfig`
/// and `DefaultLocalConfig`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Profile {
    /// `Config::lan()`.
    Lan,
    /// `Config::wan()`.
    Wan,
    /// `Config::local()`.
    Local,
}

/// Which tokio runtime runs the nodes.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Runtime {
    /// One thread for every node and the harness.
    Current,
    /// A work-stealing pool of two worker threads.
    Multi,
}

/// Arguments of `headcount bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(2..=4096))]
    nodes: u16,
    /// UDP and TCP port of node 0; node i listens on base-port + i.
    #[arg(long, default_value_t = 20000)]
    base_port: u16,
    /// Length of the whole run, in seconds from the joins.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Number of nodes shut down (without leaving) at `--kill-at`: nodes 0..K.
    #[arg(long, default_value_t = 1)]
    kill: u16,
    /// When to kill them, in seconds from the joins.
    #[arg(long, default_value_t = 10.0)]
    kill_at: f64,
    /// Configuration preset.
    #[arg(long, value_enum, default_value_t = Profile::Lan)]
    profile: Profile,
    /// Tokio runtime flavour.
    #[arg(long, value_enum, default_value_t = Runtime::Current)]
    runtime: Runtime,
    /// Go memberlist's exact suspicion timing: turn off headcount's
    /// health-scaled suspicion (for A/B runs).
    #[arg(long)]
    go_exact_suspicion: bool,
    /// Serve the HTTP API and live web view of the last node (never
    /// killed) at this loopback address, to look at a large cluster in a
    /// browser (`docs/web-view.md`).
    #[arg(long, value_name = "IP:PORT")]
    view: Option<SocketAddr>,
    /// Print a progress line to stderr every this many seconds (pairs
    /// known, probes failed, health scores, false leaves, CPU): to see
    /// how a large run settles or falls into a storm.
    #[arg(long, value_name = "SECS")]
    progress: Option<f64>,
}

/// The JSON line printed at the end.
#[derive(Serialize, Debug)]
struct Report {
    implementation: &'static str,
    profile: String,
    runtime: String,
    nodes: usize,
    killed: usize,
    kill_at_s: f64,
    join_failures: usize,
    join_converge_s: Option<f64>,
    detect_all_s: Option<f64>,
    false_leaves: u64,
    cpu_s_total: f64,
    cpu_s_after_kill: f64,
    maxrss_kib: u64,
    baseline_rss_kib: u64,
    udp_bytes: u64,
    tcp_bytes: u64,
    udp_bytes_per_node_s: f64,
    tcp_bytes_per_node_s: f64,
    elapsed_s: f64,
}

/// What the harness shares with every node's event delegate.
struct Shared {
    /// Names of the nodes that will be killed (the first K).
    doomed: HashSet<String>,
    /// Set once they were.
    killed: AtomicBool,
    /// Leave events about a node that was not killed (yet).
    false_leaves: AtomicU64,
}

/// One node's view: the nodes it holds alive or suspect.
struct View {
    shared: Arc<Shared>,
    alive: Mutex<NodeSet>,
}

/// A set of the harness's nodes, by index (the `i` of `node-{i}`): one
/// bit a node, so that the harness's views (one per node, each of N
/// members) do not count as the nodes' memory. A set of `String`s cost
/// ~20 KiB a node at N = 256; the Go and al8n twins keep the same bit
/// sets.
struct NodeSet {
    bits: Vec<u64>,
    /// The number of harness nodes: larger indices are ignored.
    n: usize,
    len: usize,
}

impl NodeSet {
    fn new(n: usize) -> Self {
        NodeSet {
            bits: vec![0; n.div_ceil(64)],
            n,
            len: 0,
        }
    }

    /// The index of a harness node's name; `None` for any other name.
    fn index(name: &str) -> Option<usize> {
        name.strip_prefix("node-")?.parse().ok()
    }

    fn set(&mut self, name: &str, on: bool) {
        let Some(i) = Self::index(name).filter(|&i| i < self.n) else {
            return;
        };
        let Some(word) = self.bits.get_mut(i / 64) else {
            return;
        };
        let bit = 1u64 << (i % 64);
        if (*word & bit != 0) != on {
            *word ^= bit;
            if on {
                self.len += 1;
            } else {
                self.len -= 1;
            }
        }
    }

    fn contains(&self, i: usize) -> bool {
        self.bits
            .get(i / 64)
            .is_some_and(|w| w & (1u64 << (i % 64)) != 0)
    }

    fn len(&self) -> usize {
        self.len
    }
}

impl EventDelegate for View {
    fn notify_join(&self, node: &MemberInfo) {
        lock(&self.alive).set(&node.name, true);
    }

    fn notify_leave(&self, node: &MemberInfo) {
        lock(&self.alive).set(&node.name, false);
        if !(self.shared.killed.load(Ordering::Relaxed) && self.shared.doomed.contains(&node.name))
        {
            self.shared.false_leaves.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `headcount bench` on its own runtime.
pub fn main(args: BenchArgs) -> ExitCode {
    let rt = match args.runtime {
        Runtime::Current => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Runtime::Multi => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("headcount bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match rt.block_on(run(args)) {
        Ok(report) => match serde_json::to_string(&report) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("headcount bench: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("headcount bench: {e}");
            ExitCode::FAILURE
        }
    };
    rt.shutdown_timeout(Duration::from_millis(100));
    code
}

async fn run(args: BenchArgs) -> Result<Report, String> {
    let n = usize::from(args.nodes);
    let k = usize::from(args.kill).min(n - 1);
    if args.kill_at < 0.0 || args.duration < args.kill_at {
        return Err("need 0 <= --kill-at <= --duration".to_string());
    }
    if usize::from(args.base_port) + n > 65_536 {
        return Err("--base-port + --nodes exceeds 65535".to_string());
    }
    // The process before any node exists: the runtime and the program.
    let baseline_rss_kib = proc_status_kib("VmRSS:");
    let name = |i: usize| format!("node-{i}");
    let shared = Arc::new(Shared {
        doomed: (0..k).map(name).collect(),
        killed: AtomicBool::new(false),
        false_leaves: AtomicU64::new(0),
    });
    let mut nodes = Vec::with_capacity(n);
    let mut views = Vec::with_capacity(n);
    for i in 0..n {
        let mut config = match args.profile {
            Profile::Lan => Config::lan(),
            Profile::Wan => Config::wan(),
            Profile::Local => Config::local(),
        };
        config.lifeguard_health_scaled_suspicion = !args.go_exact_suspicion;
        let port = args.base_port + u16::try_from(i).map_err(|e| e.to_string())?;
        let bind = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let view = Arc::new(View {
            shared: shared.clone(),
            alive: Mutex::new(NodeSet::new(n)),
        });
        let opts = Options::new(name(i), bind, config).with_event_delegate(view.clone());
        let ml = Memberlist::create(opts)
            .await
            .map_err(|e| format!("{}: {e}", name(i)))?;
        nodes.push(ml);
        views.push(view);
    }

    if let Some(addr) = args.view {
        // On its own thread and runtime, as an agent's API would be: the
        // view answers without waiting behind the other nodes' tasks.
        let ml = nodes[n - 1].clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("view".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                };
                rt.block_on(async move {
                    let http = crate::web_view::local_api(crate::http_args::Listen::At(addr));
                    let started = crate::http_api::start(&http, &ml, None).await;
                    let serving = started.is_ok();
                    let _ = tx.send(started);
                    if serving {
                        // Serve until the process ends.
                        std::future::pending::<()>().await;
                    }
                });
            })
            .map_err(|e| format!("--view: {e}"))?;
        match rx.await {
            Ok(Ok(Some(bound))) => eprintln!("bench: {}'s view at http://{bound}/", name(n - 1)),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("--view: the view's thread stopped".to_string()),
        }
    }

    let start = Instant::now();
    let seed = nodes[0].local_addr().to_string();
    let mut joins = tokio::task::JoinSet::new();
    for ml in &nodes[1..] {
        let ml = ml.clone();
        let seed = seed.clone();
        joins.spawn(async move { ml.join(&[seed]).await.is_ok() });
    }

    if let Some(every) = args.progress.filter(|s| *s > 0.0) {
        let nodes = nodes.clone();
        let views = views.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(every));
            // A loaded process wakes late: one line then, not a burst.
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            tick.tick().await;
            loop {
                tick.tick().await;
                eprintln!("{}", progress_line(start, &nodes, &views, &shared));
            }
        });
    }

    let kill_at = start + Duration::from_secs_f64(args.kill_at);
    let end = start + Duration::from_secs_f64(args.duration);
    let mut join_converge_s = None;
    let mut join_failures = 0;
    while Instant::now() < kill_at {
        while let Some(r) = joins.try_join_next() {
            if !matches!(r, Ok(true)) {
                join_failures += 1;
            }
        }
        if join_converge_s.is_none() && views.iter().all(|v| lock(&v.alive).len() == n) {
            join_converge_s = Some(start.elapsed().as_secs_f64());
        }
        tokio::time::sleep(POLL.min(kill_at.saturating_duration_since(Instant::now()))).await;
    }
    while let Some(r) = joins.join_next().await {
        if !matches!(r, Ok(true)) {
            join_failures += 1;
        }
    }

    // Kill the first K: stop them without leaving.
    let cpu_at_kill = cpu_seconds();
    let killed_at = Instant::now();
    shared.killed.store(true, Ordering::Relaxed);
    let (udp_dead, tcp_dead) = nodes[..k].iter().fold((0, 0), |(u, t), ml| {
        let s = ml.stats();
        (u + s.core.bytes_sent, t + s.tcp_bytes_sent)
    });
    shutdown_all(&nodes[..k]).await;
    let mut detect_all_s = None;
    while Instant::now() < end {
        if detect_all_s.is_none()
            && views[k..].iter().all(|v| {
                let alive = lock(&v.alive);
                (0..k).all(|d| !alive.contains(d))
            })
        {
            detect_all_s = Some(killed_at.elapsed().as_secs_f64());
        }
        tokio::time::sleep(POLL.min(end.saturating_duration_since(Instant::now()))).await;
    }
    if detect_all_s.is_none() {
        // Say who still holds whom, and in what state, for the record.
        for (i, v) in views.iter().enumerate().skip(k) {
            let alive = lock(&v.alive);
            for d in (0..k).filter(|&d| alive.contains(d)).map(name) {
                let seen = nodes[i].member(&d).map(|m| (m.state, m.incarnation));
                eprintln!("bench: {} still holds {d} at the end: {seen:?}", name(i));
            }
        }
    }
    let elapsed_s = start.elapsed().as_secs_f64();
    let (udp_bytes, tcp_bytes) = nodes[k..].iter().fold((udp_dead, tcp_dead), |(u, t), ml| {
        let s = ml.stats();
        (u + s.core.bytes_sent, t + s.tcp_bytes_sent)
    });
    let cpu_s_total = cpu_seconds();
    let maxrss_kib = proc_status_kib("VmHWM:");
    let per_node_s = n as f64 * elapsed_s;
    let report = Report {
        implementation: "headcount",
        profile: format!("{:?}", args.profile).to_lowercase(),
        runtime: format!("{:?}", args.runtime).to_lowercase(),
        nodes: n,
        killed: k,
        kill_at_s: args.kill_at,
        join_failures,
        join_converge_s,
        detect_all_s,
        false_leaves: shared.false_leaves.load(Ordering::Relaxed),
        cpu_s_total,
        cpu_s_after_kill: cpu_s_total - cpu_at_kill,
        maxrss_kib,
        baseline_rss_kib,
        udp_bytes,
        tcp_bytes,
        udp_bytes_per_node_s: udp_bytes as f64 / per_node_s,
        tcp_bytes_per_node_s: tcp_bytes as f64 / per_node_s,
        elapsed_s,
    };
    shutdown_all(&nodes[k..]).await;
    Ok(report)
}

/// One `--progress` line: how far the views have got and how loaded the
/// nodes are (killed nodes' counters stay at their last values).
fn progress_line(
    start: Instant,
    nodes: &[Memberlist],
    views: &[Arc<View>],
    shared: &Shared,
) -> String {
    let n = nodes.len();
    let known: usize = views.iter().map(|v| lock(&v.alive).len()).sum();
    let complete = views.iter().filter(|v| lock(&v.alive).len() == n).count();
    let (mut probes, mut failed, mut health, mut max_health) = (0, 0, 0u64, 0);
    for ml in nodes.iter().filter(|ml| !ml.is_shutdown()) {
        let s = ml.stats();
        probes += s.core.probes;
        failed += s.core.probes_failed;
        let h = ml.health_score();
        health += u64::from(h);
        max_health = max_health.max(h);
    }
    format!(
        "bench: t={:.1}s pairs known {:.4} ({complete} complete views) probes {probes} failed {failed} \
         health mean {:.2} max {max_health} false leaves {} cpu {:.1}s",
        start.elapsed().as_secs_f64(),
        known as f64 / (n * n) as f64,
        health as f64 / n as f64,
        shared.false_leaves.load(Ordering::Relaxed),
        cpu_seconds(),
    )
}

/// Shuts `nodes` down (without leaving) all at once, as the Go twin does:
/// one after the other, a loaded process of 1,000 nodes took minutes, and
/// the killed nodes died seconds apart.
async fn shutdown_all(nodes: &[Memberlist]) {
    let mut set = tokio::task::JoinSet::new();
    for ml in nodes {
        let ml = ml.clone();
        set.spawn(async move { ml.shutdown().await });
    }
    while set.join_next().await.is_some() {}
}

/// User + system CPU time of this process, from `/proc/self/stat` (in
/// clock ticks of 1/100 s, Linux's fixed `USER_HZ`). 0 where unavailable.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // The command name may hold spaces: fields start after the last ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    // rest: " S ppid ..."; utime and stime are fields 14 and 15 of the
    // line, i.e. the 12th and 13th after the ')'.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// A field of `/proc/self/status` in KiB (`VmHWM:` is the peak resident
/// set size, `VmRSS:` the current one), 0 where unavailable.
fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::NodeSet;

    #[test]
    fn node_set_counts_each_node_once_and_ignores_other_names() {
        let mut s = NodeSet::new(130);
        s.set("node-0", true);
        s.set("node-129", true);
        s.set("node-129", true);
        s.set("node-130", true); // beyond the harness's nodes
        s.set("other-1", true);
        s.set("node-x", true);
        assert_eq!(s.len(), 2);
        assert!(s.contains(0) && s.contains(129));
        assert!(!s.contains(1) && !s.contains(130));
        s.set("node-129", false);
        s.set("node-129", false);
        s.set("node-5", false);
        assert_eq!(s.len(), 1);
        assert!(!s.contains(129));
    }
}
