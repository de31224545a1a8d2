//! The `wrd-capture` command against a private PipeWire with `wrd-testsrc`:
//! `list`, `record` (files whose pixels match what the producer drew),
//! `stats`, `--fd` with an inherited socket, and the error paths with their
//! exit status and message.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use wrd_capture::PixelFormat;
use wrd_testsrc::pattern;
use wrd_testsrc::sandbox::{Producer, Sandbox};

const BIN: &str = env!("CARGO_BIN_EXE_wrd-capture");

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wrd-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Make `fd` the child's fd 3 (inherited, not close-on-exec).
fn with_fd3(cmd: &mut Command, fd: OwnedFd) {
    let raw = fd.as_raw_fd();
    // SAFETY: between fork and exec only async-signal-safe calls (dup2,
    // fcntl) are made; `raw` stays open in the parent until `cmd` spawned
    // (the closure owns `fd`).
    unsafe {
        cmd.pre_exec(move || {
            let _keep = &fd;
            if raw == 3 {
                if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn done(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn run(sb: &Sandbox, args: &[&str]) -> Run {
    done(
        sb.command(BIN)
            .args(args)
            .output()
            .expect("run wrd-capture"),
    )
}

fn run_fd3(sb: &Sandbox, fd: OwnedFd, args: &[&str]) -> Run {
    let mut cmd = sb.command(BIN);
    cmd.args(args);
    with_fd3(&mut cmd, fd);
    done(cmd.output().expect("run wrd-capture"))
}

fn decode_png(path: &Path) -> (u32, u32, png::ColorType, Vec<u8>) {
    let f = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let mut r = png::Decoder::new(f).read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info.width, info.height, info.color_type, buf)
}

/// The frame `seq` of stream 0 as RGBA, drawn by the pattern itself.
fn expected_rgba(w: u32, h: u32, seq: u64) -> Vec<u8> {
    let mut v = vec![0u8; (w * h * 4) as usize];
    pattern::fill(
        PixelFormat::Rgba,
        w,
        h,
        seq,
        0,
        &mut [&mut v[..]],
        &[w as usize * 4],
    );
    v
}

/// The PNG files of `dir`, by sequence number from their names.
fn pngs(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut v: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .map(|p| {
            let seq = p
                .file_stem()
                .unwrap()
                .to_str()
                .unwrap()
                .strip_prefix("frame-")
                .expect("frame-<seq>.png")
                .parse()
                .unwrap();
            (seq, p)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn list_shows_video_sources_with_size_and_format() {
    let sb = Sandbox::start();
    let prod = Producer::spawn(
        &sb,
        &[
            "--streams",
            "2",
            "--format",
            "BGRx,NV12",
            "--size",
            "160x120",
            "--name",
            "cli-list",
        ],
    );
    let r = run(&sb, &["list"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines[0].starts_with("ID"), "{}", r.stdout);
    assert!(lines[0].contains("MEDIA CLASS") && lines[0].contains("FORMAT"));
    for (node, fmt) in prod.nodes().iter().zip(["BGRx", "NV12"]) {
        let line = lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(&node.id.to_string()))
            .unwrap_or_else(|| panic!("node {} listed:\n{}", node.id, r.stdout));
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells[1], node.name, "{line}");
        assert_eq!(cells[2], "Video/Source", "{line}");
        assert_eq!(cells[3], "160x120", "{line}");
        assert_eq!(cells[4], fmt, "{line}");
    }
    // Only video sources unless --all: WirePlumber's dummy sinks and the
    // like are not listed.
    assert_eq!(lines.len(), 3, "{}", r.stdout);
    let all = run(&sb, &["list", "--all", "--no-probe"]);
    assert_eq!(all.code, 0);
    assert!(all.stdout.lines().count() > lines.len(), "{}", all.stdout);
    assert!(all.stdout.contains("cli-list-0"));

    // The same over an inherited socket, as a portal client passes it.
    let r = run_fd3(&sb, sb.connect_fd(), &["list", "--fd", "3"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("cli-list-1"), "{}", r.stdout);
    assert!(r.stdout.contains("NV12"), "{}", r.stdout);
}

#[test]
fn record_writes_pngs_with_the_producers_pixels() {
    let sb = Sandbox::start();
    let prod = Producer::spawn(
        &sb,
        &["--format", "BGRx", "--size", "96x64", "--rate", "60"],
    );
    let node = prod.nodes()[0].id.to_string();
    let dir = tmpdir("png");
    let r = run(
        &sb,
        &[
            "record",
            "--node",
            &node,
            "--frames",
            "8",
            "--out",
            dir.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("frames: 8"), "{}", r.stdout);
    assert!(
        r.stdout.contains("format: BGRx 96x64 @ 60/1"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("buffer type: memfd"), "{}", r.stdout);
    assert!(
        r.stdout.lines().any(|l| l.starts_with("fps: ")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.lines().any(|l| l.starts_with("dropped: ")),
        "{}",
        r.stdout
    );
    // Not a terminal: plain progress lines, one per frame.
    assert_eq!(
        r.stderr.lines().filter(|l| l.starts_with("frame ")).count(),
        8,
        "{}",
        r.stderr
    );
    let files = pngs(&dir);
    assert_eq!(files.len(), 8);
    for (seq, path) in &files {
        let (w, h, color, px) = decode_png(path);
        assert_eq!((w, h, color), (96, 64, png::ColorType::Rgb));
        let want = expected_rgba(w, h, *seq);
        let rgb: Vec<u8> = want
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect();
        assert!(
            px == rgb,
            "{}: pixels differ from pattern frame {seq}",
            path.display()
        );
        // And the picture carries its own sequence number.
        let (dseq, stream) =
            pattern::decode(PixelFormat::Rgba, w, h, &want, w as usize * 4).unwrap();
        assert_eq!((dseq, stream), (*seq, 0));
    }
}

#[test]
fn record_yuv_png_within_tolerance_and_raw_exact_over_inherited_fd() {
    let sb = Sandbox::start();
    let prod = Producer::spawn(
        &sb,
        &["--format", "I420", "--size", "64x48", "--rate", "60"],
    );
    let node = prod.nodes()[0].id.to_string();

    let dir = tmpdir("yuv-png");
    let r = run_fd3(
        &sb,
        sb.connect_fd(),
        &[
            "record",
            "--fd",
            "3",
            "--node",
            &node,
            "--frames",
            "3",
            "--out",
            dir.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("format: I420 64x48"), "{}", r.stdout);
    for (seq, path) in pngs(&dir) {
        let (w, h, _, px) = decode_png(&path);
        let want = expected_rgba(w, h, seq);
        let worst = px
            .chunks_exact(3)
            .zip(want.chunks_exact(4))
            .flat_map(|(a, b)| (0..3).map(move |c| (a[c] as i32 - b[c] as i32).abs()))
            .max()
            .unwrap();
        // 4:2:0 chroma is shared by 2x2 pixels: edges of the coloured box
        // smear; the bulk must be within rounding.
        let close = px
            .chunks_exact(3)
            .zip(want.chunks_exact(4))
            .filter(|(a, b)| (0..3).all(|c| (a[c] as i32 - b[c] as i32).abs() <= 3))
            .count();
        assert!(
            close * 100 >= (w * h) as usize * 95,
            "{}: only {close} of {} pixels within 3 (worst {worst})",
            path.display(),
            w * h
        );
    }

    let dir = tmpdir("raw");
    let r = run(
        &sb,
        &[
            "record",
            "--node",
            &node,
            "--frames",
            "3",
            "--format",
            "raw",
            "--out",
            dir.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let seq: u64 = p.file_stem().unwrap().to_str().unwrap()[6..]
            .parse()
            .unwrap();
        let raw = std::fs::read(&p).unwrap();
        let (layout, total) = PixelFormat::I420.packed_layout(64, 48, 1).unwrap();
        assert_eq!(raw.len(), total);
        let planes: Vec<&[u8]> = layout
            .iter()
            .map(|l| &raw[l.offset..][..l.stride * l.rows])
            .collect();
        let strides: Vec<usize> = layout.iter().map(|l| l.stride).collect();
        pattern::check(PixelFormat::I420, 64, 48, seq, 0, &planes, &strides)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        n += 1;
    }
    assert_eq!(n, 3);
}

#[test]
fn stats_prints_a_table_with_fps_and_latency() {
    let sb = Sandbox::start();
    let prod = Producer::spawn(&sb, &["--streams", "2", "--size", "64x48", "--rate", "30"]);
    let (a, b) = (
        prod.nodes()[0].id.to_string(),
        prod.nodes()[1].id.to_string(),
    );
    let r = run(
        &sb,
        &["stats", "--node", &a, "--node", &b, "--seconds", "2.5"],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(
        lines[0].contains("FPS") && lines[0].contains("LAT-AVG"),
        "{}",
        r.stdout
    );
    // The last report: one row per node, streaming, about 30 fps, a latency
    // in milliseconds.
    for node in [&a, &b] {
        let last = lines
            .iter()
            .rev()
            .find(|l| l.split_whitespace().next() == Some(node.as_str()))
            .unwrap_or_else(|| panic!("row for {node}:\n{}", r.stdout));
        let c: Vec<&str> = last.split_whitespace().collect();
        assert_eq!(c[1], "streaming", "{last}");
        assert_eq!((c[2], c[3]), ("BGRx", "64x48"), "{last}");
        let fps: f64 = c[4].parse().unwrap();
        assert!((10.0..=45.0).contains(&fps), "fps {fps}: {last}");
        let lat: f64 = c[5].trim_end_matches("ms").parse().unwrap();
        assert!(lat > 0.0 && lat < 500.0, "latency {lat}: {last}");
        let frames: u64 = c[7].parse().unwrap();
        assert!(frames >= 40, "{last}");
    }
    // Not a terminal: a report per second, each closed by its time line.
    let reports = r.stdout.lines().filter(|l| l.starts_with("# ")).count();
    assert!((2..=4).contains(&reports), "{}", r.stdout);
}

#[test]
fn error_paths_have_their_exit_status_and_message() {
    let sb = Sandbox::start();
    let dir = tmpdir("errors");
    let out = dir.to_str().unwrap();

    // A node that does not exist.
    let r = run(
        &sb,
        &["record", "--node", "99999", "--frames", "1", "--out", out],
    );
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.stderr.contains("node 99999 not found"), "{}", r.stderr);
    assert!(r.stderr.contains("wrd-capture list"), "{}", r.stderr);
    let r = run(&sb, &["stats", "--node", "99999", "--seconds", "5"]);
    assert_eq!(r.code, 4, "{}", r.stderr);

    // --fd that is not open, and one that is not a socket.
    let r = run(&sb, &["list", "--fd", "99"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("--fd 99: not an open file descriptor"),
        "{}",
        r.stderr
    );
    let devnull: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
    let r = run_fd3(
        &sb,
        devnull,
        &[
            "record", "--fd", "3", "--node", "1", "--frames", "1", "--out", out,
        ],
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("--fd 3: not a socket"), "{}", r.stderr);

    // No daemon at all.
    let r = done(
        sb.command(BIN)
            .arg("list")
            .env("XDG_RUNTIME_DIR", &dir)
            .env("PIPEWIRE_RUNTIME_DIR", &dir)
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("cannot connect to the PipeWire daemon"),
        "{}",
        r.stderr
    );

    // No common format.
    let prod = Producer::spawn(&sb, &["--format", "I420", "--size", "64x48"]);
    let node = prod.nodes()[0].id.to_string();
    let r = run(
        &sb,
        &[
            "record",
            "--node",
            &node,
            "--frames",
            "1",
            "--pixel-format",
            "BGRx",
            "--out",
            out,
        ],
    );
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(
        r.stderr.contains("format negotiation failed"),
        "{}",
        r.stderr
    );
    drop(prod);

    // The stream ends before N frames: exit 6, and the frames it got are on disk.
    let prod = Producer::spawn(&sb, &["--size", "64x48", "--rate", "60", "--frames", "5"]);
    let node = prod.nodes()[0].id.to_string();
    let r = run(
        &sb,
        &["record", "--node", &node, "--frames", "1000", "--out", out],
    );
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert!(
        r.stderr.contains("ended early") || r.stderr.contains("closed"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("of 1000 frames"), "{}", r.stderr);
    let got = pngs(&dir).len();
    assert!((1..=5).contains(&got), "{got} files");

    // Usage errors.
    for args in [
        &[][..],
        &["record", "--node", "1"][..],
        &["record", "--node", "x", "--frames", "1", "--out", out][..],
        &[
            "record", "--node", "1", "--frames", "1", "--out", out, "--format", "jpg",
        ][..],
        &["list", "--bogus"][..],
        &["frobnicate"][..],
    ] {
        let r = run(&sb, args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        if !args.is_empty() {
            assert!(
                r.stderr.contains("Try 'wrd-capture --help'"),
                "{args:?}: {}",
                r.stderr
            );
        }
    }
    let r = run(&sb, &["--help"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("wrd-capture record --node ID"));
}
