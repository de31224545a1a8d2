//! DMA-BUF negotiation of the capture core against a real, private PipeWire
//! and `wrd-testsrc` in its DMA-BUF modes (memfd-backed DMA-BUF planes in
//! LINEAR layout, see `wrd_testsrc::dmabuf`), with the GPU-less test
//! importer: modifier negotiation, test imports, renegotiation without the
//! failed modifier, the bounded fallback to SHM, and resizes. Every test
//! also bounds the negotiation events over a quiet window, so a
//! renegotiation loop fails it. What each test proves: `docs/dmabuf.md`.

mod common;

use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use drm_fourcc::DrmFourcc;
use wrd_capture::import::cpu::read_linear;
use wrd_capture::import::{Importer, ReadFormat};
use wrd_capture::stream::BufferType;
use wrd_capture::{wrd_status, CaptureOptions, Event, Frame, PixelFormat, StreamConfig};
use wrd_testsrc::pattern;
use wrd_testsrc::sandbox::{Producer, Sandbox};

/// A vendor modifier (I915_FORMAT_MOD_X_TILED); the producer's memory is
/// linear whatever it says, and these tests only ever let it be rejected.
const A: u64 = 0x0100_0000_0000_0001;
const LINEAR: u64 = 0;
const W: u32 = 160;
const H: u32 = 120;

/// What the test learned about one frame.
#[derive(Debug, Clone)]
struct Rec {
    seq: u64,
    width: u32,
    height: u32,
    dmabuf: bool,
    modifier: Option<u64>,
    planes: usize,
    /// The pixels against the pattern (the decoded seq must be the Header
    /// seq): DMA-BUF frames through `read_linear` and by mapping each
    /// plane's fd; SHM frames through `common::record`.
    pixels: Result<(), String>,
}

enum Msg {
    Frame(Rec),
    Event(Event),
}

/// Map `len` bytes of a plane's fd read-only and check nothing but that it
/// can be read (the fd is a memfd here); returns a copy from `offset`.
fn read_fd(fd: BorrowedFd<'_>, offset: usize) -> Result<Vec<u8>, String> {
    let raw = fd.as_raw_fd();
    // SAFETY: lseek on a live fd borrowed from the frame; no memory touched.
    let len = unsafe { libc::lseek(raw, 0, libc::SEEK_END) };
    if len <= offset as i64 {
        return Err(format!("fd {raw}: {len} bytes, plane at {offset}"));
    }
    // SAFETY: a fresh read-only shared mapping of the whole fd.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len as usize,
            libc::PROT_READ,
            libc::MAP_SHARED,
            raw,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(format!("mmap: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: the mapping holds `len` readable bytes until munmap below.
    let v = unsafe {
        std::slice::from_raw_parts((p as *const u8).add(offset), len as usize - offset).to_vec()
    };
    // SAFETY: unmapping exactly what we mapped.
    unsafe { libc::munmap(p, len as usize) };
    Ok(v)
}

/// Check a DMA-BUF frame's picture two ways: every plane read from its fd
/// against `pattern::check` in the frame's own format (exact), and for
/// 32-bit RGB formats the BGRA read-back of `read_linear` (exact too: x and
/// alpha bytes are 255 in the pattern).
fn check_dmabuf(f: &Frame) -> Result<(), String> {
    let d = f.dmabuf().ok_or("no DMA-BUF on a DMA-BUF frame")?;
    let (fmt, w, h, seq) = (f.format(), f.width(), f.height(), f.sequence());
    let mut planes = Vec::new();
    let mut strides = Vec::new();
    for p in &d.planes {
        planes.push(read_fd(p.fd, p.offset as usize)?);
        strides.push(p.stride as usize);
    }
    let views: Vec<&[u8]> = planes.iter().map(|p| p.as_slice()).collect();
    let (dseq, stream) =
        pattern::decode(fmt, w, h, views[0], strides[0]).ok_or("no code in the header band")?;
    if dseq != seq {
        return Err(format!("picture of seq {dseq} in the frame of seq {seq}"));
    }
    pattern::check(fmt, w, h, seq, stream, &views, &strides)?;
    if matches!(fmt, PixelFormat::Bgrx | PixelFormat::Bgra) && d.modifier == LINEAR {
        let stride = w as usize * 4;
        let mut dst = vec![0u8; stride * h as usize];
        read_linear(&d, false, &mut dst, stride, ReadFormat::Bgra)
            .map_err(|e| format!("read_linear: {e}"))?;
        pattern::check(PixelFormat::Bgra, w, h, seq, stream, &[&dst], &[stride])
            .map_err(|e| format!("read_linear: {e}"))?;
    }
    Ok(())
}

fn rec(f: &Frame) -> Rec {
    let dmabuf = f.is_dmabuf();
    let (modifier, planes, pixels) = if dmabuf {
        let d = f.dmabuf();
        (
            d.as_ref().map(|d| d.modifier),
            d.as_ref().map_or(0, |d| d.planes.len()),
            check_dmabuf(f),
        )
    } else {
        let r = record(f);
        let pixels = match (r.pixels, r.decoded) {
            (Ok(()), Some((s, _))) if s == r.seq => Ok(()),
            (Ok(()), d) => Err(format!("decoded {d:?} in the frame of seq {}", r.seq)),
            (Err(e), _) => Err(e),
        };
        (None, f.plane_count(), pixels)
    };
    Rec {
        seq: f.sequence(),
        width: f.width(),
        height: f.height(),
        dmabuf,
        modifier,
        planes,
        pixels,
    }
}

fn config(importer: Option<Arc<Importer>>, fmt: PixelFormat) -> (StreamConfig, Receiver<Msg>) {
    let (tx, rx) = channel();
    let etx = tx.clone();
    let cfg = StreamConfig {
        formats: vec![fmt],
        importer,
        on_frame: Some(Box::new(move |f| {
            let _ = tx.send(Msg::Frame(rec(f)));
        })),
        on_event: Some(Box::new(move |e| {
            let _ = etx.send(Msg::Event(e.clone()));
        })),
        ..Default::default()
    };
    (cfg, rx)
}

fn test_importer(fmt: DrmFourcc, mods: &[u64], reject: &[u64]) -> Arc<Importer> {
    Arc::new(Importer::test(vec![(fmt, mods.to_vec())], reject.to_vec()))
}

/// Everything received until `done` says so (checked after each message)
/// or `timeout` passes; panics on the timeout with what came.
fn run_until(
    rx: &Receiver<Msg>,
    timeout: Duration,
    what: &str,
    mut done: impl FnMut(&[Rec], &[Event]) -> bool,
) -> (Vec<Rec>, Vec<Event>) {
    let deadline = Instant::now() + timeout;
    let (mut frames, mut events) = (Vec::new(), Vec::new());
    loop {
        if done(&frames, &events) {
            return (frames, events);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Msg::Frame(r)) => frames.push(r),
            Ok(Msg::Event(e)) => events.push(e),
            Err(_) => panic!(
                "{what}: not within {timeout:?}; events {events:?}; {} frames, last {:?}",
                frames.len(),
                frames.last()
            ),
        }
    }
}

/// Everything received during `d`.
fn drain_for(rx: &Receiver<Msg>, d: Duration) -> (Vec<Rec>, Vec<Event>) {
    let end = Instant::now() + d;
    let (mut frames, mut events) = (Vec::new(), Vec::new());
    while let Ok(m) = rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
        match m {
            Msg::Frame(r) => frames.push(r),
            Msg::Event(e) => events.push(e),
        }
    }
    (frames, events)
}

/// The negotiation events, reduced to what the order is asserted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Neg {
    Format(Option<u64>),
    ImportFailed(u64),
    Renegotiating(u64),
    ShmFallback,
}

fn negotiation(events: &[Event]) -> Vec<Neg> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::FormatChanged(f) => Some(Neg::Format(f.modifier)),
            Event::ImportFailed { modifier, .. } => Some(Neg::ImportFailed(*modifier)),
            Event::Renegotiating { modifier, .. } => Some(Neg::Renegotiating(*modifier)),
            Event::ShmFallback => Some(Neg::ShmFallback),
            _ => None,
        })
        .collect()
}

/// Repeated ImportFailed events of one modifier (one per buffer that was
/// in flight when the first failed) collapse to one.
fn collapsed(neg: &[Neg]) -> Vec<Neg> {
    let mut out: Vec<Neg> = Vec::new();
    for n in neg {
        if matches!(n, Neg::ImportFailed(_)) && out.last() == Some(n) {
            continue;
        }
        out.push(*n);
    }
    out
}

fn assert_pixels(frames: &[Rec]) {
    for r in frames {
        if let Err(e) = &r.pixels {
            panic!("frame {} ({}x{}, {r:?}): {e}", r.seq, r.width, r.height);
        }
    }
    let seqs: Vec<u64> = frames.iter().map(|r| r.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] > w[0]),
        "seqs in order: {seqs:?}"
    );
}

fn producer(sb: &Sandbox, extra: &[&str]) -> Producer {
    let size = format!("{W}x{H}");
    let mut args = vec!["--size", size.as_str(), "--rate", "60"];
    args.extend_from_slice(extra);
    Producer::spawn(sb, &args)
}

/// 1. An SHM-only producer (today's default) and a consumer with an
///    importer: SHM frames with exact pixels and metadata, one
///    FormatChanged without modifier, no import, no renegotiation, and
///    nothing more over 2 s (no loop).
#[test]
fn shm_producer_and_importer_consumer_agree_on_shm_once() {
    let sb = Sandbox::start();
    let prod = producer(&sb, &[]);
    let cap = capture(&sb);
    let importer = test_importer(DrmFourcc::Xrgb8888, &[LINEAR, A], &[]);
    let (mut cfg, rx) = recording_config(vec![PixelFormat::Bgrx]);
    cfg.importer = Some(importer.clone());
    let s = cap.add_stream(prod.nodes()[0].id, cfg).unwrap();
    let (recs, mut events) = collect(&rx, 20, Duration::from_secs(15));
    assert_records(&recs, PixelFormat::Bgrx, W, H, 0);
    let end = Instant::now() + Duration::from_secs(2);
    let mut more = 0;
    while let Ok(m) = rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
        match m {
            Msg2::Event(e) => events.push(e),
            Msg2::Frame(r) => {
                more += 1;
                assert!(r.pixels.is_ok(), "{:?}", r.pixels);
            }
        }
    }
    assert!(more > 20, "frames keep flowing: {more} in 2 s");
    assert_eq!(negotiation(&events), vec![Neg::Format(None)], "{events:?}");
    let st = s.stats();
    assert_eq!(st.buffer_type, BufferType::MemFd);
    assert_eq!(st.format.unwrap().modifier, None);
    assert_eq!(st.format_changes, 1);
    assert_eq!(importer.test_import_count(), Some(0));
    assert!(!prod.stderr().contains("fixating"));
}

// `common::Msg` under another name, for the test above that uses
// `common::recording_config`.
use common::Msg as Msg2;

/// 2. A DMA-BUF-only producer and a consumer without importer (SHM only)
///    cannot link: `Event::Error { WRD_ERR_NEGOTIATION }` within the 1 s
///    negotiation timeout (plus a bound), not a hang, and no frame.
#[test]
fn dmabuf_only_producer_and_shm_consumer_fail_negotiation_in_time() {
    let sb = Sandbox::start();
    let prod = producer(&sb, &["--dmabuf-only", "--modifiers", "0"]);
    let cap = capture_with(
        &sb,
        CaptureOptions {
            negotiation_timeout: Duration::from_secs(1),
            ..Default::default()
        },
    );
    let (cfg, rx) = config(None, PixelFormat::Bgrx);
    let t0 = Instant::now();
    let s = cap.add_stream(prod.nodes()[0].id, cfg).unwrap();
    let (frames, events) = run_until(&rx, Duration::from_secs(6), "negotiation error", |_, ev| {
        ev.iter().any(|e| matches!(e, Event::Error { .. }))
    });
    let took = t0.elapsed();
    let err = events
        .iter()
        .find(|e| matches!(e, Event::Error { .. }))
        .unwrap();
    match err {
        Event::Error { status, .. } => assert_eq!(*status, wrd_status::WRD_ERR_NEGOTIATION),
        _ => unreachable!(),
    }
    // PipeWire 0.3.65 stays silent and the negotiation timeout (1 s) fires;
    // PipeWire 1.4 fails the link at once ("no more input formats"), which
    // the stream reports as the same WRD_ERR_NEGOTIATION. Either way, in
    // bounded time.
    assert!(took < Duration::from_secs(4), "error after {took:?}");
    assert!(frames.is_empty(), "{frames:?}");
    assert!(
        !events.iter().any(|e| matches!(e, Event::FormatChanged(_))),
        "{events:?}"
    );
    let (late, _) = drain_for(&rx, Duration::from_millis(500));
    assert!(late.is_empty());
    assert_eq!(s.stats().frames_delivered, 0);
}

/// 3a. The producer offers A then LINEAR (+SHM) and fixates A; the
///     consumer's importer rejects A: FormatChanged(A), ImportFailed(A),
///     Renegotiating(A), FormatChanged(LINEAR), then DMA-BUF frames with
///     LINEAR whose pixels check (fds and read_linear). No frame with A is
///     delivered (its buffers dropped). Over 3 s more: no negotiation
///     event at all.
#[test]
fn rejected_modifier_is_renegotiated_away() {
    rejected_modifier(false);
}

/// The same on PipeWire's data thread (`StreamConfig::realtime`): the
/// import fails there, and the capture thread renegotiates.
#[test]
fn rejected_modifier_is_renegotiated_away_realtime() {
    rejected_modifier(true);
}

fn rejected_modifier(realtime: bool) {
    let sb = Sandbox::start();
    let prod = producer(&sb, &["--modifiers", "0x0100000000000001,linear"]);
    let cap = capture(&sb);
    let importer = test_importer(DrmFourcc::Xrgb8888, &[A, LINEAR], &[A]);
    let (mut cfg, rx) = config(Some(importer.clone()), PixelFormat::Bgrx);
    cfg.realtime = realtime;
    let s = cap.add_stream(prod.nodes()[0].id, cfg).unwrap();
    let (frames, events) = run_until(&rx, Duration::from_secs(20), "LINEAR frames", |f, _| {
        f.iter().filter(|r| r.modifier == Some(LINEAR)).count() >= 20
    });
    assert_eq!(
        collapsed(&negotiation(&events)),
        vec![
            Neg::Format(Some(A)),
            Neg::ImportFailed(A),
            Neg::Renegotiating(A),
            Neg::Format(Some(LINEAR)),
        ],
        "{events:?}"
    );
    let failed = negotiation(&events)
        .iter()
        .filter(|n| matches!(n, Neg::ImportFailed(_)))
        .count();
    assert!(
        (1..=16).contains(&failed),
        "one ImportFailed per buffer at most: {failed}"
    );
    assert_pixels(&frames);
    assert!(
        frames
            .iter()
            .all(|r| r.dmabuf && r.modifier == Some(LINEAR)),
        "only LINEAR DMA-BUF frames: {:?}",
        frames.iter().find(|r| r.modifier != Some(LINEAR))
    );
    assert!(frames.iter().all(|r| r.planes == 1));
    let st = s.stats();
    assert_eq!(st.buffer_type, BufferType::DmaBuf);
    assert_eq!(st.format.unwrap().modifier, Some(LINEAR));
    assert!(st.dropped() > 0, "the frame in A's buffer was dropped");
    assert!(importer.test_import_count().unwrap() > 0);
    let log = prod.stderr();
    assert!(
        log.contains("fixating modifier 0x0100000000000001"),
        "{log}"
    );
    assert!(
        log.contains("fixating modifier 0x0000000000000000"),
        "{log}"
    );

    let (more, later) = drain_for(&rx, Duration::from_secs(3));
    assert_eq!(negotiation(&later), vec![], "no loop: {later:?}");
    assert!(more.len() > 30, "frames keep flowing: {}", more.len());
    assert_pixels(&more);
    assert_eq!(s.stats().format_changes, 2);
}

/// 3b. Both modifiers rejected: after A as in 3a, LINEAR fails too and no
///     modifier is left: ShmFallback (with or without Renegotiating(LINEAR)
///     before it), FormatChanged without modifier, SHM frames with exact
///     pixels. Over 3 s more: no negotiation event.
#[test]
fn every_modifier_rejected_falls_back_to_shm() {
    let sb = Sandbox::start();
    let prod = producer(&sb, &["--modifiers", "0x0100000000000001,linear"]);
    let cap = capture(&sb);
    let importer = test_importer(DrmFourcc::Xrgb8888, &[A, LINEAR], &[A, LINEAR]);
    let (cfg, rx) = config(Some(importer), PixelFormat::Bgrx);
    let s = cap.add_stream(prod.nodes()[0].id, cfg).unwrap();
    let (frames, events) = run_until(&rx, Duration::from_secs(20), "SHM frames", |f, _| {
        f.iter().filter(|r| !r.dmabuf).count() >= 20
    });
    let neg = collapsed(&negotiation(&events));
    let mut want = vec![
        Neg::Format(Some(A)),
        Neg::ImportFailed(A),
        Neg::Renegotiating(A),
        Neg::Format(Some(LINEAR)),
        Neg::ImportFailed(LINEAR),
    ];
    if neg.get(5) == Some(&Neg::Renegotiating(LINEAR)) {
        want.push(Neg::Renegotiating(LINEAR));
    }
    want.extend([Neg::ShmFallback, Neg::Format(None)]);
    assert_eq!(neg, want, "{events:?}");
    assert_pixels(&frames);
    assert!(
        frames.iter().all(|r| !r.dmabuf),
        "no DMA-BUF frame delivered (every import failed)"
    );
    assert_eq!(s.stats().buffer_type, BufferType::MemFd);
    assert!(s.stats().dropped() > 0);

    let (more, later) = drain_for(&rx, Duration::from_secs(3));
    assert_eq!(negotiation(&later), vec![], "no loop: {later:?}");
    assert!(more.len() > 30, "frames keep flowing: {}", more.len());
    assert_pixels(&more);
    assert_eq!(s.stats().format_changes, 3);
}

/// 3c. `max_import_failures` bounds the retries: with 1, the first failure
///     (A) already falls back to SHM although LINEAR would import.
#[test]
fn max_import_failures_bounds_the_retries() {
    let sb = Sandbox::start();
    let prod = producer(&sb, &["--modifiers", "0x0100000000000001,linear"]);
    let cap = capture(&sb);
    let importer = test_importer(DrmFourcc::Xrgb8888, &[A, LINEAR], &[A]);
    let (mut cfg, rx) = config(Some(importer), PixelFormat::Bgrx);
    cfg.max_import_failures = 1;
    let s = cap.add_stream(prod.nodes()[0].id, cfg).unwrap();
    let (frames, events) = run_until(&rx, Duration::from_secs(20), "SHM frames", |f, _| {
        f.iter().filter(|r| !r.dmabuf).count() >= 10
    });
    let neg: Vec<Neg> = collapsed(&negotiation(&events))
        .into_iter()
        .filter(|n| !matches!(n, Neg::Renegotiating(_)))
        .collect();
    assert_eq!(
        neg,
        vec![
            Neg::Format(Some(A)),
            Neg::ImportFailed(A),
            Neg::ShmFallback,
            Neg::Format(None),
        ],
        "{events:?}"
    );
    assert_pixels(&frames);
    let (_, later) = drain_for(&rx, Duration::from_secs(2));
    assert_eq!(negotiation(&later), vec![], "no loop: {later:?}");
    assert_eq!(s.stats().buffer_type, BufferType::MemFd);
}

/// 4. Producer resizes on the DMA-BUF path (`--resize-every 20
///    --modifiers 0`): every resize is a new Format, fixated again by the
///    producer, and frames of both sizes arrive as LINEAR DMA-BUF with the
///    size `pattern::size_at` gives and exact pixels; no ImportFailed.
#[test]
fn resize_keeps_the_dmabuf_path() {
    let sb = Sandbox::start();
    let prod = producer(&sb, &["--resize-every", "20", "--modifiers", "0"]);
    let cap = capture(&sb);
    let importer = test_importer(DrmFourcc::Xrgb8888, &[LINEAR], &[]);
    let (cfg, rx) = config(Some(importer), PixelFormat::Bgrx);
    let _s = cap.add_stream(prod.nodes()[0].id, cfg).unwrap();
    let (small_w, small_h) = pattern::size_at(W, H, 20, 20);
    let (frames, events) = run_until(&rx, Duration::from_secs(20), "both sizes", |f, _| {
        let mut sizes: Vec<(u32, u32)> = f.iter().map(|r| (r.width, r.height)).collect();
        sizes.dedup();
        sizes.len() >= 3
    });
    assert_pixels(&frames);
    for r in &frames {
        assert!(r.dmabuf && r.modifier == Some(LINEAR), "{r:?}");
        assert_eq!(
            (r.width, r.height),
            pattern::size_at(W, H, 20, r.seq),
            "seq {}",
            r.seq
        );
    }
    let sizes: Vec<(u32, u32)> = frames.iter().map(|r| (r.width, r.height)).collect();
    assert!(sizes.contains(&(W, H)) && sizes.contains(&(small_w, small_h)));
    let neg = negotiation(&events);
    assert!(
        neg.iter().all(|n| *n == Neg::Format(Some(LINEAR))),
        "only LINEAR formats: {neg:?}"
    );
    assert!(neg.len() >= 3 && neg.len() <= 4, "{neg:?}");
}

/// NV12 over DMA-BUF: one fd per plane, each plane exact.
#[test]
fn nv12_dmabuf_frames_have_a_plane_per_fd() {
    let sb = Sandbox::start();
    let prod = producer(&sb, &["--format", "NV12", "--modifiers", "linear"]);
    let cap = capture(&sb);
    let importer = test_importer(DrmFourcc::Nv12, &[LINEAR], &[]);
    let (cfg, rx) = config(Some(importer), PixelFormat::Nv12);
    let s = cap.add_stream(prod.nodes()[0].id, cfg).unwrap();
    let (frames, _) = run_until(&rx, Duration::from_secs(20), "NV12 frames", |f, _| {
        f.len() >= 20
    });
    assert_pixels(&frames);
    assert!(frames
        .iter()
        .all(|r| r.dmabuf && r.planes == 2 && r.modifier == Some(LINEAR)));
    assert_eq!(s.stats().buffer_type, BufferType::DmaBuf);
}
