//! Helpers for tests that run real processes: headcount agents, Serf agents
//! and Go memberlist nodes, all on loopback.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A child process killed (SIGKILL) when dropped.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    /// Kills the process without letting it leave.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process that prints one JSON object per line on stdout (the
/// `headcount agent` and the Go `mlnode` helper share this schema).
pub struct JsonAgent {
    pub proc: Proc,
    pub lines: Receiver<Value>,
    pub stdin: Option<ChildStdin>,
    /// Every line received so far.
    pub seen: Vec<Value>,
}

impl JsonAgent {
    pub fn spawn(name: &str, mut cmd: Command) -> JsonAgent {
        cmd.stdout(Stdio::piped())
            .stdin(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take();
        let (tx, rx) = channel();
        let label = name.to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            break;
                        }
                    }
                    Err(e) => panic!("{label} printed a line that is not JSON ({e}): {line}"),
                }
            }
        });
        JsonAgent {
            proc: Proc {
                child,
                name: name.into(),
            },
            lines: rx,
            stdin,
            seen: Vec::new(),
        }
    }

    /// Waits until a line satisfying `pred` arrives (or was already seen).
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        if let Some(v) = self.seen.iter().find(|v| pred(v)) {
            return v.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "{}: timed out after {timeout:?} waiting for {what}; saw {:#?}",
                        self.proc.name, self.seen
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "{}: exited while waiting for {what}; saw {:#?}",
                        self.proc.name, self.seen
                    )
                }
            }
        }
    }

    /// Waits for a membership event about `node` with the given event name and state.
    pub fn wait_event(&mut self, timeout: Duration, event: &str, node: &str, state: &str) -> Value {
        let what = format!("{event} of {node} ({state})");
        self.wait_for(timeout, &what, |v| {
            v["event"] == event && v["node"] == node && v["state"] == state
        })
    }

    /// Writes one command line on the agent's stdin.
    pub fn command(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }
}

/// Path of the `headcount` binary built for these tests.
pub fn headcount_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_headcount"))
}

/// Starts `headcount agent` with the given extra arguments and waits until
/// it is up (its own join event: its sockets are bound), so a peer started
/// next can dial it at once even on a loaded machine.
pub fn headcount_agent(name: &str, bind: &str, extra: &[&str]) -> JsonAgent {
    let mut cmd = Command::new(headcount_bin());
    cmd.args(["agent", "--name", name, "--bind", bind])
        .args(extra);
    cmd.env(
        "RUST_LOG",
        std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
    );
    let mut agent = JsonAgent::spawn(name, cmd);
    agent.wait_event(Duration::from_secs(60), "join", name, "alive");
    agent
}

/// Starts an agent (local profile) with its HTTP API on an ephemeral
/// loopback port; returns it with its gossip and API addresses.
pub fn agent_with_api(name: &str, extra: &[&str], t: Duration) -> (JsonAgent, String, String) {
    let mut args = vec!["--profile", "local", "--http", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut a = headcount_agent(name, "127.0.0.1:0", &args);
    let api = a.wait_for(t, "the API address", |v| v["event"] == "http")["addr"]
        .as_str()
        .unwrap()
        .to_string();
    let gossip = a.wait_event(t, "join", name, "alive")["addr"]
        .as_str()
        .unwrap()
        .to_string();
    (a, gossip, api)
}

/// Fails with instructions when a tool the interop tests need is missing.
pub fn require_tool(tool: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(tool))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "`{tool}` is not installed. The interop tests need Debian's serf, golang-go and \
             golang-github-hashicorp-memberlist-dev: run `scripts/test.sh` (installs them as root) or \
             `apt-get install serf golang-go golang-github-hashicorp-memberlist-dev`"
        )
    })
}

/// A Serf agent on loopback.
pub struct Serf {
    pub proc: Proc,
    pub rpc: String,
    pub bind: String,
}

impl Serf {
    pub fn start(name: &str, ip: &str, extra: &[&str]) -> Serf {
        let serf = require_tool("serf");
        let bind = format!("{ip}:7946");
        let rpc = format!("{ip}:7373");
        let child = Command::new(serf)
            .args([
                "agent",
                "-node",
                name,
                "-bind",
                &bind,
                "-rpc-addr",
                &rpc,
                "-log-level",
                "warn",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start serf agent");
        let s = Serf {
            proc: Proc {
                child,
                name: name.into(),
            },
            rpc,
            bind,
        };
        // The agent is ready when its RPC answers.
        s.wait_members(Duration::from_secs(20), "its RPC to answer", |_| true);
        s
    }

    /// `serf members -format json`, as (name, addr, status) triples.
    pub fn members(&self) -> Option<Vec<(String, String, String)>> {
        let out = Command::new("serf")
            .args(["members", "-rpc-addr", &self.rpc, "-format", "json"])
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        Some(
            v["members"]
                .as_array()?
                .iter()
                .map(|m| {
                    (
                        m["name"].as_str().unwrap_or_default().to_string(),
                        m["addr"].as_str().unwrap_or_default().to_string(),
                        m["status"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect(),
        )
    }

    /// Polls `serf members` until `pred` holds. Serf offers no event stream
    /// to a test, so this polls its RPC, bounded by `timeout`.
    pub fn wait_members(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&[(String, String, String)]) -> bool,
    ) -> Vec<(String, String, String)> {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        while Instant::now() < deadline {
            if let Some(m) = self.members() {
                if pred(&m) {
                    return m;
                }
                last = Some(m);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "serf {}: timed out waiting for {what}; last members: {last:?}",
            self.proc.name
        );
    }

    pub fn wait_status(&self, timeout: Duration, node: &str, status: &str) {
        let what = format!("{node} to be {status}");
        self.wait_members(timeout, &what, |m| {
            m.iter().any(|(n, _, s)| n == node && s == status)
        });
    }

    /// `serf join ADDR` through this agent.
    pub fn join(&self, addr: &str) {
        let out = Command::new("serf")
            .args(["join", "-rpc-addr", &self.rpc, addr])
            .output()
            .expect("serf join");
        assert!(
            out.status.success(),
            "serf join {addr} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Path of the Go memberlist helper, built on first use.
pub fn mlnode_bin() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = root.join("target/interop/mlnode");
    static BUILD: std::sync::Once = std::sync::Once::new();
    BUILD.call_once(|| {
        require_tool("go");
        let st = Command::new("bash")
            .arg(root.join("interop/build-go.sh"))
            .arg(&out)
            .status()
            .expect("run interop/build-go.sh");
        assert!(st.success(), "building the Go memberlist helper failed");
    });
    out
}

/// `GET path` on a fresh connection (`Connection: close`) with optional
/// headers; returns the status and the body as text. For answers with a
/// `Content-Length` (not chunked ones).
pub fn http_get(addr: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the API");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read the answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a header block");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    (status, body.to_string())
}
