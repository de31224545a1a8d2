//! The `yuv` crate (0.8, the successor of yuvutils-rs). [`Backend::Auto`]
//! uses it at [`SimdLevel::Avx2`](super::SimdLevel) for 32-bit RGB to
//! I420/NV12, where it is faster than our kernel and within 1 of the
//! reference; [`Backend::YuvCrate`] uses it for every pair it has
//! (comparisons). Not for YUV sources by default: on out-of-range input it
//! is off by 20+, and for YUY2 it is slower than libyuv (see
//! `docs/convert.md`).
//!
//! The crate does its own run-time dispatch (AVX2 here), so it cannot be
//! forced to a lower level; it is never used when a lower level is forced.
//! `every_pair_matches_reference` holds `Backend::Auto` (so the crate's RGB
//! to 4:2:0) to the reference on random input; `yuv_crate_everywhere_in_range`
//! holds `Backend::YuvCrate` to it on in-range input.

use yuv::{
    BufferStoreMut, YuvBiPlanarImage, YuvBiPlanarImageMut, YuvConversionMode, YuvGrayImage,
    YuvPackedImage, YuvPlanarImage, YuvPlanarImageMut, YuvRange, YuvStandardMatrix,
};

use super::{Backend, DstView, Job, Matrix, Op, Range, Rect, SrcPlanes};

/// Whether [`Backend::Auto`] uses the crate for `op` (the measured choice).
fn chosen(op: Op) -> bool {
    matches!(op, Op::ToYuv420 { .. })
}

/// Convert `r` with the `yuv` crate if the backend and pair call for it.
/// Returns the rows left for our kernels: `None` if the crate did nothing
/// (then all of `r`), else the rest of `r` below what it converted.
///
/// The crate walks its slices in chunks of `stride` (or `2 * stride`) bytes
/// and converts as many rows as the slices hold, whatever `height` says;
/// with a last row shorter than its stride it skips it. So every slice
/// given to it is cut to exactly `stride * rows`, and rows (at most two)
/// whose full stride is not in a buffer are left to our kernels.
pub(crate) fn run_rect(
    job: &Job,
    src: &SrcPlanes<'_>,
    dst: &mut DstView<'_>,
    r: Rect,
) -> Option<Rect> {
    match job.backend {
        Backend::Own => return None,
        Backend::Auto if !chosen(job.op) => return None,
        _ => {}
    }
    if matches!(job.op, Op::Copy4 | Op::Swizzle4(_) | Op::Expand3(_)) {
        return None;
    }
    let range = match job.colorimetry.range {
        Range::Limited => YuvRange::Limited,
        Range::Full => YuvRange::Full,
    };
    let matrix = match job.colorimetry.matrix {
        Matrix::Bt601 => YuvStandardMatrix::Bt601,
        Matrix::Bt709 => YuvStandardMatrix::Bt709,
    };
    let mode = YuvConversionMode::Balanced;
    let (x, y, w, h) = (r.x as usize, r.y as usize, r.w, r.h);
    let ss = src.strides;
    let ds = dst.strides;
    let fr = dst.first_row;
    // The crate takes u32 strides.
    let s32 = to_u32(&ss)?;
    let d32 = to_u32(&ds)?;
    // Per plane: byte column of the region, for source and destination.
    let (sub420, scol, dcol): (bool, &[usize], &[usize]) = match job.op {
        Op::Nv12 { .. } => (true, &[x, x], &[4 * x]),
        Op::I420 { .. } => (true, &[x, x / 2, x / 2], &[4 * x]),
        Op::ToYuv420 { nv12: true, .. } => (true, &[4 * x], &[x, x]),
        Op::ToYuv420 { nv12: false, .. } => (true, &[4 * x], &[x, x / 2, x / 2]),
        Op::Yuy2 { .. } => (false, &[2 * x], &[4 * x]),
        _ => (false, &[x], &[4 * x]),
    };
    let prows = |p: usize, rows: usize| if p == 0 || !sub420 { rows } else { rows / 2 };
    let prow0 = |p: usize, row: usize| if p == 0 || !sub420 { row } else { row / 2 };
    // Rows the crate may convert: even for 4:2:0, and every plane must hold
    // the full stride of each, counted from the region's column.
    let step = if sub420 { 2 } else { 1 };
    let fits = |rows: usize| {
        scol.iter()
            .enumerate()
            .all(|(p, c)| (prow0(p, y) + prows(p, rows)) * ss[p] + c <= src.planes[p].len())
            && dcol.iter().enumerate().all(|(p, c)| {
                (prow0(p, y) - fr[p] + prows(p, rows)) * ds[p] + c <= dst.planes[p].len()
            })
    };
    let mut hc = (h as usize) / step * step;
    while hc > 0 && !fits(hc) {
        hc -= step;
    }
    if hc == 0 {
        return None;
    }
    let rest = Rect::new(r.x, r.y + hc as u32, r.w, h - hc as u32);
    let h = hc as u32;
    // Exact slices: plane p from the region's first row and column, `rows`
    // whole strides.
    let sp = |p: usize| {
        let a = prow0(p, y) * ss[p] + scol[p];
        &src.planes[p][a..a + prows(p, hc) * ss[p]]
    };
    let dr = |p: usize| {
        let a = (prow0(p, y) - fr[p]) * ds[p] + dcol[p];
        a..a + prows(p, hc) * ds[p]
    };
    let (r0, r1, r2) = (dr(0), dr(1.min(dcol.len() - 1)), dr(dcol.len() - 1));
    let [p0, p1, p2] = &mut dst.planes;
    let res = match job.op {
        Op::Nv12 { rgba } => {
            let img = YuvBiPlanarImage {
                y_plane: sp(0),
                y_stride: s32[0],
                uv_plane: sp(1),
                uv_stride: s32[1],
                width: w,
                height: h,
            };
            let out = &mut p0[r0.clone()];
            if rgba {
                yuv::yuv_nv12_to_rgba(&img, out, d32[0], range, matrix, mode)
            } else {
                yuv::yuv_nv12_to_bgra(&img, out, d32[0], range, matrix, mode)
            }
        }
        Op::I420 { rgba } => {
            let img = YuvPlanarImage {
                y_plane: sp(0),
                y_stride: s32[0],
                u_plane: sp(1),
                u_stride: s32[1],
                v_plane: sp(2),
                v_stride: s32[2],
                width: w,
                height: h,
            };
            let out = &mut p0[r0.clone()];
            if rgba {
                yuv::yuv420_to_rgba(&img, out, d32[0], range, matrix)
            } else {
                yuv::yuv420_to_bgra(&img, out, d32[0], range, matrix)
            }
        }
        Op::Yuy2 { rgba } => {
            let img = YuvPackedImage {
                yuy: sp(0),
                yuy_stride: s32[0],
                width: w,
                height: h,
            };
            let out = &mut p0[r0.clone()];
            if rgba {
                yuv::yuyv422_to_rgba(&img, out, d32[0], range, matrix)
            } else {
                yuv::yuyv422_to_bgra(&img, out, d32[0], range, matrix)
            }
        }
        Op::Gray => {
            let img = YuvGrayImage {
                y_plane: sp(0),
                y_stride: s32[0],
                width: w,
                height: h,
            };
            let out = &mut p0[r0.clone()];
            // GRAY8 is full-range gray: R = G = B = Y.
            yuv::yuv400_to_bgra(&img, out, d32[0], YuvRange::Full, YuvStandardMatrix::Bt601)
        }
        Op::ToYuv420 { order, nv12 } => {
            let rgba = order[0] == 0;
            let s = sp(0);
            let yp = BufferStoreMut::Borrowed(&mut p0[r0.clone()]);
            if nv12 {
                let mut img = YuvBiPlanarImageMut {
                    y_plane: yp,
                    y_stride: d32[0],
                    uv_plane: BufferStoreMut::Borrowed(&mut p1[r1.clone()]),
                    uv_stride: d32[1],
                    width: w,
                    height: h,
                };
                if rgba {
                    yuv::rgba_to_yuv_nv12(&mut img, s, s32[0], range, matrix, mode)
                } else {
                    yuv::bgra_to_yuv_nv12(&mut img, s, s32[0], range, matrix, mode)
                }
            } else {
                let mut img = YuvPlanarImageMut {
                    y_plane: yp,
                    y_stride: d32[0],
                    u_plane: BufferStoreMut::Borrowed(&mut p1[r1.clone()]),
                    u_stride: d32[1],
                    v_plane: BufferStoreMut::Borrowed(&mut p2[r2.clone()]),
                    v_stride: d32[2],
                    width: w,
                    height: h,
                };
                if rgba {
                    yuv::rgba_to_yuv420(&mut img, s, s32[0], range, matrix, mode)
                } else {
                    yuv::bgra_to_yuv420(&mut img, s, s32[0], range, matrix, mode)
                }
            }
        }
        Op::Copy4 | Op::Swizzle4(_) | Op::Expand3(_) => return None,
    };
    // On an error the crate has checked its arguments before writing; our
    // kernels then do the whole rectangle.
    match res {
        Ok(()) => Some(rest),
        Err(_) => None,
    }
}

fn to_u32(s: &[usize; 3]) -> Option<[u32; 3]> {
    Some([
        u32::try_from(s[0]).ok()?,
        u32::try_from(s[1]).ok()?,
        u32::try_from(s[2]).ok()?,
    ])
}
