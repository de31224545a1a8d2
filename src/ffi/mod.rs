#![allow(non_camel_case_types)]
// extern "C" functions cannot be `unsafe fn` to their C callers: the
// pointer contract is in each function's header comment, and every pointer
// is checked for NULL before it is used.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

//! The C ABI: a thin layer that checks and translates arguments and calls the
//! safe Rust API. Every function body runs inside [`ffi_panic_boundary!`].

#[macro_use]
pub mod panic;
pub mod capture;
pub mod convert;
pub mod drm;
pub mod frame;
pub mod handles;
pub mod import;
pub mod status;
pub mod stream;
