//! Newer behaviour is gated at run time on the client library's and the
//! daemon's versions: the same build runs on PipeWire 0.3.65 (Debian 12)
//! and 1.4.2 (bookworm-backports, the modern CI leg, WRD_MODERN_LEG=1).

use wrd_capture::capture::parse_version;
use wrd_capture::{Capture, CaptureOptions, Features};
use wrd_testsrc::sandbox::Sandbox;

#[test]
fn features_follow_the_running_versions() {
    let sb = Sandbox::start();
    let cap = Capture::new(Some(sb.connect_fd()), CaptureOptions::default()).unwrap();
    let v = cap.versions();
    let (lib, daemon) = (parse_version(&v.library), parse_version(&v.daemon));
    assert!(lib >= (0, 3, 65) && daemon >= (0, 3, 65), "{v:?}");
    let f = cap.features();
    assert_eq!(
        f.explicit_sync,
        lib >= (1, 2, 0) && daemon >= (1, 2, 0),
        "{v:?} {f:?}"
    );
    assert!(
        !f.library_newer_than_daemon,
        "the sandbox runs the library's own daemon"
    );
    if std::env::var_os("WRD_MODERN_LEG").is_some() {
        // The modern leg: PipeWire 1.4.2 from bookworm-backports.
        assert_eq!((lib, daemon), ((1, 4, 2), (1, 4, 2)), "{v:?}");
        assert!(f.explicit_sync, "explicit sync on with 1.4.2");
    } else if lib == (0, 3, 65) {
        assert!(!f.explicit_sync, "explicit sync off with 0.3.65");
    }
}

#[test]
fn gating_table() {
    let f = |l, d| Features::for_versions(l, d);
    assert!(!f("0.3.65", "0.3.65").explicit_sync);
    assert!(
        !f("1.4.2", "0.3.65").explicit_sync,
        "an old daemon gates it off"
    );
    assert!(
        !f("0.3.65", "1.4.2").explicit_sync,
        "an old library gates it off"
    );
    assert!(f("1.2.0", "1.2.0").explicit_sync);
    assert!(f("1.4.2", "1.4.2").explicit_sync);
    assert!(f("1.4.2", "0.3.65").library_newer_than_daemon);
    assert!(!f("0.3.65", "1.4.2").library_newer_than_daemon);
    assert!(
        !f("1.4.2", "").library_newer_than_daemon,
        "unknown daemon: no claim"
    );
    // PipeWire a9a9c72a0 (0.3.74): the client wants the mix announced
    // before the buffers, older daemons announce it after.
    assert!(f("1.4.2", "0.3.65").mix_protocol_mismatch);
    assert!(f("0.3.74", "0.3.73").mix_protocol_mismatch);
    assert!(!f("0.3.73", "0.3.65").mix_protocol_mismatch);
    assert!(!f("1.4.2", "0.3.74").mix_protocol_mismatch);
    assert!(!f("0.3.65", "1.4.2").mix_protocol_mismatch);
    assert!(
        !f("1.4.2", "").mix_protocol_mismatch,
        "unknown daemon: no claim"
    );
}

/// A PipeWire client library >= 0.3.74 with a daemon < 0.3.74 never
/// delivers buffers to a consumer (PipeWire a9a9c72a0 changed the
/// client-node mix protocol; GStreamer's pipewiresrc 1.4.2 hangs the same
/// way against 0.3.65), so `add_stream` refuses with a clear message
/// instead of a stream that links and stays silent. Run by
/// `scripts/modern-leg.sh` (part "mixed"), from the host: the host's 0.3.65
/// daemon, the modern root's 1.4.2 client library in `WRD_MIXED_LIBDIR`.
#[test]
#[ignore = "needs a newer client library: scripts/modern-leg.sh runs it with WRD_MIXED_LIBDIR"]
fn newer_client_library_with_an_older_daemon_is_refused_clearly() {
    let dir = std::env::var("WRD_MIXED_LIBDIR")
        .expect("WRD_MIXED_LIBDIR: a directory with a PipeWire >= 0.3.74 libpipewire-0.3.so.0, spa-0.2/ and pipewire-0.3/");
    let sb = Sandbox::start();
    let prod = wrd_testsrc::sandbox::Producer::spawn(&sb, &["--rate", "30"]);
    let node = prod.nodes()[0].id.to_string();
    let exe = std::env::current_exe().unwrap();
    let example = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/capture");
    assert!(
        example.exists(),
        "{} (cargo build --examples)",
        example.display()
    );
    // Control: the host's own library gets frames from this daemon.
    let out = sb.command(&example).args([&node, "3"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("frame seq=")).count(),
        3
    );
    // The newer client library: refused at add_stream, with the versions.
    let out = sb
        .command(&example)
        .args([&node, "3"])
        .env("LD_LIBRARY_PATH", &dir)
        .env("SPA_PLUGIN_DIR", format!("{dir}/spa-0.2"))
        .env("PIPEWIRE_MODULE_DIR", format!("{dir}/pipewire-0.3"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert!(!out.status.success(), "{text}");
    let first = text.lines().next().unwrap_or("");
    let (lib, daemon) = first
        .strip_prefix("library ")
        .and_then(|r| r.split_once(" daemon "))
        .unwrap_or_else(|| panic!("versions line: {text}"));
    assert!(parse_version(lib) >= (0, 3, 74), "{text}");
    assert!(parse_version(daemon) < (0, 3, 74), "{text}");
    assert!(
        text.contains(&format!(
            "PipeWire client library {lib} cannot receive buffers from daemon {daemon}"
        )),
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with("frame seq=")).count(),
        0
    );
}
