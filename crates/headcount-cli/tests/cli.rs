//! The `headcount` binary end to end, on 127.0.0.1 only.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_headcount");

#[cfg(feature = "demo")]
#[test]
fn demo_runs_to_the_end() {
    let out = Command::new(BIN).arg("demo").output().expect("run demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "joined (seen by all 5)",
        "killed (shut down without leaving)",
        "suspects node-3",
        "all 4 survivors agree node-3 is dead",
        "all 5 nodes agree node-3 is alive again",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
}

/// Lines of a child's stdout, read on a thread so we can wait with a timeout.
struct Lines(mpsc::Receiver<String>);

impl Lines {
    fn new(out: ChildStdout) -> Self {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines(rx)
    }

    /// Waits for a line for which `f` holds; panics after `timeout`.
    fn expect(
        &self,
        what: &str,
        timeout: Duration,
        f: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.0.recv_timeout(left) {
                Ok(line) => {
                    let v: serde_json::Value = serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                    if f(&v) {
                        return v;
                    }
                    seen.push(line);
                }
                Err(_) => panic!("no line {what} within {timeout:?}; saw {seen:#?}"),
            }
        }
    }
}

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    // UDP and TCP on the same port: find one free for both.
    loop {
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn agent(name: &str, port: u16, extra: &[&str]) -> (Agent, Lines) {
    let mut child = Command::new(BIN)
        .args([
            "agent",
            "--name",
            name,
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--profile",
            "local",
        ])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start agent");
    let lines = Lines::new(child.stdout.take().unwrap());
    (Agent(child), lines)
}

fn is(v: &serde_json::Value, event: &str, node: &str) -> bool {
    v["event"] == event && v["node"] == node
}

#[test]
fn agents_join_talk_and_leave() {
    let (pa, pb) = (free_port(), free_port());
    let (mut a, a_out) = agent("cli-a", pa, &["--meta", "hello"]);
    a_out.expect("a announces itself", Duration::from_secs(10), |v| {
        is(v, "join", "cli-a")
    });
    let join = format!("cli-a/127.0.0.1:{pa}");
    let (mut b, b_out) = agent(
        "cli-b",
        pb,
        &["--join", &join, "--delegate-versions", "0,0,0"],
    );
    let v = b_out.expect("b sees a", Duration::from_secs(10), |v| {
        is(v, "join", "cli-a")
    });
    assert_eq!(v["addr"], format!("127.0.0.1:{pa}"));
    assert_eq!(v["state"], "alive");
    a_out.expect("a sees b", Duration::from_secs(10), |v| {
        is(v, "join", "cli-b")
    });

    let stdin = b.0.stdin.as_mut().unwrap();
    writeln!(stdin, "send-reliable cli-a hello from b").unwrap();
    writeln!(stdin, "members").unwrap();
    stdin.flush().unwrap();
    a_out.expect("a gets the message", Duration::from_secs(10), |v| {
        v["event"] == "user" && v["msg"] == "hello from b"
    });
    let m = b_out.expect("b lists members", Duration::from_secs(10), |v| {
        v["event"] == "members"
    });
    assert_eq!(m["members"].as_array().unwrap().len(), 2, "{m}");

    // EOF on stdin does not stop the agent; SIGTERM makes it leave.
    drop(b.0.stdin.take());
    std::thread::sleep(Duration::from_millis(200));
    assert!(b.0.try_wait().unwrap().is_none(), "b exited on stdin EOF");
    let status = Command::new("kill")
        .args(["-TERM", &b.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let v = a_out.expect("a sees b leave", Duration::from_secs(10), |v| {
        is(v, "leave", "cli-b")
    });
    assert_eq!(v["state"], "left");
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(s) = b.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "b did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(code.success(), "b exited with {code}");
    let _ = a.0.kill();
}

#[test]
fn agent_exits_non_zero_when_no_join_address_answers() {
    let closed = free_port();
    let port = free_port();
    let out = Command::new(BIN)
        .args([
            "agent",
            "--name",
            "lonely",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--profile",
            "local",
        ])
        .args(["--join", &format!("127.0.0.1:{closed}")])
        .stdin(Stdio::null())
        .output()
        .expect("run agent");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("join failed: no address answered"), "{err}");
}

#[test]
fn keygen_prints_fresh_32_byte_keys_and_agent_refuses_bad_ones() {
    let key = |_| {
        let out = Command::new(BIN)
            .arg("keygen")
            .output()
            .expect("run keygen");
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let (a, b) = (key(0), key(1));
    assert_ne!(a, b);
    // 32 bytes are 44 base64 characters with one '=' of padding.
    assert_eq!(a.len(), 44, "{a}");
    assert!(a.ends_with('=') && !a.ends_with("=="), "{a}");
    // A bad key is refused before anything starts, saying why.
    for (bad, why) in [
        ("not base64!", "not valid base64"),
        (
            "AAAAAAAAAAAAAA==",
            "the key is 10 bytes; AES needs 16, 24 or 32",
        ),
    ] {
        let out = Command::new(BIN)
            .args([
                "agent",
                "--name",
                "x",
                "--bind",
                "127.0.0.1:0",
                "--encrypt",
                bad,
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(why), "{err}");
    }
}

#[test]
fn agent_refuses_meta_with_tags_and_malformed_tags() {
    for (extra, why) in [
        (
            &["--meta", "x", "--tag", "role=web"][..],
            "cannot be used with",
        ),
        (&["--tag", "novalue"][..], "expected KEY=VALUE"),
    ] {
        let out = Command::new(BIN)
            .args(["agent", "--name", "x", "--bind", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(why), "{err}");
    }
}

#[test]
fn retry_join_keeps_trying_until_the_peer_starts() {
    let (pa, pb) = (free_port(), free_port());
    let target = format!("127.0.0.1:{pb}");
    let (_a, a_out) = agent(
        "retry-a",
        pa,
        &["--retry-join", &target, "--retry-interval", "200ms"],
    );
    // a runs while its attempts fail.
    a_out.expect("a announces itself", Duration::from_secs(10), |v| {
        is(v, "join", "retry-a")
    });
    let (_b, b_out) = agent("retry-b", pb, &[]);
    a_out.expect("a joins b once b is up", Duration::from_secs(20), |v| {
        is(v, "join", "retry-b")
    });
    b_out.expect("b sees a", Duration::from_secs(10), |v| {
        is(v, "join", "retry-a")
    });
}

#[test]
fn retry_join_exits_after_retry_max_failures() {
    let closed = free_port();
    let port = free_port();
    let out = Command::new(BIN)
        .args(["agent", "--name", "retrier", "--profile", "local"])
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .args(["--retry-join", &format!("127.0.0.1:{closed}")])
        .args(["--retry-interval", "50ms", "--retry-max", "3"])
        .args(["--log-level", "warn"])
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .output()
        .expect("run agent");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for n in 1..=3 {
        assert!(
            err.contains(&format!("retry-join: attempt {n} failed")),
            "{err}"
        );
    }
    assert!(!err.contains("attempt 4"), "{err}");
    assert!(err.contains("3 attempts failed; giving up"), "{err}");
}

#[test]
fn config_file_sets_flags_and_unknown_keys_are_refused() {
    let dir = std::env::temp_dir().join(format!("headcount-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\nbogus-key = 1\n").unwrap();
    let out = Command::new(BIN)
        .args(["agent", "--config", bad.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("bogus-key"), "{err}");

    // Name, profile and tags from the file; the bind address from a flag.
    let port = free_port();
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "name = \"from-file\"\nprofile = \"local\"\nbind = \"127.0.0.1:1\"\n[tag]\nrole = \"web\"\n",
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["agent", "--config", good.to_str().unwrap()])
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = Lines::new(child.stdout.take().unwrap());
    let running = Agent(child);
    let v = lines.expect("the agent starts", Duration::from_secs(10), |v| {
        is(v, "join", "from-file")
    });
    assert_eq!(v["addr"], format!("127.0.0.1:{port}"));
    assert_eq!(v["tags"], serde_json::json!({"role": "web"}));
    let stdin = running.0.stdin.as_ref().unwrap();
    writeln!(&*stdin, "members").unwrap();
    let m = lines.expect("the agent lists members", Duration::from_secs(10), |v| {
        v["event"] == "members"
    });
    assert_eq!(
        m["members"][0]["tags"],
        serde_json::json!({"role": "web"}),
        "{m}"
    );
}

#[test]
fn binding_all_interfaces_without_a_private_address_says_what_to_do() {
    // Only a fresh network namespace is sure to have no private address.
    let usable = Command::new("unshare")
        .args(["-n", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !usable {
        eprintln!("skipped: `unshare -n` is not available (needs util-linux and root)");
        return;
    }
    let out = Command::new("unshare")
        .args(["-n", BIN, "agent", "--name", "x", "--bind", "0.0.0.0:0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no interface has a private address to announce")
            && err.contains("--advertise"),
        "{err}"
    );
}

#[test]
fn sighup_reloads_tags_and_log_level_from_the_config_file() {
    let dir = std::env::temp_dir().join(format!("headcount-hup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("a.toml");
    std::fs::write(&conf, "log-level = \"error\"\n[tag]\nrole = \"web\"\n").unwrap();
    let pa = free_port();
    let mut child = Command::new(BIN)
        .args(["agent", "--name", "hup-a", "--profile", "local"])
        .args(["--bind", &format!("127.0.0.1:{pa}")])
        .args(["--config", conf.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let a_out = Lines::new(child.stdout.take().unwrap());
    let a_err = child.stderr.take().unwrap();
    let (err_tx, err_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(a_err).lines().map_while(Result::ok) {
            let _ = err_tx.send(line);
        }
    });
    let a = Agent(child);
    a_out.expect("a starts", Duration::from_secs(10), |v| {
        is(v, "join", "hup-a")
    });
    let (_b, b_out) = agent(
        "hup-b",
        free_port(),
        &["--join", &format!("127.0.0.1:{pa}")],
    );
    let v = b_out.expect("b sees a", Duration::from_secs(10), |v| {
        is(v, "join", "hup-a")
    });
    assert_eq!(v["tags"], serde_json::json!({"role": "web"}));

    std::fs::write(&conf, "log-level = \"info\"\n[tag]\nrole = \"db\"\n").unwrap();
    let status = Command::new("kill")
        .args(["-HUP", &a.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    b_out.expect("b sees a's new tags", Duration::from_secs(10), |v| {
        is(v, "update", "hup-a") && v["tags"] == serde_json::json!({"role": "db"})
    });
    // The reload is logged at info, which "error" would have hidden.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = err_rx
            .recv_timeout(left)
            .expect("a logs the reload at info");
        if line.contains("SIGHUP: reloaded; log level info") {
            break;
        }
    }
}
