//! The Vulkan backend: a DMA-BUF becomes a `VkImage` with an explicit DRM
//! format modifier (`VK_EXT_image_drm_format_modifier`) bound to memory
//! imported from the fd (`VK_EXT_external_memory_dma_buf`,
//! `VK_KHR_external_memory_fd`).
//!
//! The loader is reached through the caller's `vkGetInstanceProcAddr`, or
//! loaded with `ash::Entry::load()` (libvulkan.so.1) and kept for the life of
//! the process; nothing links against Vulkan.
//!
//! Vulkan takes ownership of an fd it imports, so each import uses a dup of
//! the caller's fd. Multi-plane formats are imported when all planes share
//! one buffer (non-disjoint images); disjoint planes give
//! [`Error::Unsupported`].

use std::ffi::{c_char, c_void, CStr};
use std::os::fd::{AsRawFd, BorrowedFd, IntoRawFd};
use std::sync::{Arc, OnceLock};

use ash::vk;
use ash::vk::Handle as _;
use drm_fourcc::DrmFourcc;

use super::{fd_identity, filter_formats};
use crate::dmabuf::{Dmabuf, DRM_FORMAT_MOD_INVALID};
use crate::error::{Error, Result};

/// The caller's Vulkan handles. Dispatchable handles are pointers in C.
#[derive(Clone, Copy, Debug)]
pub struct VulkanHandles {
    /// `VkInstance`.
    pub instance: *mut c_void,
    /// `VkPhysicalDevice`.
    pub physical_device: *mut c_void,
    /// `VkDevice`, created with the extensions named in
    /// [`Importer::vulkan`](super::Importer::vulkan).
    pub device: *mut c_void,
    /// The `vkGetInstanceProcAddr` that `instance` came from, or NULL to
    /// load `libvulkan.so.1` (the system loader).
    pub get_instance_proc_addr: *const c_void,
}

const REQUIRED: [&CStr; 3] = [
    c"VK_KHR_external_memory_fd",
    c"VK_EXT_external_memory_dma_buf",
    c"VK_EXT_image_drm_format_modifier",
];

static ENTRY: OnceLock<std::result::Result<ash::Entry, String>> = OnceLock::new();

fn system_entry() -> Result<&'static ash::Entry> {
    ENTRY
        .get_or_init(|| {
            // SAFETY: loading the Vulkan loader runs its initializers only;
            // the Entry lives in a static and is never dropped (unloaded).
            unsafe { ash::Entry::load() }.map_err(|e| format!("cannot load libvulkan.so.1: {e}"))
        })
        .as_ref()
        .map_err(|e| Error::Unsupported(e.clone()))
}

/// The Vulkan format of a DRM fourcc with the same memory layout.
fn vk_format(f: DrmFourcc) -> Option<vk::Format> {
    Some(match f {
        DrmFourcc::Xrgb8888 | DrmFourcc::Argb8888 => vk::Format::B8G8R8A8_UNORM,
        DrmFourcc::Xbgr8888 | DrmFourcc::Abgr8888 => vk::Format::R8G8B8A8_UNORM,
        DrmFourcc::Rgb888 => vk::Format::B8G8R8_UNORM,
        DrmFourcc::Bgr888 => vk::Format::R8G8B8_UNORM,
        DrmFourcc::R8 => vk::Format::R8_UNORM,
        DrmFourcc::Nv12 => vk::Format::G8_B8R8_2PLANE_420_UNORM,
        DrmFourcc::Yuv420 => vk::Format::G8_B8_R8_3PLANE_420_UNORM,
        DrmFourcc::Yuyv => vk::Format::G8B8G8R8_422_UNORM,
        _ => return None,
    })
}

pub(crate) struct VkShared {
    #[allow(dead_code)] // kept with the device it loaded
    instance: ash::Instance,
    device: ash::Device,
    #[allow(dead_code)]
    physical_device: vk::PhysicalDevice,
    ext_fd: ash::khr::external_memory_fd::Device,
    formats: Vec<(DrmFourcc, Vec<u64>)>,
    desc: String,
}

// SAFETY: Vulkan handles may be used from any thread; the functions we call
// (image creation, allocation) need no external synchronization on the
// device (only per-object, and each import owns its objects).
unsafe impl Send for VkShared {}
// SAFETY: as above.
unsafe impl Sync for VkShared {}

impl VkShared {
    /// # Safety
    /// See [`Importer::vulkan`](super::Importer::vulkan).
    pub(crate) unsafe fn new(h: VulkanHandles) -> Result<VkShared> {
        if h.instance.is_null() || h.physical_device.is_null() || h.device.is_null() {
            return Err(Error::InvalidArgument(
                "Vulkan instance, physical device and device must not be NULL".into(),
            ));
        }
        let vk_instance = vk::Instance::from_raw(h.instance as u64);
        let instance = if h.get_instance_proc_addr.is_null() {
            let entry = system_entry()?;
            // SAFETY: the caller guarantees `instance` is valid and came from
            // the system loader.
            unsafe { ash::Instance::load(entry.static_fn(), vk_instance) }
        } else {
            // SAFETY: the caller passes its loader's vkGetInstanceProcAddr,
            // whose signature this is.
            let gipa: vk::PFN_vkGetInstanceProcAddr =
                unsafe { std::mem::transmute(h.get_instance_proc_addr) };
            let sf = ash::StaticFn {
                get_instance_proc_addr: gipa,
            };
            // SAFETY: as above.
            unsafe { ash::Instance::load(&sf, vk_instance) }
        };
        let pd = vk::PhysicalDevice::from_raw(h.physical_device as u64);
        // SAFETY: valid physical device of this instance (caller's contract).
        let exts = unsafe { instance.enumerate_device_extension_properties(pd) }.map_err(|e| {
            Error::Unsupported(format!("vkEnumerateDeviceExtensionProperties: {e}"))
        })?;
        // SAFETY: as above.
        let props = unsafe { instance.get_physical_device_properties(pd) };
        // SAFETY: device_name is a NUL-terminated array.
        let name = unsafe { CStr::from_ptr(props.device_name.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        for req in REQUIRED {
            let found = exts.iter().any(|e| {
                // SAFETY: extension_name is a NUL-terminated array.
                let n = unsafe { CStr::from_ptr(e.extension_name.as_ptr() as *const c_char) };
                n == req
            });
            if !found {
                return Err(Error::Unsupported(format!(
                    "{} not supported by this device ({name})",
                    req.to_string_lossy()
                )));
            }
        }
        // SAFETY: valid device of this physical device (caller's contract).
        let device =
            unsafe { ash::Device::load(instance.fp_v1_0(), vk::Device::from_raw(h.device as u64)) };
        let ext_fd = ash::khr::external_memory_fd::Device::new(&instance, &device);
        let formats = query_formats(&instance, pd);
        Ok(VkShared {
            desc: format!(
                "Vulkan device {name} (API {}.{}.{})",
                vk::api_version_major(props.api_version),
                vk::api_version_minor(props.api_version),
                vk::api_version_patch(props.api_version)
            ),
            instance,
            device,
            physical_device: pd,
            ext_fd,
            formats,
        })
    }

    pub(crate) fn formats(&self) -> &[(DrmFourcc, Vec<u64>)] {
        &self.formats
    }

    pub(crate) fn description(&self) -> String {
        self.desc.clone()
    }
}

fn query_formats(instance: &ash::Instance, pd: vk::PhysicalDevice) -> Vec<(DrmFourcc, Vec<u64>)> {
    let mut all = Vec::new();
    for pf in crate::format::PixelFormat::ALL {
        let fourcc = pf.to_drm();
        let Some(fmt) = vk_format(fourcc) else {
            continue;
        };
        let mut list = vk::DrmFormatModifierPropertiesListEXT::default();
        let mut props = vk::FormatProperties2::default().push_next(&mut list);
        // SAFETY: count query (NULL array) on a valid physical device.
        unsafe { instance.get_physical_device_format_properties2(pd, fmt, &mut props) };
        let n = list.drm_format_modifier_count as usize;
        if n == 0 {
            continue;
        }
        let mut mods = vec![vk::DrmFormatModifierPropertiesEXT::default(); n];
        let mut list = vk::DrmFormatModifierPropertiesListEXT::default()
            .drm_format_modifier_properties(&mut mods);
        let mut props = vk::FormatProperties2::default().push_next(&mut list);
        // SAFETY: the array holds `n` entries.
        unsafe { instance.get_physical_device_format_properties2(pd, fmt, &mut props) };
        let n = (list.drm_format_modifier_count as usize).min(mods.len());
        let keep: Vec<u64> = mods[..n]
            .iter()
            .filter(|m| {
                m.drm_format_modifier_tiling_features
                    .contains(vk::FormatFeatureFlags::SAMPLED_IMAGE)
            })
            .map(|m| m.drm_format_modifier)
            .collect();
        all.push((fourcc, keep));
    }
    filter_formats(all)
}

/// A `VkImage` bound to memory imported from a DMA-BUF.
pub(crate) struct VkImported {
    shared: Arc<VkShared>,
    image: vk::Image,
    memory: vk::DeviceMemory,
}

impl VkImported {
    pub(crate) fn new(shared: &Arc<VkShared>, buf: &Dmabuf<BorrowedFd<'_>>) -> Result<Self> {
        let s = shared;
        let format = vk_format(buf.format)
            .ok_or_else(|| Error::Unsupported(format!("no Vulkan format for {:?}", buf.format)))?;
        if buf.modifier == DRM_FORMAT_MOD_INVALID {
            return Err(Error::Unsupported(
                "Vulkan needs an explicit modifier, not DRM_FORMAT_MOD_INVALID".into(),
            ));
        }
        let first = fd_identity(buf.planes[0].fd)?;
        for p in &buf.planes[1..] {
            if fd_identity(p.fd)? != first {
                return Err(Error::Unsupported(
                    "disjoint multi-plane Vulkan import (planes in different buffers) is not implemented".into(),
                ));
            }
        }
        let layouts: Vec<vk::SubresourceLayout> = buf
            .planes
            .iter()
            .map(|p| vk::SubresourceLayout {
                offset: p.offset as u64,
                size: 0,
                row_pitch: p.stride as u64,
                array_pitch: 0,
                depth_pitch: 0,
            })
            .collect();
        let mut explicit = vk::ImageDrmFormatModifierExplicitCreateInfoEXT::default()
            .drm_format_modifier(buf.modifier)
            .plane_layouts(&layouts);
        let mut external = vk::ExternalMemoryImageCreateInfo::default()
            .handle_types(vk::ExternalMemoryHandleTypeFlags::DMA_BUF_EXT);
        let info = vk::ImageCreateInfo::default()
            .image_type(vk::ImageType::TYPE_2D)
            .format(format)
            .extent(vk::Extent3D {
                width: buf.width,
                height: buf.height,
                depth: 1,
            })
            .mip_levels(1)
            .array_layers(1)
            .samples(vk::SampleCountFlags::TYPE_1)
            .tiling(vk::ImageTiling::DRM_FORMAT_MODIFIER_EXT)
            .usage(vk::ImageUsageFlags::SAMPLED | vk::ImageUsageFlags::TRANSFER_SRC)
            .sharing_mode(vk::SharingMode::EXCLUSIVE)
            .initial_layout(vk::ImageLayout::UNDEFINED)
            .push_next(&mut external)
            .push_next(&mut explicit);
        // SAFETY: valid device; `info` and its chain live for the call.
        let image = unsafe { s.device.create_image(&info, None) }
            .map_err(|e| Error::ImportFailed(format!("vkCreateImage: {e}")))?;
        let destroy = |img| {
            // SAFETY: the image was created above and is unused.
            unsafe { s.device.destroy_image(img, None) }
        };

        // Vulkan owns an imported fd: import a dup.
        let fd = match buf.planes[0].fd.try_clone_to_owned() {
            Ok(fd) => fd,
            Err(e) => {
                destroy(image);
                return Err(Error::Io(e));
            }
        };
        let mut fd_props = vk::MemoryFdPropertiesKHR::default();
        // SAFETY: valid device, live fd.
        if let Err(e) = unsafe {
            s.ext_fd.get_memory_fd_properties(
                vk::ExternalMemoryHandleTypeFlags::DMA_BUF_EXT,
                fd.as_raw_fd(),
                &mut fd_props,
            )
        } {
            destroy(image);
            return Err(Error::ImportFailed(format!(
                "vkGetMemoryFdPropertiesKHR: {e}"
            )));
        }
        // SAFETY: valid image.
        let req = unsafe { s.device.get_image_memory_requirements(image) };
        let bits = req.memory_type_bits & fd_props.memory_type_bits;
        if bits == 0 {
            destroy(image);
            return Err(Error::ImportFailed(
                "no memory type fits both the image and the DMA-BUF".into(),
            ));
        }
        let type_index = bits.trailing_zeros();
        let raw_fd = fd.into_raw_fd();
        let mut import = vk::ImportMemoryFdInfoKHR::default()
            .handle_type(vk::ExternalMemoryHandleTypeFlags::DMA_BUF_EXT)
            .fd(raw_fd);
        let mut dedicated = vk::MemoryDedicatedAllocateInfo::default().image(image);
        let alloc = vk::MemoryAllocateInfo::default()
            .allocation_size(req.size)
            .memory_type_index(type_index)
            .push_next(&mut import)
            .push_next(&mut dedicated);
        // SAFETY: valid device; on success the driver owns `raw_fd`.
        let memory = match unsafe { s.device.allocate_memory(&alloc, None) } {
            Ok(m) => m,
            Err(e) => {
                // On failure the fd was not consumed: close our dup.
                // SAFETY: `raw_fd` is our dup, owned by us again.
                unsafe { libc::close(raw_fd) };
                destroy(image);
                return Err(Error::ImportFailed(format!(
                    "vkAllocateMemory(import dma-buf): {e}"
                )));
            }
        };
        // SAFETY: image and memory are ours, unbound.
        if let Err(e) = unsafe { s.device.bind_image_memory(image, memory, 0) } {
            // SAFETY: both are ours and unused.
            unsafe { s.device.free_memory(memory, None) };
            destroy(image);
            return Err(Error::ImportFailed(format!("vkBindImageMemory: {e}")));
        }
        Ok(VkImported {
            shared: shared.clone(),
            image,
            memory,
        })
    }

    pub(crate) fn handles(&self) -> (u64, u64) {
        (self.image.as_raw(), self.memory.as_raw())
    }
}

impl Drop for VkImported {
    fn drop(&mut self) {
        // SAFETY: we own both; the caller must not use them after release.
        unsafe {
            self.shared.device.destroy_image(self.image, None);
            self.shared.device.free_memory(self.memory, None);
        }
    }
}
