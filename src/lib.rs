//! wrd-capture: PipeWire screencast streams turned into frames, behind a
//! stable C ABI.
//!
//! Layout:
//! - [`capture`]: the connection and its PipeWire thread.
//! - [`stream`]: one consumer stream per node, its events and stats.
//! - [`negotiation`]: SPA format pods offered and parsed.
//! - [`buffer`]: mapping and validating what the producer sends (untrusted).
//! - [`frame`]: the frames handed to callers.
//! - [`dmabuf`] and [`import`]: DMA-BUF frames and their GPU import.
//! - [`convert`]: pixel conversion.
//! - [`ffi`]: the C layer.

pub mod convert;
pub mod dmabuf;
pub mod error;
pub mod ffi;
pub mod format;
pub mod import;

pub use error::{wrd_status, Error, Result};
pub use format::{PixelFormat, PlaneLayout};
