//! C API: connections.

use std::ffi::{c_char, c_int, CStr, CString};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use crate::capture::{Capture, CaptureOptions};
use crate::error::wrd_status;
use crate::ffi::handles::HandleTable;

/// A connection to PipeWire with its own thread (opaque).
pub struct wrd_capture {
    _private: [u8; 0],
}

pub(crate) struct CaptureHandle {
    pub capture: Capture,
    pub library_version: CString,
    pub daemon_version: CString,
}

pub(crate) static CAPTURES: HandleTable<Arc<CaptureHandle>> = HandleTable::new();

pub(crate) fn capture_from(p: *const wrd_capture) -> Result<Arc<CaptureHandle>, wrd_status> {
    if p.is_null() {
        return Err(wrd_status::WRD_ERR_NULL_POINTER);
    }
    CAPTURES
        .get(p as usize)
        .ok_or(wrd_status::WRD_ERR_INVALID_STATE)
}

/// Options for `wrd_capture_new`. Initialise with
/// `wrd_capture_options_init`, then change what you need.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct wrd_capture_options {
    /// Set by `wrd_capture_options_init` to `sizeof(wrd_capture_options)`;
    /// lets later versions add fields.
    pub struct_size: u32,
    /// Most streams on this connection (default 8).
    pub max_streams: u32,
    /// Milliseconds a stream waits for its node before an error event
    /// `WRD_ERR_NODE_NOT_FOUND` (default 1000).
    pub node_timeout_ms: u32,
    /// Milliseconds from the node being found to a negotiated format before
    /// an error event `WRD_ERR_NEGOTIATION` (default 5000).
    pub negotiation_timeout_ms: u32,
    /// Milliseconds allowed for connecting (default 5000).
    pub connect_timeout_ms: u32,
    /// For fd < 0: the daemon's socket name or path; NULL for the default
    /// (`PIPEWIRE_REMOTE`, else `pipewire-0` in `XDG_RUNTIME_DIR`). Copied.
    pub remote: *const c_char,
    /// Non-zero: in default-daemon mode (fd -1), reconnect when the daemon
    /// goes away, with exponential backoff, and re-add the streams by node
    /// name (`WRD_EVENT_RECONNECTING`, `WRD_EVENT_RECONNECTED`); after
    /// `reconnect_max_attempts` failures in a row it gives up with a
    /// `WRD_EVENT_ERROR` (`WRD_ERR_CONNECTION_LOST`). Ignored with a portal
    /// fd, which cannot be reused: bring a new one.
    pub reconnect: u32,
    /// First delay (default 100 ms), doubled up to `reconnect_max_delay_ms`
    /// (default 2000 ms).
    pub reconnect_initial_delay_ms: u32,
    pub reconnect_max_delay_ms: u32,
    /// Default 8.
    pub reconnect_max_attempts: u32,
    /// Bytes of producer buffers the caller may hold across all streams
    /// (frames kept with `wrd_frame_ref` or queued); past it new frames are
    /// dropped and counted as `WRD_DROP_BUDGET`. 0: no budget.
    pub memory_budget: usize,
}

/// Fill `opts` with the defaults. Any thread.
/// Returns `WRD_ERR_NULL_POINTER` if `opts` is NULL.
#[no_mangle]
pub extern "C" fn wrd_capture_options_init(opts: *mut wrd_capture_options) -> wrd_status {
    ffi_panic_boundary! {
        if opts.is_null() {
            return wrd_status::WRD_ERR_NULL_POINTER;
        }
        let d = CaptureOptions::default();
        // SAFETY: `opts` is non-NULL and, per the contract, points to a
        // writable wrd_capture_options.
        unsafe {
            opts.write(wrd_capture_options {
                struct_size: std::mem::size_of::<wrd_capture_options>() as u32,
                max_streams: d.max_streams as u32,
                node_timeout_ms: d.node_timeout.as_millis() as u32,
                negotiation_timeout_ms: d.negotiation_timeout.as_millis() as u32,
                connect_timeout_ms: d.connect_timeout.as_millis() as u32,
                remote: std::ptr::null(),
                reconnect: 0,
                reconnect_initial_delay_ms: 100,
                reconnect_max_delay_ms: 2000,
                reconnect_max_attempts: 8,
                memory_budget: 0,
            });
        }
        wrd_status::WRD_OK
    }
}

fn options_from(p: *const wrd_capture_options) -> Result<CaptureOptions, wrd_status> {
    let mut o = CaptureOptions::default();
    if p.is_null() {
        return Ok(o);
    }
    // SAFETY: non-NULL; the caller passes a wrd_capture_options it
    // initialised. struct_size is read first and only fields it covers are read.
    let c = unsafe { &*p };
    if (c.struct_size as usize) < std::mem::size_of::<wrd_capture_options>() {
        return Err(wrd_status::WRD_ERR_INVALID_ARGUMENT);
    }
    if c.max_streams > 0 {
        o.max_streams = c.max_streams as usize;
    }
    if c.node_timeout_ms > 0 {
        o.node_timeout = Duration::from_millis(c.node_timeout_ms.into());
    }
    if c.negotiation_timeout_ms > 0 {
        o.negotiation_timeout = Duration::from_millis(c.negotiation_timeout_ms.into());
    }
    if c.connect_timeout_ms > 0 {
        o.connect_timeout = Duration::from_millis(c.connect_timeout_ms.into());
    }
    if c.reconnect != 0 {
        let d = crate::capture::ReconnectPolicy::default();
        let ms = |v: u32, dflt: Duration| {
            if v == 0 {
                dflt
            } else {
                Duration::from_millis(v.into())
            }
        };
        o.reconnect = Some(crate::capture::ReconnectPolicy {
            initial_delay: ms(c.reconnect_initial_delay_ms, d.initial_delay),
            max_delay: ms(c.reconnect_max_delay_ms, d.max_delay),
            max_attempts: if c.reconnect_max_attempts == 0 {
                d.max_attempts
            } else {
                c.reconnect_max_attempts
            },
        });
    }
    o.memory_budget = c.memory_budget;
    if !c.remote.is_null() {
        // SAFETY: non-NULL, NUL-terminated per the contract.
        let s = unsafe { CStr::from_ptr(c.remote) };
        o.remote = Some(
            s.to_str()
                .map_err(|_| wrd_status::WRD_ERR_INVALID_ARGUMENT)?
                .to_string(),
        );
    }
    Ok(o)
}

/// Connect to PipeWire and start the library's PipeWire thread.
///
/// `fd`: a PipeWire connection, for example from the XDG Desktop Portal's
/// `ScreenCast.OpenPipeWireRemote`; the library takes ownership of it in
/// every case (also on error, where it is closed). Pass -1 to connect to
/// the default daemon. `opts` may be NULL for the defaults.
///
/// On success `*out` receives the capture; free it with
/// `wrd_capture_destroy`. Errors: `WRD_ERR_NULL_POINTER` (out),
/// `WRD_ERR_INVALID_ARGUMENT` (opts), `WRD_ERR_CONNECT`. Any thread.
#[no_mangle]
pub extern "C" fn wrd_capture_new(
    fd: c_int,
    opts: *const wrd_capture_options,
    out: *mut *mut wrd_capture,
) -> wrd_status {
    ffi_panic_boundary! {
        // Take ownership first so the fd is closed on every error path.
        // SAFETY: the caller hands over an fd it owns (documented above).
        let owned = (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) });
        if out.is_null() {
            return wrd_status::WRD_ERR_NULL_POINTER;
        }
        let o = match options_from(opts) {
            Ok(o) => o,
            Err(s) => return s,
        };
        match Capture::new(owned, o) {
            Ok(capture) => {
                let v = capture.versions();
                let h = Arc::new(CaptureHandle {
                    capture,
                    library_version: CString::new(v.library).unwrap_or_default(),
                    daemon_version: CString::new(v.daemon).unwrap_or_default(),
                });
                let handle = CAPTURES.insert(h);
                // SAFETY: `out` is non-NULL and writable per the contract.
                unsafe { *out = handle as *mut wrd_capture };
                wrd_status::WRD_OK
            }
            Err(e) => e.status(),
        }
    }
}

/// Destroy a capture: stops and joins its PipeWire thread and frees
/// everything, also with streams still open (their handles stay valid for
/// `wrd_stream_remove`, and return `WRD_ERR_CONNECTION_LOST` or empty
/// results otherwise). Frames the caller holds stay readable until released.
///
/// NULL does nothing; a capture already destroyed is ignored. Any thread,
/// including from inside a callback (then the thread finishes by itself
/// after the callback returns, and no further callback runs).
#[no_mangle]
pub extern "C" fn wrd_capture_destroy(cap: *mut wrd_capture) {
    ffi_panic_boundary! {
        if cap.is_null() {
            return;
        }
        if let Some(h) = CAPTURES.remove(cap as usize) {
            drop(h);
        }
    }
}

/// The PipeWire client library's and the daemon's versions, as NUL-terminated
/// strings owned by the capture (valid until `wrd_capture_destroy`). Either
/// out-pointer may be NULL. Any thread.
///
/// Errors: `WRD_ERR_NULL_POINTER` (cap), `WRD_ERR_INVALID_STATE` (destroyed
/// capture).
#[no_mangle]
pub extern "C" fn wrd_capture_get_versions(
    cap: *const wrd_capture,
    library: *mut *const c_char,
    daemon: *mut *const c_char,
) -> wrd_status {
    ffi_panic_boundary! {
        let h = match capture_from(cap) {
            Ok(h) => h,
            Err(s) => return s,
        };
        // SAFETY: each out-pointer is checked for NULL and is writable per
        // the contract; the strings live as long as the capture's handle.
        unsafe {
            if !library.is_null() {
                *library = h.library_version.as_ptr();
            }
            if !daemon.is_null() {
                *daemon = h.daemon_version.as_ptr();
            }
        }
        wrd_status::WRD_OK
    }
}

/// Whether the connection is alive. False for NULL or a destroyed capture,
/// and once the daemon (or portal session) is gone. Any thread.
#[no_mangle]
pub extern "C" fn wrd_capture_is_connected(cap: *const wrd_capture) -> bool {
    ffi_panic_boundary! {
        capture_from(cap).map(|h| h.capture.is_connected()).unwrap_or(false)
    }
}

/// What the running PipeWire allows, from the client library's and the
/// daemon's versions (the library is built once and gates newer behaviour
/// at run time).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct wrd_features {
    /// Explicit sync (SyncTimeline meta and SyncObj datas) is negotiated with
    /// DMA-BUF producers: the client library and the daemon are >= 1.2.0.
    pub explicit_sync: u32,
    /// The client library is newer than the daemon. With a library >= 0.3.74
    /// and a daemon < 0.3.74 no consumer gets buffers (PipeWire changed its
    /// client-node mix protocol), so `wrd_stream_add` answers
    /// `WRD_ERR_UNSUPPORTED` (measured: 1.4.2 against 0.3.65).
    pub library_newer_than_daemon: u32,
}

/// Fill `*out` with the features of the capture's connection. Any thread.
#[no_mangle]
pub extern "C" fn wrd_capture_get_features(
    cap: *const wrd_capture,
    out: *mut wrd_features,
) -> wrd_status {
    ffi_panic_boundary! {
        if out.is_null() {
            return wrd_status::WRD_ERR_NULL_POINTER;
        }
        let h = match capture_from(cap) {
            Ok(h) => h,
            Err(s) => return s,
        };
        let f = h.capture.features();
        // SAFETY: non-NULL and writable per the contract.
        unsafe {
            *out = wrd_features {
                explicit_sync: f.explicit_sync as u32,
                library_newer_than_daemon: f.library_newer_than_daemon as u32,
            }
        };
        wrd_status::WRD_OK
    }
}
