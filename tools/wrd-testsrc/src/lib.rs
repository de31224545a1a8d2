//! Test bench for wrd-capture: the checkable picture ([`pattern`]), a private
//! PipeWire ([`Sandbox`]) and the `wrd-testsrc` producer process
//! ([`Producer`]).

pub mod dmabuf;
pub mod pattern;
pub mod sandbox;
pub mod spa;
pub mod sync_timeline;

pub use sandbox::{NodeInfo, Producer, Sandbox};
