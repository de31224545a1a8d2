//! Frames from GStreamer's `pipewiresink mode=provide`, a real peer
//! producer: the pixels must equal what the same `videotestsrc` writes to a
//! file (the checkers-8 pattern is the same in every frame).

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use wrd_capture::{Capture, CaptureOptions, PixelFormat, StreamConfig};
use wrd_testsrc::sandbox::Sandbox;

struct Gst(Child);
impl Drop for Gst {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn caps(fmt: PixelFormat, w: u32, h: u32) -> String {
    format!(
        "video/x-raw,format={},width={w},height={h},framerate=30/1",
        fmt.name()
    )
}

/// The bytes the SMPTE pattern has in GStreamer's default layout, one Vec per
/// plane with GStreamer's strides.
fn expected(fmt: PixelFormat, w: u32, h: u32) -> Vec<(Vec<u8>, usize)> {
    let file = common::gst_reference(fmt, w, h, &tempfile_dir());
    let raw = std::fs::read(&file).unwrap();
    // GStreamer's default strides: rows rounded up to 4 bytes.
    let (layout, total) = fmt.packed_layout(w, h, 4).unwrap();
    assert_eq!(raw.len(), total, "{fmt}: GStreamer's default layout");
    layout
        .iter()
        .map(|p| {
            (
                raw[p.offset..p.offset + p.stride * p.rows].to_vec(),
                p.stride,
            )
        })
        .collect()
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("wrd-gst-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn node_by_name(cap: &Capture, name: &str) -> u32 {
    let t = Instant::now();
    loop {
        if let Some(n) = cap.nodes().into_iter().find(|n| n.name == name) {
            return n.id;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "node {name} never appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn run(fmt: PixelFormat) {
    let (w, h) = (320, 240);
    let sb = Sandbox::start();
    let name = format!("gst-{}", fmt.name());
    let gst = Gst(sb
        .command("gst-launch-1.0")
        .args([
            "-q",
            "videotestsrc",
            "is-live=true",
            "pattern=checkers-8",
            "!",
        ])
        .arg(caps(fmt, w, h))
        .args(["!", "pipewiresink", "mode=provide"])
        .arg(format!(
            "stream-properties=p,media.class=Video/Source,media.type=Video,node.name={name}"
        ))
        .stdout(Stdio::null())
        .spawn()
        .expect("gst-launch-1.0"));
    let want = expected(fmt, w, h);
    let cap = Capture::new(Some(sb.connect_fd()), CaptureOptions::default()).unwrap();
    let node = node_by_name(&cap, &name);
    let (tx, rx) = std::sync::mpsc::channel();
    let _s = cap
        .add_stream(
            node,
            StreamConfig {
                on_frame: Some(Box::new(move |f| {
                    let mut res = Ok(());
                    for (p, (bytes, gst_stride)) in want.iter().enumerate() {
                        let (plane, stride) = f.plane(p).expect("plane");
                        let (row_bytes, rows) =
                            f.format().plane_size(p, f.width(), f.height()).unwrap();
                        for y in 0..rows {
                            let got = &plane[y * stride..y * stride + row_bytes];
                            let exp = &bytes[y * gst_stride..y * gst_stride + row_bytes];
                            if got != exp {
                                res = Err(format!("plane {p} row {y} differs"));
                                break;
                            }
                        }
                    }
                    let _ = tx.send((f.format(), f.width(), f.height(), f.sequence(), res));
                })),
                ..Default::default()
            },
        )
        .unwrap();
    let mut last = None;
    for _ in 0..10 {
        let (f, fw, fh, seq, res) = rx
            .recv_timeout(Duration::from_secs(15))
            .expect("frames from GStreamer");
        assert_eq!((f, fw, fh), (fmt, w, h));
        if let Err(e) = res {
            panic!("{fmt}: {e}");
        }
        if let Some(l) = last {
            assert!(seq > l, "sequence increases");
        }
        last = Some(seq);
    }
    drop(gst);
}

#[test]
fn gstreamer_producer_bgrx() {
    run(PixelFormat::Bgrx);
}

#[test]
fn gstreamer_producer_i420() {
    run(PixelFormat::I420);
}

#[test]
fn gstreamer_producer_nv12() {
    run(PixelFormat::Nv12);
}
