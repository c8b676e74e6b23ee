//! Clusters on a `MemoryNetwork` under paused time: partitions that heal,
//! lossy links, and streams to cut or unknown addresses. Every wait awaits
//! events or member snapshots; virtual time runs ahead whenever every node
//! is idle, so minutes of protocol time take well under a second.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use headcount::{
    Error, EventDelegate, JoinError, MemberInfo, MemberState, Memberlist, MemoryNetwork, Options,
    PushPullError, StreamFailure,
};
use tokio::sync::watch;

/// Virtual time: a bound that only a bug reaches.
const WAIT: Duration = Duration::from_secs(600);

/// Records who each node saw die (`notify_leave` of a dead member).
struct Deaths(watch::Sender<HashSet<String>>);

impl EventDelegate for Deaths {
    fn notify_leave(&self, node: &MemberInfo) {
        if node.state == MemberState::Dead {
            self.0.send_modify(|d| {
                d.insert(node.name.clone());
            });
        }
    }
}

struct Node {
    ml: Memberlist,
    deaths: watch::Receiver<HashSet<String>>,
}

fn addr(i: usize) -> SocketAddr {
    format!("10.0.0.{}:7946", i + 1).parse().unwrap()
}

/// Starts `n` nodes at 10.0.0.1… and joins each to the first.
async fn cluster(net: &MemoryNetwork, n: usize) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..n {
        let (tx, deaths) = watch::channel(HashSet::new());
        let opts = Options::new(format!("n{i}"), addr(i), common::fast_config())
            .with_seed(i as u64)
            .with_event_delegate(Arc::new(Deaths(tx)));
        let transport = net.transport(addr(i)).unwrap();
        let ml = Memberlist::create_with_transport(opts, transport)
            .await
            .unwrap();
        if i > 0 {
            ml.join(&[addr(0).to_string()]).await.unwrap();
        }
        nodes.push(Node { ml, deaths });
    }
    for node in &nodes {
        await_alive(&node.ml, n).await;
    }
    nodes
}

fn alive(ms: &[MemberInfo]) -> usize {
    ms.iter().filter(|m| m.state == MemberState::Alive).count()
}

/// Awaits `ml` seeing exactly `n` members alive.
async fn await_alive(ml: &Memberlist, n: usize) {
    let mut w = ml.watch_members();
    tokio::time::timeout(WAIT, w.wait_for(|ms| alive(ms) == n))
        .await
        .unwrap_or_else(|_| panic!("{} never saw {n} alive: {:?}", ml.name(), ml.members()))
        .unwrap();
}

/// Awaits `node` having seen each of `names` declared dead.
async fn await_deaths(node: &mut Node, names: &[String]) {
    let r = tokio::time::timeout(
        WAIT,
        node.deaths
            .wait_for(|d| names.iter().all(|name| d.contains(name))),
    )
    .await;
    assert!(
        matches!(r, Ok(Ok(_))),
        "{} did not see {names:?} die: {:?}",
        node.ml.name(),
        node.ml.members()
    );
}

async fn shutdown_all(nodes: &[Node]) {
    for n in nodes {
        n.ml.shutdown().await;
    }
}

/// A partition {n0, n1} | {n2, n3, n4}: each side declares the other dead;
/// once the network heals, reconnection (on by default) brings all five
/// back without anyone rejoining.
#[tokio::test(start_paused = true)]
async fn a_partition_is_detected_and_heals() {
    let net = MemoryNetwork::with_seed(1);
    let mut nodes = cluster(&net, 5).await;
    let (left, right): (Vec<_>, Vec<_>) = (0..5).partition(|&i| i < 2);
    let addrs = |side: &[usize]| side.iter().map(|&i| addr(i)).collect::<Vec<_>>();
    let names = |side: &[usize]| side.iter().map(|i| format!("n{i}")).collect::<Vec<_>>();
    net.partition(&addrs(&left), &addrs(&right));
    let cut_at = tokio::time::Instant::now();

    for &i in &left {
        await_deaths(&mut nodes[i], &names(&right)).await;
    }
    for &i in &right {
        await_deaths(&mut nodes[i], &names(&left)).await;
    }
    for &i in &left {
        assert_eq!(nodes[i].ml.num_members(), 2);
    }
    for &i in &right {
        assert_eq!(nodes[i].ml.num_members(), 3);
    }
    // Virtual seconds: the suspicion timeouts of the fast config.
    let detected = cut_at.elapsed();
    assert!(detected < Duration::from_secs(30), "{detected:?}");

    net.heal();
    let healed_at = tokio::time::Instant::now();
    for n in &nodes {
        await_alive(&n.ml, 5).await;
    }
    // Within a few reconnect intervals (30 s).
    let rejoined = healed_at.elapsed();
    assert!(rejoined < Duration::from_secs(120), "{rejoined:?}");
    shutdown_all(&nodes).await;
}

/// 20 % of datagrams lost on every link: the cluster still forms, and for
/// five minutes nobody is declared dead (probes fall back to indirect
/// probes and to TCP, and Lifeguard lets suspects refute).
#[tokio::test(start_paused = true)]
async fn lossy_links_cause_no_false_deaths() {
    let net = MemoryNetwork::with_seed(2);
    net.set_default_loss(0.2);
    let nodes = cluster(&net, 5).await;
    tokio::time::sleep(Duration::from_secs(300)).await;
    let (mut sent, mut received) = (0, 0);
    for n in &nodes {
        assert!(
            n.deaths.borrow().is_empty(),
            "{} saw {:?} die",
            n.ml.name(),
            n.deaths.borrow()
        );
        assert_eq!(alive(&n.ml.members()), 5, "{}", n.ml.name());
        let s = n.ml.stats().core;
        sent += s.packets_sent;
        received += s.packets_received;
    }
    // The loss was real: about a fifth of the datagrams never arrived.
    let lost = 1.0 - received as f64 / sent as f64;
    assert!((0.15..0.25).contains(&lost), "{lost} of {sent} lost");
    shutdown_all(&nodes).await;
}

/// Streams to an address nobody has are refused at once; to a cut one
/// they time out after the TCP timeout; both reach the caller as typed
/// failures, as over TCP.
#[tokio::test(start_paused = true)]
async fn streams_to_unknown_or_cut_addresses_fail_typed() {
    let net = MemoryNetwork::new();
    let nodes = cluster(&net, 2).await;
    let a = &nodes[0].ml;
    let nobody = addr(9);
    match a.join(&[nobody.to_string()]).await {
        Err(Error::JoinFailed { failures }) => match &failures[..] {
            [(_, JoinError::PushPull(PushPullError::Stream(StreamFailure::Io(kind))))] => {
                assert_eq!(*kind, std::io::ErrorKind::ConnectionRefused)
            }
            other => panic!("a refused connection expected: {other:?}"),
        },
        other => panic!("a join failure expected: {other:?}"),
    }

    net.block(addr(1), addr(0));
    let started = tokio::time::Instant::now();
    match a.send_reliable(addr(1), b"x").await {
        Err(Error::SendFailed {
            reason: StreamFailure::Timeout,
            ..
        }) => {}
        other => panic!("a timeout expected: {other:?}"),
    }
    assert_eq!(started.elapsed(), a.config().tcp_timeout);
    net.heal();
    a.send_reliable(addr(1), b"x").await.expect("healed");

    // A node that shut down gives its address back.
    nodes[1].ml.shutdown().await;
    assert!(matches!(
        a.send_reliable(addr(1), b"x").await,
        Err(Error::SendFailed {
            reason: StreamFailure::Io(std::io::ErrorKind::ConnectionRefused),
            ..
        })
    ));
    assert!(net.transport(addr(1)).is_ok());
    a.shutdown().await;
}
