//! Explicit sync (issue 9) through a real producer: `wrd-testsrc
//! --sync-timeline` sends DMA-BUF buffers in the PipeWire >= 1.2 layout
//! (SyncTimeline meta, acquire and release SyncObj datas; the "syncobjs"
//! are memfds, there is no DRM device here) with the points
//! `wrd_testsrc::sync_timeline::points(seq)` and logs, per frame, the points
//! and the inodes of the timelines of the buffer that carried it. The
//! stream's `release_signaler` records `(inode of the fd it was given,
//! point)` for every signal. What is asserted:
//!
//! * every frame the library took from PipeWire — delivered or dropped —
//!   has its release point signalled exactly once, on the release timeline
//!   of the buffer that carried it, and only after the frame was released;
//!   none twice, none missing once every buffer is back;
//! * frames were dropped (> 0) and their points are among the signalled;
//! * the signalled points and the frames' acquire/release points are the
//!   ones the producer wrote; `Stats::{releases_signalled,
//!   release_failures}` agree with the recorder;
//!
//! With a client library or daemon older than 1.2 (the host leg's 0.3.65)
//! the same tests assert the gating instead — explicit sync off, the
//! producer's `--sync-timeline` refused with exit status 3, DMA-BUF frames
//! without sync points, nothing signalled — never a silent skip. The
//! version is read at run time as in `tests/versions.rs`; in the modern
//! leg (`WRD_MODERN_LEG`) explicit sync must be on.

mod common;

use std::collections::{HashMap, HashSet};
use std::os::fd::BorrowedFd;
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::capture;
use wrd_capture::buffer::DropReason;
use wrd_capture::capture::parse_version;
use wrd_capture::stream::BufferType;
use wrd_capture::sync::ReleaseSignaler;
use wrd_capture::{Capture, Frame, PixelFormat, Stats, StreamConfig};
use wrd_testsrc::sandbox::{Producer, Sandbox};
use wrd_testsrc::sync_timeline::{self as sync, SentFrame};

const LINEAR: u64 = 0;

/// One call of the signaler: the inode of the timeline fd and the point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Signal {
    ino: u64,
    point: u64,
}

/// A `ReleaseSignaler` that records instead of signalling.
#[derive(Default)]
struct Recorder(Mutex<Vec<Signal>>);

impl Recorder {
    fn signals(&self) -> Vec<Signal> {
        self.0.lock().unwrap().clone()
    }
}

impl ReleaseSignaler for Recorder {
    fn signal(&self, fd: BorrowedFd<'_>, point: u64) -> wrd_capture::Result<()> {
        let ino = sync::fd_ino(fd)?;
        self.0.lock().unwrap().push(Signal { ino, point });
        Ok(())
    }
}

/// What a delivered frame exposed about explicit sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FrameSync {
    acquire_point: u64,
    acquire_ino: u64,
    release_point: u64,
    release_ino: u64,
}

#[derive(Debug)]
struct Delivered {
    seq: u64,
    dmabuf: bool,
    sync: Option<FrameSync>,
    /// The recorder already had this frame's release point when the frame
    /// was handed to us (signalled before the release: wrong).
    signalled_early: bool,
}

fn frame_sync(f: &Frame) -> Option<FrameSync> {
    let s = f.data().sync?;
    let ino = |fd| {
        // SAFETY: the frame owns its sync fds and outlives this borrow.
        sync::fd_ino(unsafe { BorrowedFd::borrow_raw(fd) }).expect("fstat a sync fd")
    };
    Some(FrameSync {
        acquire_point: s.acquire_point,
        acquire_ino: ino(s.acquire_fd),
        release_point: s.release_point,
        release_ino: ino(s.release_fd),
    })
}

/// Explicit sync is expected on this PipeWire: the client library and the
/// daemon are >= 1.2 (read at run time), and the capture says the same.
fn explicit_sync_expected(cap: &Capture) -> bool {
    let v = cap.versions();
    let (lib, daemon) = (parse_version(&v.library), parse_version(&v.daemon));
    let expected = lib >= (1, 2, 0) && daemon >= (1, 2, 0);
    assert_eq!(cap.features().explicit_sync, expected, "{v:?}");
    if std::env::var_os("WRD_MODERN_LEG").is_some() {
        assert!(expected, "the modern leg runs PipeWire >= 1.2: {v:?}");
    }
    eprintln!(
        "explicit_sync: client library {}, daemon {}: explicit sync {}",
        v.library,
        v.daemon,
        if expected { "on" } else { "gated off" }
    );
    expected
}

/// How a run provokes drops.
struct Case {
    /// Frames the producer sends (then it stays connected, silent).
    frames: u64,
    /// `--evil stride-zero --evil-every K`: every K-th frame has a zero
    /// stride, which the library drops (BadChunk) after arming its point.
    bad_every: Option<u64>,
    max_held: usize,
    /// Hold every delivered frame this long on another thread.
    hold: Option<Duration>,
}

struct Outcome {
    sent: Vec<SentFrame>,
    delivered: Vec<Delivered>,
    signals: Vec<Signal>,
    stats: Stats,
}

fn producer_args(extra: &[String]) -> Vec<String> {
    let mut v: Vec<String> = [
        "--size",
        "160x120",
        "--rate",
        "60",
        "--modifiers",
        "linear",
        "--dmabuf-only",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend_from_slice(extra);
    v
}

fn dmabuf_config(rec: &Arc<Recorder>, max_held: usize) -> StreamConfig {
    StreamConfig {
        formats: vec![PixelFormat::Bgrx],
        modifiers: vec![(PixelFormat::Bgrx, vec![LINEAR])],
        max_held,
        release_signaler: Some(rec.clone() as Arc<dyn ReleaseSignaler>),
        ..Default::default()
    }
}

fn drain<T>(rx: &Receiver<T>) -> Vec<T> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

/// Run `case` against `wrd-testsrc --sync-timeline` and collect everything,
/// after every buffer went back (nothing held, every taken buffer counted
/// as delivered or dropped and signalled, quiet for 300 ms).
fn run(sb: &Sandbox, cap: &Capture, case: &Case) -> Outcome {
    let mut evil = vec![format!("silent-after={}", case.frames)];
    if case.bad_every.is_some() {
        evil.push("stride-zero".into());
    }
    let extra = vec![
        "--sync-timeline".to_string(),
        "--evil".into(),
        evil.join(","),
        "--evil-every".into(),
        case.bad_every.unwrap_or(1_000_000).to_string(),
    ];
    let prod = Producer::spawn(sb, &producer_args(&extra));
    let rec = Arc::new(Recorder::default());
    let (tx, rx) = channel();
    let (hold_tx, hold_rx) = channel::<Frame>();
    let holder = case.hold.map(|d| {
        std::thread::spawn(move || {
            while let Ok(f) = hold_rx.recv() {
                std::thread::sleep(d);
                drop(f);
            }
        })
    });
    let mut cfg = dmabuf_config(&rec, case.max_held);
    let hold = case.hold.is_some();
    let rec2 = rec.clone();
    cfg.on_frame = Some(Box::new(move |f: &Frame| {
        let sync = frame_sync(f);
        let signalled_early =
            sync.is_some_and(|s| rec2.signals().iter().any(|x| x.point == s.release_point));
        let _ = tx.send(Delivered {
            seq: f.sequence(),
            dmabuf: f.is_dmabuf(),
            sync,
            signalled_early,
        });
        if hold {
            let _ = hold_tx.send(f.clone());
        }
    }));
    let s = cap.add_stream(prod.nodes()[0].id, cfg).unwrap();

    // All frames sent...
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sent = sync::parse_log(&prod.stderr());
        if sent.len() as u64 >= case.frames {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} frames sent in 30 s; producer:\n{}\nstats {:?}",
            sent.len(),
            case.frames,
            prod.stderr(),
            s.stats()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // ... and every buffer back.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = (s.stats(), rec.signals().len(), Instant::now());
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let st = s.stats();
        let n = rec.signals().len();
        if (st.frames_delivered, st.dropped(), n)
            != (last.0.frames_delivered, last.0.dropped(), last.1)
        {
            last = (st, n, Instant::now());
            continue;
        }
        let settled = st.held_now == 0
            && st.releases_signalled + st.release_failures == st.frames_delivered + st.dropped();
        if settled && last.2.elapsed() >= Duration::from_millis(300) {
            break;
        }
        if Instant::now() > deadline {
            // Not settled: the assertions below say what is missing.
            eprintln!("explicit_sync: not settled after 10 s: {st:?}, {n} signals");
            break;
        }
    }
    let stats = s.stats();
    let signals = rec.signals();
    let sent = sync::parse_log(&prod.stderr());
    s.remove();
    if let Some(h) = holder {
        // The stream's callback (and its sender) went with the stream.
        h.join().unwrap();
    }
    let delivered = drain(&rx);
    assert!(
        !prod.stderr().contains("without explicit sync"),
        "the explicit-sync layout was not taken:\n{}",
        prod.stderr()
    );
    Outcome {
        sent,
        delivered,
        signals,
        stats,
    }
}

/// The assertions every explicit-sync run must pass; returns the number of
/// dropped frames whose points were signalled.
fn check(o: &Outcome, case: &Case) -> usize {
    let st = &o.stats;
    // The producer: every frame once, the points of `sync::points`.
    let seqs: Vec<u64> = o.sent.iter().map(|f| f.seq).collect();
    assert_eq!(seqs, (0..case.frames).collect::<Vec<_>>(), "frames sent");
    let by_release: HashMap<u64, &SentFrame> =
        o.sent.iter().map(|f| (f.release_point, f)).collect();
    for f in &o.sent {
        assert_eq!(
            (f.acquire_point, f.release_point),
            sync::points(f.seq),
            "{f:?}"
        );
        assert_ne!(f.acquire_ino, f.release_ino, "{f:?}");
    }
    let release_inos: HashSet<u64> = o.sent.iter().map(|f| f.release_ino).collect();
    let acquire_inos: HashSet<u64> = o.sent.iter().map(|f| f.acquire_ino).collect();
    assert!(release_inos.is_disjoint(&acquire_inos));

    // Delivered frames: DMA-BUF with the producer's points and timelines,
    // not signalled before they were released.
    assert_eq!(st.buffer_type, BufferType::DmaBuf);
    assert_eq!(st.frames_delivered, o.delivered.len() as u64, "{st:?}");
    assert!(!o.delivered.is_empty(), "no frame delivered: {st:?}");
    for d in &o.delivered {
        assert!(d.dmabuf, "{d:?}");
        let s = d
            .sync
            .unwrap_or_else(|| panic!("a frame without sync points: {d:?}"));
        let sent = o.sent[d.seq as usize];
        assert_eq!(
            s,
            FrameSync {
                acquire_point: sent.acquire_point,
                acquire_ino: sent.acquire_ino,
                release_point: sent.release_point,
                release_ino: sent.release_ino,
            },
            "frame {} exposes other points or timelines than the producer sent",
            d.seq
        );
        assert!(!d.signalled_early, "released before delivery: {d:?}");
    }

    // Signals: each on the release timeline of the buffer that carried the
    // frame, none twice.
    let mut seen = HashSet::new();
    for sig in &o.signals {
        assert!(seen.insert(*sig), "signalled twice: {sig:?}");
        let f = by_release
            .get(&sig.point)
            .unwrap_or_else(|| panic!("{sig:?}: a point the producer never sent"));
        assert_eq!(
            sig.ino, f.release_ino,
            "{sig:?} signalled on another timeline than frame {}'s release timeline",
            f.seq
        );
    }
    let signalled: HashSet<u64> = o.signals.iter().map(|s| s.point).collect();
    assert_eq!(signalled.len(), o.signals.len(), "a point signalled twice");
    let delivered: HashSet<u64> = o
        .delivered
        .iter()
        .map(|d| d.sync.unwrap().release_point)
        .collect();
    let missing: Vec<u64> = delivered.difference(&signalled).copied().collect();
    assert!(
        missing.is_empty(),
        "delivered frames never signalled (release points {missing:?})"
    );
    // Everything else signalled is a frame the library dropped: as many as
    // it counts, and each counted drop was signalled.
    let dropped: Vec<u64> = signalled
        .difference(&delivered)
        .map(|p| sync::seq_of_release(*p).unwrap())
        .collect();
    assert_eq!(
        o.signals.len() as u64,
        st.frames_delivered + st.dropped(),
        "every frame taken from PipeWire (delivered {} + dropped {} {:?}) signalled once: \
         {} signals",
        st.frames_delivered,
        st.dropped(),
        st.drops,
        o.signals.len()
    );
    assert_eq!(dropped.len() as u64, st.dropped(), "{st:?}");
    assert_eq!(st.releases_signalled, o.signals.len() as u64, "{st:?}");
    assert_eq!(st.release_failures, 0, "{st:?}");
    assert!(!dropped.is_empty(), "no frame dropped: {st:?}");
    assert_eq!(st.held_now, 0);
    // Frames PipeWire never handed to the library (a gap in the Header seq
    // the library sees) are not its to signal: counted, and bounded so that
    // the checks above are about most of the frames.
    let mut lost: Vec<u64> = (0..case.frames)
        .filter(|seq| !signalled.contains(&sync::points(*seq).1))
        .collect();
    lost.sort();
    assert!(
        lost.len() as u64 <= case.frames / 3,
        "{} of {} frames never reached the library: {lost:?}",
        lost.len(),
        case.frames
    );
    let mut dropped_seqs = dropped.clone();
    dropped_seqs.sort();
    eprintln!(
        "explicit_sync: {} frames sent, {} delivered, {} dropped {:?} (seqs {:?}), \
         {} release points signalled once each, {} never reached the library {:?}",
        case.frames,
        st.frames_delivered,
        dropped.len(),
        st.drops,
        dropped_seqs,
        o.signals.len(),
        lost.len(),
        lost
    );
    dropped.len()
}

/// PipeWire < 1.2: no explicit sync anywhere. The producer refuses
/// `--sync-timeline` (exit status 3, saying why) instead of producing
/// without it; a DMA-BUF producer without it gives frames with no sync
/// points, and nothing is ever signalled.
fn assert_gated(sb: &Sandbox, cap: &Capture) {
    let v = cap.versions();
    assert!(!cap.features().explicit_sync);

    let mut child = sb
        .command(Producer::binary())
        .args(producer_args(&["--sync-timeline".into()]))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run wrd-testsrc");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("wrd-testsrc --sync-timeline still running on {v:?} after 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        status.code(),
        Some(sync::EXIT_UNSUPPORTED as i32),
        "wrd-testsrc --sync-timeline on {v:?}: {status}\n{stderr}"
    );
    assert!(
        stderr.contains("--sync-timeline needs PipeWire >= 1.2")
            && stderr.contains(&format!("daemon {}", v.daemon)),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "announced a node: {:?}", out.stdout);

    let prod = Producer::spawn(sb, &producer_args(&[]));
    let rec = Arc::new(Recorder::default());
    let (tx, rx) = channel();
    let mut cfg = dmabuf_config(&rec, 4);
    cfg.on_frame = Some(Box::new(move |f: &Frame| {
        let _ = tx.send((f.sequence(), f.is_dmabuf(), f.data().sync));
    }));
    let s = cap.add_stream(prod.nodes()[0].id, cfg).unwrap();
    let mut frames = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while frames.len() < 30 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(f) => frames.push(f),
            Err(_) => panic!("{} frames in 15 s: {:?}", frames.len(), s.stats()),
        }
    }
    for (seq, dmabuf, sync) in &frames {
        assert!(*dmabuf, "frame {seq}: DMA-BUF negotiated");
        assert_eq!(*sync, None, "frame {seq}: sync points on {v:?}");
    }
    std::thread::sleep(Duration::from_millis(200));
    let st = s.stats();
    s.remove();
    assert_eq!(st.buffer_type, BufferType::DmaBuf);
    assert_eq!(
        (st.releases_signalled, st.release_failures),
        (0, 0),
        "{st:?}"
    );
    assert!(rec.signals().is_empty(), "{:?}", rec.signals());
    eprintln!(
        "explicit_sync: gated off on {v:?}: producer refused --sync-timeline (exit 3), \
         {} DMA-BUF frames without sync points, nothing signalled",
        frames.len()
    );
}

/// Frames dropped by validation (every 4th has a zero stride): their points
/// were armed before validation and are signalled when the buffer goes
/// back; the delivered ones when the callback returns.
#[test]
fn explicit_sync_release_points_signalled_once_for_delivered_and_invalid_frames() {
    let sb = Sandbox::start();
    let cap = capture(&sb);
    if !explicit_sync_expected(&cap) {
        return assert_gated(&sb, &cap);
    }
    let case = Case {
        frames: 120,
        bad_every: Some(4),
        max_held: 4,
        hold: None,
    };
    let o = run(&sb, &cap, &case);
    let dropped = check(&o, &case);
    // Only the bad frames were dropped, all of them as BadChunk.
    let st = &o.stats;
    assert_eq!(
        st.dropped(),
        st.drops[DropReason::BadChunk as usize],
        "{st:?}"
    );
    let delivered: HashSet<u64> = o.delivered.iter().map(|d| d.seq).collect();
    for seq in 0..case.frames {
        let bad = seq % 4 == 3;
        if delivered.contains(&seq) {
            assert!(!bad, "bad frame {seq} delivered");
        }
    }
    let signalled: HashSet<u64> = o
        .signals
        .iter()
        .map(|s| sync::seq_of_release(s.point).unwrap())
        .collect();
    for seq in signalled.difference(&delivered) {
        assert_eq!(seq % 4, 3, "good frame {seq} dropped: {st:?}");
    }
    assert!(
        dropped as u64 >= case.frames / 4 - 3,
        "{dropped} bad frames dropped"
    );
}

/// Frames the library drops before it builds them — over the held limit
/// here (`max_held = 1` while the test holds every frame 40 ms on another
/// thread) — must have their release points signalled too: the producer
/// gets those buffers back, and a compositor waiting on the point would
/// stall.
///
/// This test found that only `build_frame` armed the release point, so
/// the buffers given back by the held-limit, superseded and disabled paths
/// of `on_process` (and by `build_frame`'s own early returns) were never
/// signalled: on PipeWire 1.4.2, 40 delivered, 80 held-limit drops, 40
/// signals. `on_process` now arms every buffer when it is dequeued: 120 of
/// 120 (docs/modern-pipewire.md, "Explicit sync through a real producer").
/// Superseded drops share that path but cannot be provoked on 1.4: the
/// stream's node runs on the capture thread (`node.loop.class = main`), so
/// a slow callback blocks the node instead of letting buffers pile up.
#[test]
fn explicit_sync_release_points_signalled_once_for_held_limit_drops() {
    let sb = Sandbox::start();
    let cap = capture(&sb);
    if !explicit_sync_expected(&cap) {
        return assert_gated(&sb, &cap);
    }
    let case = Case {
        frames: 120,
        bad_every: None,
        max_held: 1,
        hold: Some(Duration::from_millis(40)),
    };
    let o = run(&sb, &cap, &case);
    check(&o, &case);
    let st = &o.stats;
    assert!(st.drops[DropReason::HeldLimit as usize] > 0, "{st:?}");
    assert_eq!(
        st.dropped(),
        st.drops[DropReason::HeldLimit as usize] + st.drops[DropReason::Superseded as usize],
        "{st:?}"
    );
}
