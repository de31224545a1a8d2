//! Pixel formats wrd-capture negotiates, and their memory layout.
//!
//! Names follow SPA / GStreamer: the letters give the byte order in memory
//! (`BGRx` is the bytes B, G, R, x). DRM fourccs name little-endian packed
//! words, so `BGRx` is `DRM_FORMAT_XRGB8888`.

use drm_fourcc::DrmFourcc;
use libspa::param::video::VideoFormat;

/// A pixel format. The numeric values are part of the C ABI and never change.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PixelFormat {
    /// Bytes B, G, R, x (DRM XRGB8888).
    Bgrx = 1,
    /// Bytes B, G, R, A (DRM ARGB8888).
    Bgra = 2,
    /// Bytes R, G, B, x (DRM XBGR8888).
    Rgbx = 3,
    /// Bytes R, G, B, A (DRM ABGR8888).
    Rgba = 4,
    /// Bytes R, G, B (DRM BGR888).
    Rgb = 5,
    /// Bytes B, G, R (DRM RGB888).
    Bgr = 6,
    /// Y plane, then interleaved U,V plane at half width and height.
    Nv12 = 7,
    /// Y plane, U plane, V plane; chroma at half width and height.
    I420 = 8,
    /// Packed 4:2:2: bytes Y0, U, Y1, V.
    Yuy2 = 9,
    /// One byte of luma per pixel.
    Gray8 = 10,
}

/// Where one plane of a frame lies, as computed for a tightly packed frame
/// or checked for a producer's frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlaneLayout {
    /// Byte offset of the plane from the start of the buffer.
    pub offset: usize,
    /// Bytes from one row to the next.
    pub stride: usize,
    /// Number of rows.
    pub rows: usize,
    /// Bytes of pixel data in one row (at most `stride`).
    pub row_bytes: usize,
}

impl PlaneLayout {
    /// Bytes the plane spans: `stride * (rows - 1) + row_bytes` (the last row
    /// need not be padded), or 0 for an empty plane.
    pub fn span(&self) -> Option<usize> {
        if self.rows == 0 {
            return Some(0);
        }
        self.stride
            .checked_mul(self.rows - 1)?
            .checked_add(self.row_bytes)
    }
}

impl PixelFormat {
    /// Every format, in the default order of preference (cheapest to consume
    /// first: 32-bit RGB is what compositors render into).
    pub const ALL: [PixelFormat; 10] = [
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

    /// The format for a C ABI value.
    pub fn from_raw(v: u32) -> Option<Self> {
        Self::ALL.iter().copied().find(|f| *f as u32 == v)
    }

    /// The SPA / GStreamer name (`"BGRx"`, `"NV12"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            PixelFormat::Bgrx => "BGRx",
            PixelFormat::Bgra => "BGRA",
            PixelFormat::Rgbx => "RGBx",
            PixelFormat::Rgba => "RGBA",
            PixelFormat::Rgb => "RGB",
            PixelFormat::Bgr => "BGR",
            PixelFormat::Nv12 => "NV12",
            PixelFormat::I420 => "I420",
            PixelFormat::Yuy2 => "YUY2",
            PixelFormat::Gray8 => "GRAY8",
        }
    }

    /// Parse an SPA / GStreamer name, case-insensitively.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|f| f.name().eq_ignore_ascii_case(s))
    }

    /// The SPA video format.
    pub fn to_spa(self) -> VideoFormat {
        match self {
            PixelFormat::Bgrx => VideoFormat::BGRx,
            PixelFormat::Bgra => VideoFormat::BGRA,
            PixelFormat::Rgbx => VideoFormat::RGBx,
            PixelFormat::Rgba => VideoFormat::RGBA,
            PixelFormat::Rgb => VideoFormat::RGB,
            PixelFormat::Bgr => VideoFormat::BGR,
            PixelFormat::Nv12 => VideoFormat::NV12,
            PixelFormat::I420 => VideoFormat::I420,
            PixelFormat::Yuy2 => VideoFormat::YUY2,
            PixelFormat::Gray8 => VideoFormat::GRAY8,
        }
    }

    /// The format for an SPA video format, if it is one of ours.
    pub fn from_spa(f: VideoFormat) -> Option<Self> {
        Self::ALL.iter().copied().find(|p| p.to_spa() == f)
    }

    /// The DRM fourcc of the same memory layout.
    pub fn to_drm(self) -> DrmFourcc {
        match self {
            PixelFormat::Bgrx => DrmFourcc::Xrgb8888,
            PixelFormat::Bgra => DrmFourcc::Argb8888,
            PixelFormat::Rgbx => DrmFourcc::Xbgr8888,
            PixelFormat::Rgba => DrmFourcc::Abgr8888,
            PixelFormat::Rgb => DrmFourcc::Bgr888,
            PixelFormat::Bgr => DrmFourcc::Rgb888,
            PixelFormat::Nv12 => DrmFourcc::Nv12,
            PixelFormat::I420 => DrmFourcc::Yuv420,
            PixelFormat::Yuy2 => DrmFourcc::Yuyv,
            PixelFormat::Gray8 => DrmFourcc::R8,
        }
    }

    /// The format for a DRM fourcc, if it is one of ours.
    pub fn from_drm(f: DrmFourcc) -> Option<Self> {
        Self::ALL.iter().copied().find(|p| p.to_drm() == f)
    }

    /// True for the YUV formats.
    pub fn is_yuv(self) -> bool {
        matches!(
            self,
            PixelFormat::Nv12 | PixelFormat::I420 | PixelFormat::Yuy2
        )
    }

    /// True when the format carries a meaningful alpha channel.
    pub fn has_alpha(self) -> bool {
        matches!(self, PixelFormat::Bgra | PixelFormat::Rgba)
    }

    /// Number of planes.
    pub fn planes(self) -> usize {
        match self {
            PixelFormat::Nv12 => 2,
            PixelFormat::I420 => 3,
            _ => 1,
        }
    }

    /// Bytes per pixel of a packed format (plane 0), or per luma sample.
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            PixelFormat::Bgrx | PixelFormat::Bgra | PixelFormat::Rgbx | PixelFormat::Rgba => 4,
            PixelFormat::Rgb | PixelFormat::Bgr => 3,
            PixelFormat::Yuy2 => 2,
            PixelFormat::Nv12 | PixelFormat::I420 | PixelFormat::Gray8 => 1,
        }
    }

    /// Horizontal and vertical chroma subsampling (1 = none). Rectangles on a
    /// subsampled format are aligned to these.
    pub fn subsampling(self) -> (usize, usize) {
        match self {
            PixelFormat::Nv12 | PixelFormat::I420 => (2, 2),
            PixelFormat::Yuy2 => (2, 1),
            _ => (1, 1),
        }
    }

    /// Bytes of pixel data in one row of `plane`, and the number of rows, for
    /// a frame of `width` x `height`. `None` on overflow or a bad plane index.
    pub fn plane_size(self, plane: usize, width: u32, height: u32) -> Option<(usize, usize)> {
        let (w, h) = (width as usize, height as usize);
        let half_w = w.div_ceil(2);
        let half_h = h.div_ceil(2);
        match (self, plane) {
            (PixelFormat::Yuy2, 0) => Some((half_w.checked_mul(4)?, h)),
            (_, 0) => Some((w.checked_mul(self.bytes_per_pixel())?, h)),
            (PixelFormat::Nv12, 1) => Some((half_w.checked_mul(2)?, half_h)),
            (PixelFormat::I420, 1 | 2) => Some((half_w, half_h)),
            _ => None,
        }
    }

    /// The tightly packed layout (strides rounded up to `align` bytes, which
    /// must be a power of two) and the total size in bytes.
    pub fn packed_layout(
        self,
        width: u32,
        height: u32,
        align: usize,
    ) -> Option<(Vec<PlaneLayout>, usize)> {
        debug_assert!(align.is_power_of_two());
        let mut planes = Vec::with_capacity(self.planes());
        let mut offset = 0usize;
        for p in 0..self.planes() {
            let (row_bytes, rows) = self.plane_size(p, width, height)?;
            let stride = row_bytes.checked_add(align - 1)? & !(align - 1);
            planes.push(PlaneLayout {
                offset,
                stride,
                rows,
                row_bytes,
            });
            offset = offset.checked_add(stride.checked_mul(rows)?)?;
        }
        Some((planes, offset))
    }
}

impl std::fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_values_round_trip_and_are_stable() {
        for f in PixelFormat::ALL {
            assert_eq!(PixelFormat::from_raw(f as u32), Some(f));
            assert_eq!(PixelFormat::from_spa(f.to_spa()), Some(f));
            assert_eq!(PixelFormat::from_drm(f.to_drm()), Some(f));
            assert_eq!(PixelFormat::from_name(f.name()), Some(f));
        }
        assert_eq!(PixelFormat::Bgrx as u32, 1);
        assert_eq!(PixelFormat::Gray8 as u32, 10);
        assert_eq!(PixelFormat::from_raw(0), None);
        assert_eq!(PixelFormat::from_raw(11), None);
    }

    #[test]
    fn packed_layouts() {
        let (p, total) = PixelFormat::I420.packed_layout(5, 3, 1).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!((p[0].stride, p[0].rows), (5, 3));
        assert_eq!((p[1].offset, p[1].stride, p[1].rows), (15, 3, 2));
        assert_eq!((p[2].offset, p[2].stride, p[2].rows), (21, 3, 2));
        assert_eq!(total, 27);
        let (p, total) = PixelFormat::Nv12.packed_layout(4, 4, 4).unwrap();
        assert_eq!((p[1].offset, p[1].stride, p[1].rows), (16, 4, 2));
        assert_eq!(total, 24);
        let (p, _) = PixelFormat::Yuy2.packed_layout(3, 1, 1).unwrap();
        assert_eq!(p[0].row_bytes, 8);
        let (p, total) = PixelFormat::Rgb.packed_layout(3, 2, 4).unwrap();
        assert_eq!((p[0].row_bytes, p[0].stride, total), (9, 12, 24));
        assert_eq!(p[0].span(), Some(21));
    }

    #[test]
    fn huge_sizes_do_not_overflow() {
        assert!(PixelFormat::Bgra
            .packed_layout(u32::MAX, u32::MAX, 1)
            .map(|(_, t)| t > 0)
            .unwrap_or(true));
    }
}
