#![no_main]
//! cargo-fuzz target: see `fuzz/bodies.rs` (`converters`).

use libfuzzer_sys::fuzz_target;

#[path = "../bodies.rs"]
mod bodies;

fuzz_target!(|data: &[u8]| bodies::converters(data));
