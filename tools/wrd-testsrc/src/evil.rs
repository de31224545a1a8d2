//! Adversarial modes (`--evil MODE[,MODE...] [--evil-every K]`): a producer
//! that lies to its consumers in the ways a buggy or hostile compositor
//! could. Normal operation is untouched when no mode is given.
//!
//! Per-frame modes corrupt every K-th frame (`seq % K == K - 1`, default
//! K = 2: good and bad frames alternate), after the frame was drawn and its
//! metas written, so the good frames in between are exact pattern frames.
//! Per-buffer modes (`maxsize-gt-fd`, `unmappable-fd`) make every K-th buffer
//! lie from `add_buffer` on. Per-stream modes change negotiation
//! (`too-many-planes`, `huge-dims`, `zero-dims`, `format-storm`) or the
//! stream's life (`vanish=N`, `silent-after=N`, `silent-for=MS`).

use libspa_sys as spa_sys;

/// One way of lying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// chunk.offset = maxsize (offset + size past the end).
    OffsetPastEnd,
    /// chunk.offset = u32::MAX - 15 (offset + size wraps in 32 bits).
    OffsetWrap,
    /// chunk.stride = a row's bytes - 1.
    StrideSmall,
    /// chunk.stride = 0 (the one stride lie a DMA-BUF consumer can see:
    /// sizes and offsets of DMA-BUF planes are the importer's business).
    StrideZero,
    /// chunk.size = half of stride * height.
    SizeSmall,
    /// chunk.size = 0 (a legal "metadata only" frame).
    ZeroSize,
    /// Every K-th buffer: data 0's fd is a 4 KiB memfd while maxsize
    /// declares the whole plane.
    MaxsizeGtFd,
    /// Every K-th buffer: data 0's fd is a pipe (odd buffers) or /dev/null,
    /// labelled MemFd.
    UnmappableFd,
    /// Buffers param with one more block than the format has planes.
    TooManyPlanes,
    /// Announce 100000x100000.
    HugeDims,
    /// Announce 0x0.
    ZeroDims,
    /// Damage rectangles outside and across the frame edges.
    DamageOutside,
    /// Crop rectangle sticking out of the frame.
    CropOutside,
    /// Cursor bitmap larger than the meta (200x200, or 100000x1).
    CursorOversized,
    /// Cursor bitmap_offset past the meta end, bitmap pixel offset past the
    /// end, and every damage slot filled (no terminating empty region).
    TruncatedMeta,
    /// Disconnect the stream (the node goes away) after N frames; the
    /// process lives on.
    Vanish(u64),
    /// Stop producing after N frames, staying connected.
    SilentAfter(u64),
    /// With `silent-after`: resume after this many milliseconds of silence.
    SilentFor(u64),
    /// A new size every frame (`--resize-every 1`).
    FormatStorm,
}

pub const MODES: &str =
    "offset-past-end offset-wrap stride-small stride-zero size-small zero-size \
maxsize-gt-fd unmappable-fd too-many-planes huge-dims zero-dims damage-outside crop-outside \
cursor-oversized truncated-meta vanish=N silent-after=N silent-for=MS format-storm";

/// The adversarial configuration of the producer (all streams).
#[derive(Clone, Debug, Default)]
pub struct Evil {
    pub modes: Vec<Mode>,
    pub every: u64,
}

impl Evil {
    pub fn parse(list: &str) -> Result<Vec<Mode>, String> {
        let mut out = Vec::new();
        for m in list.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            let (name, val) = match m.split_once('=') {
                Some((n, v)) => (
                    n,
                    Some(
                        v.parse::<u64>()
                            .map_err(|_| format!("--evil {n}: bad number {v:?}"))?,
                    ),
                ),
                None => (m, None),
            };
            let need = |v: Option<u64>| v.ok_or_else(|| format!("--evil {name} needs =N"));
            out.push(match name {
                "offset-past-end" => Mode::OffsetPastEnd,
                "offset-wrap" => Mode::OffsetWrap,
                "stride-small" => Mode::StrideSmall,
                "stride-zero" => Mode::StrideZero,
                "size-small" => Mode::SizeSmall,
                "zero-size" => Mode::ZeroSize,
                "maxsize-gt-fd" => Mode::MaxsizeGtFd,
                "unmappable-fd" => Mode::UnmappableFd,
                "too-many-planes" => Mode::TooManyPlanes,
                "huge-dims" => Mode::HugeDims,
                "zero-dims" => Mode::ZeroDims,
                "damage-outside" => Mode::DamageOutside,
                "crop-outside" => Mode::CropOutside,
                "cursor-oversized" => Mode::CursorOversized,
                "truncated-meta" => Mode::TruncatedMeta,
                "vanish" => Mode::Vanish(need(val)?),
                "silent-after" => Mode::SilentAfter(need(val)?),
                "silent-for" => Mode::SilentFor(need(val)?),
                "format-storm" => Mode::FormatStorm,
                _ => return Err(format!("unknown --evil mode {name:?} (modes: {MODES})")),
            });
        }
        Ok(out)
    }

    pub fn has(&self, m: Mode) -> bool {
        self.modes.contains(&m)
    }

    /// Frame `seq` is one to corrupt.
    pub fn bad_frame(&self, seq: u64) -> bool {
        !self.modes.is_empty() && seq % self.every == self.every - 1
    }

    /// The `n`-th buffer added (from 0) is one to lie about.
    pub fn bad_buffer(&self, n: u64) -> bool {
        n % self.every == self.every - 1
    }

    pub fn vanish_after(&self) -> Option<u64> {
        self.modes.iter().find_map(|m| match m {
            Mode::Vanish(n) => Some(*n),
            _ => None,
        })
    }

    pub fn silent_after(&self) -> Option<u64> {
        self.modes.iter().find_map(|m| match m {
            Mode::SilentAfter(n) => Some(*n),
            _ => None,
        })
    }

    pub fn silent_for(&self) -> Option<std::time::Duration> {
        self.modes.iter().find_map(|m| match m {
            Mode::SilentFor(n) => Some(std::time::Duration::from_millis(*n)),
            _ => None,
        })
    }

    /// The size to announce instead of the real one, if any.
    pub fn announced_size(&self) -> Option<(u32, u32)> {
        if self.has(Mode::HugeDims) {
            Some((100_000, 100_000))
        } else if self.has(Mode::ZeroDims) {
            Some((0, 0))
        } else {
            None
        }
    }

    /// Extra data blocks to announce in the Buffers param.
    pub fn extra_blocks(&self) -> usize {
        usize::from(self.has(Mode::TooManyPlanes))
    }
}

/// The fd to hand out instead of a buffer's real memfd, for a lying buffer
/// (`n` = buffers added so far). The caller keeps its own mapping of the
/// real memfd, so its writes stay valid; the returned fd is what PipeWire
/// passes to consumers. `None`: no lie for this buffer.
pub fn lying_fd(evil: &Evil, n: u64) -> Option<i32> {
    if !evil.bad_buffer(n) {
        return None;
    }
    if evil.has(Mode::MaxsizeGtFd) {
        // SAFETY: memfd_create with a NUL-terminated name; the new fd is
        // ours; ftruncate only sizes it.
        unsafe {
            let fd = libc::memfd_create(c"wrd-testsrc-evil".as_ptr(), libc::MFD_CLOEXEC);
            if fd >= 0 && libc::ftruncate(fd, 4096) == 0 {
                return Some(fd);
            }
        }
        return None;
    }
    if evil.has(Mode::UnmappableFd) {
        if (n / evil.every) & 1 == 0 {
            let mut p = [-1; 2];
            // SAFETY: pipe2 fills `p` with two new fds we own; the write end
            // is closed at once, the read end is handed out.
            unsafe {
                if libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) == 0 {
                    libc::close(p[1]);
                    return Some(p[0]);
                }
            }
        } else {
            // SAFETY: open of a fixed NUL-terminated path; the fd is ours.
            let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
            if fd >= 0 {
                return Some(fd);
            }
        }
    }
    None
}

/// Corrupt frame `seq` (already drawn, chunks and metas written) if it is
/// one of the bad ones. `row_bytes`/`rows` describe plane 0.
///
/// # Safety
/// `buf` must be a dequeued spa_buffer of the caller's stream whose datas,
/// chunks and metas are writable by the caller until it is queued.
pub unsafe fn corrupt_frame(
    evil: &Evil,
    buf: *mut spa_sys::spa_buffer,
    seq: u64,
    (w, h): (u32, u32),
    row_bytes: usize,
) {
    if !evil.bad_frame(seq) || (*buf).n_datas == 0 {
        return;
    }
    let d0 = &mut *(*buf).datas;
    let chunk = d0.chunk;
    for m in &evil.modes {
        match m {
            Mode::OffsetPastEnd => (*chunk).offset = d0.maxsize,
            Mode::OffsetWrap => (*chunk).offset = u32::MAX - 15,
            Mode::StrideSmall => (*chunk).stride = row_bytes as i32 - 1,
            Mode::StrideZero => (*chunk).stride = 0,
            Mode::SizeSmall => (*chunk).size /= 2,
            Mode::ZeroSize => (*chunk).size = 0,
            Mode::DamageOutside => {
                let rsize = std::mem::size_of::<spa_sys::spa_meta_region>();
                if let Some((m, size)) =
                    wrd_testsrc::spa::find_meta(buf, spa_sys::SPA_META_VideoDamage, rsize)
                {
                    let slots = std::slice::from_raw_parts_mut(
                        m as *mut spa_sys::spa_meta_region,
                        size / rsize,
                    );
                    let lies = [
                        region(-10, -10, 30, 30),
                        region(-100, -100, w + 500, 10),
                        region(w as i32 + 10, h as i32 + 10, 5, 5),
                        region(i32::MAX - 4, 0, u32::MAX, u32::MAX),
                        region(i32::MIN, i32::MIN, 20, 20),
                        region(0, 0, 0, 0),
                    ];
                    for (s, r) in slots.iter_mut().zip(lies) {
                        s.region = r;
                    }
                }
            }
            Mode::CropOutside => {
                if let Some((m, _)) = wrd_testsrc::spa::find_meta(
                    buf,
                    spa_sys::SPA_META_VideoCrop,
                    std::mem::size_of::<spa_sys::spa_meta_region>(),
                ) {
                    (*(m as *mut spa_sys::spa_meta_region)).region =
                        region(w as i32 - 10, h as i32 - 10, 100_000, u32::MAX);
                }
            }
            Mode::CursorOversized => {
                let head = std::mem::size_of::<spa_sys::spa_meta_cursor>();
                let bhead = std::mem::size_of::<spa_sys::spa_meta_bitmap>();
                if let Some((m, _)) =
                    wrd_testsrc::spa::find_meta(buf, spa_sys::SPA_META_Cursor, head + bhead)
                {
                    let mc = m as *mut spa_sys::spa_meta_cursor;
                    (*mc).id = 1;
                    (*mc).bitmap_offset = head as u32;
                    let mb = (m as *mut u8).add(head) as *mut spa_sys::spa_meta_bitmap;
                    let (bw, bh) = if (seq / evil.every) & 1 == 0 {
                        (200, 200)
                    } else {
                        (100_000, 1)
                    };
                    (*mb).format = spa_sys::SPA_VIDEO_FORMAT_BGRA;
                    (*mb).size = spa_sys::spa_rectangle {
                        width: bw,
                        height: bh,
                    };
                    (*mb).stride = (bw * 4) as i32;
                    (*mb).offset = bhead as u32;
                }
            }
            Mode::TruncatedMeta => {
                let head = std::mem::size_of::<spa_sys::spa_meta_cursor>();
                let bhead = std::mem::size_of::<spa_sys::spa_meta_bitmap>();
                if let Some((m, size)) =
                    wrd_testsrc::spa::find_meta(buf, spa_sys::SPA_META_Cursor, head + bhead)
                {
                    let mc = m as *mut spa_sys::spa_meta_cursor;
                    (*mc).id = 1;
                    if (seq / evil.every) & 1 == 0 {
                        // The bitmap header itself lies past the meta's end.
                        (*mc).bitmap_offset = (size - 4) as u32;
                    } else {
                        // A valid header whose pixels start past the end.
                        (*mc).bitmap_offset = head as u32;
                        let mb = (m as *mut u8).add(head) as *mut spa_sys::spa_meta_bitmap;
                        (*mb).format = spa_sys::SPA_VIDEO_FORMAT_BGRA;
                        (*mb).size = spa_sys::spa_rectangle {
                            width: 32,
                            height: 32,
                        };
                        (*mb).stride = 128;
                        (*mb).offset = u32::MAX - 8;
                    }
                }
                let rsize = std::mem::size_of::<spa_sys::spa_meta_region>();
                if let Some((m, size)) =
                    wrd_testsrc::spa::find_meta(buf, spa_sys::SPA_META_VideoDamage, rsize)
                {
                    // Every slot used, no terminator: the list ends at the
                    // meta's end, which a consumer must not read past.
                    let slots = std::slice::from_raw_parts_mut(
                        m as *mut spa_sys::spa_meta_region,
                        size / rsize,
                    );
                    for (i, s) in slots.iter_mut().enumerate() {
                        s.region = region(2 * i as i32, 2 * i as i32, 2, 2);
                    }
                }
            }
            _ => {}
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_modes() {
        let m = Evil::parse("offset-past-end, vanish=30,silent-for=500").unwrap();
        assert_eq!(
            m,
            vec![Mode::OffsetPastEnd, Mode::Vanish(30), Mode::SilentFor(500)]
        );
        assert_eq!(
            Evil::parse("stride-zero,silent-after=90").unwrap(),
            vec![Mode::StrideZero, Mode::SilentAfter(90)]
        );
        assert!(Evil::parse("vanish").is_err());
        assert!(Evil::parse("nope").is_err());
        let e = Evil { modes: m, every: 2 };
        assert!(!e.bad_frame(0) && e.bad_frame(1) && !e.bad_frame(2));
    }
}
