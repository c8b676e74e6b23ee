//! The library as a Go memberlist user expects it: `members()` lists the
//! live members, `events()` is a `Stream` that starts with the current
//! members and says when it lost events, and a broadcast delegate gets the
//! cluster size its queue needs. Nodes on an in-memory network under
//! paused (virtual) time; every wait awaits an event, a watch or a
//! channel, with a timeout.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use headcount::headcount_proto::broadcast::retransmit_limit;
use headcount::{
    Broadcast, BroadcastContext, BroadcastDelegate, Config, Event, EventDelegate, Events, Lagged,
    MemberInfo, MemberState, Memberlist, MemoryNetwork, MessageDelegate, Options,
    TransmitLimitedQueue,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;

/// In virtual time, waiting costs nothing.
const CONVERGE: Duration = Duration::from_secs(20);
const DETECT: Duration = Duration::from_secs(30);

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// The network of every test in this file; each node gets its own port.
static NETWORK: LazyLock<MemoryNetwork> = LazyLock::new(MemoryNetwork::new);

async fn start(opts: Options) -> Memberlist {
    let name = opts.name.clone();
    let transport = NETWORK
        .transport(opts.bind_addr)
        .unwrap_or_else(|e| panic!("binding {name}: {e}"));
    Memberlist::create_with_transport(opts, transport)
        .await
        .unwrap_or_else(|e| panic!("creating {name}: {e}"))
}

/// Waits until `ml` sees `n` members alive.
async fn wait_alive(ml: &Memberlist, n: usize) {
    let mut watch = ml.watch_members();
    let r = tokio::time::timeout(
        CONVERGE,
        watch.wait_for(|ms| ms.iter().filter(|m| m.state == MemberState::Alive).count() == n),
    )
    .await;
    assert!(
        matches!(r, Ok(Ok(_))),
        "{} does not see {n} alive: {:?}",
        ml.name(),
        ml.members_all()
    );
}

/// The next item of `events`, within the convergence timeout.
async fn next(events: &mut Events) -> Option<Result<Event, Lagged>> {
    tokio::time::timeout(CONVERGE, events.next())
        .await
        .expect("an event in time")
}

/// Reads `events` until a join of `name`, and returns the membership
/// events read before it.
async fn until_join(events: &mut Events, name: &str) -> Vec<Event> {
    let mut before = Vec::new();
    loop {
        match next(events).await {
            Some(Ok(Event::Join(m))) if m.name == name => return before,
            Some(Ok(e @ (Event::Join(_) | Event::Leave(_) | Event::Update(_)))) => before.push(e),
            Some(Ok(_)) => {}
            Some(Err(lagged)) => panic!("{lagged}"),
            None => panic!("the stream ended before {name} joined"),
        }
    }
}

fn names(ms: &[MemberInfo]) -> HashSet<String> {
    ms.iter().map(|m| m.name.clone()).collect()
}

#[tokio::test(start_paused = true)]
async fn members_lists_the_live_ones_and_members_all_the_dead_too() {
    let config = common::fast_config();
    let a = start(Options::new("live-a", loopback(), config.clone())).await;
    let b = start(Options::new("live-b", loopback(), config.clone())).await;
    let c = start(Options::new("live-c", loopback(), config)).await;
    for ml in [&b, &c] {
        ml.join(&[a.advertise_addr().to_string()]).await.unwrap();
    }
    wait_alive(&a, 3).await;
    assert_eq!(a.members().len(), 3);
    assert_eq!(a.num_members(), 3);

    c.shutdown().await;
    let mut watch = a.watch_members();
    let all = tokio::time::timeout(
        DETECT,
        watch.wait_for_all(|ms| {
            ms.iter()
                .any(|m| m.name == "live-c" && m.state == MemberState::Dead)
        }),
    )
    .await
    .expect("c declared dead")
    .unwrap();
    assert_eq!(all.len(), 3);

    // Go's Members(): alive and suspect only, as many as NumMembers().
    let live = a.members();
    assert_eq!(names(&live), names(&[a.local_node(), b.local_node()]));
    assert_eq!(live.len(), a.num_members());
    assert!(live.iter().all(|m| !m.state.is_dead_or_left()), "{live:?}");
    // Every state until reaped.
    let everyone = a.members_all();
    assert_eq!(
        everyone
            .iter()
            .find(|m| m.name == "live-c")
            .map(|m| m.state),
        Some(MemberState::Dead),
        "{everyone:?}"
    );
    assert_eq!(everyone.len(), 3);
    assert_eq!(a.member("live-c").map(|m| m.state), Some(MemberState::Dead));
    // The watch reads the same way.
    assert_eq!(names(&watch.members()), names(&live));
    assert_eq!(watch.members_all().len(), 3);
    a.shutdown().await;
    b.shutdown().await;
}

/// Records the joins its node's event delegate is told about.
struct Joins(mpsc::UnboundedSender<String>);

impl EventDelegate for Joins {
    fn notify_join(&self, node: &MemberInfo) {
        let _ = self.0.send(node.name.clone());
    }
}

#[tokio::test(start_paused = true)]
async fn every_stream_starts_with_the_local_join_and_the_current_members() {
    let config = common::fast_config();
    let (joins_tx, mut joins) = mpsc::unbounded_channel();
    let a = start(
        Options::new("snap-a", loopback(), config.clone())
            .with_event_delegate(Arc::new(Joins(joins_tx))),
    )
    .await;
    // Made at once, likely before the driver handed out a's own join:
    // that join is told once, first.
    let mut early = a.events();
    match next(&mut early).await {
        Some(Ok(Event::Join(m))) => assert_eq!(m.name, "snap-a"),
        other => panic!("expected snap-a's join first, got {other:?}"),
    }
    // Go's EventDelegate sees the local node join at start too.
    let first = tokio::time::timeout(CONVERGE, joins.recv()).await.unwrap();
    assert_eq!(first.as_deref(), Some("snap-a"));

    let b = start(Options::new("snap-b", loopback(), config.clone())).await;
    b.join(&[a.advertise_addr().to_string()]).await.unwrap();
    wait_alive(&a, 2).await;
    // No second join of a's own between the snapshot and b.
    let between = until_join(&mut early, "snap-b").await;
    assert!(between.is_empty(), "{between:?}");

    // A stream made after the join still sees a first, then b.
    let mut late = a.events();
    let mut snapshot = Vec::new();
    for _ in 0..a.num_members() {
        match next(&mut late).await {
            Some(Ok(Event::Join(m))) => snapshot.push(m),
            other => panic!("expected the member snapshot, got {other:?}"),
        }
    }
    assert_eq!(snapshot[0].name, "snap-a");
    assert_eq!(names(&snapshot), names(&a.members()));

    // Then the live stream, without repeating anyone.
    let c = start(Options::new("snap-c", loopback(), config)).await;
    c.join(&[a.advertise_addr().to_string()]).await.unwrap();
    for events in [&mut early, &mut late] {
        let between = until_join(events, "snap-c").await;
        assert!(between.is_empty(), "{between:?}");
    }

    // The stream ends when the node stops; one made later holds just the
    // snapshot.
    a.shutdown().await;
    let rest: Vec<_> = tokio::time::timeout(CONVERGE, late.collect::<Vec<_>>())
        .await
        .expect("the stream ends at shutdown");
    assert!(rest.iter().all(Result::is_ok), "{rest:?}");
    let after: Vec<_> = a.events().collect().await;
    assert_eq!(after.len(), a.num_members());
    b.shutdown().await;
    c.shutdown().await;
}

/// Tells the test how many user messages its node has handled.
struct Counted(watch::Sender<usize>);

impl MessageDelegate for Counted {
    fn notify_msg(&self, _msg: &[u8]) {
        self.0.send_modify(|n| *n += 1);
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_reader_is_told_how_many_events_it_missed() {
    let config = common::fast_config();
    let (handled_tx, mut handled) = watch::channel(0);
    let mut opts = Options::new("lag-a", loopback(), config.clone())
        .with_message_delegate(Arc::new(Counted(handled_tx)));
    opts.event_capacity = 2;
    let a = start(opts).await;
    let b = start(Options::new("lag-b", loopback(), config)).await;
    let mut events = a.events();
    match next(&mut events).await {
        Some(Ok(Event::Join(m))) => assert_eq!(m.name, "lag-a"),
        other => panic!("{other:?}"),
    }
    // Five messages while nobody reads: the delegate is told each one
    // after the stream was.
    const SENT: usize = 5;
    for i in 0..SENT {
        b.send_reliable(a.advertise_addr(), format!("m{i}").as_bytes())
            .await
            .unwrap();
    }
    tokio::time::timeout(CONVERGE, handled.wait_for(|n| *n == SENT))
        .await
        .expect("a handles every message")
        .unwrap();

    let missed = match next(&mut events).await {
        Some(Err(Lagged(n))) => n,
        other => panic!("expected a lag first, got {other:?}"),
    };
    assert!(missed > 0);
    // Then it goes on with the newest ones, in order.
    let mut got = Vec::new();
    while got.last().map(String::as_str) != Some("m4") {
        match next(&mut events).await {
            Some(Ok(Event::UserMessage(m))) => got.push(String::from_utf8(m).unwrap()),
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    let expected: Vec<String> = (SENT - got.len()..SENT).map(|i| format!("m{i}")).collect();
    assert_eq!(got, expected);
    assert!(missed as usize + got.len() >= SENT, "{missed} + {got:?}");
    a.shutdown().await;
    b.shutdown().await;
}

/// Go's user broadcast pattern (as Serf uses it): a `TransmitLimitedQueue`
/// served from the broadcast delegate, and every message received queued
/// again once, so it spreads like memberlist's own gossip.
struct Gossiper {
    name: String,
    queue: Mutex<TransmitLimitedQueue>,
    seen: Mutex<HashSet<Vec<u8>>>,
    /// How often the queue handed out each message.
    handed_out: Mutex<HashMap<Vec<u8>, usize>>,
    /// Cluster sizes the node passed while messages were queued.
    sizes: Mutex<HashSet<usize>>,
    /// The queue's length.
    queued: watch::Sender<usize>,
    received: mpsc::UnboundedSender<(String, Vec<u8>)>,
}

impl Gossiper {
    fn publish(&self, msg: Vec<u8>) {
        if !self.seen.lock().unwrap().insert(msg.clone()) {
            return;
        }
        let mut q = self.queue.lock().unwrap();
        q.queue(Broadcast::keyed(
            String::from_utf8_lossy(&msg).into_owned(),
            msg,
        ));
        self.queued.send_replace(q.len());
    }
}

impl BroadcastDelegate for Gossiper {
    fn get_broadcasts(&self, ctx: &BroadcastContext) -> Vec<Vec<u8>> {
        let mut q = self.queue.lock().unwrap();
        if q.is_empty() {
            return Vec::new();
        }
        self.sizes.lock().unwrap().insert(ctx.num_nodes);
        let msgs = q.get_broadcasts_for(ctx);
        let mut handed = self.handed_out.lock().unwrap();
        for m in &msgs {
            *handed.entry(m.clone()).or_default() += 1;
        }
        self.queued.send_replace(q.len());
        msgs
    }
}

impl MessageDelegate for Gossiper {
    fn notify_msg(&self, msg: &[u8]) {
        let _ = self.received.send((self.name.clone(), msg.to_vec()));
        self.publish(msg.to_vec());
    }
}

#[tokio::test(start_paused = true)]
async fn user_broadcasts_reach_everyone_within_the_transmit_limit() {
    const N: usize = 5;
    let mut config: Config = common::fast_config();
    // Enough sends per node that a relay reaches every node, whatever
    // the random choice of gossip targets.
    config.retransmit_mult = 6;
    let (received_tx, mut received) = mpsc::unbounded_channel();
    let mut nodes = Vec::new();
    let mut gossipers = Vec::new();
    for i in 0..N {
        let name = format!("bcast-{i}");
        let g = Arc::new(Gossiper {
            name: name.clone(),
            queue: Mutex::new(TransmitLimitedQueue::new()),
            seen: Mutex::default(),
            handed_out: Mutex::default(),
            sizes: Mutex::default(),
            queued: watch::channel(0).0,
            received: received_tx.clone(),
        });
        let ml = start(
            Options::new(&name, loopback(), config.clone())
                .with_broadcast_delegate(g.clone())
                .with_message_delegate(g.clone()),
        )
        .await;
        if i > 0 {
            ml.join(&[nodes_addr(&nodes)]).await.unwrap();
        }
        nodes.push(ml);
        gossipers.push(g);
    }
    for ml in &nodes {
        wait_alive(ml, N).await;
    }

    let msgs: Vec<Vec<u8>> = (0..3).map(|i| format!("news-{i}").into_bytes()).collect();
    for m in &msgs {
        gossipers[0].publish(m.clone());
    }
    // Every other node receives every message.
    let mut missing: HashSet<(String, Vec<u8>)> = nodes[1..]
        .iter()
        .flat_map(|ml| msgs.iter().map(|m| (ml.name().to_string(), m.clone())))
        .collect();
    while !missing.is_empty() {
        let got = tokio::time::timeout(CONVERGE, received.recv())
            .await
            .unwrap_or_else(|_| panic!("never delivered: {missing:?}"))
            .unwrap();
        missing.remove(&got);
    }
    // Each queue hands each message out exactly as often as memberlist's
    // retransmit limit for the cluster size it was given says.
    let limit = retransmit_limit(config.retransmit_mult, N);
    for g in &gossipers {
        let mut queued = g.queued.subscribe();
        tokio::time::timeout(CONVERGE, queued.wait_for(|n| *n == 0))
            .await
            .expect("the queue drains")
            .unwrap();
        let handed = g.handed_out.lock().unwrap().clone();
        for m in &msgs {
            assert_eq!(handed.get(m), Some(&limit), "{}: {handed:?}", g.name);
        }
        assert_eq!(*g.sizes.lock().unwrap(), HashSet::from([N]), "{}", g.name);
    }
    for ml in &nodes {
        ml.shutdown().await;
    }
}

fn nodes_addr(nodes: &[Memberlist]) -> String {
    nodes[0].advertise_addr().to_string()
}
