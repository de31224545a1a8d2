//! Explicit sync (PipeWire >= 1.2): a DMA-BUF frame comes with an acquire
//! point (wait for it before reading) and a release point (signal it when
//! done) on DRM timeline syncobjs, passed as the buffer's last two datas
//! (type SyncObj) plus a SyncTimeline meta.
//!
//! The release point must be signalled exactly once per time the buffer was
//! handed to us: when the caller releases the frame, and also when the
//! library drops the frame itself (superseded, held limit, validation,
//! budget). An unsignalled release point clogs the producer's pool — the
//! bug OBS shipped. [`ReleaseTracker`] keeps that bookkeeping per buffer;
//! [`ReleaseSignaler`] does the signalling ([`DrmSignaler`] through a DRM
//! render node with the `drm` crate; tests plug in a recorder).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::{Error, Result};

/// The sync points of one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncPoints {
    /// Timeline syncobj fd to wait on before reading (owned by the frame).
    pub acquire_fd: RawFd,
    pub acquire_point: u64,
    /// Timeline syncobj fd to signal when done (owned by the frame).
    pub release_fd: RawFd,
    pub release_point: u64,
}

/// Signals a release point.
pub trait ReleaseSignaler: Send + Sync {
    fn signal(&self, syncobj_fd: BorrowedFd<'_>, point: u64) -> Result<()>;
}

/// Signals through the first DRM render node (`/dev/dri/renderD128..`),
/// opened on first use.
#[derive(Default)]
pub struct DrmSignaler {
    dev: Mutex<Option<Arc<Card>>>,
}

struct Card(OwnedFd);

impl AsFd for Card {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}
impl drm::Device for Card {}
impl drm::control::Device for Card {}

impl DrmSignaler {
    fn card(&self) -> Result<Arc<Card>> {
        let mut g = self.dev.lock();
        if let Some(c) = g.as_ref() {
            return Ok(c.clone());
        }
        for n in 128..136 {
            let path = format!("/dev/dri/renderD{n}");
            if let Ok(f) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
            {
                let c = Arc::new(Card(f.into()));
                *g = Some(c.clone());
                return Ok(c);
            }
        }
        Err(Error::Unsupported(
            "no DRM render node to signal sync objects with".into(),
        ))
    }
}

impl ReleaseSignaler for DrmSignaler {
    fn signal(&self, syncobj_fd: BorrowedFd<'_>, point: u64) -> Result<()> {
        use drm::control::Device;
        let card = self.card()?;
        let handle = card.fd_to_syncobj(syncobj_fd, false)?;
        let r = card.syncobj_timeline_signal(&[handle], &[point]);
        let _ = card.destroy_syncobj(handle);
        r.map_err(Error::Io)
    }
}

/// Per-buffer release bookkeeping: `arm` when a buffer with sync points is
/// dequeued, `release` when it is given back (by the caller or by us). Each
/// armed point is signalled exactly once; releasing twice signals nothing
/// the second time.
#[derive(Default)]
pub struct ReleaseTracker {
    armed: Mutex<std::collections::HashMap<usize, (RawFd, u64)>>,
    signalled: std::sync::atomic::AtomicU64,
    failed: std::sync::atomic::AtomicU64,
}

impl ReleaseTracker {
    /// The buffer `key` was dequeued with `release` = (fd, point).
    pub fn arm(&self, key: usize, release_fd: RawFd, point: u64) {
        self.armed.lock().insert(key, (release_fd, point));
    }

    /// The buffer `key` is given back: signal its release point if it has
    /// an armed one. Returns whether a point was signalled.
    pub fn release(&self, key: usize, signaler: &dyn ReleaseSignaler) -> bool {
        let Some((fd, point)) = self.armed.lock().remove(&key) else {
            return false;
        };
        // SAFETY: the fd is a dup owned by the buffer's state, which stays
        // alive until the buffer is removed; `forget` drops the buffer from
        // the tracker first, so an armed fd is always open here.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        match signaler.signal(borrowed, point) {
            Ok(()) => {
                self.signalled
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                true
            }
            Err(_) => {
                self.failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                false
            }
        }
    }

    /// The buffer `key` is gone (removed by PipeWire): nothing to signal.
    pub fn forget(&self, key: usize) {
        self.armed.lock().remove(&key);
    }

    /// Release points signalled, and signalling failures.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.signalled.load(std::sync::atomic::Ordering::Relaxed),
            self.failed.load(std::sync::atomic::Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(RawFd, u64)>>);
    impl ReleaseSignaler for Recorder {
        fn signal(&self, fd: BorrowedFd<'_>, point: u64) -> Result<()> {
            self.0.lock().push((fd.as_raw_fd(), point));
            Ok(())
        }
    }

    #[test]
    fn each_armed_point_is_signalled_once() {
        let f = std::fs::File::open("/dev/null").unwrap();
        let fd = f.as_raw_fd();
        let t = ReleaseTracker::default();
        let r = Recorder::default();
        t.arm(1, fd, 10);
        t.arm(2, fd, 20);
        assert!(t.release(1, &r));
        assert!(!t.release(1, &r), "a second release signals nothing");
        t.forget(2);
        assert!(!t.release(2, &r), "a removed buffer is not signalled");
        t.arm(1, fd, 11); // dequeued again with the next point
        assert!(t.release(1, &r));
        assert_eq!(*r.0.lock(), vec![(fd, 10), (fd, 11)]);
        assert_eq!(t.counts(), (2, 0));
    }

    #[test]
    fn drm_signaler_without_a_device_says_so() {
        let s = DrmSignaler::default();
        let f = std::fs::File::open("/dev/null").unwrap();
        if std::path::Path::new("/dev/dri/renderD128").exists() {
            // A real device refuses /dev/null as a syncobj fd.
            assert!(s.signal(f.as_fd(), 1).is_err());
        } else {
            assert!(matches!(s.signal(f.as_fd(), 1), Err(Error::Unsupported(_))));
        }
    }
}
