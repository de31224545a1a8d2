//! C API: streams, their events, stats and the pull API.

use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::buffer::DROP_REASONS;

// The C struct spells its array length out (cbindgen cannot see Rust
// constants) and keeps room for reasons added later.
const _: () = assert!(DROP_REASONS <= 16 && WRD_DROP_REASONS as usize == DROP_REASONS);
use crate::error::wrd_status;
use crate::ffi::capture::{capture_from, wrd_capture};
use crate::ffi::frame::{frame_handle_new, with_borrowed_frame, wrd_frame};
use crate::ffi::handles::HandleTable;
use crate::format::PixelFormat;
use crate::stream::{Event, QueuePolicy, Stream, StreamConfig};

/// A stream of frames from one node (opaque).
pub struct wrd_stream {
    _private: [u8; 0],
}

pub(crate) struct StreamHandle {
    stream: Mutex<Option<Stream>>,
    /// Message of the last event returned by `wrd_stream_next_event`.
    last_message: Mutex<CString>,
}

static STREAMS: HandleTable<Arc<StreamHandle>> = HandleTable::new();

fn stream_from(p: *const wrd_stream) -> Result<Arc<StreamHandle>, wrd_status> {
    if p.is_null() {
        return Err(wrd_status::WRD_ERR_NULL_POINTER);
    }
    STREAMS
        .get(p as usize)
        .ok_or(wrd_status::WRD_ERR_INVALID_STATE)
}

/// Event types (`wrd_event.type`).
pub const WRD_EVENT_STATE_CHANGED: u32 = 1;
pub const WRD_EVENT_FORMAT_CHANGED: u32 = 2;
pub const WRD_EVENT_NODE_GONE: u32 = 3;
pub const WRD_EVENT_CONNECTION_LOST: u32 = 4;
pub const WRD_EVENT_ERROR: u32 = 5;
pub const WRD_EVENT_BAD_FRAME: u32 = 6;
pub const WRD_EVENT_STALLED: u32 = 7;
pub const WRD_EVENT_RESUMED: u32 = 8;
/// A DMA-BUF import failed (`format`, `modifier`, `message`).
pub const WRD_EVENT_IMPORT_FAILED: u32 = 9;
/// The stream renegotiates without `format` + `modifier`.
pub const WRD_EVENT_RENEGOTIATING: u32 = 10;
/// The stream fell back to shared memory.
pub const WRD_EVENT_SHM_FALLBACK: u32 = 11;
/// The capture tries to reconnect (`attempt` in `width`, delay in ms in
/// `modifier`; default-daemon mode with a reconnect policy).
pub const WRD_EVENT_RECONNECTING: u32 = 12;
/// The capture is connected again and re-adds the stream by node name.
pub const WRD_EVENT_RECONNECTED: u32 = 13;

/// Stream states (`wrd_event.state`, `wrd_stream_stats.state`).
pub const WRD_STATE_CONNECTING: u32 = 0;
pub const WRD_STATE_PAUSED: u32 = 1;
pub const WRD_STATE_STREAMING: u32 = 2;
pub const WRD_STATE_ERROR: u32 = 3;
pub const WRD_STATE_CLOSED: u32 = 4;

/// Queue policies (`wrd_stream_config.queue_policy`).
pub const WRD_QUEUE_NEWEST_ONLY: u32 = 0;
pub const WRD_QUEUE_BOUNDED: u32 = 1;

/// Something that happened to a stream. Fields not used by a type are 0.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct wrd_event {
    /// One of `WRD_EVENT_*`.
    pub kind: u32,
    /// `WRD_EVENT_STATE_CHANGED`: the new `WRD_STATE_*`.
    pub state: u32,
    /// `WRD_EVENT_ERROR`: what went wrong.
    pub status: wrd_status,
    /// `WRD_EVENT_BAD_FRAME`: a `WRD_DROP_*` reason.
    pub drop_reason: u32,
    /// `WRD_EVENT_FORMAT_CHANGED`: the negotiated `WRD_FORMAT_*`, size and rate.
    pub format: u32,
    pub width: u32,
    pub height: u32,
    pub framerate_num: u32,
    pub framerate_denom: u32,
    /// `WRD_EVENT_FORMAT_CHANGED`: 1 when DMA-BUF with `modifier` was negotiated.
    pub has_modifier: u32,
    pub modifier: u64,
    /// A NUL-terminated English message (never NULL; may be empty). Valid
    /// during the callback, or until the next `wrd_stream_next_event` call.
    pub message: *const c_char,
}

pub(crate) fn event_to_c(ev: &Event, message: &CString) -> wrd_event {
    let mut e = wrd_event {
        kind: 0,
        state: 0,
        status: wrd_status::WRD_OK,
        drop_reason: 0,
        format: 0,
        width: 0,
        height: 0,
        framerate_num: 0,
        framerate_denom: 0,
        has_modifier: 0,
        modifier: 0,
        message: message.as_ptr(),
    };
    match ev {
        Event::StateChanged(s) => {
            e.kind = WRD_EVENT_STATE_CHANGED;
            e.state = *s as u32;
        }
        Event::FormatChanged(f) => {
            e.kind = WRD_EVENT_FORMAT_CHANGED;
            e.format = f.format as u32;
            e.width = f.width;
            e.height = f.height;
            e.framerate_num = f.framerate.0;
            e.framerate_denom = f.framerate.1;
            if let Some(m) = f.modifier {
                e.has_modifier = 1;
                e.modifier = m;
            }
        }
        Event::NodeGone => e.kind = WRD_EVENT_NODE_GONE,
        Event::ConnectionLost => {
            e.kind = WRD_EVENT_CONNECTION_LOST;
            e.status = wrd_status::WRD_ERR_CONNECTION_LOST;
        }
        Event::Error { status, .. } => {
            e.kind = WRD_EVENT_ERROR;
            e.status = *status;
        }
        Event::BadFrame { reason, .. } => {
            e.kind = WRD_EVENT_BAD_FRAME;
            e.status = wrd_status::WRD_ERR_BAD_FRAME;
            e.drop_reason = *reason as u32;
        }
        Event::Stalled => e.kind = WRD_EVENT_STALLED,
        Event::Resumed => e.kind = WRD_EVENT_RESUMED,
        Event::ImportFailed {
            format, modifier, ..
        } => {
            e.kind = WRD_EVENT_IMPORT_FAILED;
            e.status = wrd_status::WRD_ERR_IMPORT_FAILED;
            e.format = *format as u32;
            e.has_modifier = 1;
            e.modifier = *modifier;
        }
        Event::Renegotiating { format, modifier } => {
            e.kind = WRD_EVENT_RENEGOTIATING;
            e.format = *format as u32;
            e.has_modifier = 1;
            e.modifier = *modifier;
        }
        Event::ShmFallback => e.kind = WRD_EVENT_SHM_FALLBACK,
        Event::Reconnecting { attempt, delay_ms } => {
            e.kind = WRD_EVENT_RECONNECTING;
            e.width = *attempt;
            e.modifier = *delay_ms;
        }
        Event::Reconnected => e.kind = WRD_EVENT_RECONNECTED,
    }
    e
}

fn event_message(ev: &Event) -> CString {
    let s = match ev {
        Event::Error { message, .. }
        | Event::BadFrame { message, .. }
        | Event::ImportFailed { message, .. } => message.clone(),
        Event::ShmFallback => "falling back to shared memory".into(),
        Event::NodeGone => "the node was removed".into(),
        Event::ConnectionLost => "the connection to PipeWire is gone".into(),
        Event::Stalled => "no frame within the stall timeout".into(),
        _ => String::new(),
    };
    CString::new(s.replace('\0', " ")).unwrap_or_default()
}

/// Called on the library's PipeWire thread (with `WRD_STREAM_FLAG_REALTIME`,
/// on PipeWire's data thread) with a frame that is valid until the callback
/// returns. Keep it longer with `wrd_frame_ref`.
pub type wrd_frame_cb =
    Option<unsafe extern "C" fn(user_data: *mut c_void, frame: *const wrd_frame)>;
/// Called on the library's PipeWire thread (with `WRD_STREAM_FLAG_REALTIME`,
/// events raised while a frame is processed come on PipeWire's data thread)
/// with an event valid until the callback returns.
pub type wrd_event_cb =
    Option<unsafe extern "C" fn(user_data: *mut c_void, event: *const wrd_event)>;
/// Called once when the library no longer uses `user_data` (after the
/// stream's last callback), on the thread that removed the stream or on the
/// PipeWire thread.
pub type wrd_destroy_notify = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// How a stream is set up. Initialise with `wrd_stream_config_init`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct wrd_stream_config {
    /// Set by `wrd_stream_config_init` to `sizeof(wrd_stream_config)`.
    pub struct_size: u32,
    /// Formats (`WRD_FORMAT_*`) in order of preference; NULL for all.
    pub formats: *const u32,
    pub n_formats: usize,
    /// Frame rate bound asked of the producer; 0 for none.
    pub max_framerate: u32,
    /// Frame callback (may be NULL).
    pub on_frame: wrd_frame_cb,
    /// Event callback (may be NULL).
    pub on_event: wrd_event_cb,
    /// Passed to the callbacks.
    pub user_data: *mut c_void,
    /// Called once when `user_data` is no longer used (may be NULL).
    pub user_data_destroy: wrd_destroy_notify,
    /// Non-zero: queue frames for `wrd_stream_pull` and make the stream's fd
    /// readable when one is queued.
    pub pull_frames: u32,
    /// Non-zero: queue events for `wrd_stream_next_event` (also signals the fd).
    pub pull_events: u32,
    /// `WRD_QUEUE_NEWEST_ONLY` (default) or `WRD_QUEUE_BOUNDED`.
    pub queue_policy: u32,
    /// Bounded queue: high and low water marks (frames).
    pub queue_high: u32,
    pub queue_low: u32,
    /// Most frames the caller may hold at once (refs plus queued); past it
    /// new frames are dropped and counted. Default 4.
    pub max_held: u32,
    /// Buffers asked of the producer (2..16, default 8).
    pub buffers: u32,
    /// Milliseconds without frames before a `WRD_EVENT_STALLED`; 0 for never.
    pub stall_timeout_ms: u32,
    /// An importer (may be NULL): the stream then offers the DMA-BUF
    /// modifiers it can import (with an SHM fallback per format), imports
    /// each new buffer once (`wrd_frame_get_imported`) and renegotiates
    /// without a modifier whose import failed. The stream keeps its own
    /// reference: the importer may be destroyed before the stream.
    pub importer: *const crate::ffi::import::wrd_importer,
    /// Import failures before the stream falls back to SHM (0: default 3).
    pub max_import_failures: u32,
    /// `WRD_STREAM_FLAG_*` bits, 0 by default. Unknown bits are
    /// `WRD_ERR_INVALID_ARGUMENT`. (Added in 0.2 in what was the struct's
    /// tail padding: its size did not change.)
    pub flags: u32,
}

/// Stream flag: deliver frames on PipeWire's data thread
/// (`PW_STREAM_FLAG_RT_PROCESS`) instead of the capture's own thread. Each
/// frame then costs one thread wake-up instead of two (less CPU and
/// latency), but the frame callback runs inside PipeWire's processing cycle:
/// it must return quickly (keep the frame with `wrd_frame_ref` or copy what
/// it needs, and do the work on another thread), because the producer's
/// next cycle waits for it. Events raised while a frame is processed
/// (`WRD_EVENT_BAD_FRAME`, `WRD_EVENT_RESUMED`, `WRD_EVENT_IMPORT_FAILED`,
/// `WRD_EVENT_RENEGOTIATING`, `WRD_EVENT_SHM_FALLBACK`) are then called on
/// that thread too. A stream's callbacks still never run at the same time,
/// and `wrd_stream_remove` and `wrd_capture_destroy` keep their guarantees
/// (also from inside the callback).
pub const WRD_STREAM_FLAG_REALTIME: u32 = 1;
const KNOWN_STREAM_FLAGS: u32 = WRD_STREAM_FLAG_REALTIME;

/// Fill `cfg` with the defaults (all formats, no callbacks, newest-only).
/// Returns `WRD_ERR_NULL_POINTER` for NULL. Any thread.
#[no_mangle]
pub extern "C" fn wrd_stream_config_init(cfg: *mut wrd_stream_config) -> wrd_status {
    ffi_panic_boundary! {
        if cfg.is_null() {
            return wrd_status::WRD_ERR_NULL_POINTER;
        }
        let d = StreamConfig::default();
        // SAFETY: non-NULL and writable per the contract.
        unsafe {
            cfg.write(wrd_stream_config {
                struct_size: std::mem::size_of::<wrd_stream_config>() as u32,
                formats: std::ptr::null(),
                n_formats: 0,
                max_framerate: 0,
                on_frame: None,
                on_event: None,
                user_data: std::ptr::null_mut(),
                user_data_destroy: None,
                pull_frames: 0,
                pull_events: 0,
                queue_policy: WRD_QUEUE_NEWEST_ONLY,
                queue_high: 4,
                queue_low: 1,
                max_held: d.max_held as u32,
                buffers: d.buffers,
                stall_timeout_ms: 0,
                importer: std::ptr::null(),
                max_import_failures: 0,
                flags: 0,
            });
        }
        wrd_status::WRD_OK
    }
}

/// The caller's user data, used on the library's threads.
struct UserData {
    ptr: *mut c_void,
    destroy: wrd_destroy_notify,
}

// SAFETY: the header states that callbacks (and so user_data) are used on
// the library's threads (its PipeWire thread, or PipeWire's data thread for
// a realtime stream), one callback of a stream at a time; the caller
// accepts that by passing it.
unsafe impl Send for UserData {}
// SAFETY: as above; the library never touches what it points to.
unsafe impl Sync for UserData {}

impl Drop for UserData {
    fn drop(&mut self) {
        if let Some(d) = self.destroy {
            // SAFETY: the caller's destroy notify, called once with its
            // user_data after the last callback (the closures owning this
            // value are being dropped).
            crate::callback_panic_boundary!("user_data destroy", unsafe { d(self.ptr) });
        }
    }
}

fn config_from(p: *const wrd_stream_config) -> Result<StreamConfig, wrd_status> {
    let mut cfg = StreamConfig::default();
    if p.is_null() {
        return Ok(cfg);
    }
    // SAFETY: non-NULL; the caller initialised it with wrd_stream_config_init.
    let c = unsafe { &*p };
    if (c.struct_size as usize) < std::mem::size_of::<wrd_stream_config>() {
        return Err(wrd_status::WRD_ERR_INVALID_ARGUMENT);
    }
    if !c.formats.is_null() && c.n_formats > 0 {
        if c.n_formats > 64 {
            return Err(wrd_status::WRD_ERR_INVALID_ARGUMENT);
        }
        // SAFETY: the caller passes n_formats readable u32 values.
        let raw = unsafe { std::slice::from_raw_parts(c.formats, c.n_formats) };
        for &f in raw {
            cfg.formats
                .push(PixelFormat::from_raw(f).ok_or(wrd_status::WRD_ERR_INVALID_ARGUMENT)?);
        }
    }
    cfg.max_framerate = c.max_framerate;
    cfg.pull = c.pull_frames != 0;
    cfg.pull_events = c.pull_events != 0;
    cfg.queue = match c.queue_policy {
        WRD_QUEUE_NEWEST_ONLY => QueuePolicy::NewestOnly,
        WRD_QUEUE_BOUNDED => {
            if c.queue_high == 0 || c.queue_low >= c.queue_high {
                return Err(wrd_status::WRD_ERR_INVALID_ARGUMENT);
            }
            QueuePolicy::Bounded {
                high: c.queue_high as usize,
                low: c.queue_low as usize,
            }
        }
        _ => return Err(wrd_status::WRD_ERR_INVALID_ARGUMENT),
    };
    if c.max_held > 0 {
        cfg.max_held = c.max_held as usize;
    }
    if c.buffers > 0 {
        if !(2..=16).contains(&c.buffers) {
            return Err(wrd_status::WRD_ERR_INVALID_ARGUMENT);
        }
        cfg.buffers = c.buffers;
    }
    cfg.stall_timeout = Duration::from_millis(c.stall_timeout_ms.into());
    if !c.importer.is_null() {
        cfg.importer = Some(crate::ffi::import::importer_from(c.importer)?);
    }
    if c.max_import_failures > 0 {
        cfg.max_import_failures = c.max_import_failures;
    }
    if c.flags & !KNOWN_STREAM_FLAGS != 0 {
        return Err(wrd_status::WRD_ERR_INVALID_ARGUMENT);
    }
    cfg.realtime = c.flags & WRD_STREAM_FLAG_REALTIME != 0;
    let ud = Arc::new(UserData {
        ptr: c.user_data,
        destroy: c.user_data_destroy,
    });
    if let Some(cb) = c.on_frame {
        let ud = ud.clone();
        cfg.on_frame = Some(Box::new(move |f| {
            with_borrowed_frame(f, |h| {
                // SAFETY: the caller's callback, called with its user_data
                // and a frame handle valid for the duration of the call.
                unsafe { cb(ud.ptr, h) }
            })
        }));
    }
    if let Some(cb) = c.on_event {
        let ud = ud.clone();
        cfg.on_event = Some(Box::new(move |ev| {
            let msg = event_message(ev);
            let e = event_to_c(ev, &msg);
            // SAFETY: the caller's callback with its user_data and an event
            // (and message) that live until it returns.
            unsafe { cb(ud.ptr, &e) }
        }));
    }
    if c.on_frame.is_none() && c.on_event.is_none() {
        // No closure owns the user data: release it when the stream goes.
        cfg.on_event = Some(Box::new(move |_| {
            let _ = &ud;
        }));
    }
    Ok(cfg)
}

/// Add a stream for the node `node_id` (a screencast node id from the portal,
/// or any `Video/Source` node). `cfg` may be NULL for the defaults (then
/// frames are only counted in the stats). The stream connects
/// asynchronously: watch its events. A node that does not exist gives a
/// `WRD_EVENT_ERROR` with `WRD_ERR_NODE_NOT_FOUND` within the capture's
/// `node_timeout_ms` plus 50 ms; no agreed format gives `WRD_ERR_NEGOTIATION`
/// within `negotiation_timeout_ms` plus 50 ms of the node being found.
///
/// Errors: `WRD_ERR_NULL_POINTER` (cap, out), `WRD_ERR_INVALID_STATE`
/// (destroyed capture), `WRD_ERR_INVALID_ARGUMENT` (cfg),
/// `WRD_ERR_TOO_MANY_STREAMS`, `WRD_ERR_CONNECTION_LOST`,
/// `WRD_ERR_UNSUPPORTED` (a PipeWire client library >= 0.3.74 with a daemon
/// < 0.3.74: that pair never delivers buffers to a consumer). Any thread,
/// including from a callback. Free with `wrd_stream_remove`.
#[no_mangle]
pub extern "C" fn wrd_stream_add(
    cap: *mut wrd_capture,
    node_id: u32,
    cfg: *const wrd_stream_config,
    out: *mut *mut wrd_stream,
) -> wrd_status {
    ffi_panic_boundary! {
        if out.is_null() {
            return wrd_status::WRD_ERR_NULL_POINTER;
        }
        let h = match capture_from(cap) {
            Ok(h) => h,
            Err(s) => return s,
        };
        let cfg = match config_from(cfg) {
            Ok(c) => c,
            Err(s) => return s,
        };
        match h.capture.add_stream(node_id, cfg) {
            Ok(stream) => {
                let handle = STREAMS.insert(Arc::new(StreamHandle {
                    stream: Mutex::new(Some(stream)),
                    last_message: Mutex::new(CString::default()),
                }));
                // SAFETY: `out` is non-NULL and writable per the contract.
                unsafe { *out = handle as *mut wrd_stream };
                wrd_status::WRD_OK
            }
            Err(e) => e.status(),
        }
    }
}

/// Remove a stream. When this returns no callback of the stream is running
/// or will run (also when called from inside one of its callbacks). Frames the caller holds stay valid until released.
/// `user_data_destroy` is called now, or, when called from inside the
/// stream's own callback, once that callback has returned.
/// NULL and already removed streams are ignored. Any thread.
#[no_mangle]
pub extern "C" fn wrd_stream_remove(stream: *mut wrd_stream) {
    ffi_panic_boundary! {
        if stream.is_null() {
            return;
        }
        if let Some(h) = STREAMS.remove(stream as usize) {
            let s = h.stream.lock().take();
            drop(s);
        }
    }
}

fn with_stream<R>(
    p: *const wrd_stream,
    f: impl FnOnce(&Stream, &StreamHandle) -> Result<R, wrd_status>,
) -> Result<R, wrd_status> {
    let h = stream_from(p)?;
    let g = h.stream.lock();
    let s = g.as_ref().ok_or(wrd_status::WRD_ERR_INVALID_STATE)?;
    f(s, &h)
}

/// The stream's eventfd: readable (POLLIN) when a frame or event is queued
/// for the pull API (`pull_frames` / `pull_events`), and no longer readable
/// once `wrd_stream_pull` and `wrd_stream_next_event` took everything.
/// Watch it with poll(), epoll, `g_unix_fd_add`, ...; do not read, write or
/// close it: it is owned by the stream and closed by `wrd_stream_remove`.
/// Any thread.
///
/// Errors: `WRD_ERR_NULL_POINTER` (stream, out_fd), `WRD_ERR_INVALID_STATE`
/// (removed stream).
#[no_mangle]
pub extern "C" fn wrd_stream_get_fd(stream: *const wrd_stream, out_fd: *mut c_int) -> wrd_status {
    ffi_panic_boundary! {
        if out_fd.is_null() {
            return wrd_status::WRD_ERR_NULL_POINTER;
        }
        match with_stream(stream, |s, _| Ok(s.fd())) {
            Ok(fd) => {
                // SAFETY: non-NULL and writable per the contract.
                unsafe { *out_fd = fd };
                wrd_status::WRD_OK
            }
            Err(s) => s,
        }
    }
}

/// Take the newest queued frame (older queued ones are dropped as
/// superseded). The caller owns `*out` and must `wrd_frame_release` it.
/// Returns `WRD_ERR_NO_FRAME` when none is queued. Resets the fd's
/// readiness when nothing is left. Any thread.
///
/// Errors: `WRD_ERR_NULL_POINTER` (stream, out), `WRD_ERR_INVALID_STATE`
/// (removed stream), `WRD_ERR_NO_FRAME`; `*out` is untouched on error.
#[no_mangle]
pub extern "C" fn wrd_stream_pull(stream: *mut wrd_stream, out: *mut *mut wrd_frame) -> wrd_status {
    ffi_panic_boundary! {
        if out.is_null() {
            return wrd_status::WRD_ERR_NULL_POINTER;
        }
        match with_stream(stream, |s, _| s.pull().map_err(|e| e.status())) {
            Ok(f) => {
                // SAFETY: non-NULL and writable per the contract.
                unsafe { *out = frame_handle_new(f) };
                wrd_status::WRD_OK
            }
            Err(s) => s,
        }
    }
}

/// Take the oldest queued frame (for `WRD_QUEUE_BOUNDED`). Like
/// `wrd_stream_pull` otherwise.
#[no_mangle]
pub extern "C" fn wrd_stream_pop(stream: *mut wrd_stream, out: *mut *mut wrd_frame) -> wrd_status {
    ffi_panic_boundary! {
        if out.is_null() {
            return wrd_status::WRD_ERR_NULL_POINTER;
        }
        match with_stream(stream, |s, _| s.pop().map_err(|e| e.status())) {
            Ok(f) => {
                // SAFETY: non-NULL and writable per the contract.
                unsafe { *out = frame_handle_new(f) };
                wrd_status::WRD_OK
            }
            Err(s) => s,
        }
    }
}

/// Take the next queued event (with `pull_events`; up to 256 are kept,
/// the oldest dropped first). `out->message` is owned by the stream and
/// valid until the next call of this function on the stream or its removal.
/// Any thread.
///
/// Errors: `WRD_ERR_NULL_POINTER` (stream, out), `WRD_ERR_INVALID_STATE`
/// (removed stream), `WRD_ERR_NO_FRAME` (no event queued).
#[no_mangle]
pub extern "C" fn wrd_stream_next_event(
    stream: *mut wrd_stream,
    out: *mut wrd_event,
) -> wrd_status {
    ffi_panic_boundary! {
        if out.is_null() {
            return wrd_status::WRD_ERR_NULL_POINTER;
        }
        let r = with_stream(stream, |s, h| {
            let ev = s.next_event().ok_or(wrd_status::WRD_ERR_NO_FRAME)?;
            let mut m = h.last_message.lock();
            *m = event_message(&ev);
            Ok(event_to_c(&ev, &m))
        });
        match r {
            Ok(e) => {
                // SAFETY: non-NULL and writable per the contract.
                unsafe { *out = e };
                wrd_status::WRD_OK
            }
            Err(s) => s,
        }
    }
}

/// Drop reasons (`wrd_stream_stats.drops[...]`, `wrd_event.drop_reason`).
pub const WRD_DROP_SUPERSEDED: u32 = 0;
pub const WRD_DROP_HELD_LIMIT: u32 = 1;
pub const WRD_DROP_QUEUE_FULL: u32 = 2;
pub const WRD_DROP_BAD_CHUNK: u32 = 3;
pub const WRD_DROP_UNMAPPABLE: u32 = 4;
pub const WRD_DROP_BAD_LAYOUT: u32 = 5;
pub const WRD_DROP_BUDGET: u32 = 6;
pub const WRD_DROP_NO_FORMAT: u32 = 7;
pub const WRD_DROP_IMPORT_FAILED: u32 = 8;
/// Number of drop reasons in use (`drops` has room for 16).
pub const WRD_DROP_REASONS: u32 = 9;

/// Buffer types (`wrd_stream_stats.buffer_type`, `wrd_frame_info.buffer_type`).
pub const WRD_BUFFER_NONE: u32 = 0;
pub const WRD_BUFFER_MEMFD: u32 = 1;
pub const WRD_BUFFER_MEMPTR: u32 = 2;
pub const WRD_BUFFER_DMABUF: u32 = 3;

/// A snapshot of a stream's state and counters.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct wrd_stream_stats {
    pub node_id: u32,
    /// `WRD_STATE_*`.
    pub state: u32,
    /// Negotiated `WRD_FORMAT_*` (0 before negotiation), size and rate.
    pub format: u32,
    pub width: u32,
    pub height: u32,
    pub framerate_num: u32,
    pub framerate_denom: u32,
    /// `WRD_BUFFER_*`.
    pub buffer_type: u32,
    /// DRM modifier when `buffer_type` is `WRD_BUFFER_DMABUF`.
    pub modifier: u64,
    /// Frames per second over the last second.
    pub fps: f64,
    pub frames_delivered: u64,
    /// Sum of `drops`.
    pub frames_dropped: u64,
    /// Drops by `WRD_DROP_*` reason (entries past `WRD_DROP_REASONS` are 0).
    pub drops: [u64; 16],
    /// Frames held by the caller now (refs plus queued), and the most ever.
    pub held_now: u64,
    pub held_max: u64,
    /// Malformed metas ignored.
    pub bad_metas: u64,
    /// Buffers whose memfd was not sealed against shrinking.
    pub unsealed_buffers: u64,
    pub format_changes: u64,
    /// Explicit sync: release points signalled, and signalling failures.
    pub releases_signalled: u64,
    pub release_failures: u64,
    /// Status of the last error event (`WRD_OK` if none).
    pub last_error: wrd_status,
}

/// Fill `*out` with a snapshot of the stream's state and counters (a copy:
/// nothing in it needs freeing). Any thread.
///
/// Errors: `WRD_ERR_NULL_POINTER` (stream, out), `WRD_ERR_INVALID_STATE`
/// (removed stream).
#[no_mangle]
pub extern "C" fn wrd_stream_get_stats(
    stream: *const wrd_stream,
    out: *mut wrd_stream_stats,
) -> wrd_status {
    ffi_panic_boundary! {
        if out.is_null() {
            return wrd_status::WRD_ERR_NULL_POINTER;
        }
        match with_stream(stream, |s, _| Ok(s.stats())) {
            Ok(st) => {
                let f = st.format;
                let v = wrd_stream_stats {
                    node_id: st.node_id,
                    state: st.state as u32,
                    format: f.map(|f| f.format as u32).unwrap_or(0),
                    width: f.map(|f| f.width).unwrap_or(0),
                    height: f.map(|f| f.height).unwrap_or(0),
                    framerate_num: f.map(|f| f.framerate.0).unwrap_or(0),
                    framerate_denom: f.map(|f| f.framerate.1).unwrap_or(0),
                    buffer_type: st.buffer_type as u32,
                    modifier: f.and_then(|f| f.modifier).unwrap_or(0),
                    fps: st.fps,
                    frames_delivered: st.frames_delivered,
                    frames_dropped: st.dropped(),
                    drops: {
                        let mut d = [0u64; 16];
                        d[..DROP_REASONS].copy_from_slice(&st.drops);
                        d
                    },
                    held_now: st.held_now,
                    held_max: st.held_max,
                    bad_metas: st.bad_metas,
                    unsealed_buffers: st.unsealed_buffers,
                    format_changes: st.format_changes,
                    releases_signalled: st.releases_signalled,
                    release_failures: st.release_failures,
                    last_error: st.last_error.as_ref().map(|e| e.0).unwrap_or(wrd_status::WRD_OK),
                };
                // SAFETY: non-NULL and writable per the contract.
                unsafe { *out = v };
                wrd_status::WRD_OK
            }
            Err(s) => s,
        }
    }
}

/// Copy the message of the stream's last error (NUL-terminated, truncated
/// to `len`) into `buf`, the caller's; an empty string when there was no
/// error. Any thread.
///
/// Errors: `WRD_ERR_NULL_POINTER` (stream, buf), `WRD_ERR_INVALID_STATE`
/// (removed stream), `WRD_ERR_BUFFER_TOO_SMALL` (`len` 0, or the message
/// was truncated; `buf` then holds its first `len - 1` bytes).
#[no_mangle]
pub extern "C" fn wrd_stream_get_last_error(
    stream: *const wrd_stream,
    buf: *mut c_char,
    len: usize,
) -> wrd_status {
    ffi_panic_boundary! {
        if buf.is_null() {
            return wrd_status::WRD_ERR_NULL_POINTER;
        }
        if len == 0 {
            return wrd_status::WRD_ERR_BUFFER_TOO_SMALL;
        }
        match with_stream(stream, |s, _| Ok(s.stats().last_error.map(|e| e.1).unwrap_or_default())) {
            Ok(msg) => {
                let bytes = msg.as_bytes();
                let n = bytes.len().min(len - 1);
                // SAFETY: `buf` holds `len` writable bytes per the contract; we
                // write n + 1 <= len.
                unsafe {
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf as *mut u8, n);
                    *buf.add(n) = 0;
                }
                if n < bytes.len() {
                    wrd_status::WRD_ERR_BUFFER_TOO_SMALL
                } else {
                    wrd_status::WRD_OK
                }
            }
            Err(s) => s,
        }
    }
}
