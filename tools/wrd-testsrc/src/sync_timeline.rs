//! `wrd-testsrc --sync-timeline`: explicit sync (PipeWire >= 1.2) as the
//! compositors that have it (KWin, mutter) offer it, for DMA-BUF buffers.
//!
//! * The Buffers answer to a DMA-BUF Format comes first in the explicit-sync
//!   layout: the plane blocks **plus 2** (the acquire and the release
//!   timeline), `dataType = DmaBuf | SyncObj`, and
//!   `SPA_PARAM_BUFFERS_metaType = 1 << SPA_META_SyncTimeline`, MANDATORY (a
//!   consumer that does not ask for the meta cannot take this layout); then
//!   the plain DMA-BUF layout, for consumers without explicit sync. A Meta
//!   param for SyncTimeline (24 bytes) goes with them.
//! * Each buffer's last two datas are of type `SPA_DATA_SyncObj`. There is
//!   no DRM device here, so the "timelines" are memfds (one per timeline per
//!   buffer, never written): what the test checks is which *fd* (by inode)
//!   and which *point* a consumer signals, not a kernel syncobj.
//! * Per frame the SyncTimeline meta gets [`points`]`(seq)`, and one
//!   [`log_line`] goes to stderr, so that a test knows, for every frame the
//!   producer sent, the points and the inodes of the buffer that carried it
//!   ([`parse_log`]).
//!
//! A producer cannot observe the release points being signalled (that needs
//! a real syncobj), so the bookkeeping is checked on the consumer's side
//! (`tests/explicit_sync.rs`, with a recording `ReleaseSignaler`).
//!
//! The SyncTimeline meta, the SyncObj data type and `metaType` exist since
//! PipeWire 1.2.0 (1.1.81): with an older client library or daemon the mode
//! refuses to start ([`supported`], exit status [`EXIT_UNSUPPORTED`]) rather
//! than producing without sync.
//!
//! Values from PipeWire 1.4.2's headers (`spa/buffer/meta.h`,
//! `spa/buffer/buffer.h`, `spa/param/buffers.h`); the project is built
//! against 0.3.65's, which lack them.

use wrd_capture::capture::parse_version;

/// `SPA_META_SyncTimeline` (`enum spa_meta_type`, 1.2+).
pub const SPA_META_SYNC_TIMELINE: u32 = 9;
/// `SPA_DATA_SyncObj` (`enum spa_data_type`, 1.2+).
pub const SPA_DATA_SYNC_OBJ: u32 = 5;
/// `SPA_PARAM_BUFFERS_metaType` (`enum spa_param_buffers`, 1.2+).
pub const SPA_PARAM_BUFFERS_META_TYPE: u32 = 7;

/// Exit status of `wrd-testsrc --sync-timeline` on a PipeWire (client
/// library or daemon) older than 1.2.
pub const EXIT_UNSUPPORTED: u8 = 3;

/// `struct spa_meta_sync_timeline` (1.2+; 24 bytes, align 8).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpaMetaSyncTimeline {
    /// 1.4.8+: `SPA_META_SYNC_TIMELINE_UNSCHEDULED_RELEASE`; 0 here.
    pub flags: u32,
    pub padding: u32,
    /// The point on the acquire timeline at which the data may be read.
    pub acquire_point: u64,
    /// The point on the release timeline to signal when the data is no
    /// longer used.
    pub release_point: u64,
}

/// The (acquire, release) points of frame `seq`: `2 * seq + 1` and
/// `2 * seq + 2` — never 0 (a DRM timeline point 0 means "binary"), strictly
/// increasing on each timeline, and each point names one frame.
pub fn points(seq: u64) -> (u64, u64) {
    (2 * seq + 1, 2 * seq + 2)
}

/// The frame whose release point is `point` (the inverse of [`points`]).
pub fn seq_of_release(point: u64) -> Option<u64> {
    (point >= 2 && point.is_multiple_of(2)).then(|| point / 2 - 1)
}

/// Whether explicit sync can be offered with this client library and
/// daemon (version strings, e.g. "1.4.2"); the error says why not.
pub fn supported(library: &str, daemon: &str) -> Result<(), String> {
    let (l, d) = (parse_version(library), parse_version(daemon));
    if l >= (1, 2, 0) && d >= (1, 2, 0) {
        return Ok(());
    }
    Err(format!(
        "--sync-timeline needs PipeWire >= 1.2 (client library {library}, daemon {}): \
         SPA_META_SyncTimeline, SPA_DATA_SyncObj and SPA_PARAM_BUFFERS_metaType do not \
         exist before 1.2; not producing without explicit sync",
        if daemon.is_empty() { "unknown" } else { daemon }
    ))
}

/// One frame as the producer sent it with explicit sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SentFrame {
    pub stream: u32,
    pub seq: u64,
    pub acquire_point: u64,
    /// Inode of the buffer's acquire-timeline memfd.
    pub acquire_ino: u64,
    pub release_point: u64,
    /// Inode of the buffer's release-timeline memfd.
    pub release_ino: u64,
}

const TAG: &str = "sync-timeline frame";

/// The stderr line for a frame sent with explicit sync (without the
/// `wrd-testsrc: ` prefix).
pub fn log_line(f: &SentFrame) -> String {
    format!(
        "stream {}: {TAG} seq {} acquire {} ino {} release {} ino {}",
        f.stream, f.seq, f.acquire_point, f.acquire_ino, f.release_point, f.release_ino
    )
}

/// Every frame [`log_line`] reported in a producer's stderr, in order.
pub fn parse_log(stderr: &str) -> Vec<SentFrame> {
    stderr
        .lines()
        .filter_map(|l| {
            let (head, rest) = l.split_once(&format!(": {TAG} "))?;
            let stream = head.rsplit_once("stream ")?.1.parse().ok()?;
            let f: Vec<&str> = rest.split_whitespace().collect();
            match f.as_slice() {
                ["seq", seq, "acquire", ap, "ino", ai, "release", rp, "ino", ri] => {
                    Some(SentFrame {
                        stream,
                        seq: seq.parse().ok()?,
                        acquire_point: ap.parse().ok()?,
                        acquire_ino: ai.parse().ok()?,
                        release_point: rp.parse().ok()?,
                        release_ino: ri.parse().ok()?,
                    })
                }
                _ => None,
            }
        })
        .collect()
}

/// The inode of an fd (`fstat`), how tests and logs name a timeline.
pub fn fd_ino(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<u64> {
    use std::os::fd::AsRawFd;
    // SAFETY: fstat writes into the zeroed stat we pass; the fd is borrowed
    // and open for the call.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd.as_raw_fd(), &mut st) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(st.st_ino)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_the_1_4_headers_and_the_library() {
        assert_eq!(std::mem::size_of::<SpaMetaSyncTimeline>(), 24);
        assert_eq!(std::mem::align_of::<SpaMetaSyncTimeline>(), 8);
        assert_eq!(std::mem::offset_of!(SpaMetaSyncTimeline, acquire_point), 8);
        assert_eq!(std::mem::offset_of!(SpaMetaSyncTimeline, release_point), 16);
        // The consumer's own definitions (written separately) agree.
        use wrd_capture::negotiation as n;
        assert_eq!(SPA_META_SYNC_TIMELINE, n::meta_type::SYNC_TIMELINE);
        assert_eq!(SPA_DATA_SYNC_OBJ, n::data_type::SYNC_OBJ);
        assert_eq!(SPA_PARAM_BUFFERS_META_TYPE, n::SPA_PARAM_BUFFERS_META_TYPE);
        // One past the last 0.3.65 values.
        assert_eq!(
            SPA_META_SYNC_TIMELINE,
            libspa_sys::SPA_META_VideoTransform + 1
        );
        assert_eq!(SPA_DATA_SYNC_OBJ, libspa_sys::SPA_DATA_MemId + 1);
        assert_eq!(
            SPA_PARAM_BUFFERS_META_TYPE,
            libspa_sys::SPA_PARAM_BUFFERS_dataType + 1
        );
    }

    #[test]
    fn points_name_one_frame() {
        assert_eq!(points(0), (1, 2));
        assert_eq!(points(41), (83, 84));
        for seq in [0, 1, 2, 1000, u32::MAX as u64] {
            assert_eq!(seq_of_release(points(seq).1), Some(seq));
        }
        assert_eq!(seq_of_release(0), None);
        assert_eq!(seq_of_release(83), None, "an acquire point");
    }

    #[test]
    fn gating() {
        assert!(supported("1.4.2", "1.4.2").is_ok());
        assert!(supported("1.2.0", "1.2.0").is_ok());
        let e = supported("0.3.65", "0.3.65").unwrap_err();
        assert!(e.contains("needs PipeWire >= 1.2"), "{e}");
        assert!(e.contains("client library 0.3.65, daemon 0.3.65"), "{e}");
        assert!(supported("1.4.2", "0.3.65").is_err(), "old daemon");
        assert!(supported("0.3.65", "1.4.2").is_err(), "old library");
        assert!(supported("1.4.2", "").is_err(), "daemon unknown");
        assert!(supported("1.1.81", "1.1.81").is_err(), "1.2.0 is the first");
    }

    #[test]
    fn log_round_trip() {
        let f = SentFrame {
            stream: 1,
            seq: 7,
            acquire_point: 15,
            acquire_ino: 1234,
            release_point: 16,
            release_ino: 1235,
        };
        let log = format!(
            "wrd-testsrc: stream 1 (x): Paused -> Streaming\nwrd-testsrc: {}\nnoise\n",
            log_line(&f)
        );
        assert_eq!(parse_log(&log), vec![f]);
    }
}
