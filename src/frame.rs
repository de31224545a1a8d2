//! Frames handed to callers: pixels (zero-copy views into the producer's
//! buffer, or DMA-BUF planes) and metadata.
//!
//! A [`Frame`] is reference counted. While any clone is alive the PipeWire
//! buffer behind it is held (not given back to the producer) and the memory
//! it points into stays mapped, also after its stream was removed. Dropping
//! the last clone gives the buffer back.

use std::os::fd::{BorrowedFd, RawFd};
use std::sync::Arc;

use crate::buffer::Mapping;
use crate::dmabuf::{Dmabuf, DmabufPlane};
use crate::format::PixelFormat;
use crate::negotiation::{ColorMatrix, ColorRange};

/// A rectangle in frame coordinates.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[allow(non_camel_case_types)]
pub struct wrd_region {
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
}

/// A rectangle in frame coordinates.
pub type Region = wrd_region;

impl Region {
    /// The whole frame.
    pub fn full(width: u32, height: u32) -> Self {
        Region {
            x: 0,
            y: 0,
            width,
            height,
        }
    }

    /// The part of `self` inside a `width` x `height` frame, or `None` when
    /// nothing of it is.
    pub fn clip(&self, width: u32, height: u32) -> Option<Region> {
        let x0 = i64::from(self.x).max(0);
        let y0 = i64::from(self.y).max(0);
        let x1 = (i64::from(self.x) + i64::from(self.width)).min(i64::from(width));
        let y1 = (i64::from(self.y) + i64::from(self.height)).min(i64::from(height));
        (x1 > x0 && y1 > y0).then(|| Region {
            x: x0 as i32,
            y: y0 as i32,
            width: (x1 - x0) as u32,
            height: (y1 - y0) as u32,
        })
    }
}

/// Frame flags (bit values are ABI).
pub mod flags {
    /// The producer marked the buffer corrupted.
    pub const CORRUPTED: u32 = 1 << 0;
    /// Only the cursor changed: the picture is not included (no planes).
    pub const CURSOR_ONLY: u32 = 1 << 1;
    /// Some damage rectangles were clipped to the frame.
    pub const DAMAGE_CLIPPED: u32 = 1 << 2;
    /// The producer sent no damage: treat the whole frame as changed.
    pub const FULL_DAMAGE: u32 = 1 << 3;
    /// This frame's damage includes that of frames dropped before it.
    pub const DAMAGE_ACCUMULATED: u32 = 1 << 4;
}

/// The cursor, when the producer sends Cursor meta.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    pub id: u32,
    pub x: i32,
    pub y: i32,
    pub hotspot_x: i32,
    pub hotspot_y: i32,
    /// A new bitmap, when the producer sent one with this frame (BGRA
    /// premultiplied or as the producer sent it, see `bitmap_format`).
    pub bitmap: Option<CursorBitmap>,
}

/// A cursor image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CursorBitmap {
    /// Pixel format as sent (our format when it maps to one).
    pub format: Option<PixelFormat>,
    /// SPA video format id as sent.
    pub spa_format: u32,
    pub width: u32,
    pub height: u32,
    pub stride: u32,
    pub pixels: Vec<u8>,
}

/// One plane of an SHM frame: a view into the mapped buffer.
#[derive(Clone, Copy, Debug)]
pub struct Plane {
    pub(crate) ptr: *const u8,
    /// Bytes that may be read from `ptr`.
    pub len: usize,
    /// Offset of the plane in its PipeWire data (chunk offset included).
    pub offset: usize,
    pub stride: usize,
}

/// How a frame's pixels are held.
#[derive(Debug)]
pub enum Pixels {
    /// No picture (cursor-only update).
    None,
    /// Memory the producer shared (MemFd or MemPtr), mapped read-only.
    Shm(Vec<Plane>),
    /// DMA-BUF planes; the fds stay owned by the frame.
    Dmabuf {
        modifier: u64,
        planes: Vec<DmaPlane>,
    },
}

/// A DMA-BUF plane of a frame.
#[derive(Debug, Clone, Copy)]
pub struct DmaPlane {
    pub fd: RawFd,
    pub offset: u32,
    pub stride: u32,
}

/// Everything a frame carries.
#[derive(Debug)]
pub struct FrameData {
    pub stream_id: u64,
    /// Sequence number: the producer's (Header meta) when present, else ours.
    pub sequence: u64,
    /// Presentation time in ns from the Header meta (CLOCK_MONOTONIC for
    /// compositors), or -1 when absent.
    pub pts_ns: i64,
    /// CLOCK_MONOTONIC ns when the frame reached the library.
    pub received_ns: u64,
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    pub matrix: ColorMatrix,
    pub range: ColorRange,
    pub pixels: Pixels,
    /// Changed rectangles, clipped to the frame; see [`flags::FULL_DAMAGE`].
    pub damage: Vec<Region>,
    /// Crop rectangle, clipped to the frame, if sent.
    pub crop: Option<Region>,
    pub cursor: Option<Cursor>,
    /// SPA video transform (0 = normal).
    pub transform: u32,
    pub flags: u32,
    /// Index of the PipeWire buffer in the stream's pool (for import caches).
    pub buffer_index: u32,
    /// Bumped on each format change (imports cached per buffer die with it).
    pub format_generation: u64,
    /// Explicit sync points (PipeWire >= 1.2 producers that use them).
    pub sync: Option<crate::sync::SyncPoints>,
}

pub(crate) struct FrameInner {
    pub data: FrameData,
    /// Keeps the memory the planes point into mapped.
    pub _mappings: Vec<Arc<Mapping>>,
    /// Gives the PipeWire buffer back when dropped.
    pub _hold: Option<crate::stream::BufferHold>,
    /// The import of this frame's DMA-BUF by the stream's importer (cached
    /// per PipeWire buffer).
    pub imported: Option<Arc<crate::import::Imported>>,
    pub importer: Option<Arc<crate::import::Importer>>,
}

/// A frame. Clone it to keep it past the callback (that holds its PipeWire
/// buffer); drop it to release.
#[derive(Clone)]
pub struct Frame {
    pub(crate) inner: Arc<FrameInner>,
}

// SAFETY: the raw plane pointers point into read-only mappings owned by the
// `Arc<Mapping>`s in the same `FrameInner`; nothing mutates through them, so
// sharing and sending the frame across threads is sound.
unsafe impl Send for FrameInner {}
// SAFETY: as above; `FrameInner` has no interior mutability.
unsafe impl Sync for FrameInner {}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.data.fmt(f)
    }
}

impl Frame {
    /// A frame that holds no PipeWire buffer (the DRM source's): its memory
    /// stays alive through `mappings`.
    pub(crate) fn unheld(data: FrameData, mappings: Vec<Arc<Mapping>>) -> Frame {
        Frame {
            inner: Arc::new(FrameInner {
                data,
                _mappings: mappings,
                _hold: None,
                imported: None,
                importer: None,
            }),
        }
    }

    /// All data of the frame.
    pub fn data(&self) -> &FrameData {
        &self.inner.data
    }
    pub fn sequence(&self) -> u64 {
        self.inner.data.sequence
    }
    pub fn pts_ns(&self) -> i64 {
        self.inner.data.pts_ns
    }
    pub fn width(&self) -> u32 {
        self.inner.data.width
    }
    pub fn height(&self) -> u32 {
        self.inner.data.height
    }
    pub fn format(&self) -> PixelFormat {
        self.inner.data.format
    }
    pub fn flags(&self) -> u32 {
        self.inner.data.flags
    }
    pub fn damage(&self) -> &[Region] {
        &self.inner.data.damage
    }
    pub fn crop(&self) -> Option<Region> {
        self.inner.data.crop
    }
    pub fn cursor(&self) -> Option<&Cursor> {
        self.inner.data.cursor.as_ref()
    }
    pub fn is_dmabuf(&self) -> bool {
        matches!(self.inner.data.pixels, Pixels::Dmabuf { .. })
    }

    /// The stream importer's import of this DMA-BUF frame (an EGLImage or
    /// VkImage), imported once per PipeWire buffer and shared by every frame
    /// that buffer carries. `None` for SHM frames or streams without an
    /// importer.
    pub fn imported(&self) -> Option<&Arc<crate::import::Imported>> {
        self.inner.imported.as_ref()
    }

    /// Number of planes (0 for a cursor-only update).
    pub fn plane_count(&self) -> usize {
        match &self.inner.data.pixels {
            Pixels::None => 0,
            Pixels::Shm(p) => p.len(),
            Pixels::Dmabuf { planes, .. } => planes.len(),
        }
    }

    /// The bytes of SHM plane `i` (validated: `stride * (rows - 1) + row
    /// bytes` fit) and its stride.
    pub fn plane(&self, i: usize) -> Option<(&[u8], usize)> {
        match &self.inner.data.pixels {
            Pixels::Shm(planes) => planes.get(i).map(|p| {
                // SAFETY: `p.ptr..p.ptr+p.len` was checked against the
                // mapping when the frame was built, and the mapping is kept
                // alive by `self.inner._mappings` for as long as `self`.
                (
                    unsafe { std::slice::from_raw_parts(p.ptr, p.len) },
                    p.stride,
                )
            }),
            _ => None,
        }
    }

    /// The raw plane views (pointer, length, offset, stride).
    pub fn shm_planes(&self) -> &[Plane] {
        match &self.inner.data.pixels {
            Pixels::Shm(p) => p,
            _ => &[],
        }
    }

    /// The DMA-BUF of this frame, with fds borrowed from it.
    pub fn dmabuf(&self) -> Option<Dmabuf<BorrowedFd<'_>>> {
        match &self.inner.data.pixels {
            Pixels::Dmabuf { modifier, planes } => {
                let d = &self.inner.data;
                // SAFETY: the fds are dups owned by this frame's buffer state
                // (kept in `_mappings`) and stay open while `self` lives.
                Some(unsafe { dmabuf_view(d.format, d.width, d.height, *modifier, planes) })
            }
            _ => None,
        }
    }
}

/// A borrowed DMA-BUF description of DMA-BUF frame planes.
///
/// # Safety
/// Every plane's fd must stay open for the lifetime `'a` chosen by the
/// caller.
pub(crate) unsafe fn dmabuf_view<'a>(
    format: PixelFormat,
    width: u32,
    height: u32,
    modifier: u64,
    planes: &[DmaPlane],
) -> Dmabuf<BorrowedFd<'a>> {
    Dmabuf {
        width,
        height,
        format: format.to_drm(),
        modifier,
        planes: planes
            .iter()
            .map(|p| DmabufPlane {
                // SAFETY: open for 'a (this function's contract).
                fd: unsafe { BorrowedFd::borrow_raw(p.fd) },
                offset: p.offset,
                stride: p.stride,
            })
            .collect(),
    }
}

impl Plane {
    /// Pointer to the first byte of the plane.
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr
    }
}

impl Frame {
    /// Convert this frame's pixels into `dst` (`dst_stride` bytes per row) as
    /// BGRA or RGBA. With `damage_only`, only the frame's damage rectangles
    /// are written and the rest of `dst` keeps what it had (so a buffer kept
    /// across frames stays current). YUV uses the producer's colorimetry when
    /// it stated one, else BT.601 limited range.
    pub fn convert_into(
        &self,
        dst_format: crate::convert::DstFormat,
        dst: &mut [u8],
        dst_stride: usize,
        damage_only: bool,
        threads: usize,
    ) -> crate::Result<()> {
        use crate::convert::{self, Colorimetry, DstPlanes, Options, SrcPlanes};
        let d = &self.inner.data;
        if let Some(buf) = self.dmabuf() {
            let out = match dst_format {
                convert::DstFormat::Bgra => crate::import::ReadFormat::Bgra,
                convert::DstFormat::Rgba => crate::import::ReadFormat::Rgba,
                _ => {
                    return Err(crate::Error::Unsupported(
                        "DMA-BUF frames read back as BGRA or RGBA".into(),
                    ))
                }
            };
            // LINEAR buffers are mapped and read by the CPU; others go
            // through the stream's importer (GPU read-back).
            if buf.modifier == crate::dmabuf::DRM_FORMAT_MOD_LINEAR {
                return crate::import::cpu::read_linear(&buf, false, dst, dst_stride, out);
            }
            return match (&self.inner.importer, &self.inner.imported) {
                (Some(imp), Some(done)) => imp.read_imported(done, dst, dst_stride, out),
                (Some(imp), None) => imp.read_pixels(&buf, dst, dst_stride, out),
                _ => Err(crate::Error::Unsupported(
                    "a tiled DMA-BUF needs an importer to read back".into(),
                )),
            };
        }
        let planes = self.shm_planes();
        if planes.is_empty() {
            return Err(crate::Error::Unsupported(
                "frame has no CPU-readable pixels (DMA-BUF or cursor-only); use an importer".into(),
            ));
        }
        let view = |i: usize| self.plane(i).map(|(b, _)| b).unwrap_or(&[]);
        let src = match planes.len() {
            1 => SrcPlanes::packed(view(0), planes[0].stride),
            2 => SrcPlanes::two(view(0), planes[0].stride, view(1), planes[1].stride),
            _ => SrcPlanes::three(
                view(0),
                planes[0].stride,
                view(1),
                planes[1].stride,
                view(2),
                planes[2].stride,
            ),
        };
        let rects: Vec<convert::Rect> = d
            .damage
            .iter()
            .filter_map(|r| r.clip(d.width, d.height))
            .map(|r| convert::Rect::new(r.x as u32, r.y as u32, r.width, r.height))
            .collect();
        let opts = Options {
            colorimetry: Colorimetry::from_spa(
                match d.matrix {
                    ColorMatrix::Bt709 => libspa_sys::SPA_VIDEO_COLOR_MATRIX_BT709,
                    _ => libspa_sys::SPA_VIDEO_COLOR_MATRIX_BT601,
                },
                match d.range {
                    ColorRange::Full => libspa_sys::SPA_VIDEO_COLOR_RANGE_0_255,
                    _ => libspa_sys::SPA_VIDEO_COLOR_RANGE_16_235,
                },
            ),
            threads,
            ..Default::default()
        };
        convert::convert(
            d.format.into(),
            &src,
            d.width,
            d.height,
            dst_format,
            &mut DstPlanes::packed(dst, dst_stride),
            damage_only.then_some(rects.as_slice()),
            &opts,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_regions() {
        let r = Region {
            x: -5,
            y: 10,
            width: 20,
            height: 100,
        };
        assert_eq!(
            r.clip(100, 50),
            Some(Region {
                x: 0,
                y: 10,
                width: 15,
                height: 40
            })
        );
        let out = Region {
            x: 200,
            y: 0,
            width: 5,
            height: 5,
        };
        assert_eq!(out.clip(100, 50), None);
        let huge = Region {
            x: i32::MAX,
            y: i32::MAX,
            width: u32::MAX,
            height: u32::MAX,
        };
        assert_eq!(huge.clip(100, 50), None);
        let neg = Region {
            x: i32::MIN,
            y: i32::MIN,
            width: u32::MAX,
            height: u32::MAX,
        };
        assert_eq!(neg.clip(100, 50), Some(Region::full(100, 50)));
    }
}
