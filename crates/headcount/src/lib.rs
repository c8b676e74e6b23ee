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
//! Membership reads follow Go memberlist: [`Memberlist::members`] lists
//! the members alive or suspect and agrees with
//! [`Memberlist::num_members`]; [`Memberlist::members_all`] adds the dead
//! and left ones until they are reaped.
//!
//! Logs go through [`tracing`]: everything a node logs is inside a `node`
//! span whose `name` field is the node's name, and state changes use Go
//! memberlist's wording (`marking node-2 as failed, suspect timeout
//! reached (0 peer confirmations)`). Per-packet detail is at debug level.

#![forbid(unsafe_code)]

mod advertise;
mod clock;
pub mod delegate;
mod driver;
mod error;
mod events;
mod memberlist;
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
