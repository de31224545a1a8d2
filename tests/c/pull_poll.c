/* The pull API from C with poll(), over a socket the program connected to
 * the daemon itself and handed over as a portal client would. Checks the
 * frames' metadata, the documented statuses of misuse, and dumps a few
 * frames for the test harness to compare with wrd-testsrc's pattern.
 *
 * usage: pull_poll NODE_ID FRAMES DUMP_DIR */
#include <wrd_capture.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define CHECK(cond, ...) do { if (!(cond)) { fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(1); } } while (0)

static int connect_daemon(void) {
    const char *dir = getenv("XDG_RUNTIME_DIR");
    CHECK(dir != NULL, "XDG_RUNTIME_DIR unset");
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof a.sun_path, "%s/pipewire-0", dir);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0, "socket");
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect %s: %s", a.sun_path, strerror(errno));
    return fd;
}

static void dump(const char *dir, const wrd_frame_info *fi) {
    char path[512];
    snprintf(path, sizeof path, "%s/frame-%llu.raw", dir, (unsigned long long)fi->sequence);
    FILE *f = fopen(path, "wb");
    CHECK(f, "open %s", path);
    for (uint32_t p = 0; p < fi->n_planes; p++)
        CHECK(fwrite(fi->planes[p].data, 1, fi->planes[p].size, f) == fi->planes[p].size, "write");
    fclose(f);
    snprintf(path, sizeof path, "%s/frame-%llu.txt", dir, (unsigned long long)fi->sequence);
    f = fopen(path, "w");
    CHECK(f, "open %s", path);
    fprintf(f, "%u %u %u %u", fi->format, fi->width, fi->height, fi->n_planes);
    for (uint32_t p = 0; p < fi->n_planes; p++)
        fprintf(f, " %zu %u", fi->planes[p].size, fi->planes[p].stride);
    fprintf(f, "\n");
    fclose(f);
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: %s NODE FRAMES DUMP_DIR\n", argv[0]); return 2; }
    uint32_t node = (uint32_t)strtoul(argv[1], NULL, 10);
    int want = atoi(argv[2]);

    /* Misuse answers with statuses, never a crash. */
    CHECK(wrd_capture_new(-1, NULL, NULL) == WRD_ERR_NULL_POINTER, "NULL out");
    CHECK(wrd_stream_add(NULL, 1, NULL, NULL) == WRD_ERR_NULL_POINTER, "NULL stream out");
    CHECK(wrd_frame_release(NULL) == WRD_OK, "release NULL");
    wrd_stream_remove(NULL);
    wrd_capture_destroy(NULL);
    CHECK(strcmp(wrd_status_message(123456), "unknown status") == 0, "unknown status text");
    CHECK(wrd_capture_is_connected(NULL) == false, "NULL not connected");

    wrd_capture *cap = NULL;
    wrd_status st = wrd_capture_new(connect_daemon(), NULL, &cap);
    CHECK(st == WRD_OK, "wrd_capture_new(fd): %s", wrd_status_message(st));
    CHECK(wrd_capture_is_connected(cap), "connected");

    wrd_stream_config cfg;
    wrd_stream_config_init(&cfg);
    uint32_t bad_format = 99;
    cfg.formats = &bad_format;
    cfg.n_formats = 1;
    wrd_stream *s = NULL;
    CHECK(wrd_stream_add(cap, node, &cfg, &s) == WRD_ERR_INVALID_ARGUMENT, "bad format refused");
    cfg.formats = NULL;
    cfg.n_formats = 0;
    cfg.pull_frames = 1;
    cfg.pull_events = 1;
    CHECK(wrd_stream_add(cap, node, &cfg, &s) == WRD_OK, "add");
    int fd = -1;
    CHECK(wrd_stream_get_fd(s, &fd) == WRD_OK && fd >= 0, "fd");
    wrd_frame *none = NULL;
    CHECK(wrd_stream_pull(s, &none) == WRD_ERR_NO_FRAME, "nothing yet");

    int got = 0, format_events = 0, streaming = 0;
    uint64_t last_seq = 0;
    int64_t last_pts = 0;
    while (got < want) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int n = poll(&pfd, 1, 10000);
        CHECK(n == 1, "poll timed out after %d frames", got);
        wrd_event ev;
        while (wrd_stream_next_event(s, &ev) == WRD_OK) {
            if (ev.kind == WRD_EVENT_FORMAT_CHANGED) format_events++;
            if (ev.kind == WRD_EVENT_STATE_CHANGED && ev.state == WRD_STATE_STREAMING) streaming++;
            CHECK(ev.kind != WRD_EVENT_ERROR, "error event: %s", ev.message);
        }
        wrd_frame *fr = NULL;
        if (wrd_stream_pull(s, &fr) != WRD_OK) continue;
        wrd_frame_info fi;
        CHECK(wrd_frame_get_info(fr, &fi) == WRD_OK, "info");
        CHECK(fi.n_planes >= 1 && fi.planes[0].data != NULL, "planes");
        CHECK(fi.buffer_type == WRD_BUFFER_MEMFD, "memfd buffers");
        CHECK(got == 0 || fi.sequence > last_seq, "seq increases");
        CHECK(fi.pts_ns > last_pts, "pts increases");
        CHECK(fi.n_damage >= 1, "damage");
        for (uint32_t i = 0; i < fi.n_damage; i++) {
            const wrd_region *r = &fi.damage[i];
            CHECK(r->x >= 0 && r->y >= 0 && r->x + (int64_t)r->width <= fi.width &&
                  r->y + (int64_t)r->height <= fi.height, "damage inside the frame");
        }
        CHECK(fi.has_cursor, "cursor meta");
        if (got < 3) dump(argv[3], &fi);
        last_seq = fi.sequence;
        last_pts = fi.pts_ns;
        got++;
        CHECK(wrd_frame_release(fr) == WRD_OK, "release");
        CHECK(wrd_frame_release(fr) == WRD_ERR_INVALID_STATE, "double release detected");
        CHECK(wrd_frame_get_info(fr, &fi) == WRD_ERR_INVALID_STATE, "released frame detected");
    }
    CHECK(format_events >= 1, "a format event");
    CHECK(streaming >= 1, "a streaming state event");
    wrd_stream_stats stats;
    CHECK(wrd_stream_get_stats(s, &stats) == WRD_OK, "stats");
    CHECK(stats.state == WRD_STATE_STREAMING && stats.frames_delivered >= (uint64_t)want, "stats");
    wrd_stream_remove(s);
    CHECK(wrd_stream_get_stats(s, &stats) == WRD_ERR_INVALID_STATE, "removed stream detected");
    wrd_stream_remove(s); /* twice: ignored */
    wrd_capture_destroy(cap);
    wrd_capture_destroy(cap); /* twice: ignored */
    CHECK(wrd_stream_add(cap, node, NULL, &s) == WRD_ERR_INVALID_STATE, "destroyed capture detected");
    printf("ok %d frames pulled with poll(), fps %.1f\n", got, stats.fps);
    return 0;
}
