//! CPU read-back of LINEAR DMA-BUFs: each plane is mapped read-only and read
//! between `DMA_BUF_IOCTL_SYNC` START|READ and END|READ, after every offset,
//! stride and size was checked against the fd's size (`lseek(SEEK_END)`).
//! Works on memfds too (the sync ioctl's ENOTTY there is ignored), which is
//! how the tests exercise it.

use std::os::fd::{AsRawFd, BorrowedFd};

use super::{check_dst, ReadFormat};
use crate::dmabuf::{Dmabuf, DRM_FORMAT_MOD_INVALID, DRM_FORMAT_MOD_LINEAR};
use crate::error::{Error, Result};
use crate::format::PixelFormat;

/// `struct dma_buf_sync { __u64 flags; }`
#[repr(C)]
struct DmaBufSync {
    flags: u64,
}

const DMA_BUF_SYNC_READ: u64 = 1;
const DMA_BUF_SYNC_START: u64 = 0;
const DMA_BUF_SYNC_END: u64 = 4;
/// `_IOW('b', 0, struct dma_buf_sync)`
const DMA_BUF_IOCTL_SYNC: libc::c_ulong = 0x4008_6200;

/// `DMA_BUF_IOCTL_SYNC` with `flags`; ENOTTY (not a DMA-BUF, e.g. a memfd)
/// is not an error; EINTR and EAGAIN are retried.
fn dma_buf_sync(fd: BorrowedFd<'_>, flags: u64) -> Result<()> {
    let arg = DmaBufSync { flags };
    loop {
        // SAFETY: `fd` is live for the borrow; `arg` is the struct this
        // ioctl reads, valid for the call.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), DMA_BUF_IOCTL_SYNC as _, &arg) };
        if r == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) | Some(libc::EAGAIN) => continue,
            Some(libc::ENOTTY) => return Ok(()),
            _ => return Err(Error::Io(e)),
        }
    }
}

/// The size of the object behind `fd`, by `lseek(SEEK_END)`; the file
/// position is restored.
fn fd_size(fd: BorrowedFd<'_>) -> Result<u64> {
    let raw = fd.as_raw_fd();
    // SAFETY: lseek on a live fd; no memory is touched.
    let cur = unsafe { libc::lseek(raw, 0, libc::SEEK_CUR) };
    // SAFETY: as above.
    let end = unsafe { libc::lseek(raw, 0, libc::SEEK_END) };
    if end < 0 {
        return Err(Error::Io(std::io::Error::last_os_error()));
    }
    if cur >= 0 {
        // SAFETY: as above.
        unsafe { libc::lseek(raw, cur, libc::SEEK_SET) };
    }
    Ok(end as u64)
}

/// A read-only mapping, unmapped on drop.
struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Mapping {
    fn new(fd: BorrowedFd<'_>, len: usize) -> Result<Mapping> {
        // SAFETY: a fresh read-only shared mapping of `len` bytes (checked
        // non-zero and within the fd's size by the caller) at offset 0.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(Error::Io(std::io::Error::last_os_error()));
        }
        Ok(Mapping { ptr, len })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is `len` readable bytes for our lifetime. The
        // producer may write concurrently (we read between sync ioctls); u8
        // has no invalid values.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

/// Read a LINEAR DMA-BUF into `dst` as BGRA or RGBA (rows of `dst_stride`
/// bytes). `implicit_is_linear`: the caller knows that a buffer with
/// `DRM_FORMAT_MOD_INVALID` is linear (single-plane formats only).
///
/// Packed RGB formats and GRAY8 are swizzled (alpha 255 where the format has
/// none); NV12, I420 and YUY2 are converted with BT.601 limited range.
/// Errors: [`Error::Unsupported`] for a tiled or unknown modifier or an
/// unknown fourcc, [`Error::InvalidArgument`] for a bad description or
/// destination, [`Error::BadFrame`] when a plane does not fit in its fd,
/// [`Error::Io`] when mapping or syncing fails.
pub fn read_linear(
    buf: &Dmabuf<BorrowedFd<'_>>,
    implicit_is_linear: bool,
    dst: &mut [u8],
    dst_stride: usize,
    out: ReadFormat,
) -> Result<()> {
    super::validate_dmabuf(buf)?;
    let fmt = PixelFormat::from_drm(buf.format)
        .ok_or_else(|| Error::Unsupported(format!("no CPU read-back for {:?}", buf.format)))?;
    match buf.modifier {
        DRM_FORMAT_MOD_LINEAR => {}
        DRM_FORMAT_MOD_INVALID if implicit_is_linear && fmt.planes() == 1 => {}
        m => {
            return Err(Error::Unsupported(format!(
                "CPU read-back needs a LINEAR buffer, not modifier {}",
                super::modifier_name(m)
            )))
        }
    }
    if buf.planes.len() != fmt.planes() {
        return Err(Error::InvalidArgument(format!(
            "linear {fmt} has {} planes, the DMA-BUF {}",
            fmt.planes(),
            buf.planes.len()
        )));
    }
    check_dst(buf.width, buf.height, dst.len(), dst_stride)?;

    // Check every plane against its fd, then map it.
    let mut maps = Vec::with_capacity(buf.planes.len());
    for (i, p) in buf.planes.iter().enumerate() {
        let (row_bytes, rows) = fmt
            .plane_size(i, buf.width, buf.height)
            .ok_or_else(|| Error::InvalidArgument("plane size overflows".into()))?;
        let stride = p.stride as usize;
        let span = (stride as u64)
            .checked_mul(rows as u64 - 1)
            .and_then(|s| s.checked_add(row_bytes as u64))
            .ok_or_else(|| Error::BadFrame(format!("plane {i}: size overflows")))?;
        let end = (p.offset as u64)
            .checked_add(span)
            .ok_or_else(|| Error::BadFrame(format!("plane {i}: end overflows")))?;
        let size = fd_size(p.fd)?;
        if end > size {
            return Err(Error::BadFrame(format!(
                "plane {i}: offset {} + {span} bytes ({rows} rows of stride {stride}) exceeds the buffer's {size} bytes",
                p.offset
            )));
        }
        let len = usize::try_from(end)
            .map_err(|_| Error::BadFrame(format!("plane {i} does not fit in memory")))?;
        maps.push((Mapping::new(p.fd, len)?, p.offset as usize, stride));
    }

    // Sync each distinct fd around the read.
    let mut fds: Vec<BorrowedFd<'_>> = Vec::new();
    for p in &buf.planes {
        if !fds.iter().any(|f| f.as_raw_fd() == p.fd.as_raw_fd()) {
            fds.push(p.fd);
        }
    }
    for (n, fd) in fds.iter().enumerate() {
        if let Err(e) = dma_buf_sync(*fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ) {
            for f in &fds[..n] {
                let _ = dma_buf_sync(*f, DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ);
            }
            return Err(e);
        }
    }
    let planes: Vec<(&[u8], usize)> = maps
        .iter()
        .map(|(m, off, stride)| (&m.bytes()[*off..], *stride))
        .collect();
    convert_frame(fmt, &planes, buf.width, buf.height, dst, dst_stride, out);
    let mut result = Ok(());
    for fd in &fds {
        if let Err(e) = dma_buf_sync(*fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ) {
            result = Err(e);
        }
    }
    result
}

/// Convert a frame whose planes (slices starting at each plane's first byte,
/// with their strides) were checked to hold `width` x `height` pixels.
#[allow(clippy::needless_range_loop)] // parallel indexing of planes
pub(crate) fn convert_frame(
    fmt: PixelFormat,
    planes: &[(&[u8], usize)],
    width: u32,
    height: u32,
    dst: &mut [u8],
    dst_stride: usize,
    out: ReadFormat,
) {
    let (w, h) = (width as usize, height as usize);
    for y in 0..h {
        let d = &mut dst[y * dst_stride..y * dst_stride + w * 4];
        match fmt {
            PixelFormat::Nv12 => {
                let (yp, ys) = planes[0];
                let (uv, uvs) = planes[1];
                let yrow = &yp[y * ys..];
                let crow = &uv[(y / 2) * uvs..];
                for x in 0..w {
                    let c = (x / 2) * 2;
                    put(d, x, yuv_to_rgb(yrow[x], crow[c], crow[c + 1]), out);
                }
            }
            PixelFormat::I420 => {
                let (yp, ys) = planes[0];
                let (u, us) = planes[1];
                let (v, vs) = planes[2];
                let yrow = &yp[y * ys..];
                let urow = &u[(y / 2) * us..];
                let vrow = &v[(y / 2) * vs..];
                for x in 0..w {
                    put(d, x, yuv_to_rgb(yrow[x], urow[x / 2], vrow[x / 2]), out);
                }
            }
            PixelFormat::Yuy2 => {
                let (p, s) = planes[0];
                let row = &p[y * s..];
                for x in 0..w {
                    let m = (x / 2) * 4;
                    let luma = row[m + (x % 2) * 2];
                    put(d, x, yuv_to_rgb(luma, row[m + 1], row[m + 3]), out);
                }
            }
            _ => {
                let (p, s) = planes[0];
                packed_row_to(fmt, &p[y * s..], d, w, out);
            }
        }
    }
}

#[inline]
fn put(d: &mut [u8], x: usize, (r, g, b): (u8, u8, u8), out: ReadFormat) {
    let px = &mut d[x * 4..x * 4 + 4];
    match out {
        ReadFormat::Bgra => px.copy_from_slice(&[b, g, r, 255]),
        ReadFormat::Rgba => px.copy_from_slice(&[r, g, b, 255]),
    }
}

/// BT.601 limited range, integer arithmetic.
#[inline]
pub(crate) fn yuv_to_rgb(y: u8, u: u8, v: u8) -> (u8, u8, u8) {
    let c = 298 * (y as i32 - 16);
    let d = u as i32 - 128;
    let e = v as i32 - 128;
    let clamp = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
    (
        clamp(c + 409 * e),
        clamp(c - 100 * d - 208 * e),
        clamp(c + 516 * d),
    )
}

/// One row of a packed (or GRAY8) format to BGRA/RGBA.
fn packed_row_to(fmt: PixelFormat, src: &[u8], d: &mut [u8], w: usize, out: ReadFormat) {
    // (r, g, b, a) byte indices in a source pixel; a = None means 255.
    let (bpp, r, g, b, a) = match fmt {
        PixelFormat::Bgrx => (4, 2, 1, 0, None),
        PixelFormat::Bgra => (4, 2, 1, 0, Some(3)),
        PixelFormat::Rgbx => (4, 0, 1, 2, None),
        PixelFormat::Rgba => (4, 0, 1, 2, Some(3)),
        PixelFormat::Rgb => (3, 0, 1, 2, None),
        PixelFormat::Bgr => (3, 2, 1, 0, None),
        PixelFormat::Gray8 => (1, 0, 0, 0, None),
        PixelFormat::Nv12 | PixelFormat::I420 | PixelFormat::Yuy2 => {
            unreachable!("YUV is converted by convert_frame")
        }
    };
    // Fast paths: same byte order.
    if bpp == 4 {
        let same = matches!(
            (fmt, out),
            (PixelFormat::Bgra | PixelFormat::Bgrx, ReadFormat::Bgra)
                | (PixelFormat::Rgba | PixelFormat::Rgbx, ReadFormat::Rgba)
        );
        if same {
            d[..w * 4].copy_from_slice(&src[..w * 4]);
            if a.is_none() {
                for px in d[..w * 4].chunks_exact_mut(4) {
                    px[3] = 255;
                }
            }
            return;
        }
    }
    for x in 0..w {
        let s = &src[x * bpp..x * bpp + bpp];
        let alpha = a.map(|i| s[i]).unwrap_or(255);
        let px = &mut d[x * 4..x * 4 + 4];
        match out {
            ReadFormat::Bgra => px.copy_from_slice(&[s[b], s[g], s[r], alpha]),
            ReadFormat::Rgba => px.copy_from_slice(&[s[r], s[g], s[b], alpha]),
        }
    }
}

/// One row of RGBA bytes (as `glReadPixels` returns) to `out`; with
/// `opaque`, alpha is forced to 255.
pub(crate) fn rgba_row_to(src: &[u8], d: &mut [u8], out: ReadFormat, opaque: bool) {
    match out {
        ReadFormat::Rgba => d.copy_from_slice(src),
        ReadFormat::Bgra => {
            for (s, px) in src.chunks_exact(4).zip(d.chunks_exact_mut(4)) {
                px.copy_from_slice(&[s[2], s[1], s[0], s[3]]);
            }
        }
    }
    if opaque {
        for px in d.chunks_exact_mut(4) {
            px[3] = 255;
        }
    }
}
