//! The C API as a C program uses it: installed with `make install`, built
//! with nothing but the installed header and pkg-config, run against a
//! private PipeWire.

mod common;

use common::cprog::{build, prefix, run};
use wrd_capture::PixelFormat;
use wrd_testsrc::pattern;
use wrd_testsrc::sandbox::{Producer, Sandbox};

#[test]
fn header_compiles_as_c99_and_cxx_pedantic() {
    let sb = Sandbox::start();
    for (cc, std) in [("cc", "c99"), ("c++", "c++17")] {
        let exe = build("header_check", cc, std);
        run(&sb, &exe, &[]);
    }
}

/// A C program captures frames from GStreamer's producer (default-daemon
/// path) and checks every row of every plane against the reference.
#[test]
fn c_program_checks_pixels_from_gstreamer() {
    let exe = build("capture_check", "cc", "c99");
    let sb = Sandbox::start();
    // BGRx also with WRD_STREAM_FLAG_REALTIME (frames on PipeWire's data
    // thread). A producer per run: GStreamer 1.4's pipewiresink fails when
    // its consumer goes away ("link to remote node was destroyed").
    let runs = [
        (PixelFormat::Bgrx, false),
        (PixelFormat::Bgrx, true),
        (PixelFormat::I420, false),
    ];
    for (i, (fmt, realtime)) in runs.into_iter().enumerate() {
        let (w, h) = (320u32, 240u32);
        let name = format!("c-gst-{}-{i}", fmt.name());
        let mut gst = sb
            .command("gst-launch-1.0")
            .args([
                "-q",
                "videotestsrc",
                "is-live=true",
                "pattern=checkers-8",
                "!",
            ])
            .arg(format!(
                "video/x-raw,format={},width={w},height={h},framerate=30/1",
                fmt.name()
            ))
            .args(["!", "pipewiresink", "mode=provide"])
            .arg(format!(
                "stream-properties=p,media.class=Video/Source,media.type=Video,node.name={name}"
            ))
            .spawn()
            .unwrap();
        let cap = wrd_capture::Capture::new(Some(sb.connect_fd()), Default::default()).unwrap();
        let t = std::time::Instant::now();
        let node = loop {
            if let Some(n) = cap.nodes().into_iter().find(|n| n.name == name) {
                break n.id;
            }
            assert!(t.elapsed().as_secs() < 10, "gst node");
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        drop(cap);
        let reference = common::gst_reference(fmt, w, h, prefix().parent().unwrap());
        let mut args = vec![
            node.to_string(),
            reference.display().to_string(),
            (fmt as u32).to_string(),
            w.to_string(),
            h.to_string(),
            "10".into(),
        ];
        if realtime {
            args.push("realtime".into());
        }
        let out = run(&sb, &exe, &args);
        let want = if realtime {
            "ok 10 frames with the reference pixels (realtime),"
        } else {
            "ok 10 frames with the reference pixels,"
        };
        assert!(out.contains(want), "{out}");
        let _ = gst.kill();
        let _ = gst.wait();
    }
}

/// The pull API with poll() over a socket the C program connected itself;
/// the frames it dumped match wrd-testsrc's pattern byte for byte.
#[test]
fn c_program_pulls_with_poll_over_its_own_socket() {
    let exe = build("pull_poll", "cc", "c99");
    let sb = Sandbox::start();
    let prod = Producer::spawn(
        &sb,
        &["--format", "I420", "--size", "96x64", "--rate", "60"],
    );
    let dir = prefix().parent().unwrap().join("dumps");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = run(
        &sb,
        &exe,
        &[
            prod.nodes()[0].id.to_string(),
            "30".into(),
            dir.display().to_string(),
        ],
    );
    assert!(out.contains("ok 30 frames pulled with poll()"), "{out}");
    let mut checked = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().and_then(|x| x.to_str()) != Some("txt") {
            continue;
        }
        let meta: Vec<usize> = std::fs::read_to_string(&p)
            .unwrap()
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect();
        let fmt = PixelFormat::from_raw(meta[0] as u32).unwrap();
        let (w, h, n) = (meta[1] as u32, meta[2] as u32, meta[3]);
        let raw = std::fs::read(p.with_extension("raw")).unwrap();
        let mut planes = Vec::new();
        let mut strides = Vec::new();
        let mut off = 0;
        for i in 0..n {
            let (size, stride) = (meta[4 + 2 * i], meta[5 + 2 * i]);
            planes.push(&raw[off..off + size]);
            strides.push(stride);
            off += size;
        }
        let (seq, stream) = pattern::decode(fmt, w, h, planes[0], strides[0]).expect("code");
        pattern::check(fmt, w, h, seq, stream, &planes, &strides).unwrap();
        let name_seq: u64 = p
            .file_stem()
            .unwrap()
            .to_str()
            .unwrap()
            .trim_start_matches("frame-")
            .parse()
            .unwrap();
        assert_eq!(
            seq, name_seq,
            "the pixels carry the frame's sequence number"
        );
        checked += 1;
    }
    assert_eq!(checked, 3);
}
