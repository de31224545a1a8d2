//! The C ABI of pixel conversion: a plane-level call over caller memory.
//! (The frame-level call, a delivered frame into a caller's buffer using its
//! damage, is built on the same safe `convert::convert`.)

use std::ffi::c_void;

use crate::convert::{
    self, Backend, Colorimetry, DstFormat, DstPlanes, Matrix, Options, Range, Rect, SimdLevel,
    SrcFormat, SrcPlanes,
};
use crate::error::wrd_status;
use crate::format::PixelFormat;

/// Source format value of the raw ARGB32 loader (bytes A, R, G, B), beside
/// the `wrd_pixel_format` values 1..=10.
pub const WRD_CONVERT_SRC_ARGB32: u32 = 100;
/// Source format value of the raw RGB24 loader (bytes R, G, B; the same
/// layout as RGB).
pub const WRD_CONVERT_SRC_RGB24: u32 = 101;

/// `wrd_convert_options.matrix`: ITU-R BT.601 (the default, 0).
pub const WRD_MATRIX_BT601: u32 = 0;
/// `wrd_convert_options.matrix`: ITU-R BT.709.
pub const WRD_MATRIX_BT709: u32 = 1;
/// `wrd_convert_options.range`: limited ("TV") range, the default (0).
pub const WRD_RANGE_LIMITED: u32 = 0;
/// `wrd_convert_options.range`: full ("PC") range.
pub const WRD_RANGE_FULL: u32 = 1;
/// `wrd_convert_options.threads`: one thread per available CPU.
pub const WRD_CONVERT_THREADS_AUTO: u32 = u32::MAX;

/// A rectangle in pixels.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub struct wrd_rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// Up to three source planes: `data[i]` points at `len[i]` readable bytes,
/// rows `stride[i]` bytes apart. Planes a format does not use are ignored
/// (set them to NULL, 0, 0).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[allow(non_camel_case_types)]
pub struct wrd_planes {
    pub data: [*const u8; 3],
    pub len: [usize; 3],
    pub stride: [usize; 3],
}

/// Up to three destination planes: `data[i]` points at `len[i]` writable
/// bytes, rows `stride[i]` bytes apart.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[allow(non_camel_case_types)]
pub struct wrd_planes_mut {
    pub data: [*mut u8; 3],
    pub len: [usize; 3],
    pub stride: [usize; 3],
}

/// Conversion options. All zeros is the default: BT.601, limited range, the
/// calling thread only, the best SIMD level, the default backend.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
#[allow(non_camel_case_types)]
pub struct wrd_convert_options {
    /// `WRD_MATRIX_BT601` (0) or `WRD_MATRIX_BT709` (1).
    pub matrix: u32,
    /// `WRD_RANGE_LIMITED` (0) or `WRD_RANGE_FULL` (1).
    pub range: u32,
    /// 0 or 1: the calling thread only; n: split the frame across at most n
    /// threads (small jobs use fewer); `WRD_CONVERT_THREADS_AUTO`: one per CPU.
    pub threads: u32,
    /// 0: the best level this CPU has; 1: scalar; 2: SSE4.1; 3: AVX2 (a level
    /// the CPU lacks is `WRD_ERR_INVALID_ARGUMENT`).
    pub simd_level: u32,
    /// 0: the fastest measured code per pair; 1: only wrd-capture's own
    /// kernels; 2: the `yuv` crate wherever it has the pair.
    pub backend: u32,
}

fn options(o: &wrd_convert_options) -> Option<Options> {
    let matrix = match o.matrix {
        WRD_MATRIX_BT601 => Matrix::Bt601,
        WRD_MATRIX_BT709 => Matrix::Bt709,
        _ => return None,
    };
    let range = match o.range {
        WRD_RANGE_LIMITED => Range::Limited,
        WRD_RANGE_FULL => Range::Full,
        _ => return None,
    };
    let threads = match o.threads {
        0 => 1,
        WRD_CONVERT_THREADS_AUTO => 0,
        n => n as usize,
    };
    let level = match o.simd_level {
        0 => None,
        1 => Some(SimdLevel::Scalar),
        2 => Some(SimdLevel::Sse41),
        3 => Some(SimdLevel::Avx2),
        _ => return None,
    };
    let backend = match o.backend {
        0 => Backend::Auto,
        1 => Backend::Own,
        2 => Backend::YuvCrate,
        _ => return None,
    };
    Some(Options {
        colorimetry: Colorimetry { matrix, range },
        threads,
        level,
        backend,
    })
}

fn parse_src(v: u32) -> Option<SrcFormat> {
    match v {
        WRD_CONVERT_SRC_ARGB32 => Some(SrcFormat::Argb32),
        WRD_CONVERT_SRC_RGB24 => Some(SrcFormat::Rgb24),
        v => PixelFormat::from_raw(v).map(SrcFormat::Pixel),
    }
}

fn parse_dst(v: u32) -> Option<DstFormat> {
    DstFormat::ALL
        .iter()
        .copied()
        .find(|d| d.layout() as u32 == v)
}

/// Whether two byte ranges overlap (empty ranges never do).
fn overlap(a: (usize, usize), b: (usize, usize)) -> bool {
    a.1 > 0 && b.1 > 0 && a.0 < b.0.saturating_add(b.1) && b.0 < a.0.saturating_add(a.1)
}

/// Convert pixels between caller-owned planes.
///
/// `src_format` is a `wrd_pixel_format` value (1 = BGRx ... 10 = GRAY8) or
/// `WRD_CONVERT_SRC_ARGB32` (100) or `WRD_CONVERT_SRC_RGB24` (101).
/// `dst_format` is `WRD_PIXEL_FORMAT_BGRA` (2), `_RGBA` (4), `_NV12` (7) or
/// `_I420` (8). Every format converts to BGRA and RGBA; BGRx, BGRA, RGBx and
/// RGBA also convert to NV12 and I420.
///
/// `width` x `height` is the frame size (any size, odd included). Each
/// plane the formats use must span `stride * (rows - 1) + row_bytes` bytes
/// of its `len` (the last row need not be padded), with `stride` at least
/// the row size. Everything is checked before the first byte is read.
///
/// `rects`: NULL converts the whole frame; otherwise the `n_rects`
/// rectangles are converted (clipped to the frame, widened to whole 2x2 or
/// 2x1 chroma blocks for subsampled formats) and every other destination
/// byte keeps its value. `n_rects` 0 with a non-NULL `rects` converts nothing.
///
/// `options`: NULL for the defaults (BT.601 limited range, calling thread).
///
/// Ownership: nothing is retained after the call returns. The destination
/// planes must not overlap each other or a source plane
/// (`WRD_ERR_INVALID_ARGUMENT` if they do).
///
/// Threads: any thread; calls on disjoint memory may run concurrently. With
/// `options->threads` above 1 the call itself runs on worker threads and
/// returns when they are done.
///
/// Errors: `WRD_ERR_NULL_POINTER` (a NULL `src` or `dst`, a used plane's
/// `data` NULL with a nonzero `len`, or NULL `rects` with nonzero `n_rects`),
/// `WRD_ERR_BUFFER_TOO_SMALL` (a plane's `len` is short),
/// `WRD_ERR_INVALID_ARGUMENT` (an unknown format or option value, a stride
/// below the row size, overlapping planes), `WRD_ERR_UNSUPPORTED` (the pair
/// is not converted).
///
/// # Safety
///
/// Each used `src->data[i]` must be valid for reads of `src->len[i]` bytes and
/// each used `dst->data[i]` for writes of `dst->len[i]` bytes for the whole
/// call, with no other thread writing them; `rects` must point at `n_rects`
/// `wrd_rect`s; `options` at a `wrd_convert_options`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn wrd_convert_planes(
    src_format: u32,
    src: *const wrd_planes,
    width: u32,
    height: u32,
    dst_format: u32,
    dst: *const wrd_planes_mut,
    rects: *const wrd_rect,
    n_rects: usize,
    options: *const wrd_convert_options,
) -> wrd_status {
    ffi_panic_boundary! {
        if src.is_null() || dst.is_null() {
            return wrd_status::WRD_ERR_NULL_POINTER;
        }
        // SAFETY: non-NULL, and the caller promises they point at the structs.
        let (src, dst) = unsafe { (&*src, &*dst) };
        let Some(sf) = parse_src(src_format) else {
            return wrd_status::WRD_ERR_INVALID_ARGUMENT;
        };
        let Some(df) = parse_dst(dst_format) else {
            return wrd_status::WRD_ERR_INVALID_ARGUMENT;
        };
        let opts = if options.is_null() {
            Options::default()
        } else {
            // SAFETY: non-NULL, and the caller promises it points at the struct.
            match self::options(unsafe { &*options }) {
                Some(o) => o,
                None => return wrd_status::WRD_ERR_INVALID_ARGUMENT,
            }
        };
        let rect_list: Option<Vec<Rect>> = if rects.is_null() {
            if n_rects != 0 {
                return wrd_status::WRD_ERR_NULL_POINTER;
            }
            None
        } else {
            // SAFETY: non-NULL, and the caller promises `n_rects` of them.
            let rs = unsafe { std::slice::from_raw_parts(rects, n_rects) };
            Some(rs.iter().map(|r| Rect::new(r.x, r.y, r.w, r.h)).collect())
        };
        let n_src = sf.layout().planes();
        let n_dst = df.layout().planes();
        // NULL data is only allowed for an empty plane.
        for i in 0..n_src {
            if src.data[i].is_null() && src.len[i] != 0 {
                return wrd_status::WRD_ERR_NULL_POINTER;
            }
        }
        for i in 0..n_dst {
            if dst.data[i].is_null() && dst.len[i] != 0 {
                return wrd_status::WRD_ERR_NULL_POINTER;
            }
        }
        // Destination planes must not alias each other or a source plane:
        // they become `&mut [u8]`.
        let range = |p: *const c_void, len: usize| (p as usize, len);
        for i in 0..n_dst {
            let d = range(dst.data[i].cast(), dst.len[i]);
            for j in 0..i {
                if overlap(d, range(dst.data[j].cast(), dst.len[j])) {
                    return wrd_status::WRD_ERR_INVALID_ARGUMENT;
                }
            }
            for j in 0..n_src {
                if overlap(d, range(src.data[j].cast(), src.len[j])) {
                    return wrd_status::WRD_ERR_INVALID_ARGUMENT;
                }
            }
        }
        let mut sp: [&[u8]; 3] = [&[], &[], &[]];
        for (i, s) in sp.iter_mut().enumerate().take(n_src) {
            if !src.data[i].is_null() {
                // SAFETY: the caller promises `len[i]` readable bytes at
                // `data[i]`, not written during the call.
                *s = unsafe { std::slice::from_raw_parts(src.data[i], src.len[i]) };
            }
        }
        let mut dp: [&mut [u8]; 3] = [&mut [], &mut [], &mut []];
        for (i, d) in dp.iter_mut().enumerate().take(n_dst) {
            if !dst.data[i].is_null() {
                // SAFETY: the caller promises `len[i]` writable bytes at
                // `data[i]`, used by no one else during the call; we checked
                // above that no other plane of this call overlaps them.
                *d = unsafe { std::slice::from_raw_parts_mut(dst.data[i], dst.len[i]) };
            }
        }
        let s = SrcPlanes { planes: sp, strides: src.stride };
        let mut d = DstPlanes { planes: dp, strides: dst.stride };
        match convert::convert(sf, &s, width, height, df, &mut d, rect_list.as_deref(), &opts) {
            Ok(()) => wrd_status::WRD_OK,
            Err(e) => e.status(),
        }
    }
}

/// Whether `wrd_convert_planes` converts `src_format` to `dst_format` (the
/// same values it takes). Any thread; never fails.
#[no_mangle]
pub extern "C" fn wrd_convert_supported(src_format: u32, dst_format: u32) -> bool {
    ffi_panic_boundary! {
        match (parse_src(src_format), parse_dst(dst_format)) {
            (Some(s), Some(d)) => convert::is_supported(s, d),
            _ => false,
        }
    }
}

/// The SIMD level conversions use on this CPU by default: 1 scalar, 2
/// SSE4.1, 3 AVX2 (the values of `wrd_convert_options.simd_level`). Any
/// thread; never fails.
#[no_mangle]
pub extern "C" fn wrd_convert_simd_level() -> u32 {
    ffi_panic_boundary! {
        match SimdLevel::detect() {
            SimdLevel::Scalar => 1,
            SimdLevel::Sse41 => 2,
            SimdLevel::Avx2 => 3,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planes(data: &[&[u8]], stride: &[usize]) -> wrd_planes {
        let mut p = wrd_planes {
            data: [std::ptr::null(); 3],
            len: [0; 3],
            stride: [0; 3],
        };
        for (i, d) in data.iter().enumerate() {
            p.data[i] = d.as_ptr();
            p.len[i] = d.len();
            p.stride[i] = stride[i];
        }
        p
    }

    #[test]
    fn c_call_converts_and_checks() {
        // 2x2 RGBA to BGRA.
        let src = [1u8, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
        let mut out = [0u8; 16];
        let s = planes(&[&src], &[8]);
        let d = wrd_planes_mut {
            data: [out.as_mut_ptr(), std::ptr::null_mut(), std::ptr::null_mut()],
            len: [16, 0, 0],
            stride: [8, 0, 0],
        };
        // SAFETY: all pointers are to live local buffers of the given lengths.
        let st = unsafe {
            wrd_convert_planes(4, &s, 2, 2, 2, &d, std::ptr::null(), 0, std::ptr::null())
        };
        assert_eq!(st, wrd_status::WRD_OK);
        assert_eq!(out, [3, 2, 1, 4, 7, 6, 5, 8, 11, 10, 9, 12, 15, 14, 13, 16]);

        // One rectangle: only pixel (1, 1) written.
        let mut out2 = [0u8; 16];
        let d2 = wrd_planes_mut {
            data: [
                out2.as_mut_ptr(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            ],
            ..d
        };
        let r = wrd_rect {
            x: 1,
            y: 1,
            w: 5,
            h: 5,
        };
        let o = wrd_convert_options {
            threads: WRD_CONVERT_THREADS_AUTO,
            ..Default::default()
        };
        // SAFETY: as above.
        let st = unsafe { wrd_convert_planes(4, &s, 2, 2, 2, &d2, &r, 1, &o) };
        assert_eq!(st, wrd_status::WRD_OK);
        assert_eq!(out2, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 14, 13, 16]);

        // Errors.
        // SAFETY: as above; NULL pointers are what is being tested.
        unsafe {
            assert_eq!(
                wrd_convert_planes(
                    4,
                    std::ptr::null(),
                    2,
                    2,
                    2,
                    &d,
                    std::ptr::null(),
                    0,
                    std::ptr::null()
                ),
                wrd_status::WRD_ERR_NULL_POINTER
            );
            assert_eq!(
                wrd_convert_planes(4, &s, 2, 2, 2, &d, std::ptr::null(), 3, std::ptr::null()),
                wrd_status::WRD_ERR_NULL_POINTER
            );
            assert_eq!(
                wrd_convert_planes(4, &s, 2, 3, 2, &d, std::ptr::null(), 0, std::ptr::null()),
                wrd_status::WRD_ERR_BUFFER_TOO_SMALL
            );
            assert_eq!(
                wrd_convert_planes(77, &s, 2, 2, 2, &d, std::ptr::null(), 0, std::ptr::null()),
                wrd_status::WRD_ERR_INVALID_ARGUMENT
            );
            assert_eq!(
                wrd_convert_planes(7, &s, 2, 2, 8, &d, std::ptr::null(), 0, std::ptr::null()),
                wrd_status::WRD_ERR_UNSUPPORTED
            );
            let bad = wrd_convert_options {
                matrix: 9,
                ..Default::default()
            };
            assert_eq!(
                wrd_convert_planes(4, &s, 2, 2, 2, &d, std::ptr::null(), 0, &bad),
                wrd_status::WRD_ERR_INVALID_ARGUMENT
            );
            // Destination overlapping the source.
            let alias = wrd_planes_mut {
                data: [
                    src.as_ptr() as *mut u8,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                ],
                ..d
            };
            assert_eq!(
                wrd_convert_planes(
                    4,
                    &s,
                    2,
                    2,
                    2,
                    &alias,
                    std::ptr::null(),
                    0,
                    std::ptr::null()
                ),
                wrd_status::WRD_ERR_INVALID_ARGUMENT
            );
        }
        assert!(wrd_convert_supported(WRD_CONVERT_SRC_ARGB32, 4));
        assert!(wrd_convert_supported(1, 7));
        assert!(!wrd_convert_supported(7, 8));
        assert!((1..=3).contains(&wrd_convert_simd_level()));
    }
}
