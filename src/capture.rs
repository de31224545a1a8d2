//! The connection: a PipeWire context and core on a thread of our own.
//!
//! All PipeWire objects live on that thread. Callers talk to it through a
//! PipeWire channel ([`Command`]); nothing they call waits on the thread
//! except [`Capture`]'s drop, which joins it (or, when called from inside a
//! callback on that thread, lets the thread finish by itself).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pipewire as pw;

use crate::error::{Error, Result};
use crate::format::PixelFormat;
use crate::negotiation::Offer;
use crate::pwstream::StreamEntry;
use crate::stream::{Event, Stream, StreamConfig, StreamShared, StreamState};

/// How a capture connects and what it allows.
#[derive(Clone, Debug)]
pub struct CaptureOptions {
    /// Most streams on this connection (default 8).
    pub max_streams: usize,
    /// Time a stream may wait for its node to appear before an error event
    /// (default 1 s).
    pub node_timeout: Duration,
    /// Time a stream may take from its node being found to a negotiated
    /// format before an error event (default 5 s).
    pub negotiation_timeout: Duration,
    /// Socket name or path of the daemon, for fd < 0 (default: `PIPEWIRE_REMOTE`
    /// or `pipewire-0` in `XDG_RUNTIME_DIR`).
    pub remote: Option<String>,
    /// Time allowed for connecting (default 5 s).
    pub connect_timeout: Duration,
    /// Default-daemon mode only (a portal fd cannot be reused): when the
    /// daemon goes away, reconnect with exponential backoff and re-add the
    /// streams by node name. `None` (the default): report and stay down.
    pub reconnect: Option<ReconnectPolicy>,
    /// Bytes of producer buffers the caller may hold across all streams of
    /// this capture (frames kept past their callback or queued); past it new
    /// frames are dropped (`DropReason::Budget`). 0: no budget.
    pub memory_budget: usize,
}

/// How a capture reconnects in default-daemon mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// Delay before the first attempt; doubled after each failure.
    pub initial_delay: Duration,
    /// Longest delay between attempts.
    pub max_delay: Duration,
    /// Failed attempts in a row after which the capture gives up (the
    /// circuit breaker opens) and says so with an error event.
    pub max_attempts: u32,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            max_attempts: 8,
        }
    }
}

impl Default for CaptureOptions {
    fn default() -> Self {
        CaptureOptions {
            max_streams: 8,
            node_timeout: Duration::from_secs(1),
            negotiation_timeout: Duration::from_secs(5),
            remote: None,
            connect_timeout: Duration::from_secs(5),
            reconnect: None,
            memory_budget: 0,
        }
    }
}

/// A node the daemon announced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: u32,
    pub serial: Option<u64>,
    pub name: String,
    pub description: String,
    pub media_class: String,
}

/// Versions seen at run time.
#[derive(Clone, Debug, Default)]
pub struct Versions {
    /// The client library (`pw_get_library_version`).
    pub library: String,
    /// The daemon (core info).
    pub daemon: String,
}

/// What the running PipeWire allows, decided at run time from the client
/// library's and the daemon's versions (the library is built once, against
/// 0.3.65 headers, and runs against anything newer).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Features {
    /// Explicit sync (SyncTimeline meta, SyncObj datas) is negotiated with
    /// DMA-BUF: needs the client library and the daemon >= 1.2.0.
    pub explicit_sync: bool,
    /// The client library is newer than the daemon (a Flatpak runtime's
    /// PipeWire on an older host, say).
    pub library_newer_than_daemon: bool,
    /// The client library (>= 0.3.74) cannot receive buffers from this
    /// daemon (< 0.3.74): since PipeWire a9a9c72a0 ("client-node: create
    /// mix explicitly", 0.3.74) the client refuses buffers for a port mix
    /// the daemon has not announced, and daemons before it announce the mix
    /// (port_set_mix_info) only after sending the buffers. Every consumer
    /// stream then links and negotiates but never gets a frame (measured
    /// with 1.4.2 against 0.3.65, GStreamer's pipewiresrc alike), so
    /// `add_stream` refuses with [`Error::Unsupported`].
    pub mix_protocol_mismatch: bool,
}

impl Features {
    /// The features for a (library, daemon) version pair.
    pub fn for_versions(library: &str, daemon: &str) -> Features {
        let (lib, dae) = (parse_version(library), parse_version(daemon));
        Features {
            explicit_sync: lib >= (1, 2, 0) && dae >= (1, 2, 0),
            library_newer_than_daemon: dae != (0, 0, 0) && lib > dae,
            mix_protocol_mismatch: dae != (0, 0, 0) && lib >= (0, 3, 74) && dae < (0, 3, 74),
        }
    }
}

/// Parse "1.4.2" into a comparable (major, minor, micro).
pub fn parse_version(s: &str) -> (u32, u32, u32) {
    let mut it = s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
    )
}

pub(crate) enum Command {
    AddStream {
        shared: Arc<StreamShared>,
        offer: Offer,
        buffers: u32,
        stall: Duration,
        setup: crate::pwstream::ImportSetup,
    },
    RemoveStream(u64),
    /// The daemon is gone (sent by the core's error callback to itself, so
    /// that the connection is torn down outside that callback).
    ConnectionLost,
    ReturnBuffer {
        stream: u64,
        buffer: usize,
        generation: u64,
    },
    /// Offer the stream's current formats again (an import failed on the
    /// data thread of a realtime stream, where update_params must not run).
    Renegotiate(u64),
    Quit,
}

/// State shared between handles and the PipeWire thread.
pub(crate) struct CaptureShared {
    /// Commands for the PipeWire thread, and the eventfd that wakes it.
    /// Not pipewire-rs's channel: that runs its callback with the channel's
    /// lock held, so a command sent from the PipeWire thread while one is
    /// handled (a frame dropped during a stream's removal gives its buffer
    /// back) deadlocked. Here the lock is held only to push or pop.
    commands: Mutex<VecDeque<Command>>,
    /// False before the thread runs its loop and after it stopped.
    open: AtomicBool,
    wake: OwnedFd,
    pub stream_count: AtomicUsize,
    pub connected: AtomicBool,
    pub quit: AtomicBool,
    next_stream_id: AtomicU64,
    pub thread_id: OnceLock<ThreadId>,
    pub nodes: Mutex<HashMap<u32, NodeInfo>>,
    pub versions: Mutex<Versions>,
    pub options: CaptureOptions,
    /// Bytes of producer buffers held by callers (see `memory_budget`).
    pub held_bytes: AtomicUsize,
}

impl CaptureShared {
    pub(crate) fn send(&self, cmd: Command) {
        if !self.open.load(Ordering::Acquire) {
            // The thread is gone: nothing is left to do (dropped here, after
            // the check, with no lock held).
            return;
        }
        self.commands.lock().push_back(cmd);
        let one: u64 = 1;
        // SAFETY: writing 8 bytes from a local to our own eventfd.
        unsafe {
            libc::write(
                self.wake.as_raw_fd(),
                &one as *const u64 as *const libc::c_void,
                8,
            );
        }
    }

    /// The next queued command (the lock is released on return).
    fn next_command(&self) -> Option<Command> {
        self.commands.lock().pop_front()
    }

    pub(crate) fn on_pw_thread(&self) -> bool {
        self.thread_id.get() == Some(&std::thread::current().id())
    }
}

/// A connection to PipeWire with its own thread.
pub struct Capture {
    shared: Arc<CaptureShared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("connected", &self.is_connected())
            .field("streams", &self.stream_count())
            .finish()
    }
}

impl Capture {
    /// Connect. With `Some(fd)` (from the portal's OpenPipeWireRemote, or a
    /// socket connected to the daemon) the capture takes ownership of the
    /// fd; with `None` it connects to the default daemon.
    pub fn new(fd: Option<OwnedFd>, options: CaptureOptions) -> Result<Capture> {
        if options.max_streams == 0 {
            return Err(Error::InvalidArgument(
                "max_streams must be at least 1".into(),
            ));
        }
        // SAFETY: eventfd creates a new fd or fails; we own it.
        let wake = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if wake < 0 {
            return Err(Error::Io(std::io::Error::last_os_error()));
        }
        let shared = Arc::new(CaptureShared {
            commands: Mutex::new(VecDeque::new()),
            open: AtomicBool::new(false),
            // SAFETY: `wake` is a fresh fd we own.
            wake: unsafe { OwnedFd::from_raw_fd(wake) },
            stream_count: AtomicUsize::new(0),
            connected: AtomicBool::new(false),
            quit: AtomicBool::new(false),
            next_stream_id: AtomicU64::new(1),
            thread_id: OnceLock::new(),
            nodes: Mutex::new(HashMap::new()),
            versions: Mutex::new(Versions::default()),
            options: options.clone(),
            held_bytes: AtomicUsize::new(0),
        });
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<Result<()>>(1);
        let sh = shared.clone();
        let reconnect = if fd.is_none() {
            options.reconnect
        } else {
            None
        };
        let thread = std::thread::Builder::new()
            .name("wrd-capture-pw".into())
            .spawn(move || {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run_loop(fd, reconnect, sh.clone(), &ready_tx)
                }));
                if let Err(e) = r
                    .unwrap_or_else(|_| Err(Error::PipeWire("panic on the PipeWire thread".into())))
                {
                    let _ = ready_tx.try_send(Err(e));
                }
                sh.connected.store(false, Ordering::Release);
                sh.close_commands();
            })
            .map_err(Error::Io)?;
        match ready_rx.recv_timeout(options.connect_timeout + Duration::from_secs(1)) {
            Ok(Ok(())) => Ok(Capture {
                shared,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                shared.send(Command::Quit);
                Err(Error::Connect("timed out".into()))
            }
        }
    }

    /// Add a stream for `node_id`. Frames and events then arrive through the
    /// config's callbacks or the pull API. Errors about the node (missing,
    /// no common format) come as events, within the capture's node and
    /// negotiation timeouts.
    pub fn add_stream(&self, node_id: u32, mut cfg: StreamConfig) -> Result<Stream> {
        if !self.shared.connected.load(Ordering::Acquire) {
            return Err(Error::ConnectionLost);
        }
        if node_id == u32::MAX {
            return Err(Error::InvalidArgument("node id".into()));
        }
        let versions = self.shared.versions.lock().clone();
        let features = Features::for_versions(&versions.library, &versions.daemon);
        if features.mix_protocol_mismatch {
            return Err(Error::Unsupported(format!(
                "PipeWire client library {} cannot receive buffers from daemon {} \
                 (the client-node mix protocol changed in 0.3.74): use a client \
                 library no newer than 0.3.73 with this daemon, or a daemon >= 0.3.74",
                versions.library, versions.daemon
            )));
        }
        let max = self.shared.options.max_streams;
        if self
            .shared
            .stream_count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_err()
        {
            return Err(Error::TooManyStreams(max));
        }
        let formats = if cfg.formats.is_empty() {
            PixelFormat::ALL.to_vec()
        } else {
            let mut seen = Vec::new();
            for f in &cfg.formats {
                if !seen.contains(f) {
                    seen.push(*f);
                }
            }
            seen
        };
        let id = self.shared.next_stream_id.fetch_add(1, Ordering::Relaxed);
        let shared = match StreamShared::new(id, node_id, Arc::downgrade(&self.shared), &mut cfg) {
            Ok(s) => s,
            Err(e) => {
                self.shared.stream_count.fetch_sub(1, Ordering::AcqRel);
                return Err(e);
            }
        };
        let lib = parse_version(&versions.library);
        let mut modifiers = cfg.modifiers.clone();
        if modifiers.is_empty() {
            if let Some(imp) = &cfg.importer {
                for f in &formats {
                    let m = imp.modifiers(f.to_drm());
                    if !m.is_empty() {
                        modifiers.push((*f, m.to_vec()));
                    }
                }
            }
        }
        let offer = Offer {
            formats,
            modifiers,
            max_framerate: cfg.max_framerate,
            dont_fixate: lib >= (0, 3, 33),
            explicit_sync: features.explicit_sync,
        };
        self.shared.send(Command::AddStream {
            shared: shared.clone(),
            offer,
            buffers: cfg.buffers.clamp(2, 16),
            stall: cfg.stall_timeout,
            setup: crate::pwstream::ImportSetup {
                importer: cfg.importer.take(),
                max_import_failures: cfg.max_import_failures,
                signaler: cfg
                    .release_signaler
                    .take()
                    .unwrap_or_else(|| Arc::new(crate::sync::DrmSignaler::default())),
                realtime: cfg.realtime,
            },
        });
        Ok(Stream { shared })
    }

    /// The nodes the daemon announced (video sources and everything else).
    pub fn nodes(&self) -> Vec<NodeInfo> {
        let mut v: Vec<NodeInfo> = self.shared.nodes.lock().values().cloned().collect();
        v.sort_by_key(|n| n.id);
        v
    }

    /// Client library and daemon versions.
    pub fn versions(&self) -> Versions {
        self.shared.versions.lock().clone()
    }

    /// What the running PipeWire allows (see [`Features`]).
    pub fn features(&self) -> Features {
        let v = self.versions();
        Features::for_versions(&v.library, &v.daemon)
    }

    /// False once the daemon (or portal session) is gone.
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Acquire)
    }

    /// Number of streams now.
    pub fn stream_count(&self) -> usize {
        self.shared.stream_count.load(Ordering::Acquire)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.shared.quit.store(true, Ordering::Release);
        self.shared.send(Command::Quit);
        if let Some(t) = self.thread.take() {
            if self.shared.on_pw_thread() || crate::pwstream::in_process() {
                // Destroyed from inside a callback (on the capture thread,
                // or on PipeWire's data thread for a realtime stream, which
                // the capture thread's teardown waits for): the loop quits
                // when the callback returns and the thread cleans up by
                // itself.
                drop(t);
            } else {
                let _ = t.join();
            }
        }
    }
}

/// What it takes to (re)create a stream's PipeWire side.
pub(crate) struct StreamSpec {
    pub shared: Arc<StreamShared>,
    pub offer: Offer,
    pub buffers: u32,
    pub stall: Duration,
    pub setup: crate::pwstream::ImportSetup,
    /// The node's name, to find it again after a reconnect.
    pub node_name: Option<String>,
    /// After a reconnect: waiting since then for a node with `node_name`.
    pub pending_since: Option<Instant>,
}

/// A live connection: the core and its registry.
pub(crate) struct Conn {
    pub core: pw::core::Core,
    _core_listener: pw::core::Listener,
    _registry_listener: pw::registry::Listener,
    _registry: pw::registry::Registry,
}

#[derive(Default)]
struct Reconnect {
    policy: Option<ReconnectPolicy>,
    attempts: u32,
    delay: Duration,
    /// When the next attempt is due (checked by the tick).
    next_at: Option<Instant>,
    gave_up: bool,
}

/// Everything the PipeWire thread owns.
pub(crate) struct LoopState {
    pub shared: Arc<CaptureShared>,
    pub mainloop: pw::main_loop::MainLoop,
    context: pw::context::Context,
    pub conn: RefCell<Option<Conn>>,
    pub streams: RefCell<HashMap<u64, StreamEntry>>,
    pub specs: RefCell<HashMap<u64, StreamSpec>>,
    /// Set when the initial registry round trip completed.
    synced: Cell<bool>,
    sync_seq: Cell<Option<pw::spa::utils::result::AsyncSeq>>,
    connect_failed: RefCell<Option<String>>,
    reconnect: RefCell<Reconnect>,
    /// The periodic tick's timer and period.
    pub tick: TickCtl,
    /// Removed streams whose node still links, with when they were removed:
    /// disabled at once (no callback runs after `remove`), destroyed by the
    /// tick once the link settled. Destroying a stream mid-link hurts on
    /// every version: a client library < 0.3.72 leaks the fds of messages
    /// that then arrive for the destroyed proxy (pipewire#1840), and
    /// PipeWire 1.4 fails the refused link on both ends, so the producer's
    /// stream (a compositor's screencast) goes to error.
    parting: RefCell<Vec<(StreamEntry, Instant)>>,
}

/// Longest a removed stream waits for its link to settle.
const PARTING_TIMEOUT: Duration = Duration::from_secs(2);

/// Destroy the parting streams whose link settled (or that waited long
/// enough). Returns true while some still wait.
fn reap_parting(state: &LoopState, now: Instant) -> bool {
    let done: Vec<StreamEntry> = {
        let mut p = state.parting.borrow_mut();
        let (done, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut *p)
            .into_iter()
            .partition(|(e, t)| e.settled() || now.duration_since(*t) >= PARTING_TIMEOUT);
        *p = keep;
        done.into_iter().map(|(e, _)| e).collect()
    };
    drop(done);
    !state.parting.borrow().is_empty()
}

/// Tick period while a stream waits for its node or format or has a stall
/// timeout, or a reconnect is pending (the header's "plus 50 ms" bounds).
const TICK_FAST: Duration = Duration::from_millis(50);
/// Tick period otherwise (the fps figure; a mid-stream renegotiation
/// timeout is then seen within 500 ms).
const TICK_SLOW: Duration = Duration::from_millis(500);

/// The tick timer, re-armed from its own callback and from the command
/// handler: a steady stream's capture thread then wakes for frames only (at
/// 60 fps the fixed 50 ms tick was a sixth of its wake-ups, a quarter of a
/// realtime stream's; docs/bench/RESULTS.md). `TimerSource` borrows the
/// loop, so this holds raw pointers; `source` is null while there is no
/// timer.
pub(crate) struct TickCtl {
    loop_: *mut pw::sys::pw_loop,
    source: Cell<*mut pw::spa::sys::spa_source>,
    period: Cell<Duration>,
}

impl TickCtl {
    /// Run the tick every `TICK_FAST` (`fast`) or `TICK_SLOW`.
    pub(crate) fn set_fast(&self, fast: bool) {
        let period = if fast { TICK_FAST } else { TICK_SLOW };
        let source = self.source.get();
        if self.period.get() == period || source.is_null() {
            return;
        }
        let mut ts = pw::spa::sys::timespec {
            tv_sec: period.as_secs() as _,
            tv_nsec: period.subsec_nanos() as _,
        };
        let mut interval = ts;
        // SAFETY: called on the loop's thread (LoopState lives there only);
        // `loop_` is the main loop, alive as long as LoopState, and `source`
        // the tick timer, not yet destroyed (non-null; cleared before the
        // timer is dropped). This is what `TimerSource::update_timer` does.
        unsafe {
            let utils = (*self.loop_).utils;
            let iface = std::ptr::addr_of_mut!((*utils).iface);
            let funcs = (*iface).cb.funcs as *const pw::spa::sys::spa_loop_utils_methods;
            if let Some(f) = (*funcs).update_timer {
                f((*iface).cb.data, source, &mut ts, &mut interval, false);
            }
        }
        self.period.set(period);
    }
}

impl LoopState {
    /// The current core, if connected.
    pub fn core(&self) -> Option<pw::core::Core> {
        self.conn.borrow().as_ref().map(|c| c.core.clone())
    }
}

fn version_string(p: *const std::ffi::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: PipeWire returns a static NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_string_lossy()
        .into_owned()
}

/// Connect (with the caller's fd, or to the default daemon), listen to the
/// core and the registry, and start the round trip that ends the registry
/// dump (see `on_synced`).
fn connect(state: &Rc<LoopState>, fd: Option<OwnedFd>) -> Result<Conn> {
    let shared = &state.shared;
    let core = match fd {
        Some(fd) => state.context.connect_fd(fd, None),
        None => {
            let props = shared
                .options
                .remote
                .as_ref()
                .map(|r| pw::properties::properties! { *pw::keys::REMOTE_NAME => r.as_str() });
            state.context.connect(props)
        }
    }
    .map_err(|e| Error::Connect(e.to_string()))?;
    state.synced.set(false);
    let core_listener = core
        .add_listener_local()
        .info({
            let shared = shared.clone();
            move |info| {
                crate::callback_panic_boundary!("core info", {
                    shared.versions.lock().daemon = info.version().to_string();
                })
            }
        })
        .done({
            let state = Rc::downgrade(state);
            move |id, seq| {
                crate::callback_panic_boundary!("core done", {
                    let Some(state) = state.upgrade() else { return };
                    if id == pw::core::PW_ID_CORE
                        && Some(seq) == state.sync_seq.get()
                        && !state.synced.get()
                    {
                        state.synced.set(true);
                        on_synced(&state);
                    }
                })
            }
        })
        .error({
            let state = Rc::downgrade(state);
            move |id, _seq, res, message| {
                crate::callback_panic_boundary!("core error", {
                    let Some(state) = state.upgrade() else { return };
                    if id != pw::core::PW_ID_CORE {
                        return;
                    }
                    if !state.synced.get() && !state.shared.connected.load(Ordering::Acquire) {
                        *state.connect_failed.borrow_mut() = Some(format!("{message} ({res})"));
                        if state.reconnect.borrow().policy.is_none()
                            || !state.shared.ever_connected()
                        {
                            state.mainloop.quit();
                            return;
                        }
                    }
                    if res == -libc::EPIPE {
                        // Tear the connection down outside this callback.
                        state.shared.send(Command::ConnectionLost);
                    }
                })
            }
        })
        .register();
    let registry = core
        .get_registry()
        .map_err(|e| Error::PipeWire(format!("registry: {e}")))?;
    let registry_listener = registry
        .add_listener_local()
        .global({
            let state = Rc::downgrade(state);
            move |g| {
                crate::callback_panic_boundary!("registry global", {
                    if g.type_ != pw::types::ObjectType::Node {
                        return;
                    }
                    let get = |k: &str| {
                        g.props
                            .and_then(|p| p.get(k))
                            .map(str::to_string)
                            .unwrap_or_default()
                    };
                    let info = NodeInfo {
                        id: g.id,
                        serial: get("object.serial").parse().ok(),
                        name: get("node.name"),
                        description: get("node.description"),
                        media_class: get("media.class"),
                    };
                    if let Some(state) = state.upgrade() {
                        let mut found = Vec::new();
                        for (id, spec) in state.specs.borrow_mut().iter_mut() {
                            if spec.shared.node_id() == g.id && spec.node_name.is_none() {
                                spec.node_name = Some(info.name.clone());
                            }
                            if spec.pending_since.is_some()
                                && spec.node_name.as_deref() == Some(info.name.as_str())
                            {
                                spec.pending_since = None;
                                found.push(*id);
                            }
                        }
                        state.shared.nodes.lock().insert(g.id, info);
                        crate::pwstream::node_appeared(&state, g.id);
                        // Streams waiting for this node's name since a reconnect.
                        for id in found {
                            let spec = state.specs.borrow_mut().remove(&id);
                            if let Some(spec) = spec {
                                spec.shared.set_node_id(g.id);
                                start_stream(&state, spec);
                            }
                        }
                    }
                })
            }
        })
        .global_remove({
            let state = Rc::downgrade(state);
            move |id| {
                crate::callback_panic_boundary!("registry global_remove", {
                    if let Some(state) = state.upgrade() {
                        if state.shared.nodes.lock().remove(&id).is_some() {
                            crate::pwstream::node_removed(&state, id);
                        }
                    }
                })
            }
        })
        .register();
    let seq = core
        .sync(0)
        .map_err(|e| Error::PipeWire(format!("sync: {e}")))?;
    state.sync_seq.set(Some(seq));
    Ok(Conn {
        core,
        _core_listener: core_listener,
        _registry_listener: registry_listener,
        _registry: registry,
    })
}

impl CaptureShared {
    /// Stop taking commands and drop the queued ones (each dropped with no
    /// lock held: dropping one may send another, which is then refused).
    fn close_commands(&self) {
        self.open.store(false, Ordering::Release);
        while let Some(cmd) = self.next_command() {
            drop(cmd);
        }
    }

    fn ever_connected(&self) -> bool {
        !self.versions.lock().daemon.is_empty()
    }
}

/// The registry dump is complete: on the first connection the caller's
/// `Capture::new` returns; after a reconnect the streams are added again,
/// each for the node that now has its node's name.
fn on_synced(state: &Rc<LoopState>) {
    let first = !state.shared.ever_connected() || !state.shared.connected.load(Ordering::Acquire);
    state.shared.connected.store(true, Ordering::Release);
    let reconnecting = state.reconnect.borrow().attempts > 0;
    if !reconnecting
        && first
        && state.streams.borrow().is_empty()
        && state.specs.borrow().is_empty()
    {
        // The initial connection: Capture::new waits for this.
        state.mainloop.quit();
        return;
    }
    {
        let mut r = state.reconnect.borrow_mut();
        r.attempts = 0;
        r.next_at = None;
        if let Some(p) = r.policy {
            r.delay = p.initial_delay;
        }
    }
    let ids: Vec<u64> = state.specs.borrow().keys().copied().collect();
    for id in ids {
        let (shared, name) = {
            let specs = state.specs.borrow();
            let s = &specs[&id];
            (s.shared.clone(), s.node_name.clone())
        };
        let node = name.as_ref().and_then(|n| {
            state
                .shared
                .nodes
                .lock()
                .values()
                .find(|i| &i.name == n)
                .map(|i| i.id)
        });
        shared.emit(Event::Reconnected);
        match node {
            Some(node_id) => {
                shared.set_node_id(node_id);
                let spec = state.specs.borrow_mut().remove(&id);
                if let Some(spec) = spec {
                    start_stream(state, spec);
                }
            }
            None => {
                // Not (yet) there: wait for it by name, up to the node timeout.
                if let Some(spec) = state.specs.borrow_mut().get_mut(&id) {
                    spec.pending_since = Some(Instant::now());
                    state.tick.set_fast(true);
                }
            }
        }
    }
}

/// Create a stream's PipeWire side and remember how, for reconnects.
fn start_stream(state: &Rc<LoopState>, spec: StreamSpec) {
    let r = crate::pwstream::add(
        state,
        spec.shared.clone(),
        spec.offer.clone(),
        spec.buffers,
        spec.stall,
        spec.setup.clone(),
    );
    if let Err(e) = r {
        spec.shared.emit(Event::Error {
            status: e.status(),
            message: e.to_string(),
        });
        spec.shared.emit(Event::StateChanged(StreamState::Error));
    }
    let id = spec.shared.id;
    let mut spec = spec;
    if spec.node_name.is_none() {
        spec.node_name = state
            .shared
            .nodes
            .lock()
            .get(&spec.shared.node_id())
            .map(|n| n.name.clone());
    }
    state.specs.borrow_mut().insert(id, spec);
}

fn run_loop(
    fd: Option<OwnedFd>,
    reconnect: Option<ReconnectPolicy>,
    shared: Arc<CaptureShared>,
    ready: &std::sync::mpsc::SyncSender<Result<()>>,
) -> Result<()> {
    let _ = shared.thread_id.set(std::thread::current().id());
    pw::init();
    // SAFETY: pw_get_library_version returns a static string.
    shared.versions.lock().library = version_string(unsafe { pw::sys::pw_get_library_version() });

    let mainloop = pw::main_loop::MainLoop::new(None)
        .map_err(|e| Error::PipeWire(format!("main loop: {e}")))?;
    let context = pw::context::Context::new(&mainloop)
        .map_err(|e| Error::PipeWire(format!("context: {e}")))?;
    shared.open.store(true, Ordering::Release);

    let state = Rc::new(LoopState {
        shared: shared.clone(),
        mainloop: mainloop.clone(),
        context,
        conn: RefCell::new(None),
        streams: RefCell::new(HashMap::new()),
        specs: RefCell::new(HashMap::new()),
        synced: Cell::new(false),
        sync_seq: Cell::new(None),
        connect_failed: RefCell::new(None),
        reconnect: RefCell::new(Reconnect {
            policy: reconnect,
            delay: reconnect.map(|p| p.initial_delay).unwrap_or_default(),
            ..Default::default()
        }),
        tick: TickCtl {
            loop_: mainloop.loop_().as_raw_ptr(),
            source: Cell::new(std::ptr::null_mut()),
            period: Cell::new(TICK_FAST),
        },
        parting: RefCell::new(Vec::new()),
    });

    let conn = connect(&state, fd)?;
    *state.conn.borrow_mut() = Some(conn);
    // Wait for the registry round trip (or an error, or the timeout).
    let timeout = mainloop.loop_().add_timer({
        let mainloop = mainloop.clone();
        move |_| mainloop.quit()
    });
    timeout.update_timer(Some(shared.options.connect_timeout), None);
    mainloop.run();
    drop(timeout);
    if let Some(msg) = state.connect_failed.borrow_mut().take() {
        return Err(Error::Connect(msg));
    }
    if !state.synced.get() {
        return Err(Error::Connect("the daemon did not answer".into()));
    }
    let _ = ready.send(Ok(()));

    let _commands = mainloop.loop_().add_io(
        shared.wake.as_raw_fd(),
        pw::spa::support::system::IoFlags::IN,
        {
            let state = Rc::downgrade(&state);
            move |fd| {
                crate::callback_panic_boundary!("commands", {
                    let mut v: u64 = 0;
                    // SAFETY: reading 8 bytes into a local from our own
                    // non-blocking eventfd.
                    unsafe { libc::read(*fd, &mut v as *mut u64 as *mut libc::c_void, 8) };
                    let Some(state) = state.upgrade() else { return };
                    // One at a time, no lock held while a command runs: a
                    // command may queue more (they run in this same loop).
                    // Drain to empty: the eventfd was read, so a command left
                    // in the queue would wait for the next wake-up (a Quit left
                    // behind hung Capture::drop).
                    while let Some(cmd) = state.shared.next_command() {
                        // A new stream has node and format timeouts; a lost
                        // connection may reconnect.
                        if matches!(cmd, Command::AddStream { .. } | Command::ConnectionLost) {
                            state.tick.set_fast(true);
                        }
                        handle_command(&state, cmd);
                    }
                })
            }
        },
    );

    // A coarse tick for timeouts (missing node, negotiation, stalls).
    let tick = mainloop.loop_().add_timer({
        let state = Rc::downgrade(&state);
        move |_| {
            crate::callback_panic_boundary!("tick", {
                if let Some(state) = state.upgrade() {
                    let now = Instant::now();
                    let reconnecting = reconnect_tick(&state, now);
                    let streams = crate::pwstream::tick(&state, now);
                    let parting = reap_parting(&state, now);
                    state.tick.set_fast(reconnecting || streams || parting);
                }
            })
        }
    });
    tick.update_timer(Some(TICK_FAST), Some(TICK_FAST));
    state.tick.source.set(pw::loop_::IsSource::as_ptr(&tick));

    if !shared.quit.load(Ordering::Acquire) {
        mainloop.run();
    }

    // Tear down: streams first (disconnect returns their buffers), then the
    // connection, in that order.
    state.tick.source.set(std::ptr::null_mut());
    drop(tick);
    let entries: Vec<StreamEntry> = state.streams.borrow_mut().drain().map(|(_, e)| e).collect();
    for e in entries {
        e.shared.enabled.store(false, Ordering::Release);
        drop(e);
    }
    state.parting.borrow_mut().clear();
    state.specs.borrow_mut().clear();
    state.reconnect.borrow_mut().next_at = None;
    shared.close_commands();
    drop(_commands);
    let conn = state.conn.borrow_mut().take();
    drop(conn);
    drop(state);
    Ok(())
}

fn handle_command(state: &Rc<LoopState>, cmd: Command) {
    match cmd {
        Command::AddStream {
            shared,
            offer,
            buffers,
            stall,
            setup,
        } => {
            let spec = StreamSpec {
                shared: shared.clone(),
                offer,
                buffers,
                stall,
                setup,
                node_name: None,
                pending_since: None,
            };
            if state.conn.borrow().is_none() {
                // Disconnected (reconnecting): added when the daemon is back.
                state.specs.borrow_mut().insert(shared.id, spec);
                return;
            }
            start_stream(state, spec);
        }
        Command::RemoveStream(id) => {
            state.specs.borrow_mut().remove(&id);
            let e = state.streams.borrow_mut().remove(&id);
            if let Some(e) = e {
                e.shared.enabled.store(false, Ordering::Release);
                if !e.settled() {
                    // Its node still links: destroyed by the tick once the
                    // link settled (see `LoopState::parting`).
                    state.parting.borrow_mut().push((e, Instant::now()));
                    state.tick.set_fast(true);
                } else {
                    drop(e);
                }
            }
        }
        Command::ReturnBuffer {
            stream,
            buffer,
            generation,
        } => {
            if let Some(e) = state.streams.borrow().get(&stream) {
                e.return_buffer(buffer, generation);
            }
        }
        Command::Renegotiate(stream) => {
            if let Some(e) = state.streams.borrow().get(&stream) {
                e.renegotiate();
            }
        }
        Command::ConnectionLost => connection_lost(state),
        Command::Quit => {
            state.shared.quit.store(true, Ordering::Release);
            state.mainloop.quit();
        }
    }
}

/// The daemon (or portal session) is gone: tell every stream, drop the
/// connection, and in default-daemon mode with a reconnect policy try again
/// with backoff.
fn connection_lost(state: &Rc<LoopState>) {
    let was = state.shared.connected.swap(false, Ordering::AcqRel);
    if was {
        let shared: Vec<Arc<StreamShared>> = state
            .specs
            .borrow()
            .values()
            .map(|s| s.shared.clone())
            .collect();
        for s in shared {
            s.emit(Event::ConnectionLost);
            s.emit(Event::StateChanged(StreamState::Closed));
        }
    }
    if state.reconnect.borrow().policy.is_none() {
        return;
    }
    // Drop the dead connection's streams (their specs stay) and the core.
    let entries: Vec<StreamEntry> = state.streams.borrow_mut().drain().map(|(_, e)| e).collect();
    for e in entries {
        drop(e);
    }
    let conn = state.conn.borrow_mut().take();
    drop(conn);
    state.shared.nodes.lock().clear();
    schedule_reconnect(state);
}

fn schedule_reconnect(state: &Rc<LoopState>) {
    let (delay, attempt, give_up, max) = {
        let mut r = state.reconnect.borrow_mut();
        let Some(p) = r.policy else { return };
        if r.gave_up {
            return;
        }
        r.attempts += 1;
        let delay = r.delay;
        r.delay = (r.delay * 2).min(p.max_delay);
        (
            delay,
            r.attempts,
            r.attempts > p.max_attempts,
            p.max_attempts,
        )
    };
    let streams: Vec<Arc<StreamShared>> = state
        .specs
        .borrow()
        .values()
        .map(|s| s.shared.clone())
        .collect();
    if give_up {
        state.reconnect.borrow_mut().gave_up = true;
        for s in &streams {
            s.emit(Event::Error {
                status: crate::error::wrd_status::WRD_ERR_CONNECTION_LOST,
                message: format!("gave up reconnecting after {max} attempts"),
            });
            s.emit(Event::StateChanged(StreamState::Error));
        }
        return;
    }
    for s in &streams {
        s.emit(Event::Reconnecting {
            attempt,
            delay_ms: delay.as_millis() as u64,
        });
    }
    state.reconnect.borrow_mut().next_at = Some(Instant::now() + delay);
    state.tick.set_fast(true);
}

/// Called by the tick: make a reconnect attempt when one is due, and time
/// out re-added streams whose node did not come back. Returns true while
/// either is pending (the tick must stay fast).
pub(crate) fn reconnect_tick(state: &Rc<LoopState>, now: Instant) -> bool {
    let due = {
        let mut r = state.reconnect.borrow_mut();
        match r.next_at {
            Some(t) if now >= t => {
                r.next_at = None;
                true
            }
            _ => false,
        }
    };
    if due {
        try_reconnect(state);
    }
    // Streams whose node did not come back within the node timeout.
    let timeout = state.shared.options.node_timeout;
    let gone: Vec<Arc<StreamShared>> = state
        .specs
        .borrow_mut()
        .values_mut()
        .filter(|s| {
            s.pending_since
                .is_some_and(|t| now.duration_since(t) >= timeout)
        })
        .map(|s| {
            s.pending_since = None;
            s.shared.clone()
        })
        .collect();
    for s in gone {
        s.emit(Event::NodeGone);
        s.emit(Event::StateChanged(StreamState::Closed));
    }
    state.reconnect.borrow().next_at.is_some()
        || state
            .specs
            .borrow()
            .values()
            .any(|s| s.pending_since.is_some())
}

fn try_reconnect(state: &Rc<LoopState>) {
    match connect(state, None) {
        Ok(conn) => {
            // on_synced re-adds the streams when the registry dump is done;
            // an EPIPE before that schedules the next attempt.
            *state.conn.borrow_mut() = Some(conn);
        }
        Err(_) => schedule_reconnect(state),
    }
}
