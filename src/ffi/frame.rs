//! C API: frames.

use std::ffi::c_int;

use crate::error::wrd_status;
use crate::ffi::handles::HandleTable;
use crate::frame::{Frame, Pixels};

/// A frame (opaque). Frames given to a callback are borrowed for the call;
/// frames from `wrd_stream_pull` or `wrd_frame_ref` are owned and released
/// with `wrd_frame_release`.
pub struct wrd_frame {
    _private: [u8; 0],
}

/// Frames by handle, with whether the handle is borrowed (a callback's).
static FRAMES: HandleTable<(Frame, bool)> = HandleTable::new();

/// Pixel formats (`WRD_FORMAT_*`; the numbers never change).
pub const WRD_FORMAT_BGRX: u32 = 1;
pub const WRD_FORMAT_BGRA: u32 = 2;
pub const WRD_FORMAT_RGBX: u32 = 3;
pub const WRD_FORMAT_RGBA: u32 = 4;
pub const WRD_FORMAT_RGB: u32 = 5;
pub const WRD_FORMAT_BGR: u32 = 6;
pub const WRD_FORMAT_NV12: u32 = 7;
pub const WRD_FORMAT_I420: u32 = 8;
pub const WRD_FORMAT_YUY2: u32 = 9;
pub const WRD_FORMAT_GRAY8: u32 = 10;

/// Frame flags (`wrd_frame_info.flags`).
pub const WRD_FRAME_CORRUPTED: u32 = 1;
pub const WRD_FRAME_CURSOR_ONLY: u32 = 2;
pub const WRD_FRAME_DAMAGE_CLIPPED: u32 = 4;
pub const WRD_FRAME_FULL_DAMAGE: u32 = 8;
pub const WRD_FRAME_DAMAGE_ACCUMULATED: u32 = 16;

/// One plane of a frame.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct wrd_plane {
    /// SHM: first byte of the plane, read-only, valid while the frame is.
    /// NULL for DMA-BUF.
    pub data: *const u8,
    /// SHM: bytes readable from `data` (stride x (rows - 1) + row bytes).
    pub size: usize,
    /// Offset of the plane in its buffer (DMA-BUF: for import).
    pub offset: u32,
    /// Bytes from one row to the next.
    pub stride: u32,
    /// DMA-BUF: the plane's fd, owned by the frame (dup it to keep it). -1 for SHM.
    pub fd: c_int,
}

/// The cursor sent with a frame.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct wrd_cursor {
    pub id: u32,
    pub x: i32,
    pub y: i32,
    pub hotspot_x: i32,
    pub hotspot_y: i32,
    /// Non-zero when a new bitmap came with this frame.
    pub has_bitmap: u32,
    /// `WRD_FORMAT_*` of the bitmap (0 if not one of ours; see `bitmap_spa_format`).
    pub bitmap_format: u32,
    pub bitmap_spa_format: u32,
    pub bitmap_width: u32,
    pub bitmap_height: u32,
    pub bitmap_stride: u32,
    /// Valid while the frame is.
    pub bitmap: *const u8,
}

/// A rectangle (frame coordinates).
pub use crate::frame::wrd_region;

/// Everything about a frame. Pointers inside are valid while the frame is.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct wrd_frame_info {
    /// The producer's sequence number (Header meta), else the library's count.
    pub sequence: u64,
    /// Presentation time in ns from the Header meta (CLOCK_MONOTONIC for
    /// compositors); -1 when the producer sent none.
    pub pts_ns: i64,
    /// CLOCK_MONOTONIC ns when the frame reached the library.
    pub received_ns: u64,
    pub width: u32,
    pub height: u32,
    /// `WRD_FORMAT_*`.
    pub format: u32,
    /// `WRD_FRAME_*` flags.
    pub flags: u32,
    /// `WRD_BUFFER_*`.
    pub buffer_type: u32,
    /// DRM fourcc of the pixel format.
    pub drm_format: u32,
    /// DRM modifier (DMA-BUF frames; `DRM_FORMAT_MOD_INVALID` = implicit).
    pub modifier: u64,
    /// 0 for a cursor-only update.
    pub n_planes: u32,
    pub planes: [wrd_plane; 4],
    /// Changed rectangles, clipped to the frame. With `WRD_FRAME_FULL_DAMAGE`
    /// it is the whole frame.
    pub n_damage: u32,
    pub damage: *const wrd_region,
    /// Non-zero when `crop` is set (the producer's VideoCrop, clipped).
    pub has_crop: u32,
    pub crop: wrd_region,
    /// SPA video transform (0 normal, 1..3 rotations, 4..7 flipped).
    pub transform: u32,
    /// Non-zero when `cursor` is set.
    pub has_cursor: u32,
    pub cursor: wrd_cursor,
    /// Colour matrix (0 unknown, 1 BT.601, 2 BT.709) and range (0 unknown,
    /// 1 limited, 2 full) the producer stated.
    pub color_matrix: u32,
    pub color_range: u32,
    /// Explicit sync (PipeWire >= 1.2 producers): non-zero when set. Wait
    /// for `acquire_point` on the timeline syncobj `acquire_fd` before
    /// reading; the library signals `release_point` on `release_fd` when
    /// the frame is released (or dropped by the library). Fds owned by the
    /// frame.
    pub has_sync: u32,
    pub acquire_fd: c_int,
    pub acquire_point: u64,
    pub release_fd: c_int,
    pub release_point: u64,
}

pub(crate) fn frame_handle_new(f: Frame) -> *mut wrd_frame {
    FRAMES.insert((f, false)) as *mut wrd_frame
}

/// Run `f` with a handle for a frame borrowed for the duration of a callback.
pub(crate) fn with_borrowed_frame(frame: &Frame, f: impl FnOnce(*const wrd_frame)) {
    let h = FRAMES.insert((frame.clone(), true));
    f(h as *const wrd_frame);
    FRAMES.remove(h);
}

pub(crate) fn frame_from(p: *const wrd_frame) -> Result<Frame, wrd_status> {
    if p.is_null() {
        return Err(wrd_status::WRD_ERR_NULL_POINTER);
    }
    FRAMES
        .get(p as usize)
        .map(|(f, _)| f)
        .ok_or(wrd_status::WRD_ERR_INVALID_STATE)
}

/// Fill `*out` with the frame's data and metadata. Pointers inside stay
/// valid while the frame is (until the callback returns, or until
/// `wrd_frame_release`); nothing in `*out` is owned by the caller. Any
/// thread.
///
/// Errors: `WRD_ERR_NULL_POINTER` (frame, out), `WRD_ERR_INVALID_STATE`
/// (released frame, or a callback's frame after the callback returned).
#[no_mangle]
pub extern "C" fn wrd_frame_get_info(
    frame: *const wrd_frame,
    out: *mut wrd_frame_info,
) -> wrd_status {
    ffi_panic_boundary! {
        if out.is_null() {
            return wrd_status::WRD_ERR_NULL_POINTER;
        }
        let f = match frame_from(frame) {
            Ok(f) => f,
            Err(s) => return s,
        };
        let d = f.data();
        let empty = wrd_plane { data: std::ptr::null(), size: 0, offset: 0, stride: 0, fd: -1 };
        let mut planes = [empty; 4];
        let (buffer_type, modifier, n) = match &d.pixels {
            Pixels::None => (0, 0, 0),
            Pixels::Shm(ps) => {
                for (i, p) in ps.iter().take(4).enumerate() {
                    planes[i] = wrd_plane {
                        data: p.as_ptr(),
                        size: p.len,
                        offset: p.offset as u32,
                        stride: p.stride as u32,
                        fd: -1,
                    };
                }
                (1, 0, ps.len().min(4))
            }
            Pixels::Dmabuf { modifier, planes: ps } => {
                for (i, p) in ps.iter().take(4).enumerate() {
                    planes[i] = wrd_plane {
                        data: std::ptr::null(),
                        size: 0,
                        offset: p.offset,
                        stride: p.stride,
                        fd: p.fd,
                    };
                }
                (3, *modifier, ps.len().min(4))
            }
        };
        let cursor = d.cursor.as_ref();
        let bitmap = cursor.and_then(|c| c.bitmap.as_ref());
        let info = wrd_frame_info {
            sequence: d.sequence,
            pts_ns: d.pts_ns,
            received_ns: d.received_ns,
            width: d.width,
            height: d.height,
            format: d.format as u32,
            flags: d.flags,
            buffer_type,
            drm_format: d.format.to_drm() as u32,
            modifier,
            n_planes: n as u32,
            planes,
            n_damage: d.damage.len() as u32,
            damage: d.damage.as_ptr(),
            has_crop: d.crop.is_some() as u32,
            crop: d.crop.unwrap_or_default(),
            transform: d.transform,
            has_cursor: cursor.is_some() as u32,
            cursor: wrd_cursor {
                id: cursor.map(|c| c.id).unwrap_or(0),
                x: cursor.map(|c| c.x).unwrap_or(0),
                y: cursor.map(|c| c.y).unwrap_or(0),
                hotspot_x: cursor.map(|c| c.hotspot_x).unwrap_or(0),
                hotspot_y: cursor.map(|c| c.hotspot_y).unwrap_or(0),
                has_bitmap: bitmap.is_some() as u32,
                bitmap_format: bitmap.and_then(|b| b.format).map(|f| f as u32).unwrap_or(0),
                bitmap_spa_format: bitmap.map(|b| b.spa_format).unwrap_or(0),
                bitmap_width: bitmap.map(|b| b.width).unwrap_or(0),
                bitmap_height: bitmap.map(|b| b.height).unwrap_or(0),
                bitmap_stride: bitmap.map(|b| b.stride).unwrap_or(0),
                bitmap: bitmap.map(|b| b.pixels.as_ptr()).unwrap_or(std::ptr::null()),
            },
            color_matrix: d.matrix as u32,
            color_range: d.range as u32,
            has_sync: d.sync.is_some() as u32,
            acquire_fd: d.sync.map(|s| s.acquire_fd).unwrap_or(-1),
            acquire_point: d.sync.map(|s| s.acquire_point).unwrap_or(0),
            release_fd: d.sync.map(|s| s.release_fd).unwrap_or(-1),
            release_point: d.sync.map(|s| s.release_point).unwrap_or(0),
        };
        // SAFETY: non-NULL and writable per the contract. The pointers in
        // `info` point into `f`'s data, which lives as long as the caller's
        // frame handle (the table holds another reference to the same Arc).
        unsafe { *out = info };
        wrd_status::WRD_OK
    }
}

/// Take a reference to a frame (for example, one given to a callback) so
/// that it stays valid past the callback; its PipeWire buffer stays held
/// until `wrd_frame_release`. Counts towards the stream's `max_held`.
/// `*out` is a new handle owned by the caller. Any thread.
///
/// Errors: `WRD_ERR_NULL_POINTER` (frame, out), `WRD_ERR_INVALID_STATE`
/// (released frame, or a callback's frame after the callback returned).
#[no_mangle]
pub extern "C" fn wrd_frame_ref(frame: *const wrd_frame, out: *mut *mut wrd_frame) -> wrd_status {
    ffi_panic_boundary! {
        if out.is_null() {
            return wrd_status::WRD_ERR_NULL_POINTER;
        }
        match frame_from(frame) {
            Ok(f) => {
                // SAFETY: non-NULL and writable per the contract.
                unsafe { *out = frame_handle_new(f) };
                wrd_status::WRD_OK
            }
            Err(s) => s,
        }
    }
}

/// Release a frame from `wrd_stream_pull` or `wrd_frame_ref`. NULL is
/// ignored; releasing a frame twice (or a borrowed callback frame) returns
/// `WRD_ERR_INVALID_STATE` and changes nothing. Any thread.
#[no_mangle]
pub extern "C" fn wrd_frame_release(frame: *mut wrd_frame) -> wrd_status {
    ffi_panic_boundary! {
        if frame.is_null() {
            return wrd_status::WRD_OK;
        }
        match FRAMES.get(frame as usize) {
            Some((_, false)) => {
                drop(FRAMES.remove(frame as usize));
                wrd_status::WRD_OK
            }
            _ => wrd_status::WRD_ERR_INVALID_STATE,
        }
    }
}

/// `wrd_frame_convert` flag: write only the frame's damage rectangles.
pub const WRD_CONVERT_DAMAGE_ONLY: u32 = 1;

/// Convert a frame's pixels into a caller's buffer as `WRD_FORMAT_BGRA` or
/// `WRD_FORMAT_RGBA` (`dst_format`), `dst_stride` bytes per row (at least
/// width x 4), `dst_len` bytes in all (at least stride x (height - 1) +
/// width x 4). With `WRD_CONVERT_DAMAGE_ONLY` in `flags`, only the frame's
/// damage is written and the rest of `dst` is left as it was, so a buffer
/// kept across frames stays current at a fraction of the cost. `threads`: 1
/// converts on the calling thread, 0 uses every CPU.
///
/// Errors: `WRD_ERR_NULL_POINTER`, `WRD_ERR_INVALID_STATE` (released frame),
/// `WRD_ERR_INVALID_ARGUMENT` (format), `WRD_ERR_BUFFER_TOO_SMALL`,
/// `WRD_ERR_UNSUPPORTED` (DMA-BUF or cursor-only frames). Any thread.
#[no_mangle]
pub extern "C" fn wrd_frame_convert(
    frame: *const wrd_frame,
    dst_format: u32,
    dst: *mut u8,
    dst_len: usize,
    dst_stride: usize,
    flags: u32,
    threads: u32,
) -> wrd_status {
    ffi_panic_boundary! {
        if dst.is_null() {
            return wrd_status::WRD_ERR_NULL_POINTER;
        }
        let f = match frame_from(frame) {
            Ok(f) => f,
            Err(s) => return s,
        };
        let fmt = match dst_format {
            WRD_FORMAT_BGRA => crate::convert::DstFormat::Bgra,
            WRD_FORMAT_RGBA => crate::convert::DstFormat::Rgba,
            _ => return wrd_status::WRD_ERR_INVALID_ARGUMENT,
        };
        // SAFETY: the caller provides `dst_len` writable bytes at `dst`
        // (documented above); conversion checks every write against it.
        let out = unsafe { std::slice::from_raw_parts_mut(dst, dst_len) };
        match f.convert_into(fmt, out, dst_stride, flags & WRD_CONVERT_DAMAGE_ONLY != 0, threads as usize) {
            Ok(()) => wrd_status::WRD_OK,
            Err(e) => e.status(),
        }
    }
}

/// The stream importer's import of a DMA-BUF frame (its EGLImage or
/// VkImage, imported once per PipeWire buffer), as a new reference that the
/// caller releases with `wrd_imported_release`; the import itself lives until
/// every reference and every frame of that buffer is gone. Returns
/// `WRD_ERR_UNSUPPORTED` for SHM frames or streams without an importer.
/// Any thread (EGL objects are used on the caller's context: see the
/// importer functions).
#[no_mangle]
pub extern "C" fn wrd_frame_get_imported(
    frame: *const wrd_frame,
    out: *mut *mut crate::ffi::import::wrd_imported,
) -> wrd_status {
    ffi_panic_boundary! {
        if out.is_null() {
            return wrd_status::WRD_ERR_NULL_POINTER;
        }
        let f = match frame_from(frame) {
            Ok(f) => f,
            Err(s) => return s,
        };
        match f.imported() {
            Some(i) => {
                // SAFETY: `out` is non-NULL and writable per the contract.
                unsafe { *out = crate::ffi::import::imported_handle_new(i.clone()) };
                wrd_status::WRD_OK
            }
            None => wrd_status::WRD_ERR_UNSUPPORTED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::PixelFormat;
    use crate::frame::flags;

    #[test]
    fn c_constants_match_the_rust_values() {
        assert_eq!(WRD_FRAME_CORRUPTED, flags::CORRUPTED);
        assert_eq!(WRD_FRAME_CURSOR_ONLY, flags::CURSOR_ONLY);
        assert_eq!(WRD_FRAME_DAMAGE_CLIPPED, flags::DAMAGE_CLIPPED);
        assert_eq!(WRD_FRAME_FULL_DAMAGE, flags::FULL_DAMAGE);
        assert_eq!(WRD_FRAME_DAMAGE_ACCUMULATED, flags::DAMAGE_ACCUMULATED);
        let c = [
            WRD_FORMAT_BGRX,
            WRD_FORMAT_BGRA,
            WRD_FORMAT_RGBX,
            WRD_FORMAT_RGBA,
            WRD_FORMAT_RGB,
            WRD_FORMAT_BGR,
            WRD_FORMAT_NV12,
            WRD_FORMAT_I420,
            WRD_FORMAT_YUY2,
            WRD_FORMAT_GRAY8,
        ];
        for (v, f) in c.iter().zip(PixelFormat::ALL) {
            assert_eq!(*v, f as u32);
        }
    }
}
