//! # headcount-sim
//!
//! A deterministic simulator for `headcount`: many real
//! [`headcount_proto::Node`]s on a virtual network with a virtual clock.
//! Every packet and stream goes through the real encoder and decoder. The
//! same seed gives the same run, byte for byte, on any machine.
//!
//! - [`net`]: latency, loss and (asymmetric) partitions;
//! - [`engine`]: the event heap, node faults (crash, restart, leave, CPU
//!   starvation) and the shared [`engine::drain`] helper;
//! - [`experiments`]: `detection`, `dissemination`, `lifeguard`, `scale`;
//! - [`models`]: analytic expectations to set beside the measurements;
//! - [`report`]: the `docs/simulation.md` generator and its SVG plots;
//! - [`tune`]: the model behind `headcount tune` and its verification.

#![forbid(unsafe_code)]

pub mod engine;
pub mod experiments;
pub mod models;
pub mod net;
pub mod report;
pub mod tune;

pub use engine::{Action, Kind, Record, Sim, Status};
pub use net::{Cut, Network, Partition, Profile};
