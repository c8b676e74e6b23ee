//! The headcount command.
fn main() {}
