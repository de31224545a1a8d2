//! `wrd-capture record`: write N frames of one node to files.
//!
//! Frames come through the pull API (a bounded queue, so that a slow disk
//! delays frames instead of skipping them while buffers last). Each frame is
//! converted (PNG: to RGB or RGBA) or copied (raw: its own format, rows
//! packed) and given back to the producer before the file is written.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wrd_capture::convert::DstFormat;
use wrd_capture::{Event, Frame, QueuePolicy, StreamConfig};

use crate::cli::{
    buffer_type_name, connect, event_failure, stderr_is_tty, wait_readable, Args, Fail, OutFormat,
    EXIT_ENDED, EXIT_OTHER,
};

/// A frame's pixels, copied out of the producer's buffer.
struct Picture {
    seq: u64,
    width: u32,
    height: u32,
    /// PNG: RGB or RGBA rows; raw: the planes, rows packed.
    bytes: Vec<u8>,
    alpha: bool,
}

fn take(frame: &Frame, out: OutFormat) -> Result<Option<Picture>, Fail> {
    let (w, h, fmt) = (frame.width(), frame.height(), frame.format());
    if frame.plane_count() == 0 {
        return Ok(None); // cursor-only update: no picture
    }
    let bytes = match out {
        OutFormat::Png => {
            let stride = w as usize * 4;
            let mut rgba = vec![0u8; stride * h as usize];
            frame
                .convert_into(DstFormat::Rgba, &mut rgba, stride, false, 1)
                .map_err(|e| Fail::new(EXIT_OTHER, format!("frame {}: {e}", frame.sequence())))?;
            if fmt.has_alpha() {
                rgba
            } else {
                rgba.chunks_exact(4)
                    .flat_map(|p| [p[0], p[1], p[2]])
                    .collect()
            }
        }
        OutFormat::Raw => {
            let mut v = Vec::new();
            for i in 0..frame.plane_count() {
                let (data, stride) = frame.plane(i).ok_or_else(|| {
                    Fail::new(
                        EXIT_OTHER,
                        format!("frame {}: no CPU pixels", frame.sequence()),
                    )
                })?;
                let (row_bytes, rows) = fmt
                    .plane_size(i, w, h)
                    .ok_or_else(|| Fail::new(EXIT_OTHER, "frame size overflows"))?;
                for r in 0..rows {
                    v.extend_from_slice(&data[r * stride..r * stride + row_bytes]);
                }
            }
            v
        }
    };
    Ok(Some(Picture {
        seq: frame.sequence(),
        width: w,
        height: h,
        bytes,
        alpha: fmt.has_alpha(),
    }))
}

fn write(dir: &Path, pic: &Picture, out: OutFormat) -> Result<PathBuf, Fail> {
    let (name, io) = match out {
        OutFormat::Png => {
            let path = dir.join(format!("frame-{:06}.png", pic.seq));
            let r = (|| -> Result<(), Box<dyn std::error::Error>> {
                let f = BufWriter::new(File::create(&path)?);
                let mut enc = png::Encoder::new(f, pic.width, pic.height);
                enc.set_color(if pic.alpha {
                    png::ColorType::Rgba
                } else {
                    png::ColorType::Rgb
                });
                enc.set_depth(png::BitDepth::Eight);
                enc.set_compression(png::Compression::Fast);
                let mut w = enc.write_header()?;
                w.write_image_data(&pic.bytes)?;
                w.finish()?;
                Ok(())
            })();
            (path, r)
        }
        OutFormat::Raw => {
            let path = dir.join(format!("frame-{:06}.raw", pic.seq));
            let r = (|| -> Result<(), Box<dyn std::error::Error>> {
                let mut f = BufWriter::new(File::create(&path)?);
                f.write_all(&pic.bytes)?;
                f.flush()?;
                Ok(())
            })();
            (path, r)
        }
    };
    io.map_err(|e| Fail::new(EXIT_OTHER, format!("writing {}: {e}", name.display())))?;
    Ok(name)
}

struct Progress {
    tty: bool,
    total: u64,
    start: Instant,
    last_draw: Option<Instant>,
}

impl Progress {
    fn update(&mut self, done: u64, path: &Path) {
        if !self.tty {
            eprintln!("frame {done}/{}: {}", self.total, path.display());
            return;
        }
        let now = Instant::now();
        if done != self.total
            && self
                .last_draw
                .is_some_and(|t| now - t < Duration::from_millis(50))
        {
            return;
        }
        self.last_draw = Some(now);
        let secs = self.start.elapsed().as_secs_f64();
        let fps = if secs > 0.0 { done as f64 / secs } else { 0.0 };
        let width = 30;
        let filled = (done * width / self.total.max(1)) as usize;
        eprint!(
            "\r[{}{}] {done}/{} frames  {fps:5.1} fps ",
            "#".repeat(filled),
            ".".repeat(width as usize - filled),
            self.total
        );
        if done == self.total {
            eprintln!();
        }
    }

    fn abort(&self) {
        if self.tty && self.last_draw.is_some() {
            eprintln!();
        }
    }
}

/// Count the files the writer finished (waiting for all of them with
/// `block`), and keep its first error.
fn drain(
    done: &std::sync::mpsc::Receiver<Result<PathBuf, Fail>>,
    block: bool,
    written: &mut u64,
    progress: &mut Progress,
    error: &mut Option<Fail>,
) {
    loop {
        let r = if block {
            done.recv().ok()
        } else {
            done.try_recv().ok()
        };
        match r {
            None => return,
            Some(Ok(path)) => {
                *written += 1;
                progress.update(*written, &path);
            }
            Some(Err(f)) => {
                error.get_or_insert(f);
            }
        }
    }
}

pub fn run(args: &Args) -> Result<(), Fail> {
    let node = args.nodes[0];
    let want = args.frames.expect("checked by Args::parse");
    let dir = args.out.clone().expect("checked by Args::parse");
    std::fs::create_dir_all(&dir)
        .map_err(|e| Fail::new(EXIT_OTHER, format!("--out {}: {e}", dir.display())))?;
    let cap = connect(args, 1)?;
    let stream = cap
        .add_stream(
            node,
            StreamConfig {
                formats: args.pixel_formats.clone(),
                pull: true,
                pull_events: true,
                // Few: producers often have 3 or 4 buffers, and frames are
                // copied out at once.
                queue: QueuePolicy::Bounded { high: 2, low: 1 },
                max_held: 2,
                ..Default::default()
            },
        )
        .map_err(|e| Fail::new(EXIT_OTHER, format!("node {node}: {e}")))?;

    // Files are written on a thread of their own: a frame is copied out of
    // the producer's buffer and the buffer given back at once, so a slow
    // disk or PNG encoder delays files, not the producer.
    let (pic_tx, pic_rx) = std::sync::mpsc::sync_channel::<Picture>(64);
    let (done_tx, done_rx) = std::sync::mpsc::channel::<Result<PathBuf, Fail>>();
    let out_format = args.format;
    let out_dir = dir.clone();
    let writer = std::thread::spawn(move || {
        for pic in pic_rx {
            let r = write(&out_dir, &pic, out_format);
            let failed = r.is_err();
            if done_tx.send(r).is_err() || failed {
                break;
            }
        }
    });
    let mut progress = Progress {
        tty: stderr_is_tty(),
        total: want,
        start: Instant::now(),
        last_draw: None,
    };
    let mut written = 0u64;
    let mut write_error: Option<Fail> = None;
    let mut captured = 0u64;
    let mut first_at: Option<Instant> = None;
    let mut last_at: Option<Instant> = None;
    let mut last_frame = Instant::now();
    let mut negotiated = None;
    let mut seq_gaps = 0u64;
    let mut prev_seq: Option<u64> = None;
    let mut failure: Option<Fail> = None;
    let mut closed = crate::cli::Closed::default();
    crate::cli::catch_interrupts();
    while captured < want {
        wait_readable(stream.fd(), Duration::from_millis(100));
        drain(
            &done_rx,
            false,
            &mut written,
            &mut progress,
            &mut write_error,
        );
        while let Some(ev) = stream.next_event() {
            if let Event::FormatChanged(f) = &ev {
                negotiated = Some(*f);
            }
            closed.see(&ev);
            let p = format!(" after {captured} of {want} frames");
            if failure.is_none() {
                failure = event_failure(node, &ev, &p);
            }
        }
        if failure.is_none() {
            failure = closed.failure(node, &format!(" after {captured} of {want} frames"));
        }
        // Frames queued before a failure still count.
        while captured < want {
            let Ok(frame) = stream.pop() else { break };
            let pic = take(&frame, args.format);
            drop(frame); // the buffer goes back to the producer now
            let pic = match pic {
                Ok(Some(p)) => p,
                Ok(None) => continue,
                Err(f) => {
                    failure.get_or_insert(f);
                    break;
                }
            };
            let now = Instant::now();
            first_at.get_or_insert(now);
            last_at = Some(now);
            last_frame = now;
            if let Some(p) = prev_seq {
                seq_gaps += pic.seq.saturating_sub(p + 1);
            }
            prev_seq = Some(pic.seq);
            if negotiated.is_none() {
                negotiated = stream.format();
            }
            if pic_tx.send(pic).is_err() {
                break; // the writer stopped on an error
            }
            captured += 1;
        }
        if captured == want {
            break;
        }
        if failure.is_none() && last_frame.elapsed() > args.timeout {
            failure = Some(Fail::new(
                EXIT_ENDED,
                format!(
                    "node {node}: no frame for {:.1} s after {captured} of {want} frames \
                     (the stream stalled; --timeout changes the limit)",
                    args.timeout.as_secs_f64()
                ),
            ));
        }
        if failure.is_none() && crate::cli::interrupted() {
            failure = Some(Fail::new(
                EXIT_ENDED,
                format!("interrupted after {captured} of {want} frames"),
            ));
        }
        if failure.is_some() || write_error.is_some() {
            break;
        }
    }
    // Done with the stream: disconnect before waiting for the writer, so
    // that the summary's counters cover the capture only.
    let stats = stream.stats();
    drop(stream);
    drop(cap);
    // Let the writer finish what was captured (also after a failure: the
    // frames that came are on disk).
    drop(pic_tx);
    drain(
        &done_rx,
        true,
        &mut written,
        &mut progress,
        &mut write_error,
    );
    let _ = writer.join();
    if let Some(f) = write_error.or(failure) {
        progress.abort();
        return Err(f);
    }
    if written < want {
        progress.abort();
        return Err(Fail::new(
            EXIT_OTHER,
            format!("only {written} of {want} files were written"),
        ));
    }
    let elapsed = match (first_at, last_at) {
        (Some(a), Some(b)) => b - a,
        _ => Duration::ZERO,
    };

    let fps = if written > 1 && elapsed > Duration::ZERO {
        (written - 1) as f64 / elapsed.as_secs_f64()
    } else {
        0.0
    };
    let fmt = negotiated.or(stats.format);
    let format_line = match fmt {
        Some(f) => {
            let rate = if f.framerate.0 > 0 {
                format!(" @ {}/{}", f.framerate.0, f.framerate.1.max(1))
            } else {
                String::new()
            };
            format!("{} {}x{}{rate}", f.format.name(), f.width, f.height)
        }
        None => "unknown".into(),
    };
    let reasons: Vec<String> = crate::cli::DROP_REASONS
        .iter()
        .filter(|r| stats.drops[**r as usize] > 0)
        .map(|r| format!("{} {}", r.name(), stats.drops[*r as usize]))
        .collect();
    println!("frames: {written}");
    println!(
        "output: {} ({})",
        dir.display(),
        match args.format {
            OutFormat::Png => "png",
            OutFormat::Raw => "raw, planes with packed rows",
        }
    );
    println!("fps: {fps:.1}");
    println!(
        "dropped: {}{}",
        stats.dropped(),
        if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join(", "))
        }
    );
    println!("skipped by the producer: {seq_gaps}");
    println!("format: {format_line}");
    println!("buffer type: {}", buffer_type_name(stats.buffer_type));
    Ok(())
}
