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
