//! `headcount tune`: recommended configurations, predicted by closed forms
//! ([`model`]) and confirmed by the simulator ([`verify`]).
//!
//! The model lives here, beside the simulator, so that the CLI (which asks
//! for predictions and verifications) and the simulator's own document
//! generator (which plots predictions against runs) share one copy.

pub mod docs;
pub mod model;
pub mod search;
pub mod sim10k;
pub mod verify;

pub use model::{predict, Names, Prediction, Situation, Stalls};
