//! # headcount-proto
//!
//! Hashicorp memberlist's gossip protocol (SWIM with the Lifeguard
//! extensions) as a deterministic state machine without I/O.
//!
//! The core never touches a socket, a clock or a global random number
//! generator: the driver feeds it inputs that carry the current time
//! ([`Instant`]) and drains its outputs (packets to send, streams to dial,
//! events). The same code runs a real node under tokio (crate `headcount`)
//! and thousands of simulated nodes in one process (crate `headcount-sim`).

#![forbid(unsafe_code)]

pub mod awareness;
pub mod broadcast;
pub mod config;
pub mod suspicion;
pub mod time;
pub mod timer;
pub mod wire;

pub use config::{Config, ConfigError};
pub use time::Instant;
