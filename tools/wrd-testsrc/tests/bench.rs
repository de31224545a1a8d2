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
    let dir = sb.runtime_dir().join("cap");
    let child = gst_capture(&sb, producer.nodes()[0].id, 20, &dir)
        .spawn()
        .unwrap();
    let out = wait_output(child, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = producer.wait_exit();
    assert!(status.success(), "{status}: {}", producer.stderr());
    let files = frames_in(&dir);
    assert_eq!(files.len(), 20);
    for (i, f) in files.iter().enumerate() {
        assert_eq!(
            check_frame(f, PixelFormat::Bgrx, (320, 240), 4, 0),
            i as u64
        );
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
