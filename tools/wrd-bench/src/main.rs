//! Benchmark consumer, driven by `bench/run.py` (see `docs/bench/RESULTS.md`).
//!
//! ```text
//! wrd-bench --mode count|bgra|gst --nodes ID[,ID...] [--seconds S] [--warmup W] [--realtime]
//!           [--first-frame-timeout S] [--gst-sync] [--buffers N]
//! ```
//!
//! - `count`: wrd-capture, a frame callback that only counts (and notes the
//!   latency from the producer's pts).
//! - `bgra`: wrd-capture, a frame callback that converts every frame in full
//!   to BGRA (`Frame::convert_into`, one thread) into a buffer of its own.
//! - `gst`: the peer, GStreamer's `pipewiresrc ! fakesink` (one chain per
//!   node) in this process, loaded with dlopen; `fakesink signal-handoffs=true`
//!   with a handoff handler that counts, reads the buffer's offset (the
//!   producer's header seq) and pts. The handler adds a signal emission per
//!   buffer to the peer's cost; `bench/run.py` also runs plain
//!   `gst-launch-1.0` for the CPU figure without it.
//!
//! All streams are added on one connection. After every stream has its first
//! frame and `--warmup` seconds more, the measurement window opens (a line
//! `window` on stdout), lasts `--seconds`, and one JSON line of results
//! follows. CPU is this process's: the sum of `/proc/self/task/*/schedstat`
//! run times (ns) and `/proc/self/stat` utime+stime (clock ticks).
//!
//! `WRD_BENCH_EVENTS=1` prints every stream event on stderr, with the
//! milliseconds since `add_stream`.

use std::ffi::{c_char, c_int, c_void, CString};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wrd_capture::convert::DstFormat;
use wrd_capture::{monotonic_ns, Capture, CaptureOptions, Event, Frame, StreamConfig, StreamState};

static MEASURING: AtomicBool = AtomicBool::new(false);
/// The GStreamer pipeline's base time (ns), once it plays.
static GST_BASE_TIME: AtomicU64 = AtomicU64::new(0);

/// What one stream's callback records.
struct Tally {
    added_ns: AtomicU64,
    first_ns: AtomicU64,
    frames: AtomicU64,
    last_seq: AtomicU64,
    seq_gaps: AtomicU64,
    /// Latency pts -> callback in ns, during the window only.
    lat: Mutex<Vec<u64>>,
    convert_errors: AtomicU64,
    /// wrd-capture only: when the first FormatChanged and Streaming events came.
    format_ns: AtomicU64,
    streaming_ns: AtomicU64,
}

impl Tally {
    fn new(capacity: usize) -> Tally {
        Tally {
            added_ns: AtomicU64::new(0),
            first_ns: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            last_seq: AtomicU64::new(u64::MAX),
            seq_gaps: AtomicU64::new(0),
            lat: Mutex::new(Vec::with_capacity(capacity)),
            convert_errors: AtomicU64::new(0),
            format_ns: AtomicU64::new(0),
            streaming_ns: AtomicU64::new(0),
        }
    }

    #[inline]
    fn on_frame(&self, now: u64, pts: i64, seq: u64) {
        if self.frames.fetch_add(1, Ordering::Relaxed) == 0 {
            self.first_ns.store(now, Ordering::Relaxed);
        }
        let last = self.last_seq.swap(seq, Ordering::Relaxed);
        if last != u64::MAX && seq > last + 1 {
            self.seq_gaps.fetch_add(seq - last - 1, Ordering::Relaxed);
        }
        if MEASURING.load(Ordering::Relaxed) && pts > 0 {
            let mut v = self.lat.lock().unwrap();
            if v.len() < v.capacity() {
                v.push(now.saturating_sub(pts as u64));
            }
        }
    }
}

struct Args {
    mode: String,
    nodes: Vec<u32>,
    seconds: f64,
    warmup: f64,
    first_timeout: f64,
    gst_sync: bool,
    /// Frames on PipeWire's data thread (StreamConfig::realtime).
    realtime: bool,
    /// Buffers asked of the producer (0: the library's default).
    buffers: u32,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        mode: "count".into(),
        nodes: Vec::new(),
        seconds: 5.0,
        warmup: 1.0,
        first_timeout: 15.0,
        gst_sync: false,
        realtime: false,
        buffers: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = || it.next().ok_or(format!("{k} needs a value"));
        match k.as_str() {
            "--mode" => a.mode = val()?,
            "--nodes" => {
                a.nodes = val()?
                    .split(',')
                    .map(|s| s.parse().map_err(|e| format!("node {s}: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--seconds" => a.seconds = val()?.parse().map_err(|e| format!("{e}"))?,
            "--warmup" => a.warmup = val()?.parse().map_err(|e| format!("{e}"))?,
            "--first-frame-timeout" => {
                a.first_timeout = val()?.parse().map_err(|e| format!("{e}"))?
            }
            "--gst-sync" => a.gst_sync = true,
            "--realtime" => a.realtime = true,
            "--buffers" => a.buffers = val()?.parse().map_err(|e| format!("{e}"))?,
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    if a.nodes.is_empty() {
        return Err("--nodes is required".into());
    }
    if !matches!(a.mode.as_str(), "count" | "bgra" | "gst") {
        return Err(format!("unknown mode {}", a.mode));
    }
    Ok(a)
}

/// CPU time of this process: (schedstat ns summed over live threads,
/// utime+stime in ns from /proc/self/stat).
fn cpu_ns() -> (u64, u64) {
    let mut sched = 0u64;
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for t in dir.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
                sched += s
                    .split_whitespace()
                    .next()
                    .and_then(|x| x.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields after the comm: index 0 is field 3 (state); utime is field 14.
    let ticks: u64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    (sched, ticks * 1_000_000_000 / hz)
}

fn status_kb(key: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn smaps_kb(key: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return -1.0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("wrd-bench: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("wrd-bench: {e}");
        std::process::exit(1);
    }
}

/// What a consumer backend gives the measuring code.
trait Backend {
    /// Library drops per stream (0 where the backend cannot tell).
    fn drops(&self) -> Vec<u64>;
}

struct WrdBackend {
    _cap: Capture,
    streams: Vec<wrd_capture::Stream>,
}

impl Backend for WrdBackend {
    fn drops(&self) -> Vec<u64> {
        self.streams.iter().map(|s| s.stats().dropped()).collect()
    }
}

fn start_wrd(args: &Args, tallies: &[Arc<Tally>]) -> Result<WrdBackend, String> {
    let cap = Capture::new(
        None,
        CaptureOptions {
            max_streams: args.nodes.len().max(8),
            ..Default::default()
        },
    )
    .map_err(|e| format!("connect: {e}"))?;
    let mut streams = Vec::new();
    for (node, t) in args.nodes.iter().zip(tallies) {
        let t = t.clone();
        let bgra = args.mode == "bgra";
        let mut dst: Vec<u8> = Vec::new();
        let on_frame: Box<dyn FnMut(&Frame) + Send> = Box::new(move |f: &Frame| {
            let now = monotonic_ns();
            t.on_frame(now, f.pts_ns(), f.sequence());
            if bgra {
                let (w, h) = (f.width() as usize, f.height() as usize);
                if dst.len() != w * h * 4 {
                    dst = vec![0u8; w * h * 4];
                }
                if f.convert_into(DstFormat::Bgra, &mut dst, w * 4, false, 1)
                    .is_err()
                {
                    t.convert_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        let t = tallies[streams.len()].clone();
        let te = t.clone();
        let log_events = std::env::var_os("WRD_BENCH_EVENTS").is_some();
        let on_event: Box<dyn FnMut(&Event) + Send> = Box::new(move |e: &Event| {
            let now = monotonic_ns();
            if log_events {
                let since = now.saturating_sub(te.added_ns.load(Ordering::Relaxed));
                eprintln!("wrd-bench: {:9.3} ms {e:?}", since as f64 / 1e6);
            }
            let slot = match e {
                Event::FormatChanged(_) => &te.format_ns,
                Event::StateChanged(StreamState::Streaming) => &te.streaming_ns,
                _ => return,
            };
            let _ = slot.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        });
        t.added_ns.store(monotonic_ns(), Ordering::Relaxed);
        let s = cap
            .add_stream(
                *node,
                StreamConfig {
                    on_frame: Some(on_frame),
                    on_event: Some(on_event),
                    realtime: args.realtime,
                    buffers: if args.buffers > 0 {
                        args.buffers
                    } else {
                        StreamConfig::default().buffers
                    },
                    ..Default::default()
                },
            )
            .map_err(|e| format!("add_stream({node}): {e}"))?;
        streams.push(s);
    }
    Ok(WrdBackend { _cap: cap, streams })
}

// ---- GStreamer through dlopen ------------------------------------------------

type GstInit = unsafe extern "C" fn(*mut c_int, *mut *mut *mut c_char);
type GstParseLaunch = unsafe extern "C" fn(*const c_char, *mut *mut c_void) -> *mut c_void;
type GstBinGetByName = unsafe extern "C" fn(*mut c_void, *const c_char) -> *mut c_void;
type GstSetState = unsafe extern "C" fn(*mut c_void, c_int) -> c_int;
type GstGetState = unsafe extern "C" fn(*mut c_void, *mut c_int, *mut c_int, u64) -> c_int;
type GstGetBaseTime = unsafe extern "C" fn(*mut c_void) -> u64;
type GSignalConnectData = unsafe extern "C" fn(
    *mut c_void,
    *const c_char,
    *const c_void,
    *mut c_void,
    *const c_void,
    c_int,
) -> std::ffi::c_ulong;

const GST_STATE_NULL: c_int = 1;
const GST_STATE_READY: c_int = 2;
const GST_STATE_PLAYING: c_int = 4;
/// Offsets in GstBuffer (GStreamer 1.x, LP64): a 64-byte GstMiniObject, the
/// pool pointer, then pts, dts, duration, offset.
const GST_BUFFER_PTS_OFFSET: usize = 72;
const GST_BUFFER_OFFSET_OFFSET: usize = 96;

unsafe extern "C" fn gst_handoff(
    _sink: *mut c_void,
    buf: *mut c_void,
    _pad: *mut c_void,
    data: *mut c_void,
) {
    let now = monotonic_ns();
    let t = &*(data as *const Tally);
    let pts = std::ptr::read_unaligned((buf as *const u8).add(GST_BUFFER_PTS_OFFSET) as *const u64);
    let seq =
        std::ptr::read_unaligned((buf as *const u8).add(GST_BUFFER_OFFSET_OFFSET) as *const u64);
    let base = GST_BASE_TIME.load(Ordering::Relaxed);
    let pts = if pts == u64::MAX || base == 0 {
        -1
    } else {
        (pts + base) as i64
    };
    t.on_frame(now, pts, seq);
}

struct GstBackend {
    _gst: libloading::Library,
    _gobject: libloading::Library,
    set_state: GstSetState,
    pipeline: *mut c_void,
    n: usize,
}

impl Backend for GstBackend {
    fn drops(&self) -> Vec<u64> {
        vec![0; self.n]
    }
}

impl Drop for GstBackend {
    fn drop(&mut self) {
        // SAFETY: our live pipeline.
        unsafe { (self.set_state)(self.pipeline, GST_STATE_NULL) };
    }
}

fn start_gst(args: &Args, tallies: &[Arc<Tally>]) -> Result<GstBackend, String> {
    // SAFETY: loading the system's GStreamer and GObject; the symbols are
    // used with their C signatures.
    unsafe {
        let gst = libloading::Library::new("libgstreamer-1.0.so.0").map_err(|e| e.to_string())?;
        let gobject = libloading::Library::new("libgobject-2.0.so.0").map_err(|e| e.to_string())?;
        let init: GstInit = *gst.get(b"gst_init\0").map_err(|e| e.to_string())?;
        let parse: GstParseLaunch = *gst.get(b"gst_parse_launch\0").map_err(|e| e.to_string())?;
        let by_name: GstBinGetByName = *gst
            .get(b"gst_bin_get_by_name\0")
            .map_err(|e| e.to_string())?;
        let set_state: GstSetState = *gst
            .get(b"gst_element_set_state\0")
            .map_err(|e| e.to_string())?;
        let get_state: GstGetState = *gst
            .get(b"gst_element_get_state\0")
            .map_err(|e| e.to_string())?;
        let base_time: GstGetBaseTime = *gst
            .get(b"gst_element_get_base_time\0")
            .map_err(|e| e.to_string())?;
        let connect: GSignalConnectData = *gobject
            .get(b"g_signal_connect_data\0")
            .map_err(|e| e.to_string())?;
        init(std::ptr::null_mut(), std::ptr::null_mut());
        let sync = if args.gst_sync { "true" } else { "false" };
        let desc: Vec<String> = args
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                format!(
                    "pipewiresrc path={n} stream-properties=\"p,media.type=Video\" ! \
                     fakesink name=s{i} sync={sync} signal-handoffs=true"
                )
            })
            .collect();
        let desc = CString::new(desc.join("  ")).unwrap();
        let mut err: *mut c_void = std::ptr::null_mut();
        let pipeline = parse(desc.as_ptr(), &mut err);
        if pipeline.is_null() || !err.is_null() {
            return Err("gst_parse_launch failed".into());
        }
        for (i, t) in tallies.iter().enumerate() {
            let name = CString::new(format!("s{i}")).unwrap();
            let sink = by_name(pipeline, name.as_ptr());
            if sink.is_null() {
                return Err(format!("no sink s{i}"));
            }
            connect(
                sink,
                c"handoff".as_ptr(),
                gst_handoff as *const c_void,
                Arc::as_ptr(t) as *mut c_void,
                std::ptr::null(),
                0,
            );
        }
        // NULL -> READY connects to PipeWire; the first-frame time starts at
        // READY -> PLAYING, like wrd-capture's at add_stream.
        set_state(pipeline, GST_STATE_READY);
        get_state(
            pipeline,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            5_000_000_000,
        );
        let now = monotonic_ns();
        for t in tallies {
            t.added_ns.store(now, Ordering::Relaxed);
        }
        set_state(pipeline, GST_STATE_PLAYING);
        let b = GstBackend {
            _gst: gst,
            _gobject: gobject,
            set_state,
            pipeline,
            n: tallies.len(),
        };
        // Base time is set on the way to PLAYING; wait for it.
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            let bt = base_time(pipeline);
            if bt != 0 {
                GST_BASE_TIME.store(bt, Ordering::Relaxed);
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(b)
    }
}

// ---- measuring ---------------------------------------------------------------

fn run(args: &Args) -> Result<(), String> {
    let rss_start = status_kb("RssAnon:");
    let cap_lat = ((args.seconds + 2.0) * 2000.0) as usize;
    let tallies: Vec<Arc<Tally>> = args
        .nodes
        .iter()
        .map(|_| Arc::new(Tally::new(cap_lat)))
        .collect();
    let backend: Box<dyn Backend> = if args.mode == "gst" {
        Box::new(start_gst(args, &tallies)?)
    } else {
        Box::new(start_wrd(args, &tallies)?)
    };
    let t0 = Instant::now();
    while tallies
        .iter()
        .any(|t| t.frames.load(Ordering::Relaxed) == 0)
    {
        if t0.elapsed().as_secs_f64() > args.first_timeout {
            let got: Vec<u64> = tallies
                .iter()
                .map(|t| t.frames.load(Ordering::Relaxed))
                .collect();
            return Err(format!("no first frame on every stream: frames {got:?}"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_secs_f64(args.warmup));

    let snap = |b: &dyn Backend| {
        let frames: Vec<u64> = tallies
            .iter()
            .map(|t| t.frames.load(Ordering::Relaxed))
            .collect();
        let gaps: Vec<u64> = tallies
            .iter()
            .map(|t| t.seq_gaps.load(Ordering::Relaxed))
            .collect();
        (frames, gaps, b.drops())
    };
    let (f0, g0, d0) = snap(backend.as_ref());
    let (c0, k0) = cpu_ns();
    let w0 = Instant::now();
    MEASURING.store(true, Ordering::Relaxed);
    println!("window");
    let _ = std::io::stdout().flush();
    std::thread::sleep(Duration::from_secs_f64(args.seconds));
    MEASURING.store(false, Ordering::Relaxed);
    let (c1, k1) = cpu_ns();
    let window = w0.elapsed().as_secs_f64();
    let (f1, g1, d1) = snap(backend.as_ref());
    let rss = status_kb("RssAnon:");
    let private_anon = smaps_kb("Private_Dirty:");

    let n = tallies.len();
    let frames: Vec<u64> = f1.iter().zip(&f0).map(|(a, b)| a - b).collect();
    let gaps: Vec<u64> = g1.iter().zip(&g0).map(|(a, b)| a - b).collect();
    let drops: Vec<u64> = d1.iter().zip(&d0).map(|(a, b)| a - b).collect();
    let total: u64 = frames.iter().sum();
    let mut lat: Vec<u64> = Vec::new();
    for t in &tallies {
        lat.extend_from_slice(&t.lat.lock().unwrap());
    }
    lat.sort_unstable();
    let first_ms: Vec<f64> = tallies
        .iter()
        .map(|t| {
            (t.first_ns.load(Ordering::Relaxed) - t.added_ns.load(Ordering::Relaxed)) as f64 / 1e6
        })
        .collect();
    let since_add = |f: fn(&Tally) -> &AtomicU64| -> Vec<f64> {
        tallies
            .iter()
            .map(|t| {
                let v = f(t).load(Ordering::Relaxed);
                if v == 0 {
                    -1.0
                } else {
                    (v - t.added_ns.load(Ordering::Relaxed)) as f64 / 1e6
                }
            })
            .collect()
    };
    let format_ms = since_add(|t| &t.format_ns);
    let streaming_ms = since_add(|t| &t.streaming_ns);
    let conv_err: u64 = tallies
        .iter()
        .map(|t| t.convert_errors.load(Ordering::Relaxed))
        .sum();
    let cpu = c1 - c0;
    let list = |v: &[u64]| {
        v.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let flist = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.3}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    println!(
        "{{\"mode\":\"{}\",\"streams\":{n},\"window_s\":{window:.4},\"frames\":{total},\
         \"frames_per_stream\":[{}],\"fps_per_stream\":{:.3},\"drops\":{},\"drops_per_stream\":[{}],\
         \"seq_gaps\":{},\"cpu_ns\":{cpu},\"cpu_stat_ns\":{},\"cpu_us_per_frame\":{:.3},\
         \"cpu_stat_us_per_frame\":{:.3},\"cpu_pct\":{:.3},\
         \"lat_n\":{},\"lat_p50_us\":{:.1},\"lat_p99_us\":{:.1},\"lat_max_us\":{:.1},\
         \"first_frame_ms\":[{}],\"format_ms\":[{}],\"streaming_ms\":[{}],\"rss_anon_kb\":{rss},\"rss_anon_start_kb\":{rss_start},\
         \"private_dirty_kb\":{private_anon},\"convert_errors\":{conv_err}}}",
        args.mode,
        list(&frames),
        total as f64 / n as f64 / window,
        drops.iter().sum::<u64>(),
        list(&drops),
        gaps.iter().sum::<u64>(),
        k1 - k0,
        cpu as f64 / 1e3 / total.max(1) as f64,
        (k1 - k0) as f64 / 1e3 / total.max(1) as f64,
        cpu as f64 / 1e9 / window * 100.0,
        lat.len(),
        percentile(&lat, 50.0) / 1e3,
        percentile(&lat, 99.0) / 1e3,
        lat.last().copied().unwrap_or(0) as f64 / 1e3,
        flist(&first_ms),
        flist(&format_ms),
        flist(&streaming_ms),
    );
    let _ = std::io::stdout().flush();
    drop(backend);
    Ok(())
}
