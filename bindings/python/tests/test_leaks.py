"""Nothing is left behind after the context managers exit: no fd, no
thread (Python's or the library's PipeWire thread), frames given back."""

import gc
import os
import threading
import weakref

from wrd_capture import Capture


def counts():
    gc.collect()
    return (
        len(os.listdir("/proc/self/fd")),
        threading.active_count(),
        len(os.listdir("/proc/self/task")),
    )


def use(node):
    with Capture() as cap:
        with cap.add_stream(node) as s:
            f = s.pull(timeout=10)
            a = f.array()
            mv = f.planes[0]
            assert a.sum() > 0 and len(mv) > 0
            rgba = f.rgba_array()
            assert rgba.shape[2] == 4
            f.release()
            del a, mv
            for g in s.frames(3):
                g.release()
            # Nothing held by us; at most the newest frame waits in the queue.
            assert s.stats().held_now <= 1
        with cap.add_stream(node, queue=4) as s2, cap.add_stream(node) as s3:
            s2.pull(timeout=10)
            s3.pull(timeout=10)


def test_no_fds_or_threads_left_after_the_context_managers(producer):
    p = producer("--streams", "1", "--size", "64x48", "--rate", "60")
    use(p.node)  # warm-up: loading the library and pw_init's one-time state
    before = counts()
    for _ in range(3):
        use(p.node)
    assert counts() == before


def test_a_view_keeps_its_frame_and_releasing_it_frees_the_buffer(producer):
    p = producer("--size", "64x48", "--rate", "60")
    with Capture() as cap, cap.add_stream(p.node, max_held=2) as s:
        f = s.pull(timeout=10)
        native = weakref.ref(f._ref)  # owns the C frame reference
        a = f.array()
        seq = f.sequence
        f.release()
        # The array still reads the frame's memory: the C frame is not released.
        assert native() is not None and native().ptr
        assert s.stats().held_now >= 1
        assert a[0].tobytes() == bytes(a[0].tobytes()) and a.shape == (48, 64, 4)
        del a
        gc.collect()
        # The last view gone, the frame went back (wrd_frame_release ran).
        assert native() is None
        assert s.pull(timeout=10).sequence > seq
        assert s.stats().held_max <= 2
