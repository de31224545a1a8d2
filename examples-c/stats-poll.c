/* A live stats printer on the pull API: one poll() loop over the streams'
 * eventfds, no callbacks, no threads of our own. Once a second it prints a
 * line per stream: state, format, fps, latency from the producer's pts,
 * frames, drops and buffers held.
 *
 *   cc stats-poll.c $(pkg-config --cflags --libs wrd-capture) -o stats-poll
 *   stats-poll [--fd FD] SECONDS NODE_ID [NODE_ID...]
 *
 * --fd FD uses an inherited PipeWire connection (the portal's
 * OpenPipeWireRemote fd) instead of the default daemon.
 * Exit status: 0 after SECONDS, 1 when a stream fails (node missing,
 * negotiation, node gone), 2 usage. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <wrd_capture.h>

#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_NODES 8

struct lat {
    uint64_t n, sum_ns, max_ns;
};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const char *state_name(uint32_t s) {
    static const char *names[] = {"connecting", "paused", "streaming", "error", "closed"};
    return s < 5 ? names[s] : "?";
}

static const char *format_name(uint32_t f) {
    static const char *names[] = {"-",   "BGRx", "BGRA", "RGBx", "RGBA", "RGB",
                                  "BGR", "NV12", "I420", "YUY2", "GRAY8"};
    return f <= 10 ? names[f] : "?";
}

int main(int argc, char **argv) {
    int fd = -1, a = 1;
    if (argc > 2 && strcmp(argv[1], "--fd") == 0) {
        fd = atoi(argv[2]);
        a = 3;
    }
    if (argc - a < 2) {
        fprintf(stderr, "usage: %s [--fd FD] SECONDS NODE_ID [NODE_ID...]\n", argv[0]);
        return 2;
    }
    double seconds = atof(argv[a]);
    int n = argc - a - 1 > MAX_NODES ? MAX_NODES : argc - a - 1;

    wrd_capture *cap;
    wrd_status st = wrd_capture_new(fd, NULL, &cap);
    if (st != WRD_OK) {
        fprintf(stderr, "stats-poll: cannot connect: %s\n", wrd_status_message(st));
        return 1;
    }
    wrd_stream *s[MAX_NODES];
    struct pollfd pfd[MAX_NODES];
    struct lat lat[MAX_NODES];
    memset(lat, 0, sizeof lat);
    for (int i = 0; i < n; i++) {
        wrd_stream_config cfg;
        wrd_stream_config_init(&cfg);
        cfg.pull_frames = 1; /* newest-only queue: we only look at each frame */
        cfg.pull_events = 1;
        uint32_t node = (uint32_t)strtoul(argv[a + 1 + i], NULL, 10);
        st = wrd_stream_add(cap, node, &cfg, &s[i]);
        if (st != WRD_OK) {
            fprintf(stderr, "stats-poll: node %u: %s\n", node, wrd_status_message(st));
            return 1;
        }
        wrd_stream_get_fd(s[i], &pfd[i].fd);
        pfd[i].events = POLLIN;
    }

    uint64_t start = now_ns(), next = start + 1000000000u;
    uint64_t end = start + (uint64_t)(seconds * 1e9);
    int status = 0;
    printf("%6s %-10s %-6s %-9s %6s %9s %9s %8s %8s %5s\n", "node", "state", "format", "size",
           "fps", "lat-avg", "lat-max", "frames", "dropped", "held");
    while (!status) {
        uint64_t t = now_ns();
        if (t >= next || t >= end) {
            for (int i = 0; i < n; i++) {
                wrd_stream_stats ss;
                wrd_stream_get_stats(s[i], &ss);
                char size[24], avg[16] = "-", max[16] = "-";
                snprintf(size, sizeof size, "%ux%u", ss.width, ss.height);
                if (lat[i].n) {
                    snprintf(avg, sizeof avg, "%.2fms", (double)lat[i].sum_ns / lat[i].n / 1e6);
                    snprintf(max, sizeof max, "%.2fms", (double)lat[i].max_ns / 1e6);
                }
                printf("%6u %-10s %-6s %-9s %6.1f %9s %9s %8" PRIu64 " %8" PRIu64 " %2" PRIu64
                       "/%-2" PRIu64 "\n",
                       ss.node_id, state_name(ss.state), format_name(ss.format), size, ss.fps, avg,
                       max, ss.frames_delivered, ss.frames_dropped, ss.held_now, ss.held_max);
                memset(&lat[i], 0, sizeof lat[i]);
            }
            printf("# %.1f s\n", (double)(t - start) / 1e9);
            fflush(stdout);
            next += 1000000000u;
            if (t >= end) break;
        }
        int wait_ms = (int)((next < end ? next : end) - t) / 1000000 + 1;
        if (poll(pfd, (nfds_t)n, wait_ms) < 0) {
            perror("poll");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            if (!(pfd[i].revents & POLLIN)) continue;
            wrd_event ev;
            while (wrd_stream_next_event(s[i], &ev) == WRD_OK) {
                if (ev.kind == WRD_EVENT_ERROR || ev.kind == WRD_EVENT_NODE_GONE ||
                    ev.kind == WRD_EVENT_CONNECTION_LOST) {
                    fprintf(stderr, "stats-poll: stream %d: %s\n", i,
                            ev.kind == WRD_EVENT_NODE_GONE ? "the node went away" : ev.message);
                    status = 1;
                }
            }
            wrd_frame *f;
            while (wrd_stream_pull(s[i], &f) == WRD_OK) {
                wrd_frame_info fi;
                if (wrd_frame_get_info(f, &fi) == WRD_OK && fi.pts_ns >= 0 &&
                    fi.received_ns >= (uint64_t)fi.pts_ns) {
                    uint64_t l = fi.received_ns - (uint64_t)fi.pts_ns;
                    lat[i].n++;
                    lat[i].sum_ns += l;
                    if (l > lat[i].max_ns) lat[i].max_ns = l;
                }
                wrd_frame_release(f); /* the buffer goes back to the producer */
            }
        }
    }
    for (int i = 0; i < n; i++) wrd_stream_remove(s[i]);
    wrd_capture_destroy(cap);
    return status;
}
