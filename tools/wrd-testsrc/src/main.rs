//! wrd-testsrc: a PipeWire screencast producer that behaves like a
//! compositor's, drawing the checkable picture of `wrd_testsrc::pattern`.
//!
//! Each stream is an output `pw_stream` (`media.class=Video/Source`) that
//! drives its graph from a timer and allocates its own MemFd buffers
//! (`PW_STREAM_FLAG_DRIVER | PW_STREAM_FLAG_ALLOC_BUFFERS`), one memfd per
//! plane, with Header, VideoDamage, VideoCrop and Cursor metadata.
//!
//! With `--modifiers` the buffers can be DMA-BUF (memfd-backed, see
//! `wrd_testsrc::dmabuf`), and with `--sync-timeline` they carry explicit
//! sync as PipeWire >= 1.2 compositors send it (`wrd_testsrc::sync_timeline`).
//!
//! stdout protocol: once every stream has a node id, one line per stream
//! `node <index> <node_id> <node_name>`, then `ready`. Logs go to stderr.
//! Exit status: 0 after `--frames` frames per stream or on SIGTERM/SIGINT,
//! 1 on a PipeWire error (e.g. the daemon went away), 2 on bad arguments,
//! 3 when `--sync-timeline` meets a PipeWire (library or daemon) older than
//! 1.2.

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use libspa::param::format::{MediaSubtype, MediaType};
use libspa::param::format_utils::parse_format;
use libspa::param::video::VideoInfoRaw;
use libspa::pod::{Pod, Property, PropertyFlags, Value};
use libspa_sys as spa_sys;
use pipewire as pw;
use pipewire_sys as pw_sys;
use pw::stream::{StreamFlags, StreamRef, StreamState};
use wrd_capture::{PixelFormat, PlaneLayout};
use wrd_testsrc::sync_timeline::{self as sync, SentFrame, SpaMetaSyncTimeline};
use wrd_testsrc::{dmabuf, pattern, spa};

mod evil;

const USAGE: &str = "\
usage: wrd-testsrc [options]
  --streams N         number of Video/Source nodes (default 1)
  --format F[,F...]   SPA format names, cycled over the streams (default BGRx):
                      BGRx BGRA RGBx RGBA RGB BGR NV12 I420 YUY2 GRAY8
  --size WxH          base frame size (default 320x240)
  --rate FPS          frames per second (default 30)
  --resize-every K    every K frames switch between the base size and 3/4 of it
                      (renegotiates the format; default 0 = never)
  --frames N          stop after N frames per stream, then exit 0
  --name PREFIX       node.name = PREFIX-<index> (default wrd-testsrc)
  --no-cursor         do not offer the Cursor meta
  --no-damage         do not offer the VideoDamage meta
  --one-block         all planes in one data block (default: one per plane)
  --repaint-damage    repaint only what changed since the frame a buffer holds
                      (same pictures, far less producer CPU for big frames)
  --stride-align N    align row strides to N bytes (power of two, default 4)
  --buffers N         preferred number of buffers (default 4)
  --modifiers M[,M..] offer DMA-BUF with these DRM modifiers (0xHEX, decimal,
                      linear, invalid) as a MANDATORY|DONT_FIXATE choice, then
                      SHM; fixate on the first one that can be allocated
  --alloc-modifiers M[,M..]  the modifiers that can be allocated (default: all)
  --dmabuf-only       with --modifiers: no SHM EnumFormat
  --shm-only          no modifiers, SHM only (the default)
  --sync-timeline     with --modifiers: explicit sync (PipeWire >= 1.2, else
                      exit 3): DMA-BUF buffers get the SyncTimeline meta and
                      2 SyncObj datas (memfds here); the plain layout stays
                      as a fallback; one `sync-timeline frame` line per frame
  --evil MODE[,MODE]  lie to consumers (see docs/testbench.md), modes:
                      offset-past-end offset-wrap stride-small stride-zero
                      size-small zero-size maxsize-gt-fd unmappable-fd
                      too-many-planes huge-dims zero-dims damage-outside
                      crop-outside cursor-oversized truncated-meta vanish=N
                      silent-after=N silent-for=MS format-storm
  --evil-every K      corrupt every K-th frame / buffer (default 2)
stdout: `node <index> <node_id> <node_name>` per stream, then `ready`.
exit: 0 done/signal, 1 PipeWire error, 2 bad arguments, 3 --sync-timeline
      on PipeWire < 1.2.";

/// The largest cursor bitmap the Cursor meta has room for.
const CURSOR_META_SIZE: usize = std::mem::size_of::<spa_sys::spa_meta_cursor>()
    + std::mem::size_of::<spa_sys::spa_meta_bitmap>()
    + (pattern::CURSOR_MAX_SIZE * pattern::CURSOR_MAX_SIZE * 4) as usize;
const MAX_DAMAGE_REGIONS: usize = 16;

#[derive(Clone, Debug)]
struct Args {
    streams: u32,
    formats: Vec<PixelFormat>,
    width: u32,
    height: u32,
    rate: u32,
    resize_every: u32,
    frames: Option<u64>,
    name: String,
    cursor: bool,
    damage: bool,
    one_block: bool,
    stride_align: usize,
    buffers: u32,
    dmabuf: dmabuf::DmabufConfig,
    evil: evil::Evil,
    repaint_damage: bool,
    /// `--sync-timeline`: explicit sync on DMA-BUF buffers.
    sync_timeline: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        streams: 1,
        formats: vec![PixelFormat::Bgrx],
        width: 320,
        height: 240,
        rate: 30,
        resize_every: 0,
        frames: None,
        name: "wrd-testsrc".into(),
        cursor: true,
        damage: true,
        one_block: false,
        stride_align: 4,
        buffers: 4,
        dmabuf: dmabuf::DmabufConfig::default(),
        evil: evil::Evil {
            modes: Vec::new(),
            every: 2,
        },
        repaint_damage: false,
        sync_timeline: false,
    };
    let mut shm_only = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (key, inline) = match arg.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        fn num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, String> {
            v.parse().map_err(|_| format!("{name}: bad number {v:?}"))
        }
        match key.as_str() {
            "--streams" => a.streams = num(&key, &value(&key)?)?,
            "--format" => {
                a.formats = value(&key)?
                    .split(',')
                    .map(|f| {
                        PixelFormat::from_name(f.trim())
                            .ok_or_else(|| format!("unknown format {f:?}"))
                    })
                    .collect::<Result<_, _>>()?
            }
            "--size" => {
                let v = value(&key)?;
                let (w, h) = v
                    .split_once(['x', 'X'])
                    .ok_or_else(|| format!("--size: expected WxH, got {v:?}"))?;
                a.width = num(&key, w)?;
                a.height = num(&key, h)?;
            }
            "--rate" => a.rate = num(&key, &value(&key)?)?,
            "--resize-every" => a.resize_every = num(&key, &value(&key)?)?,
            "--frames" => a.frames = Some(num(&key, &value(&key)?)?),
            "--name" => a.name = value(&key)?,
            "--no-cursor" => a.cursor = false,
            "--no-damage" => a.damage = false,
            "--one-block" => a.one_block = true,
            "--repaint-damage" => a.repaint_damage = true,
            "--stride-align" => a.stride_align = num(&key, &value(&key)?)?,
            "--buffers" => a.buffers = num(&key, &value(&key)?)?,
            "--modifiers" => a.dmabuf.modifiers = dmabuf::parse_modifier_list(&value(&key)?)?,
            "--alloc-modifiers" => {
                a.dmabuf.alloc = Some(dmabuf::parse_modifier_list(&value(&key)?)?)
            }
            "--dmabuf-only" => a.dmabuf.dmabuf_only = true,
            "--shm-only" => shm_only = true,
            "--sync-timeline" => a.sync_timeline = true,
            "--evil" => a.evil.modes.extend(evil::Evil::parse(&value(&key)?)?),
            "--evil-every" => a.evil.every = num(&key, &value(&key)?)?,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    if a.streams == 0 || a.formats.is_empty() {
        return Err("need at least one stream and one format".into());
    }
    if a.width == 0 || a.height == 0 || a.width > 16384 || a.height > 16384 {
        return Err("--size: width and height must be 1..=16384".into());
    }
    if a.rate == 0 || a.rate > 1000 {
        return Err("--rate must be 1..=1000".into());
    }
    if !a.stride_align.is_power_of_two() || a.stride_align > 4096 {
        return Err("--stride-align must be a power of two <= 4096".into());
    }
    if !(2..=16).contains(&a.buffers) {
        return Err("--buffers must be 2..=16".into());
    }
    if shm_only && (a.dmabuf.enabled() || a.dmabuf.dmabuf_only) {
        return Err("--shm-only excludes --modifiers and --dmabuf-only".into());
    }
    if !a.dmabuf.enabled() && (a.dmabuf.dmabuf_only || a.dmabuf.alloc.is_some()) {
        return Err("--dmabuf-only and --alloc-modifiers need --modifiers".into());
    }
    if a.dmabuf.enabled() && a.one_block {
        return Err("--one-block is for SHM only (DMA-BUF planes get one fd each)".into());
    }
    if a.sync_timeline && !a.dmabuf.enabled() {
        return Err("--sync-timeline needs --modifiers (explicit sync is for DMA-BUF)".into());
    }
    if a.evil.every == 0 {
        return Err("--evil-every must be at least 1".into());
    }
    if a.evil.has(evil::Mode::FormatStorm) {
        a.resize_every = 1;
    }
    Ok(a)
}

/// The format a stream negotiated, and where its planes go.
#[derive(Clone, Debug)]
struct Negotiated {
    width: u32,
    height: u32,
    planes: Vec<PlaneLayout>,
}

impl Negotiated {
    /// The data blocks of a buffer as (size, stride): one per plane, or with
    /// `one_block` a single block holding the planes at their packed offsets
    /// (its stride is plane 0's).
    fn blocks(&self, one_block: bool) -> Vec<(usize, usize)> {
        if one_block {
            let last = self.planes.last().expect("a plane");
            vec![(last.offset + last.stride * last.rows, self.planes[0].stride)]
        } else {
            self.planes
                .iter()
                .map(|p| (p.stride * p.rows, p.stride))
                .collect()
        }
    }
}

/// Whether the planes share one data block: asked for, or forced by a buffer
/// with fewer datas than planes.
fn one_block(args: &Args, n_datas: usize, neg: &Negotiated) -> bool {
    args.one_block || n_datas < neg.planes.len()
}

struct Ctx {
    index: u32,
    fmt: PixelFormat,
    args: Rc<Args>,
    node_name: String,
    neg: Option<Negotiated>,
    /// The next frame's sequence number.
    seq: u64,
    streaming: bool,
    /// A new EnumFormat went out; waiting for the Format that answers it.
    resize_pending: Option<(u32, u32)>,
    /// Size of the last frame sent into the current buffers (None, or a
    /// different size, means the next frame is fully damaged).
    last_size: Option<(u32, u32)>,
    /// Buffers with memory (frames wait for some).
    buffers: usize,
    /// Modifier negotiation (SHM only when no modifiers are offered).
    fixation: dmabuf::Fixation,
    /// The modifier of the current Format: buffers are DMA-BUF when set.
    modifier: Option<u64>,
    /// Buffers allocated so far (numbers them in the log).
    allocated: u64,
    /// Buffers added so far (`--evil` per-buffer lies count them).
    added: u64,
    /// `--evil vanish=N`: the stream is to be disconnected / was.
    vanish: Option<bool>,
    /// `--evil silent-after=N`: when the silence began.
    silent_since: Option<Instant>,
    /// `--repaint-damage`: the frame (seq, width, height) each buffer holds,
    /// by pw_buffer address; forgotten when the buffer is added or removed.
    painted: std::collections::HashMap<usize, (u64, u32, u32)>,
    /// `--sync-timeline`: the (acquire, release) timeline inodes of each
    /// buffer in the explicit-sync layout, by pw_buffer address.
    timelines: std::collections::HashMap<usize, (u64, u64)>,
}

impl Ctx {
    fn done(&self) -> bool {
        self.args.frames.is_some_and(|n| self.seq >= n)
    }

    /// True when the next frame can be produced at the negotiated size.
    /// `--evil silent-after=N [silent-for=MS]`: no frames now.
    fn silenced(&mut self) -> bool {
        let Some(n) = self.args.evil.silent_after() else {
            return false;
        };
        if self.seq < n {
            return false;
        }
        let since = *self.silent_since.get_or_insert_with(|| {
            eprintln!(
                "wrd-testsrc: stream {}: silent after {n} frames",
                self.index
            );
            Instant::now()
        });
        match self.args.evil.silent_for() {
            Some(d) => since.elapsed() < d,
            None => true,
        }
    }

    fn ready_for_frame(&self) -> bool {
        let want = pattern::size_at(
            self.args.width,
            self.args.height,
            self.args.resize_every,
            self.seq,
        );
        self.streaming
            && self.vanish.is_none()
            && !self.done()
            && self.buffers > 0
            && self
                .neg
                .as_ref()
                .is_some_and(|n| (n.width, n.height) == want)
    }
}

impl Ctx {
    /// The EnumFormats at `w`x`h`: SHM only, or the modifier offer (with
    /// the fixated one first) then SHM; see `wrd_testsrc::dmabuf`.
    fn enum_formats(&self, w: u32, h: u32) -> Vec<Vec<u8>> {
        self.fixation.enum_formats(self.fmt, w, h, self.args.rate)
    }
}

/// Buffers and Meta params for a negotiated format (DMA-BUF when `dmabuf`).
/// With `--sync-timeline` and DMA-BUF, the explicit-sync layout comes first
/// (2 more blocks, SyncObj data type, the SyncTimeline meta required), the
/// plain one after it for consumers without explicit sync.
fn buffer_params(args: &Args, neg: &Negotiated, dmabuf: bool) -> Vec<Vec<u8>> {
    let blocks = neg.blocks(args.one_block);
    let size = blocks.iter().map(|b| b.0).max().unwrap_or(0);
    let n_blocks = blocks.len() + args.evil.extra_blocks();
    let buffers = |n_blocks: usize, types: i32, meta_types: Option<i32>| {
        let mut props = vec![
            Property::new(
                spa_sys::SPA_PARAM_BUFFERS_buffers,
                spa::int_range(args.buffers as i32, 2, 16),
            ),
            Property::new(
                spa_sys::SPA_PARAM_BUFFERS_blocks,
                Value::Int(n_blocks as i32),
            ),
            Property::new(spa_sys::SPA_PARAM_BUFFERS_size, Value::Int(size as i32)),
            Property::new(
                spa_sys::SPA_PARAM_BUFFERS_stride,
                Value::Int(neg.planes[0].stride as i32),
            ),
            Property::new(spa_sys::SPA_PARAM_BUFFERS_dataType, spa::int_flags(types)),
        ];
        if let Some(m) = meta_types {
            // MANDATORY, as KWin sends it: a consumer that does not require
            // the meta (an old one) must not get this layout.
            props.push(Property {
                key: sync::SPA_PARAM_BUFFERS_META_TYPE,
                flags: PropertyFlags::MANDATORY,
                value: Value::Int(m),
            });
        }
        spa::object(
            spa_sys::SPA_TYPE_OBJECT_ParamBuffers,
            spa_sys::SPA_PARAM_Buffers,
            props,
        )
    };
    let explicit_sync = dmabuf && args.sync_timeline;
    let mut params = Vec::new();
    if explicit_sync {
        params.push(buffers(
            n_blocks + 2,
            (1 << spa_sys::SPA_DATA_DmaBuf) | (1 << sync::SPA_DATA_SYNC_OBJ),
            Some(1 << sync::SPA_META_SYNC_TIMELINE),
        ));
    }
    params.push(buffers(
        n_blocks,
        if dmabuf {
            1 << spa_sys::SPA_DATA_DmaBuf
        } else {
            1 << spa_sys::SPA_DATA_MemFd
        },
        None,
    ));
    if explicit_sync {
        params.push(spa::meta_param(
            sync::SPA_META_SYNC_TIMELINE,
            Value::Int(std::mem::size_of::<SpaMetaSyncTimeline>() as i32),
        ));
    }
    params.push(spa::meta_param(
        spa_sys::SPA_META_Header,
        Value::Int(std::mem::size_of::<spa_sys::spa_meta_header>() as i32),
    ));
    params.push(spa::meta_param(
        spa_sys::SPA_META_VideoCrop,
        Value::Int(std::mem::size_of::<spa_sys::spa_meta_region>() as i32),
    ));
    if args.damage {
        let r = std::mem::size_of::<spa_sys::spa_meta_region>() as i32;
        params.push(spa::meta_param(
            spa_sys::SPA_META_VideoDamage,
            spa::int_range(
                r * MAX_DAMAGE_REGIONS as i32,
                r,
                r * MAX_DAMAGE_REGIONS as i32,
            ),
        ));
    }
    if args.cursor {
        params.push(spa::meta_param(
            spa_sys::SPA_META_Cursor,
            Value::Int(CURSOR_META_SIZE as i32),
        ));
    }
    params
}

fn update_params(stream: &StreamRef, params: &[Vec<u8>]) {
    if let Err(e) = stream.update_params(&mut spa::pods(params)) {
        eprintln!("wrd-testsrc: update_params failed: {e}");
    }
}

fn on_param_changed(stream: &StreamRef, ctx: &Rc<RefCell<Ctx>>, id: u32, param: Option<&Pod>) {
    if id != spa_sys::SPA_PARAM_Format {
        return;
    }
    let mut c = ctx.borrow_mut();
    let Some(param) = param else {
        c.neg = None;
        return;
    };
    match parse_format(param) {
        Ok((MediaType::Video, MediaSubtype::Raw)) => {}
        _ => return,
    }
    let mut info = VideoInfoRaw::new();
    if info.parse(param).is_err() {
        eprintln!("wrd-testsrc: stream {}: unparsable format", c.index);
        return;
    }
    let size = info.size();
    if PixelFormat::from_spa(info.format()) != Some(c.fmt) {
        eprintln!(
            "wrd-testsrc: stream {}: negotiated {:?}, not {}",
            c.index,
            info.format(),
            c.fmt
        );
        return;
    }
    let Some((planes, _)) = c
        .fmt
        .packed_layout(size.width, size.height, c.args.stride_align)
    else {
        eprintln!("wrd-testsrc: stream {}: size overflows", c.index);
        return;
    };
    if c.resize_pending == Some((size.width, size.height)) {
        c.resize_pending = None;
    }
    let modifier = match dmabuf::format_modifier(param.as_bytes()) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("wrd-testsrc: stream {}: {e}", c.index);
            return;
        }
    };
    let action = c.fixation.on_format(&modifier);
    let dmabuf = match action {
        dmabuf::FormatAction::Announce { chosen } => {
            // Not fixated yet: no buffers for this Format; announce the
            // fixated EnumFormat (or the offer without what cannot be
            // allocated) and wait for the Format that answers it.
            match chosen {
                Some(m) => eprintln!(
                    "wrd-testsrc: stream {}: fixating modifier {} (candidates {})",
                    c.index,
                    dmabuf::modifier_name(m),
                    names(&modifier)
                ),
                None => eprintln!(
                    "wrd-testsrc: stream {}: cannot allocate any of {}; offering {:?}",
                    c.index,
                    names(&modifier),
                    c.fixation
                        .offered()
                        .iter()
                        .map(|m| dmabuf::modifier_name(*m))
                        .collect::<Vec<_>>()
                ),
            }
            c.neg = None;
            c.modifier = None;
            let params = c.enum_formats(size.width, size.height);
            drop(c);
            update_params(stream, &params);
            return;
        }
        dmabuf::FormatAction::Shm => None,
        dmabuf::FormatAction::Dmabuf(m) => Some(m),
    };
    eprintln!(
        "wrd-testsrc: stream {} ({}): format {} {}x{} strides {:?} {}",
        c.index,
        c.node_name,
        c.fmt,
        size.width,
        size.height,
        planes.iter().map(|p| p.stride).collect::<Vec<_>>(),
        match dmabuf {
            Some(m) => format!("dmabuf modifier {}", dmabuf::modifier_name(m)),
            None => "shm".to_string(),
        }
    );
    let neg = Negotiated {
        width: size.width,
        height: size.height,
        planes,
    };
    let params = buffer_params(&c.args, &neg, dmabuf.is_some());
    c.neg = Some(neg);
    c.modifier = dmabuf;
    drop(c);
    update_params(stream, &params);
}

/// The candidates of a Format's modifier, for logs.
fn names(m: &dmabuf::FormatModifier) -> String {
    match m {
        dmabuf::FormatModifier::Shm => "none".into(),
        dmabuf::FormatModifier::Fixed(m) => dmabuf::modifier_name(*m),
        dmabuf::FormatModifier::Choice(v) => format!(
            "[{}]",
            v.iter()
                .map(|m| dmabuf::modifier_name(*m))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

fn on_add_buffer(ctx: &Rc<RefCell<Ctx>>, buffer: *mut pw_sys::pw_buffer) {
    let mut c = ctx.borrow_mut();
    c.painted.remove(&(buffer as usize));
    let Some(neg) = c.neg.clone() else {
        eprintln!("wrd-testsrc: add_buffer without a format");
        return;
    };
    // SAFETY: PipeWire hands us a valid pw_buffer whose spa_buffer and datas
    // array (n_datas entries) live until remove_buffer; we are on the loop
    // thread, nothing else touches them now.
    let datas = unsafe {
        let buf = (*buffer).buffer;
        std::slice::from_raw_parts_mut((*buf).datas, (*buf).n_datas as usize)
    };
    let mut blocks = neg.blocks(one_block(&c.args, datas.len(), &neg));
    for _ in 0..c.args.evil.extra_blocks() {
        blocks.push(blocks[0]);
    }
    let lie = evil::lying_fd(&c.args.evil, c.added);
    c.added += 1;
    // DMA-BUF buffers are memfds too (no GPU here), typed DmaBuf, holding
    // the picture in LINEAR layout whatever the modifier.
    let (data_type, flags) = match c.modifier {
        Some(_) => (spa_sys::SPA_DATA_DmaBuf, spa_sys::SPA_DATA_FLAG_READABLE),
        None => (spa_sys::SPA_DATA_MemFd, spa_sys::SPA_DATA_FLAG_READWRITE),
    };
    let mut fds = Vec::new();
    for (i, (d, &(size, _))) in datas.iter_mut().zip(&blocks).enumerate() {
        if d.type_ & (1 << data_type) == 0 {
            eprintln!(
                "wrd-testsrc: data types {:#x} exclude {}",
                d.type_,
                if c.modifier.is_some() {
                    "DmaBuf"
                } else {
                    "MemFd"
                }
            );
            return;
        }
        // SAFETY: memfd_create with a NUL-terminated name; we own the new fd.
        let fd = unsafe {
            libc::memfd_create(
                c"wrd-testsrc".as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
            )
        };
        if fd < 0 {
            eprintln!(
                "wrd-testsrc: memfd_create: {}",
                std::io::Error::last_os_error()
            );
            return;
        }
        // SAFETY: fd is our memfd; ftruncate/fcntl/mmap only act on it.
        let ptr = unsafe {
            if libc::ftruncate(fd, size as libc::off_t) < 0 {
                eprintln!(
                    "wrd-testsrc: ftruncate: {}",
                    std::io::Error::last_os_error()
                );
                libc::close(fd);
                return;
            }
            libc::fcntl(
                fd,
                libc::F_ADD_SEALS,
                libc::F_SEAL_GROW | libc::F_SEAL_SHRINK | libc::F_SEAL_SEAL,
            );
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            eprintln!("wrd-testsrc: mmap: {}", std::io::Error::last_os_error());
            // SAFETY: fd is ours and not handed out yet.
            unsafe { libc::close(fd) };
            return;
        }
        // --evil maxsize-gt-fd / unmappable-fd: consumers get another fd for
        // data 0; our mapping of the real memfd stays (the mapping outlives
        // the fd, which is closed here).
        let fd = match lie {
            Some(other) if i == 0 => {
                eprintln!(
                    "wrd-testsrc: evil: buffer {} lies about its fd",
                    c.added - 1
                );
                // SAFETY: closing our own memfd; `ptr` keeps its pages.
                unsafe { libc::close(fd) };
                other
            }
            _ => fd,
        };
        d.type_ = data_type;
        d.flags = flags;
        d.fd = fd as i64;
        fds.push(fd);
        d.mapoffset = 0;
        d.maxsize = size as u32;
        d.data = ptr;
    }
    // --sync-timeline: the explicit-sync layout has two more datas, the
    // acquire and the release timeline.
    let sync_layout = c.args.sync_timeline && c.modifier.is_some();
    let n_blocks = blocks.len();
    if sync_layout && datas.len() == n_blocks + 2 {
        match add_timelines(&mut datas[n_blocks..]) {
            Ok(inos) => {
                eprintln!(
                    "wrd-testsrc: stream {}: buffer {} explicit sync: acquire timeline ino {}, \
                     release timeline ino {}",
                    c.index,
                    c.allocated + 1,
                    inos.0,
                    inos.1
                );
                c.timelines.insert(buffer as usize, inos);
            }
            Err(e) => {
                eprintln!("wrd-testsrc: stream {}: {e}", c.index);
                return;
            }
        }
    } else if sync_layout {
        eprintln!(
            "wrd-testsrc: stream {}: buffer {} without explicit sync: the consumer took the \
             plain DMA-BUF layout ({} datas)",
            c.index,
            c.allocated + 1,
            datas.len()
        );
    }
    c.buffers += 1;
    c.allocated += 1;
    if let Some(m) = c.modifier {
        eprintln!(
            "wrd-testsrc: stream {}: buffer {} dmabuf modifier {} fds {:?}",
            c.index,
            c.allocated,
            dmabuf::modifier_name(m),
            fds
        );
    }
    // New buffers (a new link or format): the consumer has no earlier frame
    // to apply damage to, so the next frame is fully damaged.
    c.last_size = None;
}

/// Make the two SyncObj datas of a buffer in the explicit-sync layout
/// (acquire, release): a memfd each, standing in for the DRM timeline
/// syncobjs there is no device for. Returns their inodes.
fn add_timelines(datas: &mut [spa_sys::spa_data]) -> Result<(u64, u64), String> {
    let mut inos = [0u64; 2];
    for (i, d) in datas.iter_mut().enumerate() {
        if d.type_ & (1 << sync::SPA_DATA_SYNC_OBJ) == 0 {
            return Err(format!(
                "explicit-sync layout whose data types {:#x} exclude SyncObj",
                d.type_
            ));
        }
        let name = [c"wrd-testsrc-acquire", c"wrd-testsrc-release"][i];
        // SAFETY: memfd_create with a NUL-terminated name; we own the new fd.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(format!("memfd_create: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: `fd` was just created and stays open (closed in
        // remove_buffer).
        inos[i] = sync::fd_ino(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) })
            .map_err(|e| format!("fstat: {e}"))?;
        d.type_ = sync::SPA_DATA_SYNC_OBJ;
        d.flags = spa_sys::SPA_DATA_FLAG_READWRITE;
        d.fd = fd as i64;
        d.mapoffset = 0;
        d.maxsize = 0;
        d.data = std::ptr::null_mut();
    }
    Ok((inos[0], inos[1]))
}

fn on_remove_buffer(ctx: &Rc<RefCell<Ctx>>, buffer: *mut pw_sys::pw_buffer) {
    ctx.borrow_mut().painted.remove(&(buffer as usize));
    ctx.borrow_mut().timelines.remove(&(buffer as usize));
    // SAFETY: as in add_buffer; the buffer is valid until we return.
    let datas = unsafe {
        let buf = (*buffer).buffer;
        std::slice::from_raw_parts_mut((*buf).datas, (*buf).n_datas as usize)
    };
    for d in datas {
        if d.type_ == sync::SPA_DATA_SYNC_OBJ && d.fd >= 0 {
            // SAFETY: a timeline memfd of ours (add_timelines), unused now.
            unsafe { libc::close(d.fd as i32) };
            d.fd = -1;
            continue;
        }
        let ours = d.type_ == spa_sys::SPA_DATA_MemFd || d.type_ == spa_sys::SPA_DATA_DmaBuf;
        if ours && !d.data.is_null() && d.fd >= 0 {
            // SAFETY: data/maxsize/fd are the mapping and memfd we made in
            // add_buffer; nothing uses them after this.
            unsafe {
                libc::munmap(d.data, d.maxsize as usize);
                libc::close(d.fd as i32);
            }
            d.data = std::ptr::null_mut();
            d.fd = -1;
        }
    }
    let mut c = ctx.borrow_mut();
    c.buffers = c.buffers.saturating_sub(1);
}

fn monotonic_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

fn on_process(stream: &StreamRef, ctx: &Rc<RefCell<Ctx>>) {
    let mut c = ctx.borrow_mut();
    if !c.ready_for_frame() {
        return;
    }
    // SAFETY: plain dequeue; a non-null result is ours until queued below.
    let b = unsafe { stream.dequeue_raw_buffer() };
    if b.is_null() {
        eprintln!("wrd-testsrc: stream {}: out of buffers", c.index);
        return;
    }
    let neg = c.neg.clone().expect("checked by ready_for_frame");
    let (w, h, seq, fmt) = (neg.width, neg.height, c.seq, c.fmt);
    // SAFETY: b is a dequeued pw_buffer; its spa_buffer, datas and metas are
    // valid and not used by PipeWire until we queue it.
    let buf = unsafe { (*b).buffer };
    // SAFETY: as above.
    let datas = unsafe { std::slice::from_raw_parts_mut((*buf).datas, (*buf).n_datas as usize) };
    let one_block = one_block(&c.args, datas.len(), &neg);
    let blocks = neg.blocks(one_block);
    if blocks
        .iter()
        .zip(datas.iter())
        .any(|(&(size, _), d)| d.data.is_null() || (d.maxsize as usize) < size)
    {
        eprintln!(
            "wrd-testsrc: stream {}: buffer without enough memory",
            c.index
        );
        // SAFETY: giving back the buffer we dequeued.
        unsafe { stream.queue_raw_buffer(b) };
        return;
    }

    // The picture.
    {
        let mut planes: Vec<&mut [u8]> = if one_block {
            // SAFETY: data 0 maps at least blocks[0].0 bytes (checked above),
            // exclusively ours while dequeued.
            let block =
                unsafe { std::slice::from_raw_parts_mut(datas[0].data as *mut u8, blocks[0].0) };
            pattern::split_planes(block, &neg.planes)
        } else {
            datas
                .iter()
                .zip(&blocks)
                // SAFETY: each data maps at least its block's size (checked
                // above), exclusively ours while dequeued; distinct datas
                // are distinct mappings.
                .map(|(d, &(size, _))| unsafe {
                    std::slice::from_raw_parts_mut(d.data as *mut u8, size)
                })
                .collect()
        };
        let strides: Vec<usize> = neg.planes.iter().map(|l| l.stride).collect();
        match c.painted.get(&(b as usize)) {
            Some(&(since, pw, ph)) if c.args.repaint_damage && (pw, ph) == (w, h) => {
                pattern::fill_update(fmt, w, h, since, seq, c.index, &mut planes, &strides)
            }
            _ => pattern::fill(fmt, w, h, seq, c.index, &mut planes, &strides),
        }
    }
    for (d, &(size, stride)) in datas.iter().zip(&blocks) {
        // SAFETY: chunk points into the buffer's shared header, ours while
        // dequeued.
        unsafe {
            let chunk = d.chunk;
            (*chunk).offset = 0;
            (*chunk).size = size as u32;
            (*chunk).stride = stride as i32;
            (*chunk).flags = 0;
        }
    }

    // SAFETY (all metadata writes below): find_meta returns the meta's data
    // pointer with at least the size asked for; the metadata is ours while
    // the buffer is dequeued.
    unsafe {
        if let Some((m, _)) = spa::find_meta(
            buf,
            spa_sys::SPA_META_Header,
            std::mem::size_of::<spa_sys::spa_meta_header>(),
        ) {
            let hdr = m as *mut spa_sys::spa_meta_header;
            (*hdr).flags = 0;
            (*hdr).offset = 0;
            (*hdr).pts = monotonic_ns();
            (*hdr).dts_offset = 0;
            (*hdr).seq = seq;
        }
        if let Some((m, _)) = spa::find_meta(
            buf,
            spa_sys::SPA_META_VideoCrop,
            std::mem::size_of::<spa_sys::spa_meta_region>(),
        ) {
            let r = m as *mut spa_sys::spa_meta_region;
            (*r).region = region(0, 0, w, h);
        }
        let rsize = std::mem::size_of::<spa_sys::spa_meta_region>();
        if let Some((m, size)) = spa::find_meta(buf, spa_sys::SPA_META_VideoDamage, rsize) {
            let slots =
                std::slice::from_raw_parts_mut(m as *mut spa_sys::spa_meta_region, size / rsize);
            let rects = if c.last_size != Some((w, h)) {
                vec![pattern::Rect { x: 0, y: 0, w, h }]
            } else {
                pattern::damage(fmt, w, h, seq)
            };
            write_damage(slots, &rects);
        }
        if let Some((m, size)) = spa::find_meta(
            buf,
            spa_sys::SPA_META_Cursor,
            std::mem::size_of::<spa_sys::spa_meta_cursor>(),
        ) {
            write_cursor(m as *mut spa_sys::spa_meta_cursor, size, seq);
        }
    }
    // --sync-timeline: the frame's points, for buffers in the explicit-sync
    // layout.
    if let Some(&(acquire_ino, release_ino)) = c.timelines.get(&(b as usize)) {
        let (acquire_point, release_point) = sync::points(seq);
        // SAFETY: as for the metas above; the SyncTimeline meta is 24 bytes
        // (asked for in buffer_params) and 8-aligned like every meta.
        let meta = unsafe {
            spa::find_meta(
                buf,
                sync::SPA_META_SYNC_TIMELINE,
                std::mem::size_of::<SpaMetaSyncTimeline>(),
            )
        };
        match meta {
            Some((m, _)) => {
                // SAFETY: see above.
                unsafe {
                    m.cast::<SpaMetaSyncTimeline>().write(SpaMetaSyncTimeline {
                        flags: 0,
                        padding: 0,
                        acquire_point,
                        release_point,
                    })
                };
                let sent = SentFrame {
                    stream: c.index,
                    seq,
                    acquire_point,
                    acquire_ino,
                    release_point,
                    release_ino,
                };
                eprintln!("wrd-testsrc: {}", sync::log_line(&sent));
            }
            None => eprintln!(
                "wrd-testsrc: stream {}: frame {seq}: explicit-sync buffer without a \
                 SyncTimeline meta",
                c.index
            ),
        }
        // The timelines carry no bytes.
        for d in &datas[blocks.len()..] {
            if d.type_ == sync::SPA_DATA_SYNC_OBJ && !d.chunk.is_null() {
                // SAFETY: chunk points into the buffer's shared header, ours
                // while dequeued.
                unsafe {
                    (*d.chunk).offset = 0;
                    (*d.chunk).size = 0;
                    (*d.chunk).stride = 0;
                    (*d.chunk).flags = 0;
                }
            }
        }
    }
    // SAFETY: `buf` is dequeued and ours until queued below.
    unsafe { evil::corrupt_frame(&c.args.evil, buf, seq, (w, h), neg.planes[0].row_bytes) };
    c.last_size = Some((w, h));
    c.painted.insert(b as usize, (seq, w, h));
    c.seq += 1;
    if c.args.evil.vanish_after() == Some(c.seq) {
        eprintln!(
            "wrd-testsrc: stream {}: evil: vanishing after {} frames",
            c.index, c.seq
        );
        c.vanish = Some(false);
    }
    let done = c.done();
    let index = c.index;
    drop(c);
    // SAFETY: queueing the buffer we dequeued above.
    unsafe { stream.queue_raw_buffer(b) };
    if done {
        eprintln!(
            "wrd-testsrc: stream {index}: sent all {seq_plus} frames",
            seq_plus = seq + 1
        );
    }
}

fn region(x: i32, y: i32, w: u32, h: u32) -> spa_sys::spa_region {
    spa_sys::spa_region {
        position: spa_sys::spa_point { x, y },
        size: spa_sys::spa_rectangle {
            width: w,
            height: h,
        },
    }
}

/// Write `rects` into the damage slots; when they do not fit, their bounding
/// box. A zero-sized region ends the list when slots are left.
fn write_damage(slots: &mut [spa_sys::spa_meta_region], rects: &[pattern::Rect]) {
    if slots.is_empty() {
        return;
    }
    let mut list: Vec<pattern::Rect> = rects.to_vec();
    if list.len() > slots.len() {
        let x0 = list.iter().map(|r| r.x).min().unwrap_or(0);
        let y0 = list.iter().map(|r| r.y).min().unwrap_or(0);
        let x1 = list.iter().map(|r| r.x + r.w as i32).max().unwrap_or(0);
        let y1 = list.iter().map(|r| r.y + r.h as i32).max().unwrap_or(0);
        list = vec![pattern::Rect {
            x: x0,
            y: y0,
            w: (x1 - x0) as u32,
            h: (y1 - y0) as u32,
        }];
    }
    for (i, slot) in slots.iter_mut().enumerate() {
        slot.region = match list.get(i) {
            Some(r) => region(r.x, r.y, r.w, r.h),
            None => region(0, 0, 0, 0),
        };
    }
}

/// # Safety
/// `mc` must point to `size` writable bytes of Cursor metadata.
unsafe fn write_cursor(mc: *mut spa_sys::spa_meta_cursor, size: usize, seq: u64) {
    let cur = pattern::cursor(seq);
    (*mc).id = cur.id;
    (*mc).flags = 0;
    (*mc).position = spa_sys::spa_point { x: cur.x, y: cur.y };
    (*mc).hotspot = spa_sys::spa_point {
        x: cur.hot_x,
        y: cur.hot_y,
    };
    let head = std::mem::size_of::<spa_sys::spa_meta_cursor>();
    let bhead = std::mem::size_of::<spa_sys::spa_meta_bitmap>();
    let bytes = cur.pixels.len();
    if pattern::cursor_bitmap_changed(seq) && size >= head + bhead + bytes {
        (*mc).bitmap_offset = head as u32;
        let mb = (mc as *mut u8).add(head) as *mut spa_sys::spa_meta_bitmap;
        (*mb).format = pattern::CURSOR_FORMAT.to_spa().as_raw();
        (*mb).size = spa_sys::spa_rectangle {
            width: cur.w,
            height: cur.h,
        };
        (*mb).stride = (cur.w * 4) as i32;
        (*mb).offset = bhead as u32;
        std::ptr::copy_nonoverlapping(cur.pixels.as_ptr(), (mb as *mut u8).add(bhead), bytes);
    } else {
        (*mc).bitmap_offset = 0;
    }
}

struct StreamSlot {
    stream: pw::stream::Stream,
    _listener: pw::stream::StreamListener<Rc<RefCell<Ctx>>>,
    ctx: Rc<RefCell<Ctx>>,
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => Rc::new(a),
        Err(e) => {
            eprintln!("wrd-testsrc: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("wrd-testsrc: {}", f.message);
            ExitCode::from(f.status)
        }
    }
}

/// Why `run` failed, and the exit status that says so.
struct Failure {
    status: u8,
    message: String,
}

impl From<String> for Failure {
    /// A PipeWire error: exit status 1.
    fn from(message: String) -> Failure {
        Failure { status: 1, message }
    }
}

/// `--sync-timeline`: refuse (exit status 3) unless the client library and
/// the daemon are >= 1.2. The daemon's version comes with the core's info
/// event; a core sync bounds the wait for it.
fn check_sync_versions(
    mainloop: &pw::main_loop::MainLoop,
    core: &pw::core::Core,
) -> Result<(), Failure> {
    // SAFETY: pw_get_library_version returns a static NUL-terminated string.
    let library = unsafe { std::ffi::CStr::from_ptr(pw_sys::pw_get_library_version()) }
        .to_string_lossy()
        .into_owned();
    let daemon = Rc::new(RefCell::new(String::new()));
    let synced = Rc::new(Cell::new(false));
    let pending = core.sync(0).map_err(|e| format!("core sync: {e}"))?;
    let _listener = core
        .add_listener_local()
        .info({
            let daemon = daemon.clone();
            move |info| *daemon.borrow_mut() = info.version().to_string()
        })
        .done({
            let synced = synced.clone();
            let mainloop = mainloop.downgrade();
            move |id, seq| {
                if id == pw::core::PW_ID_CORE && seq == pending {
                    synced.set(true);
                    if let Some(l) = mainloop.upgrade() {
                        l.quit();
                    }
                }
            }
        })
        .register();
    let timer = mainloop.loop_().add_timer({
        let mainloop = mainloop.downgrade();
        move |_| {
            if let Some(l) = mainloop.upgrade() {
                l.quit();
            }
        }
    });
    timer
        .update_timer(Some(Duration::from_secs(5)), None)
        .into_result()
        .map_err(|e| format!("timer: {e}"))?;
    mainloop.run();
    if !synced.get() {
        return Err("no answer from the PipeWire daemon within 5 s"
            .to_string()
            .into());
    }
    let daemon = daemon.borrow().clone();
    sync::supported(&library, &daemon).map_err(|message| Failure {
        status: sync::EXIT_UNSUPPORTED,
        message,
    })?;
    eprintln!("wrd-testsrc: explicit sync: client library {library}, daemon {daemon}");
    Ok(())
}

/// Block SIGINT and SIGTERM in every thread (PipeWire's threads inherit the
/// mask), so that they reach the main loop's signalfd instead of killing us.
fn block_exit_signals() {
    // SAFETY: plain libc calls on a local sigset_t.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

fn run(args: Rc<Args>) -> Result<(), Failure> {
    block_exit_signals();
    pw::init();
    let mainloop = pw::main_loop::MainLoop::new(None).map_err(|e| format!("main loop: {e}"))?;
    let context = pw::context::Context::new(&mainloop).map_err(|e| format!("context: {e}"))?;
    let core = context
        .connect(None)
        .map_err(|e| format!("cannot connect to PipeWire: {e}"))?;

    let failed = Rc::new(Cell::new(None::<String>));
    let _core_listener = core
        .add_listener_local()
        .error({
            let mainloop = mainloop.downgrade();
            let failed = failed.clone();
            move |id, _seq, res, msg| {
                eprintln!("wrd-testsrc: core error on {id}: {res} {msg}");
                if id == pw::core::PW_ID_CORE {
                    failed.set(Some(format!("PipeWire connection failed: {msg}")));
                    if let Some(l) = mainloop.upgrade() {
                        l.quit();
                    }
                }
            }
        })
        .register();
    if args.sync_timeline {
        let checked = check_sync_versions(&mainloop, &core);
        if let Some(e) = failed.take() {
            return Err(e.into());
        }
        checked?;
    }

    let quit: Rc<dyn Fn()> = {
        let mainloop = mainloop.downgrade();
        Rc::new(move || {
            if let Some(l) = mainloop.upgrade() {
                l.quit();
            }
        })
    };
    let _sigint = mainloop
        .loop_()
        .add_signal_local(pw::loop_::Signal::SIGINT, {
            let quit = quit.clone();
            move || quit()
        });
    let _sigterm = mainloop
        .loop_()
        .add_signal_local(pw::loop_::Signal::SIGTERM, {
            let quit = quit.clone();
            move || quit()
        });

    let mut slots = Vec::new();
    for index in 0..args.streams {
        let fmt = args.formats[index as usize % args.formats.len()];
        let node_name = format!("{}-{}", args.name, index);
        let props = pw::properties::properties! {
            *pw::keys::MEDIA_CLASS => "Video/Source",
            *pw::keys::MEDIA_TYPE => "Video",
            *pw::keys::MEDIA_ROLE => "Screen",
            *pw::keys::NODE_NAME => node_name.as_str(),
            *pw::keys::NODE_DESCRIPTION => format!("wrd-testsrc stream {index} ({fmt})"),
        };
        let stream = pw::stream::Stream::new(&core, &node_name, props)
            .map_err(|e| format!("stream {index}: {e}"))?;
        let ctx = Rc::new(RefCell::new(Ctx {
            index,
            fmt,
            args: args.clone(),
            node_name: node_name.clone(),
            neg: None,
            seq: 0,
            streaming: false,
            resize_pending: None,
            last_size: None,
            buffers: 0,
            fixation: dmabuf::Fixation::new(args.dmabuf.clone()),
            modifier: None,
            allocated: 0,
            added: 0,
            vanish: None,
            silent_since: None,
            painted: Default::default(),
            timelines: Default::default(),
        }));
        let listener = stream
            .add_local_listener_with_user_data(ctx.clone())
            .state_changed({
                let failed = failed.clone();
                let quit = quit.clone();
                move |_, ctx, old, new| {
                    let mut c = ctx.borrow_mut();
                    eprintln!(
                        "wrd-testsrc: stream {} ({}): {old:?} -> {new:?}",
                        c.index, c.node_name
                    );
                    c.streaming = new == StreamState::Streaming;
                    if let StreamState::Error(e) = new {
                        failed.set(Some(format!("stream {} failed: {e}", c.index)));
                        quit();
                    }
                }
            })
            .param_changed(|stream, ctx, id, param| on_param_changed(stream, ctx, id, param))
            .add_buffer(|_, ctx, b| on_add_buffer(ctx, b))
            .remove_buffer(|_, ctx, b| on_remove_buffer(ctx, b))
            .process(|stream, ctx| on_process(stream, ctx))
            .register()
            .map_err(|e| format!("stream {index}: listener: {e}"))?;
        let (w, h) = pattern::size_at(args.width, args.height, args.resize_every, 0);
        let (w, h) = args.evil.announced_size().unwrap_or((w, h));
        let fmt_pods = ctx.borrow().enum_formats(w, h);
        let mut params = spa::pods(&fmt_pods);
        stream
            .connect(
                libspa::utils::Direction::Output,
                None,
                StreamFlags::DRIVER | StreamFlags::ALLOC_BUFFERS,
                &mut params,
            )
            .map_err(|e| format!("stream {index}: connect: {e}"))?;
        slots.push(StreamSlot {
            stream,
            _listener: listener,
            ctx,
        });
    }
    let slots = Rc::new(slots);

    // Announce the nodes once all have ids (they get them on registration).
    let announced = Rc::new(Cell::new(false));
    let announce = {
        let slots = slots.clone();
        let announced = announced.clone();
        move || {
            if announced.get() {
                return;
            }
            let ids: Vec<u32> = slots.iter().map(|s| s.stream.node_id()).collect();
            if ids.iter().any(|&id| id == pw::constants::ID_ANY || id == 0) {
                return;
            }
            let mut out = std::io::stdout().lock();
            for (s, id) in slots.iter().zip(ids) {
                let c = s.ctx.borrow();
                let _ = writeln!(out, "node {} {} {}", c.index, id, c.node_name);
            }
            let _ = writeln!(out, "ready");
            let _ = out.flush();
            announced.set(true);
        }
    };

    // The frame clock: trigger every stream that can take a frame, and ask
    // for a new format when the next frame has another size.
    let timer = mainloop.loop_().add_timer({
        let slots = slots.clone();
        let quit = quit.clone();
        let args = args.clone();
        let ticks = Cell::new(0u64);
        let finished_at = Cell::new(None::<u64>);
        move |_| {
            let tick = ticks.get() + 1;
            ticks.set(tick);
            announce();
            let mut all_done = true;
            for s in slots.iter() {
                // Decide under the borrow; act (which may call back into
                // the stream's listener) without it.
                if s.ctx.borrow().vanish == Some(false) {
                    s.ctx.borrow_mut().vanish = Some(true);
                    all_done = false;
                    if let Err(e) = s.stream.disconnect() {
                        eprintln!("wrd-testsrc: disconnect: {e}");
                    }
                    continue;
                }
                let resize = {
                    let mut c = s.ctx.borrow_mut();
                    all_done &= c.done();
                    if c.silenced() {
                        continue;
                    }
                    let want = pattern::size_at(args.width, args.height, args.resize_every, c.seq);
                    let have = c.neg.as_ref().map(|n| (n.width, n.height));
                    if !c.streaming || c.done() || c.resize_pending == Some(want) {
                        continue;
                    }
                    if have.is_some() && have != Some(want) {
                        eprintln!(
                            "wrd-testsrc: stream {}: resizing to {}x{}",
                            c.index, want.0, want.1
                        );
                        c.resize_pending = Some(want);
                        // A new size is a new allocation: fixate anew.
                        c.fixation.reset();
                        Some(c.enum_formats(want.0, want.1))
                    } else if c.ready_for_frame() {
                        None
                    } else {
                        continue;
                    }
                };
                match resize {
                    Some(pods) => update_params(&s.stream, &pods),
                    None => {
                        if let Err(e) = s.stream.trigger_process() {
                            eprintln!("wrd-testsrc: trigger_process: {e}");
                        }
                    }
                }
            }
            // After the last frame, give consumers a moment to take it.
            if all_done {
                match finished_at.get() {
                    None => finished_at.set(Some(tick)),
                    Some(t) if tick >= t + (args.rate as u64 / 5).max(2) => quit(),
                    Some(_) => {}
                }
            }
        }
    });
    let period = Duration::from_nanos(1_000_000_000 / args.rate as u64);
    timer
        .update_timer(Some(Duration::from_millis(1)), Some(period))
        .into_result()
        .map_err(|e| format!("timer: {e}"))?;

    mainloop.run();

    for s in slots.iter() {
        let _ = s.stream.disconnect();
    }
    match failed.take() {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
