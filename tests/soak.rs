//! Soak (not in CI; `bench/soak.sh`): N streams of WxH@FPS from one
//! `wrd-testsrc` for a long time, a fast consumer (the frame callback reads
//! the code in the header band and returns). Every 10 s: frames, library
//! drops by reason, sequence gaps (frames the producer made that never
//! reached us), fds, threads, RSS. Asserts zero drops and flat fds/RSS.
//!
//! Env: WRD_SOAK_STREAMS (8), WRD_SOAK_SIZE (1920x1080), WRD_SOAK_RATE (60),
//! WRD_SOAK_SECS (600), WRD_SOAK_FORMAT (BGRx).

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wrd_capture::{CaptureOptions, PixelFormat, StreamConfig};
use wrd_testsrc::pattern;
use wrd_testsrc::sandbox::{Producer, Sandbox};

fn env<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn sample() -> (usize, usize, u64) {
    let fds = std::fs::read_dir("/proc/self/fd").unwrap().count();
    let threads = std::fs::read_dir("/proc/self/task").unwrap().count();
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    (fds, threads, pages * 4)
}

#[derive(Default)]
struct Counts {
    frames: AtomicU64,
    gaps: AtomicU64,
    bad_code: AtomicU64,
    last_seq: AtomicU64,
}

#[test]
#[ignore = "soak: minutes; run bench/soak.sh"]
fn soak() {
    let n: u32 = env("WRD_SOAK_STREAMS", 8);
    let size: String = env("WRD_SOAK_SIZE", "1920x1080".to_string());
    let rate: u32 = env("WRD_SOAK_RATE", 60);
    let secs: u64 = env("WRD_SOAK_SECS", 600);
    let fmt = PixelFormat::from_name(&env("WRD_SOAK_FORMAT", "BGRx".to_string())).unwrap();
    let sb = Sandbox::start();
    let p = Producer::spawn(
        &sb,
        &[
            "--streams",
            &n.to_string(),
            "--size",
            &size,
            "--rate",
            &rate.to_string(),
            "--format",
            fmt.name(),
        ],
    );
    let cap = common::capture_with(
        &sb,
        CaptureOptions {
            max_streams: n as usize,
            ..Default::default()
        },
    );
    // WRD_SOAK_REALTIME=1: frames on PipeWire's data thread.
    let realtime = env("WRD_SOAK_REALTIME", 0u32) != 0;
    let mut streams = Vec::new();
    let mut counts = Vec::new();
    for node in p.nodes() {
        let c = Arc::new(Counts::default());
        let cc = c.clone();
        let cfg = StreamConfig {
            formats: vec![fmt],
            on_frame: Some(Box::new(move |f| {
                let seq = f.sequence();
                let prev = cc.last_seq.swap(seq + 1, Ordering::Relaxed);
                if prev != 0 && seq + 1 > prev + 1 {
                    cc.gaps.fetch_add(seq - prev, Ordering::Relaxed);
                }
                if let Some((p0, stride)) = f.plane(0) {
                    match pattern::decode(f.format(), f.width(), f.height(), p0, stride) {
                        Some((s, _)) if s == seq => {}
                        _ => {
                            cc.bad_code.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                cc.frames.fetch_add(1, Ordering::Relaxed);
            })),
            realtime,
            ..Default::default()
        };
        streams.push(cap.add_stream(node.id, cfg).expect("add_stream"));
        counts.push(c);
    }
    let t0 = Instant::now();
    // Samples after the first minute (setup, allocation) make the baseline.
    let mut base: Option<(usize, usize, u64)> = None;
    let mut max = (0, 0, 0);
    let mut last_frames = 0;
    eprintln!("t_s frames fps drops_by_reason gaps bad_code fds threads rss_kib");
    while t0.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_secs(10).min(Duration::from_secs(secs)));
        let frames: u64 = counts
            .iter()
            .map(|c| c.frames.load(Ordering::Relaxed))
            .sum();
        let gaps: u64 = counts.iter().map(|c| c.gaps.load(Ordering::Relaxed)).sum();
        let bad: u64 = counts
            .iter()
            .map(|c| c.bad_code.load(Ordering::Relaxed))
            .sum();
        let mut drops = [0u64; wrd_capture::buffer::DROP_REASONS];
        for s in &streams {
            for (d, x) in drops.iter_mut().zip(s.stats().drops) {
                *d += x;
            }
        }
        let u = sample();
        let t = t0.elapsed().as_secs();
        eprintln!(
            "{t} {frames} {:.1} {drops:?} {gaps} {bad} {} {} {}",
            (frames - last_frames) as f64 / 10.0,
            u.0,
            u.1,
            u.2
        );
        last_frames = frames;
        if t >= 60 && base.is_none() {
            base = Some(u);
        }
        if base.is_some() {
            max = (max.0.max(u.0), max.1.max(u.1), max.2.max(u.2));
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let frames: u64 = counts
        .iter()
        .map(|c| c.frames.load(Ordering::Relaxed))
        .sum();
    let gaps: u64 = counts.iter().map(|c| c.gaps.load(Ordering::Relaxed)).sum();
    let bad: u64 = counts
        .iter()
        .map(|c| c.bad_code.load(Ordering::Relaxed))
        .sum();
    let drops: u64 = streams.iter().map(|s| s.stats().dropped()).sum();
    let end = sample();
    eprintln!(
        "SOAK {n}x{size}@{rate} {fmt}{}: {elapsed:.0} s, {frames} frames ({:.1} fps per stream, \
         {:.0}% of {rate}), library drops {drops}, seq gaps {gaps}, bad codes {bad}; \
         fds/threads/rss_kib after 1 min {base:?}, max after {max:?}, end {end:?}",
        if realtime { " realtime" } else { "" },
        frames as f64 / elapsed / f64::from(n),
        100.0 * frames as f64 / elapsed / f64::from(n) / f64::from(rate),
    );
    eprintln!("producer log tail:\n{}", {
        let l = p.stderr();
        l.lines().rev().take(5).collect::<Vec<_>>().join("\n")
    });
    for s in streams {
        s.remove();
    }
    assert_eq!(bad, 0, "frames whose pixels do not carry their seq");
    assert_eq!(drops, 0, "library drops");
    if let Some(b) = base {
        assert!(max.0 <= b.0 + 2, "fds grow: {b:?} -> {max:?}");
        assert!(max.2 <= b.2 + 2048, "RSS grows: {b:?} -> {max:?}");
    }
}
