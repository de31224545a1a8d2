//! GPU import of DMA-BUF frames, and their read-back to memory.
//!
//! An [`Importer`] wraps one backend:
//! - EGL ([`Importer::egl_default`], [`Importer::egl_from_display`]): a
//!   DMA-BUF becomes an `EGLImage` (`EGL_EXT_image_dma_buf_import`, with
//!   explicit modifiers through `EGL_EXT_image_dma_buf_import_modifiers`),
//!   which can be bound to a GL texture or read back with `glReadPixels`.
//!   libEGL is loaded at run time and never unloaded.
//! - Vulkan ([`Importer::vulkan`]): a DMA-BUF becomes a `VkImage` with
//!   `VK_EXT_image_drm_format_modifier` and `VK_EXT_external_memory_dma_buf`.
//!   libvulkan is loaded at run time (or reached through the caller's
//!   `vkGetInstanceProcAddr`).
//! - A test backend ([`Importer::test`]) with no GPU, for negotiation tests.
//!
//! On a machine with no libEGL, no libvulkan or no GPU, creating an importer
//! returns [`Error::Unsupported`], never a crash.
//!
//! [`cpu::read_linear`] reads LINEAR DMA-BUFs with the CPU (mmap and
//! `DMA_BUF_IOCTL_SYNC`), with no importer at all.
//!
//! The fds of a [`Dmabuf`] given to [`Importer::import`] stay owned by the
//! caller: a backend that needs ownership (Vulkan) duplicates them.

pub mod cpu;
pub mod egl;
mod gl;
pub mod vulkan;

use std::collections::HashMap;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use drm_fourcc::DrmFourcc;

use crate::dmabuf::{Dmabuf, DRM_FORMAT_MOD_INVALID, DRM_FORMAT_MOD_LINEAR, MAX_PLANES};
use crate::error::{Error, Result};
use crate::format::PixelFormat;

pub use vulkan::VulkanHandles;

/// The byte order of pixels written by the read-back functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReadFormat {
    /// Bytes B, G, R, A ([`PixelFormat::Bgra`], DRM ARGB8888).
    Bgra,
    /// Bytes R, G, B, A ([`PixelFormat::Rgba`], DRM ABGR8888).
    Rgba,
}

impl ReadFormat {
    /// The read format for a [`PixelFormat`] C value: `Bgra` (2) or `Rgba` (4).
    pub fn from_pixel_format(f: PixelFormat) -> Option<Self> {
        match f {
            PixelFormat::Bgra => Some(ReadFormat::Bgra),
            PixelFormat::Rgba => Some(ReadFormat::Rgba),
            _ => None,
        }
    }
}

/// Which backend an importer uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    Egl,
    Vulkan,
    Test,
}

/// A GPU importer of DMA-BUFs. `Send + Sync`: every method may be called from
/// any thread (the EGL backend serializes its own GL context internally; see
/// [`egl`] for the rules on contexts).
pub struct Importer {
    backend: Backend,
    formats: Vec<(DrmFourcc, Vec<u64>)>,
}

enum Backend {
    Egl(Arc<egl::EglShared>),
    Vulkan(Arc<vulkan::VkShared>),
    Test(TestBackend),
}

struct TestBackend {
    reject: Vec<u64>,
    imports: AtomicUsize,
}

impl std::fmt::Debug for Importer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Importer")
            .field("backend", &self.kind())
            .field("description", &self.description())
            .field("formats", &self.formats.len())
            .finish()
    }
}

impl Importer {
    /// An EGL importer on its own display: the device platform
    /// (`eglQueryDevicesEXT`, hardware devices first) when the client
    /// extensions allow, else `EGL_PLATFORM_SURFACELESS_MESA`; with its own
    /// surfaceless GLES 2+ context. The display is initialized and never
    /// terminated (EGL displays are process-wide singletons that other code in
    /// the process may share); the context is destroyed on drop.
    ///
    /// Returns [`Error::Unsupported`] when libEGL cannot be loaded or no
    /// display supports `EGL_EXT_image_dma_buf_import`.
    pub fn egl_default() -> Result<Importer> {
        let shared = egl::EglShared::open_default()?;
        Ok(Self::from_egl(shared))
    }

    /// An EGL importer on the caller's `EGLDisplay`, which must already be
    /// initialized and which this importer never terminates. If the display
    /// has `EGL_KHR_surfaceless_context`, the importer makes its own GLES
    /// context on it for [`read_pixels`](Self::read_pixels) (else that
    /// returns [`Error::Unsupported`]).
    ///
    /// # Safety
    /// `display` must be a valid, initialized `EGLDisplay` of the libEGL that
    /// this process loads as `libEGL.so.1`, and must stay initialized for the
    /// life of the importer and of every [`Imported`] made from it.
    pub unsafe fn egl_from_display(display: *mut std::ffi::c_void) -> Result<Importer> {
        if display.is_null() {
            return Err(Error::InvalidArgument("EGLDisplay is NULL".into()));
        }
        // SAFETY: the caller guarantees the display is valid and initialized.
        let shared = unsafe { egl::EglShared::from_display(display)? };
        Ok(Self::from_egl(shared))
    }

    fn from_egl(shared: egl::EglShared) -> Importer {
        let formats = shared.formats().to_vec();
        Importer {
            backend: Backend::Egl(Arc::new(shared)),
            formats,
        }
    }

    /// A Vulkan importer on the caller's instance, physical device and
    /// device. The device must have been created with
    /// `VK_KHR_external_memory_fd`, `VK_EXT_external_memory_dma_buf` and
    /// `VK_EXT_image_drm_format_modifier` enabled, on Vulkan 1.1 or later.
    /// The importer does not own the handles and destroys none of them.
    ///
    /// Null handles give [`Error::InvalidArgument`]; a physical device
    /// without the extensions gives [`Error::Unsupported`] naming the missing
    /// one (NVIDIA's driver 580 lacks `VK_EXT_external_memory_dma_buf`).
    ///
    /// # Safety
    /// The handles must be valid and belong together, and must outlive the
    /// importer and every [`Imported`] made from it;
    /// `get_instance_proc_addr`, when not NULL, must be the
    /// `vkGetInstanceProcAddr` of the loader that created `instance`.
    pub unsafe fn vulkan(handles: VulkanHandles) -> Result<Importer> {
        // SAFETY: forwarded from the caller's contract.
        let shared = unsafe { vulkan::VkShared::new(handles)? };
        let formats = shared.formats().to_vec();
        Ok(Importer {
            backend: Backend::Vulkan(Arc::new(shared)),
            formats,
        })
    }

    /// A backend with no GPU, for tests: it advertises `formats`, and
    /// [`import`](Self::import) validates the planes, fails with
    /// [`Error::ImportFailed`] for a modifier in `reject`, with
    /// [`Error::Unsupported`] for a (fourcc, modifier) not in `formats`, and
    /// otherwise returns an [`Imported`] that holds nothing on a GPU.
    /// [`read_pixels`](Self::read_pixels) reads LINEAR buffers with the CPU.
    pub fn test(formats: Vec<(DrmFourcc, Vec<u64>)>, reject: Vec<u64>) -> Importer {
        Importer {
            backend: Backend::Test(TestBackend {
                reject,
                imports: AtomicUsize::new(0),
            }),
            formats,
        }
    }

    /// Which backend this is.
    pub fn kind(&self) -> BackendKind {
        match self.backend {
            Backend::Egl(_) => BackendKind::Egl,
            Backend::Vulkan(_) => BackendKind::Vulkan,
            Backend::Test(_) => BackendKind::Test,
        }
    }

    /// A one-line description (platform, device, renderer) for logs.
    pub fn description(&self) -> String {
        match &self.backend {
            Backend::Egl(s) => s.description(),
            Backend::Vulkan(s) => s.description(),
            Backend::Test(_) => "test importer (no GPU)".into(),
        }
    }

    /// What this importer can import: for each DRM fourcc that maps to a
    /// [`PixelFormat`], its modifiers. `DRM_FORMAT_MOD_INVALID` is listed
    /// where implicit-modifier import works (EGL: the driver has the format
    /// but lists no modifiers, or has no modifier extension). Modifiers that
    /// EGL reports as `external_only` are left out, as are formats with no
    /// modifier left.
    pub fn formats(&self) -> &[(DrmFourcc, Vec<u64>)] {
        &self.formats
    }

    /// The modifiers for one fourcc (empty if the format is not importable).
    pub fn modifiers(&self, fourcc: DrmFourcc) -> &[u64] {
        self.formats
            .iter()
            .find(|(f, _)| *f == fourcc)
            .map(|(_, m)| m.as_slice())
            .unwrap_or(&[])
    }

    /// Import a DMA-BUF. The fds stay owned by the caller and may be closed
    /// once this returns (EGL and Vulkan keep their own references to the
    /// buffer). Errors: [`Error::InvalidArgument`] for a malformed
    /// description, [`Error::Unsupported`] for a format the backend cannot
    /// handle, [`Error::ImportFailed`] when the driver refuses the buffer.
    pub fn import(&self, buf: &Dmabuf<BorrowedFd<'_>>) -> Result<Imported> {
        validate_dmabuf(buf)?;
        let inner = match &self.backend {
            Backend::Egl(s) => ImportedInner::Egl(egl::EglImported::new(s, buf)?),
            Backend::Vulkan(s) => ImportedInner::Vulkan(vulkan::VkImported::new(s, buf)?),
            Backend::Test(t) => {
                if t.reject.contains(&buf.modifier) {
                    return Err(Error::ImportFailed(format!(
                        "test importer rejects modifier {:#x}",
                        buf.modifier
                    )));
                }
                if !self.modifiers(buf.format).contains(&buf.modifier) {
                    return Err(Error::Unsupported(format!(
                        "test importer does not list {:?} with modifier {:#x}",
                        buf.format, buf.modifier
                    )));
                }
                t.imports.fetch_add(1, Ordering::Relaxed);
                ImportedInner::Test
            }
        };
        Ok(Imported {
            width: buf.width,
            height: buf.height,
            format: buf.format,
            modifier: buf.modifier,
            inner,
        })
    }

    /// Read a DMA-BUF back into `dst` (rows of `dst_stride` bytes, `width * 4`
    /// bytes of pixels each) as BGRA or RGBA. EGL: imports the buffer, draws
    /// or attaches it to a framebuffer in the importer's own context and
    /// calls `glReadPixels`, so it works on tiled buffers and YUV (the
    /// driver's YUV conversion). Test backend: LINEAR buffers only, with the
    /// CPU. Vulkan: [`Error::Unsupported`] for now (it needs a queue).
    pub fn read_pixels(
        &self,
        buf: &Dmabuf<BorrowedFd<'_>>,
        dst: &mut [u8],
        dst_stride: usize,
        out: ReadFormat,
    ) -> Result<()> {
        validate_dmabuf(buf)?;
        check_dst(buf.width, buf.height, dst.len(), dst_stride)?;
        match &self.backend {
            Backend::Egl(s) => {
                let imported = egl::EglImported::new(s, buf)?;
                s.read_pixels(&imported, buf, dst, dst_stride, out)
            }
            Backend::Vulkan(_) => Err(Error::Unsupported(
                "read-back through the Vulkan importer is not implemented; use an EGL importer"
                    .into(),
            )),
            Backend::Test(_) => cpu::read_linear(buf, false, dst, dst_stride, out),
        }
    }

    /// Read back an already imported buffer (EGL only): as
    /// [`read_pixels`](Self::read_pixels) but without importing again.
    pub fn read_imported(
        &self,
        imported: &Imported,
        dst: &mut [u8],
        dst_stride: usize,
        out: ReadFormat,
    ) -> Result<()> {
        check_dst(imported.width, imported.height, dst.len(), dst_stride)?;
        match (&self.backend, &imported.inner) {
            (Backend::Egl(s), ImportedInner::Egl(i)) => {
                if !Arc::ptr_eq(s, i.shared()) {
                    return Err(Error::InvalidArgument(
                        "the imported buffer belongs to another importer".into(),
                    ));
                }
                s.read_imported(i, imported.format, dst, dst_stride, out)
            }
            _ => Err(Error::Unsupported(
                "read_imported needs an EGL importer and an EGL import".into(),
            )),
        }
    }

    /// Make a DMA-BUF of known pixels on the GPU (EGL only): a GL texture of
    /// `width` x `height` filled with `rgba` (bytes R, G, B, A; rows top to
    /// bottom, tightly packed) exported with `EGL_MESA_image_dma_buf_export`.
    /// For validation tools and end-to-end tests that need a producer-like
    /// buffer. The result owns its fds; its fourcc and modifier are whatever
    /// the driver chose (usually ABGR8888 and a tiled modifier).
    pub fn export_rgba_dmabuf(
        &self,
        width: u32,
        height: u32,
        rgba: &[u8],
    ) -> Result<Dmabuf<std::os::fd::OwnedFd>> {
        match &self.backend {
            Backend::Egl(s) => s.export_texture(width, height, gl::GL_RGBA, rgba, 4),
            _ => Err(Error::Unsupported(
                "exporting a DMA-BUF needs an EGL importer".into(),
            )),
        }
    }

    /// As [`export_rgba_dmabuf`](Self::export_rgba_dmabuf) for one 8-bit
    /// channel (`GL_R8`, usually exported as DRM R8) or two (`GL_RG8`, DRM
    /// GR88): `channels` is 1 or 2, `data` is tightly packed. Used to build
    /// the planes of a YUV test buffer.
    pub fn export_channels_dmabuf(
        &self,
        width: u32,
        height: u32,
        channels: u32,
        data: &[u8],
    ) -> Result<Dmabuf<std::os::fd::OwnedFd>> {
        let fmt = match channels {
            1 => gl::GL_RED,
            2 => gl::GL_RG,
            _ => return Err(Error::InvalidArgument("channels must be 1 or 2".into())),
        };
        match &self.backend {
            Backend::Egl(s) => s.export_texture(width, height, fmt, data, channels as usize),
            _ => Err(Error::Unsupported(
                "exporting a DMA-BUF needs an EGL importer".into(),
            )),
        }
    }

    /// For validation only (EGL): an [`Imported`] whose `EGLImage` comes from
    /// a GL texture holding `rgba` instead of from a DMA-BUF, read back as
    /// `GL_TEXTURE_2D` or, with `external`, through the
    /// `GL_TEXTURE_EXTERNAL_OES` draw path. It exercises everything after
    /// `eglCreateImageKHR(EGL_LINUX_DMA_BUF_EXT)` on drivers that cannot
    /// import DMA-BUFs (NVIDIA without nvidia-drm). Labelled ABGR8888.
    #[doc(hidden)]
    pub fn debug_import_rgba_texture(
        &self,
        width: u32,
        height: u32,
        rgba: &[u8],
        external: bool,
    ) -> Result<Imported> {
        match &self.backend {
            Backend::Egl(s) => {
                let image = s.image_from_rgba(width, height, rgba)?;
                Ok(Imported {
                    width,
                    height,
                    format: DrmFourcc::Abgr8888,
                    modifier: DRM_FORMAT_MOD_INVALID,
                    inner: ImportedInner::Egl(egl::EglImported::from_image(
                        s,
                        image,
                        (width, height),
                        external,
                    )),
                })
            }
            _ => Err(Error::Unsupported("needs an EGL importer".into())),
        }
    }

    /// The raw `EGLDisplay` of an EGL importer.
    pub fn egl_display(&self) -> Option<*mut std::ffi::c_void> {
        match &self.backend {
            Backend::Egl(s) => Some(s.display_ptr()),
            _ => None,
        }
    }

    /// The raw `EGLContext` the importer owns (EGL only; None when it could
    /// not make one on a caller's display).
    pub fn egl_context(&self) -> Option<*mut std::ffi::c_void> {
        match &self.backend {
            Backend::Egl(s) => s.context_ptr(),
            _ => None,
        }
    }

    /// For the test backend: how many imports succeeded so far.
    pub fn test_import_count(&self) -> Option<usize> {
        match &self.backend {
            Backend::Test(t) => Some(t.imports.load(Ordering::Relaxed)),
            _ => None,
        }
    }
}

/// An imported DMA-BUF. It releases what it holds (EGLImage and GL texture,
/// or VkImage and its memory) on drop; the caller's fds were never owned.
pub struct Imported {
    width: u32,
    height: u32,
    format: DrmFourcc,
    modifier: u64,
    inner: ImportedInner,
}

enum ImportedInner {
    Egl(egl::EglImported),
    Vulkan(vulkan::VkImported),
    Test,
}

impl std::fmt::Debug for Imported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Imported")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("format", &self.format)
            .field("modifier", &format_args!("{:#x}", self.modifier))
            .finish()
    }
}

impl Imported {
    /// Width and height in pixels.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// The DRM fourcc.
    pub fn format(&self) -> DrmFourcc {
        self.format
    }

    /// The raw modifier.
    pub fn modifier(&self) -> u64 {
        self.modifier
    }

    /// The `EGLImage` (EGL imports only).
    pub fn egl_image(&self) -> Option<*mut std::ffi::c_void> {
        match &self.inner {
            ImportedInner::Egl(i) => Some(i.image_ptr()),
            _ => None,
        }
    }

    /// A GL texture bound to the `EGLImage` (EGL imports only), made on the
    /// first call and returned again afterwards. It is made in the context
    /// current on the calling thread if there is one (it must belong to the
    /// importer's display), else in the importer's own context. Its target is
    /// [`gl_texture_target`](Self::gl_texture_target). The texture is deleted
    /// when this value is dropped: drop it on a thread where that context is
    /// current (or, for the importer's own context, on any thread);
    /// otherwise the texture name is leaked with a warning.
    pub fn gl_texture(&self) -> Result<u32> {
        match &self.inner {
            ImportedInner::Egl(i) => i.gl_texture(),
            _ => Err(Error::Unsupported("GL textures need an EGL import".into())),
        }
    }

    /// `GL_TEXTURE_2D` (0x0DE1) for RGB formats, `GL_TEXTURE_EXTERNAL_OES`
    /// (0x8D65) for YUV formats and external-only modifiers; 0 for non-EGL
    /// imports.
    pub fn gl_texture_target(&self) -> u32 {
        match &self.inner {
            ImportedInner::Egl(i) => i.target(),
            _ => 0,
        }
    }

    /// The `VkImage` and `VkDeviceMemory` handles (Vulkan imports only).
    pub fn vk_image(&self) -> Option<(u64, u64)> {
        match &self.inner {
            ImportedInner::Vulkan(i) => Some(i.handles()),
            _ => None,
        }
    }
}

/// A cache of imports keyed by the buffer's identity: per plane the inode of
/// its fd (`st_dev`, `st_ino`), offset and stride, plus size, fourcc and
/// modifier. A hit costs one `fstat` per plane and a hash lookup. While an
/// entry is cached its import holds a reference to the DMA-BUF, so the inode
/// cannot be reused by another buffer; still, call
/// [`clear`](Self::clear) when the producer's buffers change (PipeWire
/// `remove_buffer`), and [`remove`](Self::remove) per buffer.
#[derive(Default)]
pub struct ImportCache {
    map: HashMap<CacheKey, Arc<Imported>>,
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct CacheKey {
    width: u32,
    height: u32,
    fourcc: u32,
    modifier: u64,
    planes: Vec<(u64, u64, u32, u32)>,
}

impl ImportCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn key(buf: &Dmabuf<BorrowedFd<'_>>) -> Result<CacheKey> {
        let mut planes = Vec::with_capacity(buf.planes.len());
        for p in &buf.planes {
            let (dev, ino) = fd_identity(p.fd)?;
            planes.push((dev, ino, p.offset, p.stride));
        }
        Ok(CacheKey {
            width: buf.width,
            height: buf.height,
            fourcc: buf.format as u32,
            modifier: buf.modifier,
            planes,
        })
    }

    /// The cached import of `buf`, or a new one made with `importer` and
    /// cached. All entries must come from the same importer.
    pub fn get_or_import(
        &mut self,
        importer: &Importer,
        buf: &Dmabuf<BorrowedFd<'_>>,
    ) -> Result<Arc<Imported>> {
        let key = Self::key(buf)?;
        if let Some(i) = self.map.get(&key) {
            return Ok(i.clone());
        }
        let imported = Arc::new(importer.import(buf)?);
        self.map.insert(key, imported.clone());
        Ok(imported)
    }

    /// Forget the import of `buf` (it is released once no `Arc` holds it).
    pub fn remove(&mut self, buf: &Dmabuf<BorrowedFd<'_>>) -> bool {
        match Self::key(buf) {
            Ok(k) => self.map.remove(&k).is_some(),
            Err(_) => false,
        }
    }

    /// Forget everything.
    pub fn clear(&mut self) {
        self.map.clear();
    }

    /// Number of cached imports.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// (`st_dev`, `st_ino`) of an fd.
pub(crate) fn fd_identity(fd: BorrowedFd<'_>) -> Result<(u64, u64)> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is a live fd for the borrow's lifetime and `st` is a valid
    // out-pointer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(Error::Io(std::io::Error::last_os_error()));
    }
    Ok((st.st_dev, st.st_ino))
}

/// Structural checks shared by every backend: size, plane count (at least
/// the format's planes, at most [`MAX_PLANES`]; modifiers with auxiliary
/// planes may have more), non-zero strides at least as wide as a row.
pub(crate) fn validate_dmabuf(buf: &Dmabuf<BorrowedFd<'_>>) -> Result<()> {
    if buf.width == 0 || buf.height == 0 {
        return Err(Error::InvalidArgument(format!(
            "empty DMA-BUF size {}x{}",
            buf.width, buf.height
        )));
    }
    if buf.planes.is_empty() || buf.planes.len() > MAX_PLANES {
        return Err(Error::InvalidArgument(format!(
            "a DMA-BUF has 1 to {MAX_PLANES} planes, not {}",
            buf.planes.len()
        )));
    }
    let fmt = PixelFormat::from_drm(buf.format);
    if let Some(fmt) = fmt {
        if buf.planes.len() < fmt.planes() {
            return Err(Error::InvalidArgument(format!(
                "{} needs {} planes, the DMA-BUF has {}",
                fmt,
                fmt.planes(),
                buf.planes.len()
            )));
        }
    }
    for (i, p) in buf.planes.iter().enumerate() {
        if p.stride == 0 {
            return Err(Error::InvalidArgument(format!("plane {i} has stride 0")));
        }
        if let Some((row_bytes, _)) = fmt.and_then(|f| f.plane_size(i, buf.width, buf.height)) {
            if (p.stride as usize) < row_bytes {
                return Err(Error::InvalidArgument(format!(
                    "plane {i}: stride {} is less than a row ({row_bytes} bytes)",
                    p.stride
                )));
            }
        }
    }
    Ok(())
}

/// Check a destination of `width * 4`-byte rows.
pub(crate) fn check_dst(width: u32, height: u32, len: usize, stride: usize) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(Error::InvalidArgument("empty image".into()));
    }
    let row = (width as usize)
        .checked_mul(4)
        .ok_or_else(|| Error::InvalidArgument("width overflows".into()))?;
    if stride < row {
        return Err(Error::InvalidArgument(format!(
            "destination stride {stride} is less than a row ({row} bytes)"
        )));
    }
    let need = stride
        .checked_mul(height as usize - 1)
        .and_then(|n| n.checked_add(row))
        .ok_or_else(|| Error::InvalidArgument("destination size overflows".into()))?;
    if len < need {
        return Err(Error::BufferTooSmall { need, have: len });
    }
    Ok(())
}

/// Keep only the fourccs that map to a [`PixelFormat`], in
/// [`PixelFormat::ALL`] order, with their modifiers deduplicated.
pub(crate) fn filter_formats(mut all: Vec<(DrmFourcc, Vec<u64>)>) -> Vec<(DrmFourcc, Vec<u64>)> {
    let mut out = Vec::new();
    for pf in PixelFormat::ALL {
        let fourcc = pf.to_drm();
        if let Some(pos) = all.iter().position(|(f, _)| *f == fourcc) {
            let (_, mut mods) = all.swap_remove(pos);
            let mut seen = std::collections::HashSet::new();
            mods.retain(|m| seen.insert(*m));
            if !mods.is_empty() {
                out.push((fourcc, mods));
            }
        }
    }
    out
}

/// A human name for a modifier: "LINEAR", "INVALID (implicit)", or the
/// vendor and value.
pub fn modifier_name(m: u64) -> String {
    match m {
        DRM_FORMAT_MOD_LINEAR => "LINEAR".into(),
        DRM_FORMAT_MOD_INVALID => "INVALID (implicit)".into(),
        _ => {
            let vendor = match m >> 56 {
                0x01 => "INTEL",
                0x02 => "AMD",
                0x03 => "NVIDIA",
                0x04 => "SAMSUNG",
                0x05 => "QCOM",
                0x06 => "VIVANTE",
                0x07 => "BROADCOM",
                0x08 => "ARM",
                0x09 => "ALLWINNER",
                0x0a => "AMLOGIC",
                _ => "vendor?",
            };
            format!("{vendor} {m:#018x}")
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
