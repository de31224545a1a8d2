//! gpu-check: validates wrd-capture's DMA-BUF import on a real GPU.
//!
//! Prints one PASS / FAIL / SKIP / INFO line per check and exits 1 if any
//! check failed. Usage: `gpu-check [WIDTH HEIGHT [ITERATIONS]]`
//! (default 1920 1080 1000).

use std::ffi::{c_void, CStr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Instant;

use ash::vk;
use ash::vk::Handle as _;
use drm_fourcc::DrmFourcc;
use gpu_check::{compare, expected, make_pattern_dmabuf, stats_us};
use wrd_capture::dmabuf::{Dmabuf, DmabufPlane, DRM_FORMAT_MOD_INVALID, DRM_FORMAT_MOD_LINEAR};
use wrd_capture::ffi::import as cffi;
use wrd_capture::import::{cpu, modifier_name, ImportCache, Importer, ReadFormat, VulkanHandles};
use wrd_capture::{wrd_status, Error, PixelFormat};

#[derive(Default)]
struct Checker {
    pass: usize,
    fail: usize,
    skip: usize,
}

impl Checker {
    fn check(&mut self, name: &str, ok: bool, detail: impl AsRef<str>) {
        if ok {
            self.pass += 1;
            println!("PASS  {name}: {}", detail.as_ref());
        } else {
            self.fail += 1;
            println!("FAIL  {name}: {}", detail.as_ref());
        }
    }
    fn skip(&mut self, name: &str, why: impl AsRef<str>) {
        self.skip += 1;
        println!("SKIP  {name}: {}", why.as_ref());
    }
    fn info(&self, name: &str, what: impl AsRef<str>) {
        println!("INFO  {name}: {}", what.as_ref());
    }
}

fn describe(buf: &Dmabuf<OwnedFd>) -> String {
    let planes: Vec<String> = buf
        .planes
        .iter()
        .map(|p| {
            format!(
                "fd {} offset {} stride {}",
                p.fd.as_raw_fd(),
                p.offset,
                p.stride
            )
        })
        .collect();
    format!(
        "{:?} {}x{} modifier {} ({:#x}), {} plane(s): [{}]",
        buf.format,
        buf.width,
        buf.height,
        modifier_name(buf.modifier),
        buf.modifier,
        buf.planes.len(),
        planes.join("; ")
    )
}

/// The same planes under another fourcc / modifier.
fn relabel(
    buf: &Dmabuf<OwnedFd>,
    format: DrmFourcc,
    modifier: u64,
) -> Dmabuf<std::os::fd::BorrowedFd<'_>> {
    let mut b = buf.borrow();
    b.format = format;
    b.modifier = modifier;
    b
}

fn read_compare(
    ck: &mut Checker,
    name: &str,
    imp: &Importer,
    buf: &Dmabuf<std::os::fd::BorrowedFd<'_>>,
    want_rgba: &[u8],
    out: ReadFormat,
    swap_rb: bool,
    opaque: bool,
) {
    let (w, h) = (buf.width as usize, buf.height as usize);
    let stride = w * 4 + 64; // padded, to exercise dst_stride
    let mut dst = vec![0u8; stride * h];
    match imp.read_pixels(buf, &mut dst, stride, out) {
        Err(e) => ck.check(name, false, format!("read_pixels: {e}")),
        Ok(()) => {
            let got: Vec<u8> = dst
                .chunks(stride)
                .flat_map(|r| r[..w * 4].to_vec())
                .collect();
            let want = expected(want_rgba, out, swap_rb, opaque);
            let (bad, max, first) = compare(&got, &want, buf.width, 0);
            ck.check(
                name,
                bad == 0,
                format!(
                    "{} of {} pixels differ (max channel diff {max}){}",
                    bad,
                    w * h,
                    first
                        .map(|(x, y, g, w)| format!(", first at ({x},{y}): got {g:?} want {w:?}"))
                        .unwrap_or_default()
                ),
            );
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let width: u32 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1920);
    let height: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1080);
    let iters: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let mut ck = Checker::default();
    println!(
        "gpu-check: wrd-capture DMA-BUF import validation, {width}x{height}, {iters} iterations"
    );

    egl_checks(&mut ck, width, height, iters);
    vulkan_checks(&mut ck);

    println!(
        "SUMMARY: {} passed, {} failed, {} skipped",
        ck.pass, ck.fail, ck.skip
    );
    std::process::exit(if ck.fail == 0 { 0 } else { 1 });
}

fn egl_checks(ck: &mut Checker, width: u32, height: u32, iters: usize) {
    let imp = match Importer::egl_default() {
        Ok(i) => {
            ck.check("egl_default", true, i.description());
            i
        }
        Err(e) => {
            ck.check(
                "egl_default",
                false,
                format!("{e} (status {:?})", e.status()),
            );
            return;
        }
    };
    for (f, mods) in imp.formats() {
        let names: Vec<String> = mods.iter().map(|m| modifier_name(*m)).collect();
        ck.info(
            "formats",
            format!(
                "{f:?} ({}): {} modifier(s): {}",
                PixelFormat::from_drm(*f).map(|p| p.name()).unwrap_or("?"),
                mods.len(),
                names.join(", ")
            ),
        );
    }
    for f in [DrmFourcc::Xrgb8888, DrmFourcc::Argb8888] {
        ck.check(
            &format!("modifiers listed for {f:?}"),
            !imp.modifiers(f).is_empty(),
            format!("{} modifier(s)", imp.modifiers(f).len()),
        );
    }
    if imp.modifiers(DrmFourcc::Nv12).is_empty() {
        ck.info("NV12", "not listed (no non-external-only modifier)");
    }

    // A DMA-BUF of known pixels.
    let (buf, rgba) = match make_pattern_dmabuf(&imp, width, height) {
        Ok(b) => b,
        Err(e) => {
            ck.check(
                "export pattern (EGL_MESA_image_dma_buf_export)",
                false,
                e.to_string(),
            );
            return;
        }
    };
    ck.check(
        "export pattern (EGL_MESA_image_dma_buf_export)",
        true,
        describe(&buf),
    );
    let listed = imp.modifiers(buf.format).contains(&buf.modifier);
    ck.info(
        "exported modifier",
        format!(
            "{} listed for {:?} by eglQueryDmaBufModifiersEXT: {listed}",
            modifier_name(buf.modifier),
            buf.format
        ),
    );

    // Rust import.
    match imp.import(&buf.borrow()) {
        Err(e) => ck.check("import (Rust)", false, e.to_string()),
        Ok(i) => {
            ck.check(
                "import (Rust)",
                i.egl_image().is_some_and(|p| !p.is_null()),
                format!("EGLImage {:?}", i.egl_image()),
            );
            match i.gl_texture() {
                Ok(t) => ck.check(
                    "gl_texture (importer's context)",
                    t != 0 && i.gl_texture().ok() == Some(t),
                    format!("texture {t}, target {:#x}", i.gl_texture_target()),
                ),
                Err(e) => ck.check("gl_texture (importer's context)", false, e.to_string()),
            }
            let (w, h) = (width as usize, height as usize);
            let mut dst = vec![0u8; w * h * 4];
            match imp.read_imported(&i, &mut dst, w * 4, ReadFormat::Rgba) {
                Ok(()) => {
                    let (bad, max, first) = compare(
                        &dst,
                        &expected(&rgba, ReadFormat::Rgba, false, false),
                        width,
                        0,
                    );
                    ck.check(
                        "read_imported RGBA",
                        bad == 0,
                        format!("{bad} pixels differ (max diff {max}) {first:?}"),
                    );
                }
                Err(e) => ck.check("read_imported RGBA", false, e.to_string()),
            }
        }
    }
    let b = buf.borrow();
    read_compare(
        ck,
        "read_pixels RGBA (padded dst stride)",
        &imp,
        &b,
        &rgba,
        ReadFormat::Rgba,
        false,
        false,
    );
    read_compare(
        ck,
        "read_pixels BGRA (padded dst stride)",
        &imp,
        &b,
        &rgba,
        ReadFormat::Bgra,
        false,
        false,
    );

    // The same memory under the other 32-bit RGB fourccs: bytes R,G,B,A read
    // as ARGB8888 (bytes B,G,R,A) swap red and blue; X formats force alpha.
    if buf.format == DrmFourcc::Abgr8888 && buf.planes.len() == 1 {
        for (f, swap, opaque) in [
            (DrmFourcc::Argb8888, true, false),
            (DrmFourcc::Xrgb8888, true, true),
            (DrmFourcc::Xbgr8888, false, true),
        ] {
            let name = format!("relabelled as {f:?}: import + read_pixels BGRA");
            read_compare(
                ck,
                &name,
                &imp,
                &relabel(&buf, f, buf.modifier),
                &rgba,
                ReadFormat::Bgra,
                swap,
                opaque,
            );
        }
    } else {
        ck.skip(
            "relabel checks",
            format!(
                "export is {:?} with {} planes, not single-plane ABGR8888",
                buf.format,
                buf.planes.len()
            ),
        );
    }

    c_path_checks(ck, &buf, &rgba);

    // A second importer on the first one's display.
    // SAFETY: the display is initialized and lives as long as `imp` (never terminated).
    match unsafe { Importer::egl_from_display(imp.egl_display().unwrap()) } {
        Ok(i2) => {
            ck.check("egl_from_display", true, i2.description());
            read_compare(
                ck,
                "egl_from_display: read_pixels RGBA",
                &i2,
                &b,
                &rgba,
                ReadFormat::Rgba,
                false,
                false,
            );
        }
        Err(e) => ck.check("egl_from_display", false, e.to_string()),
    }

    // CPU path.
    if buf.modifier == DRM_FORMAT_MOD_LINEAR {
        let (w, h) = (width as usize, height as usize);
        let mut dst = vec![0u8; w * h * 4];
        match cpu::read_linear(&b, false, &mut dst, w * 4, ReadFormat::Rgba) {
            Ok(()) => {
                let (bad, max, _) = compare(
                    &dst,
                    &expected(&rgba, ReadFormat::Rgba, false, false),
                    width,
                    0,
                );
                ck.check(
                    "CPU read_linear",
                    bad == 0,
                    format!("{bad} pixels differ (max {max})"),
                );
            }
            Err(e) => ck.check("CPU read_linear", false, e.to_string()),
        }
    } else {
        ck.skip(
            "CPU read_linear",
            format!(
                "the exported buffer is {}, not LINEAR (the CPU path is only for linear buffers)",
                modifier_name(buf.modifier)
            ),
        );
        let r = cpu::read_linear(
            &b,
            false,
            &mut vec![0u8; width as usize * height as usize * 4],
            width as usize * 4,
            ReadFormat::Rgba,
        );
        ck.check(
            "CPU read_linear refuses the tiled buffer",
            matches!(r, Err(Error::Unsupported(_))),
            format!("{r:?}"),
        );
    }

    // Implicit-modifier import of the same (tiled) memory: informational.
    match imp.import(&relabel(&buf, buf.format, DRM_FORMAT_MOD_INVALID)) {
        Ok(_) => {
            let (w, h) = (width as usize, height as usize);
            let mut dst = vec![0u8; w * h * 4];
            let r = imp.read_pixels(
                &relabel(&buf, buf.format, DRM_FORMAT_MOD_INVALID),
                &mut dst,
                w * 4,
                ReadFormat::Rgba,
            );
            let same = r.is_ok()
                && compare(
                    &dst,
                    &expected(&rgba, ReadFormat::Rgba, false, false),
                    width,
                    0,
                )
                .0 == 0;
            ck.info(
                "implicit import (MOD_INVALID) of the tiled buffer",
                format!(
                    "import OK; read-back {} the pattern",
                    if same { "matches" } else { "does NOT match" }
                ),
            );
        }
        Err(e) => ck.info(
            "implicit import (MOD_INVALID) of the tiled buffer",
            format!("refused: {e}"),
        ),
    }

    // Bad input fails cleanly.
    let mut bad = buf.borrow();
    bad.planes[0].stride = 4;
    let r = imp.import(&bad);
    ck.check(
        "stride below a row -> InvalidArgument",
        matches!(r, Err(Error::InvalidArgument(_))),
        format!("{r:?}"),
    );
    let bogus_mod = 0x00ff_0000_0000_1234u64;
    let r = imp.import(&relabel(&buf, buf.format, bogus_mod));
    ck.check(
        "unknown modifier -> ImportFailed",
        matches!(r, Err(Error::ImportFailed(_))),
        format!("{r:?}"),
    );
    let memfd = memfd(&vec![0u8; width as usize * height as usize * 4]);
    let mf = Dmabuf {
        width,
        height,
        format: DrmFourcc::Xrgb8888,
        modifier: DRM_FORMAT_MOD_LINEAR,
        planes: vec![DmabufPlane {
            fd: memfd.as_fd(),
            offset: 0,
            stride: width * 4,
        }],
    };
    let r = imp.import(&mf);
    ck.check(
        "memfd posing as a DMA-BUF -> error, no crash",
        r.is_err(),
        format!("{r:?}"),
    );

    nv12_checks(ck, &imp, width, height);
    timings(ck, &imp, width, height, iters);
}

fn memfd(data: &[u8]) -> OwnedFd {
    use std::io::Write;
    use std::os::fd::FromRawFd;
    // SAFETY: static NUL-terminated name; a fresh fd we own.
    let fd = unsafe { libc::memfd_create(c"gpu-check".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0);
    // SAFETY: `fd` is fresh and ours.
    let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    f.write_all(data).unwrap();
    f.into()
}

fn status_str(s: wrd_status) -> String {
    // SAFETY: returns a static NUL-terminated string.
    let m = unsafe { CStr::from_ptr(wrd_capture::ffi::status::wrd_status_message(s as u32)) };
    format!("{s:?} ({})", m.to_string_lossy())
}

fn c_path_checks(ck: &mut Checker, buf: &Dmabuf<OwnedFd>, rgba: &[u8]) {
    let mut desc = cffi::wrd_dmabuf {
        width: buf.width,
        height: buf.height,
        fourcc: buf.format as u32,
        modifier: buf.modifier,
        n_planes: buf.planes.len() as u32,
        ..Default::default()
    };
    for (i, p) in buf.planes.iter().enumerate() {
        desc.planes[i] = cffi::wrd_dmabuf_plane {
            fd: p.fd.as_raw_fd(),
            offset: p.offset,
            stride: p.stride,
        };
    }
    // SAFETY: all pointers are live locals; handles come from the library
    // and are destroyed once; the fds stay open (owned by `buf`).
    unsafe {
        let mut importer = std::ptr::null_mut();
        let s = cffi::wrd_importer_new_default(&mut importer);
        ck.check(
            "C wrd_importer_new_default",
            s == wrd_status::WRD_OK,
            status_str(s),
        );
        if s != wrd_status::WRD_OK {
            return;
        }
        let mut n = 0usize;
        let s = cffi::wrd_importer_get_formats(importer, std::ptr::null_mut(), &mut n);
        let mut fmts = vec![cffi::wrd_drm_format::default(); n];
        let s2 = cffi::wrd_importer_get_formats(importer, fmts.as_mut_ptr(), &mut n);
        ck.check(
            "C wrd_importer_get_formats",
            (s == wrd_status::WRD_OK || s == wrd_status::WRD_ERR_BUFFER_TOO_SMALL)
                && s2 == wrd_status::WRD_OK
                && n > 0,
            format!("{n} (fourcc, modifier) pairs"),
        );
        let mut imported = std::ptr::null_mut();
        let s = cffi::wrd_import_dmabuf(importer, &desc, &mut imported);
        ck.check(
            "C wrd_import_dmabuf",
            s == wrd_status::WRD_OK,
            status_str(s),
        );
        if s == wrd_status::WRD_OK {
            let mut img = std::ptr::null_mut::<c_void>();
            let s = cffi::wrd_imported_egl_image(imported, &mut img);
            ck.check(
                "C wrd_imported_egl_image",
                s == wrd_status::WRD_OK && !img.is_null(),
                format!("{} {img:?}", status_str(s)),
            );
            let (mut tex, mut target) = (0u32, 0u32);
            let s = cffi::wrd_imported_gl_texture(imported, &mut tex, &mut target);
            ck.check(
                "C wrd_imported_gl_texture",
                s == wrd_status::WRD_OK && tex != 0,
                format!("{} texture {tex} target {target:#x}", status_str(s)),
            );
            let mut vk = 0u64;
            let s = cffi::wrd_imported_vk_image(imported, &mut vk, std::ptr::null_mut());
            ck.check(
                "C wrd_imported_vk_image on an EGL import -> UNSUPPORTED",
                s == wrd_status::WRD_ERR_UNSUPPORTED,
                status_str(s),
            );
            cffi::wrd_imported_release(imported);
        }
        let (w, h) = (buf.width as usize, buf.height as usize);
        let mut dst = vec![0u8; w * h * 4];
        let s = cffi::wrd_dmabuf_read_pixels(
            importer,
            &desc,
            PixelFormat::Bgra as u32,
            dst.as_mut_ptr(),
            dst.len(),
            w * 4,
        );
        if s == wrd_status::WRD_OK {
            let (bad, max, _) = compare(
                &dst,
                &expected(rgba, ReadFormat::Bgra, false, false),
                buf.width,
                0,
            );
            ck.check(
                "C wrd_dmabuf_read_pixels (GPU) BGRA",
                bad == 0,
                format!("{bad} pixels differ (max {max})"),
            );
        } else {
            ck.check("C wrd_dmabuf_read_pixels (GPU) BGRA", false, status_str(s));
        }
        let s = cffi::wrd_dmabuf_read_pixels(
            std::ptr::null(),
            &desc,
            PixelFormat::Bgra as u32,
            dst.as_mut_ptr(),
            dst.len(),
            w * 4,
        );
        let want = if buf.modifier == DRM_FORMAT_MOD_LINEAR {
            wrd_status::WRD_OK
        } else {
            wrd_status::WRD_ERR_UNSUPPORTED
        };
        ck.check(
            "C wrd_dmabuf_read_pixels (NULL importer, CPU)",
            s == want,
            format!(
                "{} (expected {want:?} for {})",
                status_str(s),
                modifier_name(buf.modifier)
            ),
        );
        cffi::wrd_importer_destroy(importer);
    }
}

/// BT.601 limited range, as the driver's default YUV hints.
fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = 298 * (y as i32 - 16);
    let d = u as i32 - 128;
    let e = v as i32 - 128;
    let cl = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
    [cl(c + 409 * e), cl(c - 100 * d - 208 * e), cl(c + 516 * d)]
}

fn nv12_checks(ck: &mut Checker, imp: &Importer, width: u32, height: u32) {
    let (w, h) = (width as usize & !1, height as usize & !1);
    let (cw, ch) = (w / 2, h / 2);
    let luma: Vec<u8> = (0..w * h)
        .map(|i| (16 + ((i % w) / 4 + (i / w) / 4) % 220) as u8)
        .collect();
    let chroma: Vec<u8> = (0..cw * ch)
        .flat_map(|i| {
            let (x, y) = (i % cw, i / cw);
            [(64 + (x / 8) % 128) as u8, (64 + (y / 8) % 128) as u8]
        })
        .collect();
    let yb = imp.export_channels_dmabuf(w as u32, h as u32, 1, &luma);
    let uvb = imp.export_channels_dmabuf(cw as u32, ch as u32, 2, &chroma);
    let (yb, uvb) = match (yb, uvb) {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => {
            ck.skip(
                "NV12 import",
                format!(
                    "cannot export R8/RG88 planes: {:?} / {:?}",
                    a.err(),
                    b.err()
                ),
            );
            return;
        }
    };
    ck.info(
        "NV12 planes",
        format!("Y: {}; UV: {}", describe(&yb), describe(&uvb)),
    );
    if yb.modifier != uvb.modifier {
        ck.skip(
            "NV12 import",
            "the Y and UV exports have different modifiers (EGL needs one modifier for all planes)",
        );
        return;
    }
    let nv12 = Dmabuf {
        width: w as u32,
        height: h as u32,
        format: DrmFourcc::Nv12,
        modifier: yb.modifier,
        planes: vec![
            DmabufPlane {
                fd: yb.planes[0].fd.as_fd(),
                offset: yb.planes[0].offset,
                stride: yb.planes[0].stride,
            },
            DmabufPlane {
                fd: uvb.planes[0].fd.as_fd(),
                offset: uvb.planes[0].offset,
                stride: uvb.planes[0].stride,
            },
        ],
    };
    match imp.import(&nv12) {
        Err(e) => {
            ck.check("NV12 import (two fds)", false, e.to_string());
            return;
        }
        Ok(i) => ck.check(
            "NV12 import (two fds)",
            true,
            format!("target {:#x}", i.gl_texture_target()),
        ),
    }
    let mut dst = vec![0u8; w * h * 4];
    match imp.read_pixels(&nv12, &mut dst, w * 4, ReadFormat::Rgba) {
        Err(e) => ck.check(
            "NV12 read_pixels (external texture draw)",
            false,
            e.to_string(),
        ),
        Ok(()) => {
            let want: Vec<u8> = (0..w * h)
                .flat_map(|i| {
                    let (x, y) = (i % w, i / w);
                    let c = (y / 2) * cw + x / 2;
                    let [r, g, b] = yuv_to_rgb(luma[i], chroma[c * 2], chroma[c * 2 + 1]);
                    [r, g, b, 255]
                })
                .collect();
            let tol = 6;
            let (bad, max, first) = compare(&dst, &want, w as u32, tol);
            let frac = bad as f64 / (w * h) as f64;
            ck.check(
                "NV12 read_pixels vs BT.601 limited (tolerance 6)",
                frac <= 0.005,
                format!(
                    "{bad} of {} pixels beyond tolerance ({:.3}%), max diff {max}, first {first:?}",
                    w * h,
                    frac * 100.0
                ),
            );
        }
    }
}

fn time_it(n: usize, mut f: impl FnMut() -> bool) -> (Vec<f64>, usize) {
    let mut v = Vec::with_capacity(n);
    let mut fails = 0;
    for _ in 0..n {
        let t = Instant::now();
        if !f() {
            fails += 1;
        }
        v.push(t.elapsed().as_secs_f64() * 1e6);
    }
    (v, fails)
}

fn timings(ck: &mut Checker, imp: &Importer, width: u32, height: u32, iters: usize) {
    // A fresh buffer, so its first import is a real first import.
    let Ok((buf, _)) = make_pattern_dmabuf(imp, width, height) else {
        ck.skip("timings", "export failed");
        return;
    };
    let b = buf.borrow();
    let t = Instant::now();
    let first = imp.import(&b);
    let first_us = t.elapsed().as_secs_f64() * 1e6;
    ck.check(
        "timing: first import of a fresh buffer",
        first.is_ok(),
        format!("{first_us:.1} us"),
    );
    drop(first);

    let (mut v, fails) = time_it(iters, || imp.import(&b).is_ok());
    let (mean, p99) = stats_us(&mut v);
    ck.check(
        &format!("timing: import + release, same buffer, {iters}x"),
        fails == 0,
        format!("mean {mean:.1} us, p99 {p99:.1} us"),
    );

    let (mut v, fails) = time_it(iters, || {
        imp.import(&b)
            .and_then(|i| i.gl_texture().map(|_| ()))
            .is_ok()
    });
    let (mean, p99) = stats_us(&mut v);
    ck.check(
        &format!("timing: import + gl_texture + release, {iters}x"),
        fails == 0,
        format!("mean {mean:.1} us, p99 {p99:.1} us"),
    );

    let mut cache = ImportCache::new();
    let t = Instant::now();
    let ok = cache.get_or_import(imp, &b).is_ok();
    let miss_us = t.elapsed().as_secs_f64() * 1e6;
    let (mut v, fails) = time_it(iters, || cache.get_or_import(imp, &b).is_ok());
    let (mean, p99) = stats_us(&mut v);
    ck.check(
        &format!("timing: ImportCache hit (fstat + lookup), {iters}x"),
        ok && fails == 0 && cache.len() == 1,
        format!("miss {miss_us:.1} us; hit mean {mean:.2} us, p99 {p99:.2} us"),
    );

    let n = iters.min(100);
    let (w, h) = (width as usize, height as usize);
    let mut dst = vec![0u8; w * h * 4];
    let imported = cache.get_or_import(imp, &b).unwrap();
    let (mut v, fails) = time_it(n, || {
        imp.read_imported(&imported, &mut dst, w * 4, ReadFormat::Bgra)
            .is_ok()
    });
    let (mean, p99) = stats_us(&mut v);
    ck.check(
        &format!("timing: read_imported BGRA {width}x{height}, {n}x"),
        fails == 0,
        format!("mean {mean:.0} us, p99 {p99:.0} us"),
    );
    let (mut v, fails) = time_it(n, || {
        imp.read_pixels(&b, &mut dst, w * 4, ReadFormat::Rgba)
            .is_ok()
    });
    let (mean, p99) = stats_us(&mut v);
    ck.check(
        &format!("timing: read_pixels (import + read) RGBA {width}x{height}, {n}x"),
        fails == 0,
        format!("mean {mean:.0} us, p99 {p99:.0} us"),
    );
}

fn vulkan_checks(ck: &mut Checker) {
    // SAFETY: loads the system Vulkan loader; the Entry is leaked below so
    // the library is never unloaded.
    let entry = match unsafe { ash::Entry::load() } {
        Ok(e) => &*Box::leak(Box::new(e)),
        Err(e) => {
            ck.skip("vulkan", format!("no Vulkan loader: {e}"));
            return;
        }
    };
    let app = vk::ApplicationInfo::default().api_version(vk::API_VERSION_1_2);
    let ici = vk::InstanceCreateInfo::default().application_info(&app);
    // SAFETY: valid create info.
    let instance = match unsafe { entry.create_instance(&ici, None) } {
        Ok(i) => i,
        Err(e) => {
            ck.check("vulkan: vkCreateInstance", false, e.to_string());
            return;
        }
    };
    // SAFETY: valid instance.
    let pds = unsafe { instance.enumerate_physical_devices() }.unwrap_or_default();
    let Some(&pd) = pds.first() else {
        ck.check("vulkan: physical device", false, "none");
        // SAFETY: nothing else uses it.
        unsafe { instance.destroy_instance(None) };
        return;
    };
    // SAFETY: valid physical device.
    let props = unsafe { instance.get_physical_device_properties(pd) };
    // SAFETY: NUL-terminated array.
    let name = unsafe { CStr::from_ptr(props.device_name.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: valid physical device.
    let exts = unsafe { instance.enumerate_device_extension_properties(pd) }.unwrap_or_default();
    let has = |n: &CStr| {
        exts.iter()
            .any(|e| e.extension_name_as_c_str().ok() == Some(n))
    };
    let wanted = [
        c"VK_KHR_external_memory_fd",
        c"VK_EXT_external_memory_dma_buf",
        c"VK_EXT_image_drm_format_modifier",
        c"VK_KHR_image_format_list",
    ];
    let present: Vec<&CStr> = wanted.iter().copied().filter(|n| has(n)).collect();
    for n in wanted {
        ck.info(
            "vulkan extension",
            format!("{} on {name}: {}", n.to_string_lossy(), has(n)),
        );
    }
    let ptrs: Vec<*const std::ffi::c_char> = present.iter().map(|n| n.as_ptr()).collect();
    let prio = [1.0f32];
    let qci = [vk::DeviceQueueCreateInfo::default()
        .queue_family_index(0)
        .queue_priorities(&prio)];
    let dci = vk::DeviceCreateInfo::default()
        .queue_create_infos(&qci)
        .enabled_extension_names(&ptrs);
    // SAFETY: valid physical device and create info.
    let device = match unsafe { instance.create_device(pd, &dci, None) } {
        Ok(d) => d,
        Err(e) => {
            ck.check("vulkan: vkCreateDevice", false, e.to_string());
            // SAFETY: nothing else uses it.
            unsafe { instance.destroy_instance(None) };
            return;
        }
    };
    let handles = VulkanHandles {
        instance: instance.handle().as_raw() as *mut c_void,
        physical_device: pd.as_raw() as *mut c_void,
        device: device.handle().as_raw() as *mut c_void,
        get_instance_proc_addr: entry.static_fn().get_instance_proc_addr as *const c_void,
    };
    let all = has(c"VK_EXT_external_memory_dma_buf")
        && has(c"VK_EXT_image_drm_format_modifier")
        && has(c"VK_KHR_external_memory_fd");
    // SAFETY: the handles are valid and outlive the importer (dropped below).
    let r = unsafe { Importer::vulkan(handles) };
    match &r {
        Ok(i) => ck.check(
            "vulkan importer",
            all,
            format!(
                "created: {}; {} formats",
                i.description(),
                i.formats().len()
            ),
        ),
        Err(e) => ck.check(
            "vulkan importer -> clear Unsupported without the DMA-BUF extensions",
            !all && matches!(e, Error::Unsupported(_))
                && e.status() == wrd_status::WRD_ERR_UNSUPPORTED,
            format!("{e} (status {:?})", e.status()),
        ),
    }
    drop(r);
    // The C path, with the caller's vkGetInstanceProcAddr.
    let mut out = std::ptr::null_mut();
    // SAFETY: valid handles; `out` is a live local.
    let s = unsafe {
        cffi::wrd_importer_new_vulkan(
            handles.instance,
            handles.physical_device,
            handles.device,
            handles.get_instance_proc_addr,
            &mut out,
        )
    };
    let want = if all {
        wrd_status::WRD_OK
    } else {
        wrd_status::WRD_ERR_UNSUPPORTED
    };
    ck.check("C wrd_importer_new_vulkan", s == want, status_str(s));
    // SAFETY: NULL or an importer from the call above.
    unsafe { cffi::wrd_importer_destroy(out) };
    // SAFETY: no importer uses them any more.
    unsafe {
        device.destroy_device(None);
        instance.destroy_instance(None);
    }
}
