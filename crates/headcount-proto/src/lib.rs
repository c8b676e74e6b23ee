//! # headcount-proto
//!
//! Hashicorp memberlist's gossip protocol (SWIM with the Lifeguard
//! extensions) as a deterministic state machine without I/O.
//!
//! The core never touches a socket, a clock or a global random number
//! generator: the driver feeds it inputs that carry the current time
//! ([`Instant`]) and drains its outputs (packets to send, streams to dial,
//! [`Event`]s for the application, [`Completion`]s for whoever waits on a
//! join, ping, send or leave). The same code runs a real node under tokio
//! (crate `headcount`) and thousands of simulated nodes in one process
//! (crate `headcount-sim`).
//!
//! Start with [`Node`].

#![forbid(unsafe_code)]

pub mod awareness;
pub mod broadcast;
pub mod cidr;
pub mod config;
pub mod delegate;
pub mod error;
pub mod event;
mod fxhash;
pub mod inbound;
pub mod metrics;
pub mod name;
pub mod node;
pub mod state;
pub mod suspicion;
pub mod time;
pub mod timer;
pub mod wire;

pub use broadcast::TransmitLimitedQueue;
pub use cidr::Cidr;
pub use config::{Config, ConfigError};
pub use delegate::{BroadcastContext, Hooks, NoHooks};
pub use error::{MergeError, PushPullError, Veto};
pub use event::{
    BroadcastId, Completion, Dial, DialKind, Event, JoinId, Output, PingId, StreamFailure, StreamId,
};
pub use inbound::InboundQueue;
pub use name::Name;
pub use node::{LocalNode, Node, NodeBuilder, SendError, Stats};
pub use state::{Member, MemberInfo, MemberState};
pub use time::Instant;
pub use wire::security::{Keyring, KeyringError, NonceSource};
pub use wire::StreamMessage;

/// The README's examples, compiled and run as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
