//! Fuzz target bodies, shared by the cargo-fuzz targets
//! (`fuzz/fuzz_targets/*.rs`, libFuzzer + ASan) and the stable driver
//! (`tests/fuzz_stable.rs`, corpus + random inputs, runnable under
//! valgrind). Each body must not panic, and checks the invariant that makes
//! its output safe to use (spans inside the mapping, regions inside the
//! frame, ...).

#![allow(dead_code)]

use libspa::pod::{Object, Pod, Property, PropertyFlags, Value};
use libspa::utils::{Choice, ChoiceEnum, ChoiceFlags, Fraction, Id, Rectangle};
use wrd_capture::buffer::{self, ChunkDesc, DataDesc, ShmLayout};
use wrd_capture::convert::{self, DstFormat, DstPlanes, Options, Rect, SimdLevel, SrcFormat};
use wrd_capture::negotiation::{self, data_type, meta_type};
use wrd_capture::PixelFormat;

/// Reads values off the fuzzer's bytes (zeros once they run out).
pub struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Input(data)
    }
    pub fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }
    /// A u32 biased towards edges (0, 1, small, u32::MAX - small, powers).
    pub fn edgy(&mut self, near: u32) -> u32 {
        let v = self.u32();
        match self.u8() % 8 {
            0 => 0,
            1 => u32::MAX - (v % 64),
            2 => near.wrapping_add(v % 16).wrapping_sub(8),
            3 => 1u32.wrapping_shl(v % 32),
            4 => near,
            _ => v,
        }
    }
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
    pub fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.u8() as usize % from.len()]
    }
}

fn aligned(data: &[u8]) -> Vec<u64> {
    let mut v = vec![0u64; data.len().div_ceil(8)];
    // SAFETY: v has at least data.len() bytes; u64 has no invalid bit patterns.
    unsafe {
        std::ptr::copy_nonoverlapping(data.as_ptr(), v.as_mut_ptr() as *mut u8, data.len());
    }
    v
}

fn check_format(pod: &Pod) {
    if let Ok(f) = negotiation::parse_format(pod) {
        assert!(f.width >= 1 && f.width <= negotiation::MAX_DIMENSION);
        assert!(f.height >= 1 && f.height <= negotiation::MAX_DIMENSION);
        assert!(PixelFormat::ALL.contains(&f.format));
    }
}

/// `negotiation::parse_format` on (0) raw bytes as a pod, or (1) a Format
/// object built from fuzzed properties (keys near the video format keys,
/// values of every pod type, choices included).
pub fn format_param(data: &[u8]) {
    let mut inp = Input::new(data);
    if inp.u8().is_multiple_of(2) {
        let raw = inp.rest();
        let v = aligned(raw);
        // SAFETY: v holds raw.len() initialised bytes.
        let bytes = unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, raw.len()) };
        if let Some(pod) = Pod::from_bytes(bytes) {
            check_format(pod);
        }
        return;
    }
    use libspa_sys as s;
    let keys = [
        s::SPA_FORMAT_mediaType,
        s::SPA_FORMAT_mediaSubtype,
        s::SPA_FORMAT_VIDEO_format,
        s::SPA_FORMAT_VIDEO_size,
        s::SPA_FORMAT_VIDEO_framerate,
        s::SPA_FORMAT_VIDEO_maxFramerate,
        s::SPA_FORMAT_VIDEO_modifier,
        s::SPA_FORMAT_VIDEO_colorMatrix,
        s::SPA_FORMAT_VIDEO_colorRange,
        s::SPA_FORMAT_VIDEO_views,
    ];
    let mut properties = vec![
        Property::new(
            s::SPA_FORMAT_mediaType,
            Value::Id(Id(s::SPA_MEDIA_TYPE_video)),
        ),
        Property::new(
            s::SPA_FORMAT_mediaSubtype,
            Value::Id(Id(s::SPA_MEDIA_SUBTYPE_raw)),
        ),
    ];
    let n = inp.u8() % 10;
    for _ in 0..n {
        let key = if inp.u8().is_multiple_of(8) {
            inp.u32()
        } else {
            inp.pick(&keys)
        };
        let value = match inp.u8() % 9 {
            0 => Value::Id(Id(inp.edgy(2))),
            1 => Value::Int(inp.edgy(2) as i32),
            2 => Value::Long(inp.u64() as i64),
            3 => Value::Rectangle(Rectangle {
                width: inp.edgy(320),
                height: inp.edgy(240),
            }),
            4 => Value::Fraction(Fraction {
                num: inp.edgy(30),
                denom: inp.edgy(1),
            }),
            5 => Value::Bool(inp.u8() & 1 == 1),
            6 => Value::Bytes(inp.bytes(16).to_vec()),
            7 => {
                let d = inp.edgy(2) as i32;
                let alts = (0..inp.u8() % 4).map(|_| inp.edgy(2) as i32).collect();
                Value::Choice(libspa::pod::ChoiceValue::Int(Choice(
                    ChoiceFlags::empty(),
                    ChoiceEnum::Enum {
                        default: d,
                        alternatives: alts,
                    },
                )))
            }
            _ => Value::Choice(libspa::pod::ChoiceValue::Rectangle(Choice(
                ChoiceFlags::empty(),
                ChoiceEnum::Range {
                    default: Rectangle {
                        width: inp.edgy(320),
                        height: inp.edgy(240),
                    },
                    min: Rectangle {
                        width: inp.edgy(1),
                        height: inp.edgy(1),
                    },
                    max: Rectangle {
                        width: inp.edgy(16384),
                        height: inp.edgy(16384),
                    },
                },
            ))),
        };
        properties.push(Property {
            key,
            flags: PropertyFlags::from_bits_retain(inp.u32() & 0x1f),
            value,
        });
    }
    let obj = Value::Object(Object {
        type_: if inp.u8().is_multiple_of(16) {
            inp.u32()
        } else {
            s::SPA_TYPE_OBJECT_Format
        },
        id: s::SPA_PARAM_Format,
        properties,
    });
    let Ok((cursor, _)) =
        libspa::pod::serialize::PodSerializer::serialize(std::io::Cursor::new(Vec::new()), &obj)
    else {
        return;
    };
    let bytes = cursor.into_inner();
    let v = aligned(&bytes);
    // SAFETY: v holds bytes.len() initialised bytes.
    let b = unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, bytes.len()) };
    if let Some(pod) = Pod::from_bytes(b) {
        check_format(pod);
    }
}

const FORMATS: [PixelFormat; 10] = [
    PixelFormat::Bgrx,
    PixelFormat::Bgra,
    PixelFormat::Rgbx,
    PixelFormat::Rgba,
    PixelFormat::Rgb,
    PixelFormat::Bgr,
    PixelFormat::Nv12,
    PixelFormat::I420,
    PixelFormat::Yuy2,
    PixelFormat::Gray8,
];

/// `buffer::validate_shm` / `validate_dmabuf` on fuzzed chunks; every span
/// it accepts is read in full from a buffer of exactly the mapped length.
pub fn buffer_validate(data: &[u8]) {
    let mut inp = Input::new(data);
    let fmt = inp.pick(&FORMATS);
    let w = 1 + u32::from(inp.u16() % 300);
    let h = 1 + u32::from(inp.u16() % 300);
    let n = (inp.u8() % 6) as usize;
    let frame = fmt.packed_layout(w, h, 1).map_or(0, |(_, total)| total) as u32;
    let mut datas = Vec::new();
    for _ in 0..n {
        let data_type = match inp.u8() % 8 {
            0 => data_type::MEM_PTR,
            1 => data_type::DMA_BUF,
            2 => u32::from(inp.u8()),
            _ => data_type::MEM_FD,
        };
        let mapped_len = (inp.edgy(frame) as usize).min(4 << 20);
        let offset = inp.edgy(0);
        let size = inp.edgy(frame);
        let stride = inp.edgy(fmt.plane_size(0, w, h).map_or(0, |p| p.0 as u32)) as i32;
        datas.push(DataDesc {
            data_type,
            mapped_len,
            chunk: ChunkDesc {
                offset,
                size,
                stride,
                flags: 0,
            },
        });
    }
    match buffer::validate_shm(fmt, w, h, &datas) {
        Ok(ShmLayout::Planes(spans)) => {
            assert_eq!(spans.len(), fmt.planes());
            for (p, s) in spans.iter().enumerate() {
                let d = &datas[s.data];
                let (row, rows) = fmt.plane_size(p, w, h).unwrap();
                assert!(s.stride >= row, "stride below the row");
                assert_eq!(s.len, s.stride * (rows - 1) + row);
                assert!(s.offset + s.len <= d.mapped_len, "span past the mapping");
                // Read it as a frame would.
                let mem = vec![0u8; d.mapped_len];
                let plane = &mem[s.offset..s.offset + s.len];
                let mut sum = 0u32;
                for y in 0..rows {
                    sum = sum.wrapping_add(u32::from(plane[y * s.stride + row - 1]));
                }
                std::hint::black_box(sum);
            }
        }
        Ok(ShmLayout::CursorOnly) => assert_eq!(datas[0].chunk.size, 0),
        Err(_) => {}
    }
    let fds: Vec<i32> = datas.iter().map(|_| inp.u8() as i32 - 8).collect();
    if let Ok(spans) = buffer::validate_dmabuf(fmt, &datas, &fds) {
        for (di, _, stride) in spans {
            assert!(di < datas.len() && fds[di] >= 0 && stride > 0);
        }
    }
}

/// `buffer::parse_metas` on fuzzed metas: regions end up inside the frame,
/// cursor bitmaps within bounds.
pub fn metas(data: &[u8]) {
    let mut inp = Input::new(data);
    let w = 1 + u32::from(inp.u16() % 5000);
    let h = 1 + u32::from(inp.u16() % 5000);
    let n = inp.u8() % 7;
    let mut owned = Vec::new();
    for _ in 0..n {
        let kind = match inp.u8() % 8 {
            0 => meta_type::HEADER,
            1 => meta_type::VIDEO_CROP,
            2 => meta_type::VIDEO_DAMAGE,
            3 | 4 => meta_type::CURSOR,
            5 => meta_type::VIDEO_TRANSFORM,
            6 => meta_type::BITMAP,
            _ => u32::from(inp.u8()),
        };
        let len = inp.u16() as usize % 4096;
        owned.push((kind, inp.bytes(len).to_vec()));
    }
    let metas: Vec<(u32, &[u8])> = owned.iter().map(|(k, b)| (*k, &b[..])).collect();
    let m = buffer::parse_metas(&metas, w, h);
    let inside = |r: &wrd_capture::Region| {
        r.x >= 0
            && r.y >= 0
            && r.width > 0
            && r.height > 0
            && i64::from(r.x) + i64::from(r.width) <= i64::from(w)
            && i64::from(r.y) + i64::from(r.height) <= i64::from(h)
    };
    if let Some(d) = &m.damage {
        assert!(d.len() <= negotiation::MAX_DAMAGE_RECTS);
        assert!(d.iter().all(inside), "damage outside the frame: {d:?}");
    }
    if let Some(c) = &m.crop {
        assert!(inside(c), "crop outside the frame: {c:?}");
    }
    if let Some(b) = m.cursor.as_ref().and_then(|c| c.bitmap.as_ref()) {
        assert!(b.width <= negotiation::CURSOR_BITMAP_SIZE);
        assert!(b.height <= negotiation::CURSOR_BITMAP_SIZE);
        assert_eq!(b.pixels.len(), (b.width * b.height * 4) as usize);
    }
    assert!(m.transform <= 7);
}

/// `convert::convert` with fuzzed formats, sizes, strides, buffer lengths,
/// rectangles, SIMD level and threads: Ok or Err, never a panic or an
/// access outside the slices (ASan / valgrind).
pub fn converters(data: &[u8]) {
    let mut inp = Input::new(data);
    let src_fmt = match inp.u8() % 12 {
        10 => SrcFormat::Argb32,
        11 => SrcFormat::Rgb24,
        i => SrcFormat::Pixel(FORMATS[i as usize]),
    };
    let dst_fmt = inp.pick(&[
        DstFormat::Bgra,
        DstFormat::Rgba,
        DstFormat::I420,
        DstFormat::Nv12,
    ]);
    let w = u32::from(inp.u8() % 80);
    let h = u32::from(inp.u8() % 40);
    let sl = src_fmt.layout();
    let dl = dst_fmt.layout();
    let mut src_bufs = Vec::new();
    let mut src_strides = [0usize; 3];
    for (p, slot) in src_strides.iter_mut().enumerate() {
        let (row, rows) = sl.plane_size(p, w, h).unwrap_or((0, 0));
        let stride = match inp.u8() % 4 {
            0 => row.saturating_sub(1),
            1 => row + (inp.u8() % 64) as usize,
            _ => row,
        };
        let need = if rows == 0 {
            0
        } else {
            stride * (rows - 1) + row
        };
        let len = match inp.u8() % 6 {
            0 => need.saturating_sub(1),
            1 => need + inp.u8() as usize,
            2 => inp.u16() as usize % 8192,
            _ => need,
        };
        src_bufs.push(
            (0..len)
                .map(|i| (i * 31 + p * 7) as u8)
                .collect::<Vec<u8>>(),
        );
        *slot = stride;
    }
    let mut dst_bufs = Vec::new();
    let mut dst_strides = [0usize; 3];
    for (p, slot) in dst_strides.iter_mut().enumerate() {
        let (row, rows) = dl.plane_size(p, w, h).unwrap_or((0, 0));
        let stride = match inp.u8() % 4 {
            0 => row.saturating_sub(1),
            1 => row + (inp.u8() % 64) as usize,
            _ => row,
        };
        let need = if rows == 0 {
            0
        } else {
            stride * (rows - 1) + row
        };
        let len = match inp.u8() % 6 {
            0 => need.saturating_sub(1),
            1 => need + inp.u8() as usize,
            _ => need,
        };
        dst_bufs.push(vec![0xA5u8; len]);
        *slot = stride;
    }
    let rects: Vec<Rect> = (0..inp.u8() % 4)
        .map(|_| Rect::new(inp.edgy(w / 2), inp.edgy(h / 2), inp.edgy(w), inp.edgy(h)))
        .collect();
    let use_rects = inp.u8().is_multiple_of(2);
    let level = inp.pick(&[
        None,
        Some(SimdLevel::Scalar),
        Some(SimdLevel::Sse41),
        Some(SimdLevel::Avx2),
    ]);
    if level.is_some_and(|l| !l.is_supported()) {
        return;
    }
    let opts = Options {
        threads: 1 + (inp.u8() % 3) as usize,
        level,
        backend: if inp.u8().is_multiple_of(2) {
            convert::Backend::Auto
        } else {
            convert::Backend::Own
        },
        ..Default::default()
    };
    let src = convert::SrcPlanes {
        planes: [&src_bufs[0], &src_bufs[1], &src_bufs[2]],
        strides: src_strides,
    };
    let [d0, d1, d2] = &mut dst_bufs[..] else {
        unreachable!()
    };
    let mut dst = DstPlanes {
        planes: [&mut d0[..], &mut d1[..], &mut d2[..]],
        strides: dst_strides,
    };
    let _ = convert::convert(
        src_fmt,
        &src,
        w,
        h,
        dst_fmt,
        &mut dst,
        use_rects.then_some(&rects[..]),
        &opts,
    );
}
