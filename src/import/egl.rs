//! The EGL backend: DMA-BUFs imported as `EGLImage`s
//! (`EGL_EXT_image_dma_buf_import[_modifiers]`), bound to GL textures and
//! read back with `glReadPixels`.
//!
//! libEGL is loaded once with `RTLD_NODELETE` and kept in a process-lifetime
//! static: it is never unloaded (NVIDIA's libEGL crashes on `dlclose`).
//!
//! # Contexts and threads
//! EGL contexts are current on one thread at a time. The importer owns one
//! surfaceless GLES context (on its own display, or on the caller's display
//! when it has `EGL_KHR_surfaceless_context`) and uses it under an internal
//! mutex: for each GL operation it makes the context current on the calling
//! thread, does the work, and restores whatever context (and bound API) the
//! thread had before. So every method may be called from any thread, but the
//! caller must not make the importer's context current itself.
//!
//! `EGLImage` creation needs no context. [`Imported::gl_texture`]
//! (crate::import::Imported::gl_texture) makes its texture in the context
//! current on the calling thread if there is one, else in the importer's own
//! context.

use std::collections::HashSet;
use std::ffi::{c_char, c_void, CStr};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex, OnceLock};

use drm_fourcc::DrmFourcc;
use khronos_egl as egl;

use super::gl::{self, GLenum, GLint, GLuint, Gl};
use super::{cpu, filter_formats, ReadFormat};
use crate::dmabuf::{Dmabuf, DmabufPlane, DRM_FORMAT_MOD_INVALID};
use crate::error::{Error, Result};
use crate::format::PixelFormat;

type EGLint = egl::Int;
type EGLDisplay = *mut c_void;
type EGLImage = *mut c_void;
type EGLBoolean = egl::Boolean;

const EGL_PLATFORM_DEVICE_EXT: egl::Enum = 0x313F;
const EGL_PLATFORM_SURFACELESS_MESA: egl::Enum = 0x31DD;
const EGL_DRM_DEVICE_FILE_EXT: EGLint = 0x3233;
const EGL_EXTENSIONS: EGLint = 0x3055;
const EGL_VENDOR: EGLint = 0x3053;
const EGL_WIDTH: EGLint = 0x3057;
const EGL_HEIGHT: EGLint = 0x3056;
const EGL_NONE: EGLint = 0x3038;
const EGL_LINUX_DMA_BUF_EXT: egl::Enum = 0x3270;
const EGL_LINUX_DRM_FOURCC_EXT: EGLint = 0x3271;
const EGL_GL_TEXTURE_2D_KHR: egl::Enum = 0x30B1;
const EGL_GL_TEXTURE_LEVEL_KHR: EGLint = 0x30BC;
const EGL_IMAGE_PRESERVED_KHR: EGLint = 0x30D2;
const EGL_CONTEXT_CLIENT_VERSION: EGLint = 0x3098;
const EGL_RENDERABLE_TYPE: EGLint = 0x3040;
const EGL_OPENGL_ES2_BIT: EGLint = 0x0004;
const EGL_SURFACE_TYPE: EGLint = 0x3033;

/// Per plane: FD, OFFSET, PITCH, MODIFIER_LO, MODIFIER_HI.
const PLANE_ATTRIBS: [[EGLint; 5]; 4] = [
    [0x3272, 0x3273, 0x3274, 0x3443, 0x3444],
    [0x3275, 0x3276, 0x3277, 0x3445, 0x3446],
    [0x3278, 0x3279, 0x327A, 0x3447, 0x3448],
    [0x3440, 0x3441, 0x3442, 0x3449, 0x344A],
];

type PfnGetPlatformDisplayExt =
    unsafe extern "system" fn(egl::Enum, *mut c_void, *const EGLint) -> EGLDisplay;
type PfnQueryDevicesExt =
    unsafe extern "system" fn(EGLint, *mut *mut c_void, *mut EGLint) -> EGLBoolean;
type PfnQueryDeviceStringExt = unsafe extern "system" fn(*mut c_void, EGLint) -> *const c_char;
type PfnQueryDmaBufFormatsExt =
    unsafe extern "system" fn(EGLDisplay, EGLint, *mut EGLint, *mut EGLint) -> EGLBoolean;
type PfnQueryDmaBufModifiersExt = unsafe extern "system" fn(
    EGLDisplay,
    EGLint,
    EGLint,
    *mut u64,
    *mut EGLBoolean,
    *mut EGLint,
) -> EGLBoolean;
type PfnCreateImageKhr = unsafe extern "system" fn(
    EGLDisplay,
    *mut c_void,
    egl::Enum,
    *mut c_void,
    *const EGLint,
) -> EGLImage;
type PfnDestroyImageKhr = unsafe extern "system" fn(EGLDisplay, EGLImage) -> EGLBoolean;
type PfnExportQueryMesa =
    unsafe extern "system" fn(EGLDisplay, EGLImage, *mut i32, *mut i32, *mut u64) -> EGLBoolean;
type PfnExportMesa = unsafe extern "system" fn(
    EGLDisplay,
    EGLImage,
    *mut i32,
    *mut EGLint,
    *mut EGLint,
) -> EGLBoolean;

/// libEGL and the extension entry points, loaded once for the process.
struct EglLib {
    egl: egl::DynamicInstance<egl::EGL1_4>,
    get_platform_display: Option<PfnGetPlatformDisplayExt>,
    query_devices: Option<PfnQueryDevicesExt>,
    query_device_string: Option<PfnQueryDeviceStringExt>,
    query_formats: Option<PfnQueryDmaBufFormatsExt>,
    query_modifiers: Option<PfnQueryDmaBufModifiersExt>,
    create_image: Option<PfnCreateImageKhr>,
    destroy_image: Option<PfnDestroyImageKhr>,
    export_query: Option<PfnExportQueryMesa>,
    export: Option<PfnExportMesa>,
}

// SAFETY: EGL entry points may be called from any thread; the struct holds
// only the (never unloaded) library and function pointers into it.
unsafe impl Send for EglLib {}
// SAFETY: as above; nothing in it is mutated after loading.
unsafe impl Sync for EglLib {}

static EGL_LIB: OnceLock<std::result::Result<EglLib, String>> = OnceLock::new();

fn egl_lib() -> Result<&'static EglLib> {
    EGL_LIB
        .get_or_init(load_egl)
        .as_ref()
        .map_err(|e| Error::Unsupported(e.clone()))
}

fn load_egl() -> std::result::Result<EglLib, String> {
    let mut last = String::new();
    for name in ["libEGL.so.1", "libEGL.so"] {
        // SAFETY: loading libEGL runs its initializers, which is what any EGL
        // user does. RTLD_NOW | RTLD_NODELETE: the library is never unmapped,
        // even if the handle were dropped (it is not: it lives in a static).
        let lib = unsafe {
            libloading::os::unix::Library::open(
                Some(name),
                libloading::os::unix::RTLD_NOW | libc::RTLD_NODELETE,
            )
        };
        let lib = match lib {
            Ok(l) => libloading::Library::from(l),
            Err(e) => {
                last = format!("cannot load {name}: {e}");
                continue;
            }
        };
        // SAFETY: the library is libEGL, which provides the EGL 1.4 API.
        let inst = match unsafe { egl::DynamicInstance::<egl::EGL1_4>::load_required_from(lib) } {
            Ok(i) => i,
            Err(e) => {
                last = format!("{name} lacks EGL 1.4: {e}");
                continue;
            }
        };
        macro_rules! ext {
            ($name:literal, $ty:ty) => {
                inst.get_proc_address($name).map(|f| {
                    // SAFETY: eglGetProcAddress returned this entry point, and
                    // its C signature is the one `$ty` states (from the
                    // extension's specification).
                    unsafe { std::mem::transmute::<extern "system" fn(), $ty>(f) }
                })
            };
        }
        return Ok(EglLib {
            get_platform_display: ext!("eglGetPlatformDisplayEXT", PfnGetPlatformDisplayExt),
            query_devices: ext!("eglQueryDevicesEXT", PfnQueryDevicesExt),
            query_device_string: ext!("eglQueryDeviceStringEXT", PfnQueryDeviceStringExt),
            query_formats: ext!("eglQueryDmaBufFormatsEXT", PfnQueryDmaBufFormatsExt),
            query_modifiers: ext!("eglQueryDmaBufModifiersEXT", PfnQueryDmaBufModifiersExt),
            create_image: ext!("eglCreateImageKHR", PfnCreateImageKhr),
            destroy_image: ext!("eglDestroyImageKHR", PfnDestroyImageKhr),
            export_query: ext!("eglExportDMABUFImageQueryMESA", PfnExportQueryMesa),
            export: ext!("eglExportDMABUFImageMESA", PfnExportMesa),
            egl: inst,
        });
    }
    Err(format!("libEGL is not available ({last})"))
}

static GL: OnceLock<std::result::Result<Gl, String>> = OnceLock::new();

fn load_gl(lib: &'static EglLib) -> Result<&'static Gl> {
    GL.get_or_init(|| {
        // libGLESv2 as a fallback for core entry points that an EGL 1.4
        // eglGetProcAddress need not return; opened NODELETE and leaked.
        let gles: Option<&'static libloading::Library> = {
            // SAFETY: loading libGLESv2 runs its initializers only.
            let l = unsafe {
                libloading::os::unix::Library::open(
                    Some("libGLESv2.so.2"),
                    libloading::os::unix::RTLD_NOW | libc::RTLD_NODELETE,
                )
            };
            l.ok()
                .map(|l| &*Box::leak(Box::new(libloading::Library::from(l))))
        };
        Gl::load(|name| {
            let s = name.to_str().unwrap_or_default();
            if let Some(f) = lib.egl.get_proc_address(s) {
                return f as *const c_void;
            }
            if let Some(g) = gles {
                // SAFETY: looking a symbol up has no side effect; the pointer
                // is only used with the signature the GL table states.
                if let Ok(sym) = unsafe { g.get::<*const c_void>(name.to_bytes_with_nul()) } {
                    return *sym;
                }
            }
            std::ptr::null()
        })
        .map_err(|missing| format!("GL entry point {missing} not found"))
    })
    .as_ref()
    .map_err(|e| Error::Unsupported(e.clone()))
}

fn egl_err(lib: &EglLib, what: &str) -> String {
    match lib.egl.get_error() {
        Some(e) => format!("{what} failed: {e:?}"),
        None => format!("{what} failed"),
    }
}

fn has_ext(exts: &str, name: &str) -> bool {
    exts.split_ascii_whitespace().any(|e| e == name)
}

/// State of the importer's own context, guarded by its mutex.
#[derive(Default)]
struct GlState {
    fbo: GLuint,
    program: GLuint,
    target_tex: GLuint,
    target_size: (u32, u32),
    gl_exts: String,
    gles3: bool,
}

pub(crate) struct EglShared {
    lib: &'static EglLib,
    display: egl::Display,
    display_exts: String,
    context: Option<egl::Context>,
    gl: Option<&'static Gl>,
    state: Mutex<GlState>,
    external_only: HashSet<(u32, u64)>,
    formats: Vec<(DrmFourcc, Vec<u64>)>,
    has_modifiers: bool,
    desc: String,
}

// SAFETY: EGL displays, contexts and images are process-wide handles usable
// from any thread; the GL context is only made current under `state`'s mutex.
unsafe impl Send for EglShared {}
// SAFETY: as above.
unsafe impl Sync for EglShared {}

/// What the calling thread had current, restored after using our context.
struct SavedCurrent {
    api: egl::Enum,
    display: Option<egl::Display>,
    context: Option<egl::Context>,
    draw: Option<egl::Surface>,
    read: Option<egl::Surface>,
}

impl EglShared {
    /// Open our own display: device platform first, then surfaceless.
    pub(crate) fn open_default() -> Result<EglShared> {
        let lib = egl_lib()?;
        let client = lib
            .egl
            .query_string(None, EGL_EXTENSIONS)
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let get_display = lib
            .get_platform_display
            .ok_or_else(|| Error::Unsupported("libEGL has no eglGetPlatformDisplayEXT".into()))?;
        let mut reasons = Vec::new();

        if has_ext(&client, "EGL_EXT_platform_device") {
            match (lib.query_devices, enumerate_devices(lib)) {
                (Some(_), Ok(devs)) => {
                    for (i, dev, name, exts) in devs {
                        // SAFETY: `dev` came from eglQueryDevicesEXT; the
                        // attribute list is EGL_NONE-terminated.
                        let dpy = unsafe {
                            get_display(EGL_PLATFORM_DEVICE_EXT, dev, [EGL_NONE].as_ptr())
                        };
                        let what = format!("EGL device {i} ({name}; {exts})");
                        match Self::init_display(lib, dpy, what.clone()) {
                            Ok(s) => return Ok(s),
                            Err(e) => reasons.push(format!("{what}: {e}")),
                        }
                    }
                }
                (_, Err(e)) => reasons.push(e),
                (None, _) => reasons.push("no eglQueryDevicesEXT".into()),
            }
        } else {
            reasons.push("no EGL_EXT_platform_device".into());
        }
        if has_ext(&client, "EGL_MESA_platform_surfaceless") {
            // SAFETY: the surfaceless platform takes EGL_DEFAULT_DISPLAY.
            let dpy = unsafe {
                get_display(
                    EGL_PLATFORM_SURFACELESS_MESA,
                    std::ptr::null_mut(),
                    [EGL_NONE].as_ptr(),
                )
            };
            match Self::init_display(lib, dpy, "EGL surfaceless platform".into()) {
                Ok(s) => return Ok(s),
                Err(e) => reasons.push(format!("surfaceless: {e}")),
            }
        } else {
            reasons.push("no EGL_MESA_platform_surfaceless".into());
        }
        Err(Error::Unsupported(format!(
            "no EGL display can import DMA-BUFs: {}",
            reasons.join("; ")
        )))
    }

    fn init_display(lib: &'static EglLib, dpy: EGLDisplay, what: String) -> Result<EglShared> {
        if dpy.is_null() {
            return Err(Error::Unsupported(egl_err(lib, "eglGetPlatformDisplayEXT")));
        }
        // SAFETY: non-NULL display returned by eglGetPlatformDisplayEXT.
        let display = unsafe { egl::Display::from_ptr(dpy) };
        let (major, minor) = lib
            .egl
            .initialize(display)
            .map_err(|e| Error::Unsupported(format!("eglInitialize failed: {e:?}")))?;
        Self::new(lib, display, format!("{what}, EGL {major}.{minor}"), true)
    }

    /// Use the caller's initialized display.
    ///
    /// # Safety
    /// `display` must be a valid, initialized EGLDisplay of this libEGL.
    pub(crate) unsafe fn from_display(display: *mut c_void) -> Result<EglShared> {
        let lib = egl_lib()?;
        // SAFETY: the caller guarantees the display is valid.
        let display = unsafe { egl::Display::from_ptr(display) };
        Self::new(lib, display, "caller's EGL display".into(), false)
    }

    fn new(
        lib: &'static EglLib,
        display: egl::Display,
        what: String,
        need_context: bool,
    ) -> Result<EglShared> {
        let display_exts = lib
            .egl
            .query_string(Some(display), EGL_EXTENSIONS)
            .map_err(|e| Error::Unsupported(format!("eglQueryString(EXTENSIONS): {e:?}")))?
            .to_string_lossy()
            .into_owned();
        let vendor = lib
            .egl
            .query_string(Some(display), EGL_VENDOR)
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !has_ext(&display_exts, "EGL_EXT_image_dma_buf_import") {
            return Err(Error::Unsupported(format!(
                "{what} (vendor {vendor}) lacks EGL_EXT_image_dma_buf_import"
            )));
        }
        if lib.create_image.is_none() || lib.destroy_image.is_none() {
            return Err(Error::Unsupported(
                "libEGL has no eglCreateImageKHR/eglDestroyImageKHR".into(),
            ));
        }
        let has_modifiers = has_ext(&display_exts, "EGL_EXT_image_dma_buf_import_modifiers")
            && lib.query_formats.is_some()
            && lib.query_modifiers.is_some();
        let (formats, external_only) = query_formats(lib, display, has_modifiers)?;

        let mut context = None;
        let mut ctx_err = String::new();
        if has_ext(&display_exts, "EGL_KHR_surfaceless_context") {
            match create_context(lib, display, &display_exts) {
                Ok(c) => context = Some(c),
                Err(e) => ctx_err = e,
            }
        } else {
            ctx_err = "no EGL_KHR_surfaceless_context".into();
        }
        if context.is_none() && need_context {
            return Err(Error::Unsupported(format!(
                "{what}: cannot make a GLES context: {ctx_err}"
            )));
        }
        let gl = if context.is_some() {
            Some(load_gl(lib)?)
        } else {
            None
        };
        let mut shared = EglShared {
            lib,
            display,
            display_exts,
            context,
            gl,
            state: Mutex::new(GlState::default()),
            external_only,
            formats,
            has_modifiers,
            desc: format!("{what}, vendor {vendor}"),
        };
        if shared.context.is_some() {
            let info = shared.with_context(|gl, st| {
                // SAFETY: our context is current (with_context).
                let renderer = unsafe { gl.string(gl::GL_RENDERER) };
                // SAFETY: as above.
                let version = unsafe { gl.string(gl::GL_VERSION) };
                // SAFETY: as above.
                st.gl_exts = unsafe { gl.string(gl::GL_EXTENSIONS) };
                st.gles3 = version
                    .strip_prefix("OpenGL ES ")
                    .and_then(|v| v.chars().next())
                    .and_then(|c| c.to_digit(10))
                    .is_some_and(|major| major >= 3);
                if !has_ext(&st.gl_exts, "GL_OES_EGL_image") {
                    return Err(Error::Unsupported(format!(
                        "GL context ({renderer}) lacks GL_OES_EGL_image"
                    )));
                }
                Ok(format!("GL_RENDERER {renderer}, GL_VERSION {version}"))
            });
            match info {
                Ok(i) => shared.desc = format!("{}, {i}", shared.desc),
                Err(e) if need_context => return Err(e),
                Err(e) => {
                    // A caller's display whose GL we cannot use: import only.
                    shared.desc = format!("{}, no own GL context ({e})", shared.desc);
                    if let Some(c) = shared.context.take() {
                        let _ = lib.egl.destroy_context(display, c);
                    }
                }
            }
        }
        Ok(shared)
    }

    pub(crate) fn formats(&self) -> &[(DrmFourcc, Vec<u64>)] {
        &self.formats
    }

    pub(crate) fn description(&self) -> String {
        format!(
            "{}{}",
            self.desc,
            if self.has_modifiers {
                ""
            } else {
                ", no modifier support"
            }
        )
    }

    pub(crate) fn display_ptr(&self) -> *mut c_void {
        self.display.as_ptr()
    }

    pub(crate) fn context_ptr(&self) -> Option<*mut c_void> {
        self.context.map(|c| c.as_ptr())
    }

    fn save_current(&self) -> SavedCurrent {
        let e = &self.lib.egl;
        SavedCurrent {
            api: e.query_api(),
            display: e.get_current_display(),
            context: e.get_current_context(),
            draw: e.get_current_surface(egl::DRAW),
            read: e.get_current_surface(egl::READ),
        }
    }

    fn restore_current(&self, s: SavedCurrent) {
        let e = &self.lib.egl;
        match (s.display, s.context) {
            (Some(d), Some(c)) if Some(c) != self.context => {
                let _ = e.bind_api(s.api);
                let _ = e.make_current(d, s.draw, s.read, Some(c));
            }
            _ => {
                let _ = e.make_current(self.display, None, None, None);
                let _ = e.bind_api(s.api);
            }
        }
    }

    /// Run `f` with our context current on this thread (under the mutex),
    /// then restore the thread's previous context.
    fn with_context<R>(&self, f: impl FnOnce(&Gl, &mut GlState) -> Result<R>) -> Result<R> {
        let (Some(ctx), Some(gl)) = (self.context, self.gl) else {
            return Err(Error::Unsupported(
                "this EGL importer has no GL context of its own (the display lacks EGL_KHR_surfaceless_context or GL_OES_EGL_image)".into(),
            ));
        };
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let saved = self.save_current();
        self.lib
            .egl
            .bind_api(egl::OPENGL_ES_API)
            .map_err(|e| Error::InvalidState(format!("eglBindAPI(GLES): {e:?}")))?;
        if let Err(e) = self
            .lib
            .egl
            .make_current(self.display, None, None, Some(ctx))
        {
            self.restore_current(saved);
            return Err(Error::InvalidState(format!(
                "eglMakeCurrent of the importer's context failed: {e:?} (is it current on another thread?)"
            )));
        }
        let r = f(gl, &mut st);
        self.restore_current(saved);
        r
    }

    fn create_image(&self, buf: &Dmabuf<BorrowedFd<'_>>) -> Result<EGLImage> {
        let mut attribs: Vec<EGLint> = vec![
            EGL_WIDTH,
            buf.width as EGLint,
            EGL_HEIGHT,
            buf.height as EGLint,
            EGL_LINUX_DRM_FOURCC_EXT,
            buf.format as u32 as EGLint,
        ];
        let explicit = buf.modifier != DRM_FORMAT_MOD_INVALID;
        if explicit && !self.has_modifiers {
            return Err(Error::Unsupported(format!(
                "modifier {:#x} given, but the display lacks EGL_EXT_image_dma_buf_import_modifiers",
                buf.modifier
            )));
        }
        for (i, p) in buf.planes.iter().enumerate() {
            let a = PLANE_ATTRIBS[i];
            attribs.extend_from_slice(&[
                a[0],
                p.fd.as_raw_fd(),
                a[1],
                p.offset as EGLint,
                a[2],
                p.stride as EGLint,
            ]);
            if explicit {
                attribs.extend_from_slice(&[
                    a[3],
                    (buf.modifier & 0xffff_ffff) as u32 as EGLint,
                    a[4],
                    (buf.modifier >> 32) as u32 as EGLint,
                ]);
            }
        }
        attribs.push(EGL_NONE);
        let create = self.lib.create_image.expect("checked at creation");
        // SAFETY: valid display, EGL_NO_CONTEXT and a NULL client buffer as
        // EGL_LINUX_DMA_BUF_EXT requires, and an EGL_NONE-terminated list
        // whose fds are live for the duration of the call (EGL takes its own
        // reference to the buffer; the fds stay the caller's).
        let image = unsafe {
            create(
                self.display.as_ptr(),
                std::ptr::null_mut(),
                EGL_LINUX_DMA_BUF_EXT,
                std::ptr::null_mut(),
                attribs.as_ptr(),
            )
        };
        if image.is_null() {
            return Err(Error::ImportFailed(format!(
                "{} ({:?} {}x{}, modifier {}, {} planes)",
                egl_err(self.lib, "eglCreateImageKHR(EGL_LINUX_DMA_BUF_EXT)"),
                buf.format,
                buf.width,
                buf.height,
                super::modifier_name(buf.modifier),
                buf.planes.len()
            )));
        }
        Ok(image)
    }

    /// An EGLImage of a GL texture holding `rgba` (for exercising the
    /// read-back path where DMA-BUF import is unavailable).
    pub(crate) fn image_from_rgba(&self, width: u32, height: u32, rgba: &[u8]) -> Result<EGLImage> {
        if width == 0 || height == 0 || rgba.len() != width as usize * height as usize * 4 {
            return Err(Error::InvalidArgument("bad size or data length".into()));
        }
        if !has_ext(&self.display_exts, "EGL_KHR_gl_texture_2D_image") {
            return Err(Error::Unsupported("no EGL_KHR_gl_texture_2D_image".into()));
        }
        let ctx = self
            .context
            .ok_or_else(|| Error::Unsupported("no GL context of our own".into()))?;
        self.with_context(|gl, _| {
            // SAFETY: our context is current; `rgba` holds width*height*4
            // bytes; the texture name is deleted (the image keeps its storage).
            unsafe {
                gl.take_error();
                let mut tex = 0;
                (gl.GenTextures)(1, &mut tex);
                (gl.BindTexture)(gl::GL_TEXTURE_2D, tex);
                (gl.TexParameteri)(gl::GL_TEXTURE_2D, gl::GL_TEXTURE_MIN_FILTER, gl::GL_NEAREST);
                (gl.PixelStorei)(gl::GL_UNPACK_ALIGNMENT, 1);
                (gl.TexImage2D)(
                    gl::GL_TEXTURE_2D,
                    0,
                    gl::GL_RGBA8 as GLint,
                    width as i32,
                    height as i32,
                    0,
                    gl::GL_RGBA,
                    gl::GL_UNSIGNED_BYTE,
                    rgba.as_ptr().cast(),
                );
                (gl.BindTexture)(gl::GL_TEXTURE_2D, 0);
                (gl.Finish)();
                // EGL_IMAGE_PRESERVED_KHR: without it the texture's contents become
                // undefined once the image exists (NVIDIA does drop them).
                let attribs = [
                    EGL_GL_TEXTURE_LEVEL_KHR,
                    0,
                    EGL_IMAGE_PRESERVED_KHR,
                    1,
                    EGL_NONE,
                ];
                let create = self.lib.create_image.expect("checked at creation");
                let image = create(
                    self.display.as_ptr(),
                    ctx.as_ptr(),
                    EGL_GL_TEXTURE_2D_KHR,
                    tex as usize as *mut c_void,
                    attribs.as_ptr(),
                );
                if !image.is_null() {
                    // Upload again into the (now shared) storage, in case the
                    // driver ignored EGL_IMAGE_PRESERVED_KHR.
                    if let Some(f) = self.lib.egl.get_proc_address("glTexSubImage2D") {
                        let sub = std::mem::transmute::<extern "system" fn(), TexSubImage2D>(f);
                        (gl.BindTexture)(gl::GL_TEXTURE_2D, tex);
                        sub(
                            gl::GL_TEXTURE_2D,
                            0,
                            0,
                            0,
                            width as i32,
                            height as i32,
                            gl::GL_RGBA,
                            gl::GL_UNSIGNED_BYTE,
                            rgba.as_ptr().cast(),
                        );
                        (gl.BindTexture)(gl::GL_TEXTURE_2D, 0);
                        (gl.Finish)();
                    }
                }
                (gl.DeleteTextures)(1, &tex);
                if image.is_null() {
                    return Err(Error::ImportFailed(egl_err(
                        self.lib,
                        "eglCreateImageKHR(EGL_GL_TEXTURE_2D_KHR)",
                    )));
                }
                let err = gl.take_error();
                if err != gl::GL_NO_ERROR {
                    self.destroy_image(image);
                    return Err(Error::ImportFailed(format!(
                        "texture upload: GL error {err:#x}"
                    )));
                }
                Ok(image)
            }
        })
    }

    fn destroy_image(&self, image: EGLImage) {
        if let Some(d) = self.lib.destroy_image {
            // SAFETY: `image` was created on this display and is destroyed once.
            unsafe { d(self.display.as_ptr(), image) };
        }
    }

    fn target_for(&self, format: DrmFourcc, modifier: u64) -> GLenum {
        let yuv = PixelFormat::from_drm(format).is_some_and(|f| f.is_yuv());
        if yuv || self.external_only.contains(&(format as u32, modifier)) {
            gl::GL_TEXTURE_EXTERNAL_OES
        } else {
            gl::GL_TEXTURE_2D
        }
    }

    /// Read back an import made by this importer.
    pub(crate) fn read_imported(
        &self,
        imp: &EglImported,
        format: DrmFourcc,
        dst: &mut [u8],
        dst_stride: usize,
        out: ReadFormat,
    ) -> Result<()> {
        let (w, h) = imp.size;
        let alpha = PixelFormat::from_drm(format).is_some_and(|f| f.has_alpha());
        let row = w as usize * 4;
        let mut scratch = Vec::new();
        let direct = self.with_context(|gl, st| {
            // Straight into `dst` when GLES 3 (GL_PACK_ROW_LENGTH) is there,
            // the stride is whole pixels, and the driver reads BGRA if asked
            // for (GL_EXT_read_format_bgra); else tightly packed RGBA into a
            // scratch buffer, swizzled below.
            let bgra = has_ext(&st.gl_exts, "GL_EXT_read_format_bgra");
            let direct =
                st.gles3 && dst_stride.is_multiple_of(4) && (out == ReadFormat::Rgba || bgra);
            if direct {
                let fmt = match out {
                    ReadFormat::Rgba => gl::GL_RGBA,
                    ReadFormat::Bgra => gl::GL_BGRA_EXT,
                };
                // SAFETY: our context is current; `dst` holds at least
                // dst_stride*(h-1) + w*4 bytes (checked by the caller), which
                // is what glReadPixels writes with PACK_ROW_LENGTH =
                // dst_stride/4 pixels and PACK_ALIGNMENT 4.
                unsafe { read_into(gl, st, imp, dst, (dst_stride / 4) as GLint, fmt)? };
            } else {
                scratch = vec![0u8; row * h as usize];
                // SAFETY: our context is current; `scratch` holds w*h*4
                // bytes, what a tightly packed RGBA read writes.
                unsafe { read_into(gl, st, imp, &mut scratch, 0, gl::GL_RGBA)? };
            }
            Ok(direct)
        })?;
        if direct {
            if !alpha {
                for y in 0..h as usize {
                    for px in dst[y * dst_stride..y * dst_stride + row].chunks_exact_mut(4) {
                        px[3] = 255;
                    }
                }
            }
        } else {
            for (y, src) in scratch.chunks_exact(row).enumerate() {
                let d = &mut dst[y * dst_stride..y * dst_stride + row];
                cpu::rgba_row_to(src, d, out, !alpha);
            }
        }
        Ok(())
    }

    pub(crate) fn read_pixels(
        &self,
        imp: &EglImported,
        buf: &Dmabuf<BorrowedFd<'_>>,
        dst: &mut [u8],
        dst_stride: usize,
        out: ReadFormat,
    ) -> Result<()> {
        self.read_imported(imp, buf.format, dst, dst_stride, out)
    }

    /// Make a texture of known pixels and export it as a DMA-BUF. Tries, in
    /// order: a `glTexImage2D` texture; an immutable `glTexStorage2D`
    /// texture (GLES 3); the same after rendering to it once (a layout the
    /// driver allocated as a render target). The error names each failure.
    pub(crate) fn export_texture(
        &self,
        width: u32,
        height: u32,
        format: GLenum,
        data: &[u8],
        bpp: usize,
    ) -> Result<Dmabuf<OwnedFd>> {
        if width == 0 || height == 0 || width > 16384 || height > 16384 {
            return Err(Error::InvalidArgument(format!("bad size {width}x{height}")));
        }
        if data.len() != width as usize * height as usize * bpp {
            return Err(Error::InvalidArgument(format!(
                "data holds {} bytes, not {}x{}x{bpp}",
                data.len(),
                width,
                height
            )));
        }
        if self.lib.export_query.is_none() || self.lib.export.is_none() {
            return Err(Error::Unsupported(
                "libEGL lacks EGL_MESA_image_dma_buf_export".into(),
            ));
        }
        if !has_ext(&self.display_exts, "EGL_MESA_image_dma_buf_export")
            || !has_ext(&self.display_exts, "EGL_KHR_gl_texture_2D_image")
        {
            return Err(Error::Unsupported(
                "the display lacks EGL_MESA_image_dma_buf_export or EGL_KHR_gl_texture_2D_image"
                    .into(),
            ));
        }
        let mut errors = Vec::new();
        for strategy in [
            ExportStrategy::Image,
            ExportStrategy::Storage,
            ExportStrategy::StorageRendered,
        ] {
            match self.export_once(strategy, width, height, format, data) {
                Ok(d) => return Ok(d),
                Err(e) => errors.push(format!("{strategy:?}: {e}")),
            }
        }
        Err(Error::ImportFailed(format!(
            "cannot export a GL texture as a DMA-BUF: {}",
            errors.join("; ")
        )))
    }

    fn export_once(
        &self,
        strategy: ExportStrategy,
        width: u32,
        height: u32,
        format: GLenum,
        data: &[u8],
    ) -> Result<Dmabuf<OwnedFd>> {
        let (query, export) = (
            self.lib.export_query.expect("checked"),
            self.lib.export.expect("checked"),
        );
        let internal = match format {
            gl::GL_RED => gl::GL_R8,
            gl::GL_RG => gl::GL_RG8,
            _ => gl::GL_RGBA8,
        };
        let ctx = self.context.ok_or_else(|| {
            Error::Unsupported("this importer has no GL context of its own".into())
        })?;
        let tex_storage: Option<TexStorage2D> =
            self.lib.egl.get_proc_address("glTexStorage2D").map(|f| {
                // SAFETY: glTexStorage2D has this C signature (GLES 3.0).
                unsafe { std::mem::transmute::<extern "system" fn(), TexStorage2D>(f) }
            });
        let tex_sub: Option<TexSubImage2D> =
            self.lib.egl.get_proc_address("glTexSubImage2D").map(|f| {
                // SAFETY: glTexSubImage2D has this C signature (GLES 2.0).
                unsafe { std::mem::transmute::<extern "system" fn(), TexSubImage2D>(f) }
            });
        self.with_context(|gl, st| {
            let mut tex: GLuint = 0;
            // SAFETY: our context is current; `data` holds exactly
            // width*height*bpp bytes (checked) read with UNPACK_ALIGNMENT 1;
            // the texture and image are deleted before returning, and the
            // exported fds are owned by the returned value.
            unsafe {
                gl.take_error();
                (gl.GenTextures)(1, &mut tex);
                (gl.BindTexture)(gl::GL_TEXTURE_2D, tex);
                (gl.TexParameteri)(gl::GL_TEXTURE_2D, gl::GL_TEXTURE_MIN_FILTER, gl::GL_NEAREST);
                (gl.TexParameteri)(gl::GL_TEXTURE_2D, gl::GL_TEXTURE_MAG_FILTER, gl::GL_NEAREST);
                (gl.PixelStorei)(gl::GL_UNPACK_ALIGNMENT, 1);
                let (w, h) = (width as i32, height as i32);
                match strategy {
                    ExportStrategy::Image => (gl.TexImage2D)(
                        gl::GL_TEXTURE_2D, 0, internal as GLint, w, h, 0, format,
                        gl::GL_UNSIGNED_BYTE, data.as_ptr().cast(),
                    ),
                    ExportStrategy::Storage | ExportStrategy::StorageRendered => {
                        let (Some(ts), Some(sub)) = (tex_storage, tex_sub) else {
                            (gl.DeleteTextures)(1, &tex);
                            return Err(Error::Unsupported("no glTexStorage2D".into()));
                        };
                        ts(gl::GL_TEXTURE_2D, 1, internal, w, h);
                        if strategy == ExportStrategy::StorageRendered {
                            if st.fbo == 0 {
                                (gl.GenFramebuffers)(1, &mut st.fbo);
                            }
                            (gl.BindFramebuffer)(gl::GL_FRAMEBUFFER, st.fbo);
                            (gl.FramebufferTexture2D)(gl::GL_FRAMEBUFFER, gl::GL_COLOR_ATTACHMENT0, gl::GL_TEXTURE_2D, tex, 0);
                            let complete = (gl.CheckFramebufferStatus)(gl::GL_FRAMEBUFFER) == gl::GL_FRAMEBUFFER_COMPLETE;
                            (gl.FramebufferTexture2D)(gl::GL_FRAMEBUFFER, gl::GL_COLOR_ATTACHMENT0, gl::GL_TEXTURE_2D, 0, 0);
                            (gl.BindFramebuffer)(gl::GL_FRAMEBUFFER, 0);
                            if !complete {
                                (gl.DeleteTextures)(1, &tex);
                                return Err(Error::Unsupported("texture is not renderable".into()));
                            }
                        }
                        sub(gl::GL_TEXTURE_2D, 0, 0, 0, w, h, format, gl::GL_UNSIGNED_BYTE, data.as_ptr().cast());
                    }
                }
                (gl.BindTexture)(gl::GL_TEXTURE_2D, 0);
                let err = gl.take_error();
                if err != gl::GL_NO_ERROR {
                    (gl.DeleteTextures)(1, &tex);
                    return Err(Error::ImportFailed(format!("uploading the texture: GL error {err:#x}")));
                }
                (gl.Finish)();
                // EGL_IMAGE_PRESERVED_KHR: without it the texture's contents become
                // undefined once the image exists (NVIDIA does drop them).
                let attribs = [EGL_GL_TEXTURE_LEVEL_KHR, 0, EGL_IMAGE_PRESERVED_KHR, 1, EGL_NONE];
                let create = self.lib.create_image.expect("checked at creation");
                let image = create(
                    self.display.as_ptr(),
                    ctx.as_ptr(),
                    EGL_GL_TEXTURE_2D_KHR,
                    tex as usize as *mut c_void,
                    attribs.as_ptr(),
                );
                if image.is_null() {
                    (gl.DeleteTextures)(1, &tex);
                    return Err(Error::ImportFailed(egl_err(
                        self.lib,
                        "eglCreateImageKHR(EGL_GL_TEXTURE_2D_KHR)",
                    )));
                }
                let result = (|| {
                    let (mut fourcc, mut nplanes) = (0i32, 0i32);
                    let mut mods = [0u64; 4];
                    if query(self.display.as_ptr(), image, &mut fourcc, &mut nplanes, std::ptr::null_mut()) == 0 {
                        return Err(Error::ImportFailed(egl_err(self.lib, "eglExportDMABUFImageQueryMESA")));
                    }
                    if !(1..=4).contains(&nplanes) {
                        return Err(Error::ImportFailed(format!("export has {nplanes} planes")));
                    }
                    if query(self.display.as_ptr(), image, &mut fourcc, &mut nplanes, mods.as_mut_ptr()) == 0 {
                        return Err(Error::ImportFailed(egl_err(self.lib, "eglExportDMABUFImageQueryMESA")));
                    }
                    let (mut fds, mut strides, mut offsets) = ([-1i32; 4], [0i32; 4], [0i32; 4]);
                    if export(self.display.as_ptr(), image, fds.as_mut_ptr(), strides.as_mut_ptr(), offsets.as_mut_ptr()) == 0 {
                        return Err(Error::ImportFailed(format!(
                            "{} (query said fourcc {fourcc:#x}, {nplanes} plane(s), modifier {:#x})",
                            egl_err(self.lib, "eglExportDMABUFImageMESA"),
                            mods[0]
                        )));
                    }
                    let format = DrmFourcc::try_from(fourcc as u32).map_err(|_| {
                        Error::ImportFailed(format!("exported unknown fourcc {fourcc:#x}"))
                    })?;
                    let mut planes = Vec::new();
                    let mut last_fd = -1;
                    for i in 0..nplanes as usize {
                        // Planes may share one fd (the spec returns -1 for
                        // planes without their own): dup the last one.
                        let fd = if fds[i] >= 0 {
                            last_fd = fds[i];
                            OwnedFd::from_raw_fd(fds[i])
                        } else if last_fd >= 0 {
                            BorrowedFd::borrow_raw(last_fd).try_clone_to_owned()?
                        } else {
                            return Err(Error::ImportFailed("export gave no fd".into()));
                        };
                        planes.push(DmabufPlane { fd, offset: offsets[i] as u32, stride: strides[i] as u32 });
                    }
                    Ok(Dmabuf { width, height, format, modifier: mods[0], planes })
                })();
                self.destroy_image(image);
                (gl.DeleteTextures)(1, &tex);
                result
            }
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ExportStrategy {
    Image,
    Storage,
    StorageRendered,
}

type TexStorage2D = unsafe extern "system" fn(GLenum, i32, GLenum, i32, i32);
type TexSubImage2D =
    unsafe extern "system" fn(GLenum, GLint, GLint, GLint, i32, i32, GLenum, GLenum, *const c_void);

impl Drop for EglShared {
    fn drop(&mut self) {
        if let Some(ctx) = self.context {
            let _ = self.with_context(|gl, st| {
                // SAFETY: our context is current; these names are ours.
                unsafe {
                    if st.fbo != 0 {
                        (gl.DeleteFramebuffers)(1, &st.fbo);
                    }
                    if st.target_tex != 0 {
                        (gl.DeleteTextures)(1, &st.target_tex);
                    }
                    if st.program != 0 {
                        (gl.DeleteProgram)(st.program);
                    }
                }
                Ok(())
            });
            let _ = self.lib.egl.destroy_context(self.display, ctx);
        }
        // The display is never terminated: it is a process-wide singleton
        // that other code (or the caller) may be using.
    }
}

type DeviceInfo = (usize, *mut c_void, String, String);

/// Devices from eglQueryDevicesEXT, hardware (DRM or CUDA) first, Mesa's
/// software device last.
fn enumerate_devices(lib: &EglLib) -> std::result::Result<Vec<DeviceInfo>, String> {
    let q = lib.query_devices.ok_or("no eglQueryDevicesEXT")?;
    let mut n: EGLint = 0;
    // SAFETY: querying the count with a NULL array is allowed by the spec.
    if unsafe { q(0, std::ptr::null_mut(), &mut n) } == 0 || n <= 0 {
        return Err(format!("eglQueryDevicesEXT found no device ({n})"));
    }
    let mut devs = vec![std::ptr::null_mut(); n as usize];
    // SAFETY: `devs` has room for `n` handles.
    if unsafe { q(n, devs.as_mut_ptr(), &mut n) } == 0 {
        return Err(egl_err(lib, "eglQueryDevicesEXT"));
    }
    devs.truncate(n.max(0) as usize);
    let string = |d: *mut c_void, name: EGLint| -> String {
        let Some(f) = lib.query_device_string else {
            return String::new();
        };
        // SAFETY: `d` is a device handle from eglQueryDevicesEXT.
        let p = unsafe { f(d, name) };
        if p.is_null() {
            String::new()
        } else {
            // SAFETY: non-NULL results are NUL-terminated static strings.
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    };
    let mut out: Vec<DeviceInfo> = devs
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let exts = string(d, EGL_EXTENSIONS);
            let node = if has_ext(&exts, "EGL_EXT_device_drm") {
                string(d, EGL_DRM_DEVICE_FILE_EXT)
            } else {
                String::new()
            };
            let name = if node.is_empty() {
                "no DRM node".into()
            } else {
                node
            };
            (i, d, name, exts)
        })
        .collect();
    out.sort_by_key(|(_, _, _, exts)| {
        if has_ext(exts, "EGL_MESA_device_software") {
            2
        } else if has_ext(exts, "EGL_EXT_device_drm") || has_ext(exts, "EGL_NV_device_cuda") {
            0
        } else {
            1
        }
    });
    Ok(out)
}

type FormatTable = (Vec<(DrmFourcc, Vec<u64>)>, HashSet<(u32, u64)>);

fn query_formats(lib: &EglLib, display: egl::Display, has_modifiers: bool) -> Result<FormatTable> {
    let mut external_only = HashSet::new();
    if !has_modifiers {
        // No way to ask: offer the common 32-bit RGB formats, implicit only.
        let all = [
            DrmFourcc::Xrgb8888,
            DrmFourcc::Argb8888,
            DrmFourcc::Xbgr8888,
            DrmFourcc::Abgr8888,
        ]
        .into_iter()
        .map(|f| (f, vec![DRM_FORMAT_MOD_INVALID]))
        .collect();
        return Ok((filter_formats(all), external_only));
    }
    let qf = lib.query_formats.expect("has_modifiers");
    let qm = lib.query_modifiers.expect("has_modifiers");
    let dpy = display.as_ptr();
    let mut n: EGLint = 0;
    // SAFETY: count query with a NULL array, as the extension allows.
    if unsafe { qf(dpy, 0, std::ptr::null_mut(), &mut n) } == 0 {
        return Err(Error::Unsupported(egl_err(lib, "eglQueryDmaBufFormatsEXT")));
    }
    let mut fourccs = vec![0 as EGLint; n.max(0) as usize];
    // SAFETY: the array holds `n` entries.
    if n > 0 && unsafe { qf(dpy, n, fourccs.as_mut_ptr(), &mut n) } == 0 {
        return Err(Error::Unsupported(egl_err(lib, "eglQueryDmaBufFormatsEXT")));
    }
    fourccs.truncate(n.max(0) as usize);
    let mut all = Vec::new();
    for f in fourccs {
        let Ok(fourcc) = DrmFourcc::try_from(f as u32) else {
            continue;
        };
        if PixelFormat::from_drm(fourcc).is_none() {
            continue;
        }
        let mut m: EGLint = 0;
        // SAFETY: count query with NULL arrays.
        if unsafe {
            qm(
                dpy,
                f,
                0,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &mut m,
            )
        } == 0
        {
            continue;
        }
        if m <= 0 {
            // The format is importable, with implicit modifiers only.
            all.push((fourcc, vec![DRM_FORMAT_MOD_INVALID]));
            continue;
        }
        let mut mods = vec![0u64; m as usize];
        let mut ext = vec![0 as EGLBoolean; m as usize];
        // SAFETY: both arrays hold `m` entries.
        if unsafe { qm(dpy, f, m, mods.as_mut_ptr(), ext.as_mut_ptr(), &mut m) } == 0 {
            continue;
        }
        let m = (m.max(0) as usize).min(mods.len());
        let mut keep = Vec::new();
        for i in 0..m {
            if ext[i] != 0 {
                external_only.insert((fourcc as u32, mods[i]));
            } else {
                keep.push(mods[i]);
            }
        }
        all.push((fourcc, keep));
    }
    Ok((filter_formats(all), external_only))
}

fn create_context(
    lib: &EglLib,
    display: egl::Display,
    exts: &str,
) -> std::result::Result<egl::Context, String> {
    lib.egl
        .bind_api(egl::OPENGL_ES_API)
        .map_err(|e| format!("eglBindAPI(GLES): {e:?}"))?;
    let config = if has_ext(exts, "EGL_KHR_no_config_context") {
        // SAFETY: EGL_NO_CONFIG_KHR (NULL) is valid with EGL_KHR_no_config_context.
        unsafe { egl::Config::from_ptr(std::ptr::null_mut()) }
    } else {
        lib.egl
            .choose_first_config(
                display,
                &[
                    EGL_RENDERABLE_TYPE,
                    EGL_OPENGL_ES2_BIT,
                    EGL_SURFACE_TYPE,
                    0,
                    EGL_NONE,
                ],
            )
            .map_err(|e| format!("eglChooseConfig: {e:?}"))?
            .ok_or("no GLES2 config")?
    };
    lib.egl
        .create_context(
            display,
            config,
            None,
            &[EGL_CONTEXT_CLIENT_VERSION, 2, EGL_NONE],
        )
        .map_err(|e| format!("eglCreateContext(GLES2): {e:?}"))
}

const VS: &CStr = c"attribute vec2 pos;
varying vec2 uv;
void main() { uv = pos * 0.5 + 0.5; gl_Position = vec4(pos, 0.0, 1.0); }
";

const FS: &CStr = c"#extension GL_OES_EGL_image_external : require
#ifdef GL_FRAGMENT_PRECISION_HIGH
precision highp float;
#else
precision mediump float;
#endif
uniform samplerExternalOES tex;
varying vec2 uv;
void main() { gl_FragColor = texture2D(tex, uv); }
";

/// # Safety
/// A context must be current.
unsafe fn compile(gl: &Gl, kind: GLenum, src: &CStr) -> Result<GLuint> {
    // SAFETY: forwarded; `src` is NUL-terminated (length NULL).
    unsafe {
        let s = (gl.CreateShader)(kind);
        let p = src.as_ptr();
        (gl.ShaderSource)(s, 1, &p, std::ptr::null());
        (gl.CompileShader)(s);
        let mut ok: GLint = 0;
        (gl.GetShaderiv)(s, gl::GL_COMPILE_STATUS, &mut ok);
        if ok == 0 {
            let mut log = [0 as c_char; 1024];
            let mut len = 0;
            (gl.GetShaderInfoLog)(s, log.len() as i32, &mut len, log.as_mut_ptr());
            (gl.DeleteShader)(s);
            let msg = CStr::from_ptr(log.as_ptr()).to_string_lossy().into_owned();
            return Err(Error::Unsupported(format!("shader compile failed: {msg}")));
        }
        Ok(s)
    }
}

/// # Safety
/// Our context must be current, `rgba` must hold width*height*4 bytes.
unsafe fn read_into(
    gl: &Gl,
    st: &mut GlState,
    imp: &EglImported,
    out: &mut [u8],
    row_length: GLint,
    format: GLenum,
) -> Result<()> {
    let (w, h) = imp.size;
    // SAFETY: forwarded from the caller: our context is current and `rgba`
    // is large enough for the read.
    unsafe {
        gl.take_error();
        if st.fbo == 0 {
            (gl.GenFramebuffers)(1, &mut st.fbo);
        }
        (gl.BindFramebuffer)(gl::GL_FRAMEBUFFER, st.fbo);
        (gl.PixelStorei)(gl::GL_PACK_ALIGNMENT, 4);
        let mut tex: GLuint = 0;
        (gl.GenTextures)(1, &mut tex);
        let result = (|| {
            let mut direct = imp.target == gl::GL_TEXTURE_2D;
            if direct {
                (gl.BindTexture)(gl::GL_TEXTURE_2D, tex);
                (gl.EGLImageTargetTexture2DOES)(gl::GL_TEXTURE_2D, imp.image);
                let err = gl.take_error();
                if err != gl::GL_NO_ERROR {
                    return Err(Error::ImportFailed(format!(
                        "glEGLImageTargetTexture2DOES(GL_TEXTURE_2D): error {err:#x}"
                    )));
                }
                (gl.FramebufferTexture2D)(
                    gl::GL_FRAMEBUFFER,
                    gl::GL_COLOR_ATTACHMENT0,
                    gl::GL_TEXTURE_2D,
                    tex,
                    0,
                );
                direct =
                    (gl.CheckFramebufferStatus)(gl::GL_FRAMEBUFFER) == gl::GL_FRAMEBUFFER_COMPLETE;
                if !direct {
                    // Not renderable: sample it through an external texture.
                    (gl.DeleteTextures)(1, &tex);
                    (gl.GenTextures)(1, &mut tex);
                }
            }
            if !direct {
                draw_external(gl, st, imp, tex)?;
            }
            if row_length != 0 {
                // GLES 3 only (the caller checked).
                (gl.PixelStorei)(gl::GL_PACK_ROW_LENGTH, row_length);
            }
            (gl.ReadPixels)(
                0,
                0,
                w as i32,
                h as i32,
                format,
                gl::GL_UNSIGNED_BYTE,
                out.as_mut_ptr().cast(),
            );
            if row_length != 0 {
                (gl.PixelStorei)(gl::GL_PACK_ROW_LENGTH, 0);
            }
            let err = gl.take_error();
            if err != gl::GL_NO_ERROR {
                return Err(Error::ImportFailed(format!("glReadPixels: error {err:#x}")));
            }
            Ok(())
        })();
        (gl.FramebufferTexture2D)(
            gl::GL_FRAMEBUFFER,
            gl::GL_COLOR_ATTACHMENT0,
            gl::GL_TEXTURE_2D,
            0,
            0,
        );
        (gl.BindFramebuffer)(gl::GL_FRAMEBUFFER, 0);
        (gl.BindTexture)(gl::GL_TEXTURE_2D, 0);
        (gl.BindTexture)(gl::GL_TEXTURE_EXTERNAL_OES, 0);
        (gl.DeleteTextures)(1, &tex);
        result
    }
}

/// Draw the image, bound to `tex` as an external texture, into our RGBA8
/// render target (attached to the bound FBO).
///
/// # Safety
/// Our context must be current with `st.fbo` bound.
unsafe fn draw_external(gl: &Gl, st: &mut GlState, imp: &EglImported, tex: GLuint) -> Result<()> {
    let (w, h) = imp.size;
    // SAFETY: forwarded from the caller (context current, FBO bound).
    unsafe {
        if !has_ext(&st.gl_exts, "GL_OES_EGL_image_external") {
            return Err(Error::Unsupported(
                "the GL context lacks GL_OES_EGL_image_external (needed for YUV and external-only buffers)".into(),
            ));
        }
        (gl.BindTexture)(gl::GL_TEXTURE_EXTERNAL_OES, tex);
        (gl.EGLImageTargetTexture2DOES)(gl::GL_TEXTURE_EXTERNAL_OES, imp.image);
        let err = gl.take_error();
        if err != gl::GL_NO_ERROR {
            return Err(Error::ImportFailed(format!(
                "glEGLImageTargetTexture2DOES(GL_TEXTURE_EXTERNAL_OES): error {err:#x}"
            )));
        }
        (gl.TexParameteri)(
            gl::GL_TEXTURE_EXTERNAL_OES,
            gl::GL_TEXTURE_MIN_FILTER,
            gl::GL_NEAREST,
        );
        (gl.TexParameteri)(
            gl::GL_TEXTURE_EXTERNAL_OES,
            gl::GL_TEXTURE_MAG_FILTER,
            gl::GL_NEAREST,
        );
        if st.target_tex == 0 || st.target_size != (w, h) {
            if st.target_tex != 0 {
                (gl.DeleteTextures)(1, &st.target_tex);
            }
            (gl.GenTextures)(1, &mut st.target_tex);
            (gl.BindTexture)(gl::GL_TEXTURE_2D, st.target_tex);
            (gl.TexImage2D)(
                gl::GL_TEXTURE_2D,
                0,
                gl::GL_RGBA8 as GLint,
                w as i32,
                h as i32,
                0,
                gl::GL_RGBA,
                gl::GL_UNSIGNED_BYTE,
                std::ptr::null(),
            );
            (gl.BindTexture)(gl::GL_TEXTURE_2D, 0);
            st.target_size = (w, h);
        }
        (gl.FramebufferTexture2D)(
            gl::GL_FRAMEBUFFER,
            gl::GL_COLOR_ATTACHMENT0,
            gl::GL_TEXTURE_2D,
            st.target_tex,
            0,
        );
        if (gl.CheckFramebufferStatus)(gl::GL_FRAMEBUFFER) != gl::GL_FRAMEBUFFER_COMPLETE {
            return Err(Error::ImportFailed(
                "RGBA8 render target is incomplete".into(),
            ));
        }
        if st.program == 0 {
            let vs = compile(gl, gl::GL_VERTEX_SHADER, VS)?;
            let fs = match compile(gl, gl::GL_FRAGMENT_SHADER, FS) {
                Ok(f) => f,
                Err(e) => {
                    (gl.DeleteShader)(vs);
                    return Err(e);
                }
            };
            let p = (gl.CreateProgram)();
            (gl.AttachShader)(p, vs);
            (gl.AttachShader)(p, fs);
            (gl.BindAttribLocation)(p, 0, c"pos".as_ptr());
            (gl.LinkProgram)(p);
            (gl.DeleteShader)(vs);
            (gl.DeleteShader)(fs);
            let mut ok = 0;
            (gl.GetProgramiv)(p, gl::GL_LINK_STATUS, &mut ok);
            if ok == 0 {
                let mut log = [0 as c_char; 1024];
                let mut len = 0;
                (gl.GetProgramInfoLog)(p, log.len() as i32, &mut len, log.as_mut_ptr());
                (gl.DeleteProgram)(p);
                let msg = CStr::from_ptr(log.as_ptr()).to_string_lossy().into_owned();
                return Err(Error::Unsupported(format!("program link failed: {msg}")));
            }
            st.program = p;
        }
        static QUAD: [f32; 8] = [-1.0, -1.0, 1.0, -1.0, -1.0, 1.0, 1.0, 1.0];
        (gl.UseProgram)(st.program);
        (gl.ActiveTexture)(gl::GL_TEXTURE0);
        (gl.BindTexture)(gl::GL_TEXTURE_EXTERNAL_OES, tex);
        (gl.Uniform1i)((gl.GetUniformLocation)(st.program, c"tex".as_ptr()), 0);
        (gl.Disable)(gl::GL_BLEND);
        (gl.Disable)(gl::GL_SCISSOR_TEST);
        (gl.Viewport)(0, 0, w as i32, h as i32);
        (gl.EnableVertexAttribArray)(0);
        (gl.VertexAttribPointer)(0, 2, gl::GL_FLOAT, 0, 0, QUAD.as_ptr().cast());
        (gl.DrawArrays)(gl::GL_TRIANGLE_STRIP, 0, 4);
        (gl.UseProgram)(0);
        let err = gl.take_error();
        if err != gl::GL_NO_ERROR {
            return Err(Error::ImportFailed(format!(
                "drawing the external texture: error {err:#x}"
            )));
        }
        Ok(())
    }
}

struct TexEntry {
    tex: GLuint,
    context: egl::Context,
}

/// An `EGLImage` of a DMA-BUF and, once asked for, its GL texture.
pub(crate) struct EglImported {
    shared: Arc<EglShared>,
    image: EGLImage,
    target: GLenum,
    size: (u32, u32),
    texture: Mutex<Option<TexEntry>>,
}

// SAFETY: the EGLImage is a process-wide handle; the texture entry is under
// a mutex and only deleted with its context current (see Drop).
unsafe impl Send for EglImported {}
// SAFETY: as above.
unsafe impl Sync for EglImported {}

impl EglImported {
    pub(crate) fn new(shared: &Arc<EglShared>, buf: &Dmabuf<BorrowedFd<'_>>) -> Result<Self> {
        let image = shared.create_image(buf)?;
        Ok(EglImported {
            shared: shared.clone(),
            image,
            target: shared.target_for(buf.format, buf.modifier),
            size: (buf.width, buf.height),
            texture: Mutex::new(None),
        })
    }

    /// Wrap an image of ours (from [`EglShared::image_from_rgba`]).
    pub(crate) fn from_image(
        shared: &Arc<EglShared>,
        image: EGLImage,
        size: (u32, u32),
        external: bool,
    ) -> Self {
        EglImported {
            shared: shared.clone(),
            image,
            target: if external {
                gl::GL_TEXTURE_EXTERNAL_OES
            } else {
                gl::GL_TEXTURE_2D
            },
            size,
            texture: Mutex::new(None),
        }
    }

    pub(crate) fn shared(&self) -> &Arc<EglShared> {
        &self.shared
    }

    pub(crate) fn image_ptr(&self) -> *mut c_void {
        self.image
    }

    pub(crate) fn target(&self) -> GLenum {
        self.target
    }

    pub(crate) fn gl_texture(&self) -> Result<u32> {
        let mut slot = self.texture.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = slot.as_ref() {
            return Ok(t.tex);
        }
        let s = &self.shared;
        let current = s.lib.egl.get_current_context();
        let make = |gl: &Gl| -> Result<GLuint> {
            let binding = if self.target == gl::GL_TEXTURE_2D {
                gl::GL_TEXTURE_BINDING_2D
            } else {
                gl::GL_TEXTURE_BINDING_EXTERNAL_OES
            };
            // SAFETY: a context of this display is current on this thread
            // (checked by the callers below); the previous binding is restored.
            unsafe {
                gl.take_error();
                let mut prev: GLint = 0;
                (gl.GetIntegerv)(binding, &mut prev);
                let mut tex = 0;
                (gl.GenTextures)(1, &mut tex);
                (gl.BindTexture)(self.target, tex);
                (gl.TexParameteri)(self.target, gl::GL_TEXTURE_MIN_FILTER, gl::GL_NEAREST);
                (gl.TexParameteri)(self.target, gl::GL_TEXTURE_MAG_FILTER, gl::GL_NEAREST);
                (gl.TexParameteri)(self.target, gl::GL_TEXTURE_WRAP_S, gl::GL_CLAMP_TO_EDGE);
                (gl.TexParameteri)(self.target, gl::GL_TEXTURE_WRAP_T, gl::GL_CLAMP_TO_EDGE);
                (gl.EGLImageTargetTexture2DOES)(self.target, self.image);
                let err = gl.take_error();
                (gl.BindTexture)(self.target, prev as GLuint);
                if err != gl::GL_NO_ERROR {
                    (gl.DeleteTextures)(1, &tex);
                    return Err(Error::ImportFailed(format!(
                        "glEGLImageTargetTexture2DOES({:#x}): error {err:#x}",
                        self.target
                    )));
                }
                Ok(tex)
            }
        };
        let entry = match current {
            Some(c) if Some(c) != s.context => {
                if s.lib.egl.get_current_display() != Some(s.display) {
                    return Err(Error::InvalidState(
                        "the current EGL context belongs to another display".into(),
                    ));
                }
                let gl = load_gl(s.lib)?;
                TexEntry {
                    tex: make(gl)?,
                    context: c,
                }
            }
            _ => {
                let ctx = s.context.ok_or_else(|| {
                    Error::InvalidState(
                        "no EGL context is current and the importer has none of its own".into(),
                    )
                })?;
                TexEntry {
                    tex: s.with_context(|gl, _| make(gl))?,
                    context: ctx,
                }
            }
        };
        let tex = entry.tex;
        *slot = Some(entry);
        Ok(tex)
    }
}

impl Drop for EglImported {
    fn drop(&mut self) {
        let s = &self.shared;
        if let Some(t) = self.texture.get_mut().ok().and_then(|t| t.take()) {
            if Some(t.context) == s.context {
                let _ = s.with_context(|gl, _| {
                    // SAFETY: our context is current and the name is ours.
                    unsafe { (gl.DeleteTextures)(1, &t.tex) };
                    Ok(())
                });
            } else if s.lib.egl.get_current_context() == Some(t.context) {
                if let Ok(gl) = load_gl(s.lib) {
                    // SAFETY: the texture's context is current on this thread.
                    unsafe { (gl.DeleteTextures)(1, &t.tex) };
                }
            } else {
                eprintln!(
                    "wrd-capture: GL texture {} leaked: its EGL context is not current on the thread that released the import",
                    t.tex
                );
            }
        }
        s.destroy_image(self.image);
    }
}
