//! Streams: one PipeWire consumer stream per node, its callbacks, pull
//! queue, events and stats.
//!
//! Threads: every PipeWire object lives on the capture's own thread. The
//! caller-facing [`Stream`] handle only touches [`StreamShared`] (locks and
//! atomics). User callbacks run on the PipeWire thread (frames of a
//! realtime stream on PipeWire's data thread) behind a reentrant
//! gate, so that [`Stream::remove`] can guarantee that no callback runs after
//! it returns, also when called from inside a callback.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, ReentrantMutex};

use crate::buffer::{DropReason, DROP_REASONS};
use crate::capture::{CaptureShared, Command};
use crate::error::{wrd_status, Error, Result};
use crate::format::PixelFormat;
use crate::frame::Frame;
use crate::negotiation::NegotiatedFormat;

/// Stream states (values are ABI).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StreamState {
    #[default]
    Connecting = 0,
    Paused = 1,
    Streaming = 2,
    Error = 3,
    /// The stream was removed, or its node or connection went away.
    Closed = 4,
}

/// Something that happened to a stream.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The stream changed state.
    StateChanged(StreamState),
    /// A format was negotiated (first time, or a change mid-stream).
    FormatChanged(NegotiatedFormat),
    /// The node was removed (the window closed, the monitor unplugged, the
    /// producer exited).
    NodeGone,
    /// The connection to the daemon (or the portal session) is gone.
    ConnectionLost,
    /// An error; the stream is in [`StreamState::Error`] unless said otherwise.
    Error { status: wrd_status, message: String },
    /// A frame was dropped because it failed validation (at most one event
    /// per reason per second; the stats count every one).
    BadFrame { reason: DropReason, message: String },
    /// No frame arrived for longer than the configured stall timeout.
    Stalled,
    /// Frames arrive again after a stall.
    Resumed,
    /// The stream's importer could not import a DMA-BUF with this format and
    /// modifier; the pair is removed from what the stream offers.
    ImportFailed {
        format: PixelFormat,
        modifier: u64,
        message: String,
    },
    /// The stream renegotiates without the (format, modifier) that failed.
    Renegotiating { format: PixelFormat, modifier: u64 },
    /// Too many imports failed (or no modifier is left): the stream now
    /// offers shared memory only.
    ShmFallback,
    /// The capture tries to reconnect to the daemon (default-daemon mode
    /// with a reconnect policy): attempt number and the delay before it.
    Reconnecting { attempt: u32, delay_ms: u64 },
    /// The capture is connected again; the stream is being re-added for the
    /// node with its node's name (a `NodeGone` follows if there is none).
    Reconnected,
}

/// Callback for frames: called on the PipeWire thread (a realtime stream:
/// PipeWire's data thread) with a borrowed frame.
pub type FrameCallback = Box<dyn FnMut(&Frame) + Send>;
/// Callback for events: called on the PipeWire thread (see
/// [`StreamConfig::realtime`] for the exceptions).
pub type EventCallback = Box<dyn FnMut(&Event) + Send>;

/// How frames queue up for the pull API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueuePolicy {
    /// Keep only the newest undelivered frame (live capture).
    NewestOnly,
    /// Keep up to `high` frames; when full, drop new frames until the queue
    /// drains to `low`.
    Bounded { high: usize, low: usize },
}

/// How a stream is set up.
pub struct StreamConfig {
    /// Formats in order of preference (empty: all of [`PixelFormat::ALL`]).
    pub formats: Vec<PixelFormat>,
    /// Frame rate bound asked of the producer (0: none).
    pub max_framerate: u32,
    /// Called with each frame on the PipeWire thread (see `realtime`).
    pub on_frame: Option<FrameCallback>,
    /// Called with each event on the PipeWire thread.
    pub on_event: Option<EventCallback>,
    /// Queue frames for [`Stream::pull`] (and signal the stream's eventfd).
    pub pull: bool,
    /// Queue events for [`Stream::next_event`].
    pub pull_events: bool,
    pub queue: QueuePolicy,
    /// Most frames a caller may hold at once (clones kept past the callback
    /// plus queued frames); past it new frames are dropped, so the producer
    /// always keeps buffers.
    pub max_held: usize,
    /// Buffers asked of the producer.
    pub buffers: u32,
    /// Time without any frame after which a [`Event::Stalled`] is sent (0: never).
    pub stall_timeout: Duration,
    /// Modifiers per format for DMA-BUF negotiation. Empty: the importer's
    /// (if any), else SHM only.
    pub modifiers: Vec<(PixelFormat, Vec<u64>)>,
    /// An importer: the stream offers the modifiers it can import, imports
    /// each new DMA-BUF once (cached per PipeWire buffer, see
    /// [`crate::Frame::imported`]) and renegotiates without a modifier whose
    /// import failed.
    pub importer: Option<Arc<crate::import::Importer>>,
    /// Import failures after which the stream falls back to SHM (default 3).
    pub max_import_failures: u32,
    /// Signals release points with explicit sync (default: a DRM render
    /// node, see [`crate::sync::DrmSignaler`]).
    pub release_signaler: Option<Arc<dyn crate::sync::ReleaseSignaler>>,
    /// Deliver frames on PipeWire's data thread (`PW_STREAM_FLAG_RT_PROCESS`)
    /// instead of the capture's thread: one thread wake-up per frame instead
    /// of two, so less CPU and latency per frame. The frame callback then
    /// runs inside PipeWire's processing cycle: it must return quickly
    /// (keep the frame, or copy what is needed, and do the work elsewhere),
    /// since the producer's next cycle waits for it. Events raised while a
    /// frame is processed (bad frame, resumed, import failed) are then
    /// emitted on that thread too. One stream's callbacks still never run
    /// at the same time. Default false.
    pub realtime: bool,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            formats: Vec::new(),
            max_framerate: 0,
            on_frame: None,
            on_event: None,
            pull: false,
            pull_events: false,
            queue: QueuePolicy::NewestOnly,
            max_held: 4,
            buffers: 8,
            stall_timeout: Duration::ZERO,
            modifiers: Vec::new(),
            importer: None,
            max_import_failures: 3,
            release_signaler: None,
            realtime: false,
        }
    }
}

/// Buffer types (values are ABI).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BufferType {
    #[default]
    None = 0,
    MemFd = 1,
    MemPtr = 2,
    DmaBuf = 3,
}

/// A snapshot of a stream's state and counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub node_id: u32,
    pub state: StreamState,
    pub format: Option<NegotiatedFormat>,
    pub buffer_type: BufferType,
    pub frames_delivered: u64,
    /// Drops by [`DropReason`] value.
    pub drops: [u64; DROP_REASONS],
    /// Frames per second measured over the last second.
    pub fps: f64,
    pub held_now: u64,
    pub held_max: u64,
    /// Metas that were malformed and ignored.
    pub bad_metas: u64,
    /// Buffers whose memfd was not sealed against shrinking.
    pub unsealed_buffers: u64,
    pub format_changes: u64,
    /// Explicit sync: release points signalled, and signalling failures.
    pub releases_signalled: u64,
    pub release_failures: u64,
    pub last_error: Option<(wrd_status, String)>,
}

impl Stats {
    pub fn dropped(&self) -> u64 {
        self.drops.iter().sum()
    }
}

pub(crate) struct Callbacks {
    pub on_frame: Option<FrameCallback>,
    pub on_event: Option<EventCallback>,
}

/// State shared between the caller's handle and the PipeWire thread.
pub(crate) struct StreamShared {
    pub id: u64,
    /// The node captured (it changes when a reconnect finds the node again
    /// under a new id).
    node: std::sync::atomic::AtomicU32,
    pub capture: Weak<CaptureShared>,
    /// Callbacks, behind a reentrant gate held while one runs.
    pub gate: ReentrantMutex<std::cell::RefCell<Callbacks>>,
    /// False once removed: no callback runs after that.
    pub enabled: AtomicBool,
    pub stats: Mutex<Stats>,
    pub frames: Mutex<VecDeque<Frame>>,
    pub events: Mutex<VecDeque<Event>>,
    pub pull: bool,
    pub pull_events: bool,
    pub queue: QueuePolicy,
    /// Set while a bounded queue drains from high to low water.
    pub draining: AtomicBool,
    pub max_held: usize,
    pub held: AtomicUsize,
    pub eventfd: OwnedFd,
    pub removed: AtomicBool,
}

impl StreamShared {
    pub(crate) fn new(
        id: u64,
        node_id: u32,
        capture: Weak<CaptureShared>,
        cfg: &mut StreamConfig,
    ) -> Result<Arc<StreamShared>> {
        // SAFETY: eventfd creates a new fd or fails; we own it.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if efd < 0 {
            return Err(Error::Io(std::io::Error::last_os_error()));
        }
        Ok(Arc::new(StreamShared {
            id,
            node: std::sync::atomic::AtomicU32::new(node_id),
            capture,
            gate: ReentrantMutex::new(std::cell::RefCell::new(Callbacks {
                on_frame: cfg.on_frame.take(),
                on_event: cfg.on_event.take(),
            })),
            enabled: AtomicBool::new(true),
            stats: Mutex::new(Stats {
                node_id,
                ..Default::default()
            }),
            frames: Mutex::new(VecDeque::new()),
            events: Mutex::new(VecDeque::new()),
            pull: cfg.pull,
            pull_events: cfg.pull_events,
            queue: cfg.queue,
            draining: AtomicBool::new(false),
            max_held: cfg.max_held.max(1),
            held: AtomicUsize::new(0),
            // SAFETY: `efd` is a fresh fd we own.
            eventfd: unsafe { OwnedFd::from_raw_fd(efd) },
            removed: AtomicBool::new(false),
        }))
    }

    pub(crate) fn node_id(&self) -> u32 {
        self.node.load(Ordering::Acquire)
    }

    pub(crate) fn set_node_id(&self, id: u32) {
        self.node.store(id, Ordering::Release);
        self.stats.lock().node_id = id;
    }

    pub(crate) fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writing 8 bytes from a local to our own eventfd.
        unsafe {
            libc::write(
                self.eventfd.as_raw_fd(),
                &one as *const u64 as *const libc::c_void,
                8,
            );
        }
    }

    fn clear_signal(&self) {
        let mut v: u64 = 0;
        // SAFETY: reading 8 bytes into a local from our own non-blocking eventfd.
        unsafe {
            libc::read(
                self.eventfd.as_raw_fd(),
                &mut v as *mut u64 as *mut libc::c_void,
                8,
            );
        }
    }

    /// Deliver an event: to the callback (PipeWire thread) and/or the queue.
    pub(crate) fn emit(&self, ev: Event) {
        if let Event::StateChanged(s) = ev {
            self.stats.lock().state = s;
        }
        if let Event::Error { status, message } = &ev {
            self.stats.lock().last_error = Some((*status, message.clone()));
        }
        if !self.enabled.load(Ordering::Acquire) {
            return;
        }
        if self.pull_events {
            let mut q = self.events.lock();
            if q.len() >= 256 {
                q.pop_front();
            }
            q.push_back(ev.clone());
            drop(q);
            self.signal();
        }
        let gate = self.gate.lock();
        if !self.enabled.load(Ordering::Acquire) {
            return;
        }
        let Ok(mut cbs) = gate.try_borrow_mut() else {
            // An event raised from inside one of this stream's callbacks:
            // the queue (if any) has it; the callback is not re-entered.
            return;
        };
        if let Some(cb) = cbs.on_event.as_mut() {
            crate::callback_panic_boundary!("event callback", cb(&ev));
        }
    }

    /// Hand a frame to the caller: callback, then queue. Returns false when
    /// the stream no longer takes frames.
    pub(crate) fn deliver(&self, frame: &Frame) -> bool {
        if !self.enabled.load(Ordering::Acquire) {
            return false;
        }
        {
            let gate = self.gate.lock();
            if !self.enabled.load(Ordering::Acquire) {
                return false;
            }
            let borrowed = gate.try_borrow_mut();
            if let Ok(mut cbs) = borrowed {
                if let Some(cb) = cbs.on_frame.as_mut() {
                    crate::callback_panic_boundary!("frame callback", cb(frame));
                }
            }
        }
        if self.pull && self.enabled.load(Ordering::Acquire) {
            let mut q = self.frames.lock();
            match self.queue {
                QueuePolicy::NewestOnly => {
                    if let Some(old) = q.pop_front() {
                        drop(q);
                        self.count_drop(DropReason::Superseded);
                        drop(old);
                        q = self.frames.lock();
                    }
                    q.push_back(frame.clone());
                }
                QueuePolicy::Bounded { high, low } => {
                    if q.len() >= high.max(1) {
                        self.draining.store(true, Ordering::Release);
                    } else if q.len() <= low {
                        self.draining.store(false, Ordering::Release);
                    }
                    if self.draining.load(Ordering::Acquire) {
                        drop(q);
                        self.count_drop(DropReason::QueueFull);
                        return true;
                    }
                    q.push_back(frame.clone());
                }
            }
            drop(q);
            self.signal();
        }
        true
    }

    pub(crate) fn count_drop(&self, reason: DropReason) {
        self.stats.lock().drops[reason as usize] += 1;
    }

    pub(crate) fn note_held(&self, delta: isize) {
        let now = if delta > 0 {
            self.held.fetch_add(delta as usize, Ordering::AcqRel) + delta as usize
        } else {
            self.held.fetch_sub((-delta) as usize, Ordering::AcqRel) - (-delta) as usize
        };
        let mut st = self.stats.lock();
        st.held_now = now as u64;
        st.held_max = st.held_max.max(now as u64);
    }
}

/// Gives a PipeWire buffer back to its stream when dropped (from any thread).
pub(crate) struct BufferHold {
    pub stream: Arc<StreamShared>,
    pub buffer: usize,
    pub generation: u64,
    /// Bytes counted against the capture's memory budget.
    pub bytes: usize,
}

impl Drop for BufferHold {
    fn drop(&mut self) {
        self.stream.note_held(-1);
        if let Some(cap) = self.stream.capture.upgrade() {
            cap.held_bytes.fetch_sub(self.bytes, Ordering::AcqRel);
            cap.send(Command::ReturnBuffer {
                stream: self.stream.id,
                buffer: self.buffer,
                generation: self.generation,
            });
        }
    }
}

/// A stream handle. Dropping it removes the stream (like [`Stream::remove`]).
pub struct Stream {
    pub(crate) shared: Arc<StreamShared>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("id", &self.shared.id)
            .field("node_id", &self.shared.node_id())
            .finish()
    }
}

impl Stream {
    /// The node this stream captures.
    pub fn node_id(&self) -> u32 {
        self.shared.node_id()
    }

    /// A snapshot of state and counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats.lock().clone()
    }

    /// The negotiated format, once there is one.
    pub fn format(&self) -> Option<NegotiatedFormat> {
        self.shared.stats.lock().format
    }

    /// The eventfd that becomes readable when a frame or event is queued
    /// (pull mode). Owned by the stream.
    pub fn fd(&self) -> RawFd {
        self.shared.eventfd.as_raw_fd()
    }

    /// Take the newest queued frame (pull mode). The caller owns it; drop it
    /// to give the buffer back.
    pub fn pull(&self) -> Result<Frame> {
        let mut q = self.shared.frames.lock();
        let f = q.pop_back();
        // Older frames are superseded by the newest.
        let older: Vec<Frame> = q.drain(..).collect();
        let empty = q.is_empty();
        drop(q);
        for _ in &older {
            self.shared.count_drop(DropReason::Superseded);
        }
        drop(older);
        if empty && self.shared.events.lock().is_empty() {
            self.shared.clear_signal();
        }
        f.ok_or(Error::NoFrame)
    }

    /// Take the oldest queued frame (bounded-queue mode).
    pub fn pop(&self) -> Result<Frame> {
        let mut q = self.shared.frames.lock();
        let f = q.pop_front();
        let empty = q.is_empty();
        drop(q);
        if empty && self.shared.events.lock().is_empty() {
            self.shared.clear_signal();
        }
        f.ok_or(Error::NoFrame)
    }

    /// Take the next queued event (when events are pulled).
    pub fn next_event(&self) -> Option<Event> {
        let ev = self.shared.events.lock().pop_front();
        if self.shared.events.lock().is_empty() && self.shared.frames.lock().is_empty() {
            self.shared.clear_signal();
        }
        ev
    }

    /// Remove the stream. No callback of it runs after this returns (also
    /// when called from inside one of its callbacks). Frames the caller
    /// still holds stay valid until dropped.
    pub fn remove(self) {
        drop(self)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // Taking the gate waits for a callback running on another thread;
        // on the PipeWire thread inside a callback it is reentrant.
        let callbacks = {
            let g = self.shared.gate.lock();
            self.shared.enabled.store(false, Ordering::Release);
            // Outside a callback of this stream the callbacks (and the
            // caller's user data) are released now; from inside one, when the
            // stream's shared state goes.
            let taken = g
                .try_borrow_mut()
                .map(|mut c| (c.on_frame.take(), c.on_event.take()))
                .ok();
            taken
        };
        drop(callbacks);
        if self.shared.removed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.shared.frames.lock().clear();
        if let Some(cap) = self.shared.capture.upgrade() {
            cap.stream_count.fetch_sub(1, Ordering::AcqRel);
            cap.send(Command::RemoveStream(self.shared.id));
        }
    }
}
