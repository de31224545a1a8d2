//! The scalar reference for the tests: per pixel, in floating point, from
//! the definitions (BT.601 / BT.709 Kr, Kb; limited range 16..235 luma,
//! 16..240 chroma), with its own rectangle coverage. Deliberately simple and
//! slow; it shares no code with the kernels.

use super::{Colorimetry, DstFormat, Matrix, Range, Rect, SrcFormat};
use crate::format::PixelFormat as P;

fn kr_kb(m: Matrix) -> (f64, f64) {
    match m {
        Matrix::Bt601 => (0.299, 0.114),
        Matrix::Bt709 => (0.2126, 0.0722),
    }
}

fn clamp8(v: f64) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// YUV to R, G, B.
pub fn yuv_to_rgb(y: u8, u: u8, v: u8, c: Colorimetry) -> [u8; 3] {
    let (kr, kb) = kr_kb(c.matrix);
    let kg = 1.0 - kr - kb;
    let (y, u, v) = (y as f64, u as f64 - 128.0, v as f64 - 128.0);
    let (y, u, v) = match c.range {
        Range::Limited => (
            (y - 16.0) * 255.0 / 219.0,
            u * 255.0 / 224.0,
            v * 255.0 / 224.0,
        ),
        Range::Full => (y, u, v),
    };
    let r = y + 2.0 * (1.0 - kr) * v;
    let b = y + 2.0 * (1.0 - kb) * u;
    let g = (y - kr * r - kb * b) / kg;
    [clamp8(r), clamp8(g), clamp8(b)]
}

/// R, G, B to unrounded Y, U, V.
pub fn rgb_to_yuv(r: u8, g: u8, b: u8, c: Colorimetry) -> [f64; 3] {
    let (kr, kb) = kr_kb(c.matrix);
    let kg = 1.0 - kr - kb;
    let (r, g, b) = (r as f64, g as f64, b as f64);
    let yf = kr * r + kg * g + kb * b;
    let pb = (b - yf) / (2.0 * (1.0 - kb));
    let pr = (r - yf) / (2.0 * (1.0 - kr));
    match c.range {
        Range::Limited => [
            16.0 + yf * 219.0 / 255.0,
            128.0 + pb * 224.0 / 255.0,
            128.0 + pr * 224.0 / 255.0,
        ],
        Range::Full => [yf, 128.0 + pb, 128.0 + pr],
    }
}

/// Source planes as owned vectors.
pub struct Img {
    pub planes: Vec<Vec<u8>>,
    pub strides: Vec<usize>,
}

/// Source pixel (x, y) as R, G, B, A.
fn src_rgba(f: SrcFormat, s: &Img, x: usize, y: usize, c: Colorimetry) -> [u8; 4] {
    let p0 = &s.planes[0];
    let s0 = s.strides[0];
    let px = |bpp: usize| &p0[y * s0 + x * bpp..y * s0 + x * bpp + bpp];
    match f {
        SrcFormat::Pixel(P::Bgrx) => {
            let p = px(4);
            [p[2], p[1], p[0], 255]
        }
        SrcFormat::Pixel(P::Bgra) => {
            let p = px(4);
            [p[2], p[1], p[0], p[3]]
        }
        SrcFormat::Pixel(P::Rgbx) => {
            let p = px(4);
            [p[0], p[1], p[2], 255]
        }
        SrcFormat::Pixel(P::Rgba) => {
            let p = px(4);
            [p[0], p[1], p[2], p[3]]
        }
        SrcFormat::Argb32 => {
            let p = px(4);
            [p[1], p[2], p[3], p[0]]
        }
        SrcFormat::Pixel(P::Rgb) | SrcFormat::Rgb24 => {
            let p = px(3);
            [p[0], p[1], p[2], 255]
        }
        SrcFormat::Pixel(P::Bgr) => {
            let p = px(3);
            [p[2], p[1], p[0], 255]
        }
        SrcFormat::Pixel(P::Gray8) => {
            let g = px(1)[0];
            [g, g, g, 255]
        }
        SrcFormat::Pixel(P::Nv12) => {
            let yy = p0[y * s0 + x];
            let uv = &s.planes[1][y / 2 * s.strides[1] + x / 2 * 2..];
            let [r, g, b] = yuv_to_rgb(yy, uv[0], uv[1], c);
            [r, g, b, 255]
        }
        SrcFormat::Pixel(P::I420) => {
            let yy = p0[y * s0 + x];
            let u = s.planes[1][y / 2 * s.strides[1] + x / 2];
            let v = s.planes[2][y / 2 * s.strides[2] + x / 2];
            let [r, g, b] = yuv_to_rgb(yy, u, v, c);
            [r, g, b, 255]
        }
        SrcFormat::Pixel(P::Yuy2) => {
            let m = &p0[y * s0 + x / 2 * 4..];
            let yy = m[(x % 2) * 2];
            let [r, g, b] = yuv_to_rgb(yy, m[1], m[3], c);
            [r, g, b, 255]
        }
    }
}

/// Whether pixel (x, y) of a `fw` x `fh` frame is written: it lies in a
/// `bx` x `by` block that meets one of the rectangles, clipped to the frame
/// (all pixels when `rects` is `None`).
pub fn covered(rects: Option<&[Rect]>, fw: u32, fh: u32, x: u32, y: u32, bx: u32, by: u32) -> bool {
    let Some(rects) = rects else { return true };
    let (cx, cy) = (x / bx, y / by);
    rects.iter().any(|r| {
        let (x1, y1) = (
            (r.x as u64 + r.w as u64).min(fw as u64),
            (r.y as u64 + r.h as u64).min(fh as u64),
        );
        if r.x as u64 >= x1 || r.y as u64 >= y1 {
            return false;
        }
        // Block (cx, cy) spans [cx*bx, (cx+1)*bx) x [cy*by, (cy+1)*by).
        (cx as u64 * bx as u64) < x1
            && ((cx as u64 + 1) * bx as u64) > r.x as u64
            && (cy as u64 * by as u64) < y1
            && ((cy as u64 + 1) * by as u64) > r.y as u64
    })
}

/// Reference conversion into `dst` (whose planes already hold the bytes
/// that uncovered pixels keep).
#[allow(clippy::too_many_arguments)]
pub fn convert(
    f: SrcFormat,
    s: &Img,
    w: u32,
    h: u32,
    df: DstFormat,
    dst: &mut Img,
    rects: Option<&[Rect]>,
    c: Colorimetry,
) {
    let (sx, sy) = f.layout().subsampling();
    let (dx, dy) = df.layout().subsampling();
    let (bx, by) = (sx.max(dx) as u32, sy.max(dy) as u32);
    match df {
        DstFormat::Bgra | DstFormat::Rgba => {
            for y in 0..h {
                for x in 0..w {
                    if !covered(rects, w, h, x, y, bx, by) {
                        continue;
                    }
                    let [r, g, b, a] = src_rgba(f, s, x as usize, y as usize, c);
                    let o = y as usize * dst.strides[0] + 4 * x as usize;
                    let px = if df == DstFormat::Bgra {
                        [b, g, r, a]
                    } else {
                        [r, g, b, a]
                    };
                    dst.planes[0][o..o + 4].copy_from_slice(&px);
                }
            }
        }
        DstFormat::I420 | DstFormat::Nv12 => {
            for y in 0..h {
                for x in 0..w {
                    if covered(rects, w, h, x, y, bx, by) {
                        let [r, g, b, _] = src_rgba(f, s, x as usize, y as usize, c);
                        let yy = rgb_to_yuv(r, g, b, c)[0];
                        dst.planes[0][y as usize * dst.strides[0] + x as usize] = clamp8(yy);
                    }
                }
            }
            for cy in 0..h.div_ceil(2) {
                for cx in 0..w.div_ceil(2) {
                    if !covered(rects, w, h, 2 * cx, 2 * cy, bx, by) {
                        continue;
                    }
                    let (mut su, mut sv, mut n) = (0.0, 0.0, 0.0);
                    for y in 2 * cy..(2 * cy + 2).min(h) {
                        for x in 2 * cx..(2 * cx + 2).min(w) {
                            let [r, g, b, _] = src_rgba(f, s, x as usize, y as usize, c);
                            let [_, u, v] = rgb_to_yuv(r, g, b, c);
                            su += u;
                            sv += v;
                            n += 1.0;
                        }
                    }
                    let (u, v) = (clamp8(su / n), clamp8(sv / n));
                    let (cx, cy) = (cx as usize, cy as usize);
                    if df == DstFormat::Nv12 {
                        let o = cy * dst.strides[1] + 2 * cx;
                        dst.planes[1][o] = u;
                        dst.planes[1][o + 1] = v;
                    } else {
                        dst.planes[1][cy * dst.strides[1] + cx] = u;
                        dst.planes[2][cy * dst.strides[2] + cx] = v;
                    }
                }
            }
        }
    }
}
