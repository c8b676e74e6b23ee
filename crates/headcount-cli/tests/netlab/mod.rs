//! A lab of test hosts for the fault suite: each host is a network
//! namespace with one veth into a bridge that lives in a namespace of its
//! own, addresses 10.77.0.0/24 inside those namespaces only. Nothing is
//! added to the root namespace: no route, no address, no interface. Real
//! `headcount agent` processes and Go memberlist nodes (`mlnode`) run in the
//! hosts through `ip netns exec`; faults are nftables rules inside a host's
//! namespace (partitions, one-way cuts, random loss), signals (SIGSTOP and
//! SIGCONT, SIGKILL) and restarts.
//!
//! Agents are observed through what they print: their event stream on
//! stdout (join, leave with `dead` or `left`), their member list (the
//! `members` command on stdin, `members_all` for headcount), and their log
//! lines for the accusations each one makes (`suspect X has failed`,
//! `marking X as failed`), worded alike by headcount and Go memberlist.
//! Every wait has a deadline; conditions are polled or events awaited.
//!
//! Namespace names carry the test process's pid and a counter, and are
//! deleted when the [`Lab`] is dropped (processes first), also when a test
//! panics; ones left by a killed earlier run (whose pid is gone) are
//! removed when the next lab starts.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Which implementation a node runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `headcount agent`.
    Headcount,
    /// Debian's Go memberlist through interop's `mlnode`.
    Go,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Headcount => "headcount",
            Kind::Go => "Go memberlist",
        }
    }
}

/// What was seen, when (seconds since the lab started), by whom.
#[derive(Clone, Debug)]
pub struct Obs {
    pub t: f64,
    pub observer: String,
    pub what: What,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum What {
    /// The observer's event stream: `subject` joined (or came back).
    Join(String),
    /// The observer's event stream: `subject` is dead.
    Dead(String),
    /// The observer's event stream: `subject` left.
    Left(String),
    /// The observer's own log: it suspected `subject` (no acks).
    Suspect(String),
    /// The observer's own log: it declared `subject` dead.
    Declared(String),
    /// The observer's own log: a reconnect attempt (headcount).
    Reconnect(String),
    /// A note from the scenario (fault injected, healed, ...).
    Note(String),
}

/// Why the suite cannot run here, if it cannot: it needs root and `ip`
/// and `nft`.
pub fn unavailable() -> Option<String> {
    let root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    if !root {
        return Some("the fault suite needs root (network namespaces)".into());
    }
    for tool in ["ip", "nft"] {
        let ok = Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Some(format!(
                "the fault suite needs `{tool}` (apt-get install iproute2 nftables)"
            ));
        }
    }
    // Creating a namespace can still be refused (a container without
    // CAP_SYS_ADMIN).
    static PROBE: AtomicUsize = AtomicUsize::new(0);
    let probe = format!(
        "hcf{}-probe{}",
        std::process::id(),
        PROBE.fetch_add(1, Ordering::Relaxed)
    );
    if run("ip", &["netns", "add", &probe]).is_err() {
        return Some("cannot create network namespaces here".into());
    }
    let _ = run("ip", &["netns", "del", &probe]);
    None
}

fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn must(cmd: &str, args: &[&str]) {
    if let Err(e) = run(cmd, args) {
        panic!("{e}");
    }
}

/// Deletes namespaces of earlier runs whose process is gone.
fn sweep_stale() {
    let Ok(list) = run("ip", &["netns", "list"]) else {
        return;
    };
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(rest) = name.strip_prefix("hcf") else {
            continue;
        };
        let pid: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if !pid.is_empty() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            // Agents of a killed run outlive it (EOF on stdin does not stop
            // a headcount agent): end the processes in the namespace first.
            if let Ok(pids) = run("ip", &["netns", "pids", name]) {
                for p in pids.split_whitespace() {
                    let _ = run("kill", &["-9", p]);
                }
            }
            let _ = run("ip", &["netns", "del", name]);
        }
    }
}

/// One test host: a namespace with `lo` and `eth0` (10.77.0.x/24).
#[derive(Clone, Debug)]
pub struct Host {
    pub ns: String,
    pub ip: String,
}

impl Host {
    fn nft(&self, script: &str) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run nft");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "nft in {}: {}\n{script}",
            self.ns,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Replaces this host's fault rules: drop packets from `drop_in`
    /// (addresses), and `loss` percent of what arrives from the lab's
    /// subnet. Faults drop on the receiving side only, as a broken network
    /// does: a drop in the output hook fails `sendto` with EPERM, which Go
    /// memberlist takes for a local error and never suspects anyone over.
    fn set_rules(&self, drop_in: &[String], loss: u32) {
        let mut s =
            String::from("table inet hcfault\ndelete table inet hcfault\ntable inet hcfault {\n");
        s += "  chain in {\n    type filter hook input priority 0; policy accept;\n";
        if !drop_in.is_empty() {
            s += &format!("    ip saddr {{ {} }} drop\n", drop_in.join(", "));
        }
        if loss > 0 {
            s += &format!("    ip saddr 10.77.0.0/24 numgen random mod 100 < {loss} drop\n");
        }
        s += "  }\n}\n";
        self.nft(&s);
    }
}

/// One node's member list: name → (state, address).
pub type View = BTreeMap<String, (String, String)>;

/// A running (or stopped, or killed) node.
pub struct Node {
    pub name: String,
    pub kind: Kind,
    pub host: usize,
    pub addr: String,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    members: Receiver<Value>,
    /// SIGSTOPped.
    pub stopped: bool,
    /// Highest VmRSS seen, KiB.
    pub max_rss_kib: u64,
    /// (seconds since the lab started, VmRSS KiB) samples.
    pub rss: Vec<(f64, u64)>,
}

impl Node {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// Live and answering (running and not stopped).
    pub fn live(&self) -> bool {
        self.running() && !self.stopped
    }

    fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid() {
            must("kill", &[&format!("-{sig}"), &pid.to_string()]);
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.stdin = None;
        self.stopped = false;
    }

    /// This node's member list (name → state), or `None` if it did not
    /// answer within `t`.
    fn members(&mut self, t: Duration) -> Option<View> {
        while self.members.try_recv().is_ok() {}
        let stdin = self.stdin.as_mut()?;
        writeln!(stdin, "members").ok()?;
        stdin.flush().ok()?;
        let v = self.members.recv_timeout(t).ok()?;
        Some(
            v["members"]
                .as_array()?
                .iter()
                .map(|m| {
                    (
                        m["node"].as_str().unwrap_or_default().to_string(),
                        (
                            m["state"].as_str().unwrap_or_default().to_string(),
                            m["addr"].as_str().unwrap_or_default().to_string(),
                        ),
                    )
                })
                .collect(),
        )
    }

    fn sample_rss(&mut self, t: f64) {
        let Some(pid) = self.pid() else { return };
        let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            return;
        };
        if let Some(kib) = s
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
        {
            self.max_rss_kib = self.max_rss_kib.max(kib);
            self.rss.push((t, kib));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Path of the Go memberlist helper, built on first use.
pub fn mlnode_bin() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = root.join("target/interop/mlnode");
    static BUILD: std::sync::Once = std::sync::Once::new();
    BUILD.call_once(|| {
        let st = Command::new("bash")
            .arg(root.join("interop/build-go.sh"))
            .arg(&out)
            .status()
            .expect("run interop/build-go.sh");
        assert!(st.success(), "building the Go memberlist helper failed");
    });
    out
}

/// The lab: hosts on a bridge, the nodes in them, and what they saw.
pub struct Lab {
    pub id: String,
    bridge: String,
    pub hosts: Vec<Host>,
    pub nodes: Vec<Node>,
    start: Instant,
    pub log: Arc<Mutex<Vec<Obs>>>,
    /// Extra arguments for every headcount agent.
    pub hc_args: Vec<String>,
    /// Profile for every node.
    pub profile: String,
}

impl Lab {
    /// Builds `hosts` hosts on one bridge.
    pub fn new(hosts: usize) -> Lab {
        assert!(hosts < 200);
        sweep_stale();
        static N: AtomicUsize = AtomicUsize::new(0);
        let id = format!(
            "hcf{}x{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let bridge = format!("{id}-br");
        must("ip", &["netns", "add", &bridge]);
        let mut lab = Lab {
            id: id.clone(),
            bridge: bridge.clone(),
            hosts: Vec::new(),
            nodes: Vec::new(),
            start: Instant::now(),
            log: Arc::new(Mutex::new(Vec::new())),
            hc_args: Vec::new(),
            profile: "lan".into(),
        };
        must("ip", &["-n", &bridge, "link", "set", "lo", "up"]);
        must(
            "ip",
            &["-n", &bridge, "link", "add", "br0", "type", "bridge"],
        );
        must("ip", &["-n", &bridge, "link", "set", "br0", "up"]);
        for i in 0..hosts {
            lab.add_host(i);
        }
        lab
    }

    fn add_host(&mut self, i: usize) {
        let ns = format!("{}-h{}", self.id, i + 1);
        let ip = format!("10.77.0.{}", i + 1);
        let port = format!("p{}", i + 1);
        must("ip", &["netns", "add", &ns]);
        self.hosts.push(Host {
            ns: ns.clone(),
            ip: ip.clone(),
        });
        let b = self.bridge.clone();
        must(
            "ip",
            &[
                "-n", &b, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ],
        );
        must("ip", &["-n", &b, "link", "set", &port, "master", "br0"]);
        must("ip", &["-n", &b, "link", "set", &port, "up"]);
        must("ip", &["-n", &ns, "link", "set", "lo", "up"]);
        must(
            "ip",
            &["-n", &ns, "addr", "add", &format!("{ip}/24"), "dev", "eth0"],
        );
        must("ip", &["-n", &ns, "link", "set", "eth0", "up"]);
        self.hosts[i].set_rules(&[], 0);
    }

    /// Adds one more host (for a restart on a new address).
    pub fn spare_host(&mut self) -> usize {
        let i = self.hosts.len();
        self.add_host(i);
        i
    }

    /// Seconds since the lab started.
    pub fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    pub fn note(&self, text: impl Into<String>) {
        let text = text.into();
        eprintln!("[{:7.2}] {} {text}", self.now(), self.id);
        self.log.lock().unwrap().push(Obs {
            t: self.now(),
            observer: String::new(),
            what: What::Note(text),
        });
    }

    /// Starts a node named `name` of `kind` on host `host`, joining
    /// `join` (addresses) if any, and waits until it is up.
    pub fn start(&mut self, name: &str, kind: Kind, host: usize, join: &[String]) -> usize {
        let h = self.hosts[host].clone();
        let addr = format!("{}:7946", h.ip);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &h.ns]);
        match kind {
            Kind::Headcount => {
                // HEADCOUNT_FAULTS_BIN runs another build (e.g. the main
                // branch's, for before/after figures).
                let bin = std::env::var_os("HEADCOUNT_FAULTS_BIN")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_headcount")));
                cmd.arg(bin).args([
                    "agent",
                    "--name",
                    name,
                    "--bind",
                    &addr,
                    "--profile",
                    &self.profile,
                    "--log-level",
                    "info",
                ]);
                cmd.args(&self.hc_args);
                for j in join {
                    cmd.args(["--retry-join", j]);
                }
                if !join.is_empty() {
                    cmd.args(["--retry-interval", "1s"]);
                }
                cmd.env("NO_COLOR", "1");
            }
            Kind::Go => {
                cmd.arg(mlnode_bin()).args([
                    "-name",
                    name,
                    "-bind",
                    &addr,
                    "-profile",
                    &self.profile,
                    "-join-timeout",
                    "30s",
                ]);
                for j in join {
                    cmd.args(["-join", j]);
                }
            }
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let stdin = child.stdin.take();
        let (mtx, mrx) = channel();
        let (ready_tx, ready_rx) = channel();
        let log = self.log.clone();
        let start = self.start;
        let me = name.to_string();
        std::thread::spawn(move || {
            let mut ready = Some(ready_tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                let t = start.elapsed().as_secs_f64();
                let node = v["node"].as_str().unwrap_or_default().to_string();
                let what = match (v["event"].as_str(), v["state"].as_str()) {
                    (Some("members"), _) => {
                        let _ = mtx.send(v);
                        continue;
                    }
                    (Some("join"), _) => {
                        if node == me {
                            if let Some(r) = ready.take() {
                                let _ = r.send(());
                            }
                        }
                        What::Join(node)
                    }
                    (Some("leave"), Some("left")) => What::Left(node),
                    (Some("leave"), _) => What::Dead(node),
                    _ => continue,
                };
                log.lock().unwrap().push(Obs {
                    t,
                    observer: me.clone(),
                    what,
                });
            }
        });
        let log = self.log.clone();
        let me = name.to_string();
        let verbose = std::env::var_os("HEADCOUNT_FAULTS_VERBOSE").is_some();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if verbose {
                    eprintln!("{me}: {line}");
                }
                if let Some(what) = parse_log(&line) {
                    log.lock().unwrap().push(Obs {
                        t: start.elapsed().as_secs_f64(),
                        observer: me.clone(),
                        what,
                    });
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("{name} did not start within 30 s"));
        let node = Node {
            name: name.into(),
            kind,
            host,
            addr,
            child: Some(child),
            stdin,
            members: mrx,
            stopped: false,
            max_rss_kib: 0,
            rss: Vec::new(),
        };
        self.note(format!("started {name} ({}) on {}", kind.label(), h.ip));
        if let Some(i) = self.nodes.iter().position(|n| n.name == name) {
            self.nodes[i] = node;
            i
        } else {
            self.nodes.push(node);
            self.nodes.len() - 1
        }
    }

    /// Starts a cluster: `kinds[i]` on host i, each joining the first.
    pub fn cluster(&mut self, kinds: &[Kind]) {
        let seed = format!("{}:7946", self.hosts[0].ip);
        for (i, &k) in kinds.iter().enumerate() {
            let name = match k {
                Kind::Headcount => format!("hc{}", i + 1),
                Kind::Go => format!("go{}", i + 1),
            };
            let join = if i == 0 { vec![] } else { vec![seed.clone()] };
            self.start(&name, k, i, &join);
        }
    }

    pub fn index(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// Names of the nodes that should be seen alive: running ones (a
    /// stopped one counts: it is alive, only slow).
    pub fn expected(&self) -> BTreeMap<String, String> {
        self.nodes
            .iter()
            .filter(|n| n.running())
            .map(|n| (n.name.clone(), n.addr.clone()))
            .collect()
    }

    /// Every live node's view (name → (state, address)); `None` for nodes
    /// that did not answer.
    pub fn views(&mut self) -> Vec<(String, Option<View>)> {
        let t = self.now();
        let mut out = Vec::new();
        for n in self.nodes.iter_mut().filter(|n| n.live()) {
            n.sample_rss(t);
            let v = n.members(Duration::from_secs(3));
            out.push((n.name.clone(), v));
        }
        out
    }

    /// What stands between now and agreement (empty when every live node
    /// sees exactly the expected members alive and no one else alive).
    pub fn disagreement(&mut self) -> Vec<String> {
        let expected = self.expected();
        let mut problems = Vec::new();
        for (who, view) in self.views() {
            let Some(view) = view else {
                problems.push(format!("{who} did not answer"));
                continue;
            };
            for (e, addr) in &expected {
                match view.get(e) {
                    Some((s, a)) if s == "alive" && a == addr => {}
                    Some((s, a)) if s == "alive" => {
                        problems.push(format!("{who} sees {e} at {a}, not {addr}"))
                    }
                    Some((s, _)) => problems.push(format!("{who} sees {e} {s} (lost)")),
                    None => problems.push(format!("{who} does not know {e} (lost)")),
                }
            }
            for (m, (s, _)) in &view {
                if !expected.contains_key(m) && (s == "alive" || s == "suspect") {
                    problems.push(format!("{who} sees {m} {s} (ghost)"));
                }
            }
        }
        problems
    }

    /// Polls until every live node agrees; the seconds it took, or the
    /// problems left at the deadline.
    pub fn wait_agree(&mut self, bound: Duration) -> Result<f64, Vec<String>> {
        let start = Instant::now();
        loop {
            let p = self.disagreement();
            if p.is_empty() {
                return Ok(start.elapsed().as_secs_f64());
            }
            if start.elapsed() > bound {
                return Err(p);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Cuts the hosts of `side` off from every other host, both ways (each
    /// host drops what arrives from the other side).
    pub fn partition(&mut self, side: &[usize]) {
        let inside: BTreeSet<usize> = side.iter().copied().collect();
        for i in 0..self.hosts.len() {
            let others: Vec<String> = (0..self.hosts.len())
                .filter(|&j| j != i && inside.contains(&j) != inside.contains(&i))
                .map(|j| self.hosts[j].ip.clone())
                .collect();
            self.hosts[i].set_rules(&others, 0);
        }
        self.note(format!("partition: {:?} cut off", self.side_names(side)));
    }

    /// Host `h` receives nothing from the other hosts (it can still send).
    pub fn cut_inbound(&mut self, h: usize) {
        let others: Vec<String> = (0..self.hosts.len())
            .filter(|&j| j != h)
            .map(|j| self.hosts[j].ip.clone())
            .collect();
        self.hosts[h].set_rules(&others, 0);
        self.note(format!(
            "one-way cut: host {} hears nothing",
            self.hosts[h].ip
        ));
    }

    /// Every host drops `percent` % of the packets it receives from the
    /// others (so every link loses that share, each way).
    pub fn loss(&mut self, percent: u32) {
        for h in &self.hosts {
            h.set_rules(&[], percent);
        }
        self.note(format!("loss {percent}% on every link"));
    }

    /// Removes every fault rule.
    pub fn heal(&mut self) {
        for h in &self.hosts {
            h.set_rules(&[], 0);
        }
        self.note("network healed");
    }

    pub fn stop(&mut self, name: &str) {
        let i = self.index(name);
        self.nodes[i].signal("STOP");
        self.nodes[i].stopped = true;
        self.note(format!("SIGSTOP {name}"));
    }

    pub fn cont(&mut self, name: &str) {
        let i = self.index(name);
        self.nodes[i].signal("CONT");
        self.nodes[i].stopped = false;
        self.note(format!("SIGCONT {name}"));
    }

    pub fn kill(&mut self, name: &str) {
        let i = self.index(name);
        self.nodes[i].kill();
        self.note(format!("kill -9 {name}"));
    }

    /// Restarts `name` (killed) on host `host`, joining a live node.
    pub fn restart(&mut self, name: &str, host: usize) {
        let i = self.index(name);
        let kind = self.nodes[i].kind;
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.live() && n.name != name)
            .map(|n| n.addr.clone())
            .take(2)
            .collect();
        self.start(name, kind, host, &seeds);
    }

    fn side_names(&self, side: &[usize]) -> Vec<String> {
        side.iter()
            .filter_map(|&h| self.nodes.iter().find(|n| n.host == h))
            .map(|n| n.name.clone())
            .collect()
    }

    /// Observations from `from` seconds on.
    pub fn since(&self, from: f64) -> Vec<Obs> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|o| o.t >= from)
            .cloned()
            .collect()
    }

    /// Deaths declared since `from` (the declarer's own log: its suspicion
    /// timer ran out) by members outside `faulted` about members outside
    /// `faulted`: a healthy member declared dead by a healthy one while only
    /// others were faulted. The invariant: this stays empty.
    pub fn healthy_declared_dead(&self, from: f64, faulted: &[&str]) -> Vec<String> {
        self.since(from)
            .into_iter()
            .filter_map(|o| match &o.what {
                What::Declared(s)
                    if !faulted.contains(&s.as_str())
                        && !faulted.contains(&o.observer.as_str()) =>
                {
                    Some(format!("{:.1}s: {} declared {s} dead", o.t, o.observer))
                }
                _ => None,
            })
            .collect()
    }

    /// Deaths of members outside `faulted` that members outside `faulted`
    /// saw (their event streams) since `from`, whoever declared them: after
    /// a partition heals, a cut-off member's late declaration can reach the
    /// healthy side before the victim refutes it. Reported beside the
    /// invariant.
    pub fn healthy_seen_dead(&self, from: f64, faulted: &[&str]) -> Vec<String> {
        self.since(from)
            .into_iter()
            .filter_map(|o| match &o.what {
                What::Dead(s)
                    if !faulted.contains(&s.as_str())
                        && !faulted.contains(&o.observer.as_str()) =>
                {
                    Some(format!("{:.1}s: {} saw {s} dead", o.t, o.observer))
                }
                _ => None,
            })
            .collect()
    }

    /// Counts since `from` of (suspicions, death declarations) by nodes of
    /// `kind`, from their own logs, about live members.
    pub fn accusations(&self, from: f64, kind: Kind) -> (usize, usize) {
        let mine: BTreeSet<String> = self
            .nodes
            .iter()
            .filter(|n| n.kind == kind)
            .map(|n| n.name.clone())
            .collect();
        let (mut s, mut d) = (0, 0);
        for o in self.since(from) {
            if !mine.contains(&o.observer) {
                continue;
            }
            match o.what {
                What::Suspect(_) => s += 1,
                What::Declared(_) => d += 1,
                _ => {}
            }
        }
        (s, d)
    }

    /// Suspicions since `from` by nodes of `observer` kind about nodes of
    /// `subject` kind.
    pub fn suspicions_between(&self, from: f64, observer: Kind, subject: Kind) -> usize {
        let kind_of = |name: &str| self.nodes.iter().find(|n| n.name == name).map(|n| n.kind);
        self.since(from)
            .iter()
            .filter(|o| match &o.what {
                What::Suspect(s) => {
                    kind_of(&o.observer) == Some(observer) && kind_of(s) == Some(subject)
                }
                _ => false,
            })
            .count()
    }

    /// Highest RSS of any node of `kind`, MiB.
    pub fn max_rss_mib(&self, kind: Kind) -> f64 {
        self.nodes
            .iter()
            .filter(|n| n.kind == kind)
            .map(|n| n.max_rss_kib)
            .max()
            .unwrap_or(0) as f64
            / 1024.0
    }

    /// A text timeline since `from`: who saw whom join, die, suspected or
    /// declared whom, and the scenario's notes; time relative to `zero`.
    pub fn timeline(&self, from: f64, zero: f64) -> String {
        let mut s = String::new();
        for o in self.since(from) {
            let what = match &o.what {
                What::Join(x) if *x == o.observer => continue,
                What::Join(x) => format!("{} sees {x} alive", o.observer),
                What::Dead(x) => format!("{} sees {x} dead", o.observer),
                What::Left(x) => format!("{} sees {x} left", o.observer),
                What::Suspect(x) => format!("{} suspects {x}", o.observer),
                What::Declared(x) => format!("{} declares {x} dead", o.observer),
                What::Reconnect(x) => format!("{} tries to reconnect to {x}", o.observer),
                What::Note(n) => format!("-- {n}"),
            };
            s += &format!("{:+8.1}s  {what}\n", o.t - zero);
        }
        s
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill();
        }
        for h in &self.hosts {
            let _ = run("ip", &["netns", "del", &h.ns]);
        }
        let _ = run("ip", &["netns", "del", &self.bridge]);
    }
}

/// The accusation a log line records, if any. headcount and Go memberlist
/// word these alike: `suspect X has failed, no acks received` (Go:
/// `Suspect X has failed`), `marking X as failed, suspect timeout
/// reached`, and headcount's `attempting reconnect to X`.
pub fn parse_log(line: &str) -> Option<What> {
    let lower = line.to_ascii_lowercase();
    let word_after = |key: &str| -> Option<String> {
        let at = lower.find(key)? + key.len();
        line.get(at..)?
            .split_whitespace()
            .next()
            .map(|w| w.trim_matches(|c: char| c == ',' || c == ':').to_string())
    };
    if lower.contains(" has failed, no acks received") {
        return word_after("suspect ").map(What::Suspect);
    }
    if lower.contains("as failed, suspect timeout reached") {
        return word_after("marking ").map(What::Declared);
    }
    if lower.contains("attempting reconnect to ") {
        return word_after("attempting reconnect to ").map(What::Reconnect);
    }
    None
}

/// Appends one result row (JSON) to target/faults/results.jsonl, which
/// `scripts/reliability.sh` turns into docs/reliability.md.
pub fn record(mut row: Value) {
    // Which build of headcount ran (HEADCOUNT_FAULTS_BUILD, e.g. `main`
    // with HEADCOUNT_FAULTS_BIN for before/after figures).
    row["build"] = std::env::var("HEADCOUNT_FAULTS_BUILD")
        .unwrap_or_else(|_| "this".into())
        .into();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/faults");
    let _ = std::fs::create_dir_all(&dir);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("results.jsonl"))
        .expect("open results.jsonl");
    writeln!(f, "{row}").unwrap();
}

/// Writes a timeline next to the results.
pub fn record_timeline(name: &str, text: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/faults/timelines");
    let _ = std::fs::create_dir_all(&dir);
    let name = match std::env::var("HEADCOUNT_FAULTS_BUILD") {
        Ok(build) => format!("{build}-{name}"),
        Err(_) => name.to_string(),
    };
    std::fs::write(dir.join(format!("{name}.txt")), text).unwrap();
}

#[test]
fn log_lines_are_parsed() {
    assert_eq!(
        parse_log(
            "2026/12/01 23:00:00 [INFO] memberlist: Suspect hc2 has failed, no acks received"
        ),
        Some(What::Suspect("hc2".into()))
    );
    assert_eq!(
        parse_log("INFO node{name=hc1}: headcount_proto::node::probe: suspect go3 has failed, no acks received"),
        Some(What::Suspect("go3".into()))
    );
    assert_eq!(
        parse_log("[INFO] memberlist: Marking hc4 as failed, suspect timeout reached (0 peer confirmations)"),
        Some(What::Declared("hc4".into()))
    );
    assert_eq!(
        parse_log("INFO x: attempting reconnect to hc5 10.77.0.5:7946"),
        Some(What::Reconnect("hc5".into()))
    );
    assert_eq!(parse_log("something else"), None);
}
