//! The panic boundary: every `extern "C"` body and every PipeWire callback
//! trampoline of ours runs inside [`ffi_panic_boundary!`], so no unwind ever
//! crosses into C (the pattern of rustls-ffi's `panic.rs`).

use crate::error::wrd_status;

/// The value an FFI function returns when its body panicked.
pub trait PanicOrDefault {
    fn value() -> Self;
}

impl PanicOrDefault for wrd_status {
    fn value() -> Self {
        wrd_status::WRD_ERR_PANIC
    }
}

impl PanicOrDefault for () {
    fn value() -> Self {}
}

impl PanicOrDefault for bool {
    fn value() -> Self {
        false
    }
}

impl PanicOrDefault for i32 {
    fn value() -> Self {
        -1
    }
}

impl PanicOrDefault for u32 {
    fn value() -> Self {
        0
    }
}

impl PanicOrDefault for u64 {
    fn value() -> Self {
        0
    }
}

impl PanicOrDefault for usize {
    fn value() -> Self {
        0
    }
}

impl<T> PanicOrDefault for *const T {
    fn value() -> Self {
        std::ptr::null()
    }
}

impl<T> PanicOrDefault for *mut T {
    fn value() -> Self {
        std::ptr::null_mut()
    }
}

/// Run `$body`; if it panics, return the type's [`PanicOrDefault`] value.
#[macro_export]
#[doc(hidden)]
macro_rules! ffi_panic_boundary {
    ($($body:tt)*) => {{
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| { $($body)* })) {
            Ok(v) => v,
            Err(_) => $crate::ffi::panic::PanicOrDefault::value(),
        }
    }};
}

/// Run `$body` on a PipeWire callback; a panic is swallowed (after logging)
/// so that it never unwinds through libpipewire's C frames.
#[macro_export]
#[doc(hidden)]
macro_rules! callback_panic_boundary {
    ($what:expr, $($body:tt)*) => {{
        if ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| { $($body)* })).is_err() {
            ::std::eprintln!("wrd-capture: panic caught in {}", $what);
        }
    }};
}
