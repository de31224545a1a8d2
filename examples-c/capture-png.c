/* Capture frames from one or more nodes through the C API, write the newest
 * frame of the first node as a PNG, and print per-stream stats.
 *
 *   cc capture-png.c $(pkg-config --cflags --libs wrd-capture libpng) -o capture-png
 *   capture-png OUT.png FRAMES NODE_ID [NODE_ID...]
 *
 * Uses the default PipeWire daemon (a portal client would pass the fd from
 * OpenPipeWireRemote to wrd_capture_new instead of -1). Asks for BGRx, the
 * format compositors render into, and writes RGB. */
#include <wrd_capture.h>

#include <png.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_NODES 8

static int write_png(const char *path, const wrd_frame_info *fi) {
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); return -1; }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) { fclose(f); return -1; }
    png_init_io(png, f);
    png_set_IHDR(png, info, fi->width, fi->height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    unsigned char *row = malloc((size_t)fi->width * 3);
    for (uint32_t y = 0; y < fi->height; y++) {
        const uint8_t *src = fi->planes[0].data + (size_t)y * fi->planes[0].stride;
        for (uint32_t x = 0; x < fi->width; x++) { /* BGRx -> RGB */
            row[3 * x + 0] = src[4 * x + 2];
            row[3 * x + 1] = src[4 * x + 1];
            row[3 * x + 2] = src[4 * x + 0];
        }
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(row);
    fclose(f);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: %s OUT.png FRAMES NODE_ID [NODE_ID...]\n", argv[0]); return 2; }
    int want = atoi(argv[2]);
    int n = argc - 3 > MAX_NODES ? MAX_NODES : argc - 3;

    wrd_capture *cap;
    wrd_status st = wrd_capture_new(-1, NULL, &cap);
    if (st != WRD_OK) { fprintf(stderr, "connect: %s\n", wrd_status_message(st)); return 1; }

    wrd_stream *s[MAX_NODES];
    struct pollfd pfd[MAX_NODES];
    int got[MAX_NODES] = {0};
    uint32_t bgrx = WRD_FORMAT_BGRX;
    for (int i = 0; i < n; i++) {
        wrd_stream_config cfg;
        wrd_stream_config_init(&cfg);
        cfg.formats = &bgrx;
        cfg.n_formats = 1;
        cfg.pull_frames = 1;
        cfg.pull_events = 1;
        st = wrd_stream_add(cap, (uint32_t)strtoul(argv[3 + i], NULL, 10), &cfg, &s[i]);
        if (st != WRD_OK) { fprintf(stderr, "stream: %s\n", wrd_status_message(st)); return 1; }
        wrd_stream_get_fd(s[i], &pfd[i].fd);
        pfd[i].events = POLLIN;
    }

    wrd_frame *keep = NULL;
    int done = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (done < n) {
        if (poll(pfd, (nfds_t)n, 10000) <= 0) { fprintf(stderr, "no frames for 10 s\n"); return 1; }
        for (int i = 0; i < n; i++) {
            wrd_event ev;
            while (wrd_stream_next_event(s[i], &ev) == WRD_OK) {
                if (ev.kind == WRD_EVENT_ERROR || ev.kind == WRD_EVENT_NODE_GONE) {
                    fprintf(stderr, "stream %d: %s\n", i, ev.message);
                    return 1;
                }
            }
            wrd_frame *f;
            if (wrd_stream_pull(s[i], &f) != WRD_OK) continue;
            if (got[i] < want && ++got[i] == want) done++;
            if (i == 0) { wrd_frame_release(keep); keep = f; } else { wrd_frame_release(f); }
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);

    wrd_frame_info fi;
    if (keep && wrd_frame_get_info(keep, &fi) == WRD_OK && fi.n_planes == 1) {
        if (write_png(argv[1], &fi) == 0)
            printf("wrote %s: %ux%u, frame %llu\n", argv[1], fi.width, fi.height,
                   (unsigned long long)fi.sequence);
    }
    wrd_frame_release(keep);

    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("%-6s %-6s %-10s %-8s %-10s %-8s %-8s\n", "stream", "node", "size", "fps", "delivered",
           "dropped", "held-max");
    for (int i = 0; i < n; i++) {
        wrd_stream_stats ss;
        wrd_stream_get_stats(s[i], &ss);
        char size[32];
        snprintf(size, sizeof size, "%ux%u", ss.width, ss.height);
        printf("%-6d %-6u %-10s %-8.1f %-10llu %-8llu %-8llu\n", i, ss.node_id, size, ss.fps,
               (unsigned long long)ss.frames_delivered, (unsigned long long)ss.frames_dropped,
               (unsigned long long)ss.held_max);
        wrd_stream_remove(s[i]);
    }
    printf("%d streams, %d frames each, in %.2f s\n", n, want, secs);
    wrd_capture_destroy(cap);
    return 0;
}
