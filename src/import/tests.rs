//! Tests with no GPU: the test importer, CPU read-back on memfds, and the
//! EGL / Vulkan constructors' behaviour where no GPU (or no libEGL) exists.

use std::io::Write;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};

use drm_fourcc::DrmFourcc;

use super::*;
use crate::dmabuf::{Dmabuf, DmabufPlane, DRM_FORMAT_MOD_INVALID, DRM_FORMAT_MOD_LINEAR};
use crate::error::wrd_status;

/// A memfd holding `data` (what CI uses in place of a DMA-BUF).
pub(crate) fn memfd_with(data: &[u8]) -> OwnedFd {
    // SAFETY: memfd_create with a static NUL-terminated name.
    let fd = unsafe { libc::memfd_create(c"wrd-test-dmabuf".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh fd we own.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut f = std::fs::File::from(owned);
    f.write_all(data).unwrap();
    OwnedFd::from(f)
}

fn dmabuf<'a>(
    fd: &'a OwnedFd,
    w: u32,
    h: u32,
    format: DrmFourcc,
    modifier: u64,
    planes: &[(u32, u32)],
) -> Dmabuf<BorrowedFd<'a>> {
    Dmabuf {
        width: w,
        height: h,
        format,
        modifier,
        planes: planes
            .iter()
            .map(|&(offset, stride)| DmabufPlane {
                fd: fd.as_fd(),
                offset,
                stride,
            })
            .collect(),
    }
}

#[test]
fn test_importer_imports_and_rejects() {
    let imp = Importer::test(
        vec![
            (
                DrmFourcc::Xrgb8888,
                vec![DRM_FORMAT_MOD_LINEAR, 0x0300_0000_0000_0014],
            ),
            (DrmFourcc::Nv12, vec![DRM_FORMAT_MOD_INVALID]),
        ],
        vec![0x0300_0000_0000_0014],
    );
    assert_eq!(imp.kind(), BackendKind::Test);
    assert_eq!(imp.formats().len(), 2);
    assert_eq!(imp.modifiers(DrmFourcc::Nv12), &[DRM_FORMAT_MOD_INVALID]);
    assert!(imp.modifiers(DrmFourcc::Abgr8888).is_empty());
    let fd = memfd_with(&[0u8; 64]);

    let ok = imp
        .import(&dmabuf(
            &fd,
            4,
            4,
            DrmFourcc::Xrgb8888,
            DRM_FORMAT_MOD_LINEAR,
            &[(0, 16)],
        ))
        .unwrap();
    assert_eq!(ok.size(), (4, 4));
    assert_eq!(ok.egl_image(), None);
    assert_eq!(ok.vk_image(), None);
    assert_eq!(ok.gl_texture_target(), 0);
    assert!(matches!(ok.gl_texture(), Err(Error::Unsupported(_))));
    assert_eq!(imp.test_import_count(), Some(1));

    let rejected = imp.import(&dmabuf(
        &fd,
        4,
        4,
        DrmFourcc::Xrgb8888,
        0x0300_0000_0000_0014,
        &[(0, 16)],
    ));
    assert!(
        matches!(rejected, Err(Error::ImportFailed(_))),
        "{rejected:?}"
    );
    assert_eq!(
        rejected.unwrap_err().status(),
        wrd_status::WRD_ERR_IMPORT_FAILED
    );

    let unlisted = imp.import(&dmabuf(&fd, 4, 4, DrmFourcc::Abgr8888, 0, &[(0, 16)]));
    assert!(
        matches!(unlisted, Err(Error::Unsupported(_))),
        "{unlisted:?}"
    );

    // Two-plane NV12 passes; one plane does not.
    imp.import(&dmabuf(
        &fd,
        4,
        4,
        DrmFourcc::Nv12,
        DRM_FORMAT_MOD_INVALID,
        &[(0, 4), (16, 4)],
    ))
    .unwrap();
    let one = imp.import(&dmabuf(
        &fd,
        4,
        4,
        DrmFourcc::Nv12,
        DRM_FORMAT_MOD_INVALID,
        &[(0, 4)],
    ));
    assert!(matches!(one, Err(Error::InvalidArgument(_))), "{one:?}");
    assert_eq!(imp.test_import_count(), Some(2));
}

#[test]
fn malformed_descriptions_are_refused() {
    let imp = Importer::test(
        vec![(DrmFourcc::Xrgb8888, vec![DRM_FORMAT_MOD_LINEAR])],
        vec![],
    );
    let fd = memfd_with(&[0u8; 64]);
    type Case = (u32, u32, Vec<(u32, u32)>);
    let cases: [Case; 5] = [
        (0, 4, vec![(0, 16)]),
        (4, 0, vec![(0, 16)]),
        (4, 4, vec![]),
        (4, 4, vec![(0, 16); 5]),
        (4, 4, vec![(0, 15)]),
    ];
    for (w, h, planes) in cases {
        let r = imp.import(&dmabuf(&fd, w, h, DrmFourcc::Xrgb8888, 0, &planes));
        assert!(
            matches!(r, Err(Error::InvalidArgument(_))),
            "{w}x{h} {planes:?}: {r:?}"
        );
    }
    let r = imp.import(&dmabuf(&fd, 4, 4, DrmFourcc::Xrgb8888, 0, &[(0, 0)]));
    assert!(matches!(r, Err(Error::InvalidArgument(_))));
}

#[test]
fn import_cache_hits_by_buffer_identity() {
    let imp = Importer::test(
        vec![(DrmFourcc::Xrgb8888, vec![DRM_FORMAT_MOD_LINEAR])],
        vec![],
    );
    let a = memfd_with(&[0u8; 64]);
    let b = memfd_with(&[0u8; 64]);
    let mut cache = ImportCache::new();
    let da = dmabuf(&a, 4, 4, DrmFourcc::Xrgb8888, 0, &[(0, 16)]);
    let x = cache.get_or_import(&imp, &da).unwrap();
    // A dup of the same fd is the same buffer.
    let a2 = a.try_clone().unwrap();
    let y = cache
        .get_or_import(&imp, &dmabuf(&a2, 4, 4, DrmFourcc::Xrgb8888, 0, &[(0, 16)]))
        .unwrap();
    assert!(Arc::ptr_eq(&x, &y));
    assert_eq!(imp.test_import_count(), Some(1));
    cache
        .get_or_import(&imp, &dmabuf(&b, 4, 4, DrmFourcc::Xrgb8888, 0, &[(0, 16)]))
        .unwrap();
    assert_eq!((cache.len(), imp.test_import_count()), (2, Some(2)));
    assert!(cache.remove(&da));
    assert_eq!(cache.len(), 1);
    cache.clear();
    assert!(cache.is_empty());
}

/// A frame where pixel (x, y) of a 4-byte format is (x, y, x ^ y, 0x80 | x).
fn pattern(w: usize, h: usize, stride: usize, offset: usize) -> Vec<u8> {
    let mut v = vec![0xEEu8; offset + stride * h];
    for y in 0..h {
        for x in 0..w {
            let p = offset + y * stride + x * 4;
            v[p..p + 4].copy_from_slice(&[x as u8, y as u8, (x ^ y) as u8, 0x80 | x as u8]);
        }
    }
    v
}

#[test]
fn read_linear_round_trips_packed_formats() {
    let (w, h, stride, offset) = (5usize, 3usize, 24usize, 8usize);
    let fd = memfd_with(&pattern(w, h, stride, offset));
    for (fourcc, out) in [
        (DrmFourcc::Argb8888, ReadFormat::Bgra),
        (DrmFourcc::Argb8888, ReadFormat::Rgba),
        (DrmFourcc::Xrgb8888, ReadFormat::Bgra),
        (DrmFourcc::Abgr8888, ReadFormat::Rgba),
        (DrmFourcc::Xbgr8888, ReadFormat::Bgra),
    ] {
        let buf = dmabuf(
            &fd,
            w as u32,
            h as u32,
            fourcc,
            DRM_FORMAT_MOD_LINEAR,
            &[(offset as u32, stride as u32)],
        );
        let dst_stride = w * 4 + 4;
        let mut dst = vec![0u8; dst_stride * h];
        cpu::read_linear(&buf, false, &mut dst, dst_stride, out).unwrap();
        let src_fmt = PixelFormat::from_drm(fourcc).unwrap();
        for y in 0..h {
            for x in 0..w {
                let s = [x as u8, y as u8, (x ^ y) as u8, 0x80 | x as u8];
                // Source bytes in memory order, as (r, g, b, a).
                let (r, g, b) = match src_fmt {
                    PixelFormat::Bgra | PixelFormat::Bgrx => (s[2], s[1], s[0]),
                    _ => (s[0], s[1], s[2]),
                };
                let a = if src_fmt.has_alpha() { s[3] } else { 255 };
                let want = match out {
                    ReadFormat::Bgra => [b, g, r, a],
                    ReadFormat::Rgba => [r, g, b, a],
                };
                let got = &dst[y * dst_stride + x * 4..y * dst_stride + x * 4 + 4];
                assert_eq!(got, want, "{fourcc:?} -> {out:?} at ({x},{y})");
            }
            // Padding past the row is untouched.
            assert_eq!(
                &dst[y * dst_stride + w * 4..(y + 1) * dst_stride],
                &[0, 0, 0, 0]
            );
        }
    }
}

#[test]
fn read_linear_rgb24_gray_and_yuv() {
    // RGB888 in DRM is bytes B, G, R.
    let fd = memfd_with(&[1, 2, 3, 4, 5, 6]);
    let buf = dmabuf(
        &fd,
        2,
        1,
        DrmFourcc::Rgb888,
        DRM_FORMAT_MOD_LINEAR,
        &[(0, 6)],
    );
    let mut dst = [0u8; 8];
    cpu::read_linear(&buf, false, &mut dst, 8, ReadFormat::Rgba).unwrap();
    assert_eq!(dst, [3, 2, 1, 255, 6, 5, 4, 255]);

    let fd = memfd_with(&[7, 200]);
    let buf = dmabuf(&fd, 2, 1, DrmFourcc::R8, DRM_FORMAT_MOD_LINEAR, &[(0, 2)]);
    cpu::read_linear(&buf, false, &mut dst, 8, ReadFormat::Bgra).unwrap();
    assert_eq!(dst, [7, 7, 7, 255, 200, 200, 200, 255]);

    // NV12 2x2: white luma, neutral chroma -> white; black -> black.
    let fd = memfd_with(&[235, 16, 235, 16, 128, 128]);
    let buf = dmabuf(
        &fd,
        2,
        2,
        DrmFourcc::Nv12,
        DRM_FORMAT_MOD_LINEAR,
        &[(0, 2), (4, 2)],
    );
    let mut dst = [0u8; 16];
    cpu::read_linear(&buf, false, &mut dst, 8, ReadFormat::Rgba).unwrap();
    assert_eq!(&dst[..8], &[255, 255, 255, 255, 0, 0, 0, 255]);
    // I420 red-ish: Y=81, U=90, V=240 is BT.601 red.
    let fd = memfd_with(&[81, 81, 81, 81, 90, 240]);
    let buf = dmabuf(
        &fd,
        2,
        2,
        DrmFourcc::Yuv420,
        DRM_FORMAT_MOD_LINEAR,
        &[(0, 2), (4, 1), (5, 1)],
    );
    cpu::read_linear(&buf, false, &mut dst, 8, ReadFormat::Rgba).unwrap();
    assert!(
        dst[0] >= 250 && dst[1] <= 3 && dst[2] <= 3,
        "{:?}",
        &dst[..4]
    );
    // YUY2: Y0 U Y1 V.
    let fd = memfd_with(&[235, 128, 16, 128]);
    let buf = dmabuf(&fd, 2, 1, DrmFourcc::Yuyv, DRM_FORMAT_MOD_LINEAR, &[(0, 4)]);
    let mut dst = [0u8; 8];
    cpu::read_linear(&buf, false, &mut dst, 8, ReadFormat::Bgra).unwrap();
    assert_eq!(dst, [255, 255, 255, 255, 0, 0, 0, 255]);
}

#[test]
fn read_linear_checks_bounds_and_modifiers() {
    let fd = memfd_with(&[0u8; 64]); // 4x4 XRGB8888 exactly
    let mut dst = vec![0u8; 64];
    let read = |planes: &[(u32, u32)], modifier: u64, dst: &mut [u8], stride: usize| {
        cpu::read_linear(
            &dmabuf(&fd, 4, 4, DrmFourcc::Xrgb8888, modifier, planes),
            false,
            dst,
            stride,
            ReadFormat::Bgra,
        )
    };
    read(&[(0, 16)], DRM_FORMAT_MOD_LINEAR, &mut dst, 16).unwrap();
    // Offset pushes the last row past the end.
    assert!(matches!(
        read(&[(4, 16)], DRM_FORMAT_MOD_LINEAR, &mut dst, 16),
        Err(Error::BadFrame(_))
    ));
    // Stride too large for the size.
    assert!(matches!(
        read(&[(0, 20)], DRM_FORMAT_MOD_LINEAR, &mut dst, 16),
        Err(Error::BadFrame(_))
    ));
    // Huge offset and stride: no overflow, no crash.
    assert!(matches!(
        read(&[(u32::MAX, u32::MAX)], DRM_FORMAT_MOD_LINEAR, &mut dst, 16),
        Err(Error::BadFrame(_))
    ));
    // Stride below a row.
    assert!(matches!(
        read(&[(0, 15)], DRM_FORMAT_MOD_LINEAR, &mut dst, 16),
        Err(Error::InvalidArgument(_))
    ));
    // Tiled and implicit modifiers are not read by the CPU.
    assert!(matches!(
        read(&[(0, 16)], 0x0300_0000_0000_0014, &mut dst, 16),
        Err(Error::Unsupported(_))
    ));
    assert!(matches!(
        read(&[(0, 16)], DRM_FORMAT_MOD_INVALID, &mut dst, 16),
        Err(Error::Unsupported(_))
    ));
    // ... unless the caller says the implicit buffer is linear.
    let buf = dmabuf(
        &fd,
        4,
        4,
        DrmFourcc::Xrgb8888,
        DRM_FORMAT_MOD_INVALID,
        &[(0, 16)],
    );
    cpu::read_linear(&buf, true, &mut dst, 16, ReadFormat::Bgra).unwrap();
    // Destination too small or stride too small.
    assert!(matches!(
        read(&[(0, 16)], DRM_FORMAT_MOD_LINEAR, &mut dst[..63], 16),
        Err(Error::BufferTooSmall { need: 64, have: 63 })
    ));
    assert!(matches!(
        read(&[(0, 16)], DRM_FORMAT_MOD_LINEAR, &mut dst, 12),
        Err(Error::InvalidArgument(_))
    ));
    // Wrong plane count for a linear NV12.
    let r = cpu::read_linear(
        &dmabuf(&fd, 4, 4, DrmFourcc::Nv12, 0, &[(0, 4), (16, 4), (24, 4)]),
        false,
        &mut dst,
        16,
        ReadFormat::Bgra,
    );
    assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
    // NV12 whose chroma plane runs past the end.
    let r = cpu::read_linear(
        &dmabuf(&fd, 4, 4, DrmFourcc::Nv12, 0, &[(0, 4), (60, 4)]),
        false,
        &mut dst,
        16,
        ReadFormat::Bgra,
    );
    assert!(matches!(r, Err(Error::BadFrame(_))), "{r:?}");
    // An empty fd.
    let empty = memfd_with(&[]);
    let r = cpu::read_linear(
        &dmabuf(&empty, 1, 1, DrmFourcc::Xrgb8888, 0, &[(0, 4)]),
        false,
        &mut dst,
        16,
        ReadFormat::Bgra,
    );
    assert!(matches!(r, Err(Error::BadFrame(_))), "{r:?}");
}

#[test]
fn test_importer_reads_linear_with_the_cpu() {
    let imp = Importer::test(
        vec![(DrmFourcc::Xrgb8888, vec![DRM_FORMAT_MOD_LINEAR])],
        vec![],
    );
    let fd = memfd_with(&pattern(2, 2, 8, 0));
    let buf = dmabuf(
        &fd,
        2,
        2,
        DrmFourcc::Xrgb8888,
        DRM_FORMAT_MOD_LINEAR,
        &[(0, 8)],
    );
    let mut dst = [0u8; 16];
    imp.read_pixels(&buf, &mut dst, 8, ReadFormat::Rgba)
        .unwrap();
    assert_eq!(&dst[4..8], &[1, 0, 1, 255]);
    let tiled = dmabuf(&fd, 2, 2, DrmFourcc::Xrgb8888, 5, &[(0, 8)]);
    assert!(matches!(
        imp.read_pixels(&tiled, &mut dst, 8, ReadFormat::Rgba),
        Err(Error::Unsupported(_))
    ));
}

/// On a machine with no GPU (CI), the default EGL importer must fail with
/// Unsupported; where EGL works (Mesa's software drivers, a GPU), it must
/// give a consistent format table.
#[test]
fn egl_default_is_unsupported_or_consistent() {
    match Importer::egl_default() {
        Err(e) => {
            assert!(
                matches!(e, Error::Unsupported(_)),
                "expected Unsupported, got {e:?}"
            );
            assert_eq!(e.status(), wrd_status::WRD_ERR_UNSUPPORTED);
            assert!(!e.to_string().is_empty());
            eprintln!("egl_default: {e}");
        }
        Ok(imp) => {
            eprintln!("egl_default: {}", imp.description());
            assert_eq!(imp.kind(), BackendKind::Egl);
            assert!(imp.egl_display().is_some());
            assert!(imp.egl_context().is_some());
            let mut seen = std::collections::HashSet::new();
            for (f, mods) in imp.formats() {
                assert!(PixelFormat::from_drm(*f).is_some(), "{f:?} is not ours");
                assert!(seen.insert(*f), "{f:?} listed twice");
                assert!(!mods.is_empty(), "{f:?} has no modifier");
                let uniq: std::collections::HashSet<_> = mods.iter().collect();
                assert_eq!(uniq.len(), mods.len(), "{f:?} repeats a modifier");
                eprintln!(
                    "  {f:?}: {}",
                    mods.iter()
                        .map(|m| modifier_name(*m))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            // A garbage import fails cleanly (memfds are not DMA-BUFs).
            let fd = memfd_with(&[0u8; 64]);
            let r = imp.import(&dmabuf(
                &fd,
                4,
                4,
                DrmFourcc::Xrgb8888,
                DRM_FORMAT_MOD_LINEAR,
                &[(0, 16)],
            ));
            eprintln!("  memfd import: {r:?}");
        }
    }
}

#[test]
fn vulkan_with_null_handles_is_invalid_argument() {
    let h = VulkanHandles {
        instance: std::ptr::null_mut(),
        physical_device: std::ptr::null_mut(),
        device: std::ptr::null_mut(),
        get_instance_proc_addr: std::ptr::null(),
    };
    // SAFETY: null handles are refused before any use.
    let r = unsafe { Importer::vulkan(h) };
    assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
    // One null among non-null is also refused before use.
    let h = VulkanHandles {
        instance: 8 as *mut _,
        ..h
    };
    // SAFETY: as above: the null device is refused before the others are used.
    let r = unsafe { Importer::vulkan(h) };
    assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
}

#[test]
fn egl_from_null_display_is_invalid_argument() {
    // SAFETY: NULL is refused before use.
    let r = unsafe { Importer::egl_from_display(std::ptr::null_mut()) };
    assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
}

#[test]
fn export_needs_egl() {
    let imp = Importer::test(vec![], vec![]);
    assert!(matches!(
        imp.export_rgba_dmabuf(1, 1, &[0; 4]),
        Err(Error::Unsupported(_))
    ));
    assert!(matches!(
        imp.export_channels_dmabuf(1, 1, 3, &[0; 3]),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn modifier_names() {
    assert_eq!(modifier_name(0), "LINEAR");
    assert_eq!(modifier_name(DRM_FORMAT_MOD_INVALID), "INVALID (implicit)");
    assert!(modifier_name(0x0300_0000_0060_6014).starts_with("NVIDIA"));
}

#[test]
fn importer_and_imported_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Importer>();
    check::<Imported>();
    check::<ImportCache>();
}
