//! Every C example in `examples-c/` built exactly as a user builds it: `make
//! install PREFIX=...`, then `cc example.c $(pkg-config --cflags --libs
//! wrd-capture ...)`, and run here where it can run: capture-png (its PNG
//! checked pixel by pixel against what wrd-testsrc drew), stats-poll,
//! egl-import (on an EGL device, or its documented "no EGL device" exit),
//! portal-capture (built; run without a portal it must fail cleanly).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use wrd_capture::PixelFormat;
use wrd_testsrc::pattern;
use wrd_testsrc::sandbox::{Producer, Sandbox};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn work() -> PathBuf {
    std::env::temp_dir().join(format!("wrd-examples-{}", std::process::id()))
}

/// `make install` into a private prefix, once per test binary.
fn prefix() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let prefix = work().join("prefix");
        let profile = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        let out = Command::new("make")
            .current_dir(ROOT)
            .arg("install")
            .arg(format!("PREFIX={}", prefix.display()))
            .arg(format!("PROFILE={profile}"))
            .output()
            .expect("make");
        assert!(
            out.status.success(),
            "make install failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        prefix
    })
}

/// `cc examples-c/<name>.c $(pkg-config --cflags --libs wrd-capture <extra>)`,
/// through the shell as the example's own comment says.
fn build(name: &str, pkgs: &str) -> PathBuf {
    let exe = work().join(name);
    let src = Path::new(ROOT).join("examples-c").join(format!("{name}.c"));
    let line = format!(
        "cc -Wall -Wextra -Werror {} $(pkg-config --cflags --libs wrd-capture {pkgs}) -o {}",
        src.display(),
        exe.display()
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(&line)
        .env("PKG_CONFIG_PATH", prefix().join("lib/pkgconfig"))
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{line}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The comment at the top of the example gives the same command.
    let text = std::fs::read_to_string(&src).unwrap();
    let documented = format!(
        "cc {name}.c $(pkg-config --cflags --libs wrd-capture{}{pkgs})",
        if pkgs.is_empty() { "" } else { " " }
    );
    assert!(
        text.contains(&documented),
        "{name}.c documents: {documented}"
    );
    exe
}

fn run(sb: &Sandbox, exe: &Path, args: &[String]) -> Output {
    sb.command("timeout")
        .arg("60")
        .arg(exe)
        .args(args)
        .env("LD_LIBRARY_PATH", prefix().join("lib"))
        .output()
        .expect("run")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn capture_png_writes_the_producers_pixels() {
    let exe = build("capture-png", "libpng");
    let sb = Sandbox::start();
    let prod = Producer::spawn(
        &sb,
        &["--streams", "2", "--size", "160x120", "--rate", "60"],
    );
    let png_path = work().join("demo.png");
    let ids: Vec<String> = prod.nodes().iter().map(|n| n.id.to_string()).collect();
    let mut args = vec![png_path.display().to_string(), "10".into()];
    args.extend(ids.iter().cloned());
    let out = run(&sb, &exe, &args);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("2 streams, 10 frames each"), "{t}");
    // "wrote PATH: 160x120, frame SEQ"
    let seq: u64 = t
        .split("frame ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no frame number in: {t}"));
    let f = std::io::BufReader::new(std::fs::File::open(&png_path).unwrap());
    let mut r = png::Decoder::new(f).read_info().unwrap();
    let mut px = vec![0; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut px).unwrap();
    assert_eq!(
        (info.width, info.height, info.color_type),
        (160, 120, png::ColorType::Rgb)
    );
    let mut want = vec![0u8; 160 * 120 * 4];
    pattern::fill(
        PixelFormat::Rgba,
        160,
        120,
        seq,
        0,
        &mut [&mut want[..]],
        &[160 * 4],
    );
    let want_rgb: Vec<u8> = want
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    assert!(
        px[..want_rgb.len()] == want_rgb[..],
        "PNG differs from frame {seq}"
    );
}

#[test]
fn stats_poll_prints_live_stats_and_fails_on_a_missing_node() {
    let exe = build("stats-poll", "");
    let sb = Sandbox::start();
    let prod = Producer::spawn(&sb, &["--streams", "2", "--size", "64x48", "--rate", "30"]);
    let mut args = vec!["2.5".to_string()];
    args.extend(prod.nodes().iter().map(|n| n.id.to_string()));
    let out = run(&sb, &exe, &args);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    for n in prod.nodes() {
        let last = t
            .lines()
            .rev()
            .find(|l| l.split_whitespace().next() == Some(&n.id.to_string()))
            .unwrap_or_else(|| panic!("no row for {}: {t}", n.id));
        let c: Vec<&str> = last.split_whitespace().collect();
        assert_eq!((c[1], c[2], c[3]), ("streaming", "BGRx", "64x48"), "{last}");
        let fps: f64 = c[4].parse().unwrap();
        assert!((10.0..=45.0).contains(&fps), "{last}");
        assert!(c[5].ends_with("ms"), "latency from pts: {last}");
    }
    // Over an inherited socket too.
    let sock = std::os::unix::net::UnixStream::connect(sb.socket_path()).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
    // SAFETY: clearing FD_CLOEXEC on our own open socket so the child inherits it.
    unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    let args = vec![
        "--fd".to_string(),
        fd.to_string(),
        "1.2".into(),
        prod.nodes()[0].id.to_string(),
    ];
    let out = run(&sb, &exe, &args);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("streaming"), "{}", text(&out));
    drop(sock);

    let out = run(&sb, &exe, &["5".into(), "99999".into()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // WirePlumber 0.4: the library's node timeout ("does not exist");
    // WirePlumber 0.5: its immediate "defined target not found". Both are
    // WRD_ERR_NODE_NOT_FOUND.
    assert!(
        text(&out).contains("does not exist") || text(&out).contains("target not found"),
        "the library's message: {}",
        text(&out)
    );
}

#[test]
fn egl_import_uploads_or_says_no_egl_device() {
    let exe = build("egl-import", "egl glesv2");
    let sb = Sandbox::start();
    let prod = Producer::spawn(&sb, &["--size", "64x48", "--rate", "30"]);
    let out = run(&sb, &exe, &[prod.nodes()[0].id.to_string(), "5".into()]);
    let t = text(&out);
    match out.status.code() {
        // An EGL device (hardware, or Mesa's software rasterizer): the SHM
        // frames went through glTexImage2D and read back equal.
        Some(0) => {
            assert!(t.contains("ok 5 frames in GL textures"), "{t}");
            assert!(t.contains("read back equal"), "{t}");
        }
        Some(3) => assert!(t.contains("egl-import: no EGL device"), "{t}"),
        other => panic!("egl-import exited {other:?}: {t}"),
    }
    eprintln!("egl-import here: {t}");
}

#[test]
fn portal_capture_builds_and_fails_cleanly_without_a_portal() {
    let exe = build("portal-capture", "libportal");
    // The sandbox has a session bus but no xdg-desktop-portal: the session
    // request fails, and the program says so and exits 1.
    let sb = Sandbox::start();
    let t0 = std::time::Instant::now();
    let out = run(&sb, &exe, &["5".into()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("portal-capture: no screencast session from the portal"),
        "{}",
        text(&out)
    );
    assert!(t0.elapsed() < Duration::from_secs(40));
    let out = run(&sb, &exe, &["0".into()]);
    assert_eq!(out.status.code(), Some(2));
}
