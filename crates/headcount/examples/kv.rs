//! kv: a small replicated key/value store on top of headcount.
//!
//! - Writes spread as user broadcasts: each node serves a
//!   [`TransmitLimitedQueue`] from its [`BroadcastDelegate`], sized by the
//!   [`BroadcastContext`] the node hands it. Broadcasts are keyed by the
//!   store's key, so a newer write to a key replaces an older one still
//!   waiting in the queue.
//! - Concurrent writes are settled last-writer-wins by a stamp: a Lamport
//!   clock, then the writer's name to break ties. Every node ends up with
//!   the same winner whatever order the writes arrive in.
//! - Anti-entropy by push/pull: [`StateDelegate::local_state`] sends the
//!   whole map (JSON) and [`StateDelegate::merge_remote_state`] merges a
//!   peer's. A node that joins late gets everything in its join.
//!
//! The run starts three nodes in one process, writes on each (two of them
//! to the same key at once), waits until the three agree, then starts a
//! fourth that receives the whole map in its join, writes once more and
//! waits until all four maps are equal. It exits 0 then, and fails with a
//! message after 30 seconds otherwise.
//!
//! ```sh
//! cargo run -p headcount --example kv
//! ```
//!
//! Each write must fit in one gossip packet (about 1 KB with its key);
//! a real store would send larger values over [`Memberlist::send_reliable`].

use std::collections::BTreeMap;
use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use headcount::{
    Broadcast, BroadcastContext, BroadcastDelegate, Config, Memberlist, MessageDelegate, Options,
    StateDelegate, TransmitLimitedQueue,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

/// How long the run may take before it gives up.
const TIMEOUT: Duration = Duration::from_secs(30);
/// How long a node spends telling the others it leaves.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(5);

/// When a value was written. Stamps order writes: the higher wins. The
/// derived order compares `version` first, then `node`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Stamp {
    /// The writer's Lamport clock: above every version it had seen.
    version: u64,
    /// The writer, to order writes made with the same version.
    node: String,
}

/// A value and when it was written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    value: String,
    stamp: Stamp,
}

/// One write, as broadcast.
#[derive(Serialize, Deserialize)]
struct Write {
    key: String,
    entry: Entry,
}

/// One node's replica, and its delegates.
struct Store {
    name: String,
    state: Mutex<Replica>,
    /// Told of every change to any store of this process, so the run can
    /// await agreement instead of sleeping.
    changes: Arc<watch::Sender<u64>>,
}

#[derive(Default)]
struct Replica {
    map: BTreeMap<String, Entry>,
    /// The Lamport clock: the highest version written or seen.
    clock: u64,
    /// Writes waiting to be gossiped.
    queue: TransmitLimitedQueue,
    /// Keys this replica learned from broadcasts and from push/pull.
    learned_by_gossip: usize,
    learned_by_state: usize,
}

impl Replica {
    /// Keeps `entry` if it is newer than what we hold for `key`; returns
    /// whether it was.
    fn apply(&mut self, key: &str, entry: &Entry) -> bool {
        self.clock = self.clock.max(entry.stamp.version);
        match self.map.get(key) {
            Some(held) if held.stamp >= entry.stamp => false,
            _ => {
                self.map.insert(key.to_string(), entry.clone());
                true
            }
        }
    }

    fn gossip(&mut self, key: &str, entry: &Entry) {
        let write = Write {
            key: key.to_string(),
            entry: entry.clone(),
        };
        let payload = serde_json::to_vec(&write).expect("a write serializes");
        // Keyed: a queued older write to the same key is dropped.
        self.queue.queue(Broadcast::keyed(key, payload));
    }
}

impl Store {
    fn new(name: &str, changes: Arc<watch::Sender<u64>>) -> Arc<Store> {
        Arc::new(Store {
            name: name.to_string(),
            state: Mutex::default(),
            changes,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Replica> {
        self.state
            .lock()
            .expect("no panic while holding the replica")
    }

    fn set(&self, key: &str, value: &str) {
        let mut replica = self.lock();
        replica.clock += 1;
        let entry = Entry {
            value: value.to_string(),
            stamp: Stamp {
                version: replica.clock,
                node: self.name.clone(),
            },
        };
        replica.map.insert(key.to_string(), entry.clone());
        replica.gossip(key, &entry);
        drop(replica);
        self.changed();
    }

    fn snapshot(&self) -> BTreeMap<String, Entry> {
        self.lock().map.clone()
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }
}

impl BroadcastDelegate for Store {
    fn get_broadcasts(&self, ctx: &BroadcastContext) -> Vec<Vec<u8>> {
        self.lock().queue.get_broadcasts_for(ctx)
    }
}

impl MessageDelegate for Store {
    fn notify_msg(&self, msg: &[u8]) {
        let write: Write = match serde_json::from_slice(msg) {
            Ok(w) => w,
            Err(e) => return eprintln!("[{}] ignoring a message: {e}", self.name),
        };
        let mut replica = self.lock();
        if replica.apply(&write.key, &write.entry) {
            replica.learned_by_gossip += 1;
            // Gossip what was news to us, as Serf does: the origin's queue
            // sends each write only a few times, and passing it on spreads
            // it epidemically. Writes we already had are not passed on,
            // which ends the spreading.
            replica.gossip(&write.key, &write.entry);
            drop(replica);
            self.changed();
        }
    }
}

impl StateDelegate for Store {
    fn local_state(&self, _join: bool) -> Vec<u8> {
        serde_json::to_vec(&self.lock().map).expect("the map serializes")
    }

    fn merge_remote_state(&self, buf: &[u8], _join: bool) {
        let remote: BTreeMap<String, Entry> = match serde_json::from_slice(buf) {
            Ok(m) => m,
            Err(e) => return eprintln!("[{}] ignoring a peer's state: {e}", self.name),
        };
        let mut replica = self.lock();
        let mut news = 0;
        for (key, entry) in &remote {
            if replica.apply(key, entry) {
                news += 1;
            }
        }
        replica.learned_by_state += news;
        drop(replica);
        if news > 0 {
            self.changed();
        }
    }
}

/// A node and its replica.
struct Node {
    ml: Memberlist,
    store: Arc<Store>,
}

async fn start(name: &str, changes: &Arc<watch::Sender<u64>>) -> Result<Node, Box<dyn Error>> {
    let store = Store::new(name, changes.clone());
    let addr: SocketAddr = "127.0.0.1:0".parse()?;
    let opts = Options::new(name, addr, Config::local())
        .with_broadcast_delegate(store.clone())
        .with_message_delegate(store.clone())
        .with_state_delegate(store.clone());
    let ml = Memberlist::create(opts).await?;
    Ok(Node { ml, store })
}

/// Waits until every node holds the same map, and returns it.
async fn agree(
    nodes: &[&Node],
    changes: &mut watch::Receiver<u64>,
) -> Result<BTreeMap<String, Entry>, Box<dyn Error>> {
    loop {
        // Marked seen before reading: a change after the read wakes us.
        changes.borrow_and_update();
        let first = nodes[0].store.snapshot();
        if nodes[1..].iter().all(|n| n.store.snapshot() == first) {
            return Ok(first);
        }
        changes.changed().await?;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match tokio::time::timeout(TIMEOUT, run()).await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("kv: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("kv: the replicas did not agree within {TIMEOUT:?}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    let changes = Arc::new(watch::channel(0).0);
    let mut changed = changes.subscribe();
    let a = start("node-a", &changes).await?;
    let b = start("node-b", &changes).await?;
    let c = start("node-c", &changes).await?;
    let seed = a.ml.advertise_addr().to_string();
    for n in [&b, &c] {
        n.ml.join(&[&seed]).await?;
    }
    // Broadcasts only reach the members a node knows.
    for n in [&a, &b, &c] {
        let mut members = n.ml.watch_members();
        members.wait_for(|ms| ms.len() == 3).await?;
    }

    // Two writes to "color" at once. node-b's wins everywhere: had it not
    // seen node-a's yet, both have version 1 and "node-b" orders after
    // "node-a"; had it seen it, its version is higher.
    a.store.set("color", "red");
    b.store.set("color", "blue");
    c.store.set("shape", "circle");
    // Only the last of these is still queued: each replaced the one before.
    for i in 1..=3 {
        a.store.set("count", &i.to_string());
    }
    let started = Instant::now();
    let map = agree(&[&a, &b, &c], &mut changed).await?;
    println!("3 nodes agree after {:?}:", started.elapsed());
    print_map(&map);
    check(&map, "color", "blue")?;
    check(&map, "count", "3")?;

    // A late node: the push/pull of its join brings the whole map.
    let d = start("node-d", &changes).await?;
    d.ml.join(&[&seed]).await?;
    let joined = d.store.snapshot();
    if joined != map {
        return Err(format!("node-d's join brought {joined:?}, not {map:?}").into());
    }
    println!(
        "node-d got all {} keys in its join (push/pull)",
        d.store.lock().learned_by_state
    );

    // A write after the join reaches everyone, node-d included.
    c.store.set("color", "green");
    let map = agree(&[&a, &b, &c, &d], &mut changed).await?;
    println!("4 nodes agree:");
    print_map(&map);
    check(&map, "color", "green")?;
    for n in [&a, &b, &c, &d] {
        let r = n.store.lock();
        println!(
            "{}: news by gossip: {}, by push/pull: {}",
            n.store.name, r.learned_by_gossip, r.learned_by_state
        );
    }

    for n in [&a, &b, &c, &d] {
        n.ml.leave(LEAVE_TIMEOUT).await?;
        n.ml.shutdown().await;
    }
    Ok(())
}

fn print_map(map: &BTreeMap<String, Entry>) {
    for (key, e) in map {
        println!(
            "  {key} = {} (version {}, by {})",
            e.value, e.stamp.version, e.stamp.node
        );
    }
}

fn check(map: &BTreeMap<String, Entry>, key: &str, want: &str) -> Result<(), String> {
    match map.get(key) {
        Some(e) if e.value == want => Ok(()),
        other => Err(format!("{key} is {other:?}, expected {want:?}")),
    }
}
