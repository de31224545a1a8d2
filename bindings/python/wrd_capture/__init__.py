"""wrd_capture: PipeWire screencast frames in Python, over the C library.

    import wrd_capture

    with wrd_capture.Capture() as cap:            # or Capture(fd=portal_fd)
        with cap.add_stream(node_id) as stream:
            frame = stream.pull(timeout=5)        # the newest frame
            rgba = frame.to_rgba()                # bytearray, width*height*4
            view = frame.planes[0]                # memoryview, no copy
            arr = frame.array()                   # numpy array, no copy (needs numpy)
            for frame in stream.frames(10):       # iterate
                ...

Frames come through the library's pull API: the stream's eventfd
(``stream.fileno()``) becomes readable when a frame or event is queued, so
a stream can sit in ``select``/``selectors``/``asyncio`` loops. No Python
code runs on the library's PipeWire thread.

Errors raise :class:`WrdError` (``.status``, ``.name``, ``.message``);
bad arguments raise :class:`InvalidArgument`, which is also a ``ValueError``.

The library is found through ``$WRD_CAPTURE_LIB`` (a path to
``libwrd_capture.so``), ``$WRD_CAPTURE_PREFIX`` (a ``make install`` prefix),
the prefix this package was installed into by ``make install``, or the
system's library path.
"""

import ctypes
import os
import select
import time
from ctypes import byref, c_char_p, c_int, c_uint32, c_void_p

from . import _ffi
from ._ffi import FORMAT_NAMES, FORMATS

__all__ = [
    "Capture",
    "Stream",
    "Frame",
    "Event",
    "Stats",
    "WrdError",
    "InvalidArgument",
    "FORMATS",
    "library_path",
]

_lib = None
_lib_path = None


def _L():
    global _lib, _lib_path
    if _lib is None:
        _lib, _lib_path = _ffi.load_library()
    return _lib


def library_path():
    """The path of the libwrd_capture.so in use (loads it)."""
    _L()
    return _lib_path


class WrdError(Exception):
    """A failed call or a stream error: ``status`` (the ``wrd_status``
    number), ``name`` (``"WRD_ERR_..."``) and ``message``."""

    def __init__(self, status, message=None):
        self.status = int(status)
        self.name = (
            _ffi.STATUS_NAMES[self.status]
            if 0 <= self.status < len(_ffi.STATUS_NAMES)
            else f"status {self.status}"
        )
        if message is None:
            message = status_message(self.status)
        self.message = message
        super().__init__(f"{message} ({self.name})")


class InvalidArgument(WrdError, ValueError):
    """A bad argument (``WRD_ERR_INVALID_ARGUMENT``)."""

    def __init__(self, message):
        super().__init__(_ffi.WRD_ERR_INVALID_ARGUMENT, message)


def status_message(status):
    """The library's English description of a status number."""
    return _L().wrd_status_message(int(status) & 0xFFFFFFFF).decode()


def _check(status, what=None):
    if status != _ffi.WRD_OK:
        msg = status_message(status)
        if status == _ffi.WRD_ERR_INVALID_ARGUMENT:
            raise InvalidArgument(f"{what}: {msg}" if what else msg)
        raise WrdError(status, f"{what}: {msg}" if what else msg)


def _format_number(f):
    if isinstance(f, str):
        for name, v in FORMATS.items():
            if name.lower() == f.lower():
                return v
        raise InvalidArgument(f"unknown pixel format {f!r} (one of {', '.join(FORMATS)})")
    if isinstance(f, int) and f in FORMAT_NAMES:
        return f
    raise InvalidArgument(f"unknown pixel format {f!r}")


class Event:
    """A stream event: ``kind`` (``"state_changed"``, ``"format_changed"``,
    ``"node_gone"``, ``"connection_lost"``, ``"error"``, ``"bad_frame"``,
    ``"stalled"``, ``"resumed"``) and the fields that kind uses."""

    def __init__(self, ev):
        self.kind = _ffi.EVENT_NAMES.get(ev.kind, str(ev.kind))
        self.state = _ffi.STATE_NAMES.get(ev.state, ev.state)
        self.status = ev.status
        self.drop_reason = ev.drop_reason
        self.format = FORMAT_NAMES.get(ev.format)
        self.width = ev.width
        self.height = ev.height
        self.framerate = (ev.framerate_num, ev.framerate_denom)
        self.modifier = ev.modifier if ev.has_modifier else None
        self.message = (ev.message or b"").decode(errors="replace")

    def __repr__(self):
        extra = {
            "state_changed": f" {self.state}",
            "format_changed": f" {self.format} {self.width}x{self.height}",
            "error": f" {_ffi.STATUS_NAMES[self.status] if 0 <= self.status < 20 else self.status}",
        }.get(self.kind, "")
        msg = f" {self.message!r}" if self.message else ""
        return f"<Event {self.kind}{extra}{msg}>"


class Stats:
    """A snapshot of a stream's counters (``wrd_stream_stats``)."""

    def __init__(self, s):
        self.node_id = s.node_id
        self.state = _ffi.STATE_NAMES.get(s.state, s.state)
        self.format = FORMAT_NAMES.get(s.format)
        self.width = s.width
        self.height = s.height
        self.framerate = (s.framerate_num, s.framerate_denom)
        self.buffer_type = _ffi.BUFFER_NAMES.get(s.buffer_type, s.buffer_type)
        self.modifier = s.modifier
        self.fps = s.fps
        self.frames_delivered = s.frames_delivered
        self.frames_dropped = s.frames_dropped
        self.drops = {n: s.drops[i] for i, n in enumerate(_ffi.DROP_NAMES)}
        self.held_now = s.held_now
        self.held_max = s.held_max
        self.bad_metas = s.bad_metas
        self.unsealed_buffers = s.unsealed_buffers
        self.format_changes = s.format_changes
        self.last_error = s.last_error

    def __repr__(self):
        return (
            f"<Stats node={self.node_id} {self.state} {self.format} "
            f"{self.width}x{self.height} fps={self.fps:.1f} "
            f"delivered={self.frames_delivered} dropped={self.frames_dropped}>"
        )


class _FrameRef:
    """Owns one reference to a C frame; releases it when garbage. Every view
    of the frame's memory keeps this alive, so no view outlives the memory."""

    __slots__ = ("ptr", "lib", "__weakref__")

    def __init__(self, ptr, lib):
        self.ptr = ptr
        self.lib = lib

    def release(self):
        ptr, self.ptr = self.ptr, None
        if ptr:
            self.lib.wrd_frame_release(ptr)

    def __del__(self):
        self.release()


class Frame:
    """A frame from :meth:`Stream.pull`.

    ``planes`` are read-only ``memoryview`` s straight into the producer's
    buffer (no copy); ``array()`` gives numpy views of them. The buffer goes
    back to the producer when the frame is released (``release()``, the end
    of a ``with`` block) *and* no view or array made from it is alive any
    more; until then it counts towards the stream's ``max_held``.
    """

    def __init__(self, ptr):
        lib = _L()
        self._ref = _FrameRef(ptr, lib)
        info = _ffi.wrd_frame_info()
        _check(lib.wrd_frame_get_info(ptr, byref(info)), "wrd_frame_get_info")
        self.sequence = info.sequence
        self.pts_ns = info.pts_ns
        self.received_ns = info.received_ns
        self.width = info.width
        self.height = info.height
        self.format = FORMAT_NAMES.get(info.format, str(info.format))
        self.flags = info.flags
        self.buffer_type = _ffi.BUFFER_NAMES.get(info.buffer_type, info.buffer_type)
        self.drm_format = info.drm_format
        self.modifier = info.modifier
        self.damage = [
            (info.damage[i].x, info.damage[i].y, info.damage[i].width, info.damage[i].height)
            for i in range(info.n_damage)
        ]
        self.crop = (
            (info.crop.x, info.crop.y, info.crop.width, info.crop.height)
            if info.has_crop
            else None
        )
        self.transform = info.transform
        self.cursor = None
        if info.has_cursor:
            c = info.cursor
            self.cursor = {
                "id": c.id,
                "x": c.x,
                "y": c.y,
                "hotspot": (c.hotspot_x, c.hotspot_y),
                "has_bitmap": bool(c.has_bitmap),
            }
        self.strides = []
        self.fds = []
        self.planes = []
        for i in range(info.n_planes):
            p = info.planes[i]
            self.strides.append(p.stride)
            self.fds.append(p.fd)
            if p.data and p.size:
                arr = (ctypes.c_ubyte * p.size).from_address(ctypes.addressof(p.data.contents))
                arr._wrd_frame = self._ref  # the memory lives as long as any view
                self.planes.append(memoryview(arr).cast("B").toreadonly())
        self._info = info

    @property
    def released(self):
        return self._ref is None or self._ref.ptr is None

    def release(self):
        """Let go of the frame. Its buffer returns to the producer as soon as
        no memoryview or array of it is alive."""
        self.planes = []
        self._ref = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()

    def _ptr(self):
        if self._ref is None or not self._ref.ptr:
            raise WrdError(_ffi.WRD_ERR_INVALID_STATE, "the frame was released")
        return self._ref.ptr

    def array(self, plane=0):
        """Plane ``plane`` as a read-only numpy array, no copy: shape
        (height, width, bytes per pixel) for packed RGB formats, else
        (rows, stride) bytes of the plane. Needs numpy."""
        import numpy as np

        self._ptr()
        if plane >= len(self.planes):
            raise InvalidArgument(f"plane {plane}: the frame has {len(self.planes)} CPU planes")
        mv = self.planes[plane]
        stride = self.strides[plane]
        bpp = {"BGRx": 4, "BGRA": 4, "RGBx": 4, "RGBA": 4, "RGB": 3, "BGR": 3, "GRAY8": 1}.get(
            self.format
        )
        if plane == 0 and bpp is not None:
            shape = (self.height, self.width, bpp)
            strides = (stride, bpp, 1)
        else:
            # `len(mv)` is stride * (rows - 1) + the bytes of the last row.
            rows = (len(mv) + stride - 1) // stride
            shape = (rows, len(mv) - (rows - 1) * stride)
            strides = (stride, 1)
        a = np.ndarray(shape=shape, dtype=np.uint8, buffer=mv, strides=strides)
        a.flags.writeable = False
        return a

    def to_rgba(self, out=None, *, stride=None, damage_only=False, bgra=False, threads=1):
        """Convert to RGBA (or BGRA with ``bgra=True``): into ``out`` (any
        writable buffer: bytearray, numpy array...) when given, else a new
        ``bytearray`` of ``height * width * 4`` bytes. With ``damage_only``
        only the damaged rectangles are written (keep ``out`` across frames).
        Returns the buffer written."""
        ptr = self._ptr()
        stride = stride or self.width * 4
        need = stride * (self.height - 1) + self.width * 4 if self.height else 0
        if out is None:
            out = bytearray(stride * self.height)
        mv = memoryview(out).cast("B")
        if mv.readonly:
            raise InvalidArgument("out must be a writable buffer")
        n = len(mv)
        if n < need:
            raise WrdError(
                _ffi.WRD_ERR_BUFFER_TOO_SMALL, f"out has {n} bytes, the frame needs {need}"
            )
        buf = (ctypes.c_ubyte * n).from_buffer(mv)
        st = _L().wrd_frame_convert(
            ptr,
            FORMATS["BGRA"] if bgra else FORMATS["RGBA"],
            ctypes.addressof(buf),
            n,
            stride,
            _ffi.CONVERT_DAMAGE_ONLY if damage_only else 0,
            threads,
        )
        del buf
        mv.release()
        _check(st, "wrd_frame_convert")
        return out

    def rgba_array(self, damage_only=False, out=None):
        """The frame as a (height, width, 4) RGBA numpy array (a new one, or
        ``out``). Needs numpy."""
        import numpy as np

        if out is None:
            out = np.empty((self.height, self.width, 4), dtype=np.uint8)
        self.to_rgba(out, damage_only=damage_only)
        return out

    def __repr__(self):
        state = " released" if self.released else ""
        return (
            f"<Frame seq={self.sequence} {self.format} {self.width}x{self.height} "
            f"{self.buffer_type}{state}>"
        )


class Stream:
    """A stream of frames from one node, made by :meth:`Capture.add_stream`.

    ``pull()`` returns the newest frame (older queued ones are dropped as
    superseded); ``frames()`` iterates; ``fileno()`` is the eventfd to
    poll. Error events (node missing, negotiation failed, node gone,
    connection lost) are raised as :class:`WrdError` by ``pull`` and
    ``frames``. ``close()`` (or the end of a ``with`` block) removes it.
    """

    def __init__(self, capture, node_id, formats, queue, max_held, max_framerate, buffers):
        lib = _L()
        if isinstance(node_id, bool) or not isinstance(node_id, int):
            raise InvalidArgument(f"node id must be an int, not {type(node_id).__name__}")
        if not 0 <= node_id < 0xFFFFFFFF:
            raise InvalidArgument(f"node id {node_id} out of range")
        cfg = _ffi.wrd_stream_config()
        _check(lib.wrd_stream_config_init(byref(cfg)))
        self._formats = None
        if formats:
            nums = [_format_number(f) for f in formats]
            self._formats = (c_uint32 * len(nums))(*nums)
            cfg.formats = self._formats
            cfg.n_formats = len(nums)
        cfg.pull_frames = 1
        cfg.pull_events = 1
        if queue:
            if not isinstance(queue, int) or queue < 1:
                raise InvalidArgument("queue must be a positive number of frames")
            cfg.queue_policy = _ffi.QUEUE_BOUNDED
            cfg.queue_high = queue
            cfg.queue_low = max(queue // 2, 0)
        if max_held is not None:
            cfg.max_held = max_held
        if max_framerate:
            cfg.max_framerate = max_framerate
        if buffers:
            cfg.buffers = buffers
        self._bounded = bool(queue)
        out = c_void_p()
        _check(lib.wrd_stream_add(capture._ptr(), node_id, byref(cfg), byref(out)), "wrd_stream_add")
        self._s = out.value
        self._lib = lib
        self.node_id = node_id
        self.format = None
        self.events = []
        self._error = None
        fd = c_int(-1)
        _check(lib.wrd_stream_get_fd(self._s, byref(fd)))
        self._fd = fd.value

    def fileno(self):
        """The stream's eventfd (owned by the stream; do not close it)."""
        self._handle()
        return self._fd

    def _handle(self):
        if not self._s:
            raise WrdError(_ffi.WRD_ERR_INVALID_STATE, "the stream was closed")
        return self._s

    def poll_events(self):
        """Take the queued events (also kept in ``self.events``); return them.
        Does not raise for error events (``pull`` does)."""
        s = self._handle()
        got = []
        ev = _ffi.wrd_event()
        while self._lib.wrd_stream_next_event(s, byref(ev)) == _ffi.WRD_OK:
            e = Event(ev)
            got.append(e)
            if e.kind == "format_changed":
                self.format = (e.format, e.width, e.height)
            if self._error is None:
                if e.kind == "error":
                    self._error = WrdError(e.status, f"node {self.node_id}: {e.message}")
                elif e.kind == "node_gone":
                    self._error = WrdError(
                        _ffi.WRD_ERR_NODE_NOT_FOUND, f"node {self.node_id} went away"
                    )
                elif e.kind == "connection_lost":
                    self._error = WrdError(
                        _ffi.WRD_ERR_CONNECTION_LOST, "the connection to PipeWire is gone"
                    )
        self.events.extend(got)
        del self.events[:-256]
        return got

    def pull(self, timeout=None):
        """The newest frame, waiting up to ``timeout`` seconds (None: forever,
        0: don't wait). Returns None on timeout; raises :class:`WrdError` when
        the stream failed or ended."""
        s = self._handle()
        deadline = None if timeout is None else time.monotonic() + timeout
        pull = self._lib.wrd_stream_pop if self._bounded else self._lib.wrd_stream_pull
        while True:
            out = c_void_p()
            st = pull(s, byref(out))
            if st == _ffi.WRD_OK:
                return Frame(out.value)
            if st != _ffi.WRD_ERR_NO_FRAME:
                _check(st, "wrd_stream_pull")
            self.poll_events()
            if self._error is not None:
                raise self._error
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            select.select([self._fd], [], [], 0.5 if left is None else min(left, 0.5))

    def frames(self, count=None, timeout=10.0):
        """Yield frames as they come (the newest each time, or every one with
        ``queue=``), ``count`` of them or forever. Raises :class:`WrdError`
        (``WRD_ERR_TIMEOUT``) when none comes for ``timeout`` seconds."""
        n = 0
        while count is None or n < count:
            f = self.pull(timeout=timeout)
            if f is None:
                raise WrdError(
                    _ffi.WRD_ERR_TIMEOUT, f"node {self.node_id}: no frame for {timeout} s"
                )
            n += 1
            yield f

    def __iter__(self):
        return self.frames()

    def stats(self):
        """A :class:`Stats` snapshot."""
        out = _ffi.wrd_stream_stats()
        _check(self._lib.wrd_stream_get_stats(self._handle(), byref(out)))
        return Stats(out)

    def close(self):
        """Remove the stream (idempotent). Frames still held stay valid."""
        s, self._s = self._s, None
        if s:
            self._lib.wrd_stream_remove(s)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_s", None):
            self.close()


class Capture:
    """A connection to PipeWire (``wrd_capture``) with the library's own
    thread.

    ``fd``: None for the default daemon (``$PIPEWIRE_REMOTE`` or
    ``pipewire-0`` in ``$XDG_RUNTIME_DIR``); an int fd, such as the portal's
    ``OpenPipeWireRemote`` result, whose ownership passes to the library (it
    closes it, also on error); or an object with ``fileno()`` (a socket),
    which is duplicated so the object keeps its own. Timeouts in seconds.
    """

    def __init__(
        self,
        fd=None,
        *,
        remote=None,
        max_streams=None,
        node_timeout=None,
        negotiation_timeout=None,
        connect_timeout=None,
    ):
        lib = _L()
        self._cap = None
        self._streams = []
        opts = _ffi.wrd_capture_options()
        _check(lib.wrd_capture_options_init(byref(opts)))
        if max_streams is not None:
            opts.max_streams = max_streams
        for name, v in (
            ("node_timeout_ms", node_timeout),
            ("negotiation_timeout_ms", negotiation_timeout),
            ("connect_timeout_ms", connect_timeout),
        ):
            if v is not None:
                if v < 0:
                    raise InvalidArgument(f"{name[:-3]} must not be negative")
                setattr(opts, name, int(v * 1000))
        self._remote = remote.encode() if remote else None
        opts.remote = self._remote
        if fd is None:
            raw = -1
        elif isinstance(fd, bool):
            raise InvalidArgument("fd must be an int or have fileno()")
        elif isinstance(fd, int):
            if fd < 0:
                raise InvalidArgument(f"fd {fd} is negative (use fd=None for the default daemon)")
            raw = fd
        elif hasattr(fd, "fileno"):
            raw = os.dup(fd.fileno())
        else:
            raise InvalidArgument("fd must be an int or have fileno()")
        out = c_void_p()
        _check(lib.wrd_capture_new(raw, byref(opts), byref(out)), "wrd_capture_new")
        self._cap = out.value
        self._lib = lib

    def _ptr(self):
        if not self._cap:
            raise WrdError(_ffi.WRD_ERR_INVALID_STATE, "the capture was closed")
        return self._cap

    def add_stream(
        self, node_id, formats=None, *, queue=None, max_held=None, max_framerate=0, buffers=0
    ):
        """Add a stream for ``node_id``. ``formats``: pixel format names in
        order of preference (default: all). ``queue``: keep up to that many
        frames for :meth:`Stream.pull` (default: only the newest).
        ``max_held``: most frames held at once (default 4)."""
        s = Stream(self, node_id, formats, queue, max_held, max_framerate, buffers)
        self._streams.append(s)
        return s

    @property
    def connected(self):
        return bool(self._cap) and bool(self._lib.wrd_capture_is_connected(self._cap))

    def versions(self):
        """(client library version, daemon version)."""
        a, b = c_char_p(), c_char_p()
        _check(self._lib.wrd_capture_get_versions(self._ptr(), byref(a), byref(b)))
        return (a.value or b"").decode(), (b.value or b"").decode()

    def close(self):
        """Remove every stream and destroy the capture (joins its thread).
        Idempotent. Frames still held stay readable until released."""
        for s in self._streams:
            s.close()
        self._streams = []
        cap, self._cap = self._cap, None
        if cap:
            self._lib.wrd_capture_destroy(cap)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_cap", None):
            self.close()
