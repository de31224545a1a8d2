//! The C ABI: a thin layer that checks and translates arguments and calls the
//! safe Rust API. Every function body runs inside [`ffi_panic_boundary!`].

#[macro_use]
pub mod panic;
pub mod convert;
pub mod status;
