//! The checkable picture: a pure function of (format, size, seq, stream).
//!
//! Every frame is made of three parts:
//!
//! - a static **background** that depends on (x, y, stream) only;
//! - a **header band** at the top left that encodes the frame's `seq` (40
//!   bits) and the stream index (8 bits) in 32 cells of 2x2 pixels, each cell
//!   one of four grey levels, so that [`decode`] can tell which frame it looks
//!   at in any format (and still after a conversion between formats: the
//!   levels are 0/85/170/255 in RGB and the same after the BT.601
//!   limited-range conversion of the YUV levels 16/89/162/235);
//! - a 32x32 **box** that moves with `seq` and whose content depends on `seq`.
//!
//! The picture is defined once, in YUV (BT.601, limited range, chroma per 2x2
//! block), and every format shows the same picture: RGB formats hold its
//! conversion to RGB, GRAY8 its luma (full range), x and alpha bytes are 255.
//! All regions start on even coordinates and end on even coordinates or the
//! frame edge, so a 2x2 chroma block never straddles two regions and damage
//! rectangles are aligned to every format's chroma blocks.
//!
//! Sizes from 1x1 up work; the header band needs a width of at least 16 and
//! 2 to 8 rows (narrower frames carry no code and [`decode`] returns `None`).

use std::cell::RefCell;
use std::rc::Rc;

use wrd_capture::PixelFormat;

/// A rectangle of pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub w: u32,
    pub h: u32,
}

impl Rect {
    /// True if pixel (x, y) lies inside.
    pub fn contains(&self, x: u32, y: u32) -> bool {
        let (x, y) = (x as i64, y as i64);
        x >= self.x as i64
            && y >= self.y as i64
            && x < self.x as i64 + self.w as i64
            && y < self.y as i64 + self.h as i64
    }
}

/// The cursor of a frame. `pixels` are `w * h * 4` bytes of [`CURSOR_FORMAT`]
/// (bytes B, G, R, A; straight alpha, which here equals premultiplied: every
/// pixel is either opaque or all zero), rows of `w * 4` bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub id: u32,
    pub x: i32,
    pub y: i32,
    pub hot_x: i32,
    pub hot_y: i32,
    pub w: u32,
    pub h: u32,
    pub pixels: Vec<u8>,
}

/// The format of the cursor bitmap: BGRA, `SPA_VIDEO_FORMAT_BGRA` in the
/// `spa_meta_bitmap` the producer sends.
pub const CURSOR_FORMAT: PixelFormat = PixelFormat::Bgra;
/// Side of the cursor bitmaps [`cursor`] returns.
pub const CURSOR_SIZE: u32 = 32;
/// Side of the largest cursor bitmap the producer's Cursor meta has room for.
pub const CURSOR_MAX_SIZE: u32 = 64;
/// Side of the moving box (smaller only when the frame is).
pub const BOX_SIZE: u32 = 32;
/// Number of 2x2 cells that carry the code in the header band.
pub const CODE_CELLS: u32 = 32;
/// `seq` is encoded modulo 2^40; the stream index modulo 256.
pub const SEQ_BITS: u32 = 40;

const MAGIC: u8 = 0xa5;
const LEVELS_Y: [u8; 4] = [16, 89, 162, 235];
const LEVELS_FULL: [u8; 4] = [0, 85, 170, 255];
/// The background repeats every this many rows (chroma: half as many).
const BG_PERIOD: u32 = 64;

// ---------------------------------------------------------------------------
// Geometry

/// The header band: top-left, `2 * min(w/2, 32)` wide, 2 to 8 rows high.
/// `None` when the frame is too small to carry the code.
pub fn band_rect(w: u32, h: u32) -> Option<Rect> {
    if w < 16 {
        return None;
    }
    let cells_per_row = (w / 2).min(CODE_CELLS);
    let rows = CODE_CELLS.div_ceil(cells_per_row) * 2;
    (rows <= h).then_some(Rect {
        x: 0,
        y: 0,
        w: cells_per_row * 2,
        h: rows,
    })
}

/// Where the moving box lies in frame `seq`, below the header band. `None`
/// when there is no room for it.
pub fn box_rect(w: u32, h: u32, seq: u64) -> Option<Rect> {
    let top = band_rect(w, h).map_or(0, |b| b.h);
    if w == 0 || top >= h {
        return None;
    }
    let avail_h = h - top;
    let bw = BOX_SIZE.min(w);
    let bh = BOX_SIZE.min(avail_h);
    let nx = ((w - bw) / 2 + 1) as u64;
    let ny = ((avail_h - bh) / 2 + 1) as u64;
    Some(Rect {
        x: (2 * (seq.wrapping_mul(3) % nx)) as i32,
        y: (top as u64 + 2 * (seq.wrapping_mul(2) % ny)) as i32,
        w: bw,
        h: bh,
    })
}

/// The size of frame `seq` of a producer started at `base_w` x `base_h` with
/// `--resize-every resize_every`: frames `[0, k)` have the base size, frames
/// `[k, 2k)` the second size (3/4 of the base, rounded down to even, at least
/// 1), and so on alternating. `resize_every` 0 = never resize.
pub fn size_at(base_w: u32, base_h: u32, resize_every: u32, seq: u64) -> (u32, u32) {
    if resize_every == 0 || (seq / resize_every as u64).is_multiple_of(2) {
        return (base_w, base_h);
    }
    let shrink = |v: u32| ((v / 4 * 3 + (v % 4) * 3 / 4) & !1).max(1);
    (shrink(base_w), shrink(base_h))
}

/// Exactly the rectangles where frame `seq` may differ from frame `seq - 1`
/// of the same size: the header band, the box's old place and its new place
/// (seq 0: the full frame). A frame whose size differs from the previous
/// one's is fully damaged; the producer sends the full frame then.
/// Rectangles are aligned to 2x2 blocks (or end at the frame edge), so they
/// suit every format's chroma subsampling.
pub fn damage(_fmt: PixelFormat, w: u32, h: u32, seq: u64) -> Vec<Rect> {
    if w == 0 || h == 0 {
        return Vec::new();
    }
    if seq == 0 {
        return vec![Rect { x: 0, y: 0, w, h }];
    }
    let mut rects = Vec::with_capacity(3);
    if let Some(b) = band_rect(w, h) {
        rects.push(b);
    }
    for r in [box_rect(w, h, seq - 1), box_rect(w, h, seq)]
        .into_iter()
        .flatten()
    {
        if !rects.contains(&r) {
            rects.push(r);
        }
    }
    rects
}

// ---------------------------------------------------------------------------
// The picture, in YUV

fn bg_y(x: u32, y: u32, stream: u32) -> u8 {
    (16 + (x as u64 * 3 + (y % BG_PERIOD) as u64 * 5 + stream as u64 * 40) % 220) as u8
}

fn bg_uv(bx: u32, by: u32, stream: u32) -> (u8, u8) {
    let u = 16 + (bx as u64 * 7 + stream as u64 * 60) % 225;
    let v = 16 + ((by % (BG_PERIOD / 2)) as u64 * 9 + bx as u64 * 2 + stream as u64 * 25) % 225;
    (u as u8, v as u8)
}

fn box_y(lx: u32, ly: u32, seq: u64) -> u8 {
    let t = (seq.wrapping_mul(29) % 220) as u8;
    if ((lx / 4) + (ly / 4)).is_multiple_of(2) {
        16 + t
    } else {
        235 - t
    }
}

fn box_uv(seq: u64) -> (u8, u8) {
    (
        (16 + seq.wrapping_mul(53) % 225) as u8,
        (16 + seq.wrapping_mul(97) % 225) as u8,
    )
}

fn crc8(bytes: &[u8]) -> u8 {
    let mut crc = 0u8;
    for &b in bytes {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn code_word(seq: u64, stream: u32) -> u64 {
    let head =
        (MAGIC as u64) << 48 | ((stream & 0xff) as u64) << 40 | (seq & ((1u64 << SEQ_BITS) - 1));
    let bytes = head.to_be_bytes();
    head << 8 | crc8(&bytes[1..]) as u64
}

fn code_symbol(word: u64, cell: u32) -> usize {
    if cell >= CODE_CELLS {
        return 0;
    }
    ((word >> (62 - 2 * cell)) & 3) as usize
}

/// BT.601 limited range to full-range RGB, the integer form everyone uses.
fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = 298 * (y as i32 - 16);
    let d = u as i32 - 128;
    let e = v as i32 - 128;
    let clip = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
    [
        clip(c + 409 * e),
        clip(c - 100 * d - 208 * e),
        clip(c + 516 * d),
    ]
}

fn luma_full(y: u8) -> u8 {
    ((298 * (y as i32 - 16) + 128) >> 8).clamp(0, 255) as u8
}

// ---------------------------------------------------------------------------
// Painting

/// Paint `r` (x, y even) of a `w` x `h` frame: luma per pixel from `yf`,
/// chroma per 2x2 block from `cf` (block coordinates).
#[allow(clippy::too_many_arguments)]
fn paint(
    fmt: PixelFormat,
    planes: &mut [&mut [u8]],
    strides: &[usize],
    w: u32,
    h: u32,
    r: Rect,
    yf: &dyn Fn(u32, u32) -> u8,
    cf: &dyn Fn(u32, u32) -> (u8, u8),
) {
    let (x0, y0) = (r.x.max(0) as u32, r.y.max(0) as u32);
    let x1 = (r.x as i64 + r.w as i64).clamp(0, w as i64) as u32;
    let y1 = (r.y as i64 + r.h as i64).clamp(0, h as i64) as u32;
    if x0 >= x1 || y0 >= y1 {
        return;
    }
    debug_assert!(x0 % 2 == 0 && y0 % 2 == 0);
    let (bx0, bx1) = (x0 / 2, x1.div_ceil(2));
    let (by0, by1) = (y0 / 2, y1.div_ceil(2));
    match fmt {
        PixelFormat::Bgrx
        | PixelFormat::Bgra
        | PixelFormat::Rgbx
        | PixelFormat::Rgba
        | PixelFormat::Rgb
        | PixelFormat::Bgr => {
            let bpp = fmt.bytes_per_pixel();
            let bgr_order = matches!(
                fmt,
                PixelFormat::Bgrx | PixelFormat::Bgra | PixelFormat::Bgr
            );
            for y in y0..y1 {
                let row = &mut planes[0][y as usize * strides[0]..];
                for x in x0..x1 {
                    let (u, v) = cf(x / 2, y / 2);
                    let [r, g, b] = yuv_to_rgb(yf(x, y), u, v);
                    let px = &mut row[x as usize * bpp..x as usize * bpp + bpp];
                    if bgr_order {
                        px[..3].copy_from_slice(&[b, g, r]);
                    } else {
                        px[..3].copy_from_slice(&[r, g, b]);
                    }
                    if bpp == 4 {
                        px[3] = 255;
                    }
                }
            }
        }
        PixelFormat::Gray8 => {
            for y in y0..y1 {
                let row = &mut planes[0][y as usize * strides[0]..];
                for x in x0..x1 {
                    row[x as usize] = luma_full(yf(x, y));
                }
            }
        }
        PixelFormat::Nv12 | PixelFormat::I420 => {
            for y in y0..y1 {
                let row = &mut planes[0][y as usize * strides[0]..];
                for x in x0..x1 {
                    row[x as usize] = yf(x, y);
                }
            }
            for by in by0..by1 {
                for bx in bx0..bx1 {
                    let (u, v) = cf(bx, by);
                    if fmt == PixelFormat::Nv12 {
                        let o = by as usize * strides[1] + 2 * bx as usize;
                        planes[1][o] = u;
                        planes[1][o + 1] = v;
                    } else {
                        planes[1][by as usize * strides[1] + bx as usize] = u;
                        planes[2][by as usize * strides[2] + bx as usize] = v;
                    }
                }
            }
        }
        PixelFormat::Yuy2 => {
            for y in y0..y1 {
                let row = &mut planes[0][y as usize * strides[0]..];
                for bx in bx0..bx1 {
                    let x = 2 * bx;
                    let ya = yf(x, y);
                    // Odd width: the padding sample repeats the last pixel.
                    let yb = if x + 1 < w { yf(x + 1, y) } else { ya };
                    let (u, v) = cf(bx, y / 2);
                    let o = 4 * bx as usize;
                    row[o..o + 4].copy_from_slice(&[ya, u, yb, v]);
                }
            }
        }
    }
}

/// The background rows of one (format, width, stream): per plane, `period`
/// rows of `row_bytes`, tightly packed.
struct Background {
    planes: Vec<(usize, usize, Vec<u8>)>, // (row_bytes, period rows, data)
}

type BgKey = (PixelFormat, u32, u32);

thread_local! {
    static BG_CACHE: RefCell<Vec<(BgKey, Rc<Background>)>> = const { RefCell::new(Vec::new()) };
}

fn background(fmt: PixelFormat, w: u32, stream: u32) -> Rc<Background> {
    let key = (fmt, w, stream);
    if let Some(bg) = BG_CACHE.with(|c| {
        c.borrow()
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, b)| b.clone())
    }) {
        return bg;
    }
    let (layout, total) = fmt
        .packed_layout(w, BG_PERIOD, 1)
        .expect("frame size overflows");
    let mut buf = vec![0u8; total];
    {
        let mut planes = split_planes(&mut buf, &layout);
        let strides: Vec<usize> = layout.iter().map(|l| l.stride).collect();
        paint(
            fmt,
            &mut planes,
            &strides,
            w,
            BG_PERIOD,
            Rect {
                x: 0,
                y: 0,
                w,
                h: BG_PERIOD,
            },
            &|x, y| bg_y(x, y, stream),
            &|bx, by| bg_uv(bx, by, stream),
        );
    }
    let bg = Rc::new(Background {
        planes: layout
            .iter()
            .map(|l| {
                (
                    l.row_bytes,
                    l.rows,
                    buf[l.offset..l.offset + l.stride * l.rows].to_vec(),
                )
            })
            .collect(),
    });
    BG_CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= 8 {
            c.remove(0);
        }
        c.push((key, bg.clone()));
    });
    bg
}

/// Split a frame buffer into its planes as laid out by
/// [`PixelFormat::packed_layout`] (each slice `stride * rows` bytes).
///
/// # Panics
/// If `buf` is shorter than the layout.
pub fn split_planes<'a>(
    mut buf: &'a mut [u8],
    layout: &[wrd_capture::PlaneLayout],
) -> Vec<&'a mut [u8]> {
    let mut out = Vec::with_capacity(layout.len());
    let mut at = 0;
    for l in layout {
        let (_, rest) = buf.split_at_mut(l.offset - at);
        let (plane, rest) = rest.split_at_mut(l.stride * l.rows);
        out.push(plane);
        buf = rest;
        at = l.offset + l.stride * l.rows;
    }
    out
}

fn check_args(fmt: PixelFormat, w: u32, h: u32, lens: &[usize], strides: &[usize]) {
    assert!(
        lens.len() >= fmt.planes() && strides.len() >= fmt.planes(),
        "{fmt} needs {} planes and strides, got {} and {}",
        fmt.planes(),
        lens.len(),
        strides.len()
    );
    for p in 0..fmt.planes() {
        let (row_bytes, rows) = fmt.plane_size(p, w, h).expect("frame size overflows");
        assert!(
            strides[p] >= row_bytes,
            "{fmt} {w}x{h} plane {p}: stride {} < row bytes {row_bytes}",
            strides[p]
        );
        let need = if rows == 0 {
            0
        } else {
            strides[p] * (rows - 1) + row_bytes
        };
        assert!(
            lens[p] >= need,
            "{fmt} {w}x{h} plane {p}: {} bytes < {need} needed",
            lens[p]
        );
    }
}

/// Draw frame `seq` of stream `stream` into `planes` (one slice per plane,
/// `strides[p]` bytes from row to row). Every byte of every row's pixel data
/// is written (padding between rows is not touched).
///
/// # Panics
/// If a plane or stride is missing or too small.
pub fn fill(
    fmt: PixelFormat,
    w: u32,
    h: u32,
    seq: u64,
    stream: u32,
    planes: &mut [&mut [u8]],
    strides: &[usize],
) {
    let lens: Vec<usize> = planes.iter().map(|p| p.len()).collect();
    check_args(fmt, w, h, &lens, strides);
    if w == 0 || h == 0 {
        return;
    }
    let bg = background(fmt, w, stream);
    for (p, (row_bytes, period, data)) in bg.planes.iter().enumerate() {
        let (_, rows) = fmt.plane_size(p, w, h).expect("checked above");
        let dst = &mut *planes[p];
        for r in 0..rows {
            let src = &data[(r % period) * row_bytes..][..*row_bytes];
            dst[r * strides[p]..r * strides[p] + row_bytes].copy_from_slice(src);
        }
    }
    paint_changing(fmt, w, h, seq, stream, planes, strides);
}

/// Turn a frame buffer that holds frame `since` exactly as [`fill`] wrote it
/// (same format, size, stream and strides) into frame `seq`: the rows of the
/// header band and of `since`'s box get their background back, then band and
/// box of `seq` are painted. The result is byte for byte `fill(seq)`, and
/// only those rows are written (for producers that repaint the damage only:
/// `wrd-testsrc --repaint-damage`).
#[allow(clippy::too_many_arguments)]
pub fn fill_update(
    fmt: PixelFormat,
    w: u32,
    h: u32,
    since: u64,
    seq: u64,
    stream: u32,
    planes: &mut [&mut [u8]],
    strides: &[usize],
) {
    let lens: Vec<usize> = planes.iter().map(|p| p.len()).collect();
    check_args(fmt, w, h, &lens, strides);
    if w == 0 || h == 0 {
        return;
    }
    let bg = background(fmt, w, stream);
    let spans: Vec<(u32, u32)> = [band_rect(w, h), box_rect(w, h, since)]
        .into_iter()
        .flatten()
        .map(|r| {
            let y0 = r.y.max(0) as u32;
            (y0.min(h), (y0 + r.h).min(h))
        })
        .collect();
    for (p, (row_bytes, period, data)) in bg.planes.iter().enumerate() {
        let (_, rows) = fmt.plane_size(p, w, h).expect("checked above");
        // Chroma planes of 4:2:0 formats have half the rows.
        let vsub = if rows < h as usize { 2 } else { 1 };
        let dst = &mut *planes[p];
        for &(y0, y1) in &spans {
            let r0 = y0 as usize / vsub;
            let r1 = (y1 as usize).div_ceil(vsub).min(rows);
            for r in r0..r1 {
                let src = &data[(r % period) * row_bytes..][..*row_bytes];
                dst[r * strides[p]..r * strides[p] + row_bytes].copy_from_slice(src);
            }
        }
    }
    paint_changing(fmt, w, h, seq, stream, planes, strides);
}

/// The parts that change from frame to frame: header band and box.
fn paint_changing(
    fmt: PixelFormat,
    w: u32,
    h: u32,
    seq: u64,
    stream: u32,
    planes: &mut [&mut [u8]],
    strides: &[usize],
) {
    if let Some(band) = band_rect(w, h) {
        let word = code_word(seq, stream);
        let cells_per_row = band.w / 2;
        paint(
            fmt,
            planes,
            strides,
            w,
            h,
            band,
            &|x, y| LEVELS_Y[code_symbol(word, (y / 2) * cells_per_row + x / 2)],
            &|_, _| (128, 128),
        );
    }
    if let Some(b) = box_rect(w, h, seq) {
        let (bx, by) = (b.x as u32, b.y as u32);
        let uv = box_uv(seq);
        paint(
            fmt,
            planes,
            strides,
            w,
            h,
            b,
            &|x, y| box_y(x - bx, y - by, seq),
            &|_, _| uv,
        );
    }
}

/// Compare `planes` with frame `seq` of stream `stream`, byte for byte over
/// every row's pixel data. `Err` names the first mismatch.
pub fn check(
    fmt: PixelFormat,
    w: u32,
    h: u32,
    seq: u64,
    stream: u32,
    planes: &[&[u8]],
    strides: &[usize],
) -> Result<(), String> {
    if planes.len() < fmt.planes() || strides.len() < fmt.planes() {
        return Err(format!(
            "{fmt} needs {} planes, got {}",
            fmt.planes(),
            planes.len().min(strides.len())
        ));
    }
    let (layout, total) = fmt
        .packed_layout(w, h, 1)
        .ok_or_else(|| format!("{fmt} {w}x{h}: size overflows"))?;
    for (p, l) in layout.iter().enumerate() {
        if strides[p] < l.row_bytes {
            return Err(format!(
                "plane {p}: stride {} < row bytes {}",
                strides[p], l.row_bytes
            ));
        }
        let need = l.span().unwrap_or(usize::MAX);
        if planes[p].len() < need {
            return Err(format!(
                "plane {p}: {} bytes < {need} needed",
                planes[p].len()
            ));
        }
    }
    let mut want = vec![0u8; total];
    let want_strides: Vec<usize> = layout.iter().map(|l| l.stride).collect();
    fill(
        fmt,
        w,
        h,
        seq,
        stream,
        &mut split_planes(&mut want, &layout),
        &want_strides,
    );
    for (p, l) in layout.iter().enumerate() {
        for row in 0..l.rows {
            let got = &planes[p][row * strides[p]..][..l.row_bytes];
            let exp = &want[l.offset + row * l.stride..][..l.row_bytes];
            if got == exp {
                continue;
            }
            let i = got.iter().zip(exp).position(|(a, b)| a != b).unwrap();
            let x = match (fmt, p) {
                (PixelFormat::Yuy2, _) => i / 2,
                (PixelFormat::Nv12, 1) => i / 2,
                (_, 0) => i / fmt.bytes_per_pixel(),
                _ => i,
            };
            return Err(format!(
                "{fmt} {w}x{h} seq {seq} stream {stream}: plane {p} x {x} y {row} (byte {i} of the row): got {} want {}",
                got[i], exp[i]
            ));
        }
    }
    Ok(())
}

/// Read `(seq, stream)` back from the header band of plane 0 (`seq` modulo
/// 2^40, `stream` modulo 256). `None` if the frame is too small to carry the
/// code, the buffer is too short, or the code does not verify.
pub fn decode(
    fmt: PixelFormat,
    w: u32,
    h: u32,
    plane0: &[u8],
    stride0: usize,
) -> Option<(u64, u32)> {
    let band = band_rect(w, h)?;
    let cells_per_row = band.w / 2;
    let mut word = 0u64;
    for cell in 0..CODE_CELLS {
        let x = 2 * (cell % cells_per_row) as usize;
        let y = 2 * (cell / cells_per_row) as usize;
        let row = y.checked_mul(stride0)?;
        let value = match fmt {
            PixelFormat::Gray8 => *plane0.get(row + x)?,
            PixelFormat::Nv12 | PixelFormat::I420 => luma_full(*plane0.get(row + x)?),
            PixelFormat::Yuy2 => luma_full(*plane0.get(row + 2 * x)?),
            // Every RGB order has G in the middle.
            _ => *plane0.get(row + x * fmt.bytes_per_pixel() + 1)?,
        };
        let (sym, dist) = LEVELS_FULL
            .iter()
            .enumerate()
            .map(|(i, l)| (i, (value as i32 - *l as i32).abs()))
            .min_by_key(|(_, d)| *d)
            .unwrap();
        if dist > 30 {
            return None;
        }
        word = word << 2 | sym as u64;
    }
    let bytes = word.to_be_bytes();
    // Bytes: magic, stream, seq (5 bytes), crc.
    if bytes[0] != MAGIC || crc8(&bytes[..7]) != bytes[7] {
        return None;
    }
    Some(((word >> 8) & ((1u64 << SEQ_BITS) - 1), bytes[1] as u32))
}

/// The cursor of frame `seq`: 32x32, moving, its shape (and `id`) changing
/// every 90 frames between an arrow (id 1, hotspot 0,0) and a cross (id 2,
/// hotspot 16,16). Positions may be slightly negative (partly off the frame).
pub fn cursor(seq: u64) -> Cursor {
    let shape = ((seq / 90) % 2) as u32;
    let n = CURSOR_SIZE;
    let mut pixels = vec![0u8; (n * n * 4) as usize];
    for ly in 0..n {
        for lx in 0..n {
            let px: Option<[u8; 4]> = if shape == 0 {
                // An arrow: a triangle with a dark outline.
                if lx <= ly && ly < n - 4 {
                    if lx == 0 || lx == ly || ly == n - 5 {
                        Some([0, 0, 0, 255])
                    } else {
                        Some([0x20, 0x80, 0xff, 255])
                    }
                } else {
                    None
                }
            } else if lx.abs_diff(n / 2) < 2 || ly.abs_diff(n / 2) < 2 {
                Some([255, 255, 255, 255])
            } else {
                None
            };
            if let Some(px) = px {
                let o = ((ly * n + lx) * 4) as usize;
                pixels[o..o + 4].copy_from_slice(&px);
            }
        }
    }
    let (hot_x, hot_y) = if shape == 0 { (0, 0) } else { (16, 16) };
    Cursor {
        id: 1 + shape,
        x: (seq.wrapping_mul(4) % 300) as i32 - 4,
        y: (seq.wrapping_mul(3) % 200) as i32 - 4,
        hot_x,
        hot_y,
        w: n,
        h: n,
        pixels,
    }
}

/// True if frame `seq` carries the cursor bitmap: the first frame and every
/// frame whose cursor shape differs from the previous frame's. Other frames
/// send the position only (`bitmap_offset` 0), as compositors do.
pub fn cursor_bitmap_changed(seq: u64) -> bool {
    seq == 0 || cursor(seq).id != cursor(seq - 1).id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_update_equals_fill() {
        for fmt in PixelFormat::ALL {
            for &(w, h) in &[(64, 64), (130, 97), (320, 240), (17, 9)] {
                for &(since, seq) in &[(0u64, 1u64), (5, 9), (40, 41), (100, 104)] {
                    let (mut buf, layout) = filled(fmt, w, h, since, 3, 16);
                    let strides: Vec<usize> = layout.iter().map(|l| l.stride).collect();
                    fill_update(
                        fmt,
                        w,
                        h,
                        since,
                        seq,
                        3,
                        &mut split_planes(&mut buf, &layout),
                        &strides,
                    );
                    let (want, _) = filled(fmt, w, h, seq, 3, 16);
                    assert!(buf == want, "{fmt} {w}x{h} {since}->{seq}");
                }
            }
        }
    }

    fn frame(
        fmt: PixelFormat,
        w: u32,
        h: u32,
        align: usize,
    ) -> (Vec<u8>, Vec<wrd_capture::PlaneLayout>) {
        let (layout, total) = fmt.packed_layout(w, h, align).unwrap();
        (vec![0x5a; total], layout)
    }

    fn filled(
        fmt: PixelFormat,
        w: u32,
        h: u32,
        seq: u64,
        stream: u32,
        align: usize,
    ) -> (Vec<u8>, Vec<wrd_capture::PlaneLayout>) {
        let (mut buf, layout) = frame(fmt, w, h, align);
        let strides: Vec<usize> = layout.iter().map(|l| l.stride).collect();
        fill(
            fmt,
            w,
            h,
            seq,
            stream,
            &mut split_planes(&mut buf, &layout),
            &strides,
        );
        (buf, layout)
    }

    fn planes<'a>(buf: &'a [u8], layout: &[wrd_capture::PlaneLayout]) -> Vec<&'a [u8]> {
        layout
            .iter()
            .map(|l| &buf[l.offset..l.offset + l.stride * l.rows])
            .collect()
    }

    const SIZES: [(u32, u32); 9] = [
        (1, 1),
        (2, 2),
        (15, 9),
        (16, 16),
        (17, 15),
        (33, 7),
        (64, 64),
        (320, 240),
        (321, 241),
    ];

    #[test]
    fn check_accepts_fill_and_decode_round_trips() {
        for fmt in PixelFormat::ALL {
            for (w, h) in SIZES {
                for (seq, stream) in [(0u64, 0u32), (1, 2), (12345, 7), ((1 << 40) - 1, 255)] {
                    let (buf, layout) = filled(fmt, w, h, seq, stream, 16);
                    let strides: Vec<usize> = layout.iter().map(|l| l.stride).collect();
                    let p = planes(&buf, &layout);
                    check(fmt, w, h, seq, stream, &p, &strides).unwrap();
                    let d = decode(fmt, w, h, p[0], strides[0]);
                    if band_rect(w, h).is_some() {
                        assert_eq!(d, Some((seq, stream)), "{fmt} {w}x{h}");
                    } else {
                        assert_eq!(d, None);
                    }
                }
            }
        }
    }

    #[test]
    fn check_rejects_other_frames_and_names_the_mismatch() {
        for fmt in PixelFormat::ALL {
            let (buf, layout) = filled(fmt, 64, 64, 5, 1, 1);
            let strides: Vec<usize> = layout.iter().map(|l| l.stride).collect();
            let p = planes(&buf, &layout);
            assert!(check(fmt, 64, 64, 6, 1, &p, &strides).is_err());
            assert!(check(fmt, 64, 64, 5, 0, &p, &strides).is_err());
            for plane in 0..fmt.planes() {
                let mut bad = buf.clone();
                let at = layout[plane].offset + layout[plane].stride * (layout[plane].rows - 1) + 1;
                bad[at] ^= 0x40;
                let e = check(fmt, 64, 64, 5, 1, &planes(&bad, &layout), &strides).unwrap_err();
                assert!(e.contains(&format!("plane {plane} ")), "{e}");
                assert!(e.contains(&format!("y {}", layout[plane].rows - 1)), "{e}");
            }
        }
    }

    #[test]
    fn fill_is_independent_of_what_was_there_and_of_stride() {
        for fmt in PixelFormat::ALL {
            let (a, la) = filled(fmt, 37, 21, 9, 3, 1);
            let (mut b, lb) = frame(fmt, 37, 21, 64);
            b.iter_mut().enumerate().for_each(|(i, x)| *x = i as u8);
            let sb: Vec<usize> = lb.iter().map(|l| l.stride).collect();
            fill(fmt, 37, 21, 9, 3, &mut split_planes(&mut b, &lb), &sb);
            for (pa, pb) in la.iter().zip(&lb) {
                for r in 0..pa.rows {
                    assert_eq!(
                        a[pa.offset + r * pa.stride..][..pa.row_bytes],
                        b[pb.offset + r * pb.stride..][..pb.row_bytes]
                    );
                }
            }
        }
    }

    /// Every byte that differs between frames seq-1 and seq lies in a damage
    /// rectangle; each rectangle holds a difference; rectangles are aligned.
    #[test]
    fn damage_covers_exactly_the_changes() {
        for fmt in PixelFormat::ALL {
            for (w, h) in SIZES {
                let (sx, sy) = fmt.subsampling();
                let mut prev = filled(fmt, w, h, 0, 1, 1).0;
                for seq in 1..40u64 {
                    let (cur, layout) = filled(fmt, w, h, seq, 1, 1);
                    let rects = damage(fmt, w, h, seq);
                    for r in &rects {
                        assert!(
                            r.x >= 0 && r.y >= 0 && r.x as u32 + r.w <= w && r.y as u32 + r.h <= h
                        );
                        assert!(
                            (r.x as usize).is_multiple_of(sx) && (r.y as usize).is_multiple_of(sy),
                            "{r:?}"
                        );
                        assert!(
                            (r.x as u32 + r.w).is_multiple_of(sx as u32) || r.x as u32 + r.w == w
                        );
                        assert!(
                            (r.y as u32 + r.h).is_multiple_of(sy as u32) || r.y as u32 + r.h == h
                        );
                    }
                    let mut hit = vec![false; rects.len()];
                    for (p, l) in layout.iter().enumerate() {
                        for row in 0..l.rows {
                            for i in 0..l.row_bytes {
                                let o = l.offset + row * l.stride + i;
                                if cur[o] == prev[o] {
                                    continue;
                                }
                                // The pixels this byte belongs to.
                                let (px, py, pw, ph) = match (fmt, p) {
                                    (PixelFormat::Yuy2, _) => {
                                        ((i / 4 * 2) as u32, row as u32, 2, 1)
                                    }
                                    (PixelFormat::Nv12, 1) => {
                                        ((i / 2 * 2) as u32, row as u32 * 2, 2, 2)
                                    }
                                    (_, 0) => {
                                        ((i / fmt.bytes_per_pixel()) as u32, row as u32, 1, 1)
                                    }
                                    _ => (i as u32 * 2, row as u32 * 2, 2, 2),
                                };
                                let mut covered = false;
                                for (k, r) in rects.iter().enumerate() {
                                    let inside = (px..px + pw).any(|x| {
                                        (py..py + ph).any(|y| x < w && y < h && r.contains(x, y))
                                    });
                                    if inside {
                                        hit[k] = true;
                                        covered = true;
                                    }
                                }
                                assert!(covered, "{fmt} {w}x{h} seq {seq}: plane {p} byte {i} row {row} changed outside {rects:?}");
                            }
                        }
                    }
                    if w >= 16 && h >= 16 {
                        assert!(
                            hit.iter().all(|h| *h),
                            "{fmt} {w}x{h} seq {seq}: a rect without change: {rects:?} {hit:?}"
                        );
                    }
                    prev = cur;
                }
                assert_eq!(damage(fmt, w, h, 0), vec![Rect { x: 0, y: 0, w, h }]);
            }
        }
    }

    #[test]
    fn sizes_and_cursor() {
        assert_eq!(size_at(320, 240, 0, 1000), (320, 240));
        assert_eq!(size_at(320, 240, 10, 9), (320, 240));
        assert_eq!(size_at(320, 240, 10, 10), (240, 180));
        assert_eq!(size_at(320, 240, 10, 20), (320, 240));
        assert_eq!(size_at(321, 241, 1, 1), (240, 180));
        assert_eq!(size_at(1, 1, 1, 1), (1, 1));
        let c = cursor(0);
        assert_eq!((c.w, c.h, c.pixels.len()), (32, 32, 32 * 32 * 4));
        assert!(c.pixels.chunks(4).any(|p| p[3] == 255) && c.pixels.chunks(4).any(|p| p[3] == 0));
        assert!(cursor_bitmap_changed(0) && !cursor_bitmap_changed(1) && cursor_bitmap_changed(90));
        assert_ne!(cursor(0).pixels, cursor(90).pixels);
        assert_ne!((cursor(0).x, cursor(0).y), (cursor(1).x, cursor(1).y));
    }

    #[test]
    fn big_frames_check_and_decode() {
        for fmt in PixelFormat::ALL {
            for (w, h) in [(3840, 2160), (3839, 2159)] {
                let (buf, layout) = filled(fmt, w, h, 777, 3, 256);
                let strides: Vec<usize> = layout.iter().map(|l| l.stride).collect();
                let p = planes(&buf, &layout);
                check(fmt, w, h, 777, 3, &p, &strides).unwrap();
                assert_eq!(decode(fmt, w, h, p[0], strides[0]), Some((777, 3)));
            }
        }
    }

    #[test]
    fn same_picture_in_every_format() {
        // The RGB formats hold the conversion of the YUV picture: compare a
        // pixel of the box and of the background.
        let (yuv, ly) = filled(PixelFormat::I420, 64, 64, 3, 0, 1);
        let (rgb, _) = filled(PixelFormat::Rgb, 64, 64, 3, 0, 1);
        for (x, y) in [(40usize, 40usize), (1, 20), (63, 63)] {
            let yv = yuv[y * ly[0].stride + x];
            let u = yuv[ly[1].offset + (y / 2) * ly[1].stride + x / 2];
            let v = yuv[ly[2].offset + (y / 2) * ly[2].stride + x / 2];
            assert_eq!(&rgb[(y * 64 + x) * 3..][..3], &yuv_to_rgb(yv, u, v));
        }
    }
}
