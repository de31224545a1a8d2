//! Helpers shared by the integration tests: capturing into records that
//! say what each frame held, checked against `wrd_testsrc::pattern`.

#![allow(dead_code)]

pub mod cprog;

use std::collections::HashSet;
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use wrd_capture::frame::Region;
use wrd_capture::{Capture, CaptureOptions, Event, Frame, PixelFormat, Stream, StreamConfig};
use wrd_testsrc::pattern;
use wrd_testsrc::sandbox::Sandbox;

/// What the test learned about one frame, on the PipeWire thread.
#[derive(Debug, Clone)]
pub struct Record {
    pub seq: u64,
    pub decoded: Option<(u64, u32)>,
    pub pts: i64,
    pub width: u32,
    pub height: u32,
    pub format: PixelFormat,
    /// `pattern::check` against the decoded seq and stream.
    pub pixels: Result<(), String>,
    pub damage: Vec<Region>,
    pub flags: u32,
    pub cursor: Option<wrd_capture::Cursor>,
}

pub enum Msg {
    Frame(Record),
    Event(Event),
}

/// Check a frame against the test pattern.
pub fn record(f: &Frame) -> Record {
    let (w, h, fmt) = (f.width(), f.height(), f.format());
    let mut planes = Vec::new();
    let mut strides = Vec::new();
    for i in 0..f.plane_count() {
        let (bytes, stride) = f.plane(i).expect("SHM plane");
        planes.push(bytes);
        strides.push(stride);
    }
    let decoded = planes
        .first()
        .and_then(|p0| pattern::decode(fmt, w, h, p0, strides[0]));
    let pixels = match decoded {
        Some((seq, stream)) => pattern::check(fmt, w, h, seq, stream, &planes, &strides),
        None => Err("no code in the header band".into()),
    };
    Record {
        seq: f.sequence(),
        decoded,
        pts: f.pts_ns(),
        width: w,
        height: h,
        format: fmt,
        pixels,
        damage: f.damage().to_vec(),
        flags: f.flags(),
        cursor: f.cursor().cloned(),
    }
}

/// A stream config whose callbacks send records and events to a channel.
pub fn recording_config(formats: Vec<PixelFormat>) -> (StreamConfig, Receiver<Msg>) {
    let (tx, rx) = channel();
    let etx = tx.clone();
    let cfg = StreamConfig {
        formats,
        on_frame: Some(Box::new(move |f| {
            let _ = tx.send(Msg::Frame(record(f)));
        })),
        on_event: Some(Box::new(move |e| {
            let _ = etx.send(Msg::Event(e.clone()));
        })),
        ..Default::default()
    };
    (cfg, rx)
}

/// Receive `n` frame records (and the events in between) within `timeout`.
pub fn collect(rx: &Receiver<Msg>, n: usize, timeout: Duration) -> (Vec<Record>, Vec<Event>) {
    let deadline = Instant::now() + timeout;
    let mut frames = Vec::new();
    let mut events = Vec::new();
    while frames.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Msg::Frame(r)) => frames.push(r),
            Ok(Msg::Event(e)) => events.push(e),
            Err(_) => panic!(
                "only {} of {n} frames within {timeout:?}; events: {events:?}",
                frames.len()
            ),
        }
    }
    (frames, events)
}

/// Wait for an event matching `pred`; returns it and the time it took.
pub fn wait_event(
    rx: &Receiver<Msg>,
    timeout: Duration,
    pred: impl Fn(&Event) -> bool,
) -> Option<(Event, Duration)> {
    let start = Instant::now();
    let deadline = start + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Msg::Event(e)) if pred(&e) => return Some((e, start.elapsed())),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

pub fn capture(sb: &Sandbox) -> Capture {
    Capture::new(Some(sb.connect_fd()), CaptureOptions::default()).expect("connect via fd")
}

pub fn capture_with(sb: &Sandbox, opts: CaptureOptions) -> Capture {
    Capture::new(Some(sb.connect_fd()), opts).expect("connect via fd")
}

fn rect_set(rs: impl IntoIterator<Item = pattern::Rect>) -> HashSet<(i32, i32, u32, u32)> {
    rs.into_iter().map(|r| (r.x, r.y, r.w, r.h)).collect()
}

fn region_set(rs: &[Region]) -> HashSet<(i32, i32, u32, u32)> {
    rs.iter().map(|r| (r.x, r.y, r.width, r.height)).collect()
}

fn covers(rs: &[Region], r: &pattern::Rect) -> bool {
    // Every pixel of `r` lies in some region (checked on a grid of corners
    // and centre, enough for the axis-aligned union we build).
    let pts = [
        (r.x, r.y),
        (r.x + r.w as i32 - 1, r.y),
        (r.x, r.y + r.h as i32 - 1),
        (r.x + r.w as i32 - 1, r.y + r.h as i32 - 1),
        (r.x + r.w as i32 / 2, r.y + r.h as i32 / 2),
    ];
    pts.iter().all(|&(x, y)| {
        rs.iter()
            .any(|g| x >= g.x && y >= g.y && x < g.x + g.width as i32 && y < g.y + g.height as i32)
    })
}

/// Assert everything about a run of records from one `wrd-testsrc` stream:
/// exact pixels, the decoded seq equal to the Header seq, the stream index,
/// increasing seq and pts, damage as sent (exact when the previous frame was
/// delivered, covering every skipped frame's damage otherwise) and the
/// cursor as sent.
pub fn assert_records(recs: &[Record], fmt: PixelFormat, w: u32, h: u32, stream: u32) {
    assert!(!recs.is_empty());
    let mut prev: Option<&Record> = None;
    for r in recs {
        assert_eq!(
            (r.format, r.width, r.height),
            (fmt, w, h),
            "frame {}",
            r.seq
        );
        if let Err(e) = &r.pixels {
            panic!("{fmt} frame {}: pixels differ: {e}", r.seq);
        }
        let (dseq, dstream) = r.decoded.expect("decoded");
        assert_eq!(dseq, r.seq, "seq in the pixels = Header seq");
        assert_eq!(dstream, stream, "stream index in the pixels");
        assert!(r.pts > 0, "pts from the Header meta");
        if let Some(p) = prev {
            assert!(r.seq > p.seq, "seq increases: {} then {}", p.seq, r.seq);
            assert!(r.pts > p.pts, "pts increases");
            if r.seq == p.seq + 1 {
                assert_eq!(
                    region_set(&r.damage),
                    rect_set(pattern::damage(fmt, w, h, r.seq)),
                    "{fmt} damage of frame {}",
                    r.seq
                );
            } else if r.flags & wrd_capture::frame::flags::FULL_DAMAGE != 0 {
                assert_eq!(
                    r.damage,
                    vec![Region::full(w, h)],
                    "full damage after a gap"
                );
            } else {
                for k in p.seq + 1..=r.seq {
                    for d in pattern::damage(fmt, w, h, k) {
                        assert!(
                            covers(&r.damage, &d),
                            "damage of skipped frame {k} carried into {}",
                            r.seq
                        );
                    }
                }
            }
        }
        let want = pattern::cursor(r.seq);
        let c = r.cursor.as_ref().expect("cursor meta");
        assert_eq!(
            (c.id, c.x, c.y, c.hotspot_x, c.hotspot_y),
            (want.id, want.x, want.y, want.hot_x, want.hot_y),
            "cursor of frame {}",
            r.seq
        );
        if let Some(b) = &c.bitmap {
            assert_eq!((b.width, b.height), (want.w, want.h));
            assert_eq!(b.format, Some(pattern::CURSOR_FORMAT));
            assert_eq!(b.pixels, want.pixels, "cursor bitmap of frame {}", r.seq);
        } else {
            assert!(
                !pattern::cursor_bitmap_changed(r.seq),
                "frame {} should carry the new cursor bitmap",
                r.seq
            );
        }
        prev = Some(r);
    }
}

/// Write one frame of `videotestsrc pattern=checkers-8` in `fmt` to a file
/// in `dir` (GStreamer's default layout: rows padded to 4 bytes): the
/// reference that frames from a GStreamer producer must match.
pub fn gst_reference(
    fmt: PixelFormat,
    w: u32,
    h: u32,
    dir: &std::path::Path,
) -> std::path::PathBuf {
    let file = dir.join(format!("ref-{}-{w}x{h}.raw", fmt.name()));
    let st = std::process::Command::new("gst-launch-1.0")
        .args([
            "-q",
            "videotestsrc",
            "num-buffers=1",
            "pattern=checkers-8",
            "!",
        ])
        .arg(format!(
            "video/x-raw,format={},width={w},height={h}",
            fmt.name()
        ))
        .args(["!", "filesink"])
        .arg(format!("location={}", file.display()))
        .status()
        .expect("gst-launch-1.0 (install gstreamer1.0-tools)");
    assert!(st.success());
    file
}

/// Keep the stream alive while collecting.
pub struct Live(pub Stream, pub Receiver<Msg>);
