"""ctypes declarations mirroring include/wrd_capture.h exactly.

Every structure here has the C layout of the header's (field order and
types); tests/test_abi.py compiles a C program against the installed header
and compares sizeof and offsetof of every field with these.
"""

import ctypes
import ctypes.util
import os
from ctypes import (
    POINTER,
    Structure,
    c_bool,
    c_char_p,
    c_double,
    c_int,
    c_int32,
    c_int64,
    c_size_t,
    c_uint8,
    c_uint32,
    c_uint64,
    c_void_p,
)

# Constants (the header's #defines; the numbers never change).
FORMATS = {
    "BGRx": 1,
    "BGRA": 2,
    "RGBx": 3,
    "RGBA": 4,
    "RGB": 5,
    "BGR": 6,
    "NV12": 7,
    "I420": 8,
    "YUY2": 9,
    "GRAY8": 10,
}
FORMAT_NAMES = {v: k for k, v in FORMATS.items()}

FRAME_CORRUPTED = 1
FRAME_CURSOR_ONLY = 2
FRAME_DAMAGE_CLIPPED = 4
FRAME_FULL_DAMAGE = 8
FRAME_DAMAGE_ACCUMULATED = 16

CONVERT_DAMAGE_ONLY = 1

EVENT_STATE_CHANGED = 1
EVENT_FORMAT_CHANGED = 2
EVENT_NODE_GONE = 3
EVENT_CONNECTION_LOST = 4
EVENT_ERROR = 5
EVENT_BAD_FRAME = 6
EVENT_STALLED = 7
EVENT_RESUMED = 8
EVENT_IMPORT_FAILED = 9
EVENT_RENEGOTIATING = 10
EVENT_SHM_FALLBACK = 11
EVENT_RECONNECTING = 12
EVENT_RECONNECTED = 13
EVENT_NAMES = {
    1: "state_changed",
    2: "format_changed",
    3: "node_gone",
    4: "connection_lost",
    5: "error",
    6: "bad_frame",
    7: "stalled",
    8: "resumed",
    9: "import_failed",
    10: "renegotiating",
    11: "shm_fallback",
    12: "reconnecting",
    13: "reconnected",
}

STATE_NAMES = {0: "connecting", 1: "paused", 2: "streaming", 3: "error", 4: "closed"}

QUEUE_NEWEST_ONLY = 0
QUEUE_BOUNDED = 1

DROP_REASONS = 9
# wrd_stream_stats.drops has room for reasons added later.
DROP_SLOTS = 16
DROP_NAMES = [
    "superseded",
    "held_limit",
    "queue_full",
    "bad_chunk",
    "unmappable",
    "bad_layout",
    "budget",
    "no_format",
    "import_failed",
]

BUFFER_NAMES = {0: "none", 1: "memfd", 2: "memptr", 3: "dmabuf"}

STATUS_NAMES = [
    "WRD_OK",
    "WRD_ERR_INVALID_ARGUMENT",
    "WRD_ERR_NULL_POINTER",
    "WRD_ERR_CONNECT",
    "WRD_ERR_CONNECTION_LOST",
    "WRD_ERR_TOO_MANY_STREAMS",
    "WRD_ERR_NODE_NOT_FOUND",
    "WRD_ERR_NEGOTIATION",
    "WRD_ERR_NO_FRAME",
    "WRD_ERR_BUFFER_TOO_SMALL",
    "WRD_ERR_UNSUPPORTED",
    "WRD_ERR_IMPORT_FAILED",
    "WRD_ERR_PIPEWIRE",
    "WRD_ERR_INVALID_STATE",
    "WRD_ERR_BUDGET_EXCEEDED",
    "WRD_ERR_PANIC",
    "WRD_ERR_IO",
    "WRD_ERR_BAD_FRAME",
    "WRD_ERR_PERMISSION",
    "WRD_ERR_TIMEOUT",
]
for _i, _n in enumerate(STATUS_NAMES):
    globals()[_n] = _i

# enum wrd_status is a C enum: int-sized.
c_status = c_int


class wrd_capture_options(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("max_streams", c_uint32),
        ("node_timeout_ms", c_uint32),
        ("negotiation_timeout_ms", c_uint32),
        ("connect_timeout_ms", c_uint32),
        ("remote", c_char_p),
        ("reconnect", c_uint32),
        ("reconnect_initial_delay_ms", c_uint32),
        ("reconnect_max_delay_ms", c_uint32),
        ("reconnect_max_attempts", c_uint32),
        ("memory_budget", c_size_t),
    ]


class wrd_plane(Structure):
    _fields_ = [
        ("data", POINTER(c_uint8)),
        ("size", c_size_t),
        ("offset", c_uint32),
        ("stride", c_uint32),
        ("fd", c_int),
    ]


class wrd_region(Structure):
    _fields_ = [
        ("x", c_int32),
        ("y", c_int32),
        ("width", c_uint32),
        ("height", c_uint32),
    ]


class wrd_cursor(Structure):
    _fields_ = [
        ("id", c_uint32),
        ("x", c_int32),
        ("y", c_int32),
        ("hotspot_x", c_int32),
        ("hotspot_y", c_int32),
        ("has_bitmap", c_uint32),
        ("bitmap_format", c_uint32),
        ("bitmap_spa_format", c_uint32),
        ("bitmap_width", c_uint32),
        ("bitmap_height", c_uint32),
        ("bitmap_stride", c_uint32),
        ("bitmap", POINTER(c_uint8)),
    ]


class wrd_frame_info(Structure):
    _fields_ = [
        ("sequence", c_uint64),
        ("pts_ns", c_int64),
        ("received_ns", c_uint64),
        ("width", c_uint32),
        ("height", c_uint32),
        ("format", c_uint32),
        ("flags", c_uint32),
        ("buffer_type", c_uint32),
        ("drm_format", c_uint32),
        ("modifier", c_uint64),
        ("n_planes", c_uint32),
        ("planes", wrd_plane * 4),
        ("n_damage", c_uint32),
        ("damage", POINTER(wrd_region)),
        ("has_crop", c_uint32),
        ("crop", wrd_region),
        ("transform", c_uint32),
        ("has_cursor", c_uint32),
        ("cursor", wrd_cursor),
        ("color_matrix", c_uint32),
        ("color_range", c_uint32),
        ("has_sync", c_uint32),
        ("acquire_fd", c_int),
        ("acquire_point", c_uint64),
        ("release_fd", c_int),
        ("release_point", c_uint64),
    ]


class wrd_event(Structure):
    _fields_ = [
        ("kind", c_uint32),
        ("state", c_uint32),
        ("status", c_status),
        ("drop_reason", c_uint32),
        ("format", c_uint32),
        ("width", c_uint32),
        ("height", c_uint32),
        ("framerate_num", c_uint32),
        ("framerate_denom", c_uint32),
        ("has_modifier", c_uint32),
        ("modifier", c_uint64),
        ("message", c_char_p),
    ]


wrd_frame_cb = ctypes.CFUNCTYPE(None, c_void_p, c_void_p)
wrd_event_cb = ctypes.CFUNCTYPE(None, c_void_p, POINTER(wrd_event))
wrd_destroy_notify = ctypes.CFUNCTYPE(None, c_void_p)


class wrd_stream_config(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("formats", POINTER(c_uint32)),
        ("n_formats", c_size_t),
        ("max_framerate", c_uint32),
        ("on_frame", wrd_frame_cb),
        ("on_event", wrd_event_cb),
        ("user_data", c_void_p),
        ("user_data_destroy", wrd_destroy_notify),
        ("pull_frames", c_uint32),
        ("pull_events", c_uint32),
        ("queue_policy", c_uint32),
        ("queue_high", c_uint32),
        ("queue_low", c_uint32),
        ("max_held", c_uint32),
        ("buffers", c_uint32),
        ("stall_timeout_ms", c_uint32),
        ("importer", c_void_p),
        ("max_import_failures", c_uint32),
        ("flags", c_uint32),
    ]


class wrd_stream_stats(Structure):
    _fields_ = [
        ("node_id", c_uint32),
        ("state", c_uint32),
        ("format", c_uint32),
        ("width", c_uint32),
        ("height", c_uint32),
        ("framerate_num", c_uint32),
        ("framerate_denom", c_uint32),
        ("buffer_type", c_uint32),
        ("modifier", c_uint64),
        ("fps", c_double),
        ("frames_delivered", c_uint64),
        ("frames_dropped", c_uint64),
        ("drops", c_uint64 * DROP_SLOTS),
        ("held_now", c_uint64),
        ("held_max", c_uint64),
        ("bad_metas", c_uint64),
        ("unsealed_buffers", c_uint64),
        ("format_changes", c_uint64),
        ("releases_signalled", c_uint64),
        ("release_failures", c_uint64),
        ("last_error", c_status),
    ]


STRUCTS = [
    wrd_capture_options,
    wrd_plane,
    wrd_region,
    wrd_cursor,
    wrd_frame_info,
    wrd_event,
    wrd_stream_config,
    wrd_stream_stats,
]


def _candidates():
    """Where the library is looked for, in order."""
    env = os.environ.get("WRD_CAPTURE_LIB")
    if env:
        yield env, "WRD_CAPTURE_LIB"
        return
    prefix = os.environ.get("WRD_CAPTURE_PREFIX")
    if prefix:
        for sub in ("lib", "lib64", "lib/x86_64-linux-gnu"):
            yield os.path.join(prefix, sub, "libwrd_capture.so"), "WRD_CAPTURE_PREFIX"
    try:
        from . import _install  # written by `make install`

        yield os.path.join(_install.LIBDIR, "libwrd_capture.so"), "install prefix"
    except ImportError:
        pass
    found = ctypes.util.find_library("wrd_capture")
    if found:
        yield found, "system"
    # The dynamic linker's own search (LD_LIBRARY_PATH, ld.so.cache).
    yield "libwrd_capture.so.0", "system"
    yield "libwrd_capture.so", "system"


def load_library():
    tried = []
    for path, how in _candidates():
        if how != "system" and not os.path.exists(path):
            tried.append(f"{path} ({how}: no such file)")
            continue
        try:
            return declare(ctypes.CDLL(path)), path
        except OSError as e:
            tried.append(f"{path} ({how}: {e})")
    raise OSError(
        "libwrd_capture.so not found; set WRD_CAPTURE_LIB to the library's path "
        "or WRD_CAPTURE_PREFIX to the `make install` prefix. Tried: " + "; ".join(tried)
    )


def declare(lib):
    """Argument and return types of every function used."""

    def fn(name, restype, *argtypes):
        f = getattr(lib, name)
        f.restype = restype
        f.argtypes = list(argtypes)

    P = POINTER
    fn("wrd_status_message", c_char_p, c_uint32)
    fn("wrd_capture_options_init", c_status, P(wrd_capture_options))
    fn("wrd_capture_new", c_status, c_int, P(wrd_capture_options), P(c_void_p))
    fn("wrd_capture_destroy", None, c_void_p)
    fn("wrd_capture_get_versions", c_status, c_void_p, P(c_char_p), P(c_char_p))
    fn("wrd_capture_is_connected", c_bool, c_void_p)
    fn("wrd_stream_config_init", c_status, P(wrd_stream_config))
    fn("wrd_stream_add", c_status, c_void_p, c_uint32, P(wrd_stream_config), P(c_void_p))
    fn("wrd_stream_remove", None, c_void_p)
    fn("wrd_stream_get_fd", c_status, c_void_p, P(c_int))
    fn("wrd_stream_pull", c_status, c_void_p, P(c_void_p))
    fn("wrd_stream_pop", c_status, c_void_p, P(c_void_p))
    fn("wrd_stream_next_event", c_status, c_void_p, P(wrd_event))
    fn("wrd_stream_get_stats", c_status, c_void_p, P(wrd_stream_stats))
    fn("wrd_frame_get_info", c_status, c_void_p, P(wrd_frame_info))
    fn("wrd_frame_release", c_status, c_void_p)
    fn(
        "wrd_frame_convert",
        c_status,
        c_void_p,
        c_uint32,
        c_void_p,
        c_size_t,
        c_size_t,
        c_uint32,
        c_uint32,
    )
    return lib
