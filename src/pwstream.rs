//! The PipeWire side of a stream: creation, the pw_stream callbacks
//! (param_changed, add/remove_buffer, process, state_changed) and the
//! periodic checks. Runs on the capture's thread only.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use pipewire as pw;
use pw::spa;

use crate::buffer::{
    self, ChunkDesc, DataDesc, DropReason, Invalid, MapError, Mapping, ShmLayout, DROP_REASONS,
};
use crate::capture::LoopState;
use crate::error::{wrd_status, Error, Result};
use crate::format::PixelFormat;
use crate::frame::{
    dmabuf_view, flags, DmaPlane, Frame, FrameData, FrameInner, Pixels, Plane, Region,
};
use crate::import::{Imported, Importer};
use crate::negotiation::{self, data_type, NegotiatedFormat, Offer};
use crate::stream::{BufferHold, BufferType, Event, StreamShared, StreamState};
use crate::sync::{ReleaseSignaler, ReleaseTracker, SyncPoints};

/// Most damage rectangles kept when accumulating; past it, their bounding box.
const MAX_ACCUMULATED_RECTS: usize = 32;

struct BufState {
    generation: u64,
    maps: Vec<std::result::Result<Arc<Mapping>, MapError>>,
    /// The importer's import of this buffer, done on its first DMA-BUF frame.
    imported: Option<Arc<Imported>>,
}

/// A stream's state. The capture thread uses it (format, buffer and state
/// callbacks, buffer returns, the tick) and so does the thread that runs
/// `process`: the capture thread too, or PipeWire's data thread for a
/// realtime stream. Rules that keep this deadlock-free: the lock is never
/// held while a user callback runs (`emit`, `deliver`) nor across a
/// pw_stream call that may wait for the data thread (`update_params`,
/// `disconnect`); only `pw_stream_dequeue_buffer` and
/// `pw_stream_queue_buffer` (non-blocking) are called with it held.
pub(crate) type Core = Arc<Mutex<StreamCore>>;

pub(crate) struct StreamCore {
    shared: Arc<StreamShared>,
    raw: *mut pw::sys::pw_stream,
    /// What we offer now (modifiers shrink as imports fail).
    offer: Offer,
    importer: Option<Arc<Importer>>,
    max_import_failures: u32,
    /// (format, modifier) pairs whose import failed.
    failed: Vec<(PixelFormat, u64)>,
    shm_only: bool,
    /// Explicit sync: release points to signal, and how.
    releases: ReleaseTracker,
    signaler: Arc<dyn ReleaseSignaler>,
    n_buffers: u32,
    format: Option<NegotiatedFormat>,
    format_generation: u64,
    buffers: HashMap<usize, BufState>,
    next_generation: u64,
    node_seen_at: Option<Instant>,
    added_at: Instant,
    error_sent: bool,
    closed: bool,
    stall_timeout: Duration,
    last_frame: Option<Instant>,
    stalled: bool,
    fps_window: (Instant, u64),
    bad_event_at: [Option<Instant>; DROP_REASONS],
    pending_damage: Option<Vec<Region>>,
    seq: u64,
    /// The producer's sequence number of the last buffer we saw (delivered
    /// or dropped): a jump means frames were lost before reaching us.
    last_header_seq: Option<u64>,
    /// `process` runs on PipeWire's data thread (PW_STREAM_FLAG_RT_PROCESS).
    realtime: bool,
    /// The stream reached Streaming, Error or Unconnected: the daemon no
    /// longer sends the messages that link its node.
    settled: bool,
}

// SAFETY: the only member that is not Send is `raw`, the pw_stream pointer.
// It is used from the data thread only for dequeue and queue, which
// PipeWire allows there for an RT_PROCESS stream. Its buffer rings are
// single-producer single-consumer: dequeue runs only in `process` (one
// thread), and queue (data thread or capture thread) only with the core's
// lock held. Every other pw_stream call happens on the capture thread. The
// mappings, importer and signaler are already shared across threads with
// frames.
unsafe impl Send for StreamCore {}

thread_local! {
    /// True while this thread runs a stream's `process` (the capture's
    /// thread or PipeWire's data thread).
    static IN_PROCESS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// True inside a `process` callback on this thread: the caller may be
/// PipeWire's data thread, which must not wait for the capture thread.
pub(crate) fn in_process() -> bool {
    IN_PROCESS.with(|c| c.get())
}

/// The `process` listener, registered with pw-sys directly: pipewire-rs
/// hands the same `&mut` user data to all of a listener's callbacks, and
/// `process` may run on the data thread while the others run on the
/// capture thread. Boxed: PipeWire keeps pointers to `hook` and `events`.
struct ProcessHook {
    hook: spa::sys::spa_hook,
    events: pw::sys::pw_stream_events,
    core: Core,
}

unsafe extern "C" fn process_trampoline(data: *mut std::ffi::c_void) {
    // SAFETY: `data` is the boxed ProcessHook registered with this
    // listener; StreamEntry removes the listener (after disconnecting, so
    // that no `process` is running) before the box is dropped. Only a shared
    // reference is made.
    let hook = unsafe { &*(data as *const ProcessHook) };
    let was = IN_PROCESS.with(|c| c.replace(true));
    crate::callback_panic_boundary!("process", on_process(&hook.core));
    IN_PROCESS.with(|c| c.set(was));
}

impl ProcessHook {
    fn register(raw: *mut pw::sys::pw_stream, core: Core) -> Box<ProcessHook> {
        // SAFETY: all-zero is the "no callback" value of every member of
        // both C structs (function pointers are Options, the rest integers
        // and pointers).
        let mut h = Box::new(ProcessHook {
            hook: unsafe { std::mem::zeroed() },
            events: unsafe { std::mem::zeroed() },
            core,
        });
        h.events.version = pw::sys::PW_VERSION_STREAM_EVENTS;
        h.events.process = Some(process_trampoline);
        let data = &*h as *const ProcessHook as *mut std::ffi::c_void;
        // SAFETY: `raw` is a live stream; the hook and events live in the
        // box, which does not move and outlives the registration (see
        // StreamEntry's Drop and field order).
        unsafe {
            pw::sys::pw_stream_add_listener(raw, &mut h.hook, &h.events, data);
        }
        h
    }

    fn remove(&mut self) {
        if self.hook.link.next.is_null() {
            return;
        }
        spa::utils::hook::remove(self.hook);
        self.hook = spa::sys::spa_hook {
            // SAFETY: as in register: all-zero means unlinked.
            ..unsafe { std::mem::zeroed() }
        };
    }
}

impl StreamCore {
    /// Signal the release point of a buffer being given back, if it has an
    /// armed one (explicit sync); at most once per dequeue.
    fn release_point(&self, buffer: usize) {
        if self.releases.release(buffer, &*self.signaler) || self.releases.counts().1 > 0 {
            let (ok, failed) = self.releases.counts();
            let mut st = self.shared.stats.lock();
            st.releases_signalled = ok;
            st.release_failures = failed;
        }
    }
}

/// A stream on the PipeWire thread.
pub(crate) struct StreamEntry {
    pub shared: Arc<StreamShared>,
    core: Core,
    // Field order is drop order: the listeners go before the stream, and
    // the process hook's box after it (pw_stream_destroy would unlink a
    // hook still registered).
    _listener: pw::stream::StreamListener<()>,
    stream: pw::stream::Stream,
    process: Box<ProcessHook>,
}

impl Drop for StreamEntry {
    fn drop(&mut self) {
        // Disconnecting removes the buffers (remove_buffer runs now, while
        // the listener is still there); frames the caller holds keep their
        // own mappings. It also takes the node off the data loop (PipeWire
        // waits for a running `process`), so none runs after it.
        let _ = self.stream.disconnect();
        self.process.remove();
        self.core.lock().buffers.clear();
    }
}

impl StreamEntry {
    /// The stream's node is linked (or failed): see `StreamCore::settled`.
    pub(crate) fn settled(&self) -> bool {
        self.core.lock().settled
    }

    /// Offer the stream's formats again (after an import failed on the data
    /// thread of a realtime stream).
    pub(crate) fn renegotiate(&self) {
        offer_again(&self.core);
    }

    pub(crate) fn return_buffer(&self, buffer: usize, generation: u64) {
        let core = self.core.lock();
        if core
            .buffers
            .get(&buffer)
            .is_some_and(|b| b.generation == generation)
        {
            core.release_point(buffer);
            // SAFETY: the buffer is one of this stream's live buffers (it is
            // in `buffers` with the generation the hold recorded), dequeued
            // by us and not yet queued back.
            unsafe {
                pw::sys::pw_stream_queue_buffer(self.stream.as_raw_ptr(), buffer as *mut _);
            }
        }
    }
}

fn status_for_state_error(msg: &str) -> wrd_status {
    let m = msg.to_ascii_lowercase();
    // WirePlumber 0.5 with node.dont-fallback: "defined target not found".
    if m.contains("target not found") {
        wrd_status::WRD_ERR_NODE_NOT_FOUND
    } else if m.contains("format") || m.contains("negotiat") {
        wrd_status::WRD_ERR_NEGOTIATION
    } else {
        wrd_status::WRD_ERR_PIPEWIRE
    }
}

/// Import settings of a stream.
#[derive(Clone)]
pub(crate) struct ImportSetup {
    pub importer: Option<Arc<Importer>>,
    pub max_import_failures: u32,
    pub signaler: Arc<dyn ReleaseSignaler>,
    /// Run `process` (and the frame callback) on PipeWire's data thread.
    pub realtime: bool,
}

pub(crate) fn add(
    state: &Rc<LoopState>,
    shared: Arc<StreamShared>,
    offer: Offer,
    n_buffers: u32,
    stall: Duration,
    setup: ImportSetup,
) -> Result<()> {
    let realtime = setup.realtime;
    let node = state.shared.nodes.lock().get(&shared.node_id()).cloned();
    let mut props = pw::properties::properties! {
        *pw::keys::MEDIA_TYPE => "Video",
        *pw::keys::MEDIA_CATEGORY => "Capture",
        *pw::keys::MEDIA_ROLE => "Screen",
        *pw::keys::NODE_NAME => "wrd-capture",
        *pw::keys::APP_NAME => "wrd-capture",
        "node.dont-reconnect" => "true",
        "node.dont-fallback" => "true",
    };
    if let Some(serial) = node.as_ref().and_then(|n| n.serial) {
        props.insert("target.object", serial.to_string());
    }
    let core = state.core().ok_or(Error::ConnectionLost)?;
    let stream = pw::stream::Stream::new(&core, "wrd-capture", props)
        .map_err(|e| Error::PipeWire(format!("stream: {e}")))?;
    let now = Instant::now();
    let core = Arc::new(Mutex::new(StreamCore {
        shared: shared.clone(),
        raw: stream.as_raw_ptr(),
        offer: offer.clone(),
        importer: setup.importer,
        max_import_failures: setup.max_import_failures,
        failed: Vec::new(),
        shm_only: false,
        releases: ReleaseTracker::default(),
        signaler: setup.signaler,
        n_buffers,
        format: None,
        format_generation: 0,
        buffers: HashMap::new(),
        next_generation: 1,
        node_seen_at: node.is_some().then_some(now),
        added_at: now,
        error_sent: false,
        closed: false,
        stall_timeout: stall,
        last_frame: None,
        stalled: false,
        fps_window: (now, 0),
        bad_event_at: [None; DROP_REASONS],
        pending_damage: None,
        seq: 0,
        last_header_seq: None,
        realtime,
        settled: false,
    }));
    let listener = stream
        .add_local_listener_with_user_data(())
        .state_changed({
            let core = core.clone();
            move |_, _, _old, new| {
                crate::callback_panic_boundary!("state_changed", {
                    let shared = {
                        let mut c = core.lock();
                        c.settled |= matches!(
                            new,
                            pw::stream::StreamState::Streaming
                                | pw::stream::StreamState::Error(_)
                                | pw::stream::StreamState::Unconnected
                        );
                        c.shared.clone()
                    };
                    let st = match new {
                        pw::stream::StreamState::Connecting => StreamState::Connecting,
                        pw::stream::StreamState::Paused => StreamState::Paused,
                        pw::stream::StreamState::Streaming => StreamState::Streaming,
                        pw::stream::StreamState::Unconnected => StreamState::Closed,
                        pw::stream::StreamState::Error(msg) => {
                            core.lock().error_sent = true;
                            shared.emit(Event::Error {
                                status: status_for_state_error(&msg),
                                message: msg,
                            });
                            StreamState::Error
                        }
                    };
                    let (closed, errored) = {
                        let c = core.lock();
                        (c.closed, c.error_sent)
                    };
                    // After an error (or the node going away) the stream
                    // keeps that state until frames flow again.
                    // A node that went away stays Closed even when the
                    // session manager then fails the stream (WirePlumber
                    // 0.5 with node.dont-fallback).
                    let sticky = (closed || errored) && st != StreamState::Streaming;
                    if !sticky || (st == StreamState::Error && !closed) {
                        shared.emit(Event::StateChanged(st));
                    }
                })
            }
        })
        .param_changed({
            let core = core.clone();
            move |stream, _, id, pod| {
                crate::callback_panic_boundary!("param_changed", {
                    if id != spa::param::ParamType::Format.as_raw() {
                        return;
                    }
                    on_format(&core, stream, pod);
                })
            }
        })
        .add_buffer({
            let core = core.clone();
            move |_, _, b| crate::callback_panic_boundary!("add_buffer", on_add_buffer(&core, b))
        })
        .remove_buffer({
            let core = core.clone();
            move |_, _, b| {
                crate::callback_panic_boundary!("remove_buffer", {
                    let mut c = core.lock();
                    c.releases.forget(b as usize);
                    c.buffers.remove(&(b as usize));
                })
            }
        })
        .register()
        .map_err(|e| Error::PipeWire(format!("listener: {e}")))?;
    let process = ProcessHook::register(stream.as_raw_ptr(), core.clone());

    let pods = negotiation::enum_formats(&offer);
    let mut params = negotiation::as_pods(&pods);
    stream
        .connect(
            spa::utils::Direction::Input,
            Some(shared.node_id()),
            if realtime {
                pw::stream::StreamFlags::AUTOCONNECT | pw::stream::StreamFlags::RT_PROCESS
            } else {
                pw::stream::StreamFlags::AUTOCONNECT
            },
            &mut params,
        )
        .map_err(|e| Error::PipeWire(format!("connect: {e}")))?;
    state.streams.borrow_mut().insert(
        shared.id,
        StreamEntry {
            shared,
            core,
            _listener: listener,
            stream,
            process,
        },
    );
    Ok(())
}

fn on_format(core: &Core, stream: &pw::stream::StreamRef, pod: Option<&spa::pod::Pod>) {
    let Some(pod) = pod else {
        core.lock().format = None;
        return;
    };
    let shared = core.lock().shared.clone();
    let f = match negotiation::parse_format(pod) {
        Ok(f) => f,
        // The producer fixates a modifier it can allocate and sends the
        // Format again (PipeWire's DONT_FIXATE protocol).
        Err(negotiation::FormatError::ModifierNotFixed(_)) => return,
        Err(e) => {
            shared.emit(Event::Error {
                status: wrd_status::WRD_ERR_NEGOTIATION,
                message: format!("producer's format: {e}"),
            });
            return;
        }
    };
    let n_buffers = {
        let mut c = core.lock();
        if let Some(m) = f.modifier {
            if c.failed.contains(&(f.format, m)) || c.shm_only {
                // A Format from before our renegotiation took effect.
                return;
            }
        }
        c.format = Some(f);
        c.format_generation += 1;
        // Imports were of the old format's buffers.
        for b in c.buffers.values_mut() {
            b.imported = None;
        }
        c.n_buffers
    };
    {
        let mut st = shared.stats.lock();
        st.format = Some(f);
        st.format_changes += 1;
        st.buffer_type = if f.modifier.is_some() {
            BufferType::DmaBuf
        } else {
            BufferType::MemFd
        };
    }
    shared.emit(Event::FormatChanged(f));
    let explicit_sync = core.lock().offer.explicit_sync;
    let mut bufs = negotiation::buffers_params(f.modifier.is_some(), n_buffers, explicit_sync);
    bufs.extend(negotiation::meta_params_for(
        explicit_sync && f.modifier.is_some(),
    ));
    let mut params = negotiation::as_pods(&bufs);
    if let Err(e) = stream.update_params(&mut params) {
        shared.emit(Event::Error {
            status: wrd_status::WRD_ERR_PIPEWIRE,
            message: format!("update_params: {e}"),
        });
    }
}

fn on_add_buffer(core: &Core, b: *mut pw::sys::pw_buffer) {
    let mut c = core.lock();
    // SAFETY: PipeWire hands us a valid pw_buffer whose spa_buffer and datas
    // stay valid until remove_buffer; n_datas bounds the datas array.
    let datas: &[spa::sys::spa_data] = unsafe {
        let sb = (*b).buffer;
        if sb.is_null() || (*sb).datas.is_null() {
            &[]
        } else {
            std::slice::from_raw_parts((*sb).datas, (*sb).n_datas as usize)
        }
    };
    let mut maps = Vec::with_capacity(datas.len());
    let mut unsealed = 0;
    let mut first_err = None;
    for d in datas {
        let m = match d.type_ {
            data_type::MEM_FD => Mapping::map_fd(d.fd as i32, d.mapoffset, d.maxsize),
            data_type::MEM_PTR if !d.data.is_null() => Ok(Mapping::Ptr {
                ptr: d.data as *const u8,
                len: d.maxsize as usize,
            }),
            data_type::DMA_BUF | data_type::SYNC_OBJ => Mapping::dup_fd(d.fd as i32),
            t => Err(MapError::NotAFile(format!("data type {t}"))),
        };
        match &m {
            Ok(m) if !m.sealed() => unsealed += 1,
            Err(e) if first_err.is_none() => first_err = Some(e.to_string()),
            _ => {}
        }
        maps.push(m.map(Arc::new));
    }
    let generation = c.next_generation;
    c.next_generation += 1;
    c.buffers.insert(
        b as usize,
        BufState {
            generation,
            maps,
            imported: None,
        },
    );
    let shared = c.shared.clone();
    drop(c);
    if unsealed > 0 {
        shared.stats.lock().unsealed_buffers += unsealed;
    }
    if let Some(e) = first_err {
        shared.emit(Event::Error {
            status: wrd_status::WRD_ERR_BAD_FRAME,
            message: format!("a buffer could not be mapped: {e}"),
        });
    }
}

/// The metas of a buffer as (type, bytes) pairs.
///
/// # Safety
/// `sb` must be a valid spa_buffer for the duration of the returned borrow.
unsafe fn metas<'a>(sb: *const spa::sys::spa_buffer) -> Vec<(u32, &'a [u8])> {
    let mut out = Vec::new();
    if (*sb).metas.is_null() {
        return out;
    }
    for m in std::slice::from_raw_parts((*sb).metas, (*sb).n_metas as usize) {
        if !m.data.is_null() && m.size > 0 {
            out.push((
                m.type_,
                std::slice::from_raw_parts(m.data as *const u8, m.size as usize),
            ));
        }
    }
    out
}

fn merge_damage(acc: &mut Vec<Region>, more: &[Region], w: u32, h: u32) {
    acc.extend_from_slice(more);
    if acc.len() > MAX_ACCUMULATED_RECTS {
        let x0 = acc.iter().map(|r| r.x).min().unwrap_or(0);
        let y0 = acc.iter().map(|r| r.y).min().unwrap_or(0);
        let x1 = acc.iter().map(|r| r.x + r.width as i32).max().unwrap_or(0);
        let y1 = acc.iter().map(|r| r.y + r.height as i32).max().unwrap_or(0);
        acc.clear();
        acc.push(
            Region {
                x: x0,
                y: y0,
                width: (x1 - x0) as u32,
                height: (y1 - y0) as u32,
            }
            .clip(w, h)
            .unwrap_or(Region::full(w, h)),
        );
    }
}

/// Damage of a buffer we drop, for accumulating into the next frame.
fn dropped_damage(c: &mut StreamCore, b: *mut pw::sys::pw_buffer) {
    let Some(f) = c.format else { return };
    // SAFETY: `b` is a buffer we dequeued; its spa_buffer and metas are valid
    // until we queue it back, which happens after this returns.
    let m = unsafe { metas((*b).buffer) };
    let parsed = buffer::parse_metas(&m, f.width, f.height);
    if let Some((_, _, seq)) = parsed.header {
        c.last_header_seq = Some(seq);
    }
    let rects = match parsed.damage {
        Some(d) if !d.is_empty() => d,
        _ => vec![Region::full(f.width, f.height)],
    };
    let acc = c.pending_damage.get_or_insert_with(Vec::new);
    merge_damage(acc, &rects, f.width, f.height);
}

/// Explicit sync: arm the release point of a buffer just dequeued, before
/// anything decides its fate (delivered, superseded, disabled, over the
/// held limit or the budget, invalid), so that every buffer we take is
/// released once when given back. Buffers without a SyncTimeline meta and
/// two SyncObj datas are not armed.
fn arm_release(c: &StreamCore, b: *mut pw::sys::pw_buffer) {
    let Some(bs) = c.buffers.get(&(b as usize)) else {
        return;
    };
    // SAFETY: `b` is dequeued and live; its spa_buffer, datas and metas
    // stay valid until we queue it back. n_datas bounds datas.
    let (sb, datas) = unsafe {
        let sb = (*b).buffer;
        if sb.is_null() || (*sb).datas.is_null() {
            return;
        }
        (
            sb,
            std::slice::from_raw_parts((*sb).datas, (*sb).n_datas as usize),
        )
    };
    let n = datas.len();
    if n < 2
        || n != bs.maps.len()
        || datas[n - 2].type_ != data_type::SYNC_OBJ
        || datas[n - 1].type_ != data_type::SYNC_OBJ
    {
        return;
    }
    // SAFETY: as above, the metas are valid while the buffer is dequeued.
    let m = unsafe { metas(sb) };
    let Some((_, release_point)) = buffer::sync_timeline(&m) else {
        return;
    };
    if let Some(fd) = bs.maps[n - 1].as_ref().ok().and_then(|m| m.raw_fd()) {
        c.releases.arm(b as usize, fd, release_point);
    }
}

/// Give a buffer back to the producer, signalling its release point first.
fn give_back(core: &Core, b: *mut pw::sys::pw_buffer) {
    let c = core.lock();
    c.release_point(b as usize);
    // A realtime stream's buffers can be removed (on the capture thread)
    // while the data thread holds one; such a buffer is PipeWire's again.
    if c.buffers.contains_key(&(b as usize)) {
        queue(c.raw, b);
    }
}

fn queue(raw: *mut pw::sys::pw_stream, b: *mut pw::sys::pw_buffer) {
    // SAFETY: `b` was dequeued from `raw` by us and is given back once.
    unsafe {
        pw::sys::pw_stream_queue_buffer(raw, b);
    }
}

fn on_process(core: &Core) {
    let (raw, shared) = {
        let c = core.lock();
        (c.raw, c.shared.clone())
    };
    // The capture is being destroyed (maybe from a callback of another
    // stream on this data thread): no callback runs any more; the
    // teardown returns the buffers.
    if shared
        .capture
        .upgrade()
        .is_none_or(|c| c.quit.load(Ordering::Acquire))
    {
        return;
    }
    // Take the newest buffer; older ones are superseded (their damage is
    // carried into the next frame).
    let mut newest: *mut pw::sys::pw_buffer = std::ptr::null_mut();
    loop {
        // SAFETY: dequeue from our own live stream on its loop thread.
        let b = unsafe { pw::sys::pw_stream_dequeue_buffer(raw) };
        if b.is_null() {
            break;
        }
        arm_release(&core.lock(), b);
        if !newest.is_null() {
            dropped_damage(&mut core.lock(), newest);
            give_back(core, newest);
            shared.count_drop(DropReason::Superseded);
        }
        newest = b;
    }
    if newest.is_null() {
        return;
    }
    let now = Instant::now();
    {
        let mut c = core.lock();
        c.last_frame = Some(now);
        if c.stalled {
            c.stalled = false;
            drop(c);
            shared.emit(Event::Resumed);
        }
    }
    if !shared.enabled.load(Ordering::Acquire) {
        give_back(core, newest);
        return;
    }
    if shared.held.load(Ordering::Acquire) >= shared.max_held {
        dropped_damage(&mut core.lock(), newest);
        give_back(core, newest);
        shared.count_drop(DropReason::HeldLimit);
        return;
    }
    let built = build_frame(&mut core.lock(), newest);
    let (data, mappings, generation, imported) = match built {
        Ok(v) => v,
        Err(Invalid(reason, message)) => {
            give_back(core, newest);
            shared.count_drop(reason);
            if reason == DropReason::ImportFailed {
                import_failed(core, message);
                return;
            }
            let mut c = core.lock();
            let due = c.bad_event_at[reason as usize]
                .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1));
            if due {
                c.bad_event_at[reason as usize] = Some(now);
                drop(c);
                shared.emit(Event::BadFrame { reason, message });
            }
            return;
        }
    };
    // The memory budget counts the producer memory callers hold.
    let bytes = frame_bytes(&data);
    let cap = shared.capture.upgrade();
    if let Some(cap) = &cap {
        let budget = cap.options.memory_budget;
        let now_held = cap.held_bytes.fetch_add(bytes, Ordering::AcqRel);
        if budget > 0 && now_held + bytes > budget {
            cap.held_bytes.fetch_sub(bytes, Ordering::AcqRel);
            dropped_damage(&mut core.lock(), newest);
            give_back(core, newest);
            shared.count_drop(DropReason::Budget);
            return;
        }
    }
    let bytes = if cap.is_some() { bytes } else { 0 };
    shared.note_held(1);
    let mut frame = Frame {
        inner: Arc::new(FrameInner {
            data,
            _mappings: mappings,
            _hold: Some(BufferHold {
                stream: shared.clone(),
                buffer: newest as usize,
                generation,
                bytes,
            }),
            imported,
            importer: core.lock().importer.clone(),
        }),
    };
    {
        let mut c = core.lock();
        c.fps_window.1 += 1;
    }
    shared.stats.lock().frames_delivered += 1;
    shared.deliver(&frame);
    // Fast path: nobody kept the frame, give the buffer back right here.
    if let Some(inner) = Arc::get_mut(&mut frame.inner) {
        if let Some(hold) = inner._hold.take() {
            let hold = std::mem::ManuallyDrop::new(hold);
            shared.note_held(-1);
            if let Some(cap) = &cap {
                cap.held_bytes.fetch_sub(hold.bytes, Ordering::AcqRel);
            }
            // SAFETY: reading the Arc out of a ManuallyDrop'd hold whose Drop
            // is skipped, so it is dropped exactly once (here).
            drop(unsafe { std::ptr::read(&hold.stream) });
            give_back(core, newest);
        }
    }
}

type Built = (FrameData, Vec<Arc<Mapping>>, u64, Option<Arc<Imported>>);

fn build_frame(
    c: &mut StreamCore,
    b: *mut pw::sys::pw_buffer,
) -> std::result::Result<Built, Invalid> {
    let Some(f) = c.format else {
        return Err(Invalid(
            DropReason::NoFormat,
            "no format negotiated yet".into(),
        ));
    };
    let importer = c.importer.clone();
    let Some(bs) = c.buffers.get_mut(&(b as usize)) else {
        return Err(Invalid(DropReason::Unmappable, "unknown buffer".into()));
    };
    // SAFETY: `b` is dequeued and live; its spa_buffer, datas, chunks and
    // metas stay valid until we queue it back. n_datas bounds datas.
    let (sb, datas) = unsafe {
        let sb = (*b).buffer;
        if sb.is_null() || (*sb).datas.is_null() {
            return Err(Invalid(
                DropReason::BadLayout,
                "buffer without datas".into(),
            ));
        }
        (
            sb,
            std::slice::from_raw_parts((*sb).datas, (*sb).n_datas as usize),
        )
    };
    if datas.len() != bs.maps.len() {
        return Err(Invalid(DropReason::BadLayout, "data count changed".into()));
    }
    let mut descs = Vec::with_capacity(datas.len());
    let mut chunk_flags = 0;
    for (i, d) in datas.iter().enumerate() {
        let chunk = if d.chunk.is_null() {
            ChunkDesc::default()
        } else {
            // SAFETY: chunk points into PipeWire's mapping of the buffer's
            // chunk area, valid while the buffer is dequeued.
            let ch = unsafe { *d.chunk };
            ChunkDesc {
                offset: ch.offset,
                size: ch.size,
                stride: ch.stride,
                flags: ch.flags,
            }
        };
        chunk_flags |= chunk.flags;
        let mapped_len = match &bs.maps[i] {
            Ok(m) => m.bytes().map(|(_, l)| l).unwrap_or(0),
            Err(e) => {
                return Err(Invalid(
                    DropReason::Unmappable,
                    format!("data {i} could not be mapped: {e}"),
                ))
            }
        };
        descs.push(DataDesc {
            data_type: d.type_,
            mapped_len,
            chunk,
        });
    }
    let mut mappings = Vec::new();
    // SAFETY: see above; metas are valid while the buffer is dequeued.
    let m = unsafe { metas(sb) };
    let parsed = buffer::parse_metas(&m, f.width, f.height);
    // Explicit sync: the last two datas are the acquire and release
    // timelines, the SyncTimeline meta has the points.
    let n = datas.len();
    let sync = match parsed.sync_timeline {
        Some((acquire_point, release_point))
            if n >= 2
                && datas[n - 2].type_ == data_type::SYNC_OBJ
                && datas[n - 1].type_ == data_type::SYNC_OBJ =>
        {
            let fd = |i: usize| match &bs.maps[i] {
                Ok(m) => m.raw_fd().map(|fd| (fd, m.clone())),
                Err(_) => None,
            };
            match (fd(n - 2), fd(n - 1)) {
                (Some((acquire_fd, am)), Some((release_fd, rm))) => {
                    mappings.push(am);
                    mappings.push(rm);
                    Some(SyncPoints {
                        acquire_fd,
                        acquire_point,
                        release_fd,
                        release_point,
                    })
                }
                _ => None,
            }
        }
        _ => None,
    };
    // The release point was armed when the buffer was dequeued
    // (`arm_release`).
    let pixels = if let Some(modifier) = f.modifier {
        let fds: Vec<i32> = bs
            .maps
            .iter()
            .map(|m| m.as_ref().ok().and_then(|m| m.raw_fd()).unwrap_or(-1))
            .collect();
        let spans = buffer::validate_dmabuf(f.format, &descs, &fds)?;
        let mut planes = Vec::with_capacity(spans.len());
        for (di, offset, stride) in spans {
            if let Ok(m) = &bs.maps[di] {
                mappings.push(m.clone());
            }
            planes.push(DmaPlane {
                fd: fds[di],
                offset,
                stride,
            });
        }
        if let (Some(imp), None) = (&importer, &bs.imported) {
            // SAFETY: the fds are our dups, kept open by `bs.maps` for the
            // duration of this borrow.
            let buf = unsafe { dmabuf_view(f.format, f.width, f.height, modifier, &planes) };
            match imp.import(&buf) {
                Ok(i) => bs.imported = Some(Arc::new(i)),
                Err(e) => {
                    return Err(Invalid(
                        DropReason::ImportFailed,
                        format!("{} modifier {:#x}: {e}", f.format, modifier),
                    ))
                }
            }
        }
        Pixels::Dmabuf { modifier, planes }
    } else {
        match buffer::validate_shm(f.format, f.width, f.height, &descs)? {
            ShmLayout::CursorOnly => Pixels::None,
            ShmLayout::Planes(spans) => {
                let mut planes = Vec::with_capacity(spans.len());
                for s in spans {
                    let Ok(m) = &bs.maps[s.data] else {
                        return Err(Invalid(DropReason::Unmappable, "unmapped data".into()));
                    };
                    let Some((base, len)) = m.bytes() else {
                        return Err(Invalid(
                            DropReason::BadLayout,
                            "plane without memory".into(),
                        ));
                    };
                    debug_assert!(s.offset + s.len <= len);
                    if !mappings.iter().any(|x| Arc::ptr_eq(x, m)) {
                        mappings.push(m.clone());
                    }
                    planes.push(Plane {
                        ptr: base.wrapping_add(s.offset),
                        len: s.len,
                        offset: s.offset,
                        stride: s.stride,
                    });
                }
                Pixels::Shm(planes)
            }
        }
    };
    let (generation, imported) = (bs.generation, bs.imported.clone());

    let mut fl = parsed.flags;
    if chunk_flags & (spa::sys::SPA_CHUNK_FLAG_CORRUPTED as i32) != 0 {
        fl |= flags::CORRUPTED;
    }
    if matches!(pixels, Pixels::None) {
        fl |= flags::CURSOR_ONLY;
    }
    let mut damage = match parsed.damage {
        Some(d) if !d.is_empty() => d,
        _ => {
            fl |= flags::FULL_DAMAGE;
            vec![Region::full(f.width, f.height)]
        }
    };
    // Frames lost before they reached us (PipeWire recycled them while we
    // were busy) carried damage we never saw: the picture may differ
    // anywhere, so this frame is fully damaged.
    if let Some((_, _, seq)) = parsed.header {
        let gap = c
            .last_header_seq
            .is_some_and(|last| seq > last.wrapping_add(1) && seq > last);
        c.last_header_seq = Some(seq);
        if gap && fl & flags::FULL_DAMAGE == 0 {
            fl |= flags::FULL_DAMAGE | flags::DAMAGE_ACCUMULATED;
            damage = vec![Region::full(f.width, f.height)];
            c.pending_damage = None;
        }
    }
    if let Some(mut acc) = c.pending_damage.take() {
        if fl & flags::FULL_DAMAGE == 0 {
            merge_damage(&mut acc, &damage, f.width, f.height);
            damage = acc;
            fl |= flags::DAMAGE_ACCUMULATED;
        }
    }
    if parsed.bad > 0 {
        c.shared.stats.lock().bad_metas += u64::from(parsed.bad);
    }
    c.seq += 1;
    let (pts, seq) = match parsed.header {
        Some((_, pts, seq)) => (pts, seq),
        None => (-1, c.seq - 1),
    };
    Ok((
        FrameData {
            stream_id: c.shared.id,
            sequence: seq,
            pts_ns: pts,
            received_ns: monotonic_ns(),
            format: f.format,
            width: f.width,
            height: f.height,
            matrix: f.matrix,
            range: f.range,
            pixels,
            damage,
            crop: parsed.crop,
            cursor: parsed.cursor,
            transform: parsed.transform,
            flags: fl,
            buffer_index: generation as u32,
            format_generation: c.format_generation,
            sync,
        },
        mappings,
        generation,
        imported,
    ))
}

/// An import failed: forget that (format, modifier), renegotiate without
/// it, and after too many failures (or with no modifier left) offer SHM
/// only. Bounded: each pair fails at most once, and the number of
/// renegotiations is at most `max_import_failures`.
fn import_failed(core: &Core, message: String) {
    let mut c = core.lock();
    let Some(f) = c.format else { return };
    let Some(modifier) = f.modifier else { return };
    if c.failed.contains(&(f.format, modifier)) || c.shm_only {
        return;
    }
    c.failed.push((f.format, modifier));
    let failed = c.failed.clone();
    for (fmt, mods) in c.offer.modifiers.iter_mut() {
        mods.retain(|m| !failed.contains(&(*fmt, *m)));
    }
    c.offer.modifiers.retain(|(_, m)| !m.is_empty());
    let fallback =
        c.failed.len() as u32 >= c.max_import_failures.max(1) || c.offer.modifiers.is_empty();
    if fallback {
        c.shm_only = true;
        c.offer.modifiers.clear();
    }
    c.format = None;
    let realtime = c.realtime;
    let shared = c.shared.clone();
    drop(c);
    shared.emit(Event::ImportFailed {
        format: f.format,
        modifier,
        message,
    });
    shared.emit(if fallback {
        Event::ShmFallback
    } else {
        Event::Renegotiating {
            format: f.format,
            modifier,
        }
    });
    if realtime && in_process() {
        // On PipeWire's data thread: update_params belongs to the capture
        // thread.
        if let Some(cap) = shared.capture.upgrade() {
            cap.send(crate::capture::Command::Renegotiate(shared.id));
        }
    } else {
        offer_again(core);
    }
}

/// Send the stream's current offer (EnumFormat params) again. Capture
/// thread only.
fn offer_again(core: &Core) {
    let (offer, raw, shared) = {
        let c = core.lock();
        (c.offer.clone(), c.raw, c.shared.clone())
    };
    let pods = negotiation::enum_formats(&offer);
    let mut params = negotiation::as_pods(&pods);
    // SAFETY: `raw` is this stream's live pw_stream (the core lives no
    // longer than its StreamEntry); params point into `pods`, alive here.
    // Called on the capture thread, without the core's lock.
    let r = unsafe {
        pw::sys::pw_stream_update_params(raw, params.as_mut_ptr().cast(), params.len() as u32)
    };
    if r < 0 {
        shared.emit(Event::Error {
            status: wrd_status::WRD_ERR_PIPEWIRE,
            message: format!("renegotiation failed: {r}"),
        });
    }
}

/// Producer memory a frame keeps held: its planes (SHM), or stride x
/// height per plane (DMA-BUF, an estimate: the size is the producer's).
fn frame_bytes(d: &FrameData) -> usize {
    match &d.pixels {
        Pixels::None => 0,
        Pixels::Shm(p) => p.iter().map(|p| p.len).sum(),
        Pixels::Dmabuf { planes, .. } => planes
            .iter()
            .map(|p| p.stride as usize * d.height as usize)
            .sum(),
    }
}

/// CLOCK_MONOTONIC in nanoseconds.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into our local timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub(crate) fn node_appeared(state: &Rc<LoopState>, id: u32) {
    let now = Instant::now();
    for e in state.streams.borrow().values() {
        let mut c = e.core.lock();
        if e.shared.node_id() == id && c.node_seen_at.is_none() {
            c.node_seen_at = Some(now);
        }
    }
}

pub(crate) fn node_removed(state: &Rc<LoopState>, id: u32) {
    let hit: Vec<Arc<StreamShared>> = state
        .streams
        .borrow()
        .values()
        .filter(|e| e.shared.node_id() == id)
        .map(|e| {
            e.core.lock().closed = true;
            e.shared.clone()
        })
        .collect();
    for s in hit {
        s.emit(Event::NodeGone);
        s.emit(Event::StateChanged(StreamState::Closed));
    }
}

/// The periodic checks. Returns true while some stream needs the fast tick:
/// it waits for its node or format, or has a stall timeout.
pub(crate) fn tick(state: &Rc<LoopState>, now: Instant) -> bool {
    let opts = &state.shared.options;
    let mut fast = false;
    let mut events: Vec<(Arc<StreamShared>, Vec<Event>)> = Vec::new();
    for e in state.streams.borrow().values() {
        let mut c = e.core.lock();
        fast |= !c.closed
            && ((!c.error_sent && (c.node_seen_at.is_none() || c.format.is_none()))
                || !c.stall_timeout.is_zero());
        let mut evs = Vec::new();
        let elapsed = now.duration_since(c.fps_window.0);
        if elapsed >= Duration::from_secs(1) {
            let fps = c.fps_window.1 as f64 / elapsed.as_secs_f64();
            c.fps_window = (now, 0);
            e.shared.stats.lock().fps = fps;
        }
        if !c.error_sent && !c.closed {
            match c.node_seen_at {
                None if now.duration_since(c.added_at) >= opts.node_timeout => {
                    c.error_sent = true;
                    evs.push(Event::Error {
                        status: wrd_status::WRD_ERR_NODE_NOT_FOUND,
                        message: format!("node {} does not exist", e.shared.node_id()),
                    });
                    evs.push(Event::StateChanged(StreamState::Error));
                }
                Some(seen)
                    if c.format.is_none()
                        && now.duration_since(seen) >= opts.negotiation_timeout =>
                {
                    c.error_sent = true;
                    evs.push(Event::Error {
                        status: wrd_status::WRD_ERR_NEGOTIATION,
                        message: format!(
                            "no format agreed with node {} within {} ms",
                            e.shared.node_id(),
                            opts.negotiation_timeout.as_millis()
                        ),
                    });
                    evs.push(Event::StateChanged(StreamState::Error));
                }
                _ => {}
            }
        }
        if !c.stall_timeout.is_zero() && !c.stalled && !c.closed {
            let since = c.last_frame.unwrap_or(c.added_at);
            if c.format.is_some() && now.duration_since(since) >= c.stall_timeout {
                c.stalled = true;
                evs.push(Event::Stalled);
            }
        }
        if !evs.is_empty() {
            events.push((e.shared.clone(), evs));
        }
    }
    for (s, evs) in events {
        for ev in evs {
            s.emit(ev);
        }
    }
    fast
}
