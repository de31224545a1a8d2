//! Tests that need no DRM device (the VM test in tools/drm-vm covers the
//! rest).

use super::*;
use crate::error::wrd_status;

#[test]
fn missing_card_is_a_not_found_io_error() {
    let e = DrmSource::open("/dev/dri/no-such-card", Target::Connector(1)).unwrap_err();
    assert_eq!(e.status(), wrd_status::WRD_ERR_IO);
    match &e {
        Error::Io(io) => assert_eq!(io.kind(), io::ErrorKind::NotFound),
        other => panic!("unexpected {other:?}"),
    }
    assert!(e.to_string().contains("no DRM device"), "{e}");
}

#[test]
fn a_file_that_is_not_a_kms_device_is_unsupported() {
    let e = DrmDevice::open("/dev/null").unwrap_err();
    assert_eq!(e.status(), wrd_status::WRD_ERR_UNSUPPORTED, "{e}");
    let f = std::fs::File::open("/proc/self/stat").unwrap();
    let e = DrmDevice::from_fd(f.as_fd()).unwrap_err();
    assert_eq!(e.status(), wrd_status::WRD_ERR_UNSUPPORTED, "{e}");
}

#[test]
fn permission_errors_say_so() {
    let e = io_error("GETFB2", io::Error::from_raw_os_error(libc::EACCES));
    assert_eq!(e.status(), wrd_status::WRD_ERR_PERMISSION);
    assert!(e.to_string().contains("DRM master"), "{e}");
    let e = object_error(42, "GETCRTC", io::Error::from_raw_os_error(libc::ENOENT));
    assert_eq!(e.status(), wrd_status::WRD_ERR_NODE_NOT_FOUND);
}
