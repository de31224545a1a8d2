#![no_main]
//! cargo-fuzz target: see `fuzz/bodies.rs` (`buffer_validate`).

use libfuzzer_sys::fuzz_target;

#[path = "../bodies.rs"]
mod bodies;

fuzz_target!(|data: &[u8]| bodies::buffer_validate(data));
