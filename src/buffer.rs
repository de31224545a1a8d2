//! What the producer sends, treated as untrusted: buffer memory is mapped by
//! us (not by PipeWire's MAP_BUFFERS) after checking the fd's real size
//! against the declared `maxsize`, and every chunk offset, size and stride,
//! plane count and meta is checked against what is mapped before a byte is
//! read.
//!
//! Our own mappings are reference counted ([`Mapping`]), so a frame a caller
//! keeps stays readable after PipeWire removed the buffer or the stream.
//!
//! Limit of the guarantee: a producer that shrinks an unsealed memfd after we
//! mapped it can still cause SIGBUS on read. PipeWire's own pools seal their
//! memfds (F_SEAL_SHRINK); we record whether each fd is sealed
//! ([`Mapping::sealed`]) and count unsealed buffers in the stats.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::format::PixelFormat;
use crate::frame::{flags, Cursor, CursorBitmap, Region};
use crate::negotiation::{data_type, meta_type, CURSOR_BITMAP_SIZE, MAX_DAMAGE_RECTS};

/// Memory or an fd kept alive for as long as a frame refers to it.
#[derive(Debug)]
pub enum Mapping {
    /// A read-only `mmap` of a MemFd data.
    Mmap {
        base: *mut libc::c_void,
        map_len: usize,
        /// Offset of the data's first byte within the mapping.
        data_offset: usize,
        /// Bytes of data (the declared maxsize, checked against the fd).
        len: usize,
        sealed: bool,
    },
    /// Memory PipeWire gave us a pointer to (MemPtr, in-process producers):
    /// valid while the stream lives.
    Ptr { ptr: *const u8, len: usize },
    /// A DMA-BUF fd (a dup, owned here).
    Fd(OwnedFd),
}

// SAFETY: a `Mapping` is a read-only view (or an fd); the pointer is never
// written through, and munmap happens once, in Drop.
unsafe impl Send for Mapping {}
// SAFETY: as above; no interior mutability.
unsafe impl Sync for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        if let Mapping::Mmap { base, map_len, .. } = *self {
            // SAFETY: base/map_len come from a successful mmap in
            // `Mapping::map_fd` and are unmapped only here, once.
            unsafe {
                libc::munmap(base, map_len);
            }
        }
    }
}

/// Why a buffer could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapError {
    BadFd,
    NotAFile(String),
    TooSmall { fd_size: u64, needed: u64 },
    Mmap(i32),
    BadSize,
}

impl std::fmt::Display for MapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MapError::BadFd => f.write_str("invalid fd"),
            MapError::NotAFile(s) => write!(f, "fd is not mappable memory ({s})"),
            MapError::TooSmall { fd_size, needed } => {
                write!(
                    f,
                    "fd holds {fd_size} bytes but the buffer declares {needed}"
                )
            }
            MapError::Mmap(e) => write!(f, "mmap failed: errno {e}"),
            MapError::BadSize => f.write_str("declared size is 0 or too large"),
        }
    }
}

/// Largest buffer we map (a 16384x16384 RGBA frame is 1 GiB).
pub const MAX_MAP_SIZE: u64 = 1 << 30;

impl Mapping {
    /// Map `maxsize` bytes at `mapoffset` of a MemFd read-only, after
    /// checking that the fd is a regular or memfd file large enough.
    pub fn map_fd(fd: RawFd, mapoffset: u32, maxsize: u32) -> Result<Mapping, MapError> {
        if fd < 0 {
            return Err(MapError::BadFd);
        }
        if maxsize == 0 || u64::from(maxsize) > MAX_MAP_SIZE {
            return Err(MapError::BadSize);
        }
        // SAFETY: fstat on a caller-given fd writes only into `st`.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::fstat(fd, &mut st) } != 0 {
            return Err(MapError::BadFd);
        }
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(MapError::NotAFile(format!("st_mode {:o}", st.st_mode)));
        }
        let needed = u64::from(mapoffset) + u64::from(maxsize);
        if (st.st_size as u64) < needed {
            return Err(MapError::TooSmall {
                fd_size: st.st_size as u64,
                needed,
            });
        }
        // SAFETY: sysconf has no memory effects.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
        let aligned = u64::from(mapoffset) & !(page - 1);
        let data_offset = (u64::from(mapoffset) - aligned) as usize;
        let map_len = data_offset + maxsize as usize;
        // SAFETY: mapping a checked range of a regular file read-only and
        // shared; the result is checked against MAP_FAILED.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                aligned as libc::off_t,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(MapError::Mmap(
                std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
            ));
        }
        // SAFETY: F_GET_SEALS only reads the fd's seals.
        let seals = unsafe { libc::fcntl(fd, libc::F_GET_SEALS) };
        let sealed = seals >= 0 && seals & libc::F_SEAL_SHRINK != 0;
        Ok(Mapping::Mmap {
            base,
            map_len,
            data_offset,
            len: maxsize as usize,
            sealed,
        })
    }

    /// Duplicate a DMA-BUF fd so that it outlives PipeWire's buffer.
    pub fn dup_fd(fd: RawFd) -> Result<Mapping, MapError> {
        if fd < 0 {
            return Err(MapError::BadFd);
        }
        // SAFETY: F_DUPFD_CLOEXEC creates a new fd or fails; on success we
        // own it exclusively.
        let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
        if new < 0 {
            return Err(MapError::BadFd);
        }
        // SAFETY: `new` is a fresh fd we own.
        Ok(Mapping::Fd(unsafe { OwnedFd::from_raw_fd(new) }))
    }

    /// The readable bytes: pointer and length (`None` for an fd).
    pub fn bytes(&self) -> Option<(*const u8, usize)> {
        match *self {
            Mapping::Mmap {
                base,
                data_offset,
                len,
                ..
            } => Some(((base as *const u8).wrapping_add(data_offset), len)),
            Mapping::Ptr { ptr, len } => Some((ptr, len)),
            Mapping::Fd(_) => None,
        }
    }

    /// Whether the fd was sealed against shrinking.
    pub fn sealed(&self) -> bool {
        match self {
            Mapping::Mmap { sealed, .. } => *sealed,
            _ => true,
        }
    }

    /// The fd of a DMA-BUF mapping.
    pub fn raw_fd(&self) -> Option<RawFd> {
        match self {
            Mapping::Fd(fd) => Some(fd.as_raw_fd()),
            _ => None,
        }
    }
}

/// A chunk as the producer described it (all untrusted).
#[derive(Clone, Copy, Debug, Default)]
pub struct ChunkDesc {
    pub offset: u32,
    pub size: u32,
    pub stride: i32,
    pub flags: i32,
}

/// One spa_data as seen by validation.
#[derive(Clone, Copy, Debug)]
pub struct DataDesc {
    pub data_type: u32,
    /// Readable bytes of our mapping of this data (0 for DMA-BUF or unmapped).
    pub mapped_len: usize,
    pub chunk: ChunkDesc,
}

/// Where a validated plane lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlaneSpan {
    pub data: usize,
    /// Byte offset inside the data.
    pub offset: usize,
    pub stride: usize,
    /// Bytes readable from `offset` (`stride * (rows-1) + row_bytes`).
    pub len: usize,
}

/// Why a frame was dropped. Values index [`crate::stream::Stats::drops`]
/// and are ABI.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// A newer frame arrived before this one was delivered or taken.
    Superseded = 0,
    /// The caller already holds the maximum number of frames.
    HeldLimit = 1,
    /// The bounded queue was full.
    QueueFull = 2,
    /// Chunk offset, size or stride outside the mapped buffer, or too small.
    BadChunk = 3,
    /// The buffer memory could not be mapped (bad fd, fd smaller than declared).
    Unmappable = 4,
    /// Plane count or data types do not match the negotiated format.
    BadLayout = 5,
    /// The memory budget for held frames would be exceeded.
    Budget = 6,
    /// The frame arrived before a format was negotiated.
    NoFormat = 7,
    /// The stream's importer could not import the DMA-BUF (the stream
    /// renegotiates without that modifier).
    ImportFailed = 8,
}

/// Number of [`DropReason`] values.
pub const DROP_REASONS: usize = 9;

impl DropReason {
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Superseded => "superseded",
            DropReason::HeldLimit => "held-limit",
            DropReason::QueueFull => "queue-full",
            DropReason::BadChunk => "bad-chunk",
            DropReason::Unmappable => "unmappable",
            DropReason::BadLayout => "bad-layout",
            DropReason::Budget => "budget",
            DropReason::NoFormat => "no-format",
            DropReason::ImportFailed => "import-failed",
        }
    }
}

/// A validation failure: the reason and a human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub DropReason, pub String);

/// The outcome of validating an SHM buffer's chunks.
#[derive(Debug, PartialEq, Eq)]
pub enum ShmLayout {
    /// A chunk size of 0: only metadata (the cursor) changed.
    CursorOnly,
    Planes(Vec<PlaneSpan>),
}

fn check_plane(
    fmt: PixelFormat,
    w: u32,
    h: u32,
    plane: usize,
    data_idx: usize,
    d: &DataDesc,
    (offset, stride): (u64, u64),
) -> Result<PlaneSpan, Invalid> {
    let (row_bytes, rows) = fmt.plane_size(plane, w, h).ok_or_else(|| {
        Invalid(
            DropReason::BadLayout,
            format!("plane {plane} size overflows"),
        )
    })?;
    if stride < row_bytes as u64 {
        return Err(Invalid(
            DropReason::BadChunk,
            format!("plane {plane}: stride {stride} smaller than a row ({row_bytes} bytes)"),
        ));
    }
    let span = stride * (rows as u64 - 1) + row_bytes as u64;
    let end = offset + span;
    if end > d.mapped_len as u64 {
        return Err(Invalid(
            DropReason::BadChunk,
            format!(
                "plane {plane}: offset {offset} + {span} bytes past the mapped {} bytes",
                d.mapped_len
            ),
        ));
    }
    Ok(PlaneSpan {
        data: data_idx,
        offset: offset as usize,
        stride: stride as usize,
        len: span as usize,
    })
}

/// Validate the chunks of an SHM buffer for a negotiated format. All
/// arithmetic is in 64 bits, so 32-bit wrap-around in the producer's values
/// cannot alias into range.
pub fn validate_shm(
    fmt: PixelFormat,
    w: u32,
    h: u32,
    datas: &[DataDesc],
) -> Result<ShmLayout, Invalid> {
    let planes = fmt.planes();
    let Some(first) = datas.first() else {
        return Err(Invalid(DropReason::BadLayout, "buffer has no data".into()));
    };
    // More datas than planes is no layout we know: a producer that sends
    // them is confused about the format, so the frame is dropped rather
    // than guessed at.
    if datas.len() > planes {
        return Err(Invalid(
            DropReason::BadLayout,
            format!("{} datas for a {planes}-plane format", datas.len()),
        ));
    }
    for (i, d) in datas.iter().enumerate() {
        if d.data_type != data_type::MEM_FD && d.data_type != data_type::MEM_PTR {
            return Err(Invalid(
                DropReason::BadLayout,
                format!("data {i} has type {} in an SHM stream", d.data_type),
            ));
        }
    }
    if first.chunk.size == 0 {
        return Ok(ShmLayout::CursorOnly);
    }
    let chunk_fits = |i: usize, d: &DataDesc| -> Result<(), Invalid> {
        if d.chunk.stride < 0 {
            return Err(Invalid(
                DropReason::BadChunk,
                format!("data {i}: negative stride {}", d.chunk.stride),
            ));
        }
        let end = u64::from(d.chunk.offset) + u64::from(d.chunk.size);
        if end > d.mapped_len as u64 {
            return Err(Invalid(
                DropReason::BadChunk,
                format!(
                    "data {i}: chunk offset {} + size {} past the mapped {} bytes",
                    d.chunk.offset, d.chunk.size, d.mapped_len
                ),
            ));
        }
        Ok(())
    };
    let stride_or = |d: &DataDesc, plane: usize| -> u64 {
        if d.chunk.stride > 0 {
            d.chunk.stride as u64
        } else {
            fmt.plane_size(plane, w, h)
                .map(|(rb, _)| rb as u64)
                .unwrap_or(0)
        }
    };
    let mut out = Vec::with_capacity(planes);
    if datas.len() == planes {
        for (p, d) in datas.iter().enumerate() {
            chunk_fits(p, d)?;
            let span = check_plane(
                fmt,
                w,
                h,
                p,
                p,
                d,
                (u64::from(d.chunk.offset), stride_or(d, p)),
            )?;
            if (d.chunk.size as usize) < span.len {
                return Err(Invalid(
                    DropReason::BadChunk,
                    format!(
                        "plane {p}: chunk size {} smaller than stride x height ({})",
                        d.chunk.size, span.len
                    ),
                ));
            }
            out.push(span);
        }
    } else if datas.len() == 1 {
        // All planes in one data, laid out one after the other with strides
        // derived from plane 0's (the GStreamer default layout).
        let d = first;
        chunk_fits(0, d)?;
        let s0 = stride_or(d, 0);
        let mut offset = u64::from(d.chunk.offset);
        for p in 0..planes {
            let stride = match (fmt, p) {
                (_, 0) => s0,
                (PixelFormat::I420, _) => s0.div_ceil(2),
                _ => s0 + (s0 & 1),
            };
            let span = check_plane(fmt, w, h, p, 0, d, (offset, stride))?;
            let (_, rows) = fmt.plane_size(p, w, h).unwrap_or((0, 0));
            offset += stride * rows as u64;
            out.push(span);
        }
        let used = offset - u64::from(d.chunk.offset);
        let last =
            out.last().map(|s| (s.offset + s.len) as u64).unwrap_or(0) - u64::from(d.chunk.offset);
        if u64::from(d.chunk.size) < last.min(used) {
            return Err(Invalid(
                DropReason::BadChunk,
                format!(
                    "chunk size {} smaller than the planes ({last})",
                    d.chunk.size
                ),
            ));
        }
    } else {
        return Err(Invalid(
            DropReason::BadLayout,
            format!("{} datas for a {}-plane format", datas.len(), planes),
        ));
    }
    Ok(ShmLayout::Planes(out))
}

/// A validated DMA-BUF plane: data index, offset, stride.
pub type DmaSpan = (usize, u32, u32);

/// Validate a DMA-BUF buffer: enough datas of type DmaBuf with valid fds and
/// non-zero strides (sizes are ignored for DMA-BUF, as the spec says).
pub fn validate_dmabuf(
    fmt: PixelFormat,
    datas: &[DataDesc],
    fds: &[RawFd],
) -> Result<Vec<DmaSpan>, Invalid> {
    let planes = fmt.planes();
    // Explicit sync adds two SyncObj datas at the end (acquire, release).
    let sync = datas
        .iter()
        .rev()
        .take_while(|d| d.data_type == data_type::SYNC_OBJ)
        .count();
    if sync != 0 && sync != 2 {
        return Err(Invalid(
            DropReason::BadLayout,
            format!("{sync} SyncObj datas (explicit sync has 2)"),
        ));
    }
    let datas = &datas[..datas.len() - sync];
    if datas.len() < planes || datas.len() > 4 || fds.len() < datas.len() {
        return Err(Invalid(
            DropReason::BadLayout,
            format!("{} datas for a {}-plane DMA-BUF", datas.len(), planes),
        ));
    }
    let mut out = Vec::with_capacity(planes);
    for (p, d) in datas.iter().take(planes).enumerate() {
        if d.data_type != data_type::DMA_BUF {
            return Err(Invalid(
                DropReason::BadLayout,
                format!("data {p} has type {} in a DMA-BUF stream", d.data_type),
            ));
        }
        if fds[p] < 0 {
            return Err(Invalid(DropReason::BadLayout, format!("data {p}: no fd")));
        }
        if d.chunk.stride <= 0 {
            return Err(Invalid(
                DropReason::BadChunk,
                format!("plane {p}: stride {}", d.chunk.stride),
            ));
        }
        out.push((p, d.chunk.offset, d.chunk.stride as u32));
    }
    Ok(out)
}

/// Metadata parsed from a buffer (each piece checked against its meta size).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ParsedMeta {
    pub header: Option<(u32, i64, u64)>, // flags, pts, seq
    pub damage: Option<Vec<Region>>,
    pub crop: Option<Region>,
    pub cursor: Option<Cursor>,
    pub transform: u32,
    pub flags: u32,
    /// Explicit sync: (acquire point, release point).
    pub sync_timeline: Option<(u64, u64)>,
    /// Metas that were present but malformed (counted, then ignored).
    pub bad: u32,
}

fn read<T: Copy>(bytes: &[u8], at: usize) -> Option<T> {
    let end = at.checked_add(std::mem::size_of::<T>())?;
    let src = bytes.get(at..end)?;
    // SAFETY: `src` holds exactly size_of::<T>() initialized bytes and T is
    // a plain C struct (Copy, no invalid bit patterns among the spa_meta_*
    // types used here); read_unaligned tolerates any alignment.
    Some(unsafe { std::ptr::read_unaligned(src.as_ptr() as *const T) })
}

/// The (acquire, release) points of a SyncTimeline meta, if there is a
/// well-formed one (explicit sync).
pub fn sync_timeline(metas: &[(u32, &[u8])]) -> Option<(u64, u64)> {
    metas
        .iter()
        .find(|(kind, _)| *kind == meta_type::SYNC_TIMELINE)
        .and_then(|(_, bytes)| read::<crate::negotiation::SpaMetaSyncTimeline>(bytes, 0))
        .map(|t| (t.acquire_point, t.release_point))
}

/// Parse metas given as (type, bytes) pairs for a `w` x `h` frame.
pub fn parse_metas(metas: &[(u32, &[u8])], w: u32, h: u32) -> ParsedMeta {
    use libspa_sys::{spa_meta_cursor, spa_meta_header, spa_meta_region, spa_meta_videotransform};
    let mut out = ParsedMeta::default();
    for &(kind, bytes) in metas {
        match kind {
            meta_type::HEADER => match read::<spa_meta_header>(bytes, 0) {
                Some(hd) => {
                    out.header = Some((hd.flags, hd.pts, hd.seq));
                    if hd.flags & libspa_sys::SPA_META_HEADER_FLAG_CORRUPTED != 0 {
                        out.flags |= flags::CORRUPTED;
                    }
                }
                None => out.bad += 1,
            },
            meta_type::VIDEO_DAMAGE => {
                let n =
                    (bytes.len() / std::mem::size_of::<spa_meta_region>()).min(MAX_DAMAGE_RECTS);
                let mut rects = Vec::new();
                for i in 0..n {
                    let Some(r) =
                        read::<spa_meta_region>(bytes, i * std::mem::size_of::<spa_meta_region>())
                    else {
                        break;
                    };
                    // An empty region ends the list (spa_meta_region_is_valid).
                    if r.region.size.width == 0 || r.region.size.height == 0 {
                        break;
                    }
                    let reg = Region {
                        x: r.region.position.x,
                        y: r.region.position.y,
                        width: r.region.size.width,
                        height: r.region.size.height,
                    };
                    match reg.clip(w, h) {
                        Some(c) => {
                            if c != reg {
                                out.flags |= flags::DAMAGE_CLIPPED;
                            }
                            rects.push(c)
                        }
                        None => out.flags |= flags::DAMAGE_CLIPPED,
                    }
                }
                out.damage = Some(rects);
            }
            meta_type::VIDEO_CROP => match read::<spa_meta_region>(bytes, 0) {
                Some(r) => {
                    let reg = Region {
                        x: r.region.position.x,
                        y: r.region.position.y,
                        width: r.region.size.width,
                        height: r.region.size.height,
                    };
                    // A zero-sized crop means "no crop".
                    if reg.width != 0 && reg.height != 0 {
                        out.crop = reg.clip(w, h);
                        if out.crop != Some(reg) {
                            out.bad += 1;
                        }
                    }
                }
                None => out.bad += 1,
            },
            meta_type::SYNC_TIMELINE => {
                match read::<crate::negotiation::SpaMetaSyncTimeline>(bytes, 0) {
                    Some(t) => out.sync_timeline = Some((t.acquire_point, t.release_point)),
                    None => out.bad += 1,
                }
            }
            meta_type::VIDEO_TRANSFORM => match read::<spa_meta_videotransform>(bytes, 0) {
                Some(t) if t.transform <= 7 => out.transform = t.transform,
                _ => out.bad += 1,
            },
            meta_type::CURSOR => {
                let Some(c) = read::<spa_meta_cursor>(bytes, 0) else {
                    out.bad += 1;
                    continue;
                };
                if c.id == 0 {
                    continue; // no cursor information
                }
                let mut cursor = Cursor {
                    id: c.id,
                    x: c.position.x,
                    y: c.position.y,
                    hotspot_x: c.hotspot.x,
                    hotspot_y: c.hotspot.y,
                    bitmap: None,
                };
                let bo = c.bitmap_offset as usize;
                if bo != 0 {
                    match parse_bitmap(bytes, bo) {
                        Some(b) => cursor.bitmap = b,
                        None => out.bad += 1,
                    }
                }
                out.cursor = Some(cursor);
            }
            _ => {}
        }
    }
    out
}

/// Parse the bitmap at `bo` inside a cursor meta. `Some(None)` for an
/// empty bitmap, `None` for a malformed one.
fn parse_bitmap(bytes: &[u8], bo: usize) -> Option<Option<CursorBitmap>> {
    use libspa_sys::{spa_meta_bitmap, spa_meta_cursor};
    if bo < std::mem::size_of::<spa_meta_cursor>() {
        return None;
    }
    let b = read::<spa_meta_bitmap>(bytes, bo)?;
    if b.size.width == 0 || b.size.height == 0 {
        return Some(None);
    }
    if b.size.width > CURSOR_BITMAP_SIZE || b.size.height > CURSOR_BITMAP_SIZE {
        return None;
    }
    let row = b.size.width as usize * 4;
    let stride = if b.stride == 0 {
        row
    } else {
        b.stride as usize
    };
    if b.stride < 0 || stride < row {
        return None;
    }
    let start = bo.checked_add(b.offset as usize)?;
    let len = stride * (b.size.height as usize - 1) + row;
    let px = bytes.get(start..start.checked_add(len)?)?;
    let mut pixels = Vec::with_capacity(row * b.size.height as usize);
    for y in 0..b.size.height as usize {
        pixels.extend_from_slice(&px[y * stride..y * stride + row]);
    }
    let spa = libspa::param::video::VideoFormat::from_raw(b.format);
    Some(Some(CursorBitmap {
        format: PixelFormat::from_spa(spa),
        spa_format: b.format,
        width: b.size.width,
        height: b.size.height,
        stride: row as u32,
        pixels,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shm(len: usize, offset: u32, size: u32, stride: i32) -> DataDesc {
        DataDesc {
            data_type: data_type::MEM_FD,
            mapped_len: len,
            chunk: ChunkDesc {
                offset,
                size,
                stride,
                flags: 0,
            },
        }
    }

    #[test]
    fn good_packed_frame() {
        let d = shm(64 * 48 * 4, 0, 64 * 48 * 4, 256);
        let l = validate_shm(PixelFormat::Bgrx, 64, 48, &[d]).unwrap();
        assert_eq!(
            l,
            ShmLayout::Planes(vec![PlaneSpan {
                data: 0,
                offset: 0,
                stride: 256,
                len: 256 * 48
            }])
        );
    }

    #[test]
    fn rejects_lies() {
        let f = PixelFormat::Bgrx;
        let r = |d: DataDesc| validate_shm(f, 64, 48, &[d]).unwrap_err().0;
        // offset past the end
        assert_eq!(r(shm(12288, 12288, 12288, 256)), DropReason::BadChunk);
        // 32-bit wrap-around: offset + size overflows u32
        assert_eq!(r(shm(12288, u32::MAX - 10, 100, 256)), DropReason::BadChunk);
        // stride smaller than a row
        assert_eq!(r(shm(12288, 0, 12288, 255)), DropReason::BadChunk);
        // size smaller than stride x height
        assert_eq!(r(shm(12288, 0, 1000, 256)), DropReason::BadChunk);
        // huge stride
        assert_eq!(r(shm(12288, 0, 12288, i32::MAX)), DropReason::BadChunk);
        // negative stride
        assert_eq!(r(shm(12288, 0, 12288, -256)), DropReason::BadChunk);
        // too many planes
        let d = shm(12288, 0, 12288, 256);
        assert_eq!(
            validate_shm(f, 64, 48, &[d, d, d, d, d]).unwrap_err().0,
            DropReason::BadLayout
        );
        // one more data than the format has planes
        assert_eq!(
            validate_shm(f, 64, 48, &[d, d]).unwrap_err().0,
            DropReason::BadLayout
        );
        assert_eq!(
            validate_shm(PixelFormat::Nv12, 64, 48, &[d, d, d])
                .unwrap_err()
                .0,
            DropReason::BadLayout
        );
        // a DMA-BUF data in an SHM stream
        let mut dd = d;
        dd.data_type = data_type::DMA_BUF;
        assert_eq!(
            validate_shm(f, 64, 48, &[dd]).unwrap_err().0,
            DropReason::BadLayout
        );
        // zero size is a cursor-only update
        assert_eq!(
            validate_shm(f, 64, 48, &[shm(12288, 0, 0, 256)]).unwrap(),
            ShmLayout::CursorOnly
        );
    }

    #[test]
    fn multi_plane_in_one_or_several_datas() {
        // I420 5x3 in one data, stride 5 -> chroma stride 3
        let l = validate_shm(PixelFormat::I420, 5, 3, &[shm(100, 0, 27, 5)]).unwrap();
        let ShmLayout::Planes(p) = l else { panic!() };
        assert_eq!(p.len(), 3);
        assert_eq!((p[1].offset, p[1].stride), (15, 3));
        assert_eq!((p[2].offset, p[2].stride), (21, 3));
        // too small for the chroma planes
        assert!(validate_shm(PixelFormat::I420, 5, 3, &[shm(20, 0, 20, 5)]).is_err());
        // NV12 in two datas
        let l = validate_shm(
            PixelFormat::Nv12,
            4,
            4,
            &[shm(16, 0, 16, 4), shm(8, 0, 8, 4)],
        )
        .unwrap();
        let ShmLayout::Planes(p) = l else { panic!() };
        assert_eq!(
            p[1],
            PlaneSpan {
                data: 1,
                offset: 0,
                stride: 4,
                len: 8
            }
        );
        // NV12 chroma data too small
        assert!(validate_shm(
            PixelFormat::Nv12,
            4,
            4,
            &[shm(16, 0, 16, 4), shm(7, 0, 7, 4)]
        )
        .is_err());
    }

    #[test]
    fn dmabuf_validation() {
        let mut d = shm(0, 0, 0, 256);
        d.data_type = data_type::DMA_BUF;
        assert_eq!(
            validate_dmabuf(PixelFormat::Bgrx, &[d], &[5]).unwrap(),
            vec![(0, 0, 256)]
        );
        assert!(validate_dmabuf(PixelFormat::Bgrx, &[d], &[-1]).is_err());
        assert!(validate_dmabuf(PixelFormat::Nv12, &[d], &[5]).is_err());
        let mut z = d;
        z.chunk.stride = 0;
        assert!(validate_dmabuf(PixelFormat::Bgrx, &[z], &[5]).is_err());
    }

    fn bytes_of<T>(v: &T) -> Vec<u8> {
        // SAFETY: reading the bytes of a plain C struct for a test.
        unsafe { std::slice::from_raw_parts(v as *const T as *const u8, std::mem::size_of::<T>()) }
            .to_vec()
    }

    #[test]
    fn metas_are_bounds_checked() {
        use libspa_sys::*;
        let hdr = spa_meta_header {
            flags: SPA_META_HEADER_FLAG_CORRUPTED,
            offset: 0,
            pts: 1234,
            dts_offset: 0,
            seq: 77,
        };
        let hb = bytes_of(&hdr);
        let mut regions = Vec::new();
        for r in [
            (10, 10, 5, 5),
            (-5, 0, 10, 10),
            (500, 500, 5, 5),
            (0, 0, 0, 0),
            (1, 1, 1, 1),
        ] {
            regions.extend(bytes_of(&spa_meta_region {
                region: spa_rectangle_region(r),
            }));
        }
        let m = parse_metas(
            &[
                (meta_type::HEADER, &hb),
                (meta_type::VIDEO_DAMAGE, &regions),
            ],
            100,
            100,
        );
        assert_eq!(m.header, Some((SPA_META_HEADER_FLAG_CORRUPTED, 1234, 77)));
        assert!(m.flags & flags::CORRUPTED != 0);
        assert!(m.flags & flags::DAMAGE_CLIPPED != 0);
        // terminated at the empty region; the out-of-frame one dropped
        assert_eq!(
            m.damage.unwrap(),
            vec![
                Region {
                    x: 10,
                    y: 10,
                    width: 5,
                    height: 5
                },
                Region {
                    x: 0,
                    y: 0,
                    width: 5,
                    height: 10
                }
            ]
        );
        // truncated header
        let m = parse_metas(&[(meta_type::HEADER, &hb[..10])], 100, 100);
        assert_eq!((m.header, m.bad), (None, 1));
    }

    fn spa_rectangle_region(r: (i32, i32, u32, u32)) -> libspa_sys::spa_region {
        libspa_sys::spa_region {
            position: libspa_sys::spa_point { x: r.0, y: r.1 },
            size: libspa_sys::spa_rectangle {
                width: r.2,
                height: r.3,
            },
        }
    }

    #[test]
    fn cursor_bitmap_checks() {
        use libspa_sys::*;
        let cs = std::mem::size_of::<spa_meta_cursor>();
        let bs = std::mem::size_of::<spa_meta_bitmap>();
        let mk = |w: u32, h: u32, stride: i32, total: usize| {
            let c = spa_meta_cursor {
                id: 3,
                flags: 0,
                position: spa_point { x: 7, y: 9 },
                hotspot: spa_point { x: 1, y: 2 },
                bitmap_offset: cs as u32,
            };
            let b = spa_meta_bitmap {
                format: libspa::param::video::VideoFormat::BGRA.as_raw(),
                size: spa_rectangle {
                    width: w,
                    height: h,
                },
                stride,
                offset: bs as u32,
            };
            let mut v = bytes_of(&c);
            v.extend(bytes_of(&b));
            v.extend((0..(total - cs - bs)).map(|i| i as u8));
            v
        };
        let ok = mk(4, 4, 16, cs + bs + 64);
        let m = parse_metas(&[(meta_type::CURSOR, &ok)], 10, 10);
        let c = m.cursor.unwrap();
        assert_eq!((c.x, c.y, c.hotspot_x, c.hotspot_y), (7, 9, 1, 2));
        let b = c.bitmap.unwrap();
        assert_eq!((b.width, b.height, b.pixels.len()), (4, 4, 64));
        assert_eq!(b.format, Some(PixelFormat::Bgra));
        // bitmap larger than the meta: cursor kept, bitmap dropped, counted
        let bad = mk(64, 64, 256, cs + bs + 64);
        let m = parse_metas(&[(meta_type::CURSOR, &bad)], 10, 10);
        assert!(m.cursor.unwrap().bitmap.is_none());
        assert_eq!(m.bad, 1);
        // oversized dimensions
        let huge = mk(100000, 1, 400000, cs + bs + 64);
        assert_eq!(parse_metas(&[(meta_type::CURSOR, &huge)], 10, 10).bad, 1);
    }

    #[test]
    fn map_checks_fd_size() {
        // SAFETY: creating a memfd for the test.
        let fd = unsafe { libc::memfd_create(c"t".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(fd >= 0);
        // SAFETY: sizing our own memfd.
        assert_eq!(unsafe { libc::ftruncate(fd, 4096) }, 0);
        assert!(matches!(
            Mapping::map_fd(fd, 0, 8192),
            Err(MapError::TooSmall { .. })
        ));
        let m = Mapping::map_fd(fd, 0, 4096).unwrap();
        assert_eq!(m.bytes().unwrap().1, 4096);
        assert!(!m.sealed());
        assert_eq!(Mapping::map_fd(-1, 0, 1).unwrap_err(), MapError::BadFd);
        let mut pipe = [0; 2];
        // SAFETY: creating a pipe for the test.
        assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
        assert!(matches!(
            Mapping::map_fd(pipe[0], 0, 16),
            Err(MapError::NotAFile(_))
        ));
        // SAFETY: closing our own fds.
        unsafe {
            libc::close(fd);
            libc::close(pipe[0]);
            libc::close(pipe[1]);
        }
    }
}
