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
use gpu_check::{compare, cuda, expected, make_pattern_dmabuf, pattern_rgba, stats_us};
use wrd_capture::dmabuf::{Dmabuf, DmabufPlane, DRM_FORMAT_MOD_INVALID, DRM_FORMAT_MOD_LINEAR};
use wrd_capture::ffi::import as cffi;
use wrd_capture::import::{cpu, modifier_name, ImportCache, Importer, ReadFormat, VulkanHandles};
use wrd_capture::{wrd_status, Error, PixelFormat};

#[derive(Default)]
struct Checker {
    prefix: String,
    pass: usize,
    fail: usize,
    skip: usize,
}

impl Checker {
    fn check(&mut self, name: &str, ok: bool, detail: impl AsRef<str>) {
        if ok {
            self.pass += 1;
            println!("PASS  {}{name}: {}", self.prefix, detail.as_ref());
        } else {
            self.fail += 1;
            println!("FAIL  {}{name}: {}", self.prefix, detail.as_ref());
        }
    }
    fn skip(&mut self, name: &str, why: impl AsRef<str>) {
        self.skip += 1;
        println!("SKIP  {}{name}: {}", self.prefix, why.as_ref());
    }
    fn info(&self, name: &str, what: impl AsRef<str>) {
        println!("INFO  {}{name}: {}", self.prefix, what.as_ref());
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

#[allow(clippy::too_many_arguments)]
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

/// Print the driver's own EGL error messages (EGL_KHR_debug).
fn install_egl_debug() -> String {
    type Callback = unsafe extern "system" fn(
        u32,
        *const std::ffi::c_char,
        i32,
        *mut c_void,
        *mut c_void,
        *const std::ffi::c_char,
    );
    type Control = unsafe extern "system" fn(Option<Callback>, *const isize) -> i32;
    type GetProc = unsafe extern "system" fn(*const std::ffi::c_char) -> *mut c_void;
    unsafe extern "system" fn cb(
        error: u32,
        command: *const std::ffi::c_char,
        _kind: i32,
        _t: *mut c_void,
        _o: *mut c_void,
        message: *const std::ffi::c_char,
    ) {
        let s = |p: *const std::ffi::c_char| {
            if p.is_null() {
                String::new()
            } else {
                // SAFETY: EGL passes NUL-terminated strings.
                unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
            }
        };
        println!(
            "      EGL debug: error {error:#x} in {}: {}",
            s(command),
            s(message)
        );
    }
    // SAFETY: libEGL is already loaded NODELETE by wrd-capture or loads the
    // same way here; the handle is leaked.
    let lib = match unsafe { libloading::Library::new("libEGL.so.1") } {
        Ok(l) => Box::leak(Box::new(l)),
        Err(e) => return format!("no libEGL: {e}"),
    };
    // SAFETY: eglGetProcAddress has this signature.
    let Ok(gpa) = (unsafe { lib.get::<GetProc>(b"eglGetProcAddress\0") }) else {
        return "no eglGetProcAddress".into();
    };
    // SAFETY: valid NUL-terminated name.
    let p = unsafe { gpa(c"eglDebugMessageControlKHR".as_ptr()) };
    if p.is_null() {
        return "no EGL_KHR_debug".into();
    }
    // SAFETY: eglDebugMessageControlKHR has this signature.
    let control: Control = unsafe { std::mem::transmute::<*mut c_void, Control>(p) };
    // EGL_DEBUG_MSG_{CRITICAL,ERROR,WARN}_KHR = TRUE, EGL_NONE.
    let attribs: [isize; 7] = [0x33B9, 1, 0x33BA, 1, 0x33BB, 1, 0x3038];
    // SAFETY: a valid callback and EGL_NONE-terminated list.
    let r = unsafe { control(Some(cb), attribs.as_ptr()) };
    format!("eglDebugMessageControlKHR -> {r:#x} (0x3000 = success)")
}

fn egl_checks(ck: &mut Checker, width: u32, height: u32, iters: usize) {
    ck.info("EGL_KHR_debug", install_egl_debug());
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

    readback_path_checks(ck, &imp, width, height, iters);

    // DMA-BUFs of known pixels: an EGL-exported texture (tiled), and a
    // CUDA allocation exported as a LINEAR DMA-BUF.
    let mut sources: Vec<(&str, Dmabuf<OwnedFd>, Vec<u8>)> = Vec::new();
    match make_pattern_dmabuf(&imp, width, height) {
        Ok((buf, rgba)) => {
            ck.check(
                "source: EGL texture export (EGL_MESA_image_dma_buf_export)",
                true,
                describe(&buf),
            );
            sources.push(("EGL export", buf, rgba));
        }
        Err(e) => ck.skip(
            "source: EGL texture export (EGL_MESA_image_dma_buf_export)",
            e.to_string(),
        ),
    }
    let rgba = pattern_rgba(width, height);
    let stride = (width * 4).next_multiple_of(256);
    match cuda::make_linear_dmabuf(width, height, stride, DrmFourcc::Abgr8888, &rgba) {
        Ok(buf) => {
            ck.check(
                "source: CUDA DMA-BUF (cuMemGetHandleForAddressRange)",
                true,
                format!("{} [{}]", describe(&buf), fd_kind(&buf)),
            );
            sources.push(("CUDA linear", buf, rgba.clone()));
        }
        Err(e) => ck.skip("source: CUDA DMA-BUF (cuMemGetHandleForAddressRange)", e),
    }
    // NVIDIA lists only its block-linear modifiers: see whether CUDA memory
    // labelled with one of them imports (pixels will be scrambled: CUDA
    // memory is pitch-linear), to learn whether the import path works at all.
    let mut blocklinear: Option<u64> = None;
    if let Ok(cbuf) = cuda::make_linear_dmabuf(width, height, stride, DrmFourcc::Abgr8888, &rgba) {
        for m in imp.modifiers(DrmFourcc::Abgr8888).to_vec() {
            let r = imp.import(&relabel(&cbuf, DrmFourcc::Abgr8888, m));
            ck.info(
                "probe: CUDA memory imported as AB24 with listed modifier",
                format!(
                    "{}: {}",
                    modifier_name(m),
                    match &r {
                        Ok(_) => "imported".to_string(),
                        Err(e) => e.to_string(),
                    }
                ),
            );
            if r.is_ok() && blocklinear.is_none() {
                blocklinear = Some(m);
            }
        }
    }
    if sources.is_empty() {
        ck.check(
            "a DMA-BUF source",
            false,
            "neither EGL export nor CUDA could make a DMA-BUF",
        );
    }
    let mut timed = false;
    for (label, buf, rgba) in &sources {
        ck.prefix = format!("[{label}] ");
        let imported = source_checks(ck, &imp, buf, rgba, width, height);
        if imported && !timed {
            timed = true;
            let fresh = || -> Option<Dmabuf<OwnedFd>> {
                if *label == "EGL export" {
                    make_pattern_dmabuf(&imp, width, height)
                        .ok()
                        .map(|(b, _)| b)
                } else {
                    cuda::make_linear_dmabuf(width, height, stride, DrmFourcc::Abgr8888, rgba).ok()
                }
            };
            timings(ck, &imp, width, height, iters, &fresh);
        }
        ck.prefix.clear();
    }
    if let (false, Some(m)) = (timed, blocklinear) {
        ck.prefix = format!("[CUDA memory as {}] ", modifier_name(m));
        ck.info("timings", "no source reads back correctly; timing imports of CUDA memory under a listed block-linear modifier (layout mismatch: pixels not compared)");
        let fresh = || -> Option<Dmabuf<OwnedFd>> {
            let rgba = pattern_rgba(width, height);
            cuda::make_linear_dmabuf(width, height, stride, DrmFourcc::Abgr8888, &rgba)
                .ok()
                .map(|mut b| {
                    b.modifier = m;
                    b
                })
        };
        timings(ck, &imp, width, height, iters, &fresh);
        ck.prefix.clear();
    }
    nv12_checks(ck, &imp, width, height);
}

/// The GL read-back path on an EGLImage made from a GL texture (everything
/// after the DMA-BUF eglCreateImageKHR): direct FBO attachment
/// (GL_TEXTURE_2D) and the external-texture draw path used for YUV.
fn readback_path_checks(ck: &mut Checker, imp: &Importer, width: u32, height: u32, iters: usize) {
    let rgba = pattern_rgba(width, height);
    let (w, h) = (width as usize, height as usize);
    for (external, path) in [
        (false, "GL_TEXTURE_2D + FBO"),
        (true, "GL_TEXTURE_EXTERNAL_OES draw"),
    ] {
        ck.prefix = format!("[read-back path, EGLImage from a GL texture, {path}] ");
        let imported = match imp.debug_import_rgba_texture(width, height, &rgba, external) {
            Ok(i) => i,
            Err(e) => {
                ck.check("EGLImage from texture", false, e.to_string());
                continue;
            }
        };
        match imported.gl_texture() {
            Ok(t) => ck.check(
                "gl_texture (importer's context)",
                t != 0,
                format!("texture {t}, target {:#x}", imported.gl_texture_target()),
            ),
            Err(e) => ck.check("gl_texture (importer's context)", false, e.to_string()),
        }
        // Stride +64: read straight into dst (GLES 3); +3 (not whole
        // pixels): the scratch-buffer path.
        for (out, pad) in [
            (ReadFormat::Rgba, 64),
            (ReadFormat::Bgra, 64),
            (ReadFormat::Bgra, 3),
        ] {
            let stride = w * 4 + pad;
            let mut dst = vec![0u8; stride * h];
            let name = format!("read_imported {out:?} (dst stride = row + {pad})");
            match imp.read_imported(&imported, &mut dst, stride, out) {
                Ok(()) => {
                    let got: Vec<u8> = dst
                        .chunks(stride)
                        .flat_map(|r| r[..w * 4].to_vec())
                        .collect();
                    let (bad, max, first) =
                        compare(&got, &expected(&rgba, out, false, false), width, 0);
                    ck.check(
                        &name,
                        bad == 0,
                        format!(
                            "{bad} of {} pixels differ (max diff {max}) {first:?}",
                            w * h
                        ),
                    );
                }
                Err(e) => ck.check(&name, false, e.to_string()),
            }
        }
        let n = iters.min(100);
        let mut dst = vec![0u8; w * h * 4];
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
    }
    ck.prefix.clear();
}

fn fd_kind(buf: &Dmabuf<OwnedFd>) -> String {
    let fd = buf.planes[0].fd.as_raw_fd();
    match std::fs::read_link(format!("/proc/self/fd/{fd}")) {
        Ok(p) => format!("fd {fd} -> {}", p.display()),
        Err(e) => format!("fd {fd}: {e}"),
    }
}

/// Import / read-back checks on one source buffer; true if it imported.
fn source_checks(
    ck: &mut Checker,
    imp: &Importer,
    buf: &Dmabuf<OwnedFd>,
    rgba: &[u8],
    width: u32,
    height: u32,
) -> bool {
    let imported = imp.import(&buf.borrow()).is_ok();
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
                        &expected(rgba, ReadFormat::Rgba, false, false),
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
    if imported {
        read_compare(
            ck,
            "read_pixels RGBA (padded dst stride)",
            imp,
            &b,
            rgba,
            ReadFormat::Rgba,
            false,
            false,
        );
        read_compare(
            ck,
            "read_pixels BGRA (padded dst stride)",
            imp,
            &b,
            rgba,
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
                    imp,
                    &relabel(buf, f, buf.modifier),
                    rgba,
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

        c_path_checks(ck, buf, rgba);

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
                    rgba,
                    ReadFormat::Rgba,
                    false,
                    false,
                );
            }
            Err(e) => ck.check("egl_from_display", false, e.to_string()),
        }
    } else {
        ck.skip(
            "read-back, relabel, C import and egl_from_display checks",
            "the buffer does not import (see the import check above)",
        );
    }
    // CPU path.
    if buf.modifier == DRM_FORMAT_MOD_LINEAR {
        let (w, h) = (width as usize, height as usize);
        let mut dst = vec![0u8; w * h * 4];
        match cpu::read_linear(&b, false, &mut dst, w * 4, ReadFormat::Rgba) {
            Ok(()) => {
                let (bad, max, _) = compare(
                    &dst,
                    &expected(rgba, ReadFormat::Rgba, false, false),
                    width,
                    0,
                );
                ck.check(
                    "CPU read_linear",
                    bad == 0,
                    format!("{bad} pixels differ (max {max})"),
                );
            }
            Err(Error::Io(e)) => ck.skip(
                "CPU read_linear",
                format!("the exporter refuses CPU access (mmap / DMA_BUF_IOCTL_SYNC): {e}"),
            ),
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
    match imp.import(&relabel(buf, buf.format, DRM_FORMAT_MOD_INVALID)) {
        Ok(_) => {
            let (w, h) = (width as usize, height as usize);
            let mut dst = vec![0u8; w * h * 4];
            let r = imp.read_pixels(
                &relabel(buf, buf.format, DRM_FORMAT_MOD_INVALID),
                &mut dst,
                w * 4,
                ReadFormat::Rgba,
            );
            let same = r.is_ok()
                && compare(
                    &dst,
                    &expected(rgba, ReadFormat::Rgba, false, false),
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
    let r = imp.import(&relabel(buf, buf.format, bogus_mod));
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

    imported
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
        if buf.modifier == DRM_FORMAT_MOD_LINEAR && s == wrd_status::WRD_ERR_IO {
            ck.skip(
                "C wrd_dmabuf_read_pixels (NULL importer, CPU)",
                format!("{}: the exporter refuses CPU access", status_str(s)),
            );
        } else if buf.modifier == DRM_FORMAT_MOD_LINEAR {
            let (bad, _, _) = compare(
                &dst,
                &expected(rgba, ReadFormat::Bgra, false, false),
                buf.width,
                0,
            );
            ck.check(
                "C wrd_dmabuf_read_pixels (NULL importer, CPU)",
                s == wrd_status::WRD_OK && bad == 0,
                format!("{}, {bad} pixels differ", status_str(s)),
            );
        } else {
            ck.check(
                "C wrd_dmabuf_read_pixels (NULL importer, CPU) refuses a tiled buffer",
                s == wrd_status::WRD_ERR_UNSUPPORTED,
                format!("{} for {}", status_str(s), modifier_name(buf.modifier)),
            );
        }
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
    // Planes from EGL exports (R8 + GR88, two fds), else one CUDA LINEAR
    // allocation holding both planes.
    let yb = imp.export_channels_dmabuf(w as u32, h as u32, 1, &luma);
    let uvb = imp.export_channels_dmabuf(cw as u32, ch as u32, 2, &chroma);
    let owned: Vec<OwnedFd>;
    let nv12 = match (yb, uvb) {
        (Ok(yb), Ok(uvb)) if yb.modifier == uvb.modifier => {
            ck.info(
                "NV12 planes (EGL export)",
                format!("Y: {}; UV: {}", describe(&yb), describe(&uvb)),
            );
            let planes = vec![
                (yb.planes[0].offset, yb.planes[0].stride),
                (uvb.planes[0].offset, uvb.planes[0].stride),
            ];
            owned = vec![
                yb.planes.into_iter().next().unwrap().fd,
                uvb.planes.into_iter().next().unwrap().fd,
            ];
            (yb.modifier, planes)
        }
        (y, uv) => {
            ck.info(
                "NV12 planes",
                format!(
                    "EGL export unusable (Y: {:?}; UV: {:?}); trying one CUDA LINEAR allocation",
                    y.map(|b| describe(&b)).map_err(|e| e.to_string()),
                    uv.map(|b| describe(&b)).map_err(|e| e.to_string())
                ),
            );
            let stride = w.next_multiple_of(256);
            let mut bytes = vec![0u8; stride * (h + ch)];
            for y in 0..h {
                bytes[y * stride..y * stride + w].copy_from_slice(&luma[y * w..(y + 1) * w]);
            }
            for y in 0..ch {
                let o = (h + y) * stride;
                bytes[o..o + cw * 2].copy_from_slice(&chroma[y * cw * 2..(y + 1) * cw * 2]);
            }
            match cuda::make_dmabuf_fd(&bytes) {
                Ok(fd) => {
                    let dup = fd.try_clone().expect("dup");
                    owned = vec![fd, dup];
                    (
                        DRM_FORMAT_MOD_LINEAR,
                        vec![(0, stride as u32), ((stride * h) as u32, stride as u32)],
                    )
                }
                Err(e) => {
                    ck.skip("NV12 import", format!("no NV12 source: {e}"));
                    return;
                }
            }
        }
    };
    let nv12 = Dmabuf {
        width: w as u32,
        height: h as u32,
        format: DrmFourcc::Nv12,
        modifier: nv12.0,
        planes: owned
            .iter()
            .zip(&nv12.1)
            .map(|(fd, &(offset, stride))| DmabufPlane {
                fd: fd.as_fd(),
                offset,
                stride,
            })
            .collect(),
    };
    let label = format!("NV12 {} import", modifier_name(nv12.modifier));
    match imp.import(&nv12) {
        Err(e) => {
            ck.check(&label, false, e.to_string());
            return;
        }
        Ok(i) => ck.check(&label, true, format!("target {:#x}", i.gl_texture_target())),
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

fn timings(
    ck: &mut Checker,
    imp: &Importer,
    width: u32,
    height: u32,
    iters: usize,
    fresh: &dyn Fn() -> Option<Dmabuf<OwnedFd>>,
) {
    // A fresh buffer, so its first import is a real first import.
    let Some(buf) = fresh() else {
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
