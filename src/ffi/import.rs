//! C ABI of the GPU import layer: importers (EGL, Vulkan), imported
//! DMA-BUFs, and read-back. Thin wrappers over [`crate::import`].
//!
//! Threads: an importer may be used from any thread, also from several at
//! once (the EGL importer's own GL context is used under an internal lock,
//! made current for the duration of a call and the thread's previous
//! context restored). An `wrd_imported` may be used from any thread, except
//! as documented for its GL texture.

use std::ffi::c_void;
use std::os::fd::BorrowedFd;

use drm_fourcc::DrmFourcc;

use std::sync::Arc;

use crate::dmabuf::{Dmabuf, DmabufPlane, MAX_PLANES};
use crate::error::{wrd_status, Error, Result};
use crate::ffi::handles::HandleTable;
use crate::format::PixelFormat;
use crate::import::{cpu, Imported, Importer, ReadFormat, VulkanHandles};

/// A GPU importer of DMA-BUFs (opaque).
#[allow(non_camel_case_types)]
pub struct wrd_importer {
    _private: [u8; 0],
}

/// An imported DMA-BUF (opaque): an EGLImage (and GL texture) or a VkImage.
#[allow(non_camel_case_types)]
pub struct wrd_imported {
    _private: [u8; 0],
}

static IMPORTERS: HandleTable<Arc<Importer>> = HandleTable::new();
static IMPORTS: HandleTable<Arc<Imported>> = HandleTable::new();

/// The importer behind a handle (shared with the streams that use it).
pub(crate) fn importer_from(
    p: *const wrd_importer,
) -> std::result::Result<Arc<Importer>, wrd_status> {
    if p.is_null() {
        return Err(wrd_status::WRD_ERR_NULL_POINTER);
    }
    IMPORTERS
        .get(p as usize)
        .ok_or(wrd_status::WRD_ERR_INVALID_STATE)
}

fn imported_from(p: *const wrd_imported) -> std::result::Result<Arc<Imported>, wrd_status> {
    if p.is_null() {
        return Err(wrd_status::WRD_ERR_NULL_POINTER);
    }
    IMPORTS
        .get(p as usize)
        .ok_or(wrd_status::WRD_ERR_INVALID_STATE)
}

pub(crate) fn imported_handle_new(i: Arc<Imported>) -> *mut wrd_imported {
    IMPORTS.insert(i) as *mut wrd_imported
}

/// One plane of a DMA-BUF.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
#[allow(non_camel_case_types)]
pub struct wrd_dmabuf_plane {
    /// The plane's DMA-BUF fd (>= 0); stays owned by the caller.
    pub fd: i32,
    /// Byte offset of the plane in the buffer.
    pub offset: u32,
    /// Bytes from one row to the next.
    pub stride: u32,
}

/// A DMA-BUF description. The fds stay owned by the caller; no call keeps
/// them past its return (imports hold their own references).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
#[allow(non_camel_case_types)]
pub struct wrd_dmabuf {
    /// Width in pixels (> 0).
    pub width: u32,
    /// Height in pixels (> 0).
    pub height: u32,
    /// DRM fourcc (`DRM_FORMAT_XRGB8888`, ...).
    pub fourcc: u32,
    /// DRM modifier; `DRM_FORMAT_MOD_INVALID` (0x00ffffffffffffff) for an
    /// implicit layout.
    pub modifier: u64,
    /// Planes used, 1 to 4.
    pub n_planes: u32,
    /// The planes; entries past `n_planes` are ignored.
    pub planes: [wrd_dmabuf_plane; 4],
}

/// A (fourcc, modifier) pair an importer can import.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub struct wrd_drm_format {
    /// DRM fourcc.
    pub fourcc: u32,
    /// DRM modifier (`DRM_FORMAT_MOD_INVALID`: implicit import works).
    pub modifier: u64,
}

fn status_of<T>(r: Result<T>) -> wrd_status {
    match r {
        Ok(_) => wrd_status::WRD_OK,
        Err(e) => e.status(),
    }
}

/// Translate a C description into a borrowed [`Dmabuf`].
///
/// # Safety
/// The fds must stay open for the lifetime `'a` the caller picks (the call).
unsafe fn dmabuf_from_c<'a>(d: &wrd_dmabuf) -> Result<Dmabuf<BorrowedFd<'a>>> {
    let n = d.n_planes as usize;
    if n == 0 || n > MAX_PLANES {
        return Err(Error::InvalidArgument(format!(
            "n_planes must be 1 to 4, not {n}"
        )));
    }
    let format = DrmFourcc::try_from(d.fourcc)
        .map_err(|_| Error::Unsupported(format!("unknown fourcc {:#010x}", d.fourcc)))?;
    let mut planes = Vec::with_capacity(n);
    for (i, p) in d.planes[..n].iter().enumerate() {
        if p.fd < 0 {
            return Err(Error::InvalidArgument(format!("plane {i} fd is {}", p.fd)));
        }
        planes.push(DmabufPlane {
            // SAFETY: fd >= 0 and the caller keeps it open for 'a.
            fd: unsafe { BorrowedFd::borrow_raw(p.fd) },
            offset: p.offset,
            stride: p.stride,
        });
    }
    Ok(Dmabuf {
        width: d.width,
        height: d.height,
        format,
        modifier: d.modifier,
        planes,
    })
}

/// # Safety
/// `out` must be NULL or valid for a write.
unsafe fn put_importer(r: Result<Importer>, out: *mut *mut wrd_importer) -> wrd_status {
    match r {
        Ok(inner) => {
            // SAFETY: `out` was checked non-NULL by the caller.
            unsafe { *out = IMPORTERS.insert(Arc::new(inner)) as *mut wrd_importer };
            wrd_status::WRD_OK
        }
        Err(e) => e.status(),
    }
}

/// Create an EGL importer on its own display: the EGL device platform
/// (hardware devices first), else the Mesa surfaceless platform, with its own
/// surfaceless GLES context. libEGL is loaded at run time and never
/// unloaded. Any thread. On success `*out` is a new importer that the
/// caller frees with `wrd_importer_destroy`.
///
/// Errors: WRD_ERR_NULL_POINTER (`out` NULL); WRD_ERR_UNSUPPORTED (no
/// libEGL, no display with `EGL_EXT_image_dma_buf_import`, or no GLES
/// context); `*out` is untouched on error.
///
/// # Safety
/// Pointers must be NULL or valid for the access described, handles must
/// come from this library and not be used after they are destroyed, and fds
/// must stay open for the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn wrd_importer_new_default(out: *mut *mut wrd_importer) -> wrd_status {
    ffi_panic_boundary! {
        if out.is_null() {
            return wrd_status::WRD_ERR_NULL_POINTER;
        }
        // SAFETY: `out` is non-NULL and, per the contract, writable.
        unsafe { put_importer(Importer::egl_default(), out) }
    }
}

/// Create an EGL importer on the caller's `EGLDisplay`, which must be
/// initialized, must stay initialized while the importer and its imports
/// live, and is never terminated by wrd-capture. If the display has
/// `EGL_KHR_surfaceless_context` the importer makes its own GLES context on
/// it for `wrd_dmabuf_read_pixels`. Any thread. On success `*out` is freed
/// with `wrd_importer_destroy`.
///
/// Errors: WRD_ERR_NULL_POINTER (`egl_display` or `out` NULL);
/// WRD_ERR_UNSUPPORTED (no libEGL, or the display lacks
/// `EGL_EXT_image_dma_buf_import`).
///
/// # Safety
/// Pointers must be NULL or valid for the access described, handles must
/// come from this library and not be used after they are destroyed, and fds
/// must stay open for the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn wrd_importer_new_egl(
    egl_display: *mut c_void,
    out: *mut *mut wrd_importer,
) -> wrd_status {
    ffi_panic_boundary! {
        if egl_display.is_null() || out.is_null() {
            return wrd_status::WRD_ERR_NULL_POINTER;
        }
        // SAFETY: the caller passes a valid, initialized EGLDisplay (contract
        // above); `out` is non-NULL.
        unsafe { put_importer(Importer::egl_from_display(egl_display), out) }
    }
}

/// Create a Vulkan importer on the caller's `VkInstance`, `VkPhysicalDevice`
/// and `VkDevice` (Vulkan 1.1+, the device created with
/// `VK_KHR_external_memory_fd`, `VK_EXT_external_memory_dma_buf` and
/// `VK_EXT_image_drm_format_modifier` enabled). `get_instance_proc_addr` is
/// the `vkGetInstanceProcAddr` the instance came from, or NULL to load
/// `libvulkan.so.1`. The handles stay the caller's and must outlive the
/// importer and its imports. Any thread. On success `*out` is freed with
/// `wrd_importer_destroy`.
///
/// Errors: WRD_ERR_NULL_POINTER (`out` NULL); WRD_ERR_INVALID_ARGUMENT (a
/// NULL handle); WRD_ERR_UNSUPPORTED (no loader, or a missing extension:
/// NVIDIA's driver lacks `VK_EXT_external_memory_dma_buf`).
///
/// # Safety
/// Pointers must be NULL or valid for the access described, handles must
/// come from this library and not be used after they are destroyed, and fds
/// must stay open for the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn wrd_importer_new_vulkan(
    instance: *mut c_void,
    physical_device: *mut c_void,
    device: *mut c_void,
    get_instance_proc_addr: *const c_void,
    out: *mut *mut wrd_importer,
) -> wrd_status {
    ffi_panic_boundary! {
        if out.is_null() {
            return wrd_status::WRD_ERR_NULL_POINTER;
        }
        let h = VulkanHandles { instance, physical_device, device, get_instance_proc_addr };
        // SAFETY: the caller passes valid handles (contract above); NULL ones
        // are refused before use. `out` is non-NULL.
        unsafe { put_importer(Importer::vulkan(h), out) }
    }
}

/// Destroy an importer (NULL is ignored). Imports made from it stay valid
/// until released (they keep what they need alive). Any thread.
///
/// # Safety
/// Pointers must be NULL or valid for the access described, handles must
/// come from this library and not be used after they are destroyed, and fds
/// must stay open for the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn wrd_importer_destroy(importer: *mut wrd_importer) {
    ffi_panic_boundary! {
        // A stale or repeated handle is ignored (the table checks it).
        drop(IMPORTERS.remove(importer as usize));
    }
}

/// Fill `formats` with the (fourcc, modifier) pairs the importer can
/// import: `*count` is the capacity of `formats` on entry and the total
/// number of pairs on return. To ask the count only, pass `formats` NULL and
/// `*count` 0: the call then returns WRD_ERR_BUFFER_TOO_SMALL (or WRD_OK if
/// the list is empty) with `*count` set. Any thread.
///
/// Errors: WRD_ERR_NULL_POINTER (`importer` or `count` NULL, or `formats`
/// NULL with `*count` > 0); WRD_ERR_BUFFER_TOO_SMALL (capacity below the
/// total: the first `capacity` pairs were written).
///
/// # Safety
/// Pointers must be NULL or valid for the access described, handles must
/// come from this library and not be used after they are destroyed, and fds
/// must stay open for the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn wrd_importer_get_formats(
    importer: *const wrd_importer,
    formats: *mut wrd_drm_format,
    count: *mut usize,
) -> wrd_status {
    ffi_panic_boundary! {
        if count.is_null() {
            return wrd_status::WRD_ERR_NULL_POINTER;
        }
        let imp = match importer_from(importer) {
            Ok(i) => i,
            Err(s) => return s,
        };
        // SAFETY: non-NULL (checked above) and readable (caller's contract).
        let cap = unsafe { *count };
        if formats.is_null() && cap > 0 {
            return wrd_status::WRD_ERR_NULL_POINTER;
        }
        let all: Vec<wrd_drm_format> = imp
            .formats()
            .iter()
            .flat_map(|(f, mods)| mods.iter().map(move |m| wrd_drm_format { fourcc: *f as u32, modifier: *m }))
            .collect();
        for (i, f) in all.iter().take(cap).enumerate() {
            // SAFETY: `formats` holds `cap` entries (caller's contract), i < cap.
            unsafe { *formats.add(i) = *f };
        }
        // SAFETY: `count` is non-NULL.
        unsafe { *count = all.len() };
        if cap < all.len() {
            wrd_status::WRD_ERR_BUFFER_TOO_SMALL
        } else {
            wrd_status::WRD_OK
        }
    }
}

/// Import a DMA-BUF. The fds in `desc` stay owned by the caller and may be
/// closed once this returns. EGL makes an `EGLImage` (no context needed);
/// Vulkan makes a `VkImage` on memory imported from a dup of the fd. Any
/// thread. On success `*out` is released with `wrd_imported_release`.
///
/// Errors: WRD_ERR_NULL_POINTER; WRD_ERR_INVALID_ARGUMENT (n_planes not 1 to
/// 4, a negative fd, zero size, a stride below a row); WRD_ERR_UNSUPPORTED
/// (format or modifier the backend cannot handle); WRD_ERR_IMPORT_FAILED
/// (the driver refused the buffer).
///
/// # Safety
/// Pointers must be NULL or valid for the access described, handles must
/// come from this library and not be used after they are destroyed, and fds
/// must stay open for the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn wrd_import_dmabuf(
    importer: *const wrd_importer,
    desc: *const wrd_dmabuf,
    out: *mut *mut wrd_imported,
) -> wrd_status {
    ffi_panic_boundary! {
        if desc.is_null() || out.is_null() {
            return wrd_status::WRD_ERR_NULL_POINTER;
        }
        let imp = match importer_from(importer) {
            Ok(i) => i,
            Err(s) => return s,
        };
        // SAFETY: non-NULL pointer to the caller's description; the fds stay
        // open for this call (caller's contract).
        let r = unsafe { dmabuf_from_c(&*desc) }.and_then(|buf| imp.import(&buf));
        match r {
            Ok(inner) => {
                // SAFETY: `out` is non-NULL.
                unsafe { *out = imported_handle_new(Arc::new(inner)) };
                wrd_status::WRD_OK
            }
            Err(e) => e.status(),
        }
    }
}

/// The `EGLImage` of an EGL import in `*out`. It stays owned by the import
/// (do not destroy it) and is valid until `wrd_imported_release`. Any thread.
///
/// Errors: WRD_ERR_NULL_POINTER; WRD_ERR_UNSUPPORTED (not an EGL import).
///
/// # Safety
/// Pointers must be NULL or valid for the access described, handles must
/// come from this library and not be used after they are destroyed, and fds
/// must stay open for the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn wrd_imported_egl_image(
    imported: *const wrd_imported,
    out: *mut *mut c_void,
) -> wrd_status {
    ffi_panic_boundary! {
        if imported.is_null() || out.is_null() {
            return wrd_status::WRD_ERR_NULL_POINTER;
        }
        // SAFETY: non-NULL pointer to a live import.
        let imp = match imported_from(imported) {
            Ok(i) => i,
            Err(s) => return s,
        };
        match imp.egl_image() {
            Some(img) => {
                // SAFETY: `out` is non-NULL.
                unsafe { *out = img };
                wrd_status::WRD_OK
            }
            None => wrd_status::WRD_ERR_UNSUPPORTED,
        }
    }
}

/// A GL texture name bound to an EGL import's image in `*texture`, and its
/// target in `*target` (may be NULL): `GL_TEXTURE_2D` (0x0DE1) for RGB, or
/// `GL_TEXTURE_EXTERNAL_OES` (0x8D65) for YUV and external-only modifiers.
/// Made on the first call (same name afterwards) in the EGL context current
/// on the calling thread, if any (it must be on the importer's display),
/// else in the importer's own context. The texture is owned by the import
/// and deleted by `wrd_imported_release`, which must then run on a thread
/// where that context is current (any thread for the importer's own
/// context), else the name leaks.
///
/// Errors: WRD_ERR_NULL_POINTER; WRD_ERR_UNSUPPORTED (not an EGL import);
/// WRD_ERR_INVALID_STATE (the current context is on another display);
/// WRD_ERR_IMPORT_FAILED (glEGLImageTargetTexture2DOES failed).
///
/// # Safety
/// Pointers must be NULL or valid for the access described, handles must
/// come from this library and not be used after they are destroyed, and fds
/// must stay open for the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn wrd_imported_gl_texture(
    imported: *mut wrd_imported,
    texture: *mut u32,
    target: *mut u32,
) -> wrd_status {
    ffi_panic_boundary! {
        if imported.is_null() || texture.is_null() {
            return wrd_status::WRD_ERR_NULL_POINTER;
        }
        let imp = match imported_from(imported) {
            Ok(i) => i,
            Err(s) => return s,
        };
        match imp.gl_texture() {
            Ok(t) => {
                // SAFETY: `texture` is non-NULL; `target` is checked.
                unsafe {
                    *texture = t;
                    if !target.is_null() {
                        *target = imp.gl_texture_target();
                    }
                }
                wrd_status::WRD_OK
            }
            Err(e) => e.status(),
        }
    }
}

/// The `VkImage` and `VkDeviceMemory` of a Vulkan import (`memory` may be
/// NULL), as 64-bit handles. Both stay owned by the import, valid until
/// `wrd_imported_release`. The image was created in
/// `VK_IMAGE_LAYOUT_UNDEFINED` with usage SAMPLED | TRANSFER_SRC; the caller
/// transitions it and acquires it from the external/foreign queue family as
/// its use requires. Any thread.
///
/// Errors: WRD_ERR_NULL_POINTER; WRD_ERR_UNSUPPORTED (not a Vulkan import).
///
/// # Safety
/// Pointers must be NULL or valid for the access described, handles must
/// come from this library and not be used after they are destroyed, and fds
/// must stay open for the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn wrd_imported_vk_image(
    imported: *const wrd_imported,
    image: *mut u64,
    memory: *mut u64,
) -> wrd_status {
    ffi_panic_boundary! {
        if imported.is_null() || image.is_null() {
            return wrd_status::WRD_ERR_NULL_POINTER;
        }
        // SAFETY: non-NULL pointer to a live import.
        let imp = match imported_from(imported) {
            Ok(i) => i,
            Err(s) => return s,
        };
        match imp.vk_image() {
            Some((img, mem)) => {
                // SAFETY: `image` is non-NULL; `memory` is checked.
                unsafe {
                    *image = img;
                    if !memory.is_null() {
                        *memory = mem;
                    }
                }
                wrd_status::WRD_OK
            }
            None => wrd_status::WRD_ERR_UNSUPPORTED,
        }
    }
}

/// Release an import (NULL is ignored): destroys its EGLImage and GL
/// texture, or its VkImage and memory. The GPU must be done with them. Any
/// thread, but see `wrd_imported_gl_texture` for where its texture can be
/// deleted. The caller's fds were never owned and are untouched.
///
/// # Safety
/// Pointers must be NULL or valid for the access described, handles must
/// come from this library and not be used after they are destroyed, and fds
/// must stay open for the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn wrd_imported_release(imported: *mut wrd_imported) {
    ffi_panic_boundary! {
        // A stale or repeated handle is ignored (the table checks it).
        drop(IMPORTS.remove(imported as usize));
    }
}

/// Read a DMA-BUF into `dst` as `out_format`: WRD_PIXEL_FORMAT BGRA (2,
/// bytes B,G,R,A) or RGBA (4, bytes R,G,B,A), rows of `dst_stride` bytes
/// (at least width * 4; `dst_len` at least dst_stride * (height - 1) +
/// width * 4).
///
/// With an importer: a GPU read-back (import, draw or attach to a
/// framebuffer in the importer's own GL context, glReadPixels), for tiled
/// and YUV buffers. With `importer` NULL: a CPU read (mmap between
/// DMA_BUF_IOCTL_SYNC calls), which needs `modifier` ==
/// DRM_FORMAT_MOD_LINEAR (pass LINEAR also for an implicit-modifier buffer
/// you know to be linear). The fds stay the caller's. Any thread.
///
/// Errors: WRD_ERR_NULL_POINTER (`desc` or `dst` NULL);
/// WRD_ERR_INVALID_ARGUMENT (bad description, format or stride);
/// WRD_ERR_BUFFER_TOO_SMALL; WRD_ERR_UNSUPPORTED (format, modifier or
/// backend); WRD_ERR_BAD_FRAME (a plane does not fit in its fd);
/// WRD_ERR_IMPORT_FAILED; WRD_ERR_IO.
///
/// # Safety
/// Pointers must be NULL or valid for the access described, handles must
/// come from this library and not be used after they are destroyed, and fds
/// must stay open for the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn wrd_dmabuf_read_pixels(
    importer: *const wrd_importer,
    desc: *const wrd_dmabuf,
    out_format: u32,
    dst: *mut u8,
    dst_len: usize,
    dst_stride: usize,
) -> wrd_status {
    ffi_panic_boundary! {
        if desc.is_null() || dst.is_null() {
            return wrd_status::WRD_ERR_NULL_POINTER;
        }
        let Some(out) = PixelFormat::from_raw(out_format).and_then(ReadFormat::from_pixel_format) else {
            return wrd_status::WRD_ERR_INVALID_ARGUMENT;
        };
        // SAFETY: `dst` is non-NULL and holds `dst_len` writable bytes
        // (caller's contract).
        let dst = unsafe { std::slice::from_raw_parts_mut(dst, dst_len) };
        // SAFETY: `desc` is non-NULL; its fds stay open for this call.
        let r = unsafe { dmabuf_from_c(&*desc) }.and_then(|buf| {
            if importer.is_null() {
                cpu::read_linear(&buf, false, dst, dst_stride, out)
            } else {
                match importer_from(importer) {
                    Ok(imp) => imp.read_pixels(&buf, dst, dst_stride, out),
                    Err(_) => Err(Error::InvalidState("destroyed importer".into())),
                }
            }
        });
        status_of(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dmabuf::DRM_FORMAT_MOD_LINEAR;
    use std::os::fd::AsRawFd;

    fn memfd_with(data: &[u8]) -> std::os::fd::OwnedFd {
        crate::import::tests::memfd_with(data)
    }

    #[test]
    fn null_pointers_are_refused() {
        // SAFETY: every pointer passed is NULL or points to a live local.
        unsafe { null_pointers_are_refused_body() }
    }

    unsafe fn null_pointers_are_refused_body() {
        use wrd_status::*;
        assert_eq!(
            wrd_importer_new_default(std::ptr::null_mut()),
            WRD_ERR_NULL_POINTER
        );
        let mut out = std::ptr::null_mut();
        assert_eq!(
            wrd_importer_new_egl(std::ptr::null_mut(), &mut out),
            WRD_ERR_NULL_POINTER
        );
        assert_eq!(
            wrd_importer_new_vulkan(
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null(),
                &mut out
            ),
            WRD_ERR_INVALID_ARGUMENT
        );
        assert!(out.is_null());
        wrd_importer_destroy(std::ptr::null_mut());
        wrd_imported_release(std::ptr::null_mut());
        let mut n = 0usize;
        assert_eq!(
            wrd_importer_get_formats(std::ptr::null(), std::ptr::null_mut(), &mut n),
            WRD_ERR_NULL_POINTER
        );
        let mut imp = std::ptr::null_mut();
        assert_eq!(
            wrd_import_dmabuf(std::ptr::null(), std::ptr::null(), &mut imp),
            WRD_ERR_NULL_POINTER
        );
        let d = wrd_dmabuf::default();
        assert_eq!(
            wrd_dmabuf_read_pixels(std::ptr::null(), &d, 2, std::ptr::null_mut(), 0, 0),
            WRD_ERR_NULL_POINTER
        );
    }

    #[test]
    fn test_importer_through_c() {
        // SAFETY: handles come from this module, buffers are live locals and
        // the memfd stays open throughout.
        unsafe { test_importer_through_c_body() }
    }

    unsafe fn test_importer_through_c_body() {
        let importer = IMPORTERS.insert(Arc::new(Importer::test(
            vec![(DrmFourcc::Xrgb8888, vec![DRM_FORMAT_MOD_LINEAR, 7])],
            vec![7],
        ))) as *mut wrd_importer;
        let mut n = 0usize;
        assert_eq!(
            wrd_importer_get_formats(importer, std::ptr::null_mut(), &mut n),
            wrd_status::WRD_ERR_BUFFER_TOO_SMALL
        );
        assert_eq!(n, 2);
        let mut f = [wrd_drm_format::default(); 2];
        assert_eq!(
            wrd_importer_get_formats(importer, f.as_mut_ptr(), &mut n),
            wrd_status::WRD_OK
        );
        assert_eq!(f[0].fourcc, DrmFourcc::Xrgb8888 as u32);
        assert_eq!(f[1].modifier, 7);

        let px: Vec<u8> = (0..4 * 2 * 2).map(|i| i as u8).collect();
        let fd = memfd_with(&px);
        let mut d = wrd_dmabuf {
            width: 2,
            height: 2,
            fourcc: DrmFourcc::Xrgb8888 as u32,
            modifier: DRM_FORMAT_MOD_LINEAR,
            n_planes: 1,
            ..Default::default()
        };
        d.planes[0] = wrd_dmabuf_plane {
            fd: fd.as_raw_fd(),
            offset: 0,
            stride: 8,
        };
        let mut imported = std::ptr::null_mut();
        assert_eq!(
            wrd_import_dmabuf(importer, &d, &mut imported),
            wrd_status::WRD_OK
        );
        let mut img = std::ptr::null_mut();
        assert_eq!(
            wrd_imported_egl_image(imported, &mut img),
            wrd_status::WRD_ERR_UNSUPPORTED
        );
        let mut vk = 0u64;
        assert_eq!(
            wrd_imported_vk_image(imported, &mut vk, std::ptr::null_mut()),
            wrd_status::WRD_ERR_UNSUPPORTED
        );
        wrd_imported_release(imported);

        let mut bad = d;
        bad.modifier = 7;
        let mut imported = std::ptr::null_mut();
        assert_eq!(
            wrd_import_dmabuf(importer, &bad, &mut imported),
            wrd_status::WRD_ERR_IMPORT_FAILED
        );
        bad = d;
        bad.n_planes = 5;
        assert_eq!(
            wrd_import_dmabuf(importer, &bad, &mut imported),
            wrd_status::WRD_ERR_INVALID_ARGUMENT
        );
        bad = d;
        bad.planes[0].fd = -1;
        assert_eq!(
            wrd_import_dmabuf(importer, &bad, &mut imported),
            wrd_status::WRD_ERR_INVALID_ARGUMENT
        );
        assert!(imported.is_null());

        // CPU read-back through the C path, with and without the importer.
        let mut out = vec![0u8; 16];
        for imp in [importer as *const _, std::ptr::null()] {
            assert_eq!(
                wrd_dmabuf_read_pixels(
                    imp,
                    &d,
                    PixelFormat::Bgra as u32,
                    out.as_mut_ptr(),
                    out.len(),
                    8
                ),
                wrd_status::WRD_OK
            );
            assert_eq!(&out[..4], &[0, 1, 2, 255]);
            assert_eq!(&out[12..], &[12, 13, 14, 255]);
        }
        assert_eq!(
            wrd_dmabuf_read_pixels(
                std::ptr::null(),
                &d,
                PixelFormat::Bgra as u32,
                out.as_mut_ptr(),
                15,
                8
            ),
            wrd_status::WRD_ERR_BUFFER_TOO_SMALL
        );
        assert_eq!(
            wrd_dmabuf_read_pixels(
                std::ptr::null(),
                &d,
                PixelFormat::Nv12 as u32,
                out.as_mut_ptr(),
                16,
                8
            ),
            wrd_status::WRD_ERR_INVALID_ARGUMENT
        );
        wrd_importer_destroy(importer);
    }
}
