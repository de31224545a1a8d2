#!/usr/bin/env python3
"""Benchmarks: wrd-capture side by side with GStreamer's pipewiresrc (issue 8).

    python3 bench/run.py --repeat 5            # full run, writes docs/bench/
    python3 bench/run.py --quick               # 1 repeat, short windows, no files written
    python3 bench/run.py --configs 1080p60,64x64@1000 --repeat 3

Per configuration: a private PipeWire (scripts/sandbox.sh), one wrd-testsrc
producer, then, in turn and repeated --repeat times, these consumers:

  wrd-count   target/release/wrd-bench --mode count  (wrd-capture, callback counts)
  wrd-bgra    target/release/wrd-bench --mode bgra   (wrd-capture, full BGRA conversion)
  wrd-rt      target/release/wrd-bench --mode count --realtime (frames on PipeWire's data thread)
  gst         target/release/wrd-bench --mode gst    (pipewiresrc ! fakesink signal-handoffs=true,
                                                      in process; counts frames, seq gaps, latency)
  gst-launch  gst-launch-1.0 pipewiresrc ! fakesink  (plain, as a user runs it; CPU and memory only,
                                                      per frame with the `gst` fps of the same repeat)

Each wrd-bench run waits for the first frame, warms up, measures a window and
prints JSON (see tools/wrd-bench/src/main.rs). Over the same window the runner
samples the PipeWire daemon's and the producer's CPU (sum of
/proc/PID/task/*/schedstat). Writes docs/bench/RESULTS.md, chart.png and
results.json (not with --quick unless --write).
"""

import argparse
import datetime
import json
import math
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "docs", "bench")  # --out
SANDBOX = os.path.join(ROOT, "scripts", "sandbox.sh")
BENCH = os.path.join(ROOT, "target", "release", "wrd-bench")  # --bin-dir
TESTSRC = os.path.join(ROOT, "target", "release", "wrd-testsrc")

# name, producer args, streams. The producer repaints only what changed
# (--repaint-damage, same pictures): its full repaint (4.5 ms per 4K BGRx
# frame) would compete with the consumers on this 2-core machine.
PRODUCER_ARGS = ["--repaint-damage"]
CONFIGS = [
    ("1080p60", ["--size", "1920x1080", "--rate", "60", "--format", "BGRx"], 1),
    ("4K60", ["--size", "3840x2160", "--rate", "60", "--format", "BGRx"], 1),
    ("1080p144", ["--size", "1920x1080", "--rate", "144", "--format", "BGRx"], 1),
    ("64x64@1000", ["--size", "64x64", "--rate", "1000", "--format", "BGRx"], 1),
    ("8x1080p60", ["--size", "1920x1080", "--rate", "60", "--format", "BGRx", "--streams", "8"], 8),
    ("1080p60-NV12", ["--size", "1920x1080", "--rate", "60", "--format", "NV12"], 1),
]
CONSUMERS = ["wrd-count", "wrd-rt", "wrd-bgra", "gst", "gst-launch"]
# The library's count-only consumers the goals are checked for.
WRD_COUNTERS = ["wrd-count", "wrd-rt"]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def task_cpu_ns(pid):
    """CPU time of a process in ns: schedstat run time summed over its threads."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def status_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


class Sandbox:
    def __init__(self):
        out = subprocess.run([SANDBOX, "start", "--owner", str(os.getpid())],
                             capture_output=True, text=True, check=True).stdout
        self.env = dict(os.environ)
        for line in out.splitlines():
            parts = shlex.split(line)
            if parts and parts[0] == "export":
                k, v = parts[1].split("=", 1)
                self.env[k] = v
            elif parts and parts[0] == "unset":
                for k in parts[1:]:
                    self.env.pop(k, None)
        self.dir = self.env["WRD_SANDBOX_DIR"]
        self.pids = {}
        with open(os.path.join(self.dir, "pids")) as f:
            for line in f:
                p = line.split()
                if len(p) >= 2:
                    self.pids[p[0]] = int(p[1])

    def stop(self):
        subprocess.run([SANDBOX, "stop", self.dir], check=False)


class Producer:
    def __init__(self, sb, args):
        self.log = open(os.path.join(sb.dir, "wrd-testsrc.log"), "a")
        self.p = subprocess.Popen([TESTSRC] + PRODUCER_ARGS + args, env=sb.env, stdout=subprocess.PIPE,
                                  stderr=self.log, text=True)
        self.nodes = []
        deadline = time.time() + 15
        while time.time() < deadline:
            line = self.p.stdout.readline()
            if not line:
                raise RuntimeError("wrd-testsrc exited before ready")
            w = line.split()
            if w[0] == "node":
                self.nodes.append(int(w[2]))
            elif w[0] == "ready":
                return
        raise RuntimeError("wrd-testsrc not ready in 15 s")

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(5)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.log.close()


def gst_chain(nodes):
    """One `pipewiresrc ! fakesink` chain per node, as gst-launch-1.0 arguments."""
    args = []
    for n in nodes:
        args += ["pipewiresrc", f"path={n}", "stream-properties=p,media.type=Video", "!", "fakesink"]
    return args


def consumer_order(consumers, r):
    """The consumers in repeat r's order: start at r, step s, where s runs
    through the steps coprime with the count, so that a consumer's
    predecessor differs from repeat to repeat."""
    n = len(consumers)
    if n < 3:
        return consumers[r % n:] + consumers[:r % n]
    steps = [s for s in range(1, n) if math.gcd(s, n) == 1]
    s = steps[r % len(steps)]
    return [consumers[(r + i * s) % n] for i in range(n)]


def run_bench(sb, prod, mode, nodes, seconds, warmup, extra=()):
    """One wrd-bench run; returns its JSON plus daemon/producer CPU over its window."""
    cmd = [BENCH, "--mode", mode, "--nodes", ",".join(map(str, nodes)),
           "--seconds", str(seconds), "--warmup", str(warmup), *extra]
    p = subprocess.Popen(cmd, env=sb.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    d0 = pr0 = t0 = None
    res = None
    for line in p.stdout:
        line = line.strip()
        if line == "window":
            t0 = time.monotonic()
            d0 = task_cpu_ns(sb.pids["pipewire"])
            pr0 = task_cpu_ns(prod.p.pid)
        elif line.startswith("{"):
            t1 = time.monotonic()
            d1 = task_cpu_ns(sb.pids["pipewire"])
            pr1 = task_cpu_ns(prod.p.pid)
            res = json.loads(line)
            if d0 is not None and d1 is not None:
                res["daemon_cpu_pct"] = (d1 - d0) / 1e9 / (t1 - t0) * 100
            if pr0 is not None and pr1 is not None:
                res["producer_cpu_pct"] = (pr1 - pr0) / 1e9 / (t1 - t0) * 100
    err = p.stderr.read()
    rc = p.wait()
    if rc != 0 or res is None:
        raise RuntimeError(f"{' '.join(cmd)}: exit {rc}: {err.strip()[-3000:]}")
    return res


def run_gst_launch(sb, prod, nodes, seconds, warmup, settle):
    """Plain gst-launch-1.0: CPU and RssAnon sampled from outside."""
    cmd = ["gst-launch-1.0", "-q"] + gst_chain(nodes)
    p = subprocess.Popen(cmd, env=sb.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(settle + warmup)
        if p.poll() is not None:
            raise RuntimeError(f"gst-launch exited {p.returncode}: {p.stderr.read()[-500:]}")
        t0 = time.monotonic()
        c0, d0, pr0 = task_cpu_ns(p.pid), task_cpu_ns(sb.pids["pipewire"]), task_cpu_ns(prod.p.pid)
        time.sleep(seconds)
        c1, d1, pr1 = task_cpu_ns(p.pid), task_cpu_ns(sb.pids["pipewire"]), task_cpu_ns(prod.p.pid)
        t1 = time.monotonic()
        rss = status_kb(p.pid, "RssAnon:")
    finally:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    w = t1 - t0
    return {"mode": "gst-launch", "streams": len(nodes), "window_s": w, "cpu_ns": c1 - c0,
            "cpu_pct": (c1 - c0) / 1e9 / w * 100, "rss_anon_kb": rss,
            "daemon_cpu_pct": (d1 - d0) / 1e9 / w * 100,
            "producer_cpu_pct": (pr1 - pr0) / 1e9 / w * 100}


def run_config(name, pargs, n_streams, opts):
    log(f"== {name}: wrd-testsrc {' '.join(PRODUCER_ARGS + pargs)} (load {loadavg()})")
    sb = Sandbox()
    reps = []
    load_start = loadavg()
    try:
        prod = Producer(sb, pargs)
        try:
            nodes = prod.nodes
            assert len(nodes) == n_streams, nodes
            secs = opts.seconds
            for r in range(opts.repeat):
                rep = {}
                # What a consumer meets depends on how the one before it left
                # (after gst-launch is interrupted the producer takes ~150 ms
                # longer to serve the next one at 4K), so the order changes
                # every repeat and no consumer always follows the same one:
                # start at consumer r, step by 1, 2, 3, ... (coprime with
                # the count, so each is visited once).
                order = consumer_order(opts.consumers, r)
                for c in order:
                    if opts.fresh_producer:
                        # A new producer for every consumer, as a new
                        # screencast session gets: nothing is inherited from
                        # the consumer before (see notes.md, "First frame").
                        prod.stop()
                        prod = Producer(sb, pargs)
                        nodes = prod.nodes
                        assert len(nodes) == n_streams, nodes
                    try:
                        if c == "gst-launch":
                            res = run_gst_launch(sb, prod, nodes, secs, opts.warmup, opts.settle)
                        else:
                            mode = {"wrd-count": "count", "wrd-rt": "count", "wrd-bgra": "bgra", "gst": "gst"}[c]
                            extra = ["--realtime"] if c == "wrd-rt" else []
                            res = run_bench(sb, prod, mode, nodes, secs, opts.warmup, extra)
                    except Exception as e:  # noqa: BLE001 - recorded, the run goes on
                        log(f"   {c}: FAILED: {e}")
                        res = {"mode": c, "error": str(e)}
                    res["load"] = loadavg()
                    rep[c] = res
                    if "error" not in res:
                        log(f"   rep {r + 1} {c:10s} cpu/frame {res.get('cpu_us_per_frame', float('nan')):8.2f} us"
                            f"  fps {res.get('fps_per_stream', float('nan')):7.2f}"
                            f"  drops {res.get('drops', '-')}/{res.get('seq_gaps', '-')}"
                            f"  p99 {res.get('lat_p99_us', float('nan')):8.1f} us"
                            f"  rss {res.get('rss_anon_kb')} kB  pw {res['daemon_cpu_pct']:.1f}%"
                            f"  prod {res['producer_cpu_pct']:.1f}%  load {res['load']}")
                    time.sleep(0.3)
                # gst-launch's frames: the in-process gst's fps of the same
                # repeat (it cannot count its own).
                gl, g = rep.get("gst-launch"), rep.get("gst")
                if gl and "error" not in gl and g and g.get("fps_per_stream"):
                    frames = g["fps_per_stream"] * n_streams * gl["window_s"]
                    gl["cpu_us_per_frame"] = gl["cpu_ns"] / 1e3 / frames
                reps.append(rep)
        finally:
            prod.stop()
    finally:
        sb.stop()
    return {"name": name, "producer_args": PRODUCER_ARGS + pargs, "streams": n_streams, "reps": reps,
            "load_start": load_start, "load_end": loadavg()}


# ---- summaries ---------------------------------------------------------------

def vals(cfg, consumer, key):
    out = []
    for rep in cfg["reps"]:
        r = rep.get(consumer, {})
        v = r.get(key)
        if isinstance(v, (int, float)) and "error" not in r:
            out.append(v)
    return out


def ratios(cfg, a, b, key="cpu_us_per_frame"):
    out = []
    for rep in cfg["reps"]:
        x, y = rep.get(a, {}).get(key), rep.get(b, {}).get(key)
        if isinstance(x, (int, float)) and isinstance(y, (int, float)) and y > 0:
            out.append(x / y)
    return out


def mm(v, fmt="{:.1f}"):
    if not v:
        return "–"
    return (fmt + " / " + fmt).format(min(v), statistics.median(v))


def med(v, fmt="{:.1f}"):
    return fmt.format(statistics.median(v)) if v else "–"


def summarize(cfg, consumer):
    n = cfg["streams"]
    first = []
    for rep in cfg["reps"]:
        r = rep.get(consumer, {})
        if "first_frame_ms" in r:
            first.append(max(r["first_frame_ms"]))
    rss = [v / n for v in vals(cfg, consumer, "rss_anon_kb")]
    return {
        "cpu": vals(cfg, consumer, "cpu_us_per_frame"),
        "cpu_pct": vals(cfg, consumer, "cpu_pct"),
        "fps": vals(cfg, consumer, "fps_per_stream"),
        "frames": vals(cfg, consumer, "frames"),
        "drops": vals(cfg, consumer, "drops"),
        "gaps": vals(cfg, consumer, "seq_gaps"),
        "p50": vals(cfg, consumer, "lat_p50_us"),
        "p99": vals(cfg, consumer, "lat_p99_us"),
        "max": vals(cfg, consumer, "lat_max_us"),
        "first": first,
        "rss_per_stream": rss,
        "daemon": vals(cfg, consumer, "daemon_cpu_pct"),
        "producer": vals(cfg, consumer, "producer_cpu_pct"),
        "errors": sum(1 for rep in cfg["reps"] if "error" in rep.get(consumer, {})),
    }


def table(results):
    head = ("| config | consumer | CPU µs/frame min / med | ×gst min / med | ×gst-launch med | CPU % of a core (med) "
            "| fps/stream (med) | frames (med) | frames lost: seq gaps (library drops), worst repeat | latency p50 / p99 / max µs (med) "
            "| first frame ms min / med | RssAnon per stream MB (med) | PipeWire daemon CPU % (med) | producer CPU % (med) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for cfg in results:
        for c in CONSUMERS:
            if not any(c in rep for rep in cfg["reps"]):
                continue
            s = summarize(cfg, c)
            if c.startswith("wrd"):
                rg = mm(ratios(cfg, c, "gst"), "{:.2f}")
                rl = med(ratios(cfg, c, "gst-launch"), "{:.2f}")
            else:
                rg = rl = ""
            # Seq gaps count every frame the callback never saw, the library's
            # own drops (superseded, held limit) included.
            worst = max(zip(s["gaps"], s["drops"]), default=None)
            lost = f"{worst[0]} ({worst[1]})" if worst else "–"
            lat = (f"{med(s['p50'])} / {med(s['p99'])} / {med(s['max'])}" if s["p50"] else "–")
            err = f" ({s['errors']} failed)" if s["errors"] else ""
            lines.append(
                f"| {cfg['name']} | {c}{err} | {mm(s['cpu'])} | {rg} | {rl} | {med(s['cpu_pct'], '{:.2f}')} "
                f"| {med(s['fps'])} | {med(s['frames'], '{:.0f}')} | {lost} "
                f"| {lat} | {mm(s['first'])} | {med([x / 1024 for x in s['rss_per_stream']], '{:.2f}')} "
                f"| {med(s['daemon'])} | {med(s['producer'])} |")
    return "\n".join(lines)


def goals(results):
    by = {c["name"]: c for c in results}
    out = []

    def line(ok, text):
        out.append(f"- {'MET' if ok else 'MISSED'}: {text}")

    present = [w for w in WRD_COUNTERS if any(summarize(cfg, w)["cpu"] for cfg in results)]
    for wrd in present:
        for peer in ("gst-launch", "gst"):
            half = []
            for cfg in results:
                r = ratios(cfg, wrd, peer)
                if r:
                    half.append((cfg["name"], statistics.median(r), max(r)))
            if half:
                worst = max(half, key=lambda x: x[1])
                line(all(m <= 0.5 for _, m, _ in half),
                     f"consumer CPU per frame ({wrd}) at most half of the peer's ({peer}) in every configuration "
                     "(median of the per-repeat ratios): "
                     + ", ".join(f"{n} ×{m:.2f} (worst repeat ×{w:.2f})" for n, m, w in half)
                     + f"; worst median {worst[0]}")
    for wrd in present:
        lost = []
        for cfg in results:
            s = summarize(cfg, wrd)
            lost.append((cfg["name"], sum(s["gaps"])))
        line(all(x == 0 for _, x in lost), f"zero drops ({wrd}, frames missing from the producer's seq, which "
             "includes the library's own drops, summed over all repeats): "
             + ", ".join(f"{n} {x}" for n, x in lost))
    for wrd in present:
        for name in ("1080p60", "1080p144"):
            if name in by:
                p99 = summarize(by[name], wrd)["p99"]
                if p99:
                    line(statistics.median(p99) < 1000,
                         f"latency p99 under 1 ms at {name} ({wrd}): median {statistics.median(p99):.0f} µs, "
                         f"worst repeat {max(p99):.0f} µs")
    for wrd in present:
        firsts = []
        for cfg in results:
            f = summarize(cfg, wrd)["first"]
            if f:
                firsts.append((cfg["name"], statistics.median(f), max(f)))
        if firsts:
            line(all(m <= 100 for _, m, _ in firsts),
                 f"first frame within 100 ms of add_stream ({wrd}, median; the spec allows 500 ms): "
                 + ", ".join(f"{n} {m:.0f} ms (max {w:.0f})" for n, m, w in firsts))
    for wrd in present:
        mems = []
        for cfg in results:
            r = summarize(cfg, wrd)["rss_per_stream"]
            if r:
                mems.append((cfg["name"], statistics.median(r) / 1024))
        if mems:
            line(all(m < 4 for _, m in mems), f"private memory (RssAnon / streams, {wrd}) under 4 MB per stream: "
                 + ", ".join(f"{n} {m:.2f} MB" for n, m in mems))
    for wrd in present:
        if "8x1080p60" in by:
            pct = summarize(by["8x1080p60"], wrd)["cpu_pct"]
            if pct:
                line(statistics.median(pct) < 5,
                     f"8 streams of 1080p@60 under 5% of one core in total ({wrd}): median "
                     f"{statistics.median(pct):.2f}%, min {min(pct):.2f}%")
    return "\n".join(out)


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) // 1024} MiB"
    except OSError:
        pass

    def out(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"
    return {
        "cpu": cpu, "cores": os.cpu_count(), "mem": mem, "kernel": platform.release(),
        "pipewire": " ".join(
            subprocess.run(["pipewire", "--version"], capture_output=True, text=True).stdout.split()),
        "gstreamer": out(["gst-launch-1.0", "--version"]),
        # Where the binaries were built elsewhere (bench/device/run.sh), the
        # builder's rustc and commit come in the environment.
        "rustc": os.environ.get("WRD_BENCH_RUSTC") or out(["rustc", "-V"]),
        "commit": os.environ.get("WRD_BENCH_COMMIT") or out(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]),
        "note": os.environ.get("WRD_BENCH_MACHINE_NOTE", "shared with other work"),
    }


def chart(results, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing (apt-get install python3-matplotlib): no chart")
        return False
    names = [c["name"] for c in results]
    series = [("wrd-count", "#1f77b4"), ("wrd-rt", "#2ca02c"), ("wrd-bgra", "#aec7e8"), ("gst", "#d62728"),
              ("gst-launch", "#ff9896")]
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(11, 8))
    width = 0.16
    for i, (c, col) in enumerate(series):
        ys = [statistics.median(summarize(cfg, c)["cpu"]) if summarize(cfg, c)["cpu"] else 0 for cfg in results]
        a1.bar([x + (i - 2) * width for x in range(len(names))], ys, width, label=c, color=col)
    a1.set_yscale("log")
    a1.set_ylabel("consumer CPU per frame, µs (median, log)")
    a1.set_xticks(range(len(names)))
    a1.set_xticklabels(names)
    a1.legend(fontsize=8)
    a1.grid(axis="y", alpha=0.3)
    for i, (c, col) in enumerate([("wrd-count", "#1f77b4"), ("wrd-rt", "#2ca02c"), ("gst", "#d62728")]):
        p50 = [statistics.median(summarize(cfg, c)["p50"]) if summarize(cfg, c)["p50"] else 0 for cfg in results]
        p99 = [statistics.median(summarize(cfg, c)["p99"]) if summarize(cfg, c)["p99"] else 0 for cfg in results]
        xs = [x + (i - 1) * 0.27 for x in range(len(names))]
        a2.bar(xs, p99, 0.27, color=col, alpha=0.35, label=f"{c} p99")
        a2.bar(xs, p50, 0.27, color=col, label=f"{c} p50")
    a2.axhline(1000, color="k", lw=0.8, ls="--", label="1 ms goal (p99)")
    a2.set_yscale("log")
    a2.set_ylabel("latency pts → callback, µs (median of repeats, log)")
    a2.set_xticks(range(len(names)))
    a2.set_xticklabels(names)
    a2.legend(fontsize=8)
    a2.grid(axis="y", alpha=0.3)
    fig.suptitle("wrd-capture vs pipewiresrc ! fakesink")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return True


def write_results(results, opts, argv, started, finished, mach, reproduce=None):
    default_reproduce = f"""Generated by `{' '.join(['python3', 'bench/run.py'] + argv)}` (issue 8). Raw numbers: `results.json`.
To reproduce: `python3 bench/run.py --repeat 5` (builds `wrd-bench` and `wrd-testsrc` in release first,
about 12 minutes; `--quick` for a 2-minute check that writes nothing; `--from-json FILE` rewrites this
page and the chart from saved numbers)."""
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump({"machine": mach, "started": started, "finished": finished, "argv": argv,
                   "opts": {"repeat": opts.repeat, "seconds": opts.seconds, "warmup": opts.warmup,
                            "fresh_producer": getattr(opts, "fresh_producer", False)},
                   "configs": results}, f, indent=1)
    have_chart = chart(results, os.path.join(OUT, "chart.png"))
    notes = ""
    np = os.path.join(OUT, "notes.md")
    if os.path.exists(np):
        with open(np) as f:
            notes = f.read()
    loads = ", ".join(f"{c['name']} {c['load_start']}→{c['load_end']}" for c in results)
    md = f"""# Benchmarks: wrd-capture vs GStreamer `pipewiresrc`

{reproduce or default_reproduce}

- Date: {started} – {finished} (UTC)
- Machine: {mach['cpu']}, {mach['cores']} cores, {mach['mem']}, Linux {mach['kernel']}; {mach.get('note', 'shared with other work')}
  (1-min load average at start→end of each configuration: {loads})
- Software: {mach['pipewire']}; {mach['gstreamer']}; {mach['rustc']}; commit {mach['commit']}
- Each configuration: a private PipeWire + WirePlumber (`scripts/sandbox.sh start`), one producer
  `target/release/wrd-testsrc {' '.join(PRODUCER_ARGS)} ARGS` (ARGS in results.json), then per repeat ({opts.repeat}×) each consumer in turn (in an order that changes every repeat, so none always follows the same one: `consumer_order`{"; a new producer for every consumer (`--fresh-producer`)" if getattr(opts, "fresh_producer", False) else ""}), measured over
  {opts.seconds} s after its first frame plus {opts.warmup} s warm-up.

Configurations (producer arguments):

{chr(10).join(f"- {c['name']}: `wrd-testsrc {' '.join(c['producer_args'])}`" for c in results)}

Consumers (all on the producer's node(s), one connection per process):

| name | command |
|---|---|
| wrd-count | `target/release/wrd-bench --mode count --nodes IDS --seconds {opts.seconds} --warmup {opts.warmup}`: wrd-capture, a frame callback that only counts (and reads the clock for latency) |
| wrd-rt | `... --mode count --realtime`: as wrd-count, with `StreamConfig::realtime` (`WRD_STREAM_FLAG_REALTIME`): the callback runs on PipeWire's data thread, one thread wake-up per frame |
| wrd-bgra | `... --mode bgra`: the callback converts every frame, in full, to BGRA (`Frame::convert_into`, 1 thread) |
| gst | `... --mode gst`: `pipewiresrc path=ID stream-properties="p,media.type=Video" ! fakesink sync=false signal-handoffs=true` in process (dlopen), a C handoff handler counts, reads `GST_BUFFER_OFFSET` (the producer's seq) and pts |
| gst-launch | `gst-launch-1.0 -q pipewiresrc path=ID stream-properties=p,media.type=Video ! fakesink` as a user runs it (fakesink's default is `sync=false`), sampled from outside; per frame with the `gst` fps of the same repeat |

What is measured:
- CPU per frame: the consumer process's CPU over the window (sum of `/proc/PID/task/*/schedstat` run
  times, i.e. user + system at ns resolution; `/proc/PID/stat` utime+stime ticks are in results.json too)
  divided by the frames its callbacks got. Ratios (×gst) are computed per repeat, within the same run.
- Frames lost: gaps in the producer's header seq as seen by the callback (every frame produced that the
  callback never got); in parentheses wrd-capture's own `Stream::stats()` drops, a subset of them.
- Latency: CLOCK_MONOTONIC in the callback minus the producer's pts (wrd-testsrc stamps CLOCK_MONOTONIC after
  painting the frame); gst: pts + pipeline base time.
- First frame: from just before `add_stream` (gst: from READY→PLAYING, the connection already made) to the
  first callback.
- Memory: `RssAnon` of the consumer process at the end of the window divided by the streams; the producer's
  memfd buffers are shared mappings (`RssShmem`) and not in it. It includes the whole process (PipeWire
  client library, Rust/GStreamer runtime).
- PipeWire daemon and producer CPU: same schedstat sum, over the same window.

## Results

{opts.repeat} repeats; min / median over repeats.

{table(results)}

{"![CPU per frame and latency per configuration](chart.png)" if have_chart else "(no chart: matplotlib missing)"}

## Goals

{goals(results)}

{notes}
"""
    with open(os.path.join(OUT, "RESULTS.md"), "w") as f:
        f.write(md)
    log(f"wrote {OUT}/RESULTS.md, results.json{', chart.png' if have_chart else ''}")


def main():
    global OUT, BENCH, TESTSRC
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=4.0, help="measurement window")
    ap.add_argument("--warmup", type=float, default=1.0, help="after the first frame")
    ap.add_argument("--settle", type=float, default=1.0,
                    help="gst-launch: seconds allowed for connecting before the warm-up")
    ap.add_argument("--configs", default="", help="comma-separated subset of: "
                    + ", ".join(c[0] for c in CONFIGS))
    ap.add_argument("--consumers", default=",".join(CONSUMERS))
    ap.add_argument("--quick", action="store_true", help="1 repeat, 2 s windows, no files unless --write")
    ap.add_argument("--write", action="store_true", help="write docs/bench also with --quick")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--fresh-producer", action="store_true",
                    help="start a new producer for every consumer run (first frames as a new screencast "
                    "session sees them, whatever the consumer before did)")
    ap.add_argument("--from-json", metavar="FILE", nargs="+",
                    help="only rewrite RESULTS.md and chart.png from results.json files (e.g. after editing "
                    "notes.md); several files (runs of different --configs) are merged in the order given")
    ap.add_argument("--out", default=OUT, help="where RESULTS.md, results.json, chart.png go and notes.md is "
                    "read from (default docs/bench)")
    ap.add_argument("--reproduce", metavar="TEXT",
                    help="with --from-json: the page's opening paragraph (how the numbers were made), "
                    "instead of the local command line")
    ap.add_argument("--bin-dir", help="take wrd-bench and wrd-testsrc from DIR (implies --no-build)")
    argv = sys.argv[1:]
    opts = ap.parse_args()
    OUT = os.path.abspath(opts.out)
    if opts.bin_dir:
        BENCH = os.path.join(opts.bin_dir, "wrd-bench")
        TESTSRC = os.path.join(opts.bin_dir, "wrd-testsrc")
        opts.no_build = True
    if opts.from_json:
        saved = []
        for path in opts.from_json:
            with open(path) as f:
                saved.append(json.load(f))
        first, last = saved[0], saved[-1]
        old = argparse.Namespace(**first["opts"]) if "opts" in first else opts
        if len(saved) > 1 and not opts.reproduce:
            ap.error("several --from-json files: say how they were made with --reproduce")
        configs = [c for s in saved for c in s["configs"]]
        write_results(configs, old, first["argv"], first["started"], last["finished"], first["machine"],
                      opts.reproduce)
        return
    if opts.quick:
        opts.repeat, opts.seconds, opts.warmup = 1, 2.0, 0.5
    opts.consumers = [c for c in opts.consumers.split(",") if c]
    if not opts.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "wrd-bench", "-p", "wrd-testsrc"],
                       cwd=ROOT, check=True)
    want = [c for c in opts.configs.split(",") if c]
    configs = [c for c in CONFIGS if not want or c[0] in want]
    mach = machine()
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    results = []
    for name, pargs, n in configs:
        results.append(run_config(name, pargs, n, opts))
    finished = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    print(table(results))
    print()
    print(goals(results))
    if not opts.quick or opts.write:
        write_results(results, opts, argv, started, finished, mach)


if __name__ == "__main__":
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != "/usr/bin/python3" \
                and not os.environ.get("WRD_BENCH_REEXEC"):
            os.environ["WRD_BENCH_REEXEC"] = "1"
            os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    main()
