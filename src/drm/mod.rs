//! Direct DRM/KMS capture: what a CRTC scans out, read straight from the
//! kernel and handed over as a DMA-BUF [`Frame`], the same kind of frame a
//! PipeWire stream delivers (so the same importers, or
//! [`crate::import::cpu::read_linear`] for linear buffers, read it).
//!
//! For users who own the display stack (a virtual connector in an Xorg
//! driver, a kiosk, an XR virtual monitor) and have no compositor that speaks
//! ScreenCast.
//!
//! How a frame is made: the CRTC's current framebuffer id comes from
//! `GETCRTC` (that of its primary plane); `GETFB2` gives its format,
//! modifier, pitches, offsets and GEM handles; each distinct handle is
//! exported with `PRIME_HANDLE_TO_FD` and closed again. A frame is exported
//! once per framebuffer: while the CRTC shows the same framebuffer id,
//! [`DrmSource::capture`] returns the frame it already has (the buffer is the
//! live scanout memory, so front-buffer rendering shows up in it).
//!
//! Permissions: the kernel fills in `GETFB2`'s handles only for the DRM
//! master or a process with `CAP_SYS_ADMIN`; anyone else gets zeros, which
//! [`DrmSource::capture`] reports as [`Error::Permission`]
//! (`WRD_ERR_PERMISSION`).
//!
//! Only the primary plane is captured (no cursor or overlay planes).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use drm::control::{
    connector, crtc, encoder, framebuffer, Device as ControlDevice, GetPlanarFramebufferError,
};
use drm::{Device as BasicDevice, VblankWaitFlags, VblankWaitTarget};
use drm_fourcc::DrmFourcc;

use crate::buffer::Mapping;
use crate::dmabuf::DRM_FORMAT_MOD_INVALID;
use crate::error::{Error, Result};
use crate::format::PixelFormat;
use crate::frame::{flags, DmaPlane, Frame, FrameData, Pixels, Region};
use crate::negotiation::{ColorMatrix, ColorRange};

/// The default DRM device.
pub const DEFAULT_CARD: &str = "/dev/dri/card0";

/// An open DRM device (a primary node, `/dev/dri/cardN`).
#[derive(Debug)]
pub struct DrmDevice {
    fd: OwnedFd,
}

impl AsFd for DrmDevice {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl BasicDevice for DrmDevice {}
impl ControlDevice for DrmDevice {}

/// A video mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModeInfo {
    pub width: u32,
    pub height: u32,
    /// Vertical refresh in Hz, as the kernel rounds it.
    pub refresh_hz: u32,
    /// Pixel clock in kHz.
    pub clock_khz: u32,
    /// The mode's name (`"1024x768"`).
    pub name: String,
    /// The connector's preferred mode.
    pub preferred: bool,
}

impl From<&drm::control::Mode> for ModeInfo {
    fn from(m: &drm::control::Mode) -> Self {
        let (w, h) = m.size();
        ModeInfo {
            width: w.into(),
            height: h.into(),
            refresh_hz: m.vrefresh(),
            clock_khz: m.clock(),
            name: m.name().to_string_lossy().into_owned(),
            preferred: m
                .mode_type()
                .contains(drm::control::ModeTypeFlags::PREFERRED),
        }
    }
}

/// Whether something is plugged into a connector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionState {
    Connected,
    Disconnected,
    Unknown,
}

/// A connector (an output), as listed by [`DrmDevice::connectors`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectorInfo {
    /// The KMS object id.
    pub id: u32,
    /// `"Virtual-1"`, `"HDMI-A-2"`, ...: the interface and its index.
    pub name: String,
    pub state: ConnectionState,
    /// The CRTC driving it now, if any.
    pub crtc: Option<u32>,
    /// The modes the connector offers (empty when disconnected).
    pub modes: Vec<ModeInfo>,
}

impl ConnectorInfo {
    /// True when a monitor (or a virtual one) is connected.
    pub fn connected(&self) -> bool {
        self.state == ConnectionState::Connected
    }
}

/// A CRTC (a scanout engine), as listed by [`DrmDevice::crtcs`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrtcInfo {
    /// The KMS object id.
    pub id: u32,
    /// Its index among the device's CRTCs (the "pipe").
    pub index: u32,
    /// The mode it runs, `None` when it is off.
    pub mode: Option<ModeInfo>,
    /// The framebuffer its primary plane scans out, if any.
    pub fb: Option<u32>,
    /// Position of the scanout within the framebuffer.
    pub x: u32,
    pub y: u32,
}

/// What a [`DrmSource`] captures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Whatever CRTC drives this connector (followed when it changes).
    Connector(u32),
    /// This CRTC.
    Crtc(u32),
}

fn io_error(what: &str, e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => {
            Error::Permission(format!("{what}: {e} (DRM master or CAP_SYS_ADMIN needed)"))
        }
        _ => Error::Io(io::Error::new(e.kind(), format!("{what}: {e}"))),
    }
}

/// An ioctl on a KMS object: ENOENT means the object id does not exist.
fn object_error(id: u32, what: &str, e: io::Error) -> Error {
    if e.raw_os_error() == Some(libc::ENOENT) {
        Error::NodeNotFound(id)
    } else {
        io_error(what, e)
    }
}

impl DrmDevice {
    /// Open a DRM primary node read-write.
    ///
    /// Errors: [`Error::Io`] (kind `NotFound`) when there is no such device,
    /// [`Error::Permission`] when it may not be opened, [`Error::Unsupported`]
    /// when it is not a KMS device.
    pub fn open(path: impl AsRef<Path>) -> Result<DrmDevice> {
        let path = path.as_ref();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => Error::Io(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no DRM device at {}", path.display()),
                )),
                _ => io_error(&format!("opening {}", path.display()), e),
            })?;
        Self::checked(OwnedFd::from(file))
    }

    /// Use an open DRM fd (duplicated: the caller keeps its own). A dup
    /// shares the open file, so it is DRM master when the caller's fd is.
    pub fn from_fd(fd: BorrowedFd<'_>) -> Result<DrmDevice> {
        let fd = fd.try_clone_to_owned().map_err(|e| io_error("dup", e))?;
        Self::checked(fd)
    }

    fn checked(fd: OwnedFd) -> Result<DrmDevice> {
        let dev = DrmDevice { fd };
        dev.resource_handles().map_err(|e| {
            Error::Unsupported(format!(
                "not a KMS device (DRM_IOCTL_MODE_GETRESOURCES failed: {e})"
            ))
        })?;
        Ok(dev)
    }

    /// The device's connectors with their state, CRTC and modes (no forced
    /// probe: the state the kernel last saw).
    pub fn connectors(&self) -> Result<Vec<ConnectorInfo>> {
        let res = self
            .resource_handles()
            .map_err(|e| io_error("GETRESOURCES", e))?;
        let mut out = Vec::new();
        for &h in res.connectors() {
            let id = u32::from(h);
            let info = match self.get_connector(h, false) {
                Ok(i) => i,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => return Err(io_error("GETCONNECTOR", e)),
            };
            out.push(ConnectorInfo {
                id,
                name: format!("{}-{}", info.interface().as_str(), info.interface_id()),
                state: match info.state() {
                    connector::State::Connected => ConnectionState::Connected,
                    connector::State::Disconnected => ConnectionState::Disconnected,
                    connector::State::Unknown => ConnectionState::Unknown,
                },
                crtc: self.crtc_of(&info).map(u32::from),
                modes: info.modes().iter().map(ModeInfo::from).collect(),
            });
        }
        Ok(out)
    }

    /// The device's CRTCs with their mode and framebuffer.
    pub fn crtcs(&self) -> Result<Vec<CrtcInfo>> {
        let res = self
            .resource_handles()
            .map_err(|e| io_error("GETRESOURCES", e))?;
        let mut out = Vec::new();
        for (index, &h) in res.crtcs().iter().enumerate() {
            let c = self
                .get_crtc(h)
                .map_err(|e| object_error(h.into(), "GETCRTC", e))?;
            let (x, y) = c.position();
            out.push(CrtcInfo {
                id: h.into(),
                index: index as u32,
                mode: c.mode().as_ref().map(ModeInfo::from),
                fb: c.framebuffer().map(u32::from),
                x,
                y,
            });
        }
        Ok(out)
    }

    fn crtc_of(&self, info: &connector::Info) -> Option<crtc::Handle> {
        let enc: encoder::Handle = info.current_encoder()?;
        self.get_encoder(enc).ok()?.crtc()
    }

    /// The index ("pipe") of a CRTC.
    fn crtc_index(&self, h: crtc::Handle) -> Option<u32> {
        let res = self.resource_handles().ok()?;
        res.crtcs().iter().position(|c| *c == h).map(|i| i as u32)
    }
}

/// What is exported for one framebuffer.
struct Exported {
    fb: u32,
    frame: Frame,
}

/// Captures what one CRTC scans out. See the [module docs](self).
pub struct DrmSource {
    dev: DrmDevice,
    target: Target,
    cached: Option<Exported>,
    /// Frames exported so far (the frames' sequence numbers).
    sequence: u64,
    /// Bumped when the size or format changes.
    format_generation: u64,
    last_format: Option<(u32, u32, DrmFourcc, u64)>,
    /// `None` until tried; then whether `WAIT_VBLANK` works on the CRTC.
    vblank: Option<bool>,
    /// Exports done (for tests: re-exports of an unchanged fb are avoided).
    exports: u64,
}

impl std::fmt::Debug for DrmSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DrmSource")
            .field("target", &self.target)
            .field("fb", &self.cached.as_ref().map(|c| c.fb))
            .field("sequence", &self.sequence)
            .finish()
    }
}

/// Where a target stands now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetState {
    /// The CRTC scans out framebuffer `fb` in `mode`.
    Active {
        crtc: u32,
        fb: u32,
        mode: Option<ModeInfo>,
    },
    /// The connector has nothing plugged in.
    Disconnected,
    /// The connector is connected but no CRTC drives it (no mode set).
    NotDriven,
    /// The CRTC is off or scans out no framebuffer.
    CrtcOff { crtc: u32 },
}

impl DrmSource {
    /// Open `path` (for example [`DEFAULT_CARD`]) and capture `target`.
    pub fn open(path: impl AsRef<Path>, target: Target) -> Result<DrmSource> {
        Self::new(DrmDevice::open(path)?, target)
    }

    /// Capture `target` on an open device. Fails with
    /// [`Error::NodeNotFound`] when the connector or CRTC id is not one of
    /// the device's.
    pub fn new(dev: DrmDevice, target: Target) -> Result<DrmSource> {
        match target {
            Target::Connector(id) => {
                let h = drm::control::from_u32::<connector::Handle>(id)
                    .ok_or(Error::NodeNotFound(id))?;
                dev.get_connector(h, false)
                    .map_err(|e| object_error(id, "GETCONNECTOR", e))?;
            }
            Target::Crtc(id) => {
                let h =
                    drm::control::from_u32::<crtc::Handle>(id).ok_or(Error::NodeNotFound(id))?;
                dev.get_crtc(h)
                    .map_err(|e| object_error(id, "GETCRTC", e))?;
            }
        }
        Ok(DrmSource {
            dev,
            target,
            cached: None,
            sequence: 0,
            format_generation: 0,
            last_format: None,
            vblank: None,
            exports: 0,
        })
    }

    /// The device.
    pub fn device(&self) -> &DrmDevice {
        &self.dev
    }

    /// The target.
    pub fn target(&self) -> Target {
        self.target
    }

    /// How many framebuffers were exported so far (each new framebuffer
    /// once; an unchanged one is not exported again).
    pub fn export_count(&self) -> u64 {
        self.exports
    }

    /// How [`next_frame`](Self::next_frame) waits: `Some(true)` on vblanks,
    /// `Some(false)` by polling (the driver has no vblank support), `None`
    /// before it first waited.
    pub fn waits_on_vblank(&self) -> Option<bool> {
        self.vblank
    }

    /// Where the target stands: which CRTC and framebuffer, or why there is
    /// nothing to capture.
    pub fn state(&self) -> Result<TargetState> {
        let crtc = match self.target {
            Target::Crtc(id) => {
                drm::control::from_u32::<crtc::Handle>(id).ok_or(Error::NodeNotFound(id))?
            }
            Target::Connector(id) => {
                let h = drm::control::from_u32::<connector::Handle>(id)
                    .ok_or(Error::NodeNotFound(id))?;
                let info = self
                    .dev
                    .get_connector(h, false)
                    .map_err(|e| object_error(id, "GETCONNECTOR", e))?;
                if info.state() == connector::State::Disconnected {
                    return Ok(TargetState::Disconnected);
                }
                match self.dev.crtc_of(&info) {
                    Some(c) => c,
                    None => return Ok(TargetState::NotDriven),
                }
            }
        };
        let id = u32::from(crtc);
        let info = self
            .dev
            .get_crtc(crtc)
            .map_err(|e| object_error(id, "GETCRTC", e))?;
        match (info.framebuffer(), info.mode()) {
            (Some(fb), mode) => Ok(TargetState::Active {
                crtc: id,
                fb: fb.into(),
                mode: mode.as_ref().map(ModeInfo::from),
            }),
            (None, _) => Ok(TargetState::CrtcOff { crtc: id }),
        }
    }

    /// The CRTC and framebuffer to capture, or the error saying why there
    /// is none.
    fn active(&self) -> Result<(u32, u32)> {
        let what = match self.target {
            Target::Connector(id) => format!("connector {id}"),
            Target::Crtc(id) => format!("CRTC {id}"),
        };
        match self.state()? {
            TargetState::Active { crtc, fb, .. } => Ok((crtc, fb)),
            TargetState::Disconnected => Err(Error::InvalidState(format!(
                "{what} is disconnected (no monitor plugged in)"
            ))),
            TargetState::NotDriven => Err(Error::InvalidState(format!(
                "{what} is connected but no CRTC drives it (no mode set)"
            ))),
            TargetState::CrtcOff { crtc } => Err(Error::InvalidState(match self.target {
                Target::Crtc(_) => format!("CRTC {crtc} is off: it scans out no framebuffer"),
                Target::Connector(_) => {
                    format!("CRTC {crtc} ({what}) is off: it scans out no framebuffer")
                }
            })),
        }
    }

    /// The frame the target shows now. Exports only when the framebuffer
    /// changed since the last call (a page flip or a mode change); otherwise
    /// returns the frame it has (same sequence number).
    ///
    /// Errors: [`Error::Permission`] without DRM master or `CAP_SYS_ADMIN`;
    /// [`Error::InvalidState`] when the connector is disconnected, not
    /// driven, or its CRTC is off; [`Error::NodeNotFound`] when the target
    /// went away; [`Error::Unsupported`] for a framebuffer format wrd-capture
    /// has no [`PixelFormat`] for; [`Error::Io`] when an ioctl fails.
    pub fn capture(&mut self) -> Result<Frame> {
        let (_, fb) = self.active()?;
        self.capture_fb(fb)
    }

    fn capture_fb(&mut self, fb: u32) -> Result<Frame> {
        if let Some(c) = &self.cached {
            if c.fb == fb {
                return Ok(c.frame.clone());
            }
        }
        let frame = self.export(fb)?;
        self.cached = Some(Exported {
            fb,
            frame: frame.clone(),
        });
        Ok(frame)
    }

    /// Wait for the target to show a framebuffer other than the last one
    /// captured (a page flip or mode change), up to `timeout`, and return
    /// it. Waits on vblanks where the driver reports them (`WAIT_VBLANK`),
    /// else polls every `poll` (the caller's rate). [`Error::Timeout`] when
    /// nothing changed in time (a vblank wait may overrun `timeout` by up to
    /// one frame, or the kernel's 3 s limit if the CRTC stops). The first call
    /// returns the current frame. With a CRTC that never flips (front-buffer
    /// rendering), call [`capture`](Self::capture) at your rate instead.
    pub fn next_frame(&mut self, timeout: Duration, poll: Duration) -> Result<Frame> {
        let deadline = Instant::now() + timeout;
        loop {
            let (crtc, fb) = self.active()?;
            if self.cached.as_ref().map(|c| c.fb) != Some(fb) {
                return self.capture_fb(fb);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Timeout);
            }
            if !self.wait_vblank(crtc) {
                std::thread::sleep(poll.min(deadline - now).max(Duration::from_micros(100)));
            }
        }
    }

    /// Block until the next vblank of `crtc`; false when the driver has no
    /// vblank support (remembered) or the wait failed.
    fn wait_vblank(&mut self, crtc: u32) -> bool {
        if self.vblank == Some(false) {
            return false;
        }
        let Some(h) = drm::control::from_u32::<crtc::Handle>(crtc) else {
            return false;
        };
        let Some(index) = self.dev.crtc_index(h) else {
            return false;
        };
        // Pipe 0 is the default; other pipes go in the HIGH_CRTC bits.
        let r = self.dev.wait_vblank(
            VblankWaitTarget::Relative(1),
            VblankWaitFlags::empty(),
            index,
            0,
        );
        match r {
            Ok(_) => {
                self.vblank = Some(true);
                true
            }
            Err(_) => {
                // EINVAL/EOPNOTSUPP: no vblank interrupts (virtio-gpu,
                // some virtual drivers); poll from now on.
                if self.vblank.is_none() {
                    self.vblank = Some(false);
                }
                false
            }
        }
    }

    /// `GETFB2`, export every distinct handle, close the handles.
    fn export(&mut self, fb_id: u32) -> Result<Frame> {
        let fb_h = drm::control::from_u32::<framebuffer::Handle>(fb_id)
            .ok_or(Error::NodeNotFound(fb_id))?;
        let info = self.dev.get_planar_framebuffer(fb_h).map_err(|e| match e {
            GetPlanarFramebufferError::Io(e) => object_error(fb_id, "GETFB2", e),
            GetPlanarFramebufferError::UnrecognizedFourcc(f) => Error::Unsupported(format!(
                "framebuffer {fb_id} has a fourcc the drm-fourcc crate does not know ({f})"
            )),
        })?;
        let handles = info.buffers();
        let pitches = info.pitches();
        let offsets = info.offsets();
        // Close our GEM handles whatever happens below.
        let _close = CloseHandles {
            dev: &self.dev,
            handles,
        };
        if handles[0].is_none() {
            return Err(Error::Permission(format!(
                "GETFB2 returned no buffer handles for framebuffer {fb_id}: reading another \
                 client's framebuffer needs DRM master or CAP_SYS_ADMIN"
            )));
        }
        let (width, height) = info.size();
        let fourcc = info.pixel_format();
        let format = PixelFormat::from_drm(fourcc).ok_or_else(|| {
            Error::Unsupported(format!(
                "framebuffer {fb_id} has format {fourcc:?}, which wrd-capture has no pixel format for"
            ))
        })?;
        let modifier = info
            .modifier()
            .map(u64::from)
            .unwrap_or(DRM_FORMAT_MOD_INVALID);

        let mut fds: Vec<(u32, Arc<Mapping>)> = Vec::new();
        let mut planes = Vec::new();
        for i in 0..4 {
            let Some(h) = handles[i] else { break };
            let raw: u32 = h.into();
            let fd = match fds.iter().find(|(r, _)| *r == raw) {
                Some((_, m)) => m.clone(),
                None => {
                    let owned = self
                        .dev
                        .buffer_to_prime_fd(h, libc::O_CLOEXEC as u32)
                        .map_err(|e| io_error("PRIME_HANDLE_TO_FD", e))?;
                    let m = Arc::new(Mapping::Fd(owned));
                    fds.push((raw, m.clone()));
                    m
                }
            };
            let Mapping::Fd(owned) = &*fd else {
                unreachable!("only fds are pushed")
            };
            planes.push(DmaPlane {
                fd: owned.as_raw_fd(),
                offset: offsets[i],
                stride: pitches[i],
            });
        }
        self.exports += 1;
        self.sequence += 1;
        let key = (width, height, fourcc, modifier);
        if self.last_format != Some(key) {
            if self.last_format.is_some() {
                self.format_generation += 1;
            }
            self.last_format = Some(key);
        }
        let data = FrameData {
            stream_id: 0,
            sequence: self.sequence,
            pts_ns: -1,
            received_ns: crate::monotonic_ns(),
            format,
            width,
            height,
            matrix: ColorMatrix::Unknown,
            range: ColorRange::default(),
            pixels: Pixels::Dmabuf { modifier, planes },
            damage: vec![Region::full(width, height)],
            crop: None,
            cursor: None,
            transform: 0,
            flags: flags::FULL_DAMAGE,
            buffer_index: fb_id,
            format_generation: self.format_generation,
            sync: None,
        };
        Ok(Frame::unheld(
            data,
            fds.into_iter().map(|(_, m)| m).collect(),
        ))
    }
}

/// Closes the GEM handles `GETFB2` opened in our file (each distinct one
/// once); the exported DMA-BUFs keep the buffers alive.
struct CloseHandles<'a> {
    dev: &'a DrmDevice,
    handles: [Option<drm::buffer::Handle>; 4],
}

impl Drop for CloseHandles<'_> {
    fn drop(&mut self) {
        let mut closed: Vec<drm::buffer::Handle> = Vec::new();
        for h in self.handles.iter().flatten() {
            if !closed.contains(h) {
                let _ = self.dev.close_buffer(*h);
                closed.push(*h);
            }
        }
    }
}

#[cfg(test)]
mod tests;
