//! # headcount
//!
//! Cluster membership and failure detection by gossip (SWIM with the
//! Lifeguard extensions), wire-compatible with hashicorp/memberlist.
//!
//! This crate runs the protocol core of [`headcount_proto`] on tokio: one
//! driver task owns the core and does its I/O (UDP and TCP on the same
//! port by default, or any [`Transport`], such as the in-memory
//! [`MemoryNetwork`] for tests); [`Memberlist`] is a cheap, cloneable
//! handle to it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), headcount::Error> {
//! use headcount::{Config, Event, Memberlist, Options};
//! use tokio_stream::StreamExt;
//!
//! let opts = Options::new("node-1", "127.0.0.1:7946".parse().unwrap(), Config::lan());
//! let ml = Memberlist::create(opts).await?;
//! ml.join(&["127.0.0.1:7947"]).await?;
//! // Alive and suspect members, as Go's Members().
//! for m in ml.members() {
//!     println!("{} {} {}", m.name, m.addr, m.state);
//! }
//! // The current members as joins (this node first), then every change.
//! let mut events = ml.events();
//! tokio::spawn(async move {
//!     while let Some(e) = events.next().await {
//!         match e {
//!             Ok(Event::Join(m)) => println!("join {}", m.name),
//!             Ok(Event::Leave(m)) => println!("{} {}", m.name, m.state),
//!             Ok(_) => {}
//!             // A slow reader is told how many events it missed.
//!             Err(lagged) => eprintln!("{lagged}"),
//!         }
//!     }
//! });
//! ml.leave(std::time::Duration::from_secs(5)).await?;
//! ml.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! ## Guide
//!
//! **Create and join.** [`Options::new`] names the node, the address to
//! bind (UDP and TCP on one port; `0.0.0.0` announces the host's private
//! address, as Go does) and a [`Config`] preset ([`Config::lan`],
//! [`Config::wan`], [`Config::local`]) tuned with `with_*` setters.
//! [`Memberlist::join`] takes `host:port`, a bare host (the bind port is
//! used) or a DNS name (every A and AAAA record; cargo feature `dns`, on
//! by default: without it a name is refused with
//! [`AddressError::NoDns`]) and returns how many addresses answered;
//! failures are typed ([`Error::JoinFailed`] with a [`JoinError`] per
//! address).
//!
//! **Members and events.** [`Memberlist::members`] lists the members alive
//! or suspect, as Go's `Members()`, and agrees with
//! [`Memberlist::num_members`]; [`Memberlist::members_all`] adds the dead
//! and left ones until they are reaped. [`Memberlist::events`] is a
//! [`Stream`](futures_core::Stream) that starts with the current members
//! as [`Event::Join`]s (this node first) and then yields every change; a
//! reader that falls more than [`Options::event_capacity`] behind gets a
//! [`Lagged`] item saying how many events it missed.
//! [`Memberlist::watch_members`] awaits a condition on the membership.
//!
//! **Delegates.** Go's delegate interfaces are traits in [`delegate`]
//! (metadata, messages, broadcasts, push/pull state, events, conflicts,
//! merge and alive vetoes, pings), installed with
//! [`Options::with_delegates`] or one `Options::with_*_delegate` each.
//! They run on the node's task, between protocol steps: they must be
//! quick, and must not call back into the [`Memberlist`] (everything they
//! need is passed to them).
//!
//! **User messages and broadcasts.** [`Memberlist::send_best_effort`] (one
//! datagram) and [`Memberlist::send_reliable`] (a stream) reach one node;
//! messages arrive as [`Event::UserMessage`] and at the
//! [`MessageDelegate`]. To gossip to everyone, serve a
//! [`TransmitLimitedQueue`] from a [`BroadcastDelegate`]: it is handed a
//! [`BroadcastContext`] with the cluster size, so each message is sent as
//! often as memberlist's retransmit limit says.
//!
//! ```no_run
//! use std::sync::Mutex;
//! use headcount::{Broadcast, BroadcastContext, BroadcastDelegate, TransmitLimitedQueue};
//!
//! struct Gossip(Mutex<TransmitLimitedQueue>);
//!
//! impl BroadcastDelegate for Gossip {
//!     fn get_broadcasts(&self, ctx: &BroadcastContext) -> Vec<Vec<u8>> {
//!         self.0.lock().unwrap().get_broadcasts_for(ctx)
//!     }
//! }
//!
//! impl Gossip {
//!     /// A newer value for `key` replaces the older one still queued.
//!     fn set(&self, key: &str, value: &[u8]) {
//!         self.0.lock().unwrap().queue(Broadcast::keyed(key, value.to_vec()));
//!     }
//! }
//! ```
//!
//! **Encryption.** [`Config::with_keyring`] with a [`Keyring`] (16, 24 or
//! 32 byte AES keys, the first primary) encrypts every packet and stream as
//! Go memberlist does (`headcount keygen` makes a key); keys rotate at run
//! time with [`Memberlist::add_key`], [`Memberlist::use_key`] and
//! [`Memberlist::remove_key`]. [`Config::with_label`] and
//! [`Config::with_cidrs_allowed`] map to Go's `Label` and `CIDRsAllowed`.
//!
//! **Transports.** [`Memberlist::create`] uses [`TokioTransport`] (UDP and
//! TCP on one port). [`Memberlist::create_with_transport`] takes any
//! [`Transport`]; [`MemoryNetwork`] runs many nodes in one process with
//! per-link loss, latency, one-way cuts and partitions, for application
//! tests (with `tokio::time::pause` they run in virtual time). The
//! [`transport`] module says how to write a TLS or QUIC transport.
//!
//! ```no_run
//! # async fn demo() -> Result<(), headcount::Error> {
//! use headcount::{Config, Memberlist, MemoryNetwork, Options};
//!
//! let net = MemoryNetwork::new();
//! let (a, b) = ("127.0.0.1:7001".parse().unwrap(), "127.0.0.1:7002".parse().unwrap());
//! let n1 = Memberlist::create_with_transport(
//!     Options::new("n1", a, Config::local()),
//!     net.transport(a).unwrap(),
//! )
//! .await?;
//! let n2 = Memberlist::create_with_transport(
//!     Options::new("n2", b, Config::local()),
//!     net.transport(b).unwrap(),
//! )
//! .await?;
//! n2.join(&[a.to_string()]).await?;
//! net.partition(&[a], &[b]); // each side will declare the other dead
//! net.heal(); // and reconnect brings them back
//! # let _ = n1; Ok(()) }
//! ```
//!
//! **Logs** go through [`tracing`]: everything a node logs is inside a
//! `node` span whose `name` field is the node's name, and state changes use
//! Go memberlist's wording (`marking node-2 as failed, suspect timeout
//! reached (0 peer confirmations)`). Per-packet detail is at debug level.
//!
//! **Metrics** (cargo feature `metrics`, on by default) go through the
//! [`metrics`](https://docs.rs/metrics) facade under Go memberlist's names
//! (`memberlist.msg.suspect`, `memberlist.health.score`,
//! `memberlist.probeNode`, ...), labelled with
//! [`Config::metric_labels`]. Install an exporter before
//! [`Memberlist::create`]: a node registers its metrics when it starts. The
//! names are in [`headcount_proto::metrics`]; docs/metrics.md maps each to
//! Go's.
//!
//! **Examples** in `crates/headcount/examples/`: `chat` (user messages),
//! `kv` (a replicated key/value store on broadcasts and push/pull state),
//! `discovery` (services in node metadata, updated live), `join_serf` (a
//! Rust node in a Serf cluster).

// No `unsafe` but in `transport::mmsg` (Linux `recvmmsg`/`sendmmsg`),
// which says why it needs it.
#![deny(unsafe_code)]

mod advertise;
mod clock;
pub mod delegate;
mod driver;
mod error;
mod events;
mod memberlist;
mod metrics;
mod net;
mod options;
mod resolve;
mod security;
mod shared_core;
mod target;
pub mod transport;

pub use delegate::{
    AliveDelegate, BroadcastContext, BroadcastDelegate, ConflictDelegate, Delegates, EventDelegate,
    MergeDelegate, MessageDelegate, NodeMetaDelegate, PingDelegate, StateDelegate, Veto,
};
pub use error::{AddressError, Error, JoinError, RandomError};
pub use events::{Events, Lagged};
/// Something that happened in the cluster, as seen by this node. The same
/// type as the core's [`headcount_proto::Event`], defined once there.
/// Receive them with [`Memberlist::events`]; the delegates are told as
/// well. Completions of operations (joins, pings, sends, leaves) never
/// appear here: they resolve the futures that wait for them.
pub use headcount_proto::Event;
pub use memberlist::{Memberlist, MembersWatch, Stats};
pub use options::Options;
pub use resolve::DEFAULT_PORT;
pub use security::Key;
pub use target::Target;
pub use transport::{MemoryNetwork, TokioTransport, Transport};

/// The protocol core, for those who need it directly.
pub use headcount_proto;
/// One entry of a [`TransmitLimitedQueue`].
pub use headcount_proto::broadcast::Broadcast;
/// A retransmit-limited queue for user broadcasts, with memberlist's
/// semantics; serve it from a [`BroadcastDelegate`].
pub use headcount_proto::broadcast::TransmitLimitedQueue;
/// Why a [`Cidr`] could not be parsed.
pub use headcount_proto::cidr::CidrError;
/// Largest node metadata, in bytes.
pub use headcount_proto::config::META_MAX_SIZE;
/// The protocol core's counters (part of [`Stats`]).
pub use headcount_proto::node::Stats as CoreStats;
/// A member as this node sees it.
pub use headcount_proto::state::MemberInfo;
/// The state of a member.
pub use headcount_proto::state::MemberState;
/// A block of addresses for [`Config::cidrs_allowed`].
pub use headcount_proto::Cidr;
/// The protocol configuration (Go memberlist's `Config`), with the presets
/// [`Config::lan`], [`Config::wan`] and [`Config::local`].
pub use headcount_proto::Config;
/// Why a [`Config`] is invalid.
pub use headcount_proto::ConfigError;
/// Encryption keys for [`Config::keyring`] (the first is the primary).
pub use headcount_proto::Keyring;
/// Why a keyring operation was refused.
pub use headcount_proto::KeyringError;
/// Why a remote state was not merged (part of [`PushPullError`]).
pub use headcount_proto::MergeError;
/// Why a push/pull with one address of a join failed (part of
/// [`JoinError`]).
pub use headcount_proto::PushPullError;
/// Why a stream failed: a reliable send ([`Error::SendFailed`]) or a
/// push/pull ([`PushPullError::Stream`]).
pub use headcount_proto::StreamFailure;

/// The README's examples, compiled and run as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
