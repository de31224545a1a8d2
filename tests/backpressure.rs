//! Backpressure counters: a caller that keeps frames hits `max_held`; the
//! stats show the high-water mark (`held_max`), the frames held now and the
//! `HeldLimit` drops; releasing them lets frames flow again. The bounded
//! pull queue counts `QueueFull` drops.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wrd_capture::buffer::DropReason;
use wrd_capture::{Frame, PixelFormat, QueuePolicy, StreamConfig};
use wrd_testsrc::sandbox::{Producer, Sandbox};

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn held_limit_and_high_water_mark() {
    let sb = Sandbox::start();
    let p = Producer::spawn(&sb, &["--rate", "60", "--size", "160x120"]);
    let cap = common::capture(&sb);
    let kept: Arc<Mutex<Vec<Frame>>> = Arc::default();
    let keep = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (k, kk) = (kept.clone(), keep.clone());
    let cfg = StreamConfig {
        formats: vec![PixelFormat::Bgrx],
        max_held: 3,
        buffers: 8,
        on_frame: Some(Box::new(move |f| {
            if kk.load(std::sync::atomic::Ordering::SeqCst) {
                k.lock().unwrap().push(f.clone())
            }
        })),
        ..Default::default()
    };
    let s = cap.add_stream(p.nodes()[0].id, cfg).expect("add_stream");
    assert!(
        wait_until(Duration::from_secs(10), || s.stats().drops
            [DropReason::HeldLimit as usize]
            >= 10),
        "no HeldLimit drops: {:?}",
        s.stats()
    );
    let st = s.stats();
    assert_eq!(kept.lock().unwrap().len(), 3, "the callback saw 3 frames");
    assert_eq!((st.held_now, st.held_max), (3, 3), "{st:?}");
    assert_eq!(st.frames_delivered, 3);
    keep.store(false, std::sync::atomic::Ordering::SeqCst);
    kept.lock().unwrap().clear();
    assert!(
        wait_until(Duration::from_secs(5), || s.stats().frames_delivered >= 10),
        "frames flow again after release: {:?}",
        s.stats()
    );
    let st = s.stats();
    assert_eq!(st.held_max, 3, "high-water mark stays: {st:?}");
    assert_eq!(st.held_now, 0, "{st:?}");
    s.remove();
}

#[test]
fn bounded_queue_counts_queue_full() {
    let sb = Sandbox::start();
    let p = Producer::spawn(&sb, &["--rate", "60", "--size", "160x120"]);
    let cap = common::capture(&sb);
    let cfg = StreamConfig {
        formats: vec![PixelFormat::Bgrx],
        pull: true,
        queue: QueuePolicy::Bounded { high: 3, low: 1 },
        max_held: 6,
        ..Default::default()
    };
    let s = cap.add_stream(p.nodes()[0].id, cfg).expect("add_stream");
    assert!(
        wait_until(Duration::from_secs(10), || s.stats().drops
            [DropReason::QueueFull as usize]
            > 0),
        "no QueueFull drops: {:?}",
        s.stats()
    );
    let st = s.stats();
    assert!(st.held_max >= 3, "{st:?}");
    // Drain: frames come out oldest first with increasing seq.
    let mut last = None;
    while let Ok(f) = s.pop() {
        if let Some(l) = last {
            assert!(f.sequence() > l);
        }
        last = Some(f.sequence());
    }
    assert!(last.is_some());
    assert!(
        wait_until(Duration::from_secs(5), || s.pop().is_ok()),
        "frames queue again after draining"
    );
    s.remove();
}
