//! Test producer library: the checkable picture, the sandbox fixture.
