//! The connection: a PipeWire context and core on a thread of our own.
//!
//! All PipeWire objects live on that thread. Callers talk to it through a
//! PipeWire channel ([`Command`]); nothing they call waits on the thread
//! except [`Capture`]'s drop, which joins it (or, when called from inside a
//! callback on that thread, lets the thread finish by itself).

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::OwnedFd;
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
}

impl Default for CaptureOptions {
    fn default() -> Self {
        CaptureOptions {
            max_streams: 8,
            node_timeout: Duration::from_secs(1),
            negotiation_timeout: Duration::from_secs(5),
            remote: None,
            connect_timeout: Duration::from_secs(5),
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
    },
    RemoveStream(u64),
    ReturnBuffer {
        stream: u64,
        buffer: usize,
        generation: u64,
    },
    Quit,
}

/// State shared between handles and the PipeWire thread.
pub(crate) struct CaptureShared {
    sender: Mutex<Option<pw::channel::Sender<Command>>>,
    pub stream_count: AtomicUsize,
    pub connected: AtomicBool,
    pub quit: AtomicBool,
    next_stream_id: AtomicU64,
    pub thread_id: OnceLock<ThreadId>,
    pub nodes: Mutex<HashMap<u32, NodeInfo>>,
    pub versions: Mutex<Versions>,
    pub options: CaptureOptions,
}

impl CaptureShared {
    pub(crate) fn send(&self, cmd: Command) {
        if let Some(tx) = self.sender.lock().as_ref() {
            // Fails only when the thread is gone; then nothing is left to do.
            let _ = tx.send(cmd);
        }
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
        let shared = Arc::new(CaptureShared {
            sender: Mutex::new(None),
            stream_count: AtomicUsize::new(0),
            connected: AtomicBool::new(false),
            quit: AtomicBool::new(false),
            next_stream_id: AtomicU64::new(1),
            thread_id: OnceLock::new(),
            nodes: Mutex::new(HashMap::new()),
            versions: Mutex::new(Versions::default()),
            options: options.clone(),
        });
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<Result<()>>(1);
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name("wrd-capture-pw".into())
            .spawn(move || {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run_loop(fd, sh.clone(), &ready_tx)
                }));
                if let Err(e) = r
                    .unwrap_or_else(|_| Err(Error::PipeWire("panic on the PipeWire thread".into())))
                {
                    let _ = ready_tx.try_send(Err(e));
                }
                sh.connected.store(false, Ordering::Release);
                *sh.sender.lock() = None;
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
        let lib = parse_version(&self.shared.versions.lock().library);
        let offer = Offer {
            formats,
            modifiers: cfg.modifiers.clone(),
            max_framerate: cfg.max_framerate,
            dont_fixate: lib >= (0, 3, 33),
        };
        self.shared.send(Command::AddStream {
            shared: shared.clone(),
            offer,
            buffers: cfg.buffers.clamp(2, 16),
            stall: cfg.stall_timeout,
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
            if self.shared.on_pw_thread() {
                // Destroyed from inside a callback: the loop quits when the
                // callback returns and the thread cleans up by itself.
                drop(t);
            } else {
                let _ = t.join();
            }
        }
    }
}

/// Everything the PipeWire thread owns.
pub(crate) struct LoopState {
    pub shared: Arc<CaptureShared>,
    pub mainloop: pw::main_loop::MainLoop,
    pub core: pw::core::Core,
    pub streams: RefCell<HashMap<u64, StreamEntry>>,
    /// Streams to destroy once the current callback has returned.
    pub doomed: RefCell<Vec<StreamEntry>>,
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

fn run_loop(
    fd: Option<OwnedFd>,
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
    let core = match fd {
        Some(fd) => context.connect_fd(fd, None),
        None => {
            let props = shared
                .options
                .remote
                .as_ref()
                .map(|r| pw::properties::properties! { *pw::keys::REMOTE_NAME => r.as_str() });
            context.connect(props)
        }
    }
    .map_err(|e| Error::Connect(e.to_string()))?;

    let (tx, rx) = pw::channel::channel::<Command>();
    *shared.sender.lock() = Some(tx);

    let state = Rc::new(LoopState {
        shared: shared.clone(),
        mainloop: mainloop.clone(),
        core: core.clone(),
        streams: RefCell::new(HashMap::new()),
        doomed: RefCell::new(Vec::new()),
    });

    // Core events: the daemon's version, errors, and the sync that ends the
    // initial registry dump.
    let synced = Rc::new(std::cell::Cell::new(false));
    let sync_seq = Rc::new(std::cell::Cell::new(
        None::<pw::spa::utils::result::AsyncSeq>,
    ));
    let connect_failed = Rc::new(RefCell::new(None::<String>));
    let _core_listener = core
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
            let synced = synced.clone();
            let sync_seq = sync_seq.clone();
            let mainloop = mainloop.clone();
            move |id, seq| {
                if id == pw::core::PW_ID_CORE && Some(seq) == sync_seq.get() && !synced.get() {
                    synced.set(true);
                    mainloop.quit();
                }
            }
        })
        .error({
            let state = Rc::downgrade(&state);
            let connect_failed = connect_failed.clone();
            let synced = synced.clone();
            let mainloop = mainloop.clone();
            move |id, _seq, res, message| {
                crate::callback_panic_boundary!("core error", {
                    if id != pw::core::PW_ID_CORE {
                        return;
                    }
                    if !synced.get() {
                        *connect_failed.borrow_mut() = Some(format!("{message} ({res})"));
                        mainloop.quit();
                        return;
                    }
                    if res == -libc::EPIPE {
                        if let Some(state) = state.upgrade() {
                            connection_lost(&state);
                        }
                    }
                })
            }
        })
        .register();

    let registry = core
        .get_registry()
        .map_err(|e| Error::PipeWire(format!("registry: {e}")))?;
    let _registry_listener = registry
        .add_listener_local()
        .global({
            let state = Rc::downgrade(&state);
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
                        state.shared.nodes.lock().insert(g.id, info);
                        crate::pwstream::node_appeared(&state, g.id);
                    }
                })
            }
        })
        .global_remove({
            let state = Rc::downgrade(&state);
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

    // Round trip: when it completes, the registry has told us every node.
    let seq = core
        .sync(0)
        .map_err(|e| Error::PipeWire(format!("sync: {e}")))?;
    sync_seq.set(Some(seq));
    let timeout = mainloop.loop_().add_timer({
        let mainloop = mainloop.clone();
        move |_| mainloop.quit()
    });
    timeout.update_timer(Some(shared.options.connect_timeout), None);
    mainloop.run();
    drop(timeout);
    if let Some(msg) = connect_failed.borrow_mut().take() {
        return Err(Error::Connect(msg));
    }
    if !synced.get() {
        return Err(Error::Connect("the daemon did not answer".into()));
    }
    shared.connected.store(true, Ordering::Release);
    let _ = ready.send(Ok(()));

    // A coarse tick for timeouts (missing node, negotiation, stalls) and the
    // fps figure: every TICK_FAST while some stream waits for its node or
    // format or has a stall timeout, else every TICK_SLOW, so that a steady
    // stream's thread wakes for frames only (at 60 fps the 50 ms tick was a
    // quarter of its wake-ups; see docs/bench/RESULTS.md).
    let tick = Rc::new(TickCtl {
        loop_: mainloop.loop_().as_raw_ptr(),
        source: std::cell::Cell::new(std::ptr::null_mut()),
        period: std::cell::Cell::new(TICK_FAST),
    });
    let tick_source = mainloop.loop_().add_timer({
        let state = Rc::downgrade(&state);
        let tick = Rc::downgrade(&tick);
        move |_| {
            crate::callback_panic_boundary!("tick", {
                if let Some(state) = state.upgrade() {
                    let fast = crate::pwstream::tick(&state, Instant::now());
                    if let Some(tick) = tick.upgrade() {
                        tick.set(if fast { TICK_FAST } else { TICK_SLOW });
                    }
                }
            })
        }
    });
    tick_source.update_timer(Some(TICK_FAST), Some(TICK_FAST));
    tick.source.set(pw::loop_::IsSource::as_ptr(&tick_source));

    let _receiver = rx.attach(mainloop.loop_(), {
        let state = Rc::downgrade(&state);
        let tick = Rc::downgrade(&tick);
        move |cmd| {
            crate::callback_panic_boundary!("command", {
                if let Some(state) = state.upgrade() {
                    let added = matches!(cmd, Command::AddStream { .. });
                    handle_command(&state, cmd);
                    if added {
                        if let Some(tick) = tick.upgrade() {
                            tick.set(TICK_FAST);
                        }
                    }
                }
            })
        }
    });

    if !shared.quit.load(Ordering::Acquire) {
        mainloop.run();
    }

    // Tear down: streams first (disconnect returns their buffers), then the
    // listeners, registry, core and context, in that order.
    tick.source.set(std::ptr::null_mut());
    drop(tick_source);
    let entries: Vec<StreamEntry> = state.streams.borrow_mut().drain().map(|(_, e)| e).collect();
    for e in entries {
        e.shared.enabled.store(false, Ordering::Release);
        drop(e);
    }
    state.doomed.borrow_mut().clear();
    *shared.sender.lock() = None;
    drop(_receiver);
    drop(_registry_listener);
    drop(registry);
    drop(_core_listener);
    drop(state);
    drop(core);
    drop(context);
    Ok(())
}

/// Tick period while a stream waits for its node or format, or has a stall
/// timeout (the header's "plus 50 ms").
const TICK_FAST: Duration = Duration::from_millis(50);
/// Tick period otherwise (fps figure, mid-stream renegotiation timeout).
const TICK_SLOW: Duration = Duration::from_millis(500);

/// The tick timer as its own callback and the command handler re-arm it.
/// (`TimerSource` borrows the loop, so the `'static` callbacks hold raw
/// pointers instead; `source` is null once the timer is destroyed.)
struct TickCtl {
    loop_: *mut pw::sys::pw_loop,
    source: std::cell::Cell<*mut pw::spa::sys::spa_source>,
    period: std::cell::Cell<Duration>,
}

impl TickCtl {
    fn set(&self, period: Duration) {
        let source = self.source.get();
        if self.period.get() == period || source.is_null() {
            return;
        }
        let mut ts = pw::spa::sys::timespec {
            tv_sec: period.as_secs() as _,
            tv_nsec: period.subsec_nanos() as _,
        };
        let mut interval = ts;
        // SAFETY: called on the loop's thread from a callback of that loop;
        // `loop_` is the main loop (alive while it runs) and `source` the
        // tick timer, not yet destroyed (non-null). This is what
        // `TimerSource::update_timer` does.
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

fn handle_command(state: &Rc<LoopState>, cmd: Command) {
    match cmd {
        Command::AddStream {
            shared,
            offer,
            buffers,
            stall,
        } => {
            if let Err(e) = crate::pwstream::add(state, shared.clone(), offer, buffers, stall) {
                shared.emit(Event::Error {
                    status: e.status(),
                    message: e.to_string(),
                });
                shared.emit(Event::StateChanged(StreamState::Error));
            }
        }
        Command::RemoveStream(id) => {
            let e = state.streams.borrow_mut().remove(&id);
            if let Some(e) = e {
                e.shared.enabled.store(false, Ordering::Release);
                state.doomed.borrow_mut().push(e);
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
        Command::Quit => {
            state.shared.quit.store(true, Ordering::Release);
            state.mainloop.quit();
        }
    }
    // Destroy removed streams now that no callback of theirs is running.
    let doomed: Vec<StreamEntry> = state.doomed.borrow_mut().drain(..).collect();
    drop(doomed);
}

fn connection_lost(state: &Rc<LoopState>) {
    if !state.shared.connected.swap(false, Ordering::AcqRel) {
        return;
    }
    let shared: Vec<Arc<StreamShared>> = state
        .streams
        .borrow()
        .values()
        .map(|e| e.shared.clone())
        .collect();
    for s in shared {
        s.emit(Event::ConnectionLost);
        s.emit(Event::StateChanged(StreamState::Closed));
    }
}
