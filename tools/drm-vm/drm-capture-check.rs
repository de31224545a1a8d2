//! The VM test's checker: captures what `kms-flipper` shows through
//! `wrd_capture::drm` and checks it. Prints `DRM-TEST PASS <what>` or
//! `DRM-TEST FAIL <what>: <why>` lines; exits non-zero on any failure.
//!
//! Usage:
//!   drm-capture-check            as root (CAP_SYS_ADMIN): pixels, size,
//!                                format, flips, mode change, error states
//!   drm-capture-check --drop-privileges
//!                                becomes nobody with no capabilities while
//!                                the flipper is master: listing works,
//!                                capture fails with WRD_ERR_PERMISSION

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use wrd_capture::drm::{DrmDevice, DrmSource, Target};
use wrd_capture::error::wrd_status;
use wrd_capture::import::{cpu, ReadFormat};
use wrd_capture::{Frame, PixelFormat};

#[path = "pattern.rs"]
mod pattern;

const CARD: &str = "/dev/dri/card0";

struct Report {
    failed: bool,
}

impl Report {
    fn check(&mut self, what: &str, r: Result<String, String>) {
        match r {
            Ok(detail) => println!("DRM-TEST PASS {what}: {detail}"),
            Err(why) => {
                println!("DRM-TEST FAIL {what}: {why}");
                self.failed = true;
            }
        }
    }
}

/// What the flipper set up (from /tmp/flipper-ready).
#[derive(Debug, Clone, Copy)]
struct Setup {
    w: u32,
    h: u32,
    conn: u32,
    crtc: u32,
    fb0: u32,
    fb1: u32,
    sw: u32,
    sh: u32,
    fb2: u32,
}

fn wait_setup() -> Setup {
    let start = Instant::now();
    loop {
        if let Ok(s) = std::fs::read_to_string("/tmp/flipper-ready") {
            let v: Vec<u32> = s
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            if v.len() == 9 {
                return Setup {
                    w: v[0],
                    h: v[1],
                    conn: v[2],
                    crtc: v[3],
                    fb0: v[4],
                    fb1: v[5],
                    sw: v[6],
                    sh: v[7],
                    fb2: v[8],
                };
            }
        }
        if start.elapsed() > Duration::from_secs(30) {
            println!("DRM-TEST FAIL setup: the flipper did not start");
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Read the frame with the CPU and check its pixels against the pattern:
/// every row, or with `full` false every 8th (the tests run unoptimised
/// under TCG). Returns (buffer k, flip counter).
fn check_pixels(f: &Frame, full: bool) -> Result<(u32, u32), String> {
    let buf = f.dmabuf().ok_or("not a DMA-BUF frame")?;
    let (w, h) = (f.width() as usize, f.height() as usize);
    let stride = w * 4;
    let mut dst = vec![0u8; stride * h];
    // Dumb buffers are linear; GETFB2 reports no modifier for them on
    // drivers without modifier support, hence implicit_is_linear.
    cpu::read_linear(&buf, true, &mut dst, stride, ReadFormat::Bgra)
        .map_err(|e| format!("read_linear: {e}"))?;
    let px = |x: usize, y: usize| -> u32 {
        let b = &dst[y * stride + x * 4..][..4];
        // BGRA bytes -> XRGB value (alpha dropped).
        u32::from_le_bytes([b[0], b[1], b[2], 0])
    };
    let mark = px(0, 0);
    if mark & !0xff != pattern::MARK {
        return Err(format!("pixel 0 is {mark:#010x}, not a buffer marker"));
    }
    let k = mark & 0xff;
    let counter = px(1, 0) & 0x00ff_ffff;
    let mut bad = 0usize;
    let mut first = None;
    for y in (0..h).step_by(if full { 1 } else { 8 }) {
        for x in 0..w {
            if y == 0 && x < 2 {
                continue;
            }
            let want = pattern::pixel(k, x as u32, y as u32);
            let got = px(x, y);
            if got != want {
                bad += 1;
                first.get_or_insert((x, y, got, want));
            }
        }
    }
    if bad > 0 {
        let (x, y, got, want) = first.unwrap();
        return Err(format!(
            "{bad} of {} pixels differ from buffer {k}'s pattern; first at ({x},{y}): {got:#08x}, want {want:#08x}",
            w * h / if full { 1 } else { 8 }
        ));
    }
    Ok((k, counter))
}

fn describe(f: &Frame) -> String {
    let d = f.dmabuf().unwrap();
    format!(
        "{}x{} {:?} (fourcc {:?}) modifier {:#x} planes {} stride {} fb {} seq {}",
        f.width(),
        f.height(),
        f.format(),
        d.format,
        d.modifier,
        d.planes.len(),
        d.planes[0].stride,
        f.data().buffer_index,
        f.sequence()
    )
}

fn drop_privileges() -> Result<(), String> {
    // SAFETY: plain syscalls on our own credentials, before any thread is
    // started; setuid from root to nobody clears every capability.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0
            || libc::setgid(65534) != 0
            || libc::setuid(65534) != 0
        {
            return Err(format!("{}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

fn unprivileged(rep: &mut Report, s: Setup) {
    rep.check(
        "drop privileges",
        drop_privileges().map(|_| {
            // SAFETY: getuid/geteuid have no preconditions.
            let (uid, euid) = unsafe { (libc::getuid(), libc::geteuid()) };
            let caps = std::fs::read_to_string("/proc/self/status")
                .unwrap_or_default()
                .lines()
                .find(|l| l.starts_with("CapEff:"))
                .unwrap_or("CapEff: ?")
                .to_string();
            format!("uid {uid} euid {euid}, {caps}")
        }),
    );
    rep.check(
        "unprivileged listing",
        DrmDevice::open(CARD)
            .and_then(|d| d.connectors())
            .map_err(|e| e.to_string())
            .and_then(|l| {
                let c = l
                    .iter()
                    .find(|c| c.id == s.conn)
                    .ok_or("flipper's connector not listed")?;
                Ok(format!(
                    "connector {} {} connected={} crtc {:?}, {} modes",
                    c.id,
                    c.name,
                    c.connected(),
                    c.crtc,
                    c.modes.len()
                ))
            }),
    );
    let r = DrmSource::open(CARD, Target::Connector(s.conn))
        .and_then(|mut src| src.capture().map(|_| ()));
    rep.check(
        "unprivileged capture is refused with WRD_ERR_PERMISSION",
        match r {
            Ok(()) => Err("capture succeeded without master or CAP_SYS_ADMIN".into()),
            Err(e) if e.status() == wrd_status::WRD_ERR_PERMISSION => {
                Ok(format!("{:?}: {e}", e.status()))
            }
            Err(e) => Err(format!("wrong status {:?}: {e}", e.status())),
        },
    );
    // The C API says the same.
    let mut src = std::ptr::null_mut();
    let st = wrd_capture::ffi::drm::wrd_drm_source_new(std::ptr::null(), -1, s.conn, 0, &mut src);
    let mut frame = std::ptr::null_mut();
    let st2 = wrd_capture::ffi::drm::wrd_drm_source_capture(src, &mut frame);
    wrd_capture::ffi::drm::wrd_drm_source_destroy(src);
    rep.check(
        "C API: unprivileged wrd_drm_source_capture",
        if st == wrd_status::WRD_OK && st2 == wrd_status::WRD_ERR_PERMISSION && frame.is_null() {
            Ok(format!("new {st:?}, capture {st2:?}"))
        } else {
            Err(format!("new {st:?}, capture {st2:?}"))
        },
    );
}

fn privileged(rep: &mut Report, s: Setup) {
    // Listing.
    rep.check(
        "list connectors and CRTCs",
        DrmDevice::open(CARD)
            .and_then(|d| Ok((d.connectors()?, d.crtcs()?)))
            .map_err(|e| e.to_string())
            .and_then(|(conns, crtcs)| {
                let mut out = Vec::new();
                for c in &conns {
                    out.push(format!(
                        "connector {} {} {:?} crtc {:?} modes {}{}",
                        c.id,
                        c.name,
                        c.state,
                        c.crtc,
                        c.modes.len(),
                        c.modes
                            .iter()
                            .find(|m| m.preferred)
                            .map(|m| format!(
                                " (preferred {}x{}@{})",
                                m.width, m.height, m.refresh_hz
                            ))
                            .unwrap_or_default()
                    ));
                }
                for c in &crtcs {
                    out.push(format!(
                        "crtc {} index {} fb {:?} mode {:?}",
                        c.id,
                        c.index,
                        c.fb,
                        c.mode.as_ref().map(|m| format!("{}x{}", m.width, m.height))
                    ));
                }
                let me = conns
                    .iter()
                    .find(|c| c.id == s.conn)
                    .ok_or("flipper's connector missing")?;
                if me.crtc != Some(s.crtc) {
                    return Err(format!("connector's CRTC {:?}, want {}", me.crtc, s.crtc));
                }
                Ok(out.join("; "))
            }),
    );

    let mut src = match DrmSource::open(CARD, Target::Connector(s.conn)) {
        Ok(src) => src,
        Err(e) => {
            rep.check("open source", Err(format!("{:?}: {e}", e.status())));
            return;
        }
    };

    // One frame: size, format, pixels.
    let first = src.capture();
    rep.check(
        "capture: size, format, modifier, pixels",
        first
            .as_ref()
            .map_err(|e| format!("{:?}: {e}", e.status()))
            .and_then(|f| {
                if (f.width(), f.height()) != (s.w, s.h) {
                    return Err(format!(
                        "size {}x{}, want {}x{}",
                        f.width(),
                        f.height(),
                        s.w,
                        s.h
                    ));
                }
                if f.format() != PixelFormat::Bgrx {
                    return Err(format!("format {:?}, want BGRx (XRGB8888)", f.format()));
                }
                let d = f.dmabuf().ok_or("not a DMA-BUF frame")?;
                if d.modifier != 0 && d.modifier != wrd_capture::dmabuf::DRM_FORMAT_MOD_INVALID {
                    return Err(format!(
                        "modifier {:#x}, want LINEAR or implicit",
                        d.modifier
                    ));
                }
                let fb = f.data().buffer_index;
                if fb != s.fb0 && fb != s.fb1 {
                    return Err(format!(
                        "fb {fb} is not one of the flipper's ({} {})",
                        s.fb0, s.fb1
                    ));
                }
                let (k, n) = check_pixels(f, true)?;
                let want_fb = if k == 0 { s.fb0 } else { s.fb1 };
                if fb != want_fb {
                    return Err(format!("fb {fb} holds buffer {k}'s pixels"));
                }
                Ok(format!("{}; buffer {k}, flip counter {n}", describe(f)))
            }),
    );

    // No re-export while the framebuffer is unchanged.
    if let Ok(f) = &first {
        let exports = src.export_count();
        let again = src.capture();
        rep.check(
            "unchanged framebuffer is not re-exported",
            again.map_err(|e| e.to_string()).and_then(|g| {
                if g.data().buffer_index != f.data().buffer_index {
                    // A flip came in between: then exactly one export more.
                    return if src.export_count() == exports + 1 {
                        Ok("a flip came in between: one new export".into())
                    } else {
                        Err(format!(
                            "{} exports for one flip",
                            src.export_count() - exports
                        ))
                    };
                }
                if src.export_count() != exports || g.sequence() != f.sequence() {
                    return Err(format!(
                        "re-exported: exports {} -> {}, sequence {} -> {}",
                        exports,
                        src.export_count(),
                        f.sequence(),
                        g.sequence()
                    ));
                }
                Ok(format!(
                    "same fb {}, sequence {}, exports still {exports}",
                    g.data().buffer_index,
                    g.sequence()
                ))
            }),
        );
    }

    // Follow page flips.
    let mut seen_k = BTreeSet::new();
    let mut counters = Vec::new();
    let mut fbs = Vec::new();
    let mut err = None;
    let t0 = Instant::now();
    for _ in 0..10 {
        match src.next_frame(Duration::from_secs(2), Duration::from_millis(5)) {
            Ok(f) => {
                if (f.width(), f.height()) != (s.w, s.h) {
                    break; // the mode changed early; checked below
                }
                match check_pixels(&f, false) {
                    Ok((k, n)) => {
                        seen_k.insert(k);
                        counters.push(n);
                        fbs.push(f.data().buffer_index);
                    }
                    Err(e) => {
                        err = Some(format!("after {} flips: {e}", fbs.len()));
                        break;
                    }
                }
            }
            Err(e) => {
                err = Some(format!("after {} flips: {:?}: {e}", fbs.len(), e.status()));
                break;
            }
        }
    }
    let _ = std::fs::write("/tmp/checker-flips-done", "");
    let alternates = fbs.windows(2).all(|w| w[0] != w[1]);
    rep.check(
        "page flips followed",
        match err {
            Some(e) => Err(e),
            None if fbs.len() < 6 => Err(format!("only {} flips seen", fbs.len())),
            None if seen_k.len() != 2 || !alternates => {
                Err(format!("buffers seen {seen_k:?}, fbs {fbs:?}"))
            }
            None => Ok(format!(
                "{} flips in {:.2}s, fbs {fbs:?}, flip counters {counters:?}, exports {}, waits on {}",
                fbs.len(),
                t0.elapsed().as_secs_f64(),
                src.export_count(),
                match src.waits_on_vblank() {
                    Some(true) => "vblanks",
                    Some(false) => "polling (no vblank support)",
                    None => "nothing yet",
                }
            )),
        },
    );

    // Mode change: a new framebuffer of another size.
    let gen0 = first
        .as_ref()
        .map(|f| f.data().format_generation)
        .unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut r = Err("no frame of the new mode within 15 s".to_string());
    while Instant::now() < deadline {
        match src.next_frame(Duration::from_secs(1), Duration::from_millis(5)) {
            Ok(f) if (f.width(), f.height()) == (s.sw, s.sh) => {
                r = check_pixels(&f, true).and_then(|(k, _)| {
                    if k != 2 || f.data().buffer_index != s.fb2 {
                        return Err(format!("buffer {k} fb {}", f.data().buffer_index));
                    }
                    if f.data().format_generation <= gen0 {
                        return Err("format generation not bumped".into());
                    }
                    Ok(format!(
                        "{}; generation {} -> {}",
                        describe(&f),
                        gen0,
                        f.data().format_generation
                    ))
                });
                break;
            }
            Ok(_) | Err(wrd_capture::Error::Timeout) => {}
            Err(e) => {
                r = Err(format!("{:?}: {e}", e.status()));
                break;
            }
        }
    }
    let held = r.is_ok();
    rep.check("mode change picked up", r);

    // The flipper now holds one framebuffer: captures must reuse its export.
    if held {
        let exports = src.export_count();
        let a = src.capture();
        let b = src.capture();
        rep.check(
            "unchanged framebuffer is not re-exported (held)",
            match (a, b) {
                (Ok(a), Ok(b))
                    if a.data().buffer_index == s.fb2
                        && b.sequence() == a.sequence()
                        && src.export_count() == exports =>
                {
                    Ok(format!(
                        "2 captures of fb {}: sequence {} both times, exports still {exports}",
                        s.fb2,
                        a.sequence()
                    ))
                }
                (Ok(a), Ok(b)) => Err(format!(
                    "fb {} / {}, sequence {} / {}, exports {exports} -> {}",
                    a.data().buffer_index,
                    b.data().buffer_index,
                    a.sequence(),
                    b.sequence(),
                    src.export_count()
                )),
                (Err(e), _) | (_, Err(e)) => Err(format!("{:?}: {e}", e.status())),
            },
        );
    }

    // The C API on the same device: a frame with the same description.
    {
        use wrd_capture::ffi::drm::*;
        use wrd_capture::ffi::frame::{wrd_frame_get_info, wrd_frame_info, wrd_frame_release};
        let mut src = std::ptr::null_mut();
        let mut frame = std::ptr::null_mut();
        let st = wrd_drm_source_new(std::ptr::null(), -1, 0, s.crtc, &mut src);
        let st2 = wrd_drm_source_capture(src, &mut frame);
        let mut info = std::mem::MaybeUninit::<wrd_frame_info>::zeroed();
        let st3 = wrd_frame_get_info(frame, info.as_mut_ptr());
        // SAFETY: zero-initialised, then filled by wrd_frame_get_info.
        let info = unsafe { info.assume_init() };
        let mut n = 0usize;
        let mut conns = [wrd_drm_connector {
            id: 0,
            connection: 0,
            crtc_id: 0,
            n_modes: 0,
            name: [0; 32],
        }; 8];
        let st4 = wrd_drm_list_connectors(std::ptr::null(), -1, conns.as_mut_ptr(), 8, &mut n);
        wrd_frame_release(frame);
        wrd_drm_source_destroy(src);
        rep.check(
            "C API: wrd_drm_source_new(crtc) + capture + wrd_frame_get_info",
            if st == wrd_status::WRD_OK
                && st2 == wrd_status::WRD_OK
                && st3 == wrd_status::WRD_OK
                && st4 == wrd_status::WRD_OK
                && info.width > 0
                && info.buffer_type == 3
                && info.n_planes == 1
                && info.planes[0].fd >= 0
            {
                Ok(format!(
                    "{}x{} drm_format {:#x} modifier {:#x} stride {} fd {}; {n} connectors",
                    info.width,
                    info.height,
                    info.drm_format,
                    info.modifier,
                    info.planes[0].stride,
                    info.planes[0].fd
                ))
            } else {
                Err(format!(
                    "statuses {st:?} {st2:?} {st3:?} {st4:?}, info {}x{} type {}",
                    info.width, info.height, info.buffer_type
                ))
            },
        );
    }

    let _ = std::fs::write("/tmp/checker-done", "");

    // Error states.
    let status_of = |r: wrd_capture::Result<Frame>| match r {
        Ok(_) => Err("succeeded".to_string()),
        Err(e) => Ok((e.status(), e.to_string())),
    };
    let expect = |what: &str,
                  got: Result<(wrd_status, String), String>,
                  want: wrd_status,
                  rep: &mut Report| {
        rep.check(
            what,
            got.and_then(|(st, msg)| {
                if st == want {
                    Ok(format!("{st:?}: {msg}"))
                } else {
                    Err(format!("{st:?}: {msg}, want {want:?}"))
                }
            }),
        )
    };
    expect(
        "no device",
        status_of(
            DrmSource::open("/dev/dri/card9", Target::Connector(s.conn))
                .and_then(|mut x| x.capture()),
        ),
        wrd_status::WRD_ERR_IO,
        rep,
    );
    expect(
        "no such connector",
        status_of(DrmSource::open(CARD, Target::Connector(9999)).and_then(|mut x| x.capture())),
        wrd_status::WRD_ERR_NODE_NOT_FOUND,
        rep,
    );
    if let Ok(d) = DrmDevice::open(CARD) {
        let conns = d.connectors().unwrap_or_default();
        match conns.iter().find(|c| !c.connected()) {
            Some(c) => expect(
                &format!("disconnected connector {} ({})", c.id, c.name),
                status_of(
                    DrmSource::open(CARD, Target::Connector(c.id)).and_then(|mut x| x.capture()),
                ),
                wrd_status::WRD_ERR_INVALID_STATE,
                rep,
            ),
            None => println!("DRM-TEST SKIP disconnected connector: every connector is connected"),
        }
        let crtcs = d.crtcs().unwrap_or_default();
        match crtcs.iter().find(|c| c.fb.is_none()) {
            Some(c) => expect(
                &format!("CRTC {} that is off", c.id),
                status_of(DrmSource::open(CARD, Target::Crtc(c.id)).and_then(|mut x| x.capture())),
                wrd_status::WRD_ERR_INVALID_STATE,
                rep,
            ),
            None => println!("DRM-TEST SKIP CRTC off: every CRTC is on"),
        }
    }
}

fn main() {
    let drop = std::env::args().any(|a| a == "--drop-privileges");
    let s = wait_setup();
    println!("checker: flipper setup {s:?}");
    let mut rep = Report { failed: false };
    if drop {
        unprivileged(&mut rep, s);
    } else {
        privileged(&mut rep, s);
    }
    std::process::exit(if rep.failed { 1 } else { 0 });
}
