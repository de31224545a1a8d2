/* Capture frames through the callback API and compare every row of every
 * plane with a reference file (GStreamer's default layout: rows padded to 4
 * bytes), as written by `videotestsrc num-buffers=1 ! filesink`.
 *
 * usage: capture_check NODE_ID REFERENCE_FILE FORMAT WIDTH HEIGHT FRAMES
 * FORMAT is a WRD_FORMAT_* number. The daemon is the default one (env). */
#include <wrd_capture.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct ctx {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    const unsigned char *ref;
    size_t ref_len;
    uint32_t format, width, height;
    int frames, bad, errors;
    uint64_t last_seq;
    char why[256];
};

static size_t round4(size_t v) { return (v + 3) & ~(size_t)3; }

/* Row bytes and rows of plane p, and the reference stride. */
static int plane_geom(uint32_t fmt, uint32_t w, uint32_t h, int p, size_t *row, size_t *rows) {
    size_t hw = (w + 1) / 2, hh = (h + 1) / 2;
    switch (fmt) {
    case WRD_FORMAT_BGRX: case WRD_FORMAT_BGRA: case WRD_FORMAT_RGBX: case WRD_FORMAT_RGBA:
        if (p) { return 0; }
        *row = (size_t)w * 4; *rows = h; return 1;
    case WRD_FORMAT_RGB: case WRD_FORMAT_BGR:
        if (p) { return 0; }
        *row = (size_t)w * 3; *rows = h; return 1;
    case WRD_FORMAT_GRAY8:
        if (p) { return 0; }
        *row = w; *rows = h; return 1;
    case WRD_FORMAT_YUY2:
        if (p) { return 0; }
        *row = hw * 4; *rows = h; return 1;
    case WRD_FORMAT_NV12:
        if (p == 0) { *row = w; *rows = h; return 1; }
        if (p == 1) { *row = hw * 2; *rows = hh; return 1; }
        return 0;
    case WRD_FORMAT_I420:
        if (p == 0) { *row = w; *rows = h; return 1; }
        if (p <= 2) { *row = hw; *rows = hh; return 1; }
        return 0;
    }
    return 0;
}

static void on_frame(void *ud, const wrd_frame *frame) {
    struct ctx *c = ud;
    wrd_frame_info fi;
    if (wrd_frame_get_info(frame, &fi) != WRD_OK) { c->errors++; return; }
    pthread_mutex_lock(&c->lock);
    if (fi.format != c->format || fi.width != c->width || fi.height != c->height) {
        snprintf(c->why, sizeof c->why, "got format %u %ux%u", fi.format, fi.width, fi.height);
        c->bad++;
    } else if (c->frames > 0 && fi.sequence <= c->last_seq) {
        snprintf(c->why, sizeof c->why, "sequence %llu after %llu",
                 (unsigned long long)fi.sequence, (unsigned long long)c->last_seq);
        c->bad++;
    } else {
        size_t off = 0;
        for (int p = 0; p < (int)fi.n_planes; p++) {
            size_t row, rows;
            if (!plane_geom(fi.format, fi.width, fi.height, p, &row, &rows)) { c->bad++; break; }
            size_t rstride = round4(row);
            if (fi.planes[p].data == NULL || fi.planes[p].size < fi.planes[p].stride * (rows - 1) + row) {
                snprintf(c->why, sizeof c->why, "plane %d too small", p);
                c->bad++;
                break;
            }
            for (size_t y = 0; y < rows; y++) {
                if (off + y * rstride + row > c->ref_len ||
                    memcmp(fi.planes[p].data + y * fi.planes[p].stride, c->ref + off + y * rstride, row)) {
                    snprintf(c->why, sizeof c->why, "plane %d row %zu differs", p, y);
                    c->bad++;
                    p = 99;
                    break;
                }
            }
            off += rstride * rows;
        }
    }
    c->last_seq = fi.sequence;
    c->frames++;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

static void on_event(void *ud, const wrd_event *ev) {
    struct ctx *c = ud;
    if (ev->kind == WRD_EVENT_ERROR) {
        pthread_mutex_lock(&c->lock);
        snprintf(c->why, sizeof c->why, "error event: %s", ev->message);
        c->errors++;
        pthread_cond_signal(&c->cond);
        pthread_mutex_unlock(&c->lock);
    }
}

int main(int argc, char **argv) {
    if (argc != 7 && !(argc == 8 && strcmp(argv[7], "realtime") == 0)) {
        fprintf(stderr, "usage: %s NODE REF FORMAT W H FRAMES [realtime]\n", argv[0]);
        return 2;
    }
    int realtime = argc == 8;
    struct ctx c;
    memset(&c, 0, sizeof c);
    pthread_mutex_init(&c.lock, NULL);
    pthread_cond_init(&c.cond, NULL);
    uint32_t node = (uint32_t)strtoul(argv[1], NULL, 10);
    FILE *f = fopen(argv[2], "rb");
    if (!f) { perror(argv[2]); return 2; }
    static unsigned char buf[64 << 20];
    c.ref_len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    c.ref = buf;
    c.format = (uint32_t)atoi(argv[3]);
    c.width = (uint32_t)atoi(argv[4]);
    c.height = (uint32_t)atoi(argv[5]);
    int want = atoi(argv[6]);

    wrd_capture *cap = NULL;
    wrd_status st = wrd_capture_new(-1, NULL, &cap);
    if (st != WRD_OK) { fprintf(stderr, "wrd_capture_new: %s\n", wrd_status_message(st)); return 1; }
    const char *lib = NULL, *daemon = NULL;
    wrd_capture_get_versions(cap, &lib, &daemon);
    printf("library %s daemon %s\n", lib, daemon);

    wrd_stream_config cfg;
    wrd_stream_config_init(&cfg);
    uint32_t formats[1] = { c.format };
    cfg.formats = formats;
    cfg.n_formats = 1;
    cfg.on_frame = on_frame;
    cfg.on_event = on_event;
    cfg.user_data = &c;
    wrd_stream *s = NULL;
    /* An unknown flag bit is refused, not ignored. */
    cfg.flags = 0x80000000u;
    st = wrd_stream_add(cap, node, &cfg, &s);
    if (st != WRD_ERR_INVALID_ARGUMENT || s) {
        fprintf(stderr, "FAIL: unknown flag: %s\n", wrd_status_message(st));
        return 1;
    }
    cfg.flags = realtime ? WRD_STREAM_FLAG_REALTIME : 0;
    st = wrd_stream_add(cap, node, &cfg, &s);
    if (st != WRD_OK) { fprintf(stderr, "wrd_stream_add: %s\n", wrd_status_message(st)); return 1; }

    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 20;
    pthread_mutex_lock(&c.lock);
    while (c.frames < want && !c.errors && !c.bad) {
        if (pthread_cond_timedwait(&c.cond, &c.lock, &dl)) break;
    }
    int frames = c.frames, bad = c.bad, errors = c.errors;
    pthread_mutex_unlock(&c.lock);

    wrd_stream_stats stats;
    wrd_stream_get_stats(s, &stats);
    wrd_stream_remove(s);
    wrd_capture_destroy(cap);
    if (bad || errors || frames < want) {
        fprintf(stderr, "FAIL: %d frames, %d bad, %d errors: %s\n", frames, bad, errors, c.why);
        return 1;
    }
    printf("ok %d frames with the reference pixels%s, %llu delivered, %llu dropped\n", frames,
           realtime ? " (realtime)" : "",
           (unsigned long long)stats.frames_delivered, (unsigned long long)stats.frames_dropped);
    return 0;
}
