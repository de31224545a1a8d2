/* Misuse of the C API, each with its documented behaviour, nothing
 * corrupting memory (run under valgrind by scripts/valgrind-hostile.sh):
 *
 *  1. NULL pointers everywhere: WRD_ERR_NULL_POINTER (or ignored, where
 *     documented).
 *  2. A frame released twice: WRD_ERR_INVALID_STATE, nothing changes.
 *  3. A frame held past wrd_stream_remove stays readable (every byte read)
 *     until released.
 *  4. 6 threads at once on one capture for 2 s: pulling, ref/release,
 *     stats, events, adding and removing streams.
 *  5. wrd_stream_remove from another thread while frames arrive: no
 *     callback runs after it returns; user_data_destroy exactly once.
 *  6. wrd_stream_remove from inside the stream's own frame callback.
 *  7. wrd_capture_destroy from inside a callback; then the stream handle
 *     still answers (CONNECTION_LOST / empty) and wrd_stream_remove works.
 *  8. A stream used after its capture was destroyed (from outside).
 *
 * usage: misuse NODE_ID basic|threads   (threads: part 4 only)
 */
#define _DEFAULT_SOURCE
#include <wrd_capture.h>

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHECK(cond, ...) do { if (!(cond)) { fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(1); } } while (0)

static uint32_t node;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static wrd_capture *new_capture(void) {
    wrd_capture *cap = NULL;
    wrd_status st = wrd_capture_new(-1, NULL, &cap);
    CHECK(st == WRD_OK && cap, "wrd_capture_new: %s", wrd_status_message(st));
    return cap;
}

static wrd_stream *pull_stream(wrd_capture *cap) {
    wrd_stream_config cfg;
    CHECK(wrd_stream_config_init(&cfg) == WRD_OK, "config init");
    cfg.pull_frames = 1;
    cfg.pull_events = 1;
    cfg.max_held = 8;
    wrd_stream *s = NULL;
    wrd_status st = wrd_stream_add(cap, node, &cfg, &s);
    CHECK(st == WRD_OK && s, "wrd_stream_add: %s", wrd_status_message(st));
    return s;
}

/* Wait for a pulled frame (up to 10 s). */
static wrd_frame *wait_frame(wrd_stream *s) {
    int fd = -1;
    CHECK(wrd_stream_get_fd(s, &fd) == WRD_OK && fd >= 0, "get_fd");
    double end = now_s() + 10;
    while (now_s() < end) {
        wrd_frame *f = NULL;
        if (wrd_stream_pull(s, &f) == WRD_OK)
            return f;
        struct wrd_event ev;
        while (wrd_stream_next_event(s, &ev) == WRD_OK)
            CHECK(ev.kind != WRD_EVENT_ERROR, "error event: %s", ev.message);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        poll(&p, 1, 100);
    }
    CHECK(0, "no frame within 10 s");
    return NULL;
}

/* Read every byte of every plane (valgrind/ASan see a stale pointer). */
static unsigned read_all(const wrd_frame *f) {
    wrd_frame_info fi;
    CHECK(wrd_frame_get_info(f, &fi) == WRD_OK, "get_info");
    unsigned sum = 0;
    for (uint32_t p = 0; p < fi.n_planes; p++)
        for (size_t i = 0; i < fi.planes[p].size; i++)
            sum += fi.planes[p].data[i];
    for (uint32_t i = 0; i < fi.n_damage; i++)
        sum += (unsigned)fi.damage[i].width;
    return sum;
}

static void test_null_pointers(void) {
    wrd_capture *cap = NULL;
    wrd_stream *s = NULL;
    wrd_frame *f = NULL;
    struct wrd_event ev;
    struct wrd_stream_stats stats;
    wrd_frame_info fi;
    int fd;
    char buf[8];
    CHECK(wrd_capture_options_init(NULL) == WRD_ERR_NULL_POINTER, "options_init");
    CHECK(wrd_stream_config_init(NULL) == WRD_ERR_NULL_POINTER, "config_init");
    CHECK(wrd_capture_new(-1, NULL, NULL) == WRD_ERR_NULL_POINTER, "capture_new");
    wrd_capture_destroy(NULL);
    CHECK(!wrd_capture_is_connected(NULL), "is_connected");
    CHECK(wrd_capture_get_versions(NULL, NULL, NULL) == WRD_ERR_NULL_POINTER, "versions");
    CHECK(wrd_stream_add(NULL, node, NULL, &s) == WRD_ERR_NULL_POINTER, "add");
    wrd_stream_remove(NULL);
    CHECK(wrd_stream_get_fd(NULL, &fd) == WRD_ERR_NULL_POINTER, "get_fd");
    CHECK(wrd_stream_pull(NULL, &f) == WRD_ERR_NULL_POINTER, "pull");
    CHECK(wrd_stream_pop(NULL, &f) == WRD_ERR_NULL_POINTER, "pop");
    CHECK(wrd_stream_next_event(NULL, &ev) == WRD_ERR_NULL_POINTER, "next_event");
    CHECK(wrd_stream_get_stats(NULL, &stats) == WRD_ERR_NULL_POINTER, "stats");
    CHECK(wrd_stream_get_last_error(NULL, buf, sizeof buf) == WRD_ERR_NULL_POINTER, "last_error");
    CHECK(wrd_frame_get_info(NULL, &fi) == WRD_ERR_NULL_POINTER, "get_info");
    CHECK(wrd_frame_ref(NULL, &f) == WRD_ERR_NULL_POINTER, "ref");
    CHECK(wrd_frame_release(NULL) == WRD_OK, "release NULL is ignored");
    CHECK(wrd_status_message(12345) != NULL, "status_message");

    cap = new_capture();
    CHECK(wrd_stream_add(cap, node, NULL, NULL) == WRD_ERR_NULL_POINTER, "add out");
    s = pull_stream(cap);
    CHECK(wrd_stream_get_fd(s, NULL) == WRD_ERR_NULL_POINTER, "get_fd out");
    CHECK(wrd_stream_pull(s, NULL) == WRD_ERR_NULL_POINTER, "pull out");
    CHECK(wrd_stream_next_event(s, NULL) == WRD_ERR_NULL_POINTER, "next_event out");
    CHECK(wrd_stream_get_stats(s, NULL) == WRD_ERR_NULL_POINTER, "stats out");
    f = wait_frame(s);
    CHECK(wrd_frame_get_info(f, NULL) == WRD_ERR_NULL_POINTER, "get_info out");
    CHECK(wrd_frame_ref(f, NULL) == WRD_ERR_NULL_POINTER, "ref out");
    CHECK(wrd_frame_convert(f, WRD_FORMAT_BGRA, NULL, 0, 0, 0, 1) == WRD_ERR_NULL_POINTER, "convert");

    /* 2. Double release. */
    wrd_frame *g = NULL;
    CHECK(wrd_frame_ref(f, &g) == WRD_OK && g, "ref");
    CHECK(wrd_frame_release(f) == WRD_OK, "release");
    CHECK(wrd_frame_release(f) == WRD_ERR_INVALID_STATE, "double release");
    CHECK(wrd_frame_get_info(f, &fi) == WRD_ERR_INVALID_STATE, "info of a released frame");
    read_all(g);

    /* 3. Held past remove. */
    wrd_stream_remove(s);
    wrd_stream_remove(s); /* already removed: ignored */
    read_all(g);
    CHECK(wrd_frame_release(g) == WRD_OK, "release after remove");
    CHECK(wrd_frame_release(g) == WRD_ERR_INVALID_STATE, "double release after remove");
    wrd_capture_destroy(cap);
    wrd_capture_destroy(cap); /* already destroyed: ignored */
    CHECK(!wrd_capture_is_connected(cap), "destroyed capture");
    CHECK(wrd_stream_add(cap, node, NULL, &s) == WRD_ERR_INVALID_STATE, "add on destroyed");
    fprintf(stderr, "null pointers, double release, held past remove: ok\n");
}

/* 4. Several threads at once. */
struct shared {
    wrd_capture *cap;
    wrd_stream *s;
    atomic_int stop;
    atomic_long frames;
    atomic_long added;
};

static void *puller(void *arg) {
    struct shared *sh = arg;
    wrd_frame *held[4] = {0};
    int k = 0;
    while (!atomic_load(&sh->stop)) {
        wrd_frame *f = NULL;
        if (wrd_stream_pull(sh->s, &f) == WRD_OK) {
            read_all(f);
            wrd_frame *r = NULL;
            CHECK(wrd_frame_ref(f, &r) == WRD_OK, "ref");
            CHECK(wrd_frame_release(f) == WRD_OK, "release");
            if (held[k]) CHECK(wrd_frame_release(held[k]) == WRD_OK, "release held");
            held[k] = r;
            k = (k + 1) % 4;
            atomic_fetch_add(&sh->frames, 1);
        } else {
            usleep(1000);
        }
    }
    for (int i = 0; i < 4; i++)
        if (held[i]) CHECK(wrd_frame_release(held[i]) == WRD_OK, "release held");
    return NULL;
}

static void *observer(void *arg) {
    struct shared *sh = arg;
    while (!atomic_load(&sh->stop)) {
        struct wrd_stream_stats st;
        CHECK(wrd_stream_get_stats(sh->s, &st) == WRD_OK, "stats");
        struct wrd_event ev;
        while (wrd_stream_next_event(sh->s, &ev) == WRD_OK)
            CHECK(ev.message != NULL, "message");
        char buf[64];
        wrd_stream_get_last_error(sh->s, buf, sizeof buf);
        const char *l = NULL, *d = NULL;
        wrd_capture_get_versions(sh->cap, &l, &d);
        (void)wrd_capture_is_connected(sh->cap);
    }
    return NULL;
}

static void count_frame(void *ud, const wrd_frame *f) {
    (void)f;
    atomic_fetch_add((atomic_long *)ud, 1);
}

static void *churner(void *arg) {
    struct shared *sh = arg;
    while (!atomic_load(&sh->stop)) {
        wrd_stream_config cfg;
        wrd_stream_config_init(&cfg);
        cfg.on_frame = count_frame;
        cfg.user_data = &sh->frames;
        wrd_stream *s = NULL;
        wrd_status st = wrd_stream_add(sh->cap, node, &cfg, &s);
        if (st == WRD_OK) {
            usleep(5000);
            wrd_stream_remove(s);
            atomic_fetch_add(&sh->added, 1);
        } else {
            CHECK(st == WRD_ERR_TOO_MANY_STREAMS, "add: %s", wrd_status_message(st));
        }
    }
    return NULL;
}

static void test_threads(void) {
    struct shared sh = {0};
    sh.cap = new_capture();
    sh.s = pull_stream(sh.cap);
    wrd_frame_release(wait_frame(sh.s));
    pthread_t t[6];
    void *(*fns[6])(void *) = {puller, puller, observer, observer, churner, churner};
    for (int i = 0; i < 6; i++)
        CHECK(pthread_create(&t[i], NULL, fns[i], &sh) == 0, "pthread_create");
    sleep(2);
    atomic_store(&sh.stop, 1);
    for (int i = 0; i < 6; i++)
        pthread_join(t[i], NULL);
    fprintf(stderr, "threads: %ld frames, %ld streams added and removed\n",
            atomic_load(&sh.frames), atomic_load(&sh.added));
    CHECK(atomic_load(&sh.frames) > 0, "frames during the threads test");
    wrd_stream_remove(sh.s);
    wrd_capture_destroy(sh.cap);
}

/* 5-7. Callbacks and removal. */
struct cb_state {
    wrd_capture *cap;
    wrd_stream *s;
    atomic_int removed;   /* set after wrd_stream_remove returned */
    atomic_int late;      /* callbacks that ran after that */
    atomic_int frames;
    atomic_int destroyed; /* user_data_destroy calls */
    int remove_at;        /* remove from inside the callback at this frame */
    int destroy_at;       /* destroy the capture from inside at this frame */
    atomic_int done_inside;
};

static void cb_frame(void *ud, const wrd_frame *f) {
    struct cb_state *c = ud;
    if (atomic_load(&c->removed)) atomic_fetch_add(&c->late, 1);
    read_all(f);
    int n = atomic_fetch_add(&c->frames, 1) + 1;
    if (c->remove_at && n == c->remove_at) {
        wrd_stream_remove(c->s);
        atomic_store(&c->removed, 1);
        atomic_store(&c->done_inside, 1);
    }
    if (c->destroy_at && n == c->destroy_at) {
        wrd_capture_destroy(c->cap);
        atomic_store(&c->removed, 1);
        atomic_store(&c->done_inside, 1);
    }
}

static void cb_event(void *ud, const struct wrd_event *ev) {
    struct cb_state *c = ud;
    (void)ev;
    if (atomic_load(&c->removed)) atomic_fetch_add(&c->late, 1);
}

static void cb_destroy(void *ud) {
    struct cb_state *c = ud;
    atomic_fetch_add(&c->destroyed, 1);
}

static wrd_stream *cb_stream(wrd_capture *cap, struct cb_state *c) {
    wrd_stream_config cfg;
    wrd_stream_config_init(&cfg);
    cfg.on_frame = cb_frame;
    cfg.on_event = cb_event;
    cfg.user_data = c;
    cfg.user_data_destroy = cb_destroy;
    wrd_stream *s = NULL;
    CHECK(wrd_stream_add(cap, node, &cfg, &s) == WRD_OK, "add");
    return s;
}

static void wait_for(atomic_int *v, int want, const char *what) {
    double end = now_s() + 10;
    while (atomic_load(v) < want) {
        CHECK(now_s() < end, "timeout waiting for %s", what);
        usleep(2000);
    }
}

static void test_remove_while_running(void) {
    for (int round = 0; round < 20; round++) {
        struct cb_state c = {0};
        c.cap = new_capture();
        c.s = cb_stream(c.cap, &c);
        wait_for(&c.frames, 2 + round % 3, "frames");
        usleep((useconds_t)(round * 700));
        wrd_stream_remove(c.s);
        atomic_store(&c.removed, 1);
        CHECK(atomic_load(&c.destroyed) == 1, "user_data_destroy once at remove (%d)",
              atomic_load(&c.destroyed));
        usleep(100000);
        CHECK(atomic_load(&c.late) == 0, "%d callbacks after wrd_stream_remove returned",
              atomic_load(&c.late));
        wrd_capture_destroy(c.cap);
        CHECK(atomic_load(&c.destroyed) == 1, "user_data_destroy once");
    }
    fprintf(stderr, "remove from another thread while frames arrive (20 rounds): ok\n");
}

static void test_remove_inside_callback(void) {
    struct cb_state c = {0};
    c.cap = new_capture();
    c.remove_at = 3;
    c.s = cb_stream(c.cap, &c);
    wait_for(&c.done_inside, 1, "remove inside the callback");
    wait_for(&c.destroyed, 1, "user_data_destroy after the callback returned");
    usleep(200000);
    CHECK(atomic_load(&c.late) == 0, "callbacks after remove from inside");
    CHECK(atomic_load(&c.frames) == 3, "frames after remove from inside: %d", atomic_load(&c.frames));
    CHECK(atomic_load(&c.destroyed) == 1, "user_data_destroy once");
    CHECK(wrd_capture_is_connected(c.cap), "the capture lives on");
    wrd_capture_destroy(c.cap);
    fprintf(stderr, "remove from inside the callback: ok\n");
}

static void test_destroy_inside_callback(void) {
    struct cb_state c = {0};
    c.cap = new_capture();
    c.destroy_at = 3;
    c.s = cb_stream(c.cap, &c);
    wait_for(&c.done_inside, 1, "destroy inside the callback");
    usleep(300000);
    CHECK(atomic_load(&c.late) == 0, "callbacks after destroy from inside: %d", atomic_load(&c.late));
    CHECK(atomic_load(&c.frames) == 3, "frames after destroy: %d", atomic_load(&c.frames));
    /* 8. The stream's handle still answers. */
    struct wrd_stream_stats st;
    wrd_status r = wrd_stream_get_stats(c.s, &st);
    CHECK(r == WRD_OK || r == WRD_ERR_CONNECTION_LOST || r == WRD_ERR_INVALID_STATE,
          "stats after destroy: %s", wrd_status_message(r));
    wrd_frame *f = NULL;
    r = wrd_stream_pull(c.s, &f);
    CHECK(r != WRD_OK, "pull after destroy gives no frame");
    wrd_stream_remove(c.s);
    wait_for(&c.destroyed, 1, "user_data_destroy");
    CHECK(atomic_load(&c.destroyed) == 1, "user_data_destroy once");
    fprintf(stderr, "destroy the capture from inside a callback: ok\n");
}

static void test_stream_after_capture_destroyed(void) {
    wrd_capture *cap = new_capture();
    wrd_stream *s = pull_stream(cap);
    wrd_frame *f = wait_frame(s);
    wrd_capture_destroy(cap);
    read_all(f); /* held frames stay readable */
    struct wrd_stream_stats st;
    wrd_status r = wrd_stream_get_stats(s, &st);
    CHECK(r == WRD_OK || r == WRD_ERR_CONNECTION_LOST, "stats: %s", wrd_status_message(r));
    wrd_frame *g = NULL;
    r = wrd_stream_pull(s, &g);
    CHECK(r != WRD_OK, "pull after destroy");
    struct wrd_event ev;
    while (wrd_stream_next_event(s, &ev) == WRD_OK) {}
    int fd = -1;
    (void)wrd_stream_get_fd(s, &fd);
    CHECK(wrd_frame_release(f) == WRD_OK, "release after destroy");
    wrd_stream_remove(s);
    fprintf(stderr, "stream after its capture was destroyed: ok\n");
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s NODE_ID basic|threads\n", argv[0]); return 2; }
    node = (uint32_t)strtoul(argv[1], NULL, 10);
    if (strcmp(argv[2], "threads") == 0) {
        test_threads();
    } else {
        test_null_pointers();
        test_remove_while_running();
        test_remove_inside_callback();
        test_destroy_inside_callback();
        test_stream_after_capture_destroyed();
    }
    fprintf(stderr, "misuse %s: all ok\n", argv[2]);
    return 0;
}
