//! Arguments, exit statuses, connecting (default daemon or an inherited fd)
//! and the stream events that end a command.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wrd_capture::buffer::DropReason;
use wrd_capture::{wrd_status, Capture, CaptureOptions, Event, PixelFormat, StreamState};

pub const USAGE: &str = "\
usage: wrd-capture list   [--fd FD] [--all] [--no-probe]
       wrd-capture record --node ID --frames N --out DIR [--format png|raw]
                          [--fd FD] [--pixel-format F[,F...]] [--timeout S]
       wrd-capture stats  --node ID [--node ID...] [--fd FD] [--seconds S]
       wrd-capture --help | --version

  list     the video source nodes: id, name, media class, size and format
  record   write N frames to DIR, one file per frame named by sequence number
  stats    a live table per stream: fps, latency from pts, drops, buffers held

  --fd FD  use an inherited PipeWire connection (as the portal's
           OpenPipeWireRemote gives) instead of the default daemon

exit status: 0 ok, 1 other error, 2 usage, 3 cannot connect (or bad --fd),
             4 node not found, 5 format negotiation failed, 6 stream ended early
";

pub const EXIT_OTHER: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_CONNECT: u8 = 3;
pub const EXIT_NODE: u8 = 4;
pub const EXIT_NEGOTIATION: u8 = 5;
pub const EXIT_ENDED: u8 = 6;

/// Why a command failed: a message for stderr and the exit status.
#[derive(Debug)]
pub struct Fail {
    pub code: u8,
    pub message: String,
}

impl Fail {
    pub fn new(code: u8, message: impl Into<String>) -> Fail {
        Fail {
            code,
            message: message.into(),
        }
    }
    pub fn usage(message: impl Into<String>) -> Fail {
        Fail::new(EXIT_USAGE, message)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmd {
    List,
    Record,
    Stats,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutFormat {
    Png,
    Raw,
}

#[derive(Debug)]
pub struct Args {
    pub fd: Option<RawFd>,
    pub nodes: Vec<u32>,
    pub frames: Option<u64>,
    pub out: Option<std::path::PathBuf>,
    pub format: OutFormat,
    pub pixel_formats: Vec<PixelFormat>,
    pub timeout: Duration,
    pub seconds: Option<f64>,
    pub all: bool,
    pub probe: bool,
}

fn number<T: std::str::FromStr>(opt: &str, v: &str) -> Result<T, Fail> {
    v.parse()
        .map_err(|_| Fail::usage(format!("{opt}: '{v}' is not a valid number")))
}

impl Args {
    pub fn parse(args: &[String], cmd: Cmd) -> Result<Args, Fail> {
        let mut a = Args {
            fd: None,
            nodes: Vec::new(),
            frames: None,
            out: None,
            format: OutFormat::Png,
            pixel_formats: Vec::new(),
            timeout: Duration::from_secs(10),
            seconds: None,
            all: false,
            probe: true,
        };
        let mut it = args.iter();
        while let Some(opt) = it.next() {
            let (name, inline) = match opt.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
                _ => (opt.as_str(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| it.next().cloned())
                    .ok_or_else(|| Fail::usage(format!("{name} needs a value")))
            };
            let allowed = match (name, cmd) {
                ("--fd", _) => true,
                ("--all" | "--no-probe", Cmd::List) => true,
                ("--node", Cmd::Record | Cmd::Stats) => true,
                (
                    "--frames" | "--out" | "--format" | "--pixel-format" | "--timeout",
                    Cmd::Record,
                ) => true,
                ("--seconds", Cmd::Stats) => true,
                ("-h" | "--help", _) => {
                    print!("{USAGE}");
                    std::process::exit(0);
                }
                _ => false,
            };
            if !allowed {
                return Err(Fail::usage(format!(
                    "unknown option '{opt}' for {}",
                    format!("{cmd:?}").to_lowercase()
                )));
            }
            match name {
                "--fd" => {
                    let fd: RawFd = number(name, &value()?)?;
                    if fd < 0 {
                        return Err(Fail::usage("--fd must be 0 or more"));
                    }
                    a.fd = Some(fd);
                }
                "--all" => a.all = true,
                "--no-probe" => a.probe = false,
                "--node" => {
                    let v = value()?;
                    let id: u32 = number(name, &v)?;
                    if id == u32::MAX {
                        return Err(Fail::usage(format!("--node: {v} is not a node id")));
                    }
                    a.nodes.push(id);
                }
                "--frames" => {
                    let n: u64 = number(name, &value()?)?;
                    if n == 0 {
                        return Err(Fail::usage("--frames must be at least 1"));
                    }
                    a.frames = Some(n);
                }
                "--out" => a.out = Some(value()?.into()),
                "--format" => {
                    a.format = match value()?.as_str() {
                        "png" => OutFormat::Png,
                        "raw" => OutFormat::Raw,
                        v => return Err(Fail::usage(format!("--format: '{v}' (png or raw)"))),
                    }
                }
                "--pixel-format" => {
                    for f in value()?.split(',') {
                        let pf = PixelFormat::from_name(f).ok_or_else(|| {
                            let names: Vec<&str> =
                                PixelFormat::ALL.iter().map(|p| p.name()).collect();
                            Fail::usage(format!(
                                "--pixel-format: unknown format '{f}' (one of {})",
                                names.join(" ")
                            ))
                        })?;
                        a.pixel_formats.push(pf);
                    }
                }
                "--timeout" => {
                    let s: f64 = number(name, &value()?)?;
                    if !(s > 0.0 && s < 1e6) {
                        return Err(Fail::usage(
                            "--timeout must be a positive number of seconds",
                        ));
                    }
                    a.timeout = Duration::from_secs_f64(s);
                }
                "--seconds" => {
                    let s: f64 = number(name, &value()?)?;
                    if !(s > 0.0 && s < 1e9) {
                        return Err(Fail::usage("--seconds must be a positive number"));
                    }
                    a.seconds = Some(s);
                }
                _ => unreachable!("checked above"),
            }
        }
        match cmd {
            Cmd::List => {}
            Cmd::Record => {
                match a.nodes.len() {
                    0 => return Err(Fail::usage("record needs --node ID")),
                    1 => {}
                    _ => return Err(Fail::usage("record takes one --node")),
                }
                if a.frames.is_none() {
                    return Err(Fail::usage("record needs --frames N"));
                }
                if a.out.is_none() {
                    return Err(Fail::usage("record needs --out DIR"));
                }
            }
            Cmd::Stats => {
                if a.nodes.is_empty() {
                    return Err(Fail::usage("stats needs --node ID"));
                }
            }
        }
        Ok(a)
    }
}

/// Take over an inherited fd after checking that it is an open socket, so
/// that a wrong number fails at once with a clear message instead of as a
/// connection timeout.
fn inherited_fd(fd: RawFd) -> Result<OwnedFd, Fail> {
    // SAFETY: F_GETFD only reads the fd's flags; any integer is a valid argument.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(Fail::new(
            EXIT_CONNECT,
            format!(
                "--fd {fd}: not an open file descriptor ({})",
                std::io::Error::last_os_error()
            ),
        ));
    }
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open (checked above) and `st` is a valid, writable stat.
    if unsafe { libc::fstat(fd, &mut st) } < 0 {
        return Err(Fail::new(
            EXIT_CONNECT,
            format!("--fd {fd}: {}", std::io::Error::last_os_error()),
        ));
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(Fail::new(
            EXIT_CONNECT,
            format!(
                "--fd {fd}: not a socket (a PipeWire connection, as the portal's \
                 OpenPipeWireRemote returns, is a Unix socket)"
            ),
        ));
    }
    // SAFETY: the fd is open, was inherited for this purpose (the user named
    // it), and nothing else in this process owns or closes it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Connect to the default daemon, or over the inherited `--fd`.
pub fn connect(args: &Args, max_streams: usize) -> Result<Capture, Fail> {
    let fd = args.fd.map(inherited_fd).transpose()?;
    let how = match args.fd {
        Some(n) => format!("over --fd {n}"),
        None => "to the PipeWire daemon".to_string(),
    };
    let opts = CaptureOptions {
        max_streams: max_streams.max(1),
        ..Default::default()
    };
    Capture::new(fd, opts)
        .map_err(|e| Fail::new(EXIT_CONNECT, format!("cannot connect {how}: {e}")))
}

/// The failure an event means for a command that needs the stream to keep
/// running, if any. `progress` says how far it got ("after 3 of 10 frames").
pub fn event_failure(node: u32, ev: &Event, progress: &str) -> Option<Fail> {
    match ev {
        Event::Error { status, message } => Some(match status {
            wrd_status::WRD_ERR_NODE_NOT_FOUND => Fail::new(
                EXIT_NODE,
                format!(
                    "node {node} not found: the daemon has no such node \
                     ('wrd-capture list' shows the video sources)"
                ),
            ),
            wrd_status::WRD_ERR_NEGOTIATION => Fail::new(
                EXIT_NEGOTIATION,
                format!("node {node}: format negotiation failed: {message}"),
            ),
            _ => Fail::new(
                EXIT_ENDED,
                format!("node {node}: stream error{progress}: {message}"),
            ),
        }),
        Event::NodeGone => Some(Fail::new(
            EXIT_ENDED,
            format!("node {node} went away{progress}: the stream ended early"),
        )),
        Event::ConnectionLost => Some(Fail::new(
            EXIT_ENDED,
            format!("the PipeWire connection was lost{progress}"),
        )),
        // A closed stream is usually followed by the reason (WirePlumber
        // unlinks a stream whose target is missing before the library's
        // node timeout says so): see `Closed`.
        _ => None,
    }
}

/// How long a stream may stay closed without a reason before a command
/// gives up on it: past the library's negotiation timeout (5 s by default),
/// so that a failed negotiation (WirePlumber unlinks the stream first) is
/// reported as such.
pub const CLOSED_GRACE: Duration = Duration::from_millis(5500);

/// Tracks a stream that closed without saying why.
#[derive(Default)]
pub struct Closed(Option<std::time::Instant>);

impl Closed {
    pub fn see(&mut self, ev: &Event) {
        match ev {
            Event::StateChanged(StreamState::Closed) => {
                self.0.get_or_insert_with(std::time::Instant::now);
            }
            Event::StateChanged(_) => self.0 = None,
            _ => {}
        }
    }

    /// The failure once the grace period passed.
    pub fn failure(&self, node: u32, progress: &str) -> Option<Fail> {
        self.0.filter(|t| t.elapsed() >= CLOSED_GRACE).map(|_| {
            Fail::new(
                EXIT_ENDED,
                format!("node {node}: the stream closed{progress}"),
            )
        })
    }
}

/// Wait until `fd` is readable or `timeout` passes. True when readable.
pub fn wait_readable(fd: RawFd, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: `pfd` is one valid pollfd for the duration of the call.
    let r = unsafe { libc::poll(&mut pfd, 1, ms) };
    r > 0 && pfd.revents & libc::POLLIN != 0
}

/// Whether stderr is a terminal (progress bar and in-place tables).
pub fn stderr_is_tty() -> bool {
    // SAFETY: isatty only inspects the fd.
    unsafe { libc::isatty(2) == 1 }
}

/// Whether stdout is a terminal.
pub fn stdout_is_tty() -> bool {
    // SAFETY: isatty only inspects the fd.
    unsafe { libc::isatty(1) == 1 }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Turn SIGINT and SIGTERM into a flag, so that a command can finish its
/// output (and clean up) when interrupted.
pub fn catch_interrupts() {
    let handler: extern "C" fn(libc::c_int) = on_signal;
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe; installing it has no other effect.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Lower-case name of a buffer type.
pub fn buffer_type_name(t: wrd_capture::stream::BufferType) -> &'static str {
    use wrd_capture::stream::BufferType;
    match t {
        BufferType::None => "none",
        BufferType::MemFd => "memfd",
        BufferType::MemPtr => "memptr",
        BufferType::DmaBuf => "dmabuf",
    }
}

/// Every drop reason, in `Stats::drops` order.
pub const DROP_REASONS: [DropReason; wrd_capture::buffer::DROP_REASONS] = [
    DropReason::Superseded,
    DropReason::HeldLimit,
    DropReason::QueueFull,
    DropReason::BadChunk,
    DropReason::Unmappable,
    DropReason::BadLayout,
    DropReason::Budget,
    DropReason::NoFormat,
    DropReason::ImportFailed,
];
