//! headcount agents in one cluster with real Serf agents (Debian's `serf`,
//! Go memberlist underneath). Each test uses its own 127.x.y.0/24 range so
//! tests can run in parallel.

mod common;

use std::time::Duration;

use common::{headcount_agent, Serf};

/// Serf uses delegate protocol versions 2..5; a node joining it must too.
const SERF_DELEGATE_VERSIONS: &str = "2,5,4";
const T: Duration = Duration::from_secs(30);

#[test]
fn headcount_joins_two_serf_agents_and_serf_sees_it_alive() {
    let s1 = Serf::start("s1", "127.61.0.1", &[]);
    let s2 = Serf::start("s2", "127.61.0.2", &["-join", "127.61.0.1:7946"]);
    s1.wait_status(T, "s2", "alive");

    let mut hc = headcount_agent(
        "hc",
        "127.61.0.3:7946",
        &[
            "--join",
            "127.61.0.1:7946",
            "--join",
            "127.61.0.2:7946",
            "--delegate-versions",
            SERF_DELEGATE_VERSIONS,
        ],
    );
    hc.wait_event(T, "join", "s1", "alive");
    hc.wait_event(T, "join", "s2", "alive");
    s1.wait_status(T, "hc", "alive");
    s2.wait_status(T, "hc", "alive");
    let members = s2.members().unwrap();
    let (_, addr, _) = members.iter().find(|(n, _, _)| n == "hc").unwrap();
    assert_eq!(addr, "127.61.0.3:7946");
}

#[test]
fn serf_agent_joins_a_headcount_node() {
    let mut hc = headcount_agent(
        "hc",
        "127.62.0.1:7946",
        &["--delegate-versions", SERF_DELEGATE_VERSIONS],
    );
    let s1 = Serf::start("s1", "127.62.0.2", &[]);
    s1.join("127.62.0.1:7946");
    hc.wait_event(T, "join", "s1", "alive");
    s1.wait_status(T, "hc", "alive");
    // A second Serf agent that only knows the headcount node still finds s1.
    let s2 = Serf::start("s2", "127.62.0.3", &["-join", "127.62.0.1:7946"]);
    hc.wait_event(T, "join", "s2", "alive");
    s2.wait_status(T, "s1", "alive");
    s1.wait_status(T, "s2", "alive");
}

#[test]
fn killing_the_headcount_node_makes_serf_report_it_failed() {
    let s1 = Serf::start("s1", "127.63.0.1", &[]);
    let s2 = Serf::start("s2", "127.63.0.2", &["-join", "127.63.0.1:7946"]);
    let mut hc = headcount_agent(
        "hc",
        "127.63.0.3:7946",
        &[
            "--join",
            "127.63.0.1:7946",
            "--delegate-versions",
            SERF_DELEGATE_VERSIONS,
        ],
    );
    hc.wait_event(T, "join", "s2", "alive");
    s1.wait_status(T, "hc", "alive");
    s2.wait_status(T, "hc", "alive");
    hc.proc.kill();
    // Serf's LAN profile: 1 s probes, suspicion 4 × 1 s (n = 3, k = 0),
    // well inside 30 s.
    s1.wait_status(T, "hc", "failed");
    s2.wait_status(T, "hc", "failed");
}

#[test]
fn killing_a_serf_agent_makes_headcount_emit_its_leave() {
    let s1 = Serf::start("s1", "127.64.0.1", &[]);
    let mut s2 = Serf::start("s2", "127.64.0.2", &["-join", "127.64.0.1:7946"]);
    let mut hc = headcount_agent(
        "hc",
        "127.64.0.3:7946",
        &[
            "--join",
            "127.64.0.1:7946",
            "--delegate-versions",
            SERF_DELEGATE_VERSIONS,
        ],
    );
    hc.wait_event(T, "join", "s2", "alive");
    s2.proc.kill();
    hc.wait_event(Duration::from_secs(60), "leave", "s2", "dead");
    s1.wait_status(T, "s2", "failed");
}

#[test]
fn graceful_leave_of_headcount_removes_it_from_serf() {
    let s1 = Serf::start("s1", "127.65.0.1", &[]);
    let mut hc = headcount_agent(
        "hc",
        "127.65.0.2:7946",
        &[
            "--join",
            "127.65.0.1:7946",
            "--delegate-versions",
            SERF_DELEGATE_VERSIONS,
        ],
    );
    hc.wait_event(T, "join", "s1", "alive");
    s1.wait_status(T, "hc", "alive");
    let status = hc
        .proc
        .terminate(Duration::from_secs(15))
        .expect("agent exits after SIGTERM");
    assert!(status.success(), "agent exit status {status:?}");
    // Serf 0.8 (Debian's) reports "left" only after its own leave intent,
    // which travels in Serf's user messages; a memberlist-level leave shows
    // as "failed" there. Newer Serf shows "left". Either way it is gone.
    s1.wait_members(T, "hc to be left or failed", |m| {
        m.iter()
            .any(|(n, _, s)| n == "hc" && (s == "left" || s == "failed"))
    });
}

/// A fixed 32-byte key, base64 (as `serf keygen` prints).
const SERF_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
/// Another one.
const OTHER_KEY: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

/// Runs `headcount agent` that must fail to join, and returns its stderr.
fn failed_join(name: &str, bind: &str, extra: &[&str]) -> String {
    let out = std::process::Command::new(common::headcount_bin())
        .args(["agent", "--name", name, "--bind", bind])
        .args(["--delegate-versions", SERF_DELEGATE_VERSIONS])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run headcount agent");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{name}: {err}");
    assert_eq!(err.lines().count(), 1, "{name}: one line on stderr: {err}");
    err
}

#[test]
fn headcount_with_the_key_joins_an_encrypted_serf_cluster() {
    let s1 = Serf::start("s1", "127.66.0.1", &["-encrypt", SERF_KEY]);
    let mut hc = headcount_agent(
        "hc",
        "127.66.0.2:7946",
        &[
            "--encrypt",
            SERF_KEY,
            "--join",
            "127.66.0.1:7946",
            "--delegate-versions",
            SERF_DELEGATE_VERSIONS,
        ],
    );
    hc.wait_event(T, "join", "s1", "alive");
    s1.wait_status(T, "hc", "alive");
    // A second encrypted Serf agent that only knows the headcount node.
    let s2 = Serf::start(
        "s2",
        "127.66.0.3",
        &["-encrypt", SERF_KEY, "-join", "127.66.0.2:7946"],
    );
    hc.wait_event(T, "join", "s2", "alive");
    s2.wait_status(T, "s1", "alive");
    s1.wait_status(T, "s2", "alive");
}

#[test]
fn headcount_with_another_key_or_none_is_refused_by_an_encrypted_serf() {
    let s1 = Serf::start("s1", "127.67.0.1", &["-encrypt", SERF_KEY]);
    // Serf answers a stream it cannot decrypt with an error encrypted under
    // its own key, which we cannot read either.
    let err = failed_join(
        "hc-wrong",
        "127.67.0.2:7946",
        &["--encrypt", OTHER_KEY, "--join", "127.67.0.1:7946"],
    );
    assert!(
        err.contains("join failed: no address answered (127.67.0.1:7946: ")
            && err.contains("wrong encryption key or label?"),
        "{err}"
    );
    // Without a key, Serf's (encrypted) error says it wants encryption.
    let err = failed_join(
        "hc-plain",
        "127.67.0.3:7946",
        &["--join", "127.67.0.1:7946"],
    );
    assert!(
        err.contains("it is encrypted and we have no encryption key"),
        "{err}"
    );
    // The refused nodes never show up in Serf, nor does a gossip packet of
    // theirs make them: poll for a bounded while.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        let members = s1.members().unwrap_or_default();
        assert!(
            members.iter().all(|(n, _, _)| !n.starts_with("hc")),
            "{members:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `serf members -format json` through `serf`'s RPC: the tags of `node`.
fn serf_tags(serf: &Serf, node: &str) -> Option<serde_json::Value> {
    let out = std::process::Command::new("serf")
        .args(["members", "-rpc-addr", &serf.rpc, "-format", "json"])
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["members"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == node)
        .map(|m| m["tags"].clone())
}

#[test]
fn tags_travel_both_ways_between_headcount_and_serf() {
    let s1 = Serf::start("s1", "127.68.0.1", &["-tag", "role=db", "-tag", "dc=x"]);
    let mut hc = headcount_agent(
        "hc",
        "127.68.0.2:7946",
        &[
            "--tag",
            "role=web",
            "--tag",
            "zone=a",
            "--join",
            "127.68.0.1:7946",
            "--delegate-versions",
            SERF_DELEGATE_VERSIONS,
        ],
    );
    // Serf's tags decode in the agent's output, and so do its own.
    let v = hc.wait_event(T, "join", "s1", "alive");
    assert_eq!(
        v["tags"],
        serde_json::json!({"role": "db", "dc": "x"}),
        "{v}"
    );
    let v = hc.wait_event(T, "join", "hc", "alive");
    assert_eq!(
        v["tags"],
        serde_json::json!({"role": "web", "zone": "a"}),
        "{v}"
    );
    s1.wait_status(T, "hc", "alive");
    assert_eq!(
        serf_tags(&s1, "hc"),
        Some(serde_json::json!({"role": "web", "zone": "a"}))
    );
}
