//! The test bench against a real (sandboxed) PipeWire: GStreamer's
//! pipewiresrc consumes wrd-testsrc's nodes and every frame is checked
//! against the pattern; sandboxes tear down completely, also when their
//! owner is killed; sandboxes run side by side.
//!
//! Needs pipewire, wireplumber, dbus-daemon and gst-launch-1.0 with the
//! pipewire plugin (scripts/install-deps.sh); the tests fail without them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wrd_capture::PixelFormat;
use wrd_testsrc::pattern;
use wrd_testsrc::sandbox::process_alive;
use wrd_testsrc::{Producer, Sandbox};

/// Run pipewiresrc on node `id` for `n` buffers, each written to its own
/// file in `dir`. Returns the files in order.
fn gst_capture(sb: &Sandbox, id: u32, n: u32, dir: &Path) -> Command {
    std::fs::create_dir_all(dir).unwrap();
    let mut c = sb.command("gst-launch-1.0");
    c.arg("-q")
        .arg("pipewiresrc")
        .arg(format!("path={id}"))
        .arg("stream-properties=p,media.type=Video")
        .arg(format!("num-buffers={n}"))
        .arg("!")
        .arg("multifilesink")
        .arg(format!("location={}/f%05d.raw", dir.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn frames_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// Check one captured frame: its size, its decoded stream index and seq,
/// every byte against the pattern. Returns seq.
fn check_frame(
    path: &Path,
    fmt: PixelFormat,
    (w, h): (u32, u32),
    align: usize,
    stream: u32,
) -> u64 {
    let data = std::fs::read(path).unwrap();
    let (layout, total) = fmt.packed_layout(w, h, align).unwrap();
    assert_eq!(data.len(), total, "{}: {fmt} {w}x{h} size", path.display());
    let planes: Vec<&[u8]> = layout
        .iter()
        .map(|l| &data[l.offset..l.offset + l.stride * l.rows])
        .collect();
    let strides: Vec<usize> = layout.iter().map(|l| l.stride).collect();
    let (seq, s) = pattern::decode(fmt, w, h, planes[0], strides[0])
        .unwrap_or_else(|| panic!("{}: {fmt} frame does not decode", path.display()));
    assert_eq!(s, stream, "{}: stream index", path.display());
    if let Err(e) = pattern::check(fmt, w, h, seq, stream, &planes, &strides) {
        panic!("{}: {e}", path.display());
    }
    seq
}

/// A producer with one stream per format; a pipewiresrc per node takes
/// `n` frames (all at once); every frame is checked.
fn consume_all(formats: &[&str], extra: &[&str], align: usize, n: u32) {
    let sb = Sandbox::start();
    let fmt_arg = formats.join(",");
    let streams = formats.len().to_string();
    let mut args = vec!["--streams", &streams, "--format", &fmt_arg, "--rate", "60"];
    args.extend_from_slice(extra);
    let mut producer = Producer::spawn(&sb, &args);
    assert_eq!(producer.nodes().len(), formats.len());
    let mut consumers = Vec::new();
    for node in producer.nodes() {
        let dir = sb.runtime_dir().join(format!("cap-{}", node.index));
        let child = gst_capture(&sb, node.id, n, &dir)
            .spawn()
            .expect("gst-launch-1.0");
        consumers.push((node.clone(), dir, child));
    }
    for (node, dir, child) in consumers {
        let out = wait_output(child, Duration::from_secs(30));
        assert!(
            out.status.success(),
            "gst on node {node:?} failed: {}\n{}\nproducer:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            producer.stderr()
        );
        let fmt = PixelFormat::from_name(formats[node.index as usize]).unwrap();
        let files = frames_in(&dir);
        assert_eq!(files.len(), n as usize, "node {node:?}: frames received");
        let mut last = None;
        for f in &files {
            let seq = check_frame(f, fmt, (320, 240), align, node.index);
            assert!(
                last.is_none_or(|l| seq > l),
                "seq not increasing: {last:?} then {seq}"
            );
            last = Some(seq);
        }
        eprintln!(
            "node {} ({fmt}): {} frames checked, seqs up to {last:?}",
            node.id,
            files.len()
        );
    }
    producer.stop();
    assert!(producer.wait_exit().success(), "{}", producer.stderr());
}

fn wait_output(mut child: std::process::Child, timeout: Duration) -> std::process::Output {
    let end = Instant::now() + timeout;
    loop {
        match child.try_wait().unwrap() {
            Some(_) => return child.wait_with_output().unwrap(),
            None if Instant::now() > end => {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "consumer still running after {timeout:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

#[test]
fn gst_gets_60_checked_frames_from_each_of_3_nodes_bgrx_nv12_yuy2() {
    consume_all(&["BGRx", "NV12", "YUY2"], &[], 4, 60);
}

#[test]
fn gst_gets_60_checked_frames_i420_bgra_gray8() {
    consume_all(&["I420", "BGRA", "GRAY8"], &[], 4, 60);
}

#[test]
fn gst_gets_checked_frames_rgbx_rgba_rgb_bgr() {
    consume_all(&["RGBx", "RGBA", "RGB", "BGR"], &[], 4, 30);
}

#[test]
fn gst_gets_checked_frames_one_block_and_padded_strides() {
    consume_all(
        &["NV12", "I420", "BGRx"],
        &["--one-block", "--stride-align", "64"],
        64,
        30,
    );
}

#[test]
fn frames_limit_ends_the_producer_with_status_0() {
    let sb = Sandbox::start();
    let mut producer = Producer::spawn(&sb, &["--frames", "20", "--rate", "60"]);
    // The consumer stops when the producer's node goes away. A loaded
    // machine may drop frames, so not every seq need arrive.
    let frames = native::consume(&sb, producer.nodes()[0].id, PixelFormat::Bgrx, 0, 1000);
    let status = producer.wait_exit();
    assert!(status.success(), "{status}: {}", producer.stderr());
    assert!(
        !frames.is_empty() && frames.len() <= 20,
        "{} frames",
        frames.len()
    );
    for f in &frames {
        assert!(f.seq.unwrap() < 20);
        f.check.as_ref().unwrap();
    }
}

#[test]
fn daemon_death_ends_the_producer_with_status_1() {
    let sb = Sandbox::start();
    let mut producer = Producer::spawn(&sb, &["--streams", "2"]);
    sb.kill_daemon();
    let status = producer.wait_exit();
    assert_eq!(status.code(), Some(1), "{}", producer.stderr());
}

#[test]
fn sigterm_ends_the_producer_with_status_0() {
    let sb = Sandbox::start();
    let mut producer = Producer::spawn(&sb, &["--streams", "2"]);
    producer.stop();
    let status = producer.wait_exit();
    assert!(status.success(), "{status}: {}", producer.stderr());
}

#[test]
fn node_lines_name_the_nodes() {
    let sb = Sandbox::start();
    let producer = Producer::spawn(&sb, &["--streams", "3", "--name", "bench"]);
    let nodes = producer.nodes();
    assert_eq!(nodes.len(), 3);
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(n.index, i as u32);
        assert_eq!(n.name, format!("bench-{i}"));
    }
    // The ids are the nodes' global ids, with the right names.
    let dump = sb.command("pw-dump").output().unwrap();
    let dump = String::from_utf8_lossy(&dump.stdout);
    for n in nodes {
        let at = dump
            .find(&format!("\"id\": {},", n.id))
            .unwrap_or_else(|| panic!("node {} not in pw-dump", n.id));
        let next = dump[at + 1..]
            .find("\"id\": ")
            .map_or(dump.len(), |i| at + 1 + i);
        assert!(
            dump[at..next].contains(&format!("\"node.name\": \"{}\"", n.name)),
            "{n:?}"
        );
        assert!(dump[at..next].contains("\"media.class\": \"Video/Source\""));
    }
}

#[test]
fn sandbox_drop_kills_its_daemons_and_removes_its_dir() {
    let sb = Sandbox::start();
    let dir = sb.runtime_dir().to_path_buf();
    let pids: Vec<(String, u32)> = sb.daemon_pids().to_vec();
    let names: Vec<&str> = pids.iter().map(|(n, _)| n.as_str()).collect();
    for want in ["dbus-daemon", "pipewire", "wireplumber", "watchdog"] {
        assert!(names.contains(&want), "{names:?}");
    }
    for (name, pid) in &pids {
        assert!(process_alive(*pid), "{name} {pid} not running");
    }
    assert!(sb.socket_path().exists());
    drop(sb);
    for (name, pid) in &pids {
        assert!(!process_alive(*pid), "{name} {pid} still running");
    }
    assert!(!dir.exists());
}

#[test]
fn two_sandboxes_side_by_side() {
    let a = Sandbox::start();
    let b = Sandbox::start();
    assert_ne!(a.runtime_dir(), b.runtime_dir());
    assert_ne!(a.pid("pipewire"), b.pid("pipewire"));
    let pa = Producer::spawn(&a, &["--name", "side-a"]);
    let pb = Producer::spawn(&b, &["--name", "side-b", "--format", "NV12"]);
    let dump_a =
        String::from_utf8_lossy(&a.command("pw-dump").output().unwrap().stdout).into_owned();
    let dump_b =
        String::from_utf8_lossy(&b.command("pw-dump").output().unwrap().stdout).into_owned();
    assert!(dump_a.contains("side-a-0") && !dump_a.contains("side-b-0"));
    assert!(dump_b.contains("side-b-0") && !dump_b.contains("side-a-0"));
    let (da, db) = (a.runtime_dir().join("cap"), b.runtime_dir().join("cap"));
    let ca = gst_capture(&a, pa.nodes()[0].id, 10, &da).spawn().unwrap();
    let cb = gst_capture(&b, pb.nodes()[0].id, 10, &db).spawn().unwrap();
    assert!(wait_output(ca, Duration::from_secs(30)).status.success());
    assert!(wait_output(cb, Duration::from_secs(30)).status.success());
    for f in frames_in(&da) {
        check_frame(&f, PixelFormat::Bgrx, (320, 240), 4, 0);
    }
    for f in frames_in(&db) {
        check_frame(&f, PixelFormat::Nv12, (320, 240), 4, 0);
    }
    // Stopping one leaves the other working.
    let b_pipewire = b.pid("pipewire").unwrap();
    drop(pa);
    drop(a);
    assert!(process_alive(b_pipewire));
    let cb = gst_capture(&b, pb.nodes()[0].id, 5, &b.runtime_dir().join("cap2"))
        .spawn()
        .unwrap();
    assert!(wait_output(cb, Duration::from_secs(30)).status.success());
}

#[test]
fn connect_fd_is_a_working_pipewire_connection() {
    use pipewire as pw;
    let sb = Sandbox::start();
    let fd = sb.connect_fd();
    pw::init();
    let mainloop = pw::main_loop::MainLoop::new(None).unwrap();
    let context = pw::context::Context::new(&mainloop).unwrap();
    let core = context.connect_fd(fd, None).expect("connect_fd");
    let done = std::rc::Rc::new(std::cell::Cell::new(false));
    let pending = core.sync(0).expect("sync");
    let _listener = core
        .add_listener_local()
        .done({
            let done = done.clone();
            let mainloop = mainloop.downgrade();
            move |id, seq| {
                if id == pw::core::PW_ID_CORE && seq == pending {
                    done.set(true);
                    if let Some(l) = mainloop.upgrade() {
                        l.quit();
                    }
                }
            }
        })
        .register();
    let timer = mainloop.loop_().add_timer({
        let mainloop = mainloop.downgrade();
        move |_| {
            if let Some(l) = mainloop.upgrade() {
                l.quit();
            }
        }
    });
    timer
        .update_timer(Some(Duration::from_secs(5)), None)
        .into_result()
        .unwrap();
    mainloop.run();
    assert!(done.get(), "no answer to core.sync over connect_fd");
}

/// Not a test on its own: the process `kill_9_of_the_owner_leaves_nothing`
/// starts and kills. Holds a sandbox and a producer, prints their pids.
#[test]
#[ignore = "helper, run by kill_9_of_the_owner_leaves_nothing"]
fn helper_hold_sandbox() {
    if std::env::var_os("WRD_BENCH_HELPER").is_none() {
        return;
    }
    let sb = Sandbox::start();
    let producer = Producer::spawn(&sb, &["--streams", "2"]);
    // (libtest's "test ... " has no newline yet.)
    println!("\ndir {}", sb.runtime_dir().display());
    for (name, pid) in sb.daemon_pids() {
        println!("pid {name} {pid}");
    }
    println!("pid producer {}", producer.pid());
    println!("held");
    std::thread::sleep(Duration::from_secs(120));
}

/// Kills the child on drop, so a failing test leaves no helper behind.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn kill_9_of_the_owner_leaves_nothing() {
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_hold_sandbox",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("WRD_BENCH_HELPER", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let child = &mut child.0;
    let mut dir = None;
    let mut pids = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["dir", d] => dir = Some(PathBuf::from(d)),
            ["pid", name, pid] => pids.push((name.to_string(), pid.parse::<u32>().unwrap())),
            ["held"] => break,
            _ => {}
        }
    }
    let dir = dir.expect("the helper printed its sandbox");
    assert_eq!(pids.len(), 5, "{pids:?}");
    for (name, pid) in &pids {
        assert!(process_alive(*pid), "{name} {pid} not running");
    }
    child.kill().unwrap(); // SIGKILL: no destructor runs
    child.wait().unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<_> = pids.iter().filter(|(_, p)| process_alive(*p)).collect();
        if left.is_empty() && !dir.exists() {
            break;
        }
        assert!(
            Instant::now() < end,
            "left behind: {left:?}, dir exists: {}",
            dir.exists()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn resize_every_renegotiates_and_frames_follow_size_at() {
    // Witnessed by wrd-capture's consumer: GStreamer 1.4's pipewiresrc
    // refuses a peer format outside its first caps ("unhandled format"), so
    // it cannot follow a mid-stream resize there (0.3.65's could).
    use std::sync::mpsc;
    use wrd_capture::{Capture, CaptureOptions, StreamConfig};
    let sb = Sandbox::start();
    let producer = Producer::spawn(
        &sb,
        &["--resize-every", "10", "--rate", "60", "--format", "I420"],
    );
    let cap = Capture::new(Some(sb.connect_fd()), CaptureOptions::default()).unwrap();
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let _s = cap
        .add_stream(
            producer.nodes()[0].id,
            StreamConfig {
                on_frame: Some(Box::new(move |f| {
                    let (w, h) = (f.width(), f.height());
                    let planes: Vec<&[u8]> = (0..f.plane_count())
                        .map(|i| f.plane(i).unwrap().0)
                        .collect();
                    let strides: Vec<usize> = (0..f.plane_count())
                        .map(|i| f.plane(i).unwrap().1)
                        .collect();
                    let res =
                        pattern::check(PixelFormat::I420, w, h, f.sequence(), 0, &planes, &strides);
                    let _ = tx.lock().unwrap().send((f.sequence(), (w, h), res));
                })),
                ..Default::default()
            },
        )
        .unwrap();
    let mut sizes = Vec::new();
    for _ in 0..40 {
        let (seq, size, res) = rx
            .recv_timeout(Duration::from_secs(15))
            .expect("frames across resizes");
        res.unwrap_or_else(|e| panic!("seq {seq} at {size:?}: {e}"));
        assert_eq!(pattern::size_at(320, 240, 10, seq), size, "seq {seq}");
        sizes.push(size);
    }
    sizes.dedup();
    assert!(sizes.len() >= 3, "sizes seen: {sizes:?}");
}

/// A minimal native consumer (pipewire-rs) that asks for every meta the
/// producer offers and records what each frame carried.
mod native {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::Duration;

    use libspa::param::video::VideoInfoRaw;
    use libspa::pod::{Property, Value};
    use libspa_sys as spa_sys;
    use pipewire as pw;
    use wrd_capture::PixelFormat;
    use wrd_testsrc::pattern::{self, Rect};
    use wrd_testsrc::{spa, Sandbox};

    /// A cursor bitmap: w, h, SPA format, stride, pixels.
    pub type Bitmap = (u32, u32, u32, i32, Vec<u8>);
    /// A cursor meta: id, x, y, hotspot, bitmap.
    pub type CursorMeta = (u32, i32, i32, (i32, i32), Option<Bitmap>);

    #[derive(Debug)]
    pub struct Frame {
        pub seq: Option<u64>,
        pub pts: i64,
        pub size: (u32, u32),
        pub n_datas: usize,
        /// Per data: (chunk offset, size, stride).
        pub chunks: Vec<(u32, u32, i32)>,
        pub damage: Option<Vec<Rect>>,
        pub crop: Option<Rect>,
        pub cursor: Option<CursorMeta>,
        pub check: Result<(), String>,
    }

    /// Consume `n` frames of `fmt` from node `id`; fewer if the stream stops
    /// streaming first (the producer exited) or after 20 s.
    pub fn consume(
        sb: &Sandbox,
        id: u32,
        fmt: PixelFormat,
        stream_index: u32,
        n: usize,
    ) -> Vec<Frame> {
        pw::init();
        let mainloop = pw::main_loop::MainLoop::new(None).unwrap();
        let context = pw::context::Context::new(&mainloop).unwrap();
        let core = context.connect_fd(sb.connect_fd(), None).unwrap();
        let props = pw::properties::properties! {
            *pw::keys::MEDIA_TYPE => "Video",
            *pw::keys::MEDIA_CATEGORY => "Capture",
            *pw::keys::MEDIA_ROLE => "Screen",
        };
        let stream = pw::stream::Stream::new(&core, "bench-consumer", props).unwrap();
        struct St {
            info: Option<(u32, u32)>,
            frames: Vec<Frame>,
            n: usize,
            fmt: PixelFormat,
            index: u32,
            quit: Box<dyn Fn()>,
        }
        let st = Rc::new(RefCell::new(St {
            info: None,
            frames: Vec::new(),
            n,
            fmt,
            index: stream_index,
            quit: Box::new({
                let l = mainloop.downgrade();
                move || {
                    if let Some(l) = l.upgrade() {
                        l.quit()
                    }
                }
            }),
        }));
        let _listener = stream
            .add_local_listener_with_user_data(st.clone())
            .state_changed(|_, st, old, new| {
                // The producer went away (or stopped): stop with what we have.
                if old == pw::stream::StreamState::Streaming && new != old {
                    (st.borrow().quit)();
                }
            })
            .param_changed(|stream, st, id, param| {
                let Some(param) = param else { return };
                if id != spa_sys::SPA_PARAM_Format {
                    return;
                }
                let mut info = VideoInfoRaw::new();
                info.parse(param).unwrap();
                st.borrow_mut().info = Some((info.size().width, info.size().height));
                let types = (1i32 << spa_sys::SPA_DATA_MemFd) | (1 << spa_sys::SPA_DATA_MemPtr);
                let r = std::mem::size_of::<spa_sys::spa_meta_region>() as i32;
                let cursor = |w: i32| {
                    (std::mem::size_of::<spa_sys::spa_meta_cursor>()
                        + std::mem::size_of::<spa_sys::spa_meta_bitmap>())
                        as i32
                        + w * w * 4
                };
                let params = [
                    spa::object(
                        spa_sys::SPA_TYPE_OBJECT_ParamBuffers,
                        spa_sys::SPA_PARAM_Buffers,
                        vec![
                            Property::new(
                                spa_sys::SPA_PARAM_BUFFERS_buffers,
                                spa::int_range(4, 2, 16),
                            ),
                            Property::new(
                                spa_sys::SPA_PARAM_BUFFERS_dataType,
                                spa::int_flags(types),
                            ),
                        ],
                    ),
                    spa::meta_param(
                        spa_sys::SPA_META_Header,
                        Value::Int(std::mem::size_of::<spa_sys::spa_meta_header>() as i32),
                    ),
                    spa::meta_param(
                        spa_sys::SPA_META_VideoDamage,
                        spa::int_range(16 * r, r, 16 * r),
                    ),
                    spa::meta_param(spa_sys::SPA_META_VideoCrop, Value::Int(r)),
                    spa::meta_param(
                        spa_sys::SPA_META_Cursor,
                        spa::int_range(cursor(64), cursor(1), cursor(256)),
                    ),
                ];
                stream.update_params(&mut spa::pods(&params)).unwrap();
            })
            .process(|stream, st| {
                let mut s = st.borrow_mut();
                // SAFETY: dequeue; a non-null buffer is ours until queued.
                let b = unsafe { stream.dequeue_raw_buffer() };
                if b.is_null() {
                    return;
                }
                let (w, h) = s.info.expect("a format before buffers");
                let mut f = Frame {
                    seq: None,
                    pts: 0,
                    size: (w, h),
                    n_datas: 0,
                    chunks: Vec::new(),
                    damage: None,
                    crop: None,
                    cursor: None,
                    check: Ok(()),
                };
                // SAFETY: b is a dequeued buffer, mapped (MAP_BUFFERS); its
                // metas and datas are valid until we queue it.
                unsafe {
                    let buf = (*b).buffer;
                    let datas = std::slice::from_raw_parts((*buf).datas, (*buf).n_datas as usize);
                    f.n_datas = datas.len();
                    for d in datas {
                        let c = &*d.chunk;
                        f.chunks.push((c.offset, c.size, c.stride));
                    }
                    if let Some((m, _)) = spa::find_meta(buf, spa_sys::SPA_META_Header, 1) {
                        let hdr = &*(m as *const spa_sys::spa_meta_header);
                        f.seq = Some(hdr.seq);
                        f.pts = hdr.pts;
                    }
                    if let Some((m, size)) = spa::find_meta(buf, spa_sys::SPA_META_VideoDamage, 1) {
                        let n = size / std::mem::size_of::<spa_sys::spa_meta_region>();
                        let regions =
                            std::slice::from_raw_parts(m as *const spa_sys::spa_meta_region, n);
                        f.damage = Some(
                            regions
                                .iter()
                                .take_while(|r| r.region.size.width > 0 && r.region.size.height > 0)
                                .map(|r| Rect {
                                    x: r.region.position.x,
                                    y: r.region.position.y,
                                    w: r.region.size.width,
                                    h: r.region.size.height,
                                })
                                .collect(),
                        );
                    }
                    if let Some((m, _)) = spa::find_meta(buf, spa_sys::SPA_META_VideoCrop, 1) {
                        let r = &*(m as *const spa_sys::spa_meta_region);
                        f.crop = Some(Rect {
                            x: r.region.position.x,
                            y: r.region.position.y,
                            w: r.region.size.width,
                            h: r.region.size.height,
                        });
                    }
                    if let Some((m, _)) = spa::find_meta(buf, spa_sys::SPA_META_Cursor, 1) {
                        let c = &*(m as *const spa_sys::spa_meta_cursor);
                        let bitmap = (c.bitmap_offset as usize
                            >= std::mem::size_of::<spa_sys::spa_meta_cursor>())
                        .then(|| {
                            let mb = &*((m as *const u8).add(c.bitmap_offset as usize)
                                as *const spa_sys::spa_meta_bitmap);
                            let px = std::slice::from_raw_parts(
                                (mb as *const spa_sys::spa_meta_bitmap as *const u8)
                                    .add(mb.offset as usize),
                                (mb.stride as u32 * mb.size.height) as usize,
                            );
                            (
                                mb.size.width,
                                mb.size.height,
                                mb.format,
                                mb.stride,
                                px.to_vec(),
                            )
                        });
                        f.cursor = Some((
                            c.id,
                            c.position.x,
                            c.position.y,
                            (c.hotspot.x, c.hotspot.y),
                            bitmap,
                        ));
                    }
                    // The picture: planes from one data per plane, or all
                    // from data 0 at the packed offsets.
                    let fmt = s.fmt;
                    let mut planes: Vec<&[u8]> = Vec::new();
                    let mut strides = Vec::new();
                    if datas.len() >= fmt.planes() {
                        for d in datas.iter().take(fmt.planes()) {
                            let c = &*d.chunk;
                            planes.push(std::slice::from_raw_parts(
                                (d.data as *const u8).add(c.offset as usize),
                                c.size as usize,
                            ));
                            strides.push(c.stride as usize);
                        }
                    } else {
                        // One block: the planes lie at the packed offsets
                        // for the producer's default 4-byte stride alignment.
                        let d = &datas[0];
                        let c = &*d.chunk;
                        let (layout, _) = fmt.packed_layout(w, h, 4).unwrap();
                        assert_eq!(c.stride as usize, layout[0].stride);
                        for l in &layout {
                            planes.push(std::slice::from_raw_parts(
                                (d.data as *const u8).add(c.offset as usize + l.offset),
                                l.stride * l.rows,
                            ));
                            strides.push(l.stride);
                        }
                    }
                    f.check = match f.seq {
                        Some(seq) => pattern::check(fmt, w, h, seq, s.index, &planes, &strides),
                        None => Err("no header".into()),
                    };
                    stream.queue_raw_buffer(b);
                }
                s.frames.push(f);
                if s.frames.len() >= s.n {
                    (s.quit)();
                }
            })
            .register()
            .unwrap();
        let enum_format = [spa::video_format(
            spa_sys::SPA_PARAM_EnumFormat,
            fmt,
            spa::any_size(),
            spa::any_rate(),
        )];
        let mut params = spa::pods(&enum_format);
        stream
            .connect(
                libspa::utils::Direction::Input,
                Some(id),
                pw::stream::StreamFlags::AUTOCONNECT | pw::stream::StreamFlags::MAP_BUFFERS,
                &mut params,
            )
            .unwrap();
        let timer = mainloop.loop_().add_timer({
            let l = mainloop.downgrade();
            move |_| {
                if let Some(l) = l.upgrade() {
                    l.quit()
                }
            }
        });
        timer
            .update_timer(Some(Duration::from_secs(20)), None)
            .into_result()
            .unwrap();
        mainloop.run();
        let _ = stream.disconnect();
        let frames = std::mem::take(&mut st.borrow_mut().frames);
        frames
    }
}

/// What a compositor sends: Header (seq from 0, monotonic pts), exact damage,
/// cursor position every frame and its bitmap when it changes, crop, one
/// data per plane; every picture checks.
#[test]
fn native_consumer_sees_every_meta() {
    let sb = Sandbox::start();
    let producer = Producer::spawn(
        &sb,
        &["--streams", "2", "--format", "BGRx,NV12", "--rate", "60"],
    );
    for node in producer.nodes() {
        let fmt = [PixelFormat::Bgrx, PixelFormat::Nv12][node.index as usize];
        let frames = native::consume(&sb, node.id, fmt, node.index, 100);
        assert_eq!(frames.len(), 100, "{fmt}: frames");
        let first = frames[0].seq.expect("header");
        let mut last_pts = 0;
        let mut prev: Option<u64> = None;
        for f in &frames {
            let seq = f.seq.expect("header meta");
            // A loaded machine may drop a frame, never reorder.
            assert!(
                prev.is_none_or(|p| seq > p),
                "{fmt}: seq {seq} after {prev:?}"
            );
            assert!(f.pts > last_pts, "{fmt}: pts grows");
            last_pts = f.pts;
            f.check
                .as_ref()
                .unwrap_or_else(|e| panic!("{fmt} frame {seq}: {e}"));
            assert_eq!(f.n_datas, fmt.planes(), "{fmt}: one data per plane");
            let (layout, _) = fmt.packed_layout(320, 240, 4).unwrap();
            for (c, l) in f.chunks.iter().zip(&layout) {
                assert_eq!(
                    (c.0, c.1 as usize, c.2 as usize),
                    (0, l.stride * l.rows, l.stride)
                );
            }
            // Damage is relative to seq - 1: check it where that arrived
            // (or at seq 0, where it is the full frame).
            if seq == 0 || prev == Some(seq - 1) {
                let want = pattern::damage(fmt, 320, 240, seq);
                assert_eq!(
                    f.damage.as_ref().expect("damage meta"),
                    &want,
                    "{fmt} seq {seq}"
                );
            }
            prev = Some(seq);
            assert_eq!(f.size, (320, 240));
            assert_eq!(
                f.crop,
                Some(pattern::Rect {
                    x: 0,
                    y: 0,
                    w: 320,
                    h: 240
                })
            );
            let (id, x, y, hot, bitmap) = f.cursor.clone().expect("cursor meta");
            let c = pattern::cursor(seq);
            assert_eq!((id, x, y, hot), (c.id, c.x, c.y, (c.hot_x, c.hot_y)));
            if pattern::cursor_bitmap_changed(seq) {
                let (bw, bh, bfmt, bstride, px) = bitmap.expect("bitmap when the cursor changes");
                assert_eq!((bw, bh, bstride), (c.w, c.h, c.w as i32 * 4));
                assert_eq!(bfmt, libspa_sys::SPA_VIDEO_FORMAT_BGRA);
                assert_eq!(px, c.pixels);
            } else {
                assert!(bitmap.is_none(), "{fmt} seq {seq}: bitmap without a change");
            }
        }
        // Frames flow from the link on: the first consumer sees the stream
        // from (about, a frame may drop under load) its start.
        if node.index == 0 {
            assert!(first <= 3, "first seq {first}");
        }
    }
}

#[test]
fn no_damage_and_no_cursor_leave_those_metas_out() {
    let sb = Sandbox::start();
    let producer = Producer::spawn(
        &sb,
        &[
            "--no-damage",
            "--no-cursor",
            "--rate",
            "60",
            "--one-block",
            "--format",
            "I420",
        ],
    );
    let frames = native::consume(&sb, producer.nodes()[0].id, PixelFormat::I420, 0, 10);
    assert_eq!(frames.len(), 10);
    for f in &frames {
        assert!(f.damage.is_none() && f.cursor.is_none(), "{f:?}");
        assert!(f.seq.is_some() && f.crop.is_some());
        assert_eq!(f.n_datas, 1, "--one-block");
        f.check.as_ref().unwrap();
    }
}

#[test]
fn missing_pipewire_fails_loudly() {
    let out = Command::new("/bin/bash")
        .arg(wrd_testsrc::sandbox::sandbox_script())
        .arg("start")
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("missing: dbus-daemon pipewire wireplumber pw-dump setsid"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn sandbox_run_returns_the_status_and_cleans_up() {
    let out = Command::new("bash")
        .arg(wrd_testsrc::sandbox::sandbox_script())
        .args(["run", "--", "bash", "-c"])
        .arg("pw-cli info 0 >/dev/null && echo \"$WRD_SANDBOX_DIR\" && exit 7")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(dir.contains("wrd-sandbox."), "{dir:?}");
    assert!(!Path::new(&dir).exists(), "{dir} left behind");
}
