//! Create/destroy cycles: 1000 stream add/remove cycles on one capture
//! against a live producer, 100 capture create/destroy cycles. Counted in
//! this process: open fds (/proc/self/fd), threads (/proc/self/task) and
//! RSS (/proc/self/statm), after a warm-up and at the end.

mod common;

use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use wrd_capture::{Event, PixelFormat, StreamConfig};
use wrd_testsrc::sandbox::{Producer, Sandbox};

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug, Clone, Copy)]
struct Usage {
    fds: usize,
    threads: usize,
    rss_kib: u64,
}

fn usage() -> Usage {
    let fds = std::fs::read_dir("/proc/self/fd").unwrap().count();
    let threads = std::fs::read_dir("/proc/self/task").unwrap().count();
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no memory effects.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    Usage {
        fds,
        threads,
        rss_kib: pages * page / 1024,
    }
}

/// Streams and captures are torn down asynchronously (the daemon confirms
/// the removal of their proxies later): the lowest counts seen over `for_`,
/// stopping early once they are at or below `target`.
fn quiet(for_: Duration, target: Option<Usage>) -> Usage {
    let deadline = Instant::now() + for_;
    let mut low = usage();
    loop {
        if target.is_some_and(|t| low.fds <= t.fds && low.threads <= t.threads) {
            return low;
        }
        if Instant::now() > deadline {
            return low;
        }
        std::thread::sleep(Duration::from_millis(50));
        let u = usage();
        low = Usage {
            fds: low.fds.min(u.fds),
            threads: low.threads.min(u.threads),
            rss_kib: u.rss_kib,
        };
    }
}

fn baseline() -> Usage {
    quiet(Duration::from_millis(1500), None)
}

fn settled(base: Usage) -> Usage {
    quiet(Duration::from_secs(3), Some(base))
}

/// What the open fds are, by kind (for a failure message).
fn fd_kinds() -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for e in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let t = std::fs::read_link(e.path())
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let kind = match t.find(":[") {
            Some(i) if !t.starts_with("anon_inode") => t[..i].to_string(),
            _ => t,
        };
        *m.entry(kind).or_default() += 1;
    }
    m
}

fn assert_no_growth(what: &str, base: Usage, end: Usage) {
    eprintln!("{what}: after warm-up {base:?}, at the end {end:?}");
    eprintln!("{what}: open fds by kind: {:?}", fd_kinds());
    assert!(
        end.fds <= base.fds,
        "{what}: fds {} -> {}",
        base.fds,
        end.fds
    );
    assert!(
        end.threads <= base.threads,
        "{what}: threads {} -> {}",
        base.threads,
        end.threads
    );
    let growth = end.rss_kib.saturating_sub(base.rss_kib);
    assert!(growth < 2048, "{what}: RSS grew by {growth} KiB");
}

/// Add a stream, wait as `when` says, remove it.
fn cycle(cap: &wrd_capture::Capture, node: u32, when: When) {
    let (tx, rx) = channel();
    let cfg = StreamConfig {
        formats: vec![PixelFormat::Bgrx],
        on_frame: Some(Box::new(move |f| {
            let _ = tx.send(f.sequence());
        })),
        on_event: Some(Box::new(|e| {
            assert!(!matches!(e, Event::ConnectionLost));
        })),
        ..Default::default()
    };
    let s = cap.add_stream(node, cfg).expect("add_stream");
    match when {
        When::Now => {}
        When::AfterMs(ms) => std::thread::sleep(Duration::from_millis(ms)),
        When::AfterFrame(ms) => {
            rx.recv_timeout(Duration::from_secs(10)).expect("a frame");
            std::thread::sleep(Duration::from_millis(ms));
        }
    }
    s.remove();
}

#[derive(Clone, Copy, Debug)]
enum When {
    /// Right after `add_stream` returns.
    Now,
    /// This long after (while the stream connects and links).
    AfterMs(u64),
    /// This long after the first frame.
    AfterFrame(u64),
}

fn env_num(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// 1000 cycles: half removed right after `add_stream`, half 0-6 ms after
/// their first frame. (Removal while the stream links is the next test.)
#[test]
fn stream_add_remove_1000_cycles_no_leak() {
    let _s = serial();
    let sb = Sandbox::start();
    let p = Producer::spawn(&sb, &["--rate", "60", "--size", "160x120"]);
    let node = p.nodes()[0].id;
    let cap = common::capture(&sb);
    let cycles = env_num("WRD_LIFECYCLE_STREAMS", 1000);
    let warmup = (cycles / 10).max(1);
    let mut base = None;
    let t0 = Instant::now();
    for i in 0..cycles {
        if i == warmup {
            base = Some(baseline());
        }
        let when = if i % 2 == 0 {
            When::Now
        } else {
            When::AfterFrame(u64::from(i % 7))
        };
        cycle(&cap, node, when);
    }
    let took = t0.elapsed();
    let base = base.unwrap_or_else(usage);
    let end = settled(base);
    eprintln!("{cycles} cycles in {took:?}");
    assert_eq!(cap.stream_count(), 0);
    assert!(cap.is_connected());
    assert_no_growth("stream add/remove", base, end);
}

/// Removal 3-30 ms after `add_stream`, while the daemon links the new node:
/// PipeWire 0.3.65 drops messages that arrive for a proxy the client has
/// already destroyed (a "zombie") without closing the fds they carry
/// (module-protocol-native.c: `/* FIXME close fds */`; fixed in 0.3.72 by
/// 8db98b114 "module-protocol-native: close fds from zombie clients",
/// pipewire#1840). The node's activation eventfds leaked: 2-8 per 100
/// cycles at a fixed delay, ~100 per 900 at 1-6 ms on a loaded machine,
/// 17 -> 55 fds over 600 cycles. The capture now destroys a removed
/// stream only once its link settled (which also keeps PipeWire 1.4 from
/// failing the producer's stream): 17 -> 17 over 600 cycles.
#[test]
fn stream_removed_while_linking_no_fd_leak() {
    let _s = serial();
    let sb = Sandbox::start();
    let p = Producer::spawn(&sb, &["--rate", "60", "--size", "160x120"]);
    let node = p.nodes()[0].id;
    let cap = common::capture(&sb);
    cycle(&cap, node, When::AfterFrame(0));
    let base = baseline();
    let cycles = env_num("WRD_LIFECYCLE_LINKING", 200);
    for i in 0..cycles {
        cycle(&cap, node, When::AfterMs(3 + u64::from(i % 28)));
    }
    let end = settled(base);
    eprintln!("fds by kind after {cycles} cycles + 3 s: {:?}", fd_kinds());
    assert_no_growth("removal while linking", base, end);
}

#[test]
fn capture_create_destroy_100_cycles_no_leak() {
    let _s = serial();
    let sb = Sandbox::start();
    let p = Producer::spawn(&sb, &["--rate", "60", "--size", "160x120"]);
    let node = p.nodes()[0].id;
    let cycles = 100;
    let warmup = 10;
    let mut base = None;
    let t0 = Instant::now();
    for i in 0..cycles {
        if i == warmup {
            base = Some(baseline());
        }
        let cap = common::capture(&sb);
        if i % 2 == 0 {
            // Half the captures also run a stream to its first frame, and
            // are destroyed with the stream still added.
            let (tx, rx) = channel();
            let cfg = StreamConfig {
                formats: vec![PixelFormat::Bgrx],
                on_frame: Some(Box::new(move |f| {
                    let _ = tx.send(f.sequence());
                })),
                ..Default::default()
            };
            let s = cap.add_stream(node, cfg).expect("add_stream");
            rx.recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("cycle {i}: no frame"));
            if i % 4 == 0 {
                s.remove();
            } else {
                drop(s);
            }
        }
        drop(cap);
    }
    let took = t0.elapsed();
    let base = base.unwrap();
    let end = settled(base);
    eprintln!("{cycles} capture cycles in {took:?}");
    assert_no_growth("capture create/destroy", base, end);
}
