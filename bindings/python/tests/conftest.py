"""Fixtures: a private PipeWire (scripts/sandbox.sh) for the whole session,
producers in it (wrd-testsrc, GStreamer), and the library under test.

The sandbox's environment is exported into this process, so
``Capture()`` (default daemon) talks to the sandbox, never to the user's
PipeWire. The library: ``$WRD_CAPTURE_LIB``, else target/debug or
target/release of this checkout.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "bindings" / "python"))


def _built(name):
    for profile in ("debug", "release"):
        p = ROOT / "target" / profile / name
        if p.exists():
            return p
    return None


if not os.environ.get("WRD_CAPTURE_LIB") and not os.environ.get("WRD_CAPTURE_PREFIX"):
    lib = _built("libwrd_capture.so")
    if lib is None:
        raise RuntimeError("build the library first (cargo build) or set WRD_CAPTURE_LIB")
    os.environ["WRD_CAPTURE_LIB"] = str(lib)


@pytest.fixture(scope="session")
def sandbox():
    """Start a sandbox owned by this process; export its environment."""
    script = ROOT / "scripts" / "sandbox.sh"
    out = subprocess.run(
        ["bash", str(script), "start", "--owner", str(os.getpid())],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if out.returncode != 0:
        raise RuntimeError(f"sandbox.sh start failed: {out.stderr}")
    env = {}
    for line in out.stdout.splitlines():
        if line.startswith("export "):
            k, v = line[len("export "):].split("=", 1)
            env[k] = subprocess.run(
                ["bash", "-c", f"printf %s {v}"], capture_output=True, text=True
            ).stdout
    saved = {k: os.environ.get(k) for k in list(env) + ["PIPEWIRE_REMOTE", "PIPEWIRE_CORE"]}
    os.environ.update(env)
    os.environ.pop("PIPEWIRE_REMOTE", None)
    os.environ.pop("PIPEWIRE_CORE", None)
    yield env
    subprocess.run(["bash", str(script), "stop", env["WRD_SANDBOX_DIR"]])
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def testsrc_binary():
    env = os.environ.get("WRD_TESTSRC_BIN")
    if env:
        return env
    b = _built("wrd-testsrc")
    if b is None:
        subprocess.run(["cargo", "build", "-p", "wrd-testsrc"], cwd=ROOT, check=True)
        b = _built("wrd-testsrc")
    return str(b)


class Producer:
    def __init__(self, args):
        self.proc = subprocess.Popen(
            [testsrc_binary(), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.nodes = []  # (index, id, name)
        deadline = time.monotonic() + 15
        for line in self.proc.stdout:
            parts = line.split()
            if parts[:1] == ["node"]:
                self.nodes.append((int(parts[1]), int(parts[2]), parts[3]))
            elif parts == ["ready"]:
                break
            if time.monotonic() > deadline:
                break
        if not self.nodes:
            self.kill()
            raise RuntimeError(f"wrd-testsrc {args} did not become ready")

    @property
    def node(self):
        return self.nodes[0][1]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def producer(sandbox):
    """producer(*args): a wrd-testsrc in the sandbox, killed at teardown."""
    made = []

    def make(*args):
        p = Producer(args)
        made.append(p)
        return p

    yield make
    for p in made:
        p.kill()


def node_id_by_name(name, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["pw-dump"], capture_output=True, text=True).stdout
        try:
            objs = json.loads(out or "[]")
        except json.JSONDecodeError:
            objs = []
        for o in objs:
            props = (o.get("info") or {}).get("props") or {}
            if o.get("type", "").endswith("Node") and props.get("node.name") == name:
                return o["id"]
        time.sleep(0.1)
    raise RuntimeError(f"node {name} did not appear")


class Gst:
    """GStreamer's videotestsrc checkers-8 through pipewiresink mode=provide,
    and the same picture written to a file as the reference."""

    def __init__(self, fmt, w, h, tmp):
        self.fmt, self.w, self.h = fmt, w, h
        caps = f"video/x-raw,format={fmt},width={w},height={h},framerate=30/1"
        name = f"py-gst-{fmt}-{os.getpid()}"
        self.proc = subprocess.Popen(
            ["gst-launch-1.0", "-q", "videotestsrc", "is-live=true", "pattern=checkers-8", "!",
             caps, "!", "pipewiresink", "mode=provide",
             f"stream-properties=p,media.class=Video/Source,media.type=Video,node.name={name}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.tmp = tmp
        self.reference = self.render(fmt)
        self.node = node_id_by_name(name)

    def render(self, fmt):
        """The same picture as GStreamer writes it in ``fmt``."""
        caps = f"video/x-raw,format={fmt},width={self.w},height={self.h},framerate=30/1"
        ref = self.tmp / f"ref-{fmt}.raw"
        subprocess.run(
            ["gst-launch-1.0", "-q", "videotestsrc", "num-buffers=1", "pattern=checkers-8", "!",
             caps, "!", "filesink", f"location={ref}"],
            check=True,
        )
        return ref.read_bytes()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def gst(sandbox, tmp_path):
    """gst(fmt, w, h): a GStreamer producer and its reference bytes."""
    if shutil.which("gst-launch-1.0") is None:
        raise RuntimeError("gst-launch-1.0 missing (scripts/install-deps.sh installs it)")
    made = []

    def make(fmt, w, h):
        g = Gst(fmt, w, h, tmp_path)
        made.append(g)
        return g

    yield make
    for g in made:
        g.kill()
