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
}
