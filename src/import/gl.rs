//! The few GL / GLES entry points the EGL importer uses, loaded through
//! `eglGetProcAddress` (with libGLESv2 as a fallback for drivers that only
//! return extension functions there).

#![allow(non_snake_case)]

use std::ffi::{c_char, c_void, CStr};

pub type GLenum = u32;
pub type GLuint = u32;
pub type GLint = i32;
pub type GLsizei = i32;
pub type GLboolean = u8;

pub(crate) const GL_NO_ERROR: GLenum = 0;
pub(crate) const GL_TEXTURE_2D: GLenum = 0x0DE1;
pub(crate) const GL_TEXTURE_EXTERNAL_OES: GLenum = 0x8D65;
pub(crate) const GL_TEXTURE_BINDING_2D: GLenum = 0x8069;
pub(crate) const GL_TEXTURE_BINDING_EXTERNAL_OES: GLenum = 0x8D67;
pub(crate) const GL_TEXTURE_MIN_FILTER: GLenum = 0x2801;
pub(crate) const GL_TEXTURE_MAG_FILTER: GLenum = 0x2800;
pub(crate) const GL_TEXTURE_WRAP_S: GLenum = 0x2802;
pub(crate) const GL_TEXTURE_WRAP_T: GLenum = 0x2803;
pub(crate) const GL_NEAREST: GLint = 0x2600;
pub(crate) const GL_CLAMP_TO_EDGE: GLint = 0x812F;
pub(crate) const GL_FRAMEBUFFER: GLenum = 0x8D40;
pub(crate) const GL_COLOR_ATTACHMENT0: GLenum = 0x8CE0;
pub(crate) const GL_FRAMEBUFFER_COMPLETE: GLenum = 0x8CD5;
pub(crate) const GL_RGBA: GLenum = 0x1908;
pub(crate) const GL_RED: GLenum = 0x1903;
pub(crate) const GL_RG: GLenum = 0x8227;
pub(crate) const GL_R8: GLenum = 0x8229;
pub(crate) const GL_RG8: GLenum = 0x822B;
pub(crate) const GL_RGBA8: GLenum = 0x8058;
pub(crate) const GL_UNSIGNED_BYTE: GLenum = 0x1401;
pub(crate) const GL_FLOAT: GLenum = 0x1406;
pub(crate) const GL_PACK_ALIGNMENT: GLenum = 0x0D05;
pub(crate) const GL_PACK_ROW_LENGTH: GLenum = 0x0D02;
pub(crate) const GL_BGRA_EXT: GLenum = 0x80E1;
pub(crate) const GL_UNPACK_ALIGNMENT: GLenum = 0x0CF5;
pub(crate) const GL_FRAGMENT_SHADER: GLenum = 0x8B30;
pub(crate) const GL_VERTEX_SHADER: GLenum = 0x8B31;
pub(crate) const GL_COMPILE_STATUS: GLenum = 0x8B81;
pub(crate) const GL_LINK_STATUS: GLenum = 0x8B82;
pub(crate) const GL_TRIANGLE_STRIP: GLenum = 0x0005;
pub(crate) const GL_TEXTURE0: GLenum = 0x84C0;
pub(crate) const GL_RENDERER: GLenum = 0x1F01;
pub(crate) const GL_VERSION: GLenum = 0x1F02;
pub(crate) const GL_EXTENSIONS: GLenum = 0x1F03;
pub(crate) const GL_BLEND: GLenum = 0x0BE2;
pub(crate) const GL_SCISSOR_TEST: GLenum = 0x0C11;

macro_rules! gl_table {
    ($( $name:ident : fn($($arg:ty),*) $(-> $ret:ty)? ;)*) => {
        /// Function pointers of the GL entry points we call.
        #[derive(Clone, Copy)]
        pub struct Gl {
            $( pub $name: unsafe extern "system" fn($($arg),*) $(-> $ret)?, )*
        }

        impl Gl {
            /// Load every entry point with `lookup` ("gl" + name); `Err`
            /// names the first one missing.
            pub fn load(mut lookup: impl FnMut(&CStr) -> *const c_void) -> Result<Gl, String> {
                Ok(Gl {
                    $( $name: {
                        let cname = concat!("gl", stringify!($name), "\0");
                        let cstr = CStr::from_bytes_with_nul(cname.as_bytes()).expect("nul-terminated");
                        let p = lookup(cstr);
                        if p.is_null() {
                            return Err(cname.trim_end_matches('\0').to_string());
                        }
                        // SAFETY: `p` is the non-NULL address the GL library
                        // gave for this entry point, whose C signature the
                        // table states.
                        unsafe { std::mem::transmute::<*const c_void, unsafe extern "system" fn($($arg),*) $(-> $ret)?>(p) }
                    }, )*
                })
            }
        }
    };
}

gl_table! {
    GetError: fn() -> GLenum;
    GetString: fn(GLenum) -> *const u8;
    GetIntegerv: fn(GLenum, *mut GLint);
    GenTextures: fn(GLsizei, *mut GLuint);
    DeleteTextures: fn(GLsizei, *const GLuint);
    BindTexture: fn(GLenum, GLuint);
    TexParameteri: fn(GLenum, GLenum, GLint);
    TexImage2D: fn(GLenum, GLint, GLint, GLsizei, GLsizei, GLint, GLenum, GLenum, *const c_void);
    ActiveTexture: fn(GLenum);
    EGLImageTargetTexture2DOES: fn(GLenum, *const c_void);
    GenFramebuffers: fn(GLsizei, *mut GLuint);
    DeleteFramebuffers: fn(GLsizei, *const GLuint);
    BindFramebuffer: fn(GLenum, GLuint);
    FramebufferTexture2D: fn(GLenum, GLenum, GLenum, GLuint, GLint);
    CheckFramebufferStatus: fn(GLenum) -> GLenum;
    ReadPixels: fn(GLint, GLint, GLsizei, GLsizei, GLenum, GLenum, *mut c_void);
    PixelStorei: fn(GLenum, GLint);
    Viewport: fn(GLint, GLint, GLsizei, GLsizei);
    Disable: fn(GLenum);
    Finish: fn();
    CreateShader: fn(GLenum) -> GLuint;
    ShaderSource: fn(GLuint, GLsizei, *const *const c_char, *const GLint);
    CompileShader: fn(GLuint);
    GetShaderiv: fn(GLuint, GLenum, *mut GLint);
    GetShaderInfoLog: fn(GLuint, GLsizei, *mut GLsizei, *mut c_char);
    DeleteShader: fn(GLuint);
    CreateProgram: fn() -> GLuint;
    AttachShader: fn(GLuint, GLuint);
    BindAttribLocation: fn(GLuint, GLuint, *const c_char);
    LinkProgram: fn(GLuint);
    GetProgramiv: fn(GLuint, GLenum, *mut GLint);
    GetProgramInfoLog: fn(GLuint, GLsizei, *mut GLsizei, *mut c_char);
    UseProgram: fn(GLuint);
    DeleteProgram: fn(GLuint);
    GetUniformLocation: fn(GLuint, *const c_char) -> GLint;
    Uniform1i: fn(GLint, GLint);
    EnableVertexAttribArray: fn(GLuint);
    VertexAttribPointer: fn(GLuint, GLint, GLenum, GLboolean, GLsizei, *const c_void);
    DrawArrays: fn(GLenum, GLint, GLsizei);
}

impl Gl {
    /// A GL string (`GL_RENDERER`, ...), or "" when NULL.
    ///
    /// # Safety
    /// A context must be current on this thread.
    pub unsafe fn string(&self, name: GLenum) -> String {
        // SAFETY: forwarded; glGetString returns NULL or a static string.
        let p = unsafe { (self.GetString)(name) };
        if p.is_null() {
            return String::new();
        }
        // SAFETY: non-NULL glGetString results are NUL-terminated.
        unsafe { CStr::from_ptr(p.cast()) }
            .to_string_lossy()
            .into_owned()
    }

    /// Drain the GL error queue, returning the first error (0 when none).
    ///
    /// # Safety
    /// A context must be current on this thread.
    pub unsafe fn take_error(&self) -> GLenum {
        let mut first = GL_NO_ERROR;
        for _ in 0..16 {
            // SAFETY: forwarded.
            let e = unsafe { (self.GetError)() };
            if e == GL_NO_ERROR {
                break;
            }
            if first == GL_NO_ERROR {
                first = e;
            }
        }
        first
    }
}
