//! A LINEAR DMA-BUF of known pixels made with CUDA
//! (`cuMemGetHandleForAddressRange(CU_MEM_RANGE_HANDLE_TYPE_DMA_BUF_FD)`),
//! for machines where EGL cannot export a texture (NVIDIA without nvidia-drm).
//! libcuda is loaded at run time and never unloaded; allocations are never
//! freed (the DMA-BUF needs its memory for as long as any fd lives).

use std::ffi::c_void;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::OnceLock;

use drm_fourcc::DrmFourcc;
use wrd_capture::dmabuf::{Dmabuf, DmabufPlane, DRM_FORMAT_MOD_LINEAR};

type CuResult = i32;
type CuDevice = i32;
type CuContext = *mut c_void;
type CuDevicePtr = u64;

const CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED: i32 = 124;
const CU_MEM_RANGE_HANDLE_TYPE_DMA_BUF_FD: i32 = 1;

struct Cuda {
    mem_alloc: unsafe extern "C" fn(*mut CuDevicePtr, usize) -> CuResult,
    memcpy_htod: unsafe extern "C" fn(CuDevicePtr, *const c_void, usize) -> CuResult,
    get_handle: unsafe extern "C" fn(*mut c_void, CuDevicePtr, usize, i32, u64) -> CuResult,
    ctx_sync: unsafe extern "C" fn() -> CuResult,
    ctx_set_current: unsafe extern "C" fn(CuContext) -> CuResult,
    ctx: usize,
}

static CUDA: OnceLock<Result<Cuda, String>> = OnceLock::new();

fn cuda() -> Result<&'static Cuda, String> {
    CUDA.get_or_init(init).as_ref().map_err(|e| e.clone())
}

fn init() -> Result<Cuda, String> {
    // SAFETY: loading libcuda runs its initializers only; leaked below.
    let lib = unsafe { libloading::Library::new("libcuda.so.1") }
        .map_err(|e| format!("cannot load libcuda.so.1: {e}"))?;
    let lib: &'static libloading::Library = Box::leak(Box::new(lib));
    macro_rules! sym {
        ($name:literal, $ty:ty) => {{
            // SAFETY: the CUDA driver API symbol has the signature `$ty`.
            let s = unsafe { lib.get::<$ty>($name) }
                .map_err(|e| format!("libcuda lacks {}: {e}", String::from_utf8_lossy($name)))?;
            *s
        }};
    }
    let cu_init = sym!(b"cuInit\0", unsafe extern "C" fn(u32) -> CuResult);
    let device_get = sym!(
        b"cuDeviceGet\0",
        unsafe extern "C" fn(*mut CuDevice, i32) -> CuResult
    );
    let get_attr = sym!(
        b"cuDeviceGetAttribute\0",
        unsafe extern "C" fn(*mut i32, i32, CuDevice) -> CuResult
    );
    let retain = sym!(
        b"cuDevicePrimaryCtxRetain\0",
        unsafe extern "C" fn(*mut CuContext, CuDevice) -> CuResult
    );
    let cuda = Cuda {
        mem_alloc: sym!(
            b"cuMemAlloc_v2\0",
            unsafe extern "C" fn(*mut CuDevicePtr, usize) -> CuResult
        ),
        memcpy_htod: sym!(
            b"cuMemcpyHtoD_v2\0",
            unsafe extern "C" fn(CuDevicePtr, *const c_void, usize) -> CuResult
        ),
        get_handle: sym!(
            b"cuMemGetHandleForAddressRange\0",
            unsafe extern "C" fn(*mut c_void, CuDevicePtr, usize, i32, u64) -> CuResult
        ),
        ctx_sync: sym!(b"cuCtxSynchronize\0", unsafe extern "C" fn() -> CuResult),
        ctx_set_current: sym!(
            b"cuCtxSetCurrent\0",
            unsafe extern "C" fn(CuContext) -> CuResult
        ),
        ctx: 0,
    };
    // SAFETY: plain driver API calls with valid out-pointers.
    unsafe {
        let r = cu_init(0);
        if r != 0 {
            return Err(format!("cuInit: {r}"));
        }
        let mut dev = 0;
        let r = device_get(&mut dev, 0);
        if r != 0 {
            return Err(format!("cuDeviceGet: {r}"));
        }
        let mut supported = 0;
        get_attr(&mut supported, CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED, dev);
        if supported == 0 {
            return Err("the CUDA device does not support DMA-BUF export (CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED = 0)".into());
        }
        let mut ctx = std::ptr::null_mut();
        let r = retain(&mut ctx, dev);
        if r != 0 {
            return Err(format!("cuDevicePrimaryCtxRetain: {r}"));
        }
        Ok(Cuda {
            ctx: ctx as usize,
            ..cuda
        })
    }
}

/// A DMA-BUF fd of CUDA device memory holding `bytes` (then zeros up to a
/// whole number of 2 MiB pages).
pub fn make_dmabuf_fd(bytes: &[u8]) -> Result<OwnedFd, String> {
    let cu = cuda()?;
    let size = bytes.len().max(1).div_ceil(2 << 20) * (2 << 20);
    // SAFETY: driver API calls on the primary context with valid pointers;
    // the allocation holds `size` >= bytes.len() bytes.
    unsafe {
        (cu.ctx_set_current)(cu.ctx as CuContext);
        let mut dptr: CuDevicePtr = 0;
        let r = (cu.mem_alloc)(&mut dptr, size);
        if r != 0 {
            return Err(format!("cuMemAlloc: {r}"));
        }
        if dptr & 4095 != 0 {
            return Err(format!("cuMemAlloc returned unaligned {dptr:#x}"));
        }
        let r = (cu.memcpy_htod)(dptr, bytes.as_ptr().cast(), bytes.len());
        if r != 0 {
            return Err(format!("cuMemcpyHtoD: {r}"));
        }
        (cu.ctx_sync)();
        let mut fd: i32 = -1;
        let r = (cu.get_handle)(
            (&mut fd as *mut i32).cast(),
            dptr,
            size,
            CU_MEM_RANGE_HANDLE_TYPE_DMA_BUF_FD,
            0,
        );
        if r != 0 || fd < 0 {
            return Err(format!("cuMemGetHandleForAddressRange(DMA_BUF_FD): {r}"));
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// A LINEAR single-plane DMA-BUF of `width` x `height` holding `rgba`
/// (tightly packed, 4 bytes a pixel), labelled `fourcc`, with rows of
/// `stride` bytes (at least width * 4) in CUDA device memory.
pub fn make_linear_dmabuf(
    width: u32,
    height: u32,
    stride: u32,
    fourcc: DrmFourcc,
    rgba: &[u8],
) -> Result<Dmabuf<OwnedFd>, String> {
    let (w, h, s) = (width as usize, height as usize, stride as usize);
    if s < w * 4 || rgba.len() != w * h * 4 {
        return Err("bad stride or data size".into());
    }
    let mut host = vec![0u8; s * h];
    for y in 0..h {
        host[y * s..y * s + w * 4].copy_from_slice(&rgba[y * w * 4..(y + 1) * w * 4]);
    }
    let fd = make_dmabuf_fd(&host)?;
    {
        Ok(Dmabuf {
            width,
            height,
            format: fourcc,
            modifier: DRM_FORMAT_MOD_LINEAR,
            planes: vec![DmabufPlane {
                fd,
                offset: 0,
                stride,
            }],
        })
    }
}
