//! cargo-fuzz target `packet_decode`; the body is shared with the regression tests
//! (crates/headcount-proto/tests/fuzz_harness).
#![no_main]

#[path = "../../crates/headcount-proto/tests/fuzz_harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::packet_decode(data));
