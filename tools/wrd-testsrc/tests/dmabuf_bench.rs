//! wrd-testsrc's DMA-BUF modes against a real (sandboxed) PipeWire and a
//! native pipewire-rs consumer that negotiates modifiers the way
//! `video-play-fixate.c` does: it offers a modifier choice (MANDATORY |
//! DONT_FIXATE) plus SHM, waits while the Format's modifier is a choice,
//! answers a fixed one with DmaBuf buffers, and can drop a modifier with
//! its own `update_params` (as after a failed import). Every DMA-BUF frame
//! is read back from its fd (a memfd in LINEAR layout) and checked against
//! the pattern. These tests prove the producer side independently of
//! wrd-capture's consumer.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use libspa::pod::deserialize::PodDeserializer;
use libspa::pod::{ChoiceValue, Object, Property, PropertyFlags, Value};
use libspa::utils::{Choice, ChoiceEnum, ChoiceFlags};
use libspa_sys as spa_sys;
use pipewire as pw;
use wrd_capture::PixelFormat;
use wrd_testsrc::dmabuf::{self, FormatModifier};
use wrd_testsrc::{pattern, spa, Producer, Sandbox};

const A: u64 = 0x0100_0000_0000_0001; // I915_FORMAT_MOD_X_TILED
const B: u64 = dmabuf::DRM_FORMAT_MOD_LINEAR;

/// A consumer EnumFormat: `fmt`, any size and rate, with a modifier choice
/// (MANDATORY | DONT_FIXATE) when `mods` is given.
fn consumer_format(fmt: PixelFormat, mods: Option<&[u64]>) -> Vec<u8> {
    let pod = spa::video_format(
        spa_sys::SPA_PARAM_EnumFormat,
        fmt,
        spa::any_size(),
        spa::any_rate(),
    );
    let Some(mods) = mods else { return pod };
    let mut o: Object = match PodDeserializer::deserialize_any_from(&pod).unwrap().1 {
        Value::Object(o) => o,
        v => panic!("{v:?}"),
    };
    o.properties.insert(
        3,
        Property {
            key: spa_sys::SPA_FORMAT_VIDEO_modifier,
            flags: PropertyFlags::MANDATORY | PropertyFlags::DONT_FIXATE,
            value: Value::Choice(ChoiceValue::Long(Choice(
                ChoiceFlags::empty(),
                ChoiceEnum::Enum {
                    default: mods[0] as i64,
                    alternatives: mods.iter().map(|m| *m as i64).collect(),
                },
            ))),
        },
    );
    spa::serialize(Value::Object(o))
}

/// The consumer's offer: the modifier choice (if any modifier is left) and
/// SHM (if wanted).
fn consumer_offer(fmt: PixelFormat, mods: &[u64], shm: bool) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    if !mods.is_empty() {
        v.push(consumer_format(fmt, Some(mods)));
    }
    if shm {
        v.push(consumer_format(fmt, None));
    }
    v
}

#[derive(Debug, Clone, PartialEq)]
struct Rec {
    data_type: u32,
    /// The Format's modifier when the frame came.
    modifier: Option<u64>,
    seq: u64,
    size: (u32, u32),
    n_datas: usize,
    check: Result<(), String>,
}

#[derive(Debug, Default)]
struct Seen {
    /// Every Format's modifier, in order.
    formats: Vec<FormatModifier>,
    frames: Vec<Rec>,
    /// Dropped modifiers: (after how many frames, which).
    streamed: bool,
}

struct Plan {
    fmt: PixelFormat,
    mods: Vec<u64>,
    shm: bool,
    /// After this many DMA-BUF frames with the current modifier, drop it
    /// from the offer (as after a failed import), at most `max_drops` times.
    drop_after: Option<usize>,
    max_drops: usize,
    /// Stop after this many frames.
    n: usize,
    timeout: Duration,
}

/// Read a DMA-BUF plane from its fd (LINEAR memfd) and check the picture.
///
/// # Safety
/// `datas` must be the datas of a dequeued buffer (valid chunks, fds open).
unsafe fn check_dmabuf(
    fmt: PixelFormat,
    w: u32,
    h: u32,
    seq: u64,
    datas: &[spa_sys::spa_data],
) -> Result<(), String> {
    if datas.len() < fmt.planes() {
        return Err(format!("{} datas for {} planes", datas.len(), fmt.planes()));
    }
    // SAFETY (the unsafe operations below): lseek/mmap/munmap act on the
    // datas' open fds and on our own mappings only; chunks are valid by the
    // caller's contract; each slice lies inside its mapping (offset checked
    // against the fd's size) and is used before the munmap at the end.
    let mut maps = Vec::new();
    let mut result = Ok(());
    let mut planes: Vec<&[u8]> = Vec::new();
    let mut strides = Vec::new();
    for d in datas.iter().take(fmt.planes()) {
        if d.type_ != spa_sys::SPA_DATA_DmaBuf {
            return Err(format!("data type {} in a DMA-BUF buffer", d.type_));
        }
        let fd = d.fd as i32;
        let len = libc::lseek(fd, 0, libc::SEEK_END);
        if len <= 0 {
            return Err(format!("fd {fd}: size {len}"));
        }
        let p = libc::mmap(
            std::ptr::null_mut(),
            len as usize,
            libc::PROT_READ,
            libc::MAP_SHARED,
            fd,
            0,
        );
        if p == libc::MAP_FAILED {
            return Err(format!("mmap fd {fd}: {}", std::io::Error::last_os_error()));
        }
        maps.push((p, len as usize));
        let c = &*d.chunk;
        let off = c.offset as usize;
        if off >= len as usize || c.stride <= 0 {
            result = Err(format!("chunk offset {off} stride {}", c.stride));
            break;
        }
        planes.push(std::slice::from_raw_parts(
            (p as *const u8).add(off),
            len as usize - off,
        ));
        strides.push(c.stride as usize);
    }
    if result.is_ok() {
        result = pattern::check(fmt, w, h, seq, 0, &planes, &strides);
    }
    for (p, len) in maps {
        libc::munmap(p, len);
    }
    result
}

/// Consume from node `id` following `plan`.
fn consume(sb: &Sandbox, id: u32, plan: Plan) -> Seen {
    pw::init();
    let mainloop = pw::main_loop::MainLoop::new(None).unwrap();
    let context = pw::context::Context::new(&mainloop).unwrap();
    let core = context.connect_fd(sb.connect_fd(), None).unwrap();
    let props = pw::properties::properties! {
        *pw::keys::MEDIA_TYPE => "Video",
        *pw::keys::MEDIA_CATEGORY => "Capture",
        *pw::keys::MEDIA_ROLE => "Screen",
    };
    let stream = pw::stream::Stream::new(&core, "dmabuf-bench-consumer", props).unwrap();
    struct St {
        plan: Plan,
        mods: Vec<u64>,
        drops: usize,
        current: Option<(u32, u32, Option<u64>)>,
        since_change: usize,
        seen: Seen,
        quit: Box<dyn Fn()>,
    }
    let st = Rc::new(RefCell::new(St {
        mods: plan.mods.clone(),
        plan,
        drops: 0,
        current: None,
        since_change: 0,
        seen: Seen::default(),
        quit: Box::new({
            let l = mainloop.downgrade();
            move || {
                if let Some(l) = l.upgrade() {
                    l.quit()
                }
            }
        }),
    }));
    let _listener = stream
        .add_local_listener_with_user_data(st.clone())
        .state_changed(|_, st, _, new| {
            if new == pw::stream::StreamState::Streaming {
                st.borrow_mut().seen.streamed = true;
            }
        })
        .param_changed(|stream, st, id, param| {
            let Some(param) = param else { return };
            if id != spa_sys::SPA_PARAM_Format {
                return;
            }
            let m = dmabuf::format_modifier(param.as_bytes()).expect("a Format");
            let mut s = st.borrow_mut();
            s.seen.formats.push(m.clone());
            let modifier = match m {
                // The producer fixates: wait for the next Format.
                FormatModifier::Choice(_) => {
                    s.current = None;
                    return;
                }
                FormatModifier::Fixed(m) => Some(m),
                FormatModifier::Shm => None,
            };
            let mut info = libspa::param::video::VideoInfoRaw::new();
            info.parse(param).expect("a fixed Format parses");
            s.current = Some((info.size().width, info.size().height, modifier));
            s.since_change = 0;
            let types = if modifier.is_some() {
                1i32 << spa_sys::SPA_DATA_DmaBuf
            } else {
                (1i32 << spa_sys::SPA_DATA_MemFd) | (1 << spa_sys::SPA_DATA_MemPtr)
            };
            let params = [
                spa::object(
                    spa_sys::SPA_TYPE_OBJECT_ParamBuffers,
                    spa_sys::SPA_PARAM_Buffers,
                    vec![
                        Property::new(spa_sys::SPA_PARAM_BUFFERS_buffers, spa::int_range(4, 2, 16)),
                        Property::new(spa_sys::SPA_PARAM_BUFFERS_dataType, spa::int_flags(types)),
                    ],
                ),
                spa::meta_param(
                    spa_sys::SPA_META_Header,
                    Value::Int(std::mem::size_of::<spa_sys::spa_meta_header>() as i32),
                ),
            ];
            drop(s);
            stream.update_params(&mut spa::pods(&params)).unwrap();
        })
        .process(|stream, st| {
            // SAFETY: dequeue; a non-null buffer is ours until queued.
            let b = unsafe { stream.dequeue_raw_buffer() };
            if b.is_null() {
                return;
            }
            let mut s = st.borrow_mut();
            let Some((w, h, modifier)) = s.current else {
                // SAFETY: giving back the buffer we dequeued.
                unsafe { stream.queue_raw_buffer(b) };
                return;
            };
            let fmt = s.plan.fmt;
            // SAFETY: b is a dequeued buffer; its metas, datas and chunks
            // are valid and its fds open until we queue it.
            let rec = unsafe {
                let buf = (*b).buffer;
                let datas = std::slice::from_raw_parts((*buf).datas, (*buf).n_datas as usize);
                let seq = spa::find_meta(buf, spa_sys::SPA_META_Header, 1)
                    .map(|(m, _)| (*(m as *const spa_sys::spa_meta_header)).seq)
                    .unwrap_or(u64::MAX);
                let data_type = datas.first().map(|d| d.type_).unwrap_or(0);
                let check = if data_type == spa_sys::SPA_DATA_DmaBuf {
                    check_dmabuf(fmt, w, h, seq, datas)
                } else if datas.len() >= fmt.planes() && datas.iter().all(|d| !d.data.is_null()) {
                    let mut planes: Vec<&[u8]> = Vec::new();
                    let mut strides = Vec::new();
                    for d in datas.iter().take(fmt.planes()) {
                        let c = &*d.chunk;
                        planes.push(std::slice::from_raw_parts(
                            (d.data as *const u8).add(c.offset as usize),
                            c.size as usize,
                        ));
                        strides.push(c.stride as usize);
                    }
                    pattern::check(fmt, w, h, seq, 0, &planes, &strides)
                } else {
                    Err(format!("unmapped SHM data of type {data_type}"))
                };
                Rec {
                    data_type,
                    modifier,
                    seq,
                    size: (w, h),
                    n_datas: datas.len(),
                    check,
                }
            };
            // SAFETY: giving back the buffer we dequeued.
            unsafe { stream.queue_raw_buffer(b) };
            let dmabuf = rec.data_type == spa_sys::SPA_DATA_DmaBuf;
            s.seen.frames.push(rec);
            s.since_change += 1;
            if s.seen.frames.len() >= s.plan.n {
                (s.quit)();
                return;
            }
            // Drop the current modifier, as after a failed import.
            if let (Some(k), Some(m)) = (s.plan.drop_after, modifier) {
                if dmabuf && s.since_change == k && s.drops < s.plan.max_drops {
                    s.drops += 1;
                    s.mods.retain(|x| *x != m);
                    let offer = consumer_offer(fmt, &s.mods, s.plan.shm);
                    drop(s);
                    stream.update_params(&mut spa::pods(&offer)).unwrap();
                }
            }
        })
        .register()
        .unwrap();
    let (fmt, offer) = {
        let s = st.borrow();
        (
            s.plan.fmt,
            consumer_offer(s.plan.fmt, &s.plan.mods, s.plan.shm),
        )
    };
    let _ = fmt;
    let mut params = spa::pods(&offer);
    stream
        .connect(
            libspa::utils::Direction::Input,
            Some(id),
            pw::stream::StreamFlags::AUTOCONNECT | pw::stream::StreamFlags::MAP_BUFFERS,
            &mut params,
        )
        .unwrap();
    let timer = mainloop.loop_().add_timer({
        let l = mainloop.downgrade();
        move |_| {
            if let Some(l) = l.upgrade() {
                l.quit()
            }
        }
    });
    let timeout = st.borrow().plan.timeout;
    timer
        .update_timer(Some(timeout), None)
        .into_result()
        .unwrap();
    mainloop.run();
    let _ = stream.disconnect();
    let seen = std::mem::take(&mut st.borrow_mut().seen);
    seen
}

fn plan(fmt: PixelFormat, mods: &[u64], shm: bool, n: usize) -> Plan {
    Plan {
        fmt,
        mods: mods.to_vec(),
        shm,
        drop_after: None,
        max_drops: 0,
        n,
        timeout: Duration::from_secs(15),
    }
}

fn assert_checked(frames: &[Rec]) {
    for f in frames {
        if let Err(e) = &f.check {
            panic!("frame {} ({:?}): {e}", f.seq, f);
        }
    }
}

const DMABUF: u32 = spa_sys::SPA_DATA_DmaBuf;
const MEMFD: u32 = spa_sys::SPA_DATA_MemFd;

/// Modifiers A,B offered, the consumer offers both: the producer fixates A
/// (its first), the consumer sees Formats [choice, fixed A] and only
/// DmaBuf-typed frames with A whose pixels check (BGRx and NV12, one fd per
/// plane); the producer logs the fixation and each buffer's modifier.
#[test]
fn fixates_the_first_modifier_and_sends_checked_dmabuf_frames() {
    let sb = Sandbox::start();
    for fmt in [PixelFormat::Bgrx, PixelFormat::Nv12] {
        let prod = Producer::spawn(
            &sb,
            &[
                "--format",
                fmt.name(),
                "--modifiers",
                "0x0100000000000001,linear",
                "--rate",
                "60",
                "--name",
                fmt.name(),
            ],
        );
        let seen = consume(&sb, prod.nodes()[0].id, plan(fmt, &[A, B], true, 30));
        assert_eq!(seen.frames.len(), 30, "{fmt}: {seen:?}");
        assert_eq!(
            seen.formats,
            vec![FormatModifier::Choice(vec![A, B]), FormatModifier::Fixed(A)],
            "{fmt}"
        );
        assert_checked(&seen.frames);
        for f in &seen.frames {
            assert_eq!(
                (f.data_type, f.modifier, f.n_datas),
                (DMABUF, Some(A), fmt.planes())
            );
        }
        let log = prod.stderr();
        assert!(
            log.contains("fixating modifier 0x0100000000000001 (candidates [0x0100000000000001,0x0000000000000000])"),
            "{log}"
        );
        assert!(log.contains("dmabuf modifier 0x0100000000000001"), "{log}");
        assert!(
            log.contains("buffer 1 dmabuf modifier 0x0100000000000001 fds"),
            "{log}"
        );
    }
}

/// `--alloc-modifiers` limits what the producer fixates on: with A,B offered
/// and only B allocatable, B is negotiated although A comes first.
#[test]
fn fixation_takes_only_an_allocatable_modifier() {
    let sb = Sandbox::start();
    let prod = Producer::spawn(
        &sb,
        &[
            "--modifiers",
            "0x0100000000000001,0",
            "--alloc-modifiers",
            "linear",
            "--rate",
            "60",
        ],
    );
    let seen = consume(
        &sb,
        prod.nodes()[0].id,
        plan(PixelFormat::Bgrx, &[A, B], true, 10),
    );
    assert_eq!(seen.frames.len(), 10, "{seen:?}");
    assert_eq!(seen.formats.last(), Some(&FormatModifier::Fixed(B)));
    assert_checked(&seen.frames);
    assert!(seen.frames.iter().all(|f| f.modifier == Some(B)));
}

/// Nothing allocatable (`--alloc-modifiers` outside the offer): the
/// producer withdraws the candidates and only SHM is left: Formats exactly
/// [choice [A], SHM], MemFd frames.
#[test]
fn nothing_allocatable_withdraws_to_shm() {
    let sb = Sandbox::start();
    let prod = Producer::spawn(
        &sb,
        &[
            "--modifiers",
            "0x0100000000000001",
            "--alloc-modifiers",
            "linear",
            "--rate",
            "60",
        ],
    );
    let seen = consume(
        &sb,
        prod.nodes()[0].id,
        plan(PixelFormat::Bgrx, &[A, B], true, 10),
    );
    assert_eq!(seen.frames.len(), 10, "{seen:?}");
    assert_eq!(
        seen.formats,
        vec![FormatModifier::Choice(vec![A]), FormatModifier::Shm]
    );
    assert_checked(&seen.frames);
    assert!(seen.frames.iter().all(|f| f.data_type == MEMFD));
    let log = prod.stderr();
    assert!(
        log.contains("cannot allocate any of [0x0100000000000001]; offering []"),
        "{log}"
    );
}

/// The consumer drops A after 10 frames (its own update_params, as after a
/// failed import): the producer gets a choice of B, fixates B, DMA-BUF
/// frames with B follow; then B is dropped and SHM frames follow. Formats
/// are exactly choice, A, choice, B, SHM: no loop.
#[test]
fn consumer_drops_modifiers_producer_refixates_then_shm() {
    let sb = Sandbox::start();
    let prod = Producer::spawn(
        &sb,
        &["--modifiers", "0x0100000000000001,linear", "--rate", "60"],
    );
    let mut p = plan(PixelFormat::Bgrx, &[A, B], true, 40);
    p.drop_after = Some(10);
    p.max_drops = 2;
    let seen = consume(&sb, prod.nodes()[0].id, p);
    assert_eq!(seen.frames.len(), 40, "{seen:?}");
    assert_checked(&seen.frames);
    // The Format after A's removal is a choice whose alternatives are only
    // B (its Enum default may still be A: see wrd_testsrc::dmabuf).
    assert_eq!(
        seen.formats,
        vec![
            FormatModifier::Choice(vec![A, B]),
            FormatModifier::Fixed(A),
            FormatModifier::Choice(vec![B]),
            FormatModifier::Fixed(B),
            FormatModifier::Shm,
        ]
    );
    let kinds: Vec<(u32, Option<u64>)> = seen
        .frames
        .iter()
        .map(|f| (f.data_type, f.modifier))
        .collect();
    let mut runs = kinds.clone();
    runs.dedup();
    assert_eq!(
        runs,
        vec![(DMABUF, Some(A)), (DMABUF, Some(B)), (MEMFD, None)],
        "{kinds:?}"
    );
    let seqs: Vec<u64> = seen.frames.iter().map(|f| f.seq).collect();
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "{seqs:?}");
    let log = prod.stderr();
    assert!(
        log.contains("fixating modifier 0x0000000000000000"),
        "{log}"
    );
    assert!(log.contains("strides [1280] shm"), "{log}");
}

/// A producer that only does DMA-BUF and a consumer that only does SHM
/// never link: no Format, no frame.
#[test]
fn dmabuf_only_producer_and_shm_consumer_do_not_link() {
    let sb = Sandbox::start();
    let prod = Producer::spawn(&sb, &["--dmabuf-only", "--modifiers", "0"]);
    let mut p = plan(PixelFormat::Bgrx, &[], true, 1);
    p.timeout = Duration::from_secs(3);
    let seen = consume(&sb, prod.nodes()[0].id, p);
    assert!(seen.frames.is_empty(), "{seen:?}");
    assert!(seen.formats.is_empty(), "{seen:?}");
    assert!(!seen.streamed);
}

/// The default producer (no modifiers) against a consumer offering
/// modifiers and SHM: one SHM Format, MemFd frames, no fixation.
#[test]
fn shm_producer_and_modifier_consumer_agree_on_shm() {
    let sb = Sandbox::start();
    let prod = Producer::spawn(&sb, &["--rate", "60"]);
    let seen = consume(
        &sb,
        prod.nodes()[0].id,
        plan(PixelFormat::Bgrx, &[A, B], true, 10),
    );
    assert_eq!(seen.formats, vec![FormatModifier::Shm]);
    assert_checked(&seen.frames);
    assert!(seen.frames.iter().all(|f| f.data_type == MEMFD));
    assert!(!prod.stderr().contains("fixating"));
}

/// Resizes renegotiate on the DMA-BUF path: each new size is fixated anew
/// and frames of both sizes arrive as DMA-BUF with the right pixels.
#[test]
fn resize_renegotiates_on_the_dmabuf_path() {
    let sb = Sandbox::start();
    let prod = Producer::spawn(
        &sb,
        &[
            "--modifiers",
            "linear",
            "--resize-every",
            "10",
            "--rate",
            "60",
        ],
    );
    let seen = consume(
        &sb,
        prod.nodes()[0].id,
        plan(PixelFormat::Bgrx, &[B], true, 45),
    );
    assert_eq!(seen.frames.len(), 45, "{seen:?}");
    assert_checked(&seen.frames);
    let mut sizes = Vec::new();
    for f in &seen.frames {
        assert_eq!((f.data_type, f.modifier), (DMABUF, Some(B)));
        assert_eq!(
            f.size,
            pattern::size_at(320, 240, 10, f.seq),
            "seq {}",
            f.seq
        );
        if sizes.last() != Some(&f.size) {
            sizes.push(f.size);
        }
    }
    assert!(sizes.len() >= 3, "{sizes:?}");
    assert!(seen.formats.iter().all(|f| *f != FormatModifier::Shm));
}

/// The argument checks of the DMA-BUF flags.
#[test]
fn dmabuf_flags_are_checked() {
    for args in [
        &["--dmabuf-only"][..],
        &["--alloc-modifiers", "0"],
        &["--shm-only", "--modifiers", "0"],
        &["--modifiers", "0", "--one-block"],
        &["--modifiers", "0,0"],
        &["--modifiers", "nope"],
    ] {
        let out = std::process::Command::new(Producer::binary())
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}
