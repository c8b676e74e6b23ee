//! The memberlist wire format: message bodies, packets and streams.

pub mod messages;

pub use messages::*;
