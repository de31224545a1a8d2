/* The whole portal flow: ask the XDG Desktop Portal for a screencast
 * (the desktop shows its picker), open the session's PipeWire remote, and
 * hand the fd and the stream node ids to wrd-capture; frames then arrive
 * in the GLib main loop through each stream's pollable fd.
 *
 *   cc portal-capture.c $(pkg-config --cflags --libs wrd-capture libportal) -o portal-capture
 *   portal-capture [FRAMES]
 *
 * Needs a desktop session with xdg-desktop-portal and a backend that
 * implements ScreenCast (GNOME, KDE, wlroots via xdg-desktop-portal-wlr).
 * Exit status: 0 after FRAMES frames (default 30) from every stream; 1 when
 * the portal, the session or a stream fails (the message says which); 2
 * usage.
 *
 * The same steps without libportal, over D-Bus: CreateSession,
 * SelectSources, Start (its response's "streams" carry the node ids),
 * then OpenPipeWireRemote returns the fd (see docs/guide.md). */
#include <wrd_capture.h>

#include <glib-unix.h>
#include <libportal/portal.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_STREAMS 8

struct app {
    GMainLoop *loop;
    XdpPortal *portal;
    XdpSession *session;
    wrd_capture *cap;
    int n;
    wrd_stream *streams[MAX_STREAMS];
    uint32_t nodes[MAX_STREAMS];
    int got[MAX_STREAMS];
    guint sources[MAX_STREAMS];
    int want;
    int status;
};

static void quit(struct app *app, int status) {
    if (status) app->status = status;
    g_main_loop_quit(app->loop);
}

/* The stream's fd is readable: take events and the newest frame. */
static gboolean on_stream_ready(gint fd, GIOCondition cond, gpointer data) {
    (void)fd;
    (void)cond;
    struct app *app = data;
    int done = 0;
    for (int i = 0; i < app->n; i++) {
        wrd_event ev;
        while (wrd_stream_next_event(app->streams[i], &ev) == WRD_OK) {
            if (ev.kind == WRD_EVENT_ERROR || ev.kind == WRD_EVENT_NODE_GONE ||
                ev.kind == WRD_EVENT_CONNECTION_LOST) {
                fprintf(stderr, "portal-capture: node %u: %s\n", app->nodes[i],
                        ev.kind == WRD_EVENT_ERROR ? ev.message : "the stream ended");
                quit(app, 1);
                return G_SOURCE_REMOVE;
            }
            if (ev.kind == WRD_EVENT_FORMAT_CHANGED)
                printf("node %u: %ux%u format %u\n", app->nodes[i], ev.width, ev.height,
                       ev.format);
        }
        wrd_frame *f;
        if (wrd_stream_pull(app->streams[i], &f) == WRD_OK) {
            wrd_frame_info fi;
            wrd_frame_get_info(f, &fi);
            /* ... use fi.planes[0].data (SHM) or fi.planes[].fd (DMA-BUF) ... */
            app->got[i]++;
            wrd_frame_release(f);
        }
        if (app->got[i] >= app->want) done++;
    }
    if (done == app->n) quit(app, 0);
    return G_SOURCE_CONTINUE;
}

static void on_started(GObject *source, GAsyncResult *res, gpointer data) {
    struct app *app = data;
    GError *error = NULL;
    if (!xdp_session_start_finish(XDP_SESSION(source), res, &error)) {
        fprintf(stderr, "portal-capture: the screencast was not started: %s\n", error->message);
        g_error_free(error);
        quit(app, 1);
        return;
    }
    /* a(ua{sv}): one (node id, properties) per stream the user picked. */
    GVariant *streams = xdp_session_get_streams(app->session);
    GVariantIter iter;
    guint32 node;
    GVariant *props;
    g_variant_iter_init(&iter, streams);
    while (app->n < MAX_STREAMS && g_variant_iter_next(&iter, "(u@a{sv})", &node, &props)) {
        app->nodes[app->n++] = node;
        g_variant_unref(props);
    }
    /* The fd is ours; wrd_capture_new takes ownership (also on error). */
    int fd = xdp_session_open_pipewire_remote(app->session);
    if (fd < 0 || app->n == 0) {
        fprintf(stderr, "portal-capture: no PipeWire remote or no streams from the portal\n");
        quit(app, 1);
        return;
    }
    wrd_status st = wrd_capture_new(fd, NULL, &app->cap);
    if (st != WRD_OK) {
        fprintf(stderr, "portal-capture: %s\n", wrd_status_message(st));
        quit(app, 1);
        return;
    }
    for (int i = 0; i < app->n; i++) {
        wrd_stream_config cfg;
        wrd_stream_config_init(&cfg);
        cfg.pull_frames = 1;
        cfg.pull_events = 1;
        st = wrd_stream_add(app->cap, app->nodes[i], &cfg, &app->streams[i]);
        if (st != WRD_OK) {
            fprintf(stderr, "portal-capture: node %u: %s\n", app->nodes[i],
                    wrd_status_message(st));
            quit(app, 1);
            return;
        }
        int sfd;
        wrd_stream_get_fd(app->streams[i], &sfd);
        app->sources[i] = g_unix_fd_add(sfd, G_IO_IN, on_stream_ready, app);
        printf("capturing node %u\n", app->nodes[i]);
    }
}

static void on_session(GObject *source, GAsyncResult *res, gpointer data) {
    struct app *app = data;
    GError *error = NULL;
    app->session = xdp_portal_create_screencast_session_finish(XDP_PORTAL(source), res, &error);
    if (!app->session) {
        fprintf(stderr, "portal-capture: no screencast session from the portal: %s\n",
                error->message);
        g_error_free(error);
        quit(app, 1);
        return;
    }
    xdp_session_start(app->session, NULL, NULL, on_started, app);
}

int main(int argc, char **argv) {
    struct app app = {0};
    app.want = argc > 1 ? atoi(argv[1]) : 30;
    if (app.want <= 0) {
        fprintf(stderr, "usage: %s [FRAMES]\n", argv[0]);
        return 2;
    }
    app.loop = g_main_loop_new(NULL, FALSE);
    app.portal = xdp_portal_new();
    xdp_portal_create_screencast_session(app.portal, XDP_OUTPUT_MONITOR | XDP_OUTPUT_WINDOW,
                                         XDP_SCREENCAST_FLAG_MULTIPLE, XDP_CURSOR_MODE_METADATA,
                                         XDP_PERSIST_MODE_NONE, NULL, NULL, on_session, &app);
    g_main_loop_run(app.loop);

    for (int i = 0; i < app.n; i++) {
        if (app.sources[i]) g_source_remove(app.sources[i]);
        if (app.streams[i]) {
            wrd_stream_stats ss;
            wrd_stream_get_stats(app.streams[i], &ss);
            printf("node %u: %d frames, %.1f fps, %llu dropped\n", app.nodes[i], app.got[i],
                   ss.fps, (unsigned long long)ss.frames_dropped);
            wrd_stream_remove(app.streams[i]);
        }
    }
    wrd_capture_destroy(app.cap);
    if (app.session) {
        xdp_session_close(app.session);
        g_object_unref(app.session);
    }
    g_object_unref(app.portal);
    g_main_loop_unref(app.loop);
    return app.status;
}
