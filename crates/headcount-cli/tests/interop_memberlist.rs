//! headcount agents and Go memberlist nodes (Debian's
//! golang-github-hashicorp-memberlist-dev, `DefaultLocalConfig`) in one
//! cluster: joins, deaths within the suspicion bounds, user messages.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{headcount_agent, mlnode_bin, JsonAgent};

const T: Duration = Duration::from_secs(30);
/// How long a node may take to learn of another that joined through a
/// third one at the same moment. In the local profile (retransmit mult 2)
/// a 3-node cluster can spend an alive broadcast's two transmissions on
/// piggybacks to the joiner itself, and then only the next push/pull tells
/// the others: within a push/pull interval (15 s) after a random stagger of
/// up to one more. Seen once: ml2 learned of hc only after 30 s.
const CONVERGE: Duration = Duration::from_secs(45);

fn mlnode(name: &str, bind: &str, join: &[&str], extra: &[&str]) -> JsonAgent {
    let mut cmd = Command::new(mlnode_bin());
    cmd.args(["-name", name, "-bind", bind, "-profile", "local"]);
    for j in join {
        cmd.args(["-join", j]);
    }
    cmd.args(extra);
    JsonAgent::spawn(name, cmd)
}

/// Upper bound for "everyone knows it is dead" under `DefaultLocalConfig`
/// (probe interval 1 s, SuspicionMult 3, SuspicionMaxTimeoutMult 6) with n
/// nodes ≤ 10: the first failed probe comes within n probe rounds plus the
/// probe itself, then the suspicion timer runs at most
/// 6 × 3 × max(1, log10 n) × 1 s = 18 s (a lone survivor gets no
/// confirmations, so it waits the maximum); gossip adds well under a
/// second. The last 8 s are slack for a loaded machine: this checks the
/// protocol's bound, not speed.
fn death_bound(n: u32) -> Duration {
    Duration::from_secs(u64::from(n) + 1 + 18 + 8)
}

#[test]
fn mixed_cluster_joins_exchanges_messages_and_detects_deaths() {
    let mut ml1 = mlnode("ml1", "127.71.0.1:7946", &[], &[]);
    ml1.wait_event(T, "join", "ml1", "alive");
    let mut ml2 = mlnode("ml2", "127.71.0.2:7946", &["127.71.0.1:7946"], &[]);
    let mut hc = headcount_agent(
        "hc",
        "127.71.0.3:7946",
        &["--join", "127.71.0.1:7946", "--profile", "local"],
    );

    // Everyone sees everyone.
    for (who, agent) in [("hc", &mut hc), ("ml1", &mut ml1), ("ml2", &mut ml2)] {
        for other in ["hc", "ml1", "ml2"] {
            if other != who {
                agent.wait_event(CONVERGE, "join", other, "alive");
            }
        }
    }
    let seen = hc.wait_event(T, "join", "ml2", "alive");
    assert_eq!(seen["addr"], "127.71.0.2:7946");

    // Reliable user messages both ways, and a best-effort one.
    ml1.command("send-reliable hc hello-from-go");
    hc.wait_for(T, "reliable message from Go", |v| {
        v["event"] == "user" && v["msg"] == "hello-from-go"
    });
    hc.command("send-reliable ml2 hello-from-rust");
    ml2.wait_for(T, "reliable message from Rust", |v| {
        v["event"] == "user" && v["msg"] == "hello-from-rust"
    });
    hc.command("send-best-effort ml1 datagram-from-rust");
    ml1.wait_for(T, "best-effort message from Rust", |v| {
        v["event"] == "user" && v["msg"] == "datagram-from-rust"
    });

    // A Go node dies: headcount declares it dead within the bound.
    let killed = Instant::now();
    ml2.proc.kill();
    hc.wait_event(death_bound(3), "leave", "ml2", "dead");
    let took = killed.elapsed();
    ml1.wait_event(death_bound(3), "leave", "ml2", "dead");
    eprintln!("headcount declared the Go node dead after {took:?}");

    // The headcount node dies: Go declares it dead within the bound.
    let killed = Instant::now();
    hc.proc.kill();
    ml1.wait_event(death_bound(3), "leave", "hc", "dead");
    eprintln!(
        "Go declared the headcount node dead after {:?}",
        killed.elapsed()
    );
}

#[test]
fn go_node_joins_headcount_and_sees_graceful_leave() {
    let mut hc = headcount_agent("hc", "127.72.0.1:7946", &["--profile", "local"]);
    hc.wait_event(T, "join", "hc", "alive");
    let mut ml1 = mlnode("ml1", "127.72.0.2:7946", &["127.72.0.1:7946"], &[]);
    ml1.wait_event(T, "join", "hc", "alive");
    hc.wait_event(T, "join", "ml1", "alive");
    let status = hc
        .proc
        .terminate(Duration::from_secs(15))
        .expect("agent exits after SIGTERM");
    assert!(status.success());
    ml1.wait_event(T, "leave", "hc", "left");
}

#[test]
fn go_nodes_with_protocol_5_and_no_compression_interoperate() {
    // Protocol 5 makes Go add CRCs; compression off exercises plain packets.
    let mut ml1 = mlnode(
        "ml1",
        "127.73.0.1:7946",
        &[],
        &["-protocol", "5", "-compression", "off"],
    );
    ml1.wait_event(T, "join", "ml1", "alive");
    let mut hc = headcount_agent(
        "hc",
        "127.73.0.2:7946",
        &["--join", "127.73.0.1:7946", "--profile", "local"],
    );
    hc.wait_event(T, "join", "ml1", "alive");
    ml1.wait_event(T, "join", "hc", "alive");
    ml1.command("send-best-effort hc crc-framed");
    hc.wait_for(T, "best-effort message", |v| {
        v["event"] == "user" && v["msg"] == "crc-framed"
    });
    let killed = Instant::now();
    ml1.proc.kill();
    hc.wait_event(death_bound(2), "leave", "ml1", "dead");
    eprintln!("dead after {:?}", killed.elapsed());
}
