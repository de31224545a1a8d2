//! DMA-BUF descriptions, after Smithay's `allocator/dmabuf.rs`: planes of
//! (fd, offset, stride), a DRM fourcc and a modifier, where
//! `DRM_FORMAT_MOD_INVALID` means "implicit" (the driver knows the layout).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use drm_fourcc::{DrmFourcc, DrmModifier};

/// `DRM_FORMAT_MOD_INVALID`: the layout is implicit.
pub const DRM_FORMAT_MOD_INVALID: u64 = 0x00ff_ffff_ffff_ffff;
/// `DRM_FORMAT_MOD_LINEAR`.
pub const DRM_FORMAT_MOD_LINEAR: u64 = 0;
/// The most planes a DMA-BUF may have (as in `EGL_DMA_BUF_PLANE3`).
pub const MAX_PLANES: usize = 4;

/// One plane of a DMA-BUF.
#[derive(Debug)]
pub struct DmabufPlane<Fd> {
    pub fd: Fd,
    pub offset: u32,
    pub stride: u32,
}

/// A DMA-BUF: its planes, format, modifier and size. `Fd` is [`OwnedFd`] for
/// a buffer this value owns, or [`BorrowedFd`] for one borrowed from a frame.
#[derive(Debug)]
pub struct Dmabuf<Fd = OwnedFd> {
    pub width: u32,
    pub height: u32,
    pub format: DrmFourcc,
    /// Raw modifier; [`DRM_FORMAT_MOD_INVALID`] means implicit.
    pub modifier: u64,
    pub planes: Vec<DmabufPlane<Fd>>,
}

impl<Fd: AsFd> Dmabuf<Fd> {
    /// The modifier as a `drm_fourcc` value.
    pub fn drm_modifier(&self) -> DrmModifier {
        DrmModifier::from(self.modifier)
    }

    /// True when the modifier is implicit.
    pub fn has_implicit_modifier(&self) -> bool {
        self.modifier == DRM_FORMAT_MOD_INVALID
    }

    /// A view of this DMA-BUF with borrowed fds.
    pub fn borrow(&self) -> Dmabuf<BorrowedFd<'_>> {
        Dmabuf {
            width: self.width,
            height: self.height,
            format: self.format,
            modifier: self.modifier,
            planes: self
                .planes
                .iter()
                .map(|p| DmabufPlane {
                    fd: p.fd.as_fd(),
                    offset: p.offset,
                    stride: p.stride,
                })
                .collect(),
        }
    }

    /// Duplicate the fds into an owned DMA-BUF.
    pub fn try_clone_owned(&self) -> std::io::Result<Dmabuf<OwnedFd>> {
        let planes = self
            .planes
            .iter()
            .map(|p| {
                Ok(DmabufPlane {
                    fd: p.fd.as_fd().try_clone_to_owned()?,
                    offset: p.offset,
                    stride: p.stride,
                })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Dmabuf {
            width: self.width,
            height: self.height,
            format: self.format,
            modifier: self.modifier,
            planes,
        })
    }
}
