//! Test fixtures: a private PipeWire ([`Sandbox`]) and the `wrd-testsrc`
//! producer process ([`Producer`]).
//!
//! [`Sandbox::start`] drives `scripts/sandbox.sh`: a fresh runtime directory
//! with its own session D-Bus, `pipewire` and `wireplumber`, torn down on
//! drop, and by a watchdog if the test process dies (even by `kill -9`).
//! Tests that need PipeWire fail (panic), never skip, when it is missing.
//!
//! [`Producer::spawn`] runs the `wrd-testsrc` binary inside a sandbox. It
//! runs `cargo build -p wrd-testsrc` once per test process so the binary is
//! never stale (set `WRD_TESTSRC_BIN` to use a given binary instead).

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Path of `scripts/sandbox.sh` in the source tree.
pub fn sandbox_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/sandbox.sh")
}

/// True if `pid` is a live process (not gone, not a zombie).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the parenthesised name.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    while process_alive(pid) {
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Undo the `%q` quoting of bash's printf for the simple values the script
/// prints (backslash escapes).
fn unquote(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A private PipeWire + WirePlumber + session D-Bus. Dropping it kills the
/// daemons (by pid) and removes its runtime directory.
#[derive(Debug)]
pub struct Sandbox {
    dir: PathBuf,
    env: Vec<(String, String)>,
    pids: Vec<(String, u32)>,
}

impl Sandbox {
    /// Start a sandbox.
    ///
    /// # Panics
    /// If PipeWire, WirePlumber or D-Bus is missing or does not come up: the
    /// message says what and shows the daemon's log.
    pub fn start() -> Sandbox {
        match Self::try_start() {
            Ok(s) => s,
            Err(e) => panic!("cannot start the PipeWire sandbox: {e}"),
        }
    }

    /// Start a sandbox, or say why not.
    pub fn try_start() -> Result<Sandbox, String> {
        let script = sandbox_script();
        let out = Command::new("bash")
            .arg(&script)
            .arg("start")
            .arg("--owner")
            .arg(std::process::id().to_string())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} start failed ({}): {}",
                script.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let mut env = Vec::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some((k, v)) = line
                .strip_prefix("export ")
                .and_then(|kv| kv.split_once('='))
            {
                env.push((k.to_string(), unquote(v)));
            }
        }
        let dir = env
            .iter()
            .find(|(k, _)| k == "WRD_SANDBOX_DIR")
            .map(|(_, v)| PathBuf::from(v))
            .ok_or("sandbox.sh printed no WRD_SANDBOX_DIR")?;
        let pids = std::fs::read_to_string(dir.join("pids"))
            .map_err(|e| format!("reading {}/pids: {e}", dir.display()))?
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                Some((f.next()?.to_string(), f.next()?.parse().ok()?))
            })
            .collect();
        Ok(Sandbox { dir, env, pids })
    }

    /// The runtime directory (`XDG_RUNTIME_DIR`, `PIPEWIRE_RUNTIME_DIR`).
    pub fn runtime_dir(&self) -> &Path {
        &self.dir
    }

    /// The daemon's socket, `<runtime_dir>/pipewire-0`.
    pub fn socket_path(&self) -> PathBuf {
        self.dir.join("pipewire-0")
    }

    /// A Unix socket connected to the daemon: what the portal's
    /// `OpenPipeWireRemote` hands out. Panics if the daemon is not there.
    pub fn connect_fd(&self) -> OwnedFd {
        let s = UnixStream::connect(self.socket_path())
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.socket_path().display()));
        OwnedFd::from(s)
    }

    /// The environment a PipeWire client needs to reach this sandbox
    /// (`XDG_RUNTIME_DIR`, `PIPEWIRE_RUNTIME_DIR`, `DBUS_SESSION_BUS_ADDRESS`,
    /// `XDG_STATE_HOME`, `XDG_CONFIG_HOME`, `WRD_SANDBOX_DIR`,
    /// `WRD_SANDBOX_SOCKET`).
    pub fn env(&self) -> Vec<(String, String)> {
        self.env.clone()
    }

    /// A command for `program` with [`Sandbox::env`] set and
    /// `PIPEWIRE_REMOTE` / `PIPEWIRE_CORE` removed.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new(program);
        c.envs(self.env.iter().map(|(k, v)| (k, v)))
            .env_remove("PIPEWIRE_REMOTE")
            .env_remove("PIPEWIRE_CORE");
        c
    }

    /// The processes the sandbox started: `("dbus-daemon" | "pipewire" |
    /// "wireplumber" | "watchdog", pid)`.
    pub fn daemon_pids(&self) -> &[(String, u32)] {
        &self.pids
    }

    /// The pid of one of [`Sandbox::daemon_pids`].
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.pids.iter().find(|(n, _)| n == name).map(|(_, p)| *p)
    }

    /// Kill `pipewire` (SIGKILL) and wait until it is gone; the rest of the
    /// sandbox stays until drop. For fault tests.
    pub fn kill_daemon(&self) {
        let pid = self.pid("pipewire").expect("the sandbox has a pipewire");
        if process_alive(pid) {
            // SAFETY: kill(2) has no memory-safety preconditions. The pid is
            // the pipewire the script started, alive a moment ago.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        assert!(
            wait_gone(pid, Duration::from_secs(5)),
            "pipewire {pid} survived SIGKILL"
        );
    }

    /// Kill pipewire and wireplumber and start them again in the same runtime
    /// directory (a daemon that "comes back"); the new pids are tracked for
    /// teardown. For reconnect tests.
    pub fn restart_daemon(&mut self) {
        let out = Command::new("bash")
            .arg(sandbox_script())
            .arg("restart")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .output()
            .expect("sandbox.sh restart");
        assert!(
            out.status.success(),
            "sandbox.sh restart: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pids: Vec<(String, u32)> = std::fs::read_to_string(self.dir.join("pids"))
            .expect("pids")
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                Some((f.next()?.to_string(), f.next()?.parse().ok()?))
            })
            .collect();
        // The newest entry of a name wins in `pid()`.
        pids.reverse();
        self.pids = pids;
    }

    /// Tail of a daemon's log (`dbus`, `pipewire`, `wireplumber`).
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let status = Command::new("bash")
            .arg(sandbox_script())
            .arg("stop")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!(
                "wrd-testsrc: stopping the sandbox {} failed: {status:?}",
                self.dir.display()
            );
        }
    }
}

/// One node the producer published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    /// Stream index (0-based, the `<index>` of `node.name = PREFIX-<index>`).
    pub index: u32,
    /// PipeWire global id of the node (what `pw_stream_connect` targets).
    pub id: u32,
    /// `node.name`.
    pub name: String,
}

/// A running `wrd-testsrc`. Killed on drop.
#[derive(Debug)]
pub struct Producer {
    child: Child,
    nodes: Vec<NodeInfo>,
    log: PathBuf,
    status: Option<ExitStatus>,
}

/// How long [`Producer::spawn`] waits for `ready`.
pub const PRODUCER_READY_TIMEOUT: Duration = Duration::from_secs(15);

impl Producer {
    /// The `wrd-testsrc` binary: `$WRD_TESTSRC_BIN`, or the one in this test
    /// executable's target directory (`target/<profile>/wrd-testsrc`), built
    /// first with `cargo build -p wrd-testsrc` (once per process).
    pub fn binary() -> PathBuf {
        static BIN: OnceLock<PathBuf> = OnceLock::new();
        BIN.get_or_init(|| {
            if let Some(p) = std::env::var_os("WRD_TESTSRC_BIN") {
                return PathBuf::from(p);
            }
            let exe = std::env::current_exe().expect("current_exe");
            // target/<profile>/deps/<test> or target/<profile>/<bin>
            let mut dir = exe.parent().expect("exe dir").to_path_buf();
            if dir.file_name() == Some(OsStr::new("deps")) {
                dir.pop();
            }
            let profile = dir
                .file_name()
                .and_then(|p| p.to_str())
                .unwrap_or("debug")
                .to_string();
            let target_dir = dir.parent().expect("target dir").to_path_buf();
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
            let mut build = Command::new(cargo);
            build
                .arg("build")
                .arg("--quiet")
                .arg("-p")
                .arg("wrd-testsrc")
                .arg("--bin")
                .arg("wrd-testsrc")
                .arg("--manifest-path")
                .arg(&manifest)
                .arg("--target-dir")
                .arg(&target_dir);
            match profile.as_str() {
                "debug" => {}
                "release" => {
                    build.arg("--release");
                }
                other => {
                    build.arg("--profile").arg(other);
                }
            }
            let status = build
                .status()
                .unwrap_or_else(|e| panic!("running cargo build -p wrd-testsrc: {e}"));
            assert!(
                status.success(),
                "cargo build -p wrd-testsrc failed: {status}"
            );
            let bin = dir.join("wrd-testsrc");
            assert!(bin.exists(), "{} missing after the build", bin.display());
            bin
        })
        .clone()
    }

    /// Run `wrd-testsrc ARGS` in `sandbox` and wait for its `ready` line.
    ///
    /// # Panics
    /// If it does not start, exits, or is not ready within
    /// [`PRODUCER_READY_TIMEOUT`]; the message has its stderr.
    pub fn spawn<S: AsRef<OsStr>>(sandbox: &Sandbox, args: &[S]) -> Producer {
        Self::try_spawn(sandbox, args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Producer::spawn`] that returns the failure instead of panicking.
    pub fn try_spawn<S: AsRef<OsStr>>(sandbox: &Sandbox, args: &[S]) -> Result<Producer, String> {
        let bin = Self::binary();
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = sandbox.runtime_dir().join(format!("wrd-testsrc-{n}.log"));
        let log_file =
            std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut cmd = sandbox.command(&bin);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file);
        // SAFETY: the pre_exec closure only calls prctl, which is
        // async-signal-safe. The producer gets SIGKILL when the thread that
        // spawned it ends, so a killed test leaves no producer behind (keep a
        // Producer on the thread that spawned it).
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut producer = Producer {
            child,
            nodes: Vec::new(),
            log,
            status: None,
        };
        let deadline = Instant::now() + PRODUCER_READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line == "ready" => break,
                Ok(line) => {
                    let f: Vec<&str> = line.split_whitespace().collect();
                    match f.as_slice() {
                        ["node", index, id, name] => producer.nodes.push(NodeInfo {
                            index: index.parse().map_err(|_| format!("bad line {line:?}"))?,
                            id: id.parse().map_err(|_| format!("bad line {line:?}"))?,
                            name: name.to_string(),
                        }),
                        _ => return Err(format!("wrd-testsrc printed {line:?}")),
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = producer.wait_exit_timeout(Duration::from_secs(5));
                    return Err(format!(
                        "wrd-testsrc exited before ready ({status:?}):\n{}",
                        producer.stderr()
                    ));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "wrd-testsrc not ready after {PRODUCER_READY_TIMEOUT:?}:\n{}",
                        producer.stderr()
                    ));
                }
            }
        }
        Ok(producer)
    }

    /// The published nodes, in stream order.
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL it and reap it.
    pub fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }

    /// Ask it to exit (SIGTERM); see [`Producer::wait_exit`].
    pub fn stop(&mut self) {
        if self.status.is_none() {
            // SAFETY: kill(2) on our own child, which is not reaped yet
            // (status is None), so the pid is still ours.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        }
    }

    /// Wait until it exits, at most `timeout`.
    pub fn wait_exit_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        while self.status.is_none() {
            match self.child.try_wait() {
                Ok(Some(s)) => self.status = Some(s),
                Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(20)),
                _ => break,
            }
        }
        self.status
    }

    /// Wait until it exits (at most 10 s).
    ///
    /// # Panics
    /// If it is still running after 10 s (it is killed then).
    pub fn wait_exit(&mut self) -> ExitStatus {
        match self.wait_exit_timeout(Duration::from_secs(10)) {
            Some(s) => s,
            None => {
                self.kill();
                panic!("wrd-testsrc did not exit within 10 s:\n{}", self.stderr());
            }
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.kill();
    }
}
