//! C-API misuse (`tests/c/misuse.c`): NULL pointers, double release, frames
//! held past remove, six threads at once, remove/destroy from inside
//! callbacks, a stream used after its capture was destroyed. Built like
//! `tests/c_api.rs` (`make install` + pkg-config), run against a private
//! PipeWire. `WRD_MISUSE_VALGRIND=1` runs the program under valgrind
//! memcheck (zero errors required).

mod common;

use std::path::{Path, PathBuf};

use common::cprog::{build, run, ROOT};
use wrd_testsrc::sandbox::{Producer, Sandbox};

/// Run `misuse NODE GROUP` (under valgrind with WRD_MISUSE_VALGRIND=1),
/// killed after `limit`: a hang is a failure, not a stuck CI job.
fn misuse(group: &str, limit_s: u32) -> String {
    let sb = Sandbox::start();
    let p = Producer::spawn(&sb, &["--rate", "60", "--size", "160x120"]);
    // Built once per test binary: two tests compiling the same path at once
    // made one exec a file the other was still writing (ETXTBSY).
    static EXE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let exe = EXE.get_or_init(|| build("misuse", "cc", "c11")).clone();
    let mut args = vec!["-s".to_string(), "KILL".to_string(), limit_s.to_string()];
    if std::env::var_os("WRD_MISUSE_VALGRIND").is_some() {
        let supp = Path::new(ROOT).join("scripts/valgrind.supp");
        args.extend([
            "valgrind".to_string(),
            "--error-exitcode=1".to_string(),
            "--leak-check=no".to_string(),
            format!("--suppressions={}", supp.display()),
        ]);
    }
    args.push(exe.display().to_string());
    args.push(p.nodes()[0].id.to_string());
    args.push(group.to_string());
    let text = run(&sb, Path::new("timeout"), &args);
    eprintln!("{text}");
    assert!(text.contains("all ok"), "{text}");
    text
}

#[test]
fn c_api_misuse_has_documented_answers_and_no_memory_errors() {
    misuse("basic", 300);
}

/// Six threads at once on one capture (pull + ref/release, stats/events,
/// add/remove streams). Deadlocks today: a frame dropped on the PipeWire
/// thread while it handles a command (pw_stream_disconnect runs other
/// streams' process callbacks synchronously) sends ReturnBuffer through
/// `CaptureShared::send`, which needs the `sender` lock and then the
/// pipewire-rs channel's mutex — held by the same thread for the whole
/// receiver callback; a caller in `Stream::drop` holds `sender` while it
/// waits for that mutex. See docs/robustness.md.
#[test]
fn c_api_from_six_threads_at_once() {
    misuse("threads", 120);
}
