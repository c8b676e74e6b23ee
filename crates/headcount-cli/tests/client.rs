//! The client commands (`headcount members`, `info`, `join`, `leave`,
//! `send`, `keys`, `monitor`) run as processes against real agents on
//! 127.0.0.1 with their API on an ephemeral port.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use common::{headcount_bin, JsonAgent, Proc};
use serde_json::Value;

const T: Duration = Duration::from_secs(20);

/// An agent with its API on an ephemeral loopback port.
fn agent(name: &str, extra: &[&str]) -> (JsonAgent, String, String) {
    common::agent_with_api(name, extra, T)
}

/// A client command, without the caller's HEADCOUNT_HTTP_* variables.
fn client(args: &[&str]) -> Command {
    let mut c = Command::new(headcount_bin());
    c.args(args)
        .env_remove("HEADCOUNT_HTTP_ADDR")
        .env_remove("HEADCOUNT_HTTP_TOKEN");
    c
}

/// Runs a client command; answers (exit code, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    out(client(args).output().expect("run headcount"))
}

fn out(o: Output) -> (i32, String, String) {
    (
        o.status.code().expect("exited"),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs `headcount members` until `pred` holds on its output.
fn wait_members(api: &str, extra: &[&str], pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + T;
    loop {
        let mut args = vec!["members", "--http", api];
        args.extend_from_slice(extra);
        let (code, stdout, stderr) = run(&args);
        assert_eq!(code, 0, "{stderr}");
        if pred(&stdout) {
            return stdout;
        }
        assert!(Instant::now() < deadline, "never: {stdout}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn members_info_join_send_leave() {
    let (_a, a_gossip, a_api) = agent("a", &["--tag", "role=web", "--tag", "dc=x"]);
    let (mut b, b_gossip, b_api) = agent("b", &[]);

    // join through b's API.
    let (code, stdout, stderr) = run(&["join", "--http", &b_api, &a_gossip]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.starts_with("joined 1 of 1"), "{stdout}");

    // The table, aligned: the address column starts at the same place.
    let table = wait_members(&a_api, &[], |s| s.lines().count() == 2);
    let lines: Vec<&str> = table.lines().collect();
    let row_a = lines.iter().find(|l| l.starts_with("a ")).unwrap();
    let row_b = lines.iter().find(|l| l.starts_with("b ")).unwrap();
    assert_eq!(row_a.find(&a_gossip), row_b.find(&b_gossip), "{table}");
    assert!(
        row_a.contains("alive") && row_a.ends_with("dc=x,role=web"),
        "{table}"
    );

    // --json, --status, --tag.
    let (code, stdout, _) = run(&["members", "--http", &a_api, "--json"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["members"].as_array().unwrap().len(), 2, "{v}");
    assert!(v["members"][0]["meta_base64"].is_string());
    let (_, stdout, _) = run(&["members", "--http", &a_api, "--tag", "role=web"]);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("a "), "{stdout}");
    let (_, stdout, _) = run(&["members", "--http", &a_api, "--tag", "role=db"]);
    assert_eq!(stdout, "");
    let (_, stdout, _) = run(&["members", "--http", &a_api, "--status", "dead"]);
    assert_eq!(stdout, "");
    let (_, stdout, _) = run(&["members", "--http", &a_api, "--status", "alive", "--json"]);
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["members"].as_array().unwrap().len(), 2, "{v}");
    // Serf's anchored regular expressions: a prefix alone matches nothing.
    let (_, stdout, _) = run(&["members", "--http", &a_api, "--status", "al"]);
    assert_eq!(stdout, "");
    let (_, stdout, _) = run(&["members", "--http", &a_api, "--status", "dead|alive"]);
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    let (_, stdout, _) = run(&["members", "--http", &a_api, "--name", "[ab]"]);
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    let (_, stdout, _) = run(&["members", "--http", &a_api, "--name", "b"]);
    assert!(
        stdout.starts_with("b ") && stdout.lines().count() == 1,
        "{stdout}"
    );
    let (_, stdout, _) = run(&["members", "--http", &a_api, "--tag", "role=w.*"]);
    assert!(
        stdout.starts_with("a ") && stdout.lines().count() == 1,
        "{stdout}"
    );
    let (_, stdout, _) = run(&["members", "--http", &a_api, "--tag", "role=we"]);
    assert_eq!(stdout, "");

    // info, human and JSON; the address from the environment.
    let (code, stdout, stderr) = out(client(&["info"])
        .env("HEADCOUNT_HTTP_ADDR", &a_api)
        .output()
        .unwrap());
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("name = a"), "{stdout}");
    assert!(stdout.contains("status = ok"), "{stdout}");
    assert!(stdout.contains("core.packets_received = "), "{stdout}");
    let (code, stdout, _) = run(&["info", "--http", &a_api, "--json"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["self"]["name"], "a");
    assert_eq!(v["health"]["members"]["alive"], 2);
    assert!(v["stats"]["core"].is_object());

    // send, both modes, and an unknown node.
    let (code, stdout, stderr) = run(&["send", "--http", &a_api, "b", "hello there"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "sent to b (reliable)\n");
    b.wait_for(T, "the message", |v| v["msg"] == "hello there");
    let (code, _, stderr) = run(&["send", "--http", &a_api, "--best-effort", "b", "udp"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = run(&["send", "--http", &a_api, "nobody", "x"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("field node") && stderr.contains("404"),
        "{stderr}"
    );

    // A join where nothing answers: exit 1, the error printed.
    let dead = free_port();
    let (code, stdout, stderr) = run(&["join", "--http", &a_api, &dead]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.starts_with("joined 0 of 1"), "{stdout}");
    assert!(stdout.contains(&dead), "{stdout}");
    assert!(stderr.contains("no address joined"), "{stderr}");

    // leave: b goes, a sees it left.
    let (code, stdout, stderr) = run(&["leave", "--http", &b_api]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("left"), "{stdout}");
    wait_members(&a_api, &["--all"], |s| {
        s.lines().any(|l| l.starts_with("b ") && l.contains("left"))
    });
}

/// A loopback address where nothing listens (just released).
fn free_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

#[test]
fn keys_list_install_use_remove() {
    const K1: &str = "T9jncgl9mbLus+baTTa7q7nPSUrXwbDi2dhbtqir37s=";
    const K2: &str = "HvY8ubRZMgafUOWvrOadwOckVa1wN3QWAo46FVKbVN8=";
    let (_a, _, api) = agent("ka", &["--encrypt", K1]);
    let keys = |args: &[&str]| {
        let mut all = vec!["keys", "--http", &api];
        all.extend_from_slice(args);
        run(&all)
    };
    let (code, one, stderr) = keys(&["list"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!one.contains(K1));
    assert_eq!(one.lines().count(), 1);
    assert!(one.trim_end().ends_with("(primary)"), "{one}");
    let (code, two, _) = keys(&["install", K2]);
    assert_eq!(code, 0);
    assert_eq!(two.lines().count(), 2, "{two}");
    let (code, used, _) = keys(&["use", K2]);
    assert_eq!(code, 0);
    assert_ne!(used.lines().next(), one.lines().next(), "{used}");
    // Removing the primary fails (409); the old key goes.
    let (code, _, stderr) = keys(&["remove", K2]);
    assert_eq!(code, 1);
    assert!(stderr.contains("409"), "{stderr}");
    let (code, left, _) = keys(&["remove", K1]);
    assert_eq!(code, 0);
    assert_eq!(left, used.lines().next().unwrap().to_string() + "\n");
    let (code, _, stderr) = keys(&["install", "AAAA"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("field key"), "{stderr}");
    // A lone agent's health is 503 "alone": info still shows it.
    let (code, stdout, stderr) = run(&["info", "--http", &api]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("status = alone"), "{stdout}");
    // The flags may also come after the subcommand.
    let (code, _, _) = run(&["keys", "list", "--http", &api]);
    assert_eq!(code, 0);
}

#[test]
fn monitor_sees_a_join_and_ends_with_the_agent() {
    let (mut a, a_gossip, a_api) = agent("ma", &[]);
    let start = |json: bool| {
        let mut c = client(&["monitor", "--http", &a_api]);
        if json {
            c.arg("--json");
        }
        let mut child = c
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        (
            Proc {
                child,
                name: "monitor".into(),
            },
            rx,
        )
    };
    let (mut human, human_lines) = start(false);
    let (mut json, json_lines) = start(true);
    let first = json_lines.recv_timeout(T).unwrap();
    let v: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(v["event"].as_str(), Some("join"));
    assert!(v["id"].as_str().is_some_and(|id| id.contains('-')), "{v}");
    assert_eq!(v["data"]["name"], "ma");
    let first = human_lines.recv_timeout(T).unwrap();
    assert!(
        first.starts_with('[') && first.contains("] join ma 127.0.0.1:"),
        "{first}"
    );

    let (_b, b_gossip, _) = agent("mb", &["--join", &a_gossip]);
    let want = format!("] join mb {b_gossip}");
    let deadline = Instant::now() + T;
    loop {
        let line = human_lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the join of mb");
        if line.contains(&want) {
            break;
        }
    }

    // Kill the agent: the monitors end, exit code 3 (connection lost).
    a.proc.kill();
    for m in [&mut human, &mut json] {
        let deadline = Instant::now() + T;
        let status = loop {
            if let Some(st) = m.child.try_wait().unwrap() {
                break st;
            }
            assert!(Instant::now() < deadline, "the monitor did not end");
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(m.child.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert_eq!(status.code(), Some(3), "{err}");
        assert!(err.contains("lost the connection"), "{err}");
    }
}

#[test]
fn monitor_exits_0_when_the_agent_stops() {
    let (mut a, _, api) = agent("sa", &[]);
    let mut m = client(&["monitor", "--http", &api])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(m.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("] join sa "), "{first}");
    a.proc.terminate(T).expect("the agent stops on SIGTERM");
    let o = m.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("the agent ended the event stream"), "{err}");
}

#[test]
fn wrong_token_no_agent_and_usage_errors() {
    let (_a, _, api) = agent("ta", &["--http-token", "s3cret"]);
    let (code, _, stderr) = run(&["members", "--http", &api, "--http-token", "wrong"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("missing or wrong bearer token") && stderr.contains("401"),
        "{stderr}"
    );
    let (code, _, stderr) = run(&["members", "--http", &api]);
    assert_eq!(code, 3, "{stderr}");
    let (code, stdout, stderr) = out(client(&["members", "--http", &api])
        .env("HEADCOUNT_HTTP_TOKEN", "s3cret")
        .output()
        .unwrap());
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("ta "), "{stdout}");
    let (code, _, stderr) = run(&["monitor", "--http", &api, "--http-token", "wrong"]);
    assert_eq!(code, 3, "{stderr}");

    // Nothing listening.
    let dead = free_port();
    for cmd in [
        &["members"][..],
        &["info"],
        &["leave"],
        &["monitor"],
        &["keys", "list"],
    ] {
        let mut args = cmd.to_vec();
        args.extend(["--http", &dead]);
        let (code, _, stderr) = run(&args);
        assert_eq!(code, 3, "{cmd:?}: {stderr}");
        assert!(stderr.contains("cannot reach the agent"), "{stderr}");
    }

    // Usage errors; the exit codes are documented.
    assert_eq!(run(&["join"]).0, 2);
    assert_eq!(run(&["send", "b"]).0, 2);
    assert_eq!(run(&["members", "--tag", "novalue"]).0, 2);
    assert_eq!(run(&["members", "--status", "bogus"]).0, 2);
    assert_eq!(run(&["members", "--name", "a("]).0, 2);
    assert_eq!(run(&["members", "--tag", "role=[x"]).0, 2);
    assert_eq!(run(&["keys"]).0, 2);
    let (code, help, _) = run(&["members", "--help"]);
    assert_eq!(code, 0);
    assert!(help.contains("EXIT CODES") && help.contains("HEADCOUNT_HTTP_ADDR"));
}
