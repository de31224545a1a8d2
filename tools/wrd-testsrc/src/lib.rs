//! Test producer library: the checkable picture ([`pattern`]), the private
//! PipeWire sandbox and the producer process fixtures ([`sandbox`]).

pub mod pattern;
pub mod sandbox;
