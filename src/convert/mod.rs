//! Pixel conversion: every format the core negotiates to BGRA and RGBA,
//! BGRx/BGRA (and RGBx/RGBA) to I420 and NV12 for encoders, and the two raw
//! loaders editors need (ARGB32 and RGB24 to RGBA).
//!
//! - **Safe and slice-based.** [`convert`] checks every plane length and
//!   stride against the frame size before the first byte is read; a short
//!   buffer is [`Error::BufferTooSmall`], a bad stride or size
//!   [`Error::InvalidArgument`], an unsupported pair [`Error::Unsupported`].
//! - **Damage-aware.** With `rects`, only those rectangles are written; the
//!   rest of the destination is left as it was. Rectangles are clipped to the
//!   frame and widened to whole chroma blocks of the source and destination.
//! - **Fast.** Row kernels exist at three levels ([`SimdLevel`]), chosen at
//!   run time; [`Options::threads`] splits a frame into bands of rows.
//!   The `yuv` crate is used where it is the fastest code that meets the
//!   accuracy bar (32-bit RGB to I420/NV12, `external.rs`); elsewhere the
//!   kernels are ours (`x86.rs`). `docs/convert.md` has the measurements.
//!
//! Which code runs for a pair, at [`SimdLevel::Avx2`] with the default
//! [`Backend::Auto`] (the measurements are in `docs/convert.md`):
//!
//! | pair | code | why |
//! | --- | --- | --- |
//! | 32-bit RGB swizzles, ARGB32 | ours (`vpshufb`) | trivial, memory bound; the crate has no alpha-filling swizzle |
//! | RGB/BGR/RGB24 to 32-bit | ours (`vpermd` + `vpshufb`) | the `yuv` crate loses 1.3x to libyuv (the measurement) |
//! | GRAY8 to 32-bit | ours (`vpshufb`) | trivial |
//! | YUY2 to 32-bit | ours | the `yuv` crate loses 1.8-2.7x to libyuv and is off by up to 3 |
//! | NV12/I420 to 32-bit | ours | beats libyuv by about 1.2x in cache; the crate is ~20% faster still but clips intermediates (off by 20+ on out-of-range Y/U/V, which producers send), ours is within 1 of the reference on every input |
//! | 32-bit RGB to I420/NV12 | `yuv` crate | 1.5x faster than our `pmaddwd` kernel and within 1 (libyuv is faster still in cache: see the docs) |
//!
//! Forcing [`SimdLevel::Sse41`] or [`SimdLevel::Scalar`] always runs ours.

mod external;
mod kernels;
#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;

use crate::error::{Error, Result};
use crate::format::PixelFormat;

/// The YUV matrix (the weights of R, G and B in luma).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Matrix {
    /// ITU-R BT.601 (SD video, JPEG, most cameras).
    #[default]
    Bt601,
    /// ITU-R BT.709 (HD video).
    Bt709,
}

/// The quantisation range of YUV samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Range {
    /// Y in 16..=235, U and V in 16..=240 ("TV" / "video" range).
    #[default]
    Limited,
    /// Y, U and V in 0..=255 ("PC" / "JPEG" range).
    Full,
}

/// How YUV samples relate to RGB.
///
/// The default is BT.601, limited range: what V4L2 cameras and libyuv's
/// `I420ToARGB` assume, and what a producer that states nothing most often
/// sends. Use [`Colorimetry::from_spa`] to follow what the producer stated.
/// GRAY8 is not YUV: it is read as full-range gray whatever the colorimetry
/// (like libyuv's `J400ToARGB`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Colorimetry {
    pub matrix: Matrix,
    pub range: Range,
}

impl Colorimetry {
    /// BT.601 limited range.
    pub const BT601_LIMITED: Self = Self {
        matrix: Matrix::Bt601,
        range: Range::Limited,
    };
    /// BT.709 limited range.
    pub const BT709_LIMITED: Self = Self {
        matrix: Matrix::Bt709,
        range: Range::Limited,
    };

    /// The colorimetry for SPA's `spa_video_color_matrix` and
    /// `spa_video_color_range` values as negotiated (`SPA_FORMAT_VIDEO_colorMatrix`,
    /// `SPA_FORMAT_VIDEO_colorRange`). Unknown or unsupported values fall back
    /// to the default's field (BT.601, limited); BT.2020, SMPTE 240M and FCC are
    /// mapped to their nearest supported matrix (BT.709, BT.709, BT.601).
    pub fn from_spa(matrix: u32, range: u32) -> Self {
        let matrix = match matrix {
            3 | 5 | 6 => Matrix::Bt709, // BT709, SMPTE240M, BT2020
            _ => Matrix::Bt601,         // UNKNOWN, RGB, FCC, BT601
        };
        let range = match range {
            1 => Range::Full, // SPA_VIDEO_COLOR_RANGE_0_255
            _ => Range::Limited,
        };
        Self { matrix, range }
    }
}

/// A source format: one the core negotiates, or a raw loader's layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SrcFormat {
    /// A negotiated pixel format.
    Pixel(PixelFormat),
    /// Raw ARGB32 as editors store it: bytes A, R, G, B.
    Argb32,
    /// Raw RGB24: bytes R, G, B (the same layout as [`PixelFormat::Rgb`]).
    Rgb24,
}

impl From<PixelFormat> for SrcFormat {
    fn from(p: PixelFormat) -> Self {
        SrcFormat::Pixel(p)
    }
}

impl SrcFormat {
    /// Every source format.
    pub const ALL: [SrcFormat; 12] = [
        SrcFormat::Pixel(PixelFormat::Bgrx),
        SrcFormat::Pixel(PixelFormat::Bgra),
        SrcFormat::Pixel(PixelFormat::Rgbx),
        SrcFormat::Pixel(PixelFormat::Rgba),
        SrcFormat::Pixel(PixelFormat::Rgb),
        SrcFormat::Pixel(PixelFormat::Bgr),
        SrcFormat::Pixel(PixelFormat::Nv12),
        SrcFormat::Pixel(PixelFormat::I420),
        SrcFormat::Pixel(PixelFormat::Yuy2),
        SrcFormat::Pixel(PixelFormat::Gray8),
        SrcFormat::Argb32,
        SrcFormat::Rgb24,
    ];

    /// The negotiated format with the same memory layout sizes.
    pub fn layout(self) -> PixelFormat {
        match self {
            SrcFormat::Pixel(p) => p,
            SrcFormat::Argb32 => PixelFormat::Bgra,
            SrcFormat::Rgb24 => PixelFormat::Rgb,
        }
    }
}

/// A destination format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DstFormat {
    /// Bytes B, G, R, A (libyuv's ARGB, DRM ARGB8888). Alpha is copied from
    /// a source with alpha and 255 otherwise.
    Bgra,
    /// Bytes R, G, B, A (libyuv's ABGR, DRM ABGR8888).
    Rgba,
    /// Planar Y, U, V at 4:2:0 (from 32-bit RGB sources only).
    I420,
    /// Y plane and interleaved U,V at 4:2:0 (from 32-bit RGB sources only).
    Nv12,
}

impl DstFormat {
    /// Every destination format.
    pub const ALL: [DstFormat; 4] = [
        DstFormat::Bgra,
        DstFormat::Rgba,
        DstFormat::I420,
        DstFormat::Nv12,
    ];

    /// The negotiated format with the same layout.
    pub fn layout(self) -> PixelFormat {
        match self {
            DstFormat::Bgra => PixelFormat::Bgra,
            DstFormat::Rgba => PixelFormat::Rgba,
            DstFormat::I420 => PixelFormat::I420,
            DstFormat::Nv12 => PixelFormat::Nv12,
        }
    }
}

/// A rectangle in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Rect {
    /// A rectangle.
    pub const fn new(x: u32, y: u32, w: u32, h: u32) -> Self {
        Self { x, y, w, h }
    }
}

/// Up to three source planes and their strides (bytes from one row to the
/// next). Unused planes are empty.
#[derive(Clone, Copy, Debug)]
pub struct SrcPlanes<'a> {
    pub planes: [&'a [u8]; 3],
    pub strides: [usize; 3],
}

impl<'a> SrcPlanes<'a> {
    /// One packed plane (RGB, YUY2, GRAY8).
    pub fn packed(data: &'a [u8], stride: usize) -> Self {
        Self {
            planes: [data, &[], &[]],
            strides: [stride, 0, 0],
        }
    }

    /// Two planes (NV12).
    pub fn two(y: &'a [u8], y_stride: usize, uv: &'a [u8], uv_stride: usize) -> Self {
        Self {
            planes: [y, uv, &[]],
            strides: [y_stride, uv_stride, 0],
        }
    }

    /// Three planes (I420).
    pub fn three(
        y: &'a [u8],
        y_stride: usize,
        u: &'a [u8],
        u_stride: usize,
        v: &'a [u8],
        v_stride: usize,
    ) -> Self {
        Self {
            planes: [y, u, v],
            strides: [y_stride, u_stride, v_stride],
        }
    }
}

/// Up to three destination planes and their strides. Unused planes are empty.
#[derive(Debug)]
pub struct DstPlanes<'a> {
    pub planes: [&'a mut [u8]; 3],
    pub strides: [usize; 3],
}

impl<'a> DstPlanes<'a> {
    /// One packed plane (BGRA, RGBA).
    pub fn packed(data: &'a mut [u8], stride: usize) -> Self {
        Self {
            planes: [data, &mut [], &mut []],
            strides: [stride, 0, 0],
        }
    }

    /// Two planes (NV12).
    pub fn two(y: &'a mut [u8], y_stride: usize, uv: &'a mut [u8], uv_stride: usize) -> Self {
        Self {
            planes: [y, uv, &mut []],
            strides: [y_stride, uv_stride, 0],
        }
    }

    /// Three planes (I420).
    pub fn three(
        y: &'a mut [u8],
        y_stride: usize,
        u: &'a mut [u8],
        u_stride: usize,
        v: &'a mut [u8],
        v_stride: usize,
    ) -> Self {
        Self {
            planes: [y, u, v],
            strides: [y_stride, u_stride, v_stride],
        }
    }
}

/// A level of SIMD code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SimdLevel {
    /// Plain Rust (the compiler may still vectorise it for the baseline
    /// target, SSE2 on x86-64).
    Scalar,
    /// SSSE3 and SSE4.1 kernels.
    Sse41,
    /// AVX2 kernels.
    Avx2,
}

impl SimdLevel {
    /// Every level, lowest first.
    pub const ALL: [SimdLevel; 3] = [SimdLevel::Scalar, SimdLevel::Sse41, SimdLevel::Avx2];

    /// The best level this CPU supports.
    pub fn detect() -> Self {
        if SimdLevel::Avx2.is_supported() {
            SimdLevel::Avx2
        } else if SimdLevel::Sse41.is_supported() {
            SimdLevel::Sse41
        } else {
            SimdLevel::Scalar
        }
    }

    /// Whether this CPU can run the level's code.
    pub fn is_supported(self) -> bool {
        match self {
            SimdLevel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Sse41 => {
                is_x86_feature_detected!("ssse3") && is_x86_feature_detected!("sse4.1")
            }
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx2 => SimdLevel::Sse41.is_supported() && is_x86_feature_detected!("avx2"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The levels this CPU supports, lowest first.
    pub fn supported() -> Vec<SimdLevel> {
        Self::ALL
            .iter()
            .copied()
            .filter(|l| l.is_supported())
            .collect()
    }

    /// A short name ("scalar", "sse4.1", "avx2").
    pub fn name(self) -> &'static str {
        match self {
            SimdLevel::Scalar => "scalar",
            SimdLevel::Sse41 => "sse4.1",
            SimdLevel::Avx2 => "avx2",
        }
    }
}

/// Conversion options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// YUV matrix and range (for YUV sources and destinations).
    pub colorimetry: Colorimetry,
    /// Threads to split one frame across: 1 (the default) converts on the
    /// calling thread; 0 uses one per available CPU; n uses at most n. Small
    /// jobs (under about 128K pixels a thread) use fewer threads.
    pub threads: usize,
    /// Force a SIMD level (tests, benchmarks); `None` picks the best. A forced
    /// level this CPU lacks is an [`Error::InvalidArgument`].
    pub level: Option<SimdLevel>,
    /// Which code converts: see [`Backend`].
    pub backend: Backend,
}

/// Our kernels or the `yuv` crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Backend {
    /// The fastest measured code for each pair: the `yuv` crate for NV12 and
    /// I420 to 32-bit RGB at [`SimdLevel::Avx2`], our kernels elsewhere.
    #[default]
    Auto,
    /// Only our kernels.
    Own,
    /// The `yuv` crate for every pair it has (NV12, I420, YUY2, GRAY8 to
    /// 32-bit RGB; 32-bit RGB to I420 and NV12), our kernels for the rest.
    /// For comparisons; the crate runs at its own best level, so this only
    /// applies when the effective level is [`SimdLevel::Avx2`].
    YuvCrate,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            colorimetry: Colorimetry::default(),
            threads: 1,
            level: None,
            backend: Backend::Auto,
        }
    }
}

/// The operation for a pair of formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// Same 4-byte layout, alpha kept: a copy.
    Copy4,
    /// 4 bytes to 4: `map[i]` is the source byte of destination byte `i`, or
    /// [`OPAQUE`] for 255.
    Swizzle4([u8; 4]),
    /// 3 bytes to 4, likewise.
    Expand3([u8; 4]),
    /// GRAY8 to 32-bit: Y, Y, Y, 255.
    Gray,
    /// NV12 to 32-bit RGB (`rgba`: R first, else B first).
    Nv12 { rgba: bool },
    /// I420 to 32-bit RGB.
    I420 { rgba: bool },
    /// YUY2 to 32-bit RGB.
    Yuy2 { rgba: bool },
    /// 32-bit RGB to 4:2:0; `order` gives the byte of R, G and B in a pixel.
    ToYuv420 { order: [u8; 3], nv12: bool },
}

/// Marks a destination byte that is set to 255.
pub(crate) const OPAQUE: u8 = 0xFF;

fn op_for(src: SrcFormat, dst: DstFormat) -> Option<Op> {
    use PixelFormat as P;
    const X: u8 = OPAQUE;
    let rgba = match dst {
        DstFormat::Bgra => false,
        DstFormat::Rgba => true,
        DstFormat::I420 | DstFormat::Nv12 => {
            let nv12 = dst == DstFormat::Nv12;
            let order = match src {
                SrcFormat::Pixel(P::Bgrx | P::Bgra) => [2, 1, 0],
                SrcFormat::Pixel(P::Rgbx | P::Rgba) => [0, 1, 2],
                _ => return None,
            };
            return Some(Op::ToYuv420 { order, nv12 });
        }
    };
    // Maps for a BGRA destination; an RGBA one swaps bytes 0 and 2.
    let bgra_map = |m: [u8; 4]| if rgba { [m[2], m[1], m[0], m[3]] } else { m };
    Some(match src {
        SrcFormat::Pixel(P::Bgra) if !rgba => Op::Copy4,
        SrcFormat::Pixel(P::Rgba) if rgba => Op::Copy4,
        SrcFormat::Pixel(P::Bgrx) => Op::Swizzle4(bgra_map([0, 1, 2, X])),
        SrcFormat::Pixel(P::Bgra) => Op::Swizzle4(bgra_map([0, 1, 2, 3])),
        SrcFormat::Pixel(P::Rgbx) => Op::Swizzle4(bgra_map([2, 1, 0, X])),
        SrcFormat::Pixel(P::Rgba) => Op::Swizzle4(bgra_map([2, 1, 0, 3])),
        SrcFormat::Argb32 => Op::Swizzle4(bgra_map([3, 2, 1, 0])),
        SrcFormat::Pixel(P::Rgb) | SrcFormat::Rgb24 => Op::Expand3(bgra_map([2, 1, 0, X])),
        SrcFormat::Pixel(P::Bgr) => Op::Expand3(bgra_map([0, 1, 2, X])),
        SrcFormat::Pixel(P::Gray8) => Op::Gray,
        SrcFormat::Pixel(P::Nv12) => Op::Nv12 { rgba },
        SrcFormat::Pixel(P::I420) => Op::I420 { rgba },
        SrcFormat::Pixel(P::Yuy2) => Op::Yuy2 { rgba },
    })
}

/// Whether [`convert`] supports the pair.
pub fn is_supported(src: SrcFormat, dst: DstFormat) -> bool {
    op_for(src, dst).is_some()
}

/// Check one plane: stride at least the row, span within the slice.
fn check_plane(
    what: &str,
    fmt: PixelFormat,
    plane: usize,
    width: u32,
    height: u32,
    len: usize,
    stride: usize,
) -> Result<()> {
    let (row_bytes, rows) = fmt
        .plane_size(plane, width, height)
        .ok_or_else(|| Error::InvalidArgument(format!("{what}: frame size overflows")))?;
    if stride < row_bytes {
        return Err(Error::InvalidArgument(format!(
            "{what} plane {plane}: stride {stride} is less than the row size {row_bytes}"
        )));
    }
    let need = crate::format::PlaneLayout {
        offset: 0,
        stride,
        rows,
        row_bytes,
    }
    .span()
    .ok_or_else(|| Error::InvalidArgument(format!("{what} plane {plane}: size overflows")))?;
    if len < need {
        return Err(Error::BufferTooSmall { need, have: len });
    }
    Ok(())
}

/// The resolved parameters of one call, shared by every band.
pub(crate) struct Job {
    pub op: Op,
    pub level: SimdLevel,
    pub external: bool,
    pub backend: Backend,
    pub colorimetry: Colorimetry,
}

/// The destination planes of one band of rows: plane `p`'s slice starts at
/// its row `first_row[p]`.
pub(crate) struct DstView<'a> {
    pub planes: [&'a mut [u8]; 3],
    pub strides: [usize; 3],
    pub first_row: [usize; 3],
}

/// Clip to the frame and widen to blocks of `bx` x `by` (the frame edge
/// stays the limit). `None` if nothing is left.
fn clip_align(r: &Rect, width: u32, height: u32, bx: u32, by: u32) -> Option<Rect> {
    let x0 = r.x.min(width);
    let y0 = r.y.min(height);
    let x1 = r.x.saturating_add(r.w).min(width);
    let y1 = r.y.saturating_add(r.h).min(height);
    if x0 >= x1 || y0 >= y1 {
        return None;
    }
    let x0 = x0 / bx * bx;
    let y0 = y0 / by * by;
    let x1 = x1.div_ceil(bx).saturating_mul(bx).min(width);
    let y1 = y1.div_ceil(by).saturating_mul(by).min(height);
    Some(Rect::new(x0, y0, x1 - x0, y1 - y0))
}

/// Convert a frame (or the rectangles `rects` of it) from `src_fmt` to
/// `dst_fmt`.
///
/// `width` x `height` is the frame size in pixels; every plane of `src` and
/// `dst` must hold it at its stride (`stride * (rows - 1) + row_bytes`
/// bytes; the last row need not be padded). Strides are in bytes and at
/// least the row size. With `rects`, only the rectangles (clipped to the
/// frame, widened to whole chroma blocks) are written and the rest of `dst`
/// keeps its bytes; `Some(&[])` writes nothing. Nothing is read or written
/// before every check has passed.
#[allow(clippy::too_many_arguments)]
pub fn convert(
    src_fmt: SrcFormat,
    src: &SrcPlanes<'_>,
    width: u32,
    height: u32,
    dst_fmt: DstFormat,
    dst: &mut DstPlanes<'_>,
    rects: Option<&[Rect]>,
    opts: &Options,
) -> Result<()> {
    let op = op_for(src_fmt, dst_fmt).ok_or_else(|| {
        Error::Unsupported(format!(
            "conversion from {src_fmt:?} to {dst_fmt:?} is not supported"
        ))
    })?;
    let level = opts.level.unwrap_or_else(SimdLevel::detect);
    if !level.is_supported() {
        return Err(Error::InvalidArgument(format!(
            "SIMD level {} is not supported by this CPU",
            level.name()
        )));
    }
    let sfmt = src_fmt.layout();
    let dfmt = dst_fmt.layout();
    for p in 0..sfmt.planes() {
        check_plane(
            "source",
            sfmt,
            p,
            width,
            height,
            src.planes[p].len(),
            src.strides[p],
        )?;
    }
    for p in 0..dfmt.planes() {
        check_plane(
            "destination",
            dfmt,
            p,
            width,
            height,
            dst.planes[p].len(),
            dst.strides[p],
        )?;
    }
    if width == 0 || height == 0 {
        return Ok(());
    }
    // Pixel offsets are computed in usize; make sure row * stride and
    // x * 4 cannot overflow (they are bounded by the checked spans above,
    // which fit in usize).
    let (sx, sy) = sfmt.subsampling();
    let (dx, dy) = dfmt.subsampling();
    let bx = sx.max(dx) as u32;
    let by = sy.max(dy) as u32;
    let full = [Rect::new(0, 0, width, height)];
    let rects: Vec<Rect> = rects
        .unwrap_or(&full)
        .iter()
        .filter_map(|r| clip_align(r, width, height, bx, by))
        .collect();
    if rects.is_empty() {
        return Ok(());
    }
    let job = Job {
        op,
        level,
        external: opts.backend != Backend::Own && level == SimdLevel::Avx2,
        backend: opts.backend,
        colorimetry: opts.colorimetry,
    };

    let pixels: u64 = rects.iter().map(|r| r.w as u64 * r.h as u64).sum();
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    const MIN_PIXELS_PER_THREAD: u64 = 128 * 1024;
    let threads = threads
        .min((pixels / MIN_PIXELS_PER_THREAD).max(1) as usize)
        .min((height / by).max(1) as usize);

    let nplanes = dfmt.planes();
    let psy = dy as u32;
    if threads <= 1 {
        let [p0, p1, p2] = &mut dst.planes;
        let mut view = DstView {
            planes: [&mut **p0, &mut **p1, &mut **p2],
            strides: dst.strides,
            first_row: [0; 3],
        };
        for r in &rects {
            kernels::run_rect(&job, src, &mut view, *r);
        }
        return Ok(());
    }

    // Split the frame into `threads` bands of whole blocks of rows; each
    // band owns disjoint row ranges of every destination plane.
    let blocks = height.div_ceil(by);
    let mut bounds = Vec::with_capacity(threads + 1);
    for t in 0..=threads as u32 {
        bounds.push(((blocks as u64 * t as u64 / threads as u64) as u32 * by).min(height));
    }
    let [p0, p1, p2] = &mut dst.planes;
    let mut rests: [&mut [u8]; 3] = [&mut **p0, &mut **p1, &mut **p2];
    let mut views = Vec::with_capacity(threads);
    for t in 0..threads {
        let (y0, y1) = (bounds[t], bounds[t + 1]);
        let mut planes: [&mut [u8]; 3] = [&mut [], &mut [], &mut []];
        let mut first_row = [0usize; 3];
        for p in 0..nplanes {
            let sub = if p == 0 { 1 } else { psy };
            let row0 = (y0 / sub) as usize;
            let row1 = if t + 1 == threads {
                usize::MAX
            } else {
                (y1 / sub) as usize
            };
            let rest = std::mem::take(&mut rests[p]);
            let cut = if row1 == usize::MAX {
                rest.len()
            } else {
                ((row1 - row0) * dst.strides[p]).min(rest.len())
            };
            let (mine, tail) = rest.split_at_mut(cut);
            planes[p] = mine;
            rests[p] = tail;
            first_row[p] = row0;
        }
        views.push((
            y0,
            y1,
            DstView {
                planes,
                strides: dst.strides,
                first_row,
            },
        ));
    }
    let job = &job;
    let rects = &rects;
    std::thread::scope(|s| {
        for (y0, y1, mut view) in views {
            s.spawn(move || {
                for r in rects {
                    let a = r.y.max(y0);
                    let b = (r.y + r.h).min(y1);
                    if a < b {
                        kernels::run_rect(job, src, &mut view, Rect::new(r.x, a, r.w, b - a));
                    }
                }
            });
        }
    });
    Ok(())
}
