//! C API: direct DRM/KMS capture (see [`crate::drm`]).

use std::ffi::{c_char, c_int, CStr};
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::drm::{ConnectionState, DrmDevice, DrmSource, ModeInfo, Target, DEFAULT_CARD};
use crate::error::{wrd_status, Error, Result};
use crate::ffi::frame::{frame_handle_new, wrd_frame};
use crate::ffi::handles::HandleTable;

/// A DRM/KMS capture source (opaque).
pub struct wrd_drm_source {
    _private: [u8; 0],
}

static SOURCES: HandleTable<Arc<Mutex<DrmSource>>> = HandleTable::new();

/// Connector states (`wrd_drm_connector.connection`).
pub const WRD_DRM_CONNECTED: u32 = 1;
pub const WRD_DRM_DISCONNECTED: u32 = 2;
pub const WRD_DRM_CONNECTION_UNKNOWN: u32 = 3;

/// A video mode.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct wrd_drm_mode {
    pub width: u32,
    pub height: u32,
    /// Vertical refresh in Hz.
    pub refresh_hz: u32,
    /// Pixel clock in kHz.
    pub clock_khz: u32,
    /// Non-zero for the connector's preferred mode.
    pub preferred: u32,
}

/// A connector (output).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct wrd_drm_connector {
    /// KMS object id (pass it to `wrd_drm_source_new`).
    pub id: u32,
    /// `WRD_DRM_CONNECTED`, `WRD_DRM_DISCONNECTED` or `WRD_DRM_CONNECTION_UNKNOWN`.
    pub connection: u32,
    /// The CRTC driving it, 0 when none.
    pub crtc_id: u32,
    /// Number of modes it offers (`wrd_drm_connector_modes` lists them).
    pub n_modes: u32,
    /// `"Virtual-1"`, `"HDMI-A-2"`, ...: NUL-terminated, truncated to fit.
    pub name: [c_char; 32],
}

/// A CRTC (scanout engine).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct wrd_drm_crtc {
    /// KMS object id (pass it to `wrd_drm_source_new`).
    pub id: u32,
    /// Index among the device's CRTCs.
    pub index: u32,
    /// Non-zero when it runs a mode (`mode` is then set).
    pub active: u32,
    /// The framebuffer its primary plane scans out, 0 when none.
    pub fb_id: u32,
    pub x: u32,
    pub y: u32,
    pub mode: wrd_drm_mode,
}

fn c_mode(m: &ModeInfo) -> wrd_drm_mode {
    wrd_drm_mode {
        width: m.width,
        height: m.height,
        refresh_hz: m.refresh_hz,
        clock_khz: m.clock_khz,
        preferred: m.preferred as u32,
    }
}

/// Open the device given by `card_path` / `fd` (see `wrd_drm_source_new`).
fn device(card_path: *const c_char, fd: c_int) -> Result<DrmDevice> {
    if fd >= 0 {
        // SAFETY: the caller passes an fd it keeps open for this call;
        // `from_fd` duplicates it before the call returns.
        let b = unsafe { BorrowedFd::borrow_raw(fd) };
        return DrmDevice::from_fd(b);
    }
    if card_path.is_null() {
        return DrmDevice::open(DEFAULT_CARD);
    }
    // SAFETY: non-NULL and NUL-terminated per the contract.
    let s = unsafe { CStr::from_ptr(card_path) };
    let s = s
        .to_str()
        .map_err(|_| Error::InvalidArgument("card path is not UTF-8".into()))?;
    DrmDevice::open(s)
}

/// Copy `items` into the caller's array `out` of `cap` entries and store the
/// total count in `*n`. `out` may be NULL when `cap` is 0 (to ask the count).
///
/// # Safety
/// `out` must hold `cap` writable entries; `n` must be writable.
unsafe fn fill<T: Copy>(items: &[T], out: *mut T, cap: usize, n: *mut usize) -> wrd_status {
    // SAFETY: `n` is non-NULL (checked by the callers) and writable.
    unsafe { n.write(items.len()) };
    if items.len() > cap {
        return wrd_status::WRD_ERR_BUFFER_TOO_SMALL;
    }
    if !items.is_empty() {
        // SAFETY: `out` holds at least `cap >= items.len()` entries and is
        // non-NULL (checked by the callers when cap > 0).
        unsafe { std::ptr::copy_nonoverlapping(items.as_ptr(), out, items.len()) };
    }
    wrd_status::WRD_OK
}

/// List the connectors of a DRM device: `card_path` (NULL for
/// `/dev/dri/card0`) or, when `fd >= 0`, that open DRM fd (not taken: it
/// stays the caller's). Writes up to `cap` entries to `out` and the number
/// of connectors to `*n_out`; pass `out = NULL, cap = 0` to ask the count.
/// Needs no DRM master. Any thread.
///
/// Errors: WRD_ERR_NULL_POINTER (`n_out` NULL, or `out` NULL with `cap > 0`);
/// WRD_ERR_BUFFER_TOO_SMALL (`*n_out` says how many are needed);
/// WRD_ERR_IO (no such device: errno ENOENT, or another I/O error);
/// WRD_ERR_PERMISSION (the device may not be opened);
/// WRD_ERR_UNSUPPORTED (not a KMS device).
#[no_mangle]
pub extern "C" fn wrd_drm_list_connectors(
    card_path: *const c_char,
    fd: c_int,
    out: *mut wrd_drm_connector,
    cap: usize,
    n_out: *mut usize,
) -> wrd_status {
    ffi_panic_boundary! {
        if n_out.is_null() || (out.is_null() && cap > 0) {
            return wrd_status::WRD_ERR_NULL_POINTER;
        }
        let list = match device(card_path, fd).and_then(|d| d.connectors()) {
            Ok(l) => l,
            Err(e) => return e.status(),
        };
        let items: Vec<wrd_drm_connector> = list
            .iter()
            .map(|c| {
                let mut name = [0 as c_char; 32];
                for (d, s) in name.iter_mut().zip(c.name.bytes().take(31)) {
                    *d = s as c_char;
                }
                wrd_drm_connector {
                    id: c.id,
                    connection: match c.state {
                        ConnectionState::Connected => WRD_DRM_CONNECTED,
                        ConnectionState::Disconnected => WRD_DRM_DISCONNECTED,
                        ConnectionState::Unknown => WRD_DRM_CONNECTION_UNKNOWN,
                    },
                    crtc_id: c.crtc.unwrap_or(0),
                    n_modes: c.modes.len() as u32,
                    name,
                }
            })
            .collect();
        // SAFETY: pointers checked above; sizes are the caller's contract.
        unsafe { fill(&items, out, cap, n_out) }
    }
}

/// List the modes connector `connector_id` offers (device as for
/// `wrd_drm_list_connectors`), the same way: up to `cap` entries to `out`,
/// the count to `*n_out`. Any thread.
///
/// Errors: as `wrd_drm_list_connectors`, plus WRD_ERR_NODE_NOT_FOUND (no
/// such connector).
#[no_mangle]
pub extern "C" fn wrd_drm_connector_modes(
    card_path: *const c_char,
    fd: c_int,
    connector_id: u32,
    out: *mut wrd_drm_mode,
    cap: usize,
    n_out: *mut usize,
) -> wrd_status {
    ffi_panic_boundary! {
        if n_out.is_null() || (out.is_null() && cap > 0) {
            return wrd_status::WRD_ERR_NULL_POINTER;
        }
        let list = match device(card_path, fd).and_then(|d| d.connectors()) {
            Ok(l) => l,
            Err(e) => return e.status(),
        };
        let Some(c) = list.iter().find(|c| c.id == connector_id) else {
            return wrd_status::WRD_ERR_NODE_NOT_FOUND;
        };
        let items: Vec<wrd_drm_mode> = c.modes.iter().map(c_mode).collect();
        // SAFETY: pointers checked above; sizes are the caller's contract.
        unsafe { fill(&items, out, cap, n_out) }
    }
}

/// List the CRTCs of a DRM device (device as for `wrd_drm_list_connectors`),
/// the same way: up to `cap` entries to `out`, the count to `*n_out`. Any
/// thread.
///
/// Errors: as `wrd_drm_list_connectors`.
#[no_mangle]
pub extern "C" fn wrd_drm_list_crtcs(
    card_path: *const c_char,
    fd: c_int,
    out: *mut wrd_drm_crtc,
    cap: usize,
    n_out: *mut usize,
) -> wrd_status {
    ffi_panic_boundary! {
        if n_out.is_null() || (out.is_null() && cap > 0) {
            return wrd_status::WRD_ERR_NULL_POINTER;
        }
        let list = match device(card_path, fd).and_then(|d| d.crtcs()) {
            Ok(l) => l,
            Err(e) => return e.status(),
        };
        let items: Vec<wrd_drm_crtc> = list
            .iter()
            .map(|c| wrd_drm_crtc {
                id: c.id,
                index: c.index,
                active: c.mode.is_some() as u32,
                fb_id: c.fb.unwrap_or(0),
                x: c.x,
                y: c.y,
                mode: c.mode.as_ref().map(c_mode).unwrap_or_default(),
            })
            .collect();
        // SAFETY: pointers checked above; sizes are the caller's contract.
        unsafe { fill(&items, out, cap, n_out) }
    }
}

/// Create a source that captures what a CRTC scans out, as DMA-BUF frames.
///
/// Device: `card_path` (NULL for `/dev/dri/card0`), or, when `fd >= 0`, that
/// open DRM fd, duplicated (the caller keeps its own; a dup of a DRM master
/// fd is master too). Target: `connector_id` (the CRTC driving it, followed
/// when it changes), or, when `connector_id` is 0, `crtc_id`. Any thread;
/// the source may be used from any thread (calls are serialised).
///
/// Capturing needs DRM master or CAP_SYS_ADMIN: the kernel gives
/// framebuffer handles to no one else; without them
/// `wrd_drm_source_capture` fails with WRD_ERR_PERMISSION.
///
/// Errors: WRD_ERR_NULL_POINTER (`out` NULL); WRD_ERR_INVALID_ARGUMENT (both
/// ids 0, or a path that is not UTF-8); WRD_ERR_IO (no such device: errno
/// ENOENT, or another I/O error); WRD_ERR_PERMISSION (the device may not be
/// opened); WRD_ERR_UNSUPPORTED (not a KMS device); WRD_ERR_NODE_NOT_FOUND
/// (no such connector or CRTC).
#[no_mangle]
pub extern "C" fn wrd_drm_source_new(
    card_path: *const c_char,
    fd: c_int,
    connector_id: u32,
    crtc_id: u32,
    out: *mut *mut wrd_drm_source,
) -> wrd_status {
    ffi_panic_boundary! {
        if out.is_null() {
            return wrd_status::WRD_ERR_NULL_POINTER;
        }
        // SAFETY: `out` is non-NULL and writable per the contract.
        unsafe { out.write(std::ptr::null_mut()) };
        let target = match (connector_id, crtc_id) {
            (0, 0) => return wrd_status::WRD_ERR_INVALID_ARGUMENT,
            (0, c) => Target::Crtc(c),
            (c, _) => Target::Connector(c),
        };
        match device(card_path, fd).and_then(|d| DrmSource::new(d, target)) {
            Ok(s) => {
                let h = SOURCES.insert(Arc::new(Mutex::new(s)));
                // SAFETY: as above.
                unsafe { out.write(h as *mut wrd_drm_source) };
                wrd_status::WRD_OK
            }
            Err(e) => e.status(),
        }
    }
}

fn source_from(p: *const wrd_drm_source) -> std::result::Result<Arc<Mutex<DrmSource>>, wrd_status> {
    if p.is_null() {
        return Err(wrd_status::WRD_ERR_NULL_POINTER);
    }
    SOURCES
        .get(p as usize)
        .ok_or(wrd_status::WRD_ERR_INVALID_STATE)
}

fn give_frame(r: Result<crate::Frame>, out: *mut *mut wrd_frame) -> wrd_status {
    match r {
        Ok(f) => {
            // SAFETY: `out` is non-NULL (checked by the callers) and writable.
            unsafe { out.write(frame_handle_new(f)) };
            wrd_status::WRD_OK
        }
        Err(e) => e.status(),
    }
}

/// The frame the source's CRTC shows now, as an owned frame (release it
/// with `wrd_frame_release`): a DMA-BUF frame (`WRD_BUFFER_DMABUF`) with the
/// framebuffer's planes, fourcc and modifier (`DRM_FORMAT_MOD_INVALID` when
/// the framebuffer was made without one). Import it with a `wrd_importer`,
/// or read it with `wrd_dmabuf_read_pixels` when it is linear (dumb buffers
/// are). The framebuffer is exported once: while the CRTC shows the same
/// one, each call returns the same buffer (same `sequence`; its pixels are
/// the live scanout memory). Call it at the rate you want frames. Any thread.
///
/// Errors: WRD_ERR_NULL_POINTER; WRD_ERR_INVALID_STATE (unknown handle; or
/// the connector is disconnected, not driven by a CRTC, or its CRTC is off);
/// WRD_ERR_PERMISSION (neither DRM master nor CAP_SYS_ADMIN);
/// WRD_ERR_NODE_NOT_FOUND (the connector or CRTC went away);
/// WRD_ERR_UNSUPPORTED (a framebuffer format with no `WRD_FORMAT_*`);
/// WRD_ERR_IO.
#[no_mangle]
pub extern "C" fn wrd_drm_source_capture(
    src: *mut wrd_drm_source,
    out: *mut *mut wrd_frame,
) -> wrd_status {
    ffi_panic_boundary! {
        if out.is_null() {
            return wrd_status::WRD_ERR_NULL_POINTER;
        }
        // SAFETY: non-NULL and writable per the contract.
        unsafe { out.write(std::ptr::null_mut()) };
        let s = match source_from(src) {
            Ok(s) => s,
            Err(e) => return e,
        };
        let r = s.lock().capture();
        give_frame(r, out)
    }
}

/// Wait up to `timeout_ms` for the CRTC to show a framebuffer other than the
/// last one captured (a page flip or a mode change) and return it as
/// `wrd_drm_source_capture` does. Waits on vblanks where the driver has
/// them, else checks every `poll_ms` (0: 16). The first call returns the
/// current frame at once. Any thread.
///
/// Errors: as `wrd_drm_source_capture`, plus WRD_ERR_TIMEOUT.
#[no_mangle]
pub extern "C" fn wrd_drm_source_next_frame(
    src: *mut wrd_drm_source,
    timeout_ms: u32,
    poll_ms: u32,
    out: *mut *mut wrd_frame,
) -> wrd_status {
    ffi_panic_boundary! {
        if out.is_null() {
            return wrd_status::WRD_ERR_NULL_POINTER;
        }
        // SAFETY: non-NULL and writable per the contract.
        unsafe { out.write(std::ptr::null_mut()) };
        let s = match source_from(src) {
            Ok(s) => s,
            Err(e) => return e,
        };
        let poll = Duration::from_millis(if poll_ms == 0 { 16 } else { poll_ms.into() });
        let r = s
            .lock()
            .next_frame(Duration::from_millis(timeout_ms.into()), poll);
        give_frame(r, out)
    }
}

/// Destroy a source (NULL is ignored). Frames it gave stay valid until
/// released. A second destroy returns WRD_ERR_INVALID_STATE. Any thread.
#[no_mangle]
pub extern "C" fn wrd_drm_source_destroy(src: *mut wrd_drm_source) -> wrd_status {
    ffi_panic_boundary! {
        if src.is_null() {
            return wrd_status::WRD_OK;
        }
        match SOURCES.remove(src as usize) {
            Some(_) => wrd_status::WRD_OK,
            None => wrd_status::WRD_ERR_INVALID_STATE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_device_and_bad_arguments() {
        let mut src = std::ptr::null_mut();
        let path = c"/dev/dri/no-such-card";
        assert_eq!(
            wrd_drm_source_new(path.as_ptr(), -1, 1, 0, &mut src),
            wrd_status::WRD_ERR_IO
        );
        assert!(src.is_null());
        assert_eq!(
            wrd_drm_source_new(path.as_ptr(), -1, 0, 0, &mut src),
            wrd_status::WRD_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            wrd_drm_source_new(path.as_ptr(), -1, 1, 0, std::ptr::null_mut()),
            wrd_status::WRD_ERR_NULL_POINTER
        );
        let null = c"/dev/null";
        assert_eq!(
            wrd_drm_source_new(null.as_ptr(), -1, 1, 0, &mut src),
            wrd_status::WRD_ERR_UNSUPPORTED
        );
        let mut n = 0usize;
        assert_eq!(
            wrd_drm_list_connectors(path.as_ptr(), -1, std::ptr::null_mut(), 0, &mut n),
            wrd_status::WRD_ERR_IO
        );
        assert_eq!(
            wrd_drm_list_crtcs(path.as_ptr(), -1, std::ptr::null_mut(), 1, &mut n),
            wrd_status::WRD_ERR_NULL_POINTER
        );
        let mut f = std::ptr::null_mut();
        assert_eq!(
            wrd_drm_source_capture(std::ptr::null_mut(), &mut f),
            wrd_status::WRD_ERR_NULL_POINTER
        );
        assert_eq!(
            wrd_drm_source_capture(0x1234 as *mut wrd_drm_source, &mut f),
            wrd_status::WRD_ERR_INVALID_STATE
        );
        assert_eq!(
            wrd_drm_source_destroy(std::ptr::null_mut()),
            wrd_status::WRD_OK
        );
    }
}
