//! Rectangle driver, fixed-point coefficients, scalar row kernels and the
//! per-level kernel tables.
//!
//! The scalar YUV to RGB kernel computes exactly what the SIMD kernels
//! compute (16-bit lanes, `pmulhrsw` rounding, saturating adds), so every
//! level gives the same bytes; the float reference in `reference.rs` is the
//! independent check (within 1 per channel).

use super::{external, DstView, Job, Matrix, Op, Range, Rect, SimdLevel, SrcPlanes, OPAQUE};

/// Coefficients for YUV to RGB in the form the kernels use:
///
/// ```text
/// yc = mulhrs((Y - y_off) << 7, cy) + 32     (Q6: cy = ys * 2^14)
/// u' = (U - 128) << 8, v' = (V - 128) << 8
/// R = yc + mulhrs(v', crv)                    (Q6: c = coef * 2^13)
/// G = yc - (mulhrs(u', cgu) + mulhrs(v', cgv))
/// B = yc + mulhrs(u', cbu)
/// out = clamp(X >> 6, 0, 255)    (yc carries the rounding: + 32)
/// ```
///
/// with `mulhrs(a, b) = (a * b + 2^14) >> 15` (SSSE3 `pmulhrsw`) and
/// saturating 16-bit adds. Every term is within 1/64 of a level of the exact
/// value, so the result is within 1 of the float reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct YuvToRgbK {
    pub y_off: i16,
    pub cy: i16,
    pub crv: i16,
    pub cgu: i16,
    pub cgv: i16,
    pub cbu: i16,
}

/// Kr and Kb of a matrix.
pub(crate) fn kr_kb(m: Matrix) -> (f64, f64) {
    match m {
        Matrix::Bt601 => (0.299, 0.114),
        Matrix::Bt709 => (0.2126, 0.0722),
    }
}

impl YuvToRgbK {
    pub fn new(c: super::Colorimetry) -> Self {
        let (kr, kb) = kr_kb(c.matrix);
        let kg = 1.0 - kr - kb;
        let (ys, cs, off) = match c.range {
            Range::Limited => (255.0 / 219.0, 255.0 / 224.0, 16),
            Range::Full => (1.0, 1.0, 0),
        };
        let q13 = |v: f64| (v * cs * 8192.0).round() as i16;
        Self {
            y_off: off,
            cy: (ys * 16384.0f64).round() as i16,
            crv: q13(2.0 * (1.0 - kr)),
            cgu: q13(2.0 * (1.0 - kb) * kb / kg),
            cgv: q13(2.0 * (1.0 - kr) * kr / kg),
            cbu: q13(2.0 * (1.0 - kb)),
        }
    }
}

#[inline(always)]
fn mulhrs(a: i16, b: i16) -> i16 {
    ((a as i32 * b as i32 + 0x4000) >> 15) as i16
}

#[inline(always)]
fn fin(x: i16) -> u8 {
    (x >> 6).clamp(0, 255) as u8
}

/// One pixel, YUV to (R, G, B), exactly as the SIMD kernels compute it.
#[inline(always)]
pub(crate) fn yuv_px(y: u8, u: u8, v: u8, k: &YuvToRgbK) -> (u8, u8, u8) {
    // The rounding constant (32 = 0.5 in Q6) is added to luma once.
    let yc = mulhrs((y as i16 - k.y_off) << 7, k.cy) + 32;
    let u8x = (u as i16 - 128) << 8;
    let v8x = (v as i16 - 128) << 8;
    let r = yc.saturating_add(mulhrs(v8x, k.crv));
    let g = yc.saturating_sub(mulhrs(u8x, k.cgu).saturating_add(mulhrs(v8x, k.cgv)));
    let b = yc.saturating_add(mulhrs(u8x, k.cbu));
    (fin(r), fin(g), fin(b))
}

#[inline(always)]
fn put(d: &mut [u8], (r, g, b): (u8, u8, u8), rgba: bool) {
    if rgba {
        d[0] = r;
        d[2] = b;
    } else {
        d[0] = b;
        d[2] = r;
    }
    d[1] = g;
    d[3] = 255;
}

/// Coefficients for RGB to YUV, Q15 integers (`Y = (yr R + yg G + yb B +
/// (y_off << 15) + 2^14) >> 15`; U and V from the sum of the 2x2 block, so
/// shifted by 17).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RgbToYuvK {
    pub y_off: i32,
    pub yr: i32,
    pub yg: i32,
    pub yb: i32,
    pub ur: i32,
    pub ug: i32,
    pub ub: i32,
    pub vr: i32,
    pub vg: i32,
    pub vb: i32,
}

impl RgbToYuvK {
    pub fn new(c: super::Colorimetry) -> Self {
        let (kr, kb) = kr_kb(c.matrix);
        let kg = 1.0 - kr - kb;
        let (ys, cs, off) = match c.range {
            Range::Limited => (219.0 / 255.0, 224.0 / 255.0, 16),
            Range::Full => (1.0, 1.0, 0),
        };
        let q = |v: f64| (v * 32768.0).round() as i32;
        let yr = q(kr * ys);
        let yb = q(kb * ys);
        let yg = q(ys) - yr - yb;
        let ur = q(-kr / (2.0 * (1.0 - kb)) * cs);
        let ub = q(0.5 * cs);
        let ug = -ur - ub;
        let vg = q(-kg / (2.0 * (1.0 - kr)) * cs);
        let vr = q(0.5 * cs);
        let vb = -vr - vg;
        let _ = kg;
        Self {
            y_off: off,
            yr,
            yg,
            yb,
            ur,
            ug,
            ub,
            vr,
            vg,
            vb,
        }
    }

    #[inline(always)]
    pub fn luma(&self, r: u8, g: u8, b: u8) -> u8 {
        let y = (self.yr * r as i32
            + self.yg * g as i32
            + self.yb * b as i32
            + (self.y_off << 15)
            + (1 << 14))
            >> 15;
        y.clamp(0, 255) as u8
    }

    /// U and V from the sums of R, G and B over four pixels.
    #[inline(always)]
    pub fn chroma(&self, rs: i32, gs: i32, bs: i32) -> (u8, u8) {
        let u = (self.ur * rs + self.ug * gs + self.ub * bs + (128 << 17) + (1 << 16)) >> 17;
        let v = (self.vr * rs + self.vg * gs + self.vb * bs + (128 << 17) + (1 << 16)) >> 17;
        (u.clamp(0, 255) as u8, v.clamp(0, 255) as u8)
    }
}

/// Where a 4:2:0 destination's chroma row goes.
pub(crate) enum Chroma<'a> {
    /// I420: a U row and a V row.
    Planar(&'a mut [u8], &'a mut [u8]),
    /// NV12: one interleaved U,V row.
    Interleaved(&'a mut [u8]),
}

impl Chroma<'_> {
    /// The same row from chroma sample `c` on.
    pub fn from(&mut self, c: usize) -> Chroma<'_> {
        match self {
            Chroma::Planar(us, vs) => Chroma::Planar(&mut us[c..], &mut vs[c..]),
            Chroma::Interleaved(uv) => Chroma::Interleaved(&mut uv[2 * c..]),
        }
    }

    #[inline(always)]
    pub fn set(&mut self, i: usize, u: u8, v: u8) {
        match self {
            Chroma::Planar(us, vs) => {
                us[i] = u;
                vs[i] = v;
            }
            Chroma::Interleaved(uv) => {
                uv[2 * i] = u;
                uv[2 * i + 1] = v;
            }
        }
    }
}

/// One pair of rows (or the last, single row: `y1` is `None` and `s1` is
/// `s0`) of 32-bit RGB to 4:2:0. `order` is the byte of R, G and B.
pub(crate) type To420Row =
    fn(&[u8], &[u8], &mut [u8], Option<&mut [u8]>, &mut Chroma<'_>, &RgbToYuvK, [u8; 3]);

/// The row kernels of one level. Every kernel takes the destination row,
/// exactly `4 * w` bytes (or `w` luma bytes), and source rows at least as
/// long as the region needs; it panics (never reads out of bounds) if a
/// source row is short, which the callers' checks rule out.
/// I420 rows: Y, U, V, destination, coefficients, RGBA order.
pub(crate) type I420Row = fn(&[u8], &[u8], &[u8], &mut [u8], &YuvToRgbK, bool);

pub(crate) struct RowKernels {
    pub swz4: fn(&[u8], &mut [u8], [u8; 4]),
    pub exp3: fn(&[u8], &mut [u8], [u8; 4]),
    pub gray: fn(&[u8], &mut [u8]),
    pub i420: I420Row,
    pub nv12: fn(&[u8], &[u8], &mut [u8], &YuvToRgbK, bool),
    pub yuy2: fn(&[u8], &mut [u8], &YuvToRgbK, bool),
    pub to420: To420Row,
}

pub(crate) static SCALAR: RowKernels = RowKernels {
    swz4: swz4_scalar,
    exp3: exp3_scalar,
    gray: gray_scalar,
    i420: i420_scalar,
    nv12: nv12_scalar,
    yuy2: yuy2_scalar,
    to420: to420_scalar,
};

impl RowKernels {
    /// The table for a level. The caller has checked that the CPU supports it.
    pub fn for_level(level: SimdLevel) -> &'static RowKernels {
        match level {
            SimdLevel::Scalar => &SCALAR,
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Sse41 => &super::x86::SSE41,
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx2 => &super::x86::AVX2,
            #[cfg(not(target_arch = "x86_64"))]
            _ => &SCALAR,
        }
    }
}

pub(crate) fn swz4_scalar(s: &[u8], d: &mut [u8], map: [u8; 4]) {
    let s = &s[..d.len()];
    for (s, d) in s.chunks_exact(4).zip(d.chunks_exact_mut(4)) {
        for i in 0..4 {
            d[i] = if map[i] == OPAQUE {
                255
            } else {
                s[map[i] as usize]
            };
        }
    }
}

pub(crate) fn exp3_scalar(s: &[u8], d: &mut [u8], map: [u8; 4]) {
    let w = d.len() / 4;
    let s = &s[..w * 3];
    for (s, d) in s.chunks_exact(3).zip(d.chunks_exact_mut(4)) {
        for i in 0..4 {
            d[i] = if map[i] == OPAQUE {
                255
            } else {
                s[map[i] as usize]
            };
        }
    }
}

pub(crate) fn gray_scalar(s: &[u8], d: &mut [u8]) {
    let s = &s[..d.len() / 4];
    for (y, d) in s.iter().zip(d.chunks_exact_mut(4)) {
        d.copy_from_slice(&[*y, *y, *y, 255]);
    }
}

pub(crate) fn i420_scalar(y: &[u8], u: &[u8], v: &[u8], d: &mut [u8], k: &YuvToRgbK, rgba: bool) {
    let w = d.len() / 4;
    let (y, u, v) = (&y[..w], &u[..w.div_ceil(2)], &v[..w.div_ceil(2)]);
    for (i, d) in d.chunks_exact_mut(4).enumerate() {
        put(d, yuv_px(y[i], u[i / 2], v[i / 2], k), rgba);
    }
}

pub(crate) fn nv12_scalar(y: &[u8], uv: &[u8], d: &mut [u8], k: &YuvToRgbK, rgba: bool) {
    let w = d.len() / 4;
    let (y, uv) = (&y[..w], &uv[..2 * w.div_ceil(2)]);
    for (i, d) in d.chunks_exact_mut(4).enumerate() {
        let c = i / 2 * 2;
        put(d, yuv_px(y[i], uv[c], uv[c + 1], k), rgba);
    }
}

pub(crate) fn yuy2_scalar(s: &[u8], d: &mut [u8], k: &YuvToRgbK, rgba: bool) {
    let w = d.len() / 4;
    let s = &s[..4 * w.div_ceil(2)];
    for (i, d) in d.chunks_exact_mut(4).enumerate() {
        let m = i / 2 * 4;
        put(d, yuv_px(s[2 * i], s[m + 1], s[m + 3], k), rgba);
    }
}

pub(crate) fn to420_scalar(
    s0: &[u8],
    s1: &[u8],
    y0: &mut [u8],
    y1: Option<&mut [u8]>,
    ch: &mut Chroma<'_>,
    k: &RgbToYuvK,
    o: [u8; 3],
) {
    let w = y0.len();
    let (s0, s1) = (&s0[..4 * w], &s1[..4 * w]);
    let (r, g, b) = (o[0] as usize, o[1] as usize, o[2] as usize);
    for (d, p) in y0.iter_mut().zip(s0.chunks_exact(4)) {
        *d = k.luma(p[r], p[g], p[b]);
    }
    if let Some(y1) = y1 {
        for (d, p) in y1[..w].iter_mut().zip(s1.chunks_exact(4)) {
            *d = k.luma(p[r], p[g], p[b]);
        }
    }
    for c in 0..w.div_ceil(2) {
        let xa = 8 * c;
        let xb = if 2 * c + 1 < w { xa + 4 } else { xa };
        let sum = |i: usize| {
            s0[xa + i] as i32 + s0[xb + i] as i32 + s1[xa + i] as i32 + s1[xb + i] as i32
        };
        let (u, v) = k.chroma(sum(r), sum(g), sum(b));
        ch.set(c, u, v);
    }
}

/// Convert one rectangle (clipped, block-aligned, within the band `dst`).
pub(crate) fn run_rect(job: &Job, src: &SrcPlanes<'_>, dst: &mut DstView<'_>, r: Rect) {
    let r = match job.external.then(|| external::run_rect(job, src, dst, r)) {
        Some(Some(rest)) if rest.h == 0 => return,
        Some(Some(rest)) => rest,
        _ => r,
    };
    let kt = RowKernels::for_level(job.level);
    let (x, y, w, h) = (r.x as usize, r.y as usize, r.w as usize, r.h as usize);
    let ss = src.strides;
    if let Op::ToYuv420 { order, nv12 } = job.op {
        let k = RgbToYuvK::new(job.colorimetry);
        let ds = dst.strides;
        let fr = dst.first_row;
        let [p0, p1, p2] = &mut dst.planes;
        let cw = w.div_ceil(2);
        let mut row = y;
        while row < y + h {
            let two = row + 1 < y + h;
            let s0 = &src.planes[0][row * ss[0] + 4 * x..][..4 * w];
            let s1 = if two {
                &src.planes[0][(row + 1) * ss[0] + 4 * x..][..4 * w]
            } else {
                s0
            };
            let off0 = (row - fr[0]) * ds[0] + x;
            let (a, b) = p0.split_at_mut(off0 + if two { ds[0] } else { w });
            let y0 = &mut a[off0..off0 + w];
            let y1 = if two { Some(&mut b[..w]) } else { None };
            let crow = row / 2 - fr[1];
            let mut ch = if nv12 {
                Chroma::Interleaved(&mut p1[crow * ds[1] + x..][..2 * cw])
            } else {
                let crow2 = row / 2 - fr[2];
                Chroma::Planar(
                    &mut p1[crow * ds[1] + x / 2..][..cw],
                    &mut p2[crow2 * ds[2] + x / 2..][..cw],
                )
            };
            (kt.to420)(s0, s1, y0, y1, &mut ch, &k, order);
            row += 2;
        }
        return;
    }
    let ds = dst.strides[0];
    // Rows that lie back to back in both buffers (full-width rectangle,
    // strides equal to the rows) are one long row for the per-pixel ops, as
    // libyuv does: no per-row overhead.
    let bpp = match job.op {
        Op::Copy4 | Op::Swizzle4(_) => Some(4),
        Op::Expand3(_) => Some(3),
        Op::Gray => Some(1),
        _ => None,
    };
    if let Some(bpp) = bpp {
        if h > 1 && ss[0] == bpp * w && ds == 4 * w {
            let s = &src.planes[0][y * ss[0]..][..bpp * w * h];
            let off = (y - dst.first_row[0]) * ds;
            let d = &mut dst.planes[0][off..off + 4 * w * h];
            match job.op {
                Op::Copy4 => d.copy_from_slice(s),
                Op::Swizzle4(map) => (kt.swz4)(s, d, map),
                Op::Expand3(map) => (kt.exp3)(s, d, map),
                _ => (kt.gray)(s, d),
            }
            return;
        }
    }
    let yk = YuvToRgbK::new(job.colorimetry);
    let cw = w.div_ceil(2);
    for row in y..y + h {
        let off = (row - dst.first_row[0]) * ds + 4 * x;
        let d = &mut dst.planes[0][off..off + 4 * w];
        let s0 = src.planes[0];
        match job.op {
            Op::Copy4 => d.copy_from_slice(&s0[row * ss[0] + 4 * x..][..4 * w]),
            Op::Swizzle4(map) => (kt.swz4)(&s0[row * ss[0] + 4 * x..][..4 * w], d, map),
            Op::Expand3(map) => (kt.exp3)(&s0[row * ss[0] + 3 * x..][..3 * w], d, map),
            Op::Gray => (kt.gray)(&s0[row * ss[0] + x..][..w], d),
            Op::Yuy2 { rgba } => (kt.yuy2)(&s0[row * ss[0] + 2 * x..][..4 * cw], d, &yk, rgba),
            Op::Nv12 { rgba } => (kt.nv12)(
                &s0[row * ss[0] + x..][..w],
                &src.planes[1][row / 2 * ss[1] + x..][..2 * cw],
                d,
                &yk,
                rgba,
            ),
            Op::I420 { rgba } => (kt.i420)(
                &s0[row * ss[0] + x..][..w],
                &src.planes[1][row / 2 * ss[1] + x / 2..][..cw],
                &src.planes[2][row / 2 * ss[2] + x / 2..][..cw],
                d,
                &yk,
                rgba,
            ),
            Op::ToYuv420 { .. } => unreachable!(),
        }
    }
}
