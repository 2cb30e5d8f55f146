//! Process plumbing shared by Yelb's two servers (`yelb-appserver`, `yelb-ui`),
//! so they log, stop and check their own health the same way.
//!
//! - [`ConfigError`]: a setting that cannot work, naming its variable.
//! - [`LogFormat`] and [`init_tracing`]: `tracing` to stderr as text or JSON,
//!   levels from `RUST_LOG`.
//! - [`shutdown_signal`]: a future that completes on SIGTERM or Ctrl-C.
//! - [`healthcheck`]: the `healthcheck` subcommand's probe, so an image with
//!   no shell (`FROM scratch`) can still run a container health check.
//! - [`server`]: the HTTP loop both servers run ([`serve`]), with header and
//!   idle timeouts and a connection cap ([`Limits`]).
//! - [`clients`]: who a client is ([`client_of`], [`TrustedProxies`]) and
//!   the share of the caps one client may hold ([`PerClient`]).
//! - [`throttle`]: [`FailureThrottle`], how fast one client may fail a
//!   check (guess the stage token).
//! - [`LogGate`]: one warning per interval, with a count of those held
//!   back, so an outage under load does not flood the log.
//! - [`parse_secs`], [`parse_count`], [`parse_share`]: the checks every numeric setting goes
//!   through, so both servers word their complaints alike.

use std::future::Future;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use tracing_subscriber::EnvFilter;

pub mod clients;
pub mod server;
pub mod throttle;

pub use clients::{ClientKey, Peer, PerClient, TrustedProxies, client_of};
pub use server::{Limits, StreamSlot, StreamSlots, StreamsFull, serve};
pub use throttle::FailureThrottle;

/// A configuration value that cannot work. The message names the variable,
/// and the binaries exit with code 2 when they see one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {var}={value:?}: {reason}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: &'static str,
    /// The value it had (passwords are never put here).
    pub value: String,
    /// Why it cannot work.
    pub reason: String,
}

impl ConfigError {
    /// `var` had `value`, which cannot work because of `reason`.
    pub fn new(var: &'static str, value: &str, reason: impl Into<String>) -> Self {
        ConfigError { var, value: value.to_owned(), reason: reason.into() }
    }
}

/// Lets one log line through per interval and counts the ones held back.
/// `const`, so it can be a `static` next to the code that logs.
#[derive(Debug)]
pub struct LogGate {
    every_ms: u64,
    next_ms: std::sync::atomic::AtomicU64,
    held: std::sync::atomic::AtomicU64,
}

impl LogGate {
    /// A gate that opens at most once per `every`.
    pub const fn new(every: Duration) -> Self {
        LogGate {
            every_ms: every.as_millis() as u64,
            next_ms: std::sync::atomic::AtomicU64::new(0),
            held: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// `Some(lines held back since the last one)` if this line may be
    /// written, `None` if it is held back (and counted).
    pub fn open(&self) -> Option<u64> {
        use std::sync::atomic::Ordering;
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let now = START.get_or_init(std::time::Instant::now).elapsed().as_millis() as u64;
        let next = self.next_ms.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_ms
                .compare_exchange(next, now + self.every_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.held.swap(0, Ordering::Relaxed));
        }
        self.held.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// `value` of `var` as seconds, within `min..=max` (fractions allowed).
pub fn parse_secs(var: &'static str, value: &str, min: f64, max: f64) -> Result<Duration, ConfigError> {
    match value.trim().parse::<f64>() {
        Ok(secs) if (min..=max).contains(&secs) => Ok(Duration::from_secs_f64(secs)),
        _ => Err(ConfigError::new(var, value, format!("expected seconds, from {min} to {max}"))),
    }
}

/// `value` of `var` as a whole number within `min..=max`.
pub fn parse_count(var: &'static str, value: &str, min: usize, max: usize) -> Result<usize, ConfigError> {
    match value.trim().parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(ConfigError::new(var, value, format!("expected a whole number from {min} to {max}"))),
    }
}

/// A per-client share of a cap of `total` (`*_PER_CLIENT`): a whole number
/// up to a million, where `0` means no share (the whole `total`).
pub fn parse_share(var: &'static str, value: &str, total: usize) -> Result<usize, ConfigError> {
    parse_count(var, value, 0, 1_000_000).map(|n| if n == 0 { total } else { n })
}

/// Log output format (`YELB_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl FromStr for LogFormat {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("expected text or json"),
        }
    }
}

/// Installs the global subscriber. Call once, from `main`.
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Asks the server at `listen` (on loopback when it listens on every
/// address) for `path` and returns whether it answered 200 within two
/// seconds. Blocking on purpose: it runs as a process of its own, as a
/// container health check.
pub fn healthcheck(listen: SocketAddr, path: &str) -> Result<(), String> {
    use std::io::{Read, Write};
    let ip = match listen.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    let addr = SocketAddr::new(ip, listen.port());
    let timeout = Duration::from_secs(2);
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{addr}: {e}"))?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).map_err(|e| e.to_string())?;
    let status_line = String::from_utf8_lossy(&head[..n]);
    match status_line.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        Some(code) => Err(format!("{addr}{path} answered {code}")),
        None => Err(format!("{addr}{path} sent no HTTP status")),
    }
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
///
/// The handlers are installed when this is called, not when the future is
/// first polled, so call it before binding the listener: a SIGTERM that
/// arrives during start-up then shuts down cleanly instead of killing the
/// process with the default action.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                tracing::warn!("cannot install signal handlers; falling back to Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_gate_lets_one_line_through_per_interval_and_counts_the_rest() {
        let gate = LogGate::new(Duration::from_secs(3600));
        assert_eq!(gate.open(), Some(0));
        for _ in 0..5 {
            assert_eq!(gate.open(), None);
        }
        let quick = LogGate::new(Duration::ZERO);
        assert_eq!(quick.open(), Some(0));
        assert!(quick.open().is_some(), "a zero interval holds nothing back");
    }

    #[test]
    fn numbers_and_seconds_out_of_range_name_their_variable() {
        assert_eq!(parse_secs("X", "1.5", 0.0, 10.0), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_count("N", "42", 1, 100), Ok(42));
        for bad in ["", "-1", "11", "ten", "NaN"] {
            let e = parse_secs("X", bad, 0.0, 10.0).unwrap_err();
            assert_eq!(e.var, "X");
            assert!(e.reason.contains("0 to 10"), "{e}");
        }
        for bad in ["0", "101", "1.5", "x"] {
            assert_eq!(parse_count("N", bad, 1, 100).unwrap_err().var, "N");
        }
    }

    #[test]
    fn log_formats_parse_and_others_are_refused() {
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert_eq!("text".parse(), Ok(LogFormat::Text));
        assert!("yaml".parse::<LogFormat>().is_err());
    }

    #[test]
    fn healthcheck_fails_when_nothing_listens() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        // The listener is dropped here, so the port is closed.
        assert!(healthcheck(port, "/healthz").is_err());
    }
}
