/* Frames into GL textures through EGL, the way a compositor or a GL
 * renderer would take them.
 *
 *   cc egl-import.c $(pkg-config --cflags --libs wrd-capture egl glesv2) -o egl-import
 *   egl-import NODE_ID [FRAMES]
 *
 * It opens an EGL display of its own (Mesa's surfaceless platform when
 * there is one, else the default display) with a GLES 2 context, and makes
 * a wrd_importer on that display (wrd_importer_new_egl). The importer goes
 * into the stream config (cfg.importer): the stream then offers the
 * DMA-BUF formats and modifiers the display can import, with shared memory
 * as the fallback per format, and imports each new buffer once. Per frame:
 *
 *   - DMA-BUF frames: wrd_frame_get_imported + wrd_imported_gl_texture:
 *     the texture samples the producer's buffer, no copy;
 *   - SHM frames (the fallback: producers without DMA-BUF, displays
 *     without EGL_EXT_image_dma_buf_import): wrd_frame_convert to RGBA,
 *     then glTexImage2D.
 *
 * Each texture is read back through a framebuffer (glReadPixels) and, for
 * SHM frames, compared with the RGBA it was made from.
 *
 * Exit status: 0 when FRAMES frames (default 5) went into textures; 1 on a
 * capture or GL error; 2 usage; 3 "no EGL device": no EGL display or GLES
 * context could be made on this machine (nothing was captured). */
#include <wrd_capture.h>

#include <EGL/egl.h>
#include <EGL/eglext.h>
#include <GLES2/gl2.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_NO_EGL 3

static EGLDisplay open_display(void) {
    const char *exts = eglQueryString(EGL_NO_DISPLAY, EGL_EXTENSIONS);
    PFNEGLGETPLATFORMDISPLAYEXTPROC get_platform_display =
        (PFNEGLGETPLATFORMDISPLAYEXTPROC)eglGetProcAddress("eglGetPlatformDisplayEXT");
    EGLDisplay dpy = EGL_NO_DISPLAY;
    EGLint major, minor;
    if (get_platform_display && exts && strstr(exts, "EGL_MESA_platform_surfaceless")) {
        dpy = get_platform_display(EGL_PLATFORM_SURFACELESS_MESA, EGL_DEFAULT_DISPLAY, NULL);
        if (dpy != EGL_NO_DISPLAY && eglInitialize(dpy, &major, &minor)) return dpy;
    }
    dpy = eglGetDisplay(EGL_DEFAULT_DISPLAY);
    if (dpy != EGL_NO_DISPLAY && eglInitialize(dpy, &major, &minor)) return dpy;
    return EGL_NO_DISPLAY;
}

/* A GLES 2 context made current without a window: surfaceless when the
 * display allows, else on a 1x1 pbuffer. */
static int make_context(EGLDisplay dpy) {
    if (!eglBindAPI(EGL_OPENGL_ES_API)) return -1;
    const EGLint cfg_attr[] = {EGL_RENDERABLE_TYPE, EGL_OPENGL_ES2_BIT, EGL_SURFACE_TYPE,
                               EGL_PBUFFER_BIT, EGL_NONE};
    EGLConfig cfg;
    EGLint n = 0;
    if (!eglChooseConfig(dpy, cfg_attr, &cfg, 1, &n) || n < 1) return -1;
    const EGLint ctx_attr[] = {EGL_CONTEXT_CLIENT_VERSION, 2, EGL_NONE};
    EGLContext ctx = eglCreateContext(dpy, cfg, EGL_NO_CONTEXT, ctx_attr);
    if (ctx == EGL_NO_CONTEXT) return -1;
    const char *exts = eglQueryString(dpy, EGL_EXTENSIONS);
    EGLSurface surf = EGL_NO_SURFACE;
    if (!exts || !strstr(exts, "EGL_KHR_surfaceless_context")) {
        const EGLint pb[] = {EGL_WIDTH, 1, EGL_HEIGHT, 1, EGL_NONE};
        surf = eglCreatePbufferSurface(dpy, cfg, pb);
        if (surf == EGL_NO_SURFACE) return -1;
    }
    return eglMakeCurrent(dpy, surf, surf, ctx) ? 0 : -1;
}

/* Read a 2D texture back as RGBA through a framebuffer. */
static int read_texture(GLuint tex, uint32_t w, uint32_t h, uint8_t *out) {
    GLuint fb;
    glGenFramebuffers(1, &fb);
    glBindFramebuffer(GL_FRAMEBUFFER, fb);
    glFramebufferTexture2D(GL_FRAMEBUFFER, GL_COLOR_ATTACHMENT0, GL_TEXTURE_2D, tex, 0);
    int ok = glCheckFramebufferStatus(GL_FRAMEBUFFER) == GL_FRAMEBUFFER_COMPLETE;
    if (ok) {
        glPixelStorei(GL_PACK_ALIGNMENT, 1);
        glReadPixels(0, 0, (GLsizei)w, (GLsizei)h, GL_RGBA, GL_UNSIGNED_BYTE, out);
        ok = glGetError() == GL_NO_ERROR;
    }
    glBindFramebuffer(GL_FRAMEBUFFER, 0);
    glDeleteFramebuffers(1, &fb);
    return ok ? 0 : -1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s NODE_ID [FRAMES]\n", argv[0]);
        return 2;
    }
    uint32_t node = (uint32_t)strtoul(argv[1], NULL, 10);
    int want = argc > 2 ? atoi(argv[2]) : 5;

    EGLDisplay dpy = open_display();
    if (dpy == EGL_NO_DISPLAY) {
        fprintf(stderr, "egl-import: no EGL device: no EGL display could be initialised "
                        "(eglInitialize failed; error 0x%x)\n", eglGetError());
        return EXIT_NO_EGL;
    }
    if (make_context(dpy) != 0) {
        fprintf(stderr, "egl-import: no EGL device: no GLES 2 context on the display "
                        "(error 0x%x)\n", eglGetError());
        eglTerminate(dpy);
        return EXIT_NO_EGL;
    }
    printf("EGL %s, GL %s\n", eglQueryString(dpy, EGL_VENDOR),
           (const char *)glGetString(GL_RENDERER));

    wrd_importer *imp = NULL;
    wrd_status st = wrd_importer_new_egl(dpy, &imp);
    if (st != WRD_OK) {
        printf("no DMA-BUF import on this display (%s): the stream negotiates shared "
               "memory, frames go through glTexImage2D\n", wrd_status_message(st));
        imp = NULL;
    }

    wrd_capture *cap;
    st = wrd_capture_new(-1, NULL, &cap);
    if (st != WRD_OK) {
        fprintf(stderr, "egl-import: cannot connect: %s\n", wrd_status_message(st));
        return 1;
    }
    wrd_stream_config cfg;
    wrd_stream_config_init(&cfg);
    cfg.pull_frames = 1;
    cfg.pull_events = 1;
    cfg.importer = imp; /* DMA-BUF first when the display can import it; NULL: SHM */
    wrd_stream *s;
    st = wrd_stream_add(cap, node, &cfg, &s);
    if (st != WRD_OK) {
        fprintf(stderr, "egl-import: stream: %s\n", wrd_status_message(st));
        return 1;
    }
    struct pollfd pfd = {.events = POLLIN};
    wrd_stream_get_fd(s, &pfd.fd);

    int done = 0, shm = 0, dmabuf = 0, status = 0;
    uint8_t *rgba = NULL, *back = NULL;
    while (done < want && !status) {
        if (poll(&pfd, 1, 10000) <= 0) {
            fprintf(stderr, "egl-import: no frame for 10 s\n");
            status = 1;
            break;
        }
        wrd_event ev;
        while (wrd_stream_next_event(s, &ev) == WRD_OK) {
            if (ev.kind == WRD_EVENT_ERROR || ev.kind == WRD_EVENT_NODE_GONE) {
                fprintf(stderr, "egl-import: %s\n",
                        ev.kind == WRD_EVENT_ERROR ? ev.message : "the node went away");
                status = 1;
            }
        }
        wrd_frame *f;
        if (status || wrd_stream_pull(s, &f) != WRD_OK) continue;
        wrd_frame_info fi;
        wrd_frame_get_info(f, &fi);
        if (fi.n_planes == 0) { /* cursor-only update */
            wrd_frame_release(f);
            continue;
        }
        size_t len = (size_t)fi.width * fi.height * 4;
        rgba = realloc(rgba, len);
        back = realloc(back, len);
        if (fi.buffer_type == WRD_BUFFER_DMABUF) {
            if (!imp) {
                wrd_frame_release(f);
                continue;
            }
            wrd_imported *im = NULL;
            uint32_t tex = 0, target = 0;
            /* The stream imported the buffer once; this is a new reference. */
            st = wrd_frame_get_imported(f, &im);
            if (st == WRD_OK) st = wrd_imported_gl_texture(im, &tex, &target);
            if (st != WRD_OK) {
                fprintf(stderr, "egl-import: import: %s\n", wrd_status_message(st));
                status = 1;
            } else {
                printf("frame %llu: dmabuf -> texture %u (target 0x%x), no copy\n",
                       (unsigned long long)fi.sequence, tex, target);
                /* ... draw with it here; the texture belongs to the import ... */
                dmabuf++;
                done++;
            }
            /* Our reference; the import lives on while the stream's buffer does. */
            wrd_imported_release(im);
        } else {
            st = wrd_frame_convert(f, WRD_FORMAT_RGBA, rgba, len, (size_t)fi.width * 4, 0, 1);
            if (st != WRD_OK) {
                fprintf(stderr, "egl-import: convert: %s\n", wrd_status_message(st));
                status = 1;
            } else {
                GLuint tex;
                glGenTextures(1, &tex);
                glBindTexture(GL_TEXTURE_2D, tex);
                glPixelStorei(GL_UNPACK_ALIGNMENT, 1);
                glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA, (GLsizei)fi.width, (GLsizei)fi.height, 0,
                             GL_RGBA, GL_UNSIGNED_BYTE, rgba);
                glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_NEAREST);
                if (read_texture(tex, fi.width, fi.height, back) != 0 || memcmp(rgba, back, len)) {
                    fprintf(stderr, "egl-import: frame %llu: the texture does not read back\n",
                            (unsigned long long)fi.sequence);
                    status = 1;
                } else {
                    printf("frame %llu: shm %ux%u -> glTexImage2D texture %u, read back equal\n",
                           (unsigned long long)fi.sequence, fi.width, fi.height, tex);
                    shm++;
                    done++;
                }
                glDeleteTextures(1, &tex);
            }
        }
        wrd_frame_release(f);
    }
    if (!status)
        printf("ok %d frames in GL textures (%d shm uploads, %d dma-buf imports)\n", done, shm,
               dmabuf);
    free(rgba);
    free(back);
    wrd_stream_remove(s);
    wrd_capture_destroy(cap);
    wrd_importer_destroy(imp);
    eglMakeCurrent(dpy, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT);
    eglTerminate(dpy);
    return status;
}
