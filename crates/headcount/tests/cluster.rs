//! Clusters of nodes on an in-memory network under paused (virtual) time,
//! and a few on real sockets on 127.0.0.1 with ephemeral ports where the
//! sockets are what is tested. Every wait awaits a member snapshot or an
//! event with a timeout.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use headcount::{
    AddressError, Config, Error, EventDelegate, JoinError, MemberInfo, MemberState, Memberlist,
    MemoryNetwork, MessageDelegate, NodeMetaDelegate, Options, PushPullError, StateDelegate,
    StreamFailure,
};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

/// Generous for real sockets, where the machine running the tests may be
/// busy; in virtual time, waiting costs nothing.
const CONVERGE: Duration = Duration::from_secs(20);
const DETECT: Duration = Duration::from_secs(30);

fn config() -> Config {
    common::fast_config()
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// What a test's nodes run on.
#[derive(Clone, Copy)]
enum Net {
    /// [`NETWORK`]: membership logic through the shell, in virtual time.
    Memory,
    /// UDP and TCP on 127.0.0.1.
    Sockets,
}

/// The in-memory network of every test in this file: each node gets a
/// port of its own there, so the tests do not meet.
static NETWORK: LazyLock<MemoryNetwork> = LazyLock::new(MemoryNetwork::new);

async fn start(name: &str, config: Config) -> Memberlist {
    start_with(Options::new(name, loopback(), config)).await
}

async fn start_with(opts: Options) -> Memberlist {
    start_on(Net::Memory, opts).await
}

async fn start_on(net: Net, opts: Options) -> Memberlist {
    let name = opts.name.clone();
    match net {
        Net::Memory => {
            let transport = NETWORK
                .transport(opts.bind_addr)
                .unwrap_or_else(|e| panic!("binding {name}: {e}"));
            Memberlist::create_with_transport(opts, transport).await
        }
        Net::Sockets => Memberlist::create(opts).await,
    }
    .unwrap_or_else(|e| panic!("creating {name}: {e}"))
}

/// Starts `n` nodes called `prefix-0` … on the in-memory network and joins
/// each to the first.
async fn cluster(prefix: &str, n: usize, config: Config) -> Vec<Memberlist> {
    cluster_on(Net::Memory, prefix, n, config).await
}

/// Like [`cluster`], on `net`.
async fn cluster_on(net: Net, prefix: &str, n: usize, config: Config) -> Vec<Memberlist> {
    let mut nodes = Vec::new();
    for i in 0..n {
        let opts = Options::new(format!("{prefix}-{i}"), loopback(), config.clone());
        let ml = start_on(net, opts).await;
        if i > 0 {
            let seed = nodes_addr(&nodes, 0);
            let joined = ml
                .join(&[seed])
                .await
                .unwrap_or_else(|e| panic!("{prefix}-{i} joining: {e}"));
            assert_eq!(joined, 1);
        }
        nodes.push(ml);
    }
    for ml in &nodes {
        wait_members(
            ml,
            CONVERGE,
            &format!("{} sees all {n} alive", ml.name()),
            |ms| ms.iter().filter(|m| m.state == MemberState::Alive).count() == n,
        )
        .await;
    }
    nodes
}

fn nodes_addr(nodes: &[Memberlist], i: usize) -> String {
    nodes[i].advertise_addr().to_string()
}

fn state_of(ms: &[MemberInfo], name: &str) -> Option<MemberState> {
    ms.iter().find(|m| m.name == name).map(|m| m.state)
}

/// Awaits a member snapshot of `ml` (every member, dead and left ones
/// included) that satisfies `cond`.
async fn wait_members(
    ml: &Memberlist,
    timeout: Duration,
    what: &str,
    mut cond: impl FnMut(&[MemberInfo]) -> bool,
) {
    let mut rx = ml.watch_members();
    let r = tokio::time::timeout(timeout, rx.wait_for_all(|ms| cond(ms))).await;
    match r {
        Ok(Ok(_)) => {}
        Ok(Err(_)) => panic!("{what}: the node stopped"),
        Err(_) => {
            let now: Vec<String> = ml
                .members_all()
                .iter()
                .map(|m| format!("{}@{}={}", m.name, m.addr, m.state))
                .collect();
            panic!(
                "{what}: not within {timeout:?}; members: {now:?}; stats: {:?}",
                ml.stats()
            );
        }
    }
}

async fn shutdown_all(nodes: &[Memberlist]) {
    for ml in nodes {
        ml.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn eight_nodes_converge() {
    let nodes = cluster("conv", 8, config()).await;
    for ml in &nodes {
        assert_eq!(ml.num_members(), 8);
        assert_eq!(ml.local_node().name, ml.name());
        assert_eq!(ml.local_node().state, MemberState::Alive);
    }
    shutdown_all(&nodes).await;
}

#[tokio::test(start_paused = true)]
async fn killed_node_is_declared_dead_by_all() {
    let nodes = cluster("kill", 4, config()).await;
    let victim = nodes[3].name().to_string();
    nodes[3].shutdown().await;
    for ml in &nodes[..3] {
        wait_members(
            ml,
            DETECT,
            &format!("{} sees {victim} dead", ml.name()),
            |ms| state_of(ms, &victim) == Some(MemberState::Dead),
        )
        .await;
        assert_eq!(ml.num_members(), 3);
    }
    shutdown_all(&nodes[..3]).await;
}

#[tokio::test(start_paused = true)]
async fn leave_marks_the_node_left_everywhere() {
    let nodes = cluster("leave", 3, config()).await;
    let leaver = nodes[2].name().to_string();
    nodes[2]
        .leave(Duration::from_secs(5))
        .await
        .expect("leave finishes");
    for ml in &nodes[..2] {
        wait_members(
            ml,
            CONVERGE,
            &format!("{} sees {leaver} left", ml.name()),
            |ms| state_of(ms, &leaver) == Some(MemberState::Left),
        )
        .await;
    }
    nodes[2].shutdown().await;
    // Leaving alone finishes at once: nobody to tell.
    let alone = start("leave-alone", config()).await;
    alone
        .leave(Duration::from_millis(1))
        .await
        .expect("nobody to tell");
    alone.shutdown().await;
    shutdown_all(&nodes[..2]).await;
}

struct Meta(Mutex<Vec<u8>>);

impl NodeMetaDelegate for Meta {
    fn node_meta(&self, limit: usize) -> Vec<u8> {
        let m = self.0.lock().unwrap().clone();
        assert!(m.len() <= limit);
        m
    }
}

#[tokio::test(start_paused = true)]
async fn meta_updates_propagate() {
    let meta = Arc::new(Meta(Mutex::new(b"v1".to_vec())));
    let a = start_with(
        Options::new("meta-a", loopback(), config()).with_node_meta_delegate(meta.clone()),
    )
    .await;
    let b = start("meta-b", config()).await;
    let c = start("meta-c", config()).await;
    b.join(&[a.advertise_addr().to_string()]).await.unwrap();
    c.join(&[format!("meta-a/{}", a.advertise_addr())])
        .await
        .unwrap();
    for ml in [&b, &c] {
        wait_members(ml, CONVERGE, "v1 seen", |ms| {
            ms.iter()
                .any(|m| m.name == "meta-a" && m.meta == b"v1" && m.state == MemberState::Alive)
        })
        .await;
    }
    *meta.0.lock().unwrap() = b"v2".to_vec();
    let mut events = b.events();
    a.update_node(Duration::from_secs(5))
        .await
        .expect("update_node finishes");
    assert_eq!(a.local_node().meta, b"v2");
    for ml in [&b, &c] {
        wait_members(ml, CONVERGE, &format!("{} sees v2", ml.name()), |ms| {
            ms.iter().any(|m| m.name == "meta-a" && m.meta == b"v2")
        })
        .await;
    }
    // An Update event reached b.
    let got = tokio::time::timeout(CONVERGE, async {
        loop {
            match events.next().await {
                Some(Ok(headcount::Event::Update(m))) if m.name == "meta-a" => return m,
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("event stream: {e}"),
                None => panic!("event stream ended"),
            }
        }
    })
    .await
    .expect("update event");
    assert_eq!(got.meta, b"v2");
    // Explicit metadata too.
    c.update_meta(b"c-meta".to_vec(), Duration::from_secs(5))
        .await
        .unwrap();
    wait_members(&a, CONVERGE, "a sees c-meta", |ms| {
        ms.iter().any(|m| m.name == "meta-c" && m.meta == b"c-meta")
    })
    .await;
    shutdown_all(&[a, b, c]).await;
}

struct Inbox(mpsc::UnboundedSender<Vec<u8>>);

impl MessageDelegate for Inbox {
    fn notify_msg(&self, msg: &[u8]) {
        let _ = self.0.send(msg.to_vec());
    }
}

async fn expect_msg(
    rx: &mut mpsc::UnboundedReceiver<Vec<u8>>,
    want: &[u8],
    timeout: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(m)) if m == want => return true,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return false,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn user_messages_arrive() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let a = start("msg-a", config()).await;
    let b = start_with(
        Options::new("msg-b", loopback(), config()).with_message_delegate(Arc::new(Inbox(tx))),
    )
    .await;
    a.join(&[b.advertise_addr().to_string()]).await.unwrap();
    wait_members(&a, CONVERGE, "a knows b", |ms| {
        state_of(ms, "msg-b") == Some(MemberState::Alive)
    })
    .await;

    a.send_reliable("msg-b", b"hello over tcp")
        .await
        .expect("reliable send");
    assert!(
        expect_msg(&mut rx, b"hello over tcp", CONVERGE).await,
        "reliable message lost"
    );

    // Best effort is UDP: try a few times before calling it lost.
    let mut arrived = false;
    for _ in 0..5 {
        a.send_best_effort("msg-b", b"hello over udp")
            .await
            .expect("best-effort send");
        if expect_msg(&mut rx, b"hello over udp", Duration::from_secs(1)).await {
            arrived = true;
            break;
        }
    }
    assert!(arrived, "best-effort message lost five times");

    a.send_to_address(b.advertise_addr(), b"by address")
        .await
        .unwrap();
    assert!(expect_msg(&mut rx, b"by address", Duration::from_secs(5)).await);

    let big = vec![b'x'; 4000];
    match a.send_best_effort("msg-b", &big).await {
        Err(Error::TooLarge { size, .. }) => assert_eq!(size, 4000),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    match a.send_reliable("nobody", b"x").await {
        Err(Error::UnknownNode(n)) => assert_eq!(n, "nobody"),
        other => panic!("expected UnknownNode, got {other:?}"),
    }

    let rtt = a
        .ping("msg-b", b.advertise_addr())
        .await
        .expect("ping answered");
    assert!(rtt < Duration::from_secs(1));
    shutdown_all(&[a, b]).await;
}

#[tokio::test(start_paused = true)]
async fn restarted_node_with_a_new_port_is_reclaimed() {
    let mut cfg = config();
    cfg.dead_node_reclaim_time = Duration::from_millis(300);
    let nodes = cluster("reclaim", 3, cfg.clone()).await;
    let old_addr = nodes[2].advertise_addr();
    nodes[2].shutdown().await;
    for ml in &nodes[..2] {
        wait_members(
            ml,
            DETECT,
            &format!("{} sees reclaim-2 dead", ml.name()),
            |ms| state_of(ms, "reclaim-2") == Some(MemberState::Dead),
        )
        .await;
    }
    // The name can be taken by a new address once dead for the reclaim time.
    tokio::time::sleep(cfg.dead_node_reclaim_time + Duration::from_millis(200)).await;
    let reborn = start("reclaim-2", cfg).await;
    assert_ne!(reborn.advertise_addr(), old_addr);
    reborn.join(&[nodes_addr(&nodes, 0)]).await.expect("rejoin");
    let new_addr = reborn.advertise_addr();
    for ml in &nodes[..2] {
        wait_members(
            ml,
            CONVERGE,
            &format!("{} sees reclaim-2 alive at {new_addr}", ml.name()),
            |ms| {
                ms.iter().any(|m| {
                    m.name == "reclaim-2" && m.state == MemberState::Alive && m.addr == new_addr
                })
            },
        )
        .await;
    }
    wait_members(&reborn, CONVERGE, "reborn sees all alive", |ms| {
        ms.iter().filter(|m| m.state == MemberState::Alive).count() == 3
    })
    .await;
    shutdown_all(&nodes[..2]).await;
    reborn.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_packets_are_counted_and_dropped() {
    let nodes = cluster_on(Net::Sockets, "junk", 2, config()).await;
    let target = nodes[0].advertise_addr();
    let before = nodes[0].stats().core;
    let sock = tokio::net::UdpSocket::bind(loopback()).await.unwrap();
    let garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xff; 32],
        vec![0x00],                   // a ping type byte with no body
        vec![0x00, 0x85, 0xa4],       // a ping cut short
        vec![0x07, 0x05, 0x00, 0x10], // a compound whose lengths lie
        vec![0x0c, 1, 2, 3],          // a CRC header with a bad checksum
        vec![0x09, 0x81, 0xa4, b'A'], // compressed, truncated
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
    ];
    for g in &garbage {
        sock.send_to(g, target).await.unwrap();
    }
    // Counters are republished after each wakeup; wait for all packets.
    let want = before.packets_received + garbage.len() as u64;
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let s = nodes[0].stats().core;
        if s.packets_received >= want {
            let bad = |s: &headcount::CoreStats| {
                s.packets_dropped + s.messages_malformed + s.messages_unknown
            };
            assert!(
                bad(&s) >= bad(&before) + garbage.len() as u64 - 1,
                "garbage not counted: before {before:?}, after {s:?}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "packets not received: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A garbage TCP stream is dropped too.
    {
        use tokio::io::AsyncWriteExt;
        let mut s = tokio::net::TcpStream::connect(target).await.unwrap();
        s.write_all(&[0xff; 64]).await.unwrap();
        let _ = s.shutdown().await;
    }
    // The node still works.
    let rtt = nodes[1]
        .ping(nodes[0].name(), target)
        .await
        .expect("still answers pings");
    assert!(rtt < Duration::from_secs(1));
    let late = start_on(
        Net::Sockets,
        Options::new("junk-late", loopback(), config()),
    )
    .await;
    late.join(&[target.to_string()])
        .await
        .expect("still accepts joins");
    wait_members(&nodes[1], CONVERGE, "junk-1 sees junk-late", |ms| {
        state_of(ms, "junk-late") == Some(MemberState::Alive)
    })
    .await;
    assert_eq!(nodes[0].num_members(), 3);
    late.shutdown().await;
    shutdown_all(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_errors_say_what_went_wrong() {
    let ml = start_on(Net::Sockets, Options::new("lonely", loopback(), config())).await;
    // A port nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let err = ml.join(&[closed.to_string()]).await.unwrap_err();
    let text = err.to_string();
    match &err {
        Error::JoinFailed { failures } => match &failures[..] {
            [(addr, JoinError::PushPull(PushPullError::Stream(StreamFailure::Io(kind))))] => {
                assert_eq!(*addr, closed.to_string());
                assert_eq!(*kind, std::io::ErrorKind::ConnectionRefused);
            }
            other => panic!("one refused connection expected: {other:?}"),
        },
        other => panic!("a join failure expected: {other:?}"),
    }
    assert!(
        text.starts_with("join failed: no address answered ("),
        "{text}"
    );
    assert!(
        text.contains(&closed.to_string()) && text.contains("connection refused"),
        "{text}"
    );

    let err = ml
        .join(&["/127.0.0.1:1", "127.0.0.1:notaport"])
        .await
        .unwrap_err();
    let Error::JoinFailed { failures } = &err else {
        panic!("a join failure expected: {err}");
    };
    assert_eq!(
        failures,
        &[
            (
                "/127.0.0.1:1".to_string(),
                JoinError::Address(AddressError::EmptyNodeName)
            ),
            (
                "127.0.0.1:notaport".to_string(),
                JoinError::Address(AddressError::BadPort("notaport".into()))
            ),
        ],
        "{err}"
    );

    // A reliable send to the closed port fails the same way.
    match ml.send_reliable(closed, b"x").await {
        Err(Error::SendFailed {
            to,
            reason: StreamFailure::Io(std::io::ErrorKind::ConnectionRefused),
        }) => assert_eq!(to, closed),
        other => panic!("a refused send expected: {other:?}"),
    }
    let empty: [&str; 0] = [];
    assert!(ml.join(&empty).await.is_err());

    ml.shutdown().await;
    ml.shutdown().await; // idempotent
    assert!(ml.is_shutdown());
    assert!(matches!(
        ml.send_best_effort("lonely", b"x").await,
        Err(Error::Shutdown)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_port_binds_udp_and_tcp() {
    // Find a free port, then bind both protocols to it explicitly.
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let Ok(ml) = Memberlist::create(Options::new("fixed", addr, config())).await else {
        // Someone took the port in between; nothing to learn here.
        return;
    };
    assert_eq!(ml.local_addr(), addr);
    assert!(tokio::net::TcpStream::connect(addr).await.is_ok());
    let again = Memberlist::create(Options::new("fixed-2", addr, config())).await;
    assert!(matches!(again, Err(Error::Bind { .. })), "{again:?}");
    ml.shutdown().await;
}

/// An event delegate that reads its own node's members on every join.
#[derive(Default)]
struct ReadsOnJoin {
    ml: std::sync::OnceLock<Memberlist>,
    /// For each join: the name, and whether `members()` listed it.
    seen: Mutex<Vec<(String, bool)>>,
}

impl EventDelegate for ReadsOnJoin {
    fn notify_join(&self, node: &MemberInfo) {
        if let Some(ml) = self.ml.get() {
            let listed = ml.members().iter().any(|m| m.name == node.name);
            let by_name = ml.member(&node.name).is_some();
            self.seen
                .lock()
                .unwrap()
                .push((node.name.clone(), listed && by_name));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn members_are_read_through_the_core_and_watched() {
    let a = start("watch-a", config()).await;
    let delegate = Arc::new(ReadsOnJoin::default());
    let b = start_with(
        Options::new("watch-b", loopback(), config()).with_event_delegate(delegate.clone()),
    )
    .await;
    delegate.ml.set(b.clone()).unwrap();
    assert_eq!(
        b.member("watch-b").map(|m| m.addr),
        Some(b.advertise_addr())
    );
    assert!(b.member("watch-a").is_none());
    assert_eq!(b.num_members(), 1);

    let mut watch = b.watch_members();
    b.join(&[a.advertise_addr().to_string()]).await.unwrap();
    // The join changed the membership since the watch was made.
    tokio::time::timeout(CONVERGE, watch.changed())
        .await
        .expect("told of the join")
        .unwrap();
    let ms = tokio::time::timeout(
        CONVERGE,
        watch.wait_for(|ms| state_of(ms, "watch-a") == Some(MemberState::Alive)),
    )
    .await
    .expect("sees watch-a")
    .unwrap();
    assert_eq!(ms.len(), 2);
    assert_eq!(
        b.member("watch-a").map(|m| m.addr),
        Some(a.advertise_addr())
    );
    assert_eq!(b.num_members(), 2);
    // An event delegate runs outside the lock and sees the change it is
    // told about. (Whether it saw its own node's join depends on when the
    // handle was given to it.)
    let seen = delegate.seen.lock().unwrap().clone();
    assert!(seen.contains(&("watch-a".to_string(), true)), "{seen:?}");
    assert!(seen.iter().all(|(_, listed)| *listed), "{seen:?}");

    b.shutdown().await;
    let closed = tokio::time::timeout(CONVERGE, async {
        loop {
            if let Err(e) = watch.changed().await {
                return e;
            }
        }
    })
    .await
    .expect("the watch closes at shutdown");
    assert_eq!(closed, Error::Shutdown);
    // Still readable after shutdown.
    assert_eq!(watch.members().len(), 2);
    assert!(watch.wait_for(|ms| ms.len() == 2).await.is_ok());
    assert_eq!(
        watch.wait_for(|ms| ms.len() == 3).await,
        Err(Error::Shutdown)
    );
    a.shutdown().await;
}

/// A state delegate that reads its own node, which the core calls with its
/// state locked.
#[derive(Default)]
struct ReadsInLocalState {
    ml: std::sync::OnceLock<Memberlist>,
}

impl StateDelegate for ReadsInLocalState {
    fn local_state(&self, _join: bool) -> Vec<u8> {
        if let Some(ml) = self.ml.get() {
            let _ = ml.num_members();
        }
        Vec::new()
    }
}

#[tokio::test(start_paused = true)]
async fn reading_from_a_locked_delegate_panics_instead_of_deadlocking() {
    let a = start("locked-a", config()).await;
    let delegate = Arc::new(ReadsInLocalState::default());
    let b = start_with(
        Options::new("locked-b", loopback(), config()).with_state_delegate(delegate.clone()),
    )
    .await;
    delegate.ml.set(b.clone()).unwrap();
    // The join's push/pull asks for the local state: b's driver panics.
    let r = tokio::time::timeout(CONVERGE, b.join(&[a.advertise_addr().to_string()]))
        .await
        .expect("no deadlock");
    assert_eq!(r, Err(Error::Shutdown));
    // The handle still reads the (poisoned) core.
    assert_eq!(b.local_node().name, "locked-b");
    b.shutdown().await;
    a.shutdown().await;
}

/// The shell's event is the core's, defined once and re-exported: each
/// converts to the other with no code, in both directions.
#[test]
fn the_shell_event_is_the_core_event() {
    fn to_core(e: headcount::Event) -> headcount_proto::Event {
        e
    }
    fn to_shell(e: headcount_proto::Event) -> headcount::Event {
        e
    }
    let e = headcount::Event::HealthChanged(2);
    assert_eq!(to_shell(to_core(e.clone())), e);
}
