//! The agent's event log behind `GET /v1/events`: one subscription to the
//! node's events, numbered and kept in a bounded ring, so that a client
//! that reconnects with `Last-Event-ID` gets exactly what it missed.
//!
//! Why a log of its own rather than one library subscription per client:
//! the library numbers nothing, and a per-client stream cannot say where a
//! new connection should resume. Here every event gets an id
//! `EPOCH-SEQ` (the epoch is random per agent run, so an id from before a
//! restart is recognised as foreign), and a reconnecting client replays the
//! ring after its id. A client whose id has left the ring, or is foreign,
//! is told `resync` and gets a fresh snapshot instead.
//!
//! The log also keeps the member set as of its newest entry, so a new
//! client's snapshot and the entries after it fit together with no gap and
//! no duplicate (the snapshot's last event carries the id it stands for).
//!
//! Bounds: at most [`MAX_ENTRIES`] entries and [`MAX_BYTES`] of rendered
//! JSON; the oldest go first. The node never waits for the log or for a
//! client: a client that falls behind the ring is told `lagged`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use headcount::{Event, MemberInfo, Memberlist};
use tokio::sync::watch;
use tokio_stream::StreamExt;

/// Most entries kept for clients that reconnect or fall behind.
pub const MAX_ENTRIES: usize = 1024;

/// Most bytes of rendered event data kept (user messages can be large).
pub const MAX_BYTES: usize = 4 << 20;

/// The name of the entry that marks a gap in the log itself.
pub const RESYNC: &str = "resync";

/// One numbered event, rendered once for every client.
#[derive(Debug)]
pub struct Entry {
    /// Its sequence number in this agent run (from 1).
    pub seq: u64,
    /// The SSE event name (`join`, `suspect`, `user`, ...).
    pub name: &'static str,
    /// The JSON data.
    pub data: String,
}

/// Where a client starts reading.
#[derive(Debug)]
pub enum Start {
    /// Replay entries after `seq`, then follow.
    After(u64),
    /// The client's id cannot be resumed (why is given): send `resync`,
    /// then the snapshot, then follow.
    Resync(&'static str),
    /// A new client: the snapshot, then follow.
    Fresh,
}

/// The member set as a client's first events: `join` for each alive or
/// suspect member (the local node first, then by name), standing for the
/// log at `seq`.
#[derive(Debug)]
pub struct Snapshot {
    /// The entries, members sorted by name.
    pub events: Vec<(&'static str, String)>,
    /// The sequence number the snapshot stands for.
    pub seq: u64,
}

/// What a client gets when it asks for more.
#[derive(Debug)]
pub enum Pull {
    /// Entries after the client's cursor, oldest first (not empty).
    Entries(Vec<Arc<Entry>>),
    /// Entries the client had not read were dropped (how many).
    Lagged(u64),
    /// Nothing new yet.
    Idle,
    /// The node stopped and the client has read everything.
    Closed,
}

struct Inner {
    ring: VecDeque<Arc<Entry>>,
    bytes: usize,
    /// The sequence number of the newest entry (0: none yet).
    head: u64,
    /// Members as of `head` (alive and suspect), by name: bounded by the
    /// node's own table.
    members: BTreeMap<String, MemberInfo>,
    closed: bool,
}

/// The agent's numbered event log. Cheap to share (`Arc`).
pub struct EventLog {
    epoch: String,
    /// The local node's name: first in every snapshot.
    local: String,
    inner: Mutex<Inner>,
    /// The newest sequence number; dropped when the log closes.
    head_tx: watch::Sender<u64>,
}

/// Renders an event for SSE: its name and JSON data (`None` for kinds the
/// stream does not carry).
pub type Render = fn(&Event) -> Option<(&'static str, serde_json::Value)>;

impl EventLog {
    /// Starts the log: subscribes to `ml`'s events on a task, which ends
    /// when the node stops.
    pub fn start(ml: &Memberlist, render: Render) -> Arc<Self> {
        let log = Arc::new(EventLog::new(ml.name()));
        let task_log = Arc::clone(&log);
        let ml = ml.clone();
        tokio::spawn(async move {
            let log = task_log;
            loop {
                let mut events = ml.events();
                // A fresh subscription starts with the member set: the
                // log's own view is rebuilt from it.
                log.lock().members.clear();
                let mut lagged = false;
                while let Some(item) = events.next().await {
                    match item {
                        Ok(e) => log.push(&e, render),
                        Err(_) => {
                            // The log fell behind the node's ring (only
                            // under a flood on a starved runtime): tell
                            // clients, and start over from a snapshot.
                            log.push_lagged();
                            lagged = true;
                            break;
                        }
                    }
                }
                if !lagged || ml.is_shutdown() {
                    break;
                }
            }
            log.close();
        });
        log
    }

    fn new(local: &str) -> Self {
        let mut epoch = [0u8; 4];
        // Without randomness an id from before a restart may look
        // resumable; the seq check below still refuses most of those.
        let _ = getrandom::getrandom(&mut epoch);
        EventLog {
            epoch: epoch.iter().map(|b| format!("{b:02x}")).collect(),
            local: local.to_string(),
            inner: Mutex::new(Inner {
                ring: VecDeque::new(),
                bytes: 0,
                head: 0,
                members: BTreeMap::new(),
                closed: false,
            }),
            head_tx: watch::channel(0).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Holds no invariant a panic could break midway.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The SSE id of sequence number `seq`.
    pub fn id(&self, seq: u64) -> String {
        format!("{}-{seq}", self.epoch)
    }

    /// Follows the newest sequence number; `changed()` fails once the log
    /// is closed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.head_tx.subscribe()
    }

    fn push(&self, e: &Event, render: Render) {
        let Some((name, data)) = render(e) else {
            return;
        };
        let mut inner = self.lock();
        match e {
            Event::Join(m) | Event::Update(m) => {
                inner.members.insert(m.name.clone(), m.clone());
            }
            // Dead or left: out of the snapshot, as out of the library's.
            Event::Leave(m) => {
                inner.members.remove(&m.name);
            }
            Event::Suspect { member, .. } => {
                inner.members.insert(member.name.clone(), member.clone());
            }
            _ => {}
        }
        inner.append(name, data.to_string());
        let head = inner.head;
        drop(inner);
        self.head_tx.send_replace(head);
    }

    /// The log missed events: clients reading past this entry are told
    /// `resync`, and the member snapshot that the next subscription
    /// starts with follows as `join` entries.
    fn push_lagged(&self) {
        let mut inner = self.lock();
        inner.append(RESYNC, String::new());
        let head = inner.head;
        drop(inner);
        self.head_tx.send_replace(head);
    }

    fn close(&self) {
        self.lock().closed = true;
        // Wakes every follower, which then finds `Pull::Closed`.
        self.head_tx.send_modify(|_| {});
    }

    /// Whether the node stopped and no more entries will come.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Where a client that sent `last_event_id` (if any) starts.
    pub fn start_for(&self, last_event_id: Option<&str>) -> Start {
        let Some(id) = last_event_id.map(str::trim).filter(|s| !s.is_empty()) else {
            return Start::Fresh;
        };
        let Some((epoch, seq)) = id.split_once('-') else {
            return Start::Resync("the Last-Event-ID is not one of this agent's ids");
        };
        let Ok(seq) = seq.parse::<u64>() else {
            return Start::Resync("the Last-Event-ID is not one of this agent's ids");
        };
        if epoch != self.epoch {
            return Start::Resync("the agent restarted since that id");
        }
        let inner = self.lock();
        if seq > inner.head {
            return Start::Resync("the Last-Event-ID is newer than the log");
        }
        let oldest = inner.ring.front().map_or(inner.head + 1, |e| e.seq);
        if seq + 1 < oldest {
            return Start::Resync("the events after that id are no longer kept");
        }
        Start::After(seq)
    }

    /// The member set as of the newest entry, rendered with `member_json`.
    pub fn snapshot(&self, member_json: fn(&MemberInfo) -> serde_json::Value) -> Snapshot {
        let inner = self.lock();
        let local = inner.members.get(&self.local);
        let others = inner.members.values().filter(|m| m.name != self.local);
        let events = local
            .into_iter()
            .chain(others)
            .map(|m| ("join", member_json(m).to_string()))
            .collect();
        Snapshot {
            events,
            seq: inner.head,
        }
    }

    /// Up to `max` entries after `cursor`.
    pub fn next_after(&self, cursor: u64, max: usize) -> Pull {
        let inner = self.lock();
        let oldest = inner.ring.front().map_or(inner.head + 1, |e| e.seq);
        if cursor + 1 < oldest {
            return Pull::Lagged(oldest - cursor - 1);
        }
        if cursor >= inner.head {
            return if inner.closed {
                Pull::Closed
            } else {
                Pull::Idle
            };
        }
        let skip = (cursor + 1 - oldest) as usize;
        Pull::Entries(inner.ring.iter().skip(skip).take(max).cloned().collect())
    }
}

impl Inner {
    fn append(&mut self, name: &'static str, data: String) {
        self.head += 1;
        self.bytes += data.len();
        self.ring.push_back(Arc::new(Entry {
            seq: self.head,
            name,
            data,
        }));
        while self.ring.len() > MAX_ENTRIES || (self.bytes > MAX_BYTES && self.ring.len() > 1) {
            if let Some(old) = self.ring.pop_front() {
                self.bytes -= old.data.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(e: &Event) -> Option<(&'static str, serde_json::Value)> {
        match e {
            Event::UserMessage(m) => Some(("user", String::from_utf8_lossy(m).into())),
            _ => None,
        }
    }

    fn user(log: &EventLog, text: &str) {
        log.push(&Event::UserMessage(text.as_bytes().to_vec()), render);
    }

    fn seqs(p: Pull) -> Vec<u64> {
        match p {
            Pull::Entries(v) => v.iter().map(|e| e.seq).collect(),
            other => panic!("expected entries, got {other:?}"),
        }
    }

    #[test]
    fn resumes_after_an_id_it_still_holds() {
        let log = EventLog::new("local");
        for i in 0..5 {
            user(&log, &format!("m{i}"));
        }
        let id = log.id(2);
        let Start::After(2) = log.start_for(Some(&id)) else {
            panic!("{:?}", log.start_for(Some(&id)));
        };
        assert_eq!(seqs(log.next_after(2, 64)), vec![3, 4, 5]);
        assert_eq!(seqs(log.next_after(2, 2)), vec![3, 4]);
        assert!(matches!(log.next_after(5, 64), Pull::Idle));
        // The newest id resumes with nothing to replay.
        assert!(matches!(log.start_for(Some(&log.id(5))), Start::After(5)));
        log.close();
        assert!(matches!(log.next_after(5, 64), Pull::Closed));
        assert_eq!(seqs(log.next_after(4, 64)), vec![5]);
    }

    #[test]
    fn foreign_stale_or_garbage_ids_resync() {
        let log = EventLog::new("local");
        assert!(matches!(log.start_for(None), Start::Fresh));
        assert!(matches!(log.start_for(Some("  ")), Start::Fresh));
        for i in 0..(MAX_ENTRIES + 10) {
            user(&log, &format!("m{i}"));
        }
        let other_epoch = if log.epoch == "00000000" {
            "00000001"
        } else {
            "00000000"
        };
        for bad in [
            "garbage".to_string(),
            format!("{}-x", log.epoch),
            format!("{other_epoch}-5"),
            log.id(MAX_ENTRIES as u64 + 11),
            // Entries 1..=10 are gone: the client missed some.
            log.id(5),
            format!("{}-{}", log.epoch, u64::MAX),
        ] {
            assert!(
                matches!(log.start_for(Some(&bad)), Start::Resync(_)),
                "{bad}"
            );
        }
        // The oldest kept entry is 11: an id of 10 misses nothing.
        assert!(matches!(log.start_for(Some(&log.id(10))), Start::After(10)));
    }

    #[test]
    fn the_ring_is_bounded_and_slow_readers_lag() {
        let log = EventLog::new("local");
        let big = "x".repeat(MAX_BYTES / 4 + 1);
        for _ in 0..10 {
            user(&log, &big);
        }
        let inner = log.lock();
        assert_eq!(inner.ring.len(), 3, "bytes bound");
        assert!(inner.bytes <= MAX_BYTES);
        drop(inner);
        // A reader at 2 missed 3..=7.
        match log.next_after(2, 64) {
            Pull::Lagged(missed) => assert_eq!(missed, 5),
            other => panic!("{other:?}"),
        }
        for i in 0..(2 * MAX_ENTRIES) {
            user(&log, &format!("{i}"));
        }
        assert_eq!(log.lock().ring.len(), MAX_ENTRIES, "count bound");
    }
}
