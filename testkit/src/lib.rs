//! Throwaway Postgres and Redis servers for Yelb's tests and benchmarks.
//!
//! - [`PgServer`]: `initdb` into a temporary directory, then `postgres` on
//!   127.0.0.1 and a free port; [`PgServer::stop`] / [`PgServer::start`] let a
//!   test take it down and bring it back on the same port and data.
//! - [`RedisServer`]: `redis-server` on 127.0.0.1 and a free port, no persistence.
//! - [`Balancer`]: a round-robin TCP forwarder, as a cluster puts in front
//!   of app-server replicas.
//! - [`fuzz`]: a raw-socket HTTP fuzzer for the hardening tests.
//! - [`shared_pg`] / [`shared_redis`]: one server of each per test process,
//!   for the many tests that only need *a* database (each test then takes its
//!   own database name or key prefix from [`unique_name`]).
//!
//! Every server runs in the foreground as our child, is killed by PID when its
//! handle drops, and is also asked by the kernel (`PR_SET_PDEATHSIG`) to die
//! with the thread that started it, so a test process killed mid-run leaves no
//! server behind. Nothing here talks to anything but 127.0.0.1.
//!
//! Nor does it leave data behind: a Postgres data directory goes with its
//! handle, the shared server's (which lives in a `static`, never dropped) at
//! process exit, and one whose process was killed (its `owner` file names a
//! process that is gone) by the next `PgServer` any process starts. Each is
//! tens to hundreds of MB; before this, every test run left them in `/tmp`.

mod balancer;
pub mod fuzz;

pub use balancer::Balancer;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

/// How long a server may take to accept connections before we give up.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A name unique within this process, for databases, key prefixes and channels.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A free TCP port on 127.0.0.1 (free when asked: the OS may reuse it later,
/// which is why servers are started right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0 must work on a test machine")
}

/// The directory holding `initdb` and `postgres`.
fn pg_bindir() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BINDIR") {
        return dir.into();
    }
    for v in ["17", "16", "15", "14", "13"] {
        let dir = PathBuf::from(format!("/usr/lib/postgresql/{v}/bin"));
        if dir.join("postgres").exists() {
            return dir;
        }
    }
    PathBuf::from("/usr/lib/postgresql/15/bin")
}

/// The uid/gid of the `postgres` user when we are root (Postgres refuses to
/// run as root), or `None` when we are not root and can run it ourselves.
fn postgres_ids() -> Option<(u32, u32)> {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        return None;
    }
    let name = std::ffi::CString::new("postgres").expect("no NUL in a literal");
    // SAFETY: getpwnam reads a static buffer; we copy the two ids out at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(!pw.is_null(), "running as root needs a 'postgres' user (apt-get install postgresql)");
    // SAFETY: checked non-null above.
    Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

/// Runs `cmd` as the given user and makes the kernel send `signal` to it when
/// the spawning thread ends.
fn configure(cmd: &mut Command, ids: Option<(u32, u32)>, signal: libc::c_int) {
    if let Some((uid, gid)) = ids {
        cmd.uid(uid).gid(gid);
    }
    // SAFETY: prctl is async-signal-safe; it runs after the uid change (which
    // would clear the death signal), just before exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Spawns `cmd` (a helper such as a browser driver) in a process group of its
/// own, and asks the kernel to kill it when this process ends, so a test
/// killed mid-run leaves nothing behind. Kill the group, `-pid`, to stop it
/// together with its own children.
pub fn spawn_tied(mut cmd: Command) -> std::io::Result<Child> {
    cmd.process_group(0);
    configure(&mut cmd, None, libc::SIGKILL);
    spawn_from_keeper(cmd)
}

/// Polls `ready` every 20 ms until it holds; panics after [`START_TIMEOUT`]
/// or as soon as `child` exits.
fn wait_until(child: &mut Child, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited during start-up with {status}");
        }
        if ready() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} was not ready within {START_TIMEOUT:?}");
}

fn kill(child: &mut Child, signal: libc::c_int) {
    if let Ok(None) = child.try_wait() {
        // SAFETY: kill on our own child's PID, which cannot have been reused
        // because we have not reaped it yet.
        unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        let _ = child.wait();
    }
}

/// Spawns a server from a thread that outlives every test, so the death
/// signal fires only when the whole process ends.
fn spawn_from_keeper(mut cmd: Command) -> std::io::Result<Child> {
    static KEEPER: OnceLock<mpsc::Sender<(Command, mpsc::Sender<std::io::Result<Child>>)>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<(Command, mpsc::Sender<std::io::Result<Child>>)>();
        std::thread::Builder::new()
            .name("testkit-keeper".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
                // The channel is static, so this loop never ends while the process runs.
            })
            .expect("spawn keeper thread");
        tx
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    cmd.stdin(Stdio::null());
    keeper.send((cmd, reply_tx)).expect("keeper thread alive");
    reply_rx.recv().expect("keeper replies")
}

/// A Postgres server of our own on 127.0.0.1.
pub struct PgServer {
    dir: tempfile::TempDir,
    port: u16,
    durable: bool,
    child: Option<Child>,
}

impl PgServer {
    /// A fast server for tests: `fsync` off (a crash of the test machine is
    /// not a case we test).
    pub fn start_new() -> PgServer {
        Self::init(false)
    }

    /// A server with Postgres's default durability (`fsync`, synchronous
    /// commit), for benchmarks whose figures must mean something.
    pub fn start_durable() -> PgServer {
        Self::init(true)
    }

    /// An initialised cluster that is not running yet: its port is chosen,
    /// so an app can be pointed at it before it starts (see [`PgServer::start`]).
    pub fn new_stopped() -> PgServer {
        Self::init_stopped(false)
    }

    fn init(durable: bool) -> PgServer {
        let mut server = Self::init_stopped(durable);
        server.start();
        server
    }

    fn init_stopped(durable: bool) -> PgServer {
        sweep_orphaned_data_dirs();
        let dir = tempfile::Builder::new().prefix(PG_DIR_PREFIX).tempdir().expect("create temp dir");
        std::fs::write(dir.path().join(OWNER_FILE), owner_stamp(std::process::id()).unwrap_or_default())
            .expect("write the data directory's owner file");
        let ids = postgres_ids();
        if let Some((uid, gid)) = ids {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown data dir");
        }
        let mut initdb = Command::new(pg_bindir().join("initdb"));
        initdb
            .args(["-D"])
            .arg(dir.path().join("data"))
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync", "--locale=C"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        configure(&mut initdb, ids, libc::SIGKILL);
        let out = initdb.output().expect("run initdb (apt-get install postgresql)");
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        PgServer { dir, port: free_port(), durable, child: None }
    }

    /// Starts the server (again) on its port and data directory.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "server already running");
        let mut cmd = Command::new(pg_bindir().join("postgres"));
        cmd.arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", self.dir.path().display()))
            .args(["-c", "max_connections=200", "-c", "log_min_messages=fatal"])
            // CREATE DATABASE writes the whole template to the WAL; recycle
            // it early, so a test process's many databases stay small on disk.
            .args(["-c", "min_wal_size=32MB", "-c", "max_wal_size=64MB"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if !self.durable {
            cmd.args(["-c", "fsync=off", "-c", "full_page_writes=off"]);
        }
        // SIGQUIT is Postgres's immediate shutdown: backends go at once too.
        configure(&mut cmd, postgres_ids(), libc::SIGQUIT);
        let mut child = spawn_from_keeper(cmd).expect("spawn postgres");
        // Postgres opens its port before it accepts logins: ask pg_isready.
        let port = self.port.to_string();
        wait_until(&mut child, "postgres", || {
            Command::new(pg_bindir().join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &port])
                .status()
                .is_ok_and(|s| s.success())
        });
        self.child = Some(child);
    }

    /// Stops the server at once (clients see their connections drop), keeping
    /// its data for a later [`PgServer::start`].
    pub fn stop(&mut self) {
        self.thaw();
        if let Some(mut child) = self.child.take() {
            kill(&mut child, libc::SIGQUIT);
        }
    }

    /// Stops every Postgres process (SIGSTOP) without closing a
    /// socket: to its clients the server is there but never answers, like a
    /// half-open connection to a crashed node. [`PgServer::thaw`] resumes it.
    pub fn freeze(&self) {
        self.signal_group(libc::SIGSTOP);
    }

    /// Resumes a frozen server.
    pub fn thaw(&self) {
        self.signal_group(libc::SIGCONT);
    }

    /// Signals the postmaster and every process it forked. (Not by process
    /// group: each backend calls `setsid` and leads a session of its own.)
    fn signal_group(&self, signal: libc::c_int) {
        let Some(child) = &self.child else { return };
        let postmaster = child.id();
        let mut pids = vec![postmaster];
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
                let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
                // "pid (comm) state ppid ...": comm may hold spaces, so split after its ')'.
                let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1));
                if ppid.and_then(|p| p.parse::<u32>().ok()) == Some(postmaster) {
                    pids.push(pid);
                }
            }
        }
        for pid in pids {
            // SAFETY: the postmaster is our unreaped child; its children are
            // its own until it reaps them, and a stray signal to a reused
            // PID in the instant between is harmless for SIGSTOP/SIGCONT
            // in a test sandbox.
            unsafe { libc::kill(pid as libc::pid_t, signal) };
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding its data (removed with the server).
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// For the shared server, which is never dropped: stops it and removes
    /// its directory, through `&self` (the `Child` stays in the `static`).
    fn shut_down_at_exit(&self) {
        self.thaw();
        if let Some(child) = &self.child {
            let pid = child.id() as libc::pid_t;
            // SAFETY: our own unreaped child; waitpid reaps it, and nothing
            // uses the `Child` afterwards (the process is exiting).
            unsafe {
                libc::kill(pid, libc::SIGQUIT);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
        let _ = std::fs::remove_dir_all(self.dir.path());
    }

    /// A connection URL for database `dbname` as user `postgres`.
    pub fn url(&self, dbname: &str) -> String {
        format!("postgres://postgres:postgres_password@127.0.0.1:{}/{dbname}", self.port)
    }

    /// Runs SQL through `psql` against `dbname` and returns its unaligned output.
    pub fn psql(&self, dbname: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres"])
            .args(["-d", dbname, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("run psql");
        assert!(out.status.success(), "psql failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The prefix of every Postgres data directory we make in the temp dir.
const PG_DIR_PREFIX: &str = "yelb-testkit-pg-";
/// The file in a data directory naming the process that made it.
const OWNER_FILE: &str = "owner";

/// "PID START": a process and its start time (field 22 of `/proc/PID/stat`),
/// so a PID reused by another process does not pass for the owner.
fn owner_stamp(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces; starttime is the
    // 20th field after it.
    let start = stat.rsplit_once(')')?.1.split_whitespace().nth(19)?;
    Some(format!("{pid} {start}"))
}

/// Removes data directories whose owner is gone (a test process killed
/// before it could clean up). One without an owner file is left alone for
/// ten minutes, as a neighbour may be between creating it and stamping it.
fn sweep_orphaned_data_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(PG_DIR_PREFIX) {
            continue;
        }
        let path = entry.path();
        let stamp = std::fs::read_to_string(path.join(OWNER_FILE)).unwrap_or_default();
        let owner = stamp.split_whitespace().next().and_then(|p| p.parse::<u32>().ok());
        let orphaned = match owner {
            Some(pid) => owner_stamp(pid).as_deref() != Some(stamp.trim()),
            None => entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > Duration::from_secs(600))),
        };
        if !orphaned {
            continue;
        }
        // A killed owner's Postgres may still be exiting: try again briefly.
        for _ in 0..3 {
            if std::fs::remove_dir_all(&path).is_ok() || !path.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// A Redis server of our own on 127.0.0.1, without persistence.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port.
    pub fn start_new() -> RedisServer {
        let mut server = Self::new_stopped();
        server.start();
        server
    }

    /// A server that is not running yet, with its port chosen.
    pub fn new_stopped() -> RedisServer {
        RedisServer { port: free_port(), child: None }
    }

    /// Starts the server (again) on its port; its data starts empty.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "server already running");
        let mut cmd = Command::new(redis_binary());
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--loglevel", "warning"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        configure(&mut cmd, None, libc::SIGKILL);
        let mut child = spawn_from_keeper(cmd).expect("spawn redis-server (apt-get install redis-server)");
        wait_until(&mut child, "redis-server", || self.command("PING").as_deref() == Some("+PONG"));
        self.child = Some(child);
    }

    /// Kills the server.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill(&mut child, libc::SIGKILL);
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Sends one inline command and returns the whole reply, or `None` if
    /// the server did not answer.
    fn roundtrip(&self, line: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(format!("{line}\r\n").as_bytes()).ok()?;
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Sends one inline command and returns the first line of the reply
    /// (`+PONG`, `:3`, `$1`…), or `None` if the server did not answer.
    pub fn command(&self, line: &str) -> Option<String> {
        self.roundtrip(line).map(|reply| reply.lines().next().unwrap_or_default().to_owned())
    }

    /// The value of a string key (`GET`), or `None` when it is missing.
    pub fn get(&self, key: &str) -> Option<String> {
        let reply = self.roundtrip(&format!("GET {key}"))?;
        let mut lines = reply.lines();
        match lines.next()? {
            "$-1" => None,
            _ => lines.next().map(str::to_owned),
        }
    }
}

fn redis_binary() -> PathBuf {
    for p in ["/usr/bin/redis-server", "/usr/local/bin/redis-server"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    "redis-server".into()
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

static SHARED_PG: OnceLock<PgServer> = OnceLock::new();

/// The process-wide Postgres server, started on first use and removed, data
/// and all, when the process exits.
pub fn shared_pg() -> &'static PgServer {
    SHARED_PG.get_or_init(|| {
        extern "C" fn at_exit() {
            if let Some(pg) = SHARED_PG.get() {
                pg.shut_down_at_exit();
            }
        }
        // SAFETY: registers a plain function; libtest leaves through
        // `exit` (after the last test), which runs it.
        unsafe { libc::atexit(at_exit) };
        PgServer::start_new()
    })
}

/// The process-wide Redis server, started on first use.
pub fn shared_redis() -> &'static RedisServer {
    static REDIS: OnceLock<RedisServer> = OnceLock::new();
    REDIS.get_or_init(RedisServer::start_new)
}
