//! wrd-capture: PipeWire screencast streams turned into frames, behind a
//! stable C ABI.
//!
//! Layout:
//! - [`capture`]: the connection and its PipeWire thread.
//! - [`stream`]: one consumer stream per node: config, events, stats, pull.
//! - `pwstream`: the PipeWire side of a stream (callbacks, frame building).
//! - [`negotiation`]: SPA format pods offered and parsed.
//! - [`buffer`]: mapping and validating what the producer sends (untrusted).
//! - [`frame`]: the frames handed to callers.
//! - [`dmabuf`] and [`import`]: DMA-BUF frames and their GPU import.
//! - [`convert`]: pixel conversion.
//! - [`ffi`]: the C layer.

pub mod buffer;
pub mod capture;
pub mod convert;
pub mod dmabuf;
pub mod drm;
pub mod error;
pub mod ffi;
pub mod format;
pub mod frame;
pub mod import;
pub mod negotiation;
mod pwstream;
pub mod stream;
pub mod sync;

pub use capture::{Capture, CaptureOptions, Features, NodeInfo, ReconnectPolicy, Versions};
pub use error::{wrd_status, Error, Result};
pub use format::{PixelFormat, PlaneLayout};
pub use frame::{Cursor, Frame, Region};
pub use pwstream::monotonic_ns;
pub use stream::{Event, QueuePolicy, Stats, Stream, StreamConfig, StreamState};
