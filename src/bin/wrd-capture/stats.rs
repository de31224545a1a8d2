//! `wrd-capture stats`: a live table per stream, once a second.
//!
//! Frames are looked at in the frame callback (on the library's PipeWire
//! thread) only to measure latency, `received_ns - pts_ns` (both
//! CLOCK_MONOTONIC for compositors and wrd-testsrc); they are not kept.
//! Events are pulled on this thread.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wrd_capture::{Stream, StreamConfig};

use crate::cli::{connect, event_failure, interrupted, stdout_is_tty, Args, Fail};

/// Latency of the frames since the last report.
#[derive(Default)]
struct Latency {
    count: u64,
    sum_ns: u128,
    max_ns: u64,
    /// Frames without a pts (latency unknown).
    no_pts: u64,
}

struct Row {
    stream: Stream,
    latency: Arc<Mutex<Latency>>,
    closed: crate::cli::Closed,
    /// Frames delivered and when, at the last report (fps over the interval).
    last: (u64, Instant),
}

const HEAD: [&str; 10] = [
    "NODE", "STATE", "FORMAT", "SIZE", "FPS", "LAT-AVG", "LAT-MAX", "FRAMES", "DROPPED", "HELD",
];
const WIDTHS: [usize; 10] = [6, 10, 7, 10, 6, 9, 9, 8, 8, 7];

fn line(cells: &[String]) -> String {
    let mut s = String::new();
    for (c, w) in cells.iter().zip(WIDTHS) {
        s.push_str(&format!("{c:>w$} "));
    }
    s.trim_end().to_string()
}

fn ms(ns: f64) -> String {
    format!("{:.2}ms", ns / 1e6)
}

fn row(r: &mut Row) -> String {
    let st = r.stream.stats();
    let now = Instant::now();
    let secs = now.duration_since(r.last.1).as_secs_f64();
    let fps = if secs > 0.0 {
        st.frames_delivered.saturating_sub(r.last.0) as f64 / secs
    } else {
        st.fps
    };
    r.last = (st.frames_delivered, now);
    let lat = std::mem::take(&mut *r.latency.lock().unwrap_or_else(|e| e.into_inner()));
    let (avg, max) = if lat.count > 0 {
        (
            ms(lat.sum_ns as f64 / lat.count as f64),
            ms(lat.max_ns as f64),
        )
    } else {
        ("-".to_string(), "-".to_string())
    };
    let (fmt, size) = match st.format {
        Some(f) => (
            f.format.name().to_string(),
            format!("{}x{}", f.width, f.height),
        ),
        None => ("-".into(), "-".into()),
    };
    line(&[
        st.node_id.to_string(),
        format!("{:?}", st.state).to_lowercase(),
        fmt,
        size,
        format!("{fps:.1}"),
        avg,
        max,
        st.frames_delivered.to_string(),
        st.dropped().to_string(),
        format!("{}/{}", st.held_now, st.held_max),
    ])
}

pub fn run(args: &Args) -> Result<(), Fail> {
    crate::cli::catch_interrupts();
    let cap = connect(args, args.nodes.len())?;
    let mut rows = Vec::new();
    for &node in &args.nodes {
        let latency = Arc::new(Mutex::new(Latency::default()));
        let l = latency.clone();
        let stream = cap
            .add_stream(
                node,
                StreamConfig {
                    pull_events: true,
                    on_frame: Some(Box::new(move |f| {
                        let d = f.data();
                        let mut l = l.lock().unwrap_or_else(|e| e.into_inner());
                        if d.pts_ns < 0 {
                            l.no_pts += 1;
                            return;
                        }
                        let ns = d.received_ns.saturating_sub(d.pts_ns as u64);
                        l.count += 1;
                        l.sum_ns += u128::from(ns);
                        l.max_ns = l.max_ns.max(ns);
                    })),
                    ..Default::default()
                },
            )
            .map_err(|e| Fail::new(crate::cli::EXIT_OTHER, format!("node {node}: {e}")))?;
        rows.push(Row {
            stream,
            latency,
            closed: Default::default(),
            last: (0, Instant::now()),
        });
    }
    let tty = stdout_is_tty();
    let start = Instant::now();
    let end = args.seconds.map(|s| start + Duration::from_secs_f64(s));
    let mut next = start + Duration::from_secs(1);
    let mut printed_head = false;
    let mut out = std::io::stdout();
    loop {
        let now = Instant::now();
        for r in &mut rows {
            let p = format!(" after {:.1} s", start.elapsed().as_secs_f64());
            while let Some(ev) = r.stream.next_event() {
                r.closed.see(&ev);
                if let Some(f) = event_failure(r.stream.node_id(), &ev, &p) {
                    return Err(f);
                }
            }
            if let Some(f) = r.closed.failure(r.stream.node_id(), &p) {
                return Err(f);
            }
        }
        let finished = end.is_some_and(|e| now >= e) || interrupted();
        if now >= next || finished {
            next += Duration::from_secs(1);
            let mut text = String::new();
            if tty {
                // Redraw the table in place: up over the head and the rows.
                if printed_head {
                    text.push_str(&format!("\x1b[{}A", rows.len() + 1));
                }
                text.push_str(&format!("\x1b[2K{}\n", line(&HEAD.map(String::from))));
                for r in &mut rows {
                    text.push_str(&format!("\x1b[2K{}\n", row(r)));
                }
            } else {
                // Plain lines: the head once, then the rows with a time line.
                if !printed_head {
                    text.push_str(&format!("{}\n", line(&HEAD.map(String::from))));
                }
                for r in &mut rows {
                    text.push_str(&format!("{}\n", row(r)));
                }
                text.push_str(&format!("# {:.1} s\n", start.elapsed().as_secs_f64()));
            }
            printed_head = true;
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
        if finished {
            break;
        }
        let wait = next
            .min(end.unwrap_or(next))
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(100));
        let fds: Vec<i32> = rows.iter().map(|r| r.stream.fd()).collect();
        poll_any(&fds, wait);
    }
    Ok(())
}

/// Wait until one of `fds` is readable or `timeout` passes.
fn poll_any(fds: &[i32], timeout: Duration) {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `p` is a valid array of `p.len()` pollfds for the call.
    unsafe {
        libc::poll(
            p.as_mut_ptr(),
            p.len() as libc::nfds_t,
            timeout.as_millis() as i32,
        );
    }
}
