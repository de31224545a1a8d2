#![no_main]
//! cargo-fuzz target: see `fuzz/bodies.rs` (`format_param`).

use libfuzzer_sys::fuzz_target;

#[path = "../bodies.rs"]
mod bodies;

fuzz_target!(|data: &[u8]| bodies::format_param(data));
