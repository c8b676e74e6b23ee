//! The `headcount bench` workload on al8n's `memberlist` crate (crates.io
//! `memberlist` 0.8.5, tokio + the UDP/TCP `NetTransport`, no TLS, no
//! compression, no checksum, no encryption). Same flags as the Go twin
//! (`-nodes` or `--nodes`, ...), same JSON line; see bench/notes.md.
//!
//! * N nodes in one process on 127.0.0.1, ports P..P+N-1, node i joining
//!   node 0 at t = 0; at `kill-at` the first K nodes are shut down without
//!   leaving; the run lasts `duration` seconds in all.
//! * Membership is followed through each node's `EventDelegate` (join adds
//!   the id to that node's view, leave removes it), polled every 20 ms,
//!   exactly as headcount and Go do.
//! * CPU: user + system time from /proc/self/stat (as headcount and Go); memory: `VmHWM`
//!   and (before any node) `VmRSS` of /proc/self/status.
//! * Bytes: the crate's own `metrics` counters `memberlist.packet.sent`
//!   (bytes `Transport::send_to` reports for a UDP packet) and
//!   `memberlist.stream.sent` (bytes `Transport::write` reports for a
//!   message on a stream), summed over all nodes by a process-wide recorder.
//!
//! With `--agent` it is instead one node of the per-process benchmark
//! (bench/perprocess.py): one node on 127.0.0.1:`--port` named `--name`,
//! joining `--join` once, printing `{"event":"join"|"leave","node":NAME}`
//! JSON lines on stdout for its event delegate's joins and leaves (as
//! `headcount agent` does), until the process is killed. No metrics
//! recorder is installed in that mode.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use memberlist::delegate::{CompositeDelegate, EventDelegate};
use memberlist::metrics::{
    self, Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use memberlist::net::NetTransportOptions;
use memberlist::proto::{MaybeResolvedAddress, NodeState};
use memberlist::tokio::{TokioSocketAddrResolver, TokioTcp, TokioTcpMemberlist};
use memberlist::Options;
use serde::Serialize;
use smol_str::SmolStr;

const POLL: Duration = Duration::from_millis(20);

/// Bytes sent, as the crate's metrics report them.
static UDP_BYTES: AtomicU64 = AtomicU64::new(0);
static TCP_BYTES: AtomicU64 = AtomicU64::new(0);

struct ByteRecorder {
    udp: Arc<Wrap>,
    tcp: Arc<Wrap>,
}

/// A counter adding into one of the statics.
struct Wrap(&'static AtomicU64);

impl metrics::CounterFn for Wrap {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, _value: u64) {}
}

impl Recorder for ByteRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        match key.name() {
            "memberlist.packet.sent" => Counter::from_arc(self.udp.clone()),
            "memberlist.stream.sent" => Counter::from_arc(self.tcp.clone()),
            _ => Counter::noop(),
        }
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

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

struct Shared {
    doomed: HashSet<SmolStr>,
    killed: AtomicBool,
    false_leaves: AtomicU64,
}

struct View {
    shared: Arc<Shared>,
    alive: Mutex<NodeSet>,
}

/// A set of the harness's nodes by index (the `i` of `node-{i}`), one bit
/// a node, as in headcount's bench and the Go twin: the harness's N views
/// of N members do not count as the nodes' memory.
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

    fn set(&mut self, name: &str, on: bool) {
        let Some(i) = name
            .strip_prefix("node-")
            .and_then(|i| i.parse::<usize>().ok())
            .filter(|&i| i < self.n)
        else {
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl EventDelegate for View {
    type Id = SmolStr;
    type Address = SocketAddr;

    async fn notify_join(&self, node: Arc<NodeState<SmolStr, SocketAddr>>) {
        lock(&self.alive).set(node.id(), true);
    }

    async fn notify_leave(&self, node: Arc<NodeState<SmolStr, SocketAddr>>) {
        let id = node.id();
        lock(&self.alive).set(id, false);
        if !(self.shared.killed.load(Ordering::Relaxed) && self.shared.doomed.contains(id)) {
            self.shared.false_leaves.fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn notify_update(&self, _node: Arc<NodeState<SmolStr, SocketAddr>>) {}
}

struct Args {
    nodes: usize,
    base_port: u16,
    duration: f64,
    kill: usize,
    kill_at: f64,
    profile: String,
    runtime: String,
    presets: String,
    agent: bool,
    name: String,
    port: u16,
    join: Option<SocketAddr>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        nodes: 16,
        base_port: 40000,
        duration: 30.0,
        kill: 1,
        kill_at: 10.0,
        profile: "lan".into(),
        runtime: "current".into(),
        presets: "go".into(),
        agent: false,
        name: "node-0".into(),
        port: 7946,
        join: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let (name, inline) = match flag.trim_start_matches('-').split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.trim_start_matches('-').to_string(), None),
        };
        if name == "h" || name == "help" {
            return Err("usage: al8n-bench [--nodes N] [--base-port P] [--duration S] [--kill K] [--kill-at S] [--profile lan|wan|local] [--runtime current|multi] [--presets go|al8n]\n       al8n-bench --agent [--name NAME] [--port P] [--join IP:PORT] [--profile ...] [--runtime ...] [--presets ...]".into());
        }
        if name == "agent" {
            a.agent = true;
            continue;
        }
        let v = match inline {
            Some(v) => v,
            None => it.next().ok_or(format!("{flag} needs a value"))?,
        };
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {v}: {e}");
        match name.as_str() {
            "nodes" => a.nodes = v.parse().map_err(|e| bad(&e))?,
            "base-port" => a.base_port = v.parse().map_err(|e| bad(&e))?,
            "duration" => a.duration = v.parse().map_err(|e| bad(&e))?,
            "kill" => a.kill = v.parse().map_err(|e| bad(&e))?,
            "kill-at" => a.kill_at = v.parse().map_err(|e| bad(&e))?,
            "profile" => a.profile = v,
            "runtime" => a.runtime = v,
            "presets" => a.presets = v,
            "name" => a.name = v,
            "port" => a.port = v.parse().map_err(|e| bad(&e))?,
            "join" => a.join = Some(v.parse().map_err(|e| bad(&e))?),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("al8n-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.agent {
        return agent_main(args);
    }
    let rec = ByteRecorder {
        udp: Arc::new(Wrap(&UDP_BYTES)),
        tcp: Arc::new(Wrap(&TCP_BYTES)),
    };
    if metrics::set_global_recorder(rec).is_err() {
        eprintln!("al8n-bench: cannot install the byte counter");
        return ExitCode::FAILURE;
    }
    let rt = match runtime(&args.runtime) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("al8n-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match rt.block_on(run(args)) {
        Ok(report) => {
            println!(
                "{}",
                serde_json::to_string(&report).expect("report serializes")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("al8n-bench: {e}");
            ExitCode::FAILURE
        }
    };
    rt.shutdown_timeout(Duration::from_millis(100));
    code
}

/// The tokio runtime `--runtime` names.
fn runtime(name: &str) -> Result<tokio::runtime::Runtime, String> {
    let rt = match name {
        "current" => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        "multi" => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
        other => return Err(format!("unknown runtime {other:?}")),
    };
    rt.map_err(|e| format!("cannot start the runtime: {e}"))
}

/// Prints one JSON line per join and leave the node sees.
struct Printer;

impl Printer {
    fn print(event: &str, node: &NodeState<SmolStr, SocketAddr>) {
        use std::io::Write;
        let line = serde_json::json!({"event": event, "node": node.id().as_str(), "addr": node.address().to_string()});
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    }
}

impl EventDelegate for Printer {
    type Id = SmolStr;
    type Address = SocketAddr;

    async fn notify_join(&self, node: Arc<NodeState<SmolStr, SocketAddr>>) {
        Self::print("join", &node);
    }

    async fn notify_leave(&self, node: Arc<NodeState<SmolStr, SocketAddr>>) {
        Self::print("leave", &node);
    }

    async fn notify_update(&self, _node: Arc<NodeState<SmolStr, SocketAddr>>) {}
}

/// `--agent`: one node, the same options and transport as a node of the
/// one-process run, until the process is killed.
fn agent_main(args: Args) -> ExitCode {
    let rt = match runtime(&args.runtime) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("al8n-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let r: Result<(), String> = rt.block_on(async {
        let opts = options(&args.profile, &args.presets)?;
        let bind = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
        let mut topts = NetTransportOptions::<SmolStr, TokioSocketAddrResolver, TokioTcp>::new(
            SmolStr::new(&args.name),
        );
        topts.add_bind_address(bind);
        let topts = topts.with_max_packet_size(1400);
        let delegate = CompositeDelegate::<SmolStr, SocketAddr>::default()
            .with_event_delegate(Arc::new(Printer));
        let ml: TokioTcpMemberlist<SmolStr, TokioSocketAddrResolver, _> =
            memberlist::Memberlist::with_delegate(delegate, topts, opts)
                .await
                .map_err(|e| format!("{}: {e}", args.name))?;
        if let Some(seed) = args.join {
            ml.join(MaybeResolvedAddress::Resolved(seed))
                .await
                .map_err(|e| format!("join {seed}: {e}"))?;
        }
        std::future::pending::<()>().await;
        Ok(())
    });
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("al8n-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The crate's preset for the profile. With `--presets go` (the default)
/// the one field where al8n's preset differs from Go's is set to Go's
/// value: `Options::lan()` probes every 500 ms with a 1 s timeout, Go's
/// `DefaultLANConfig` every 1 s with a 500 ms timeout. `wan()` and
/// `local()` already equal Go's presets in every field the crate has (see
/// bench/notes.md). `--presets al8n` takes the crate's presets unchanged.
fn options(profile: &str, presets: &str) -> Result<Options, String> {
    let go = match presets {
        "go" => true,
        "al8n" => false,
        p => return Err(format!("unknown presets {p:?} (go or al8n)")),
    };
    match profile {
        "lan" if go => Ok(Options::lan()
            .with_probe_interval(Duration::from_secs(1))
            .with_probe_timeout(Duration::from_millis(500))),
        "lan" => Ok(Options::lan()),
        "wan" => Ok(Options::wan()),
        "local" => Ok(Options::local()),
        p => Err(format!("unknown profile {p:?}")),
    }
}

async fn run(args: Args) -> Result<Report, String> {
    let n = args.nodes;
    if n < 2 {
        return Err("need at least 2 nodes".into());
    }
    let k = args.kill.min(n - 1);
    if args.kill_at < 0.0 || args.duration < args.kill_at {
        return Err("need 0 <= kill-at <= duration".into());
    }
    if usize::from(args.base_port) + n > 65_536 {
        return Err("base-port + nodes exceeds 65535".into());
    }
    let baseline_rss_kib = proc_status_kib("VmRSS:");
    let name = |i: usize| SmolStr::new(format!("node-{i}"));
    let shared = Arc::new(Shared {
        doomed: (0..k).map(name).collect(),
        killed: AtomicBool::new(false),
        false_leaves: AtomicU64::new(0),
    });
    let mut nodes = Vec::with_capacity(n);
    let mut views = Vec::with_capacity(n);
    for i in 0..n {
        let opts = options(&args.profile, &args.presets)?;
        let port = args.base_port + u16::try_from(i).map_err(|e| e.to_string())?;
        let bind = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut topts =
            NetTransportOptions::<SmolStr, TokioSocketAddrResolver, TokioTcp>::new(name(i));
        topts.add_bind_address(bind);
        // Go's UDPBufferSize (1400); the crate's default is 1472.
        let topts = topts.with_max_packet_size(1400);
        let view = Arc::new(View {
            shared: shared.clone(),
            alive: Mutex::new(NodeSet::new(n)),
        });
        let delegate =
            CompositeDelegate::<SmolStr, SocketAddr>::default().with_event_delegate(view.clone());
        let ml: TokioTcpMemberlist<SmolStr, TokioSocketAddrResolver, _> =
            memberlist::Memberlist::with_delegate(delegate, topts, opts)
                .await
                .map_err(|e| format!("{}: {e}", name(i)))?;
        nodes.push(ml);
        views.push(view);
    }

    let start = Instant::now();
    let seed = SocketAddr::from((Ipv4Addr::LOCALHOST, args.base_port));
    let join_failures = Arc::new(AtomicUsize::new(0));
    let joins_returned = Arc::new(AtomicUsize::new(0));
    for ml in &nodes[1..] {
        let ml = ml.clone();
        let (f, r) = (join_failures.clone(), joins_returned.clone());
        tokio::spawn(async move {
            if ml.join(MaybeResolvedAddress::Resolved(seed)).await.is_err() {
                f.fetch_add(1, Ordering::Relaxed);
            }
            r.fetch_add(1, Ordering::Relaxed);
        });
    }

    let kill_at = start + Duration::from_secs_f64(args.kill_at);
    let end = start + Duration::from_secs_f64(args.duration);
    let mut join_converge_s = None;
    while Instant::now() < kill_at {
        if join_converge_s.is_none() && views.iter().all(|v| lock(&v.alive).len() == n) {
            join_converge_s = Some(start.elapsed().as_secs_f64());
        }
        tokio::time::sleep(POLL.min(kill_at.saturating_duration_since(Instant::now()))).await;
    }
    // As in the Go twin: a join still in flight at the kill counts as failed.
    let failed_joins =
        join_failures.load(Ordering::Relaxed) + (n - 1) - joins_returned.load(Ordering::Relaxed);

    let cpu_at_kill = cpu_seconds();
    let killed_at = Instant::now();
    shared.killed.store(true, Ordering::Relaxed);
    // Shut the doomed nodes down in parallel, waiting at most 5 s (as Go).
    let mut downs = tokio::task::JoinSet::new();
    for ml in &nodes[..k] {
        let ml = ml.clone();
        downs.spawn(async move {
            let _ = ml.shutdown().await;
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while downs.join_next().await.is_some() {}
    })
    .await;
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
    let elapsed_s = start.elapsed().as_secs_f64();
    let udp_bytes = UDP_BYTES.load(Ordering::Relaxed);
    let tcp_bytes = TCP_BYTES.load(Ordering::Relaxed);
    let cpu_s_total = cpu_seconds();
    let maxrss_kib = proc_status_kib("VmHWM:");
    let per_node_s = n as f64 * elapsed_s;
    let report = Report {
        implementation: "al8n-memberlist",
        profile: if args.presets == "go" {
            args.profile.clone()
        } else {
            format!("{} (al8n presets)", args.profile)
        },
        runtime: format!("tokio {}", args.runtime),
        nodes: n,
        killed: k,
        kill_at_s: args.kill_at,
        join_failures: failed_joins,
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
    for ml in &nodes[k..] {
        let _ = tokio::time::timeout(Duration::from_millis(200), ml.shutdown()).await;
    }
    Ok(report)
}

/// User + system CPU time of this process, from /proc/self/stat (clock
/// ticks of 1/100 s, the same source and resolution as headcount and Go).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / 100.0
}

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
