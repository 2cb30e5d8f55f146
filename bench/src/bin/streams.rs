//! `bench-streams`: what many open live-event streams cost the UI and the
//! app server, and whether the memory comes back once they close.
//!
//! Starts the release binaries (app server in embedded mode, the UI in front
//! of it) on 127.0.0.1 and opens `BENCH_STREAMS` streams through the UI with
//! raw sockets (default 9,000: the UI holds two sockets per stream, and this
//! machine's hard open-file limit is 20,000). Reads both servers' resident
//! memory idle, with every stream open, once all have closed (a closed stream
//! is noticed at its next heartbeat), and after some ordinary traffic; then
//! shows what one stream past the UI's cap gets. `MIMALLOC_*` variables are
//! passed to both servers. Run through `scripts/bench.sh`.

#![allow(clippy::print_stdout)] // a benchmark's job is to print figures

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use yelb_bench::{Proc, bin};
use yelb_testkit::free_port;
use yelb_testkit::fuzz::rss_kib;

fn spawn(name: &str, vars: &[(&str, String)]) -> Result<Proc> {
    let exe = bin(name);
    let mut cmd = Command::new(&exe);
    cmd.env_clear().env("RUST_LOG", "error").stdin(Stdio::null());
    for (k, v) in std::env::vars().filter(|(k, _)| k.starts_with("MIMALLOC_")) {
        cmd.env(k, v);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    Ok(Proc(cmd.spawn().with_context(|| format!("starting {}", exe.display()))?))
}

fn wait_listening(port: u16) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("nothing listens on {port}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Opens one stream through the UI and returns it with the status line.
fn open_stream(port: u16) -> Result<(TcpStream, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET /api/v1/events HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n")?;
    let mut head = [0u8; 64];
    let n = s.read(&mut head)?;
    let line = String::from_utf8_lossy(&head[..n]).lines().next().unwrap_or_default().to_owned();
    Ok((s, line))
}

/// Seconds between heartbeats on idle streams in this run.
const HEARTBEAT_SECS: u64 = 5;

fn http_get(port: u16, path: &str) -> Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    write!(s, "GET {path} HTTP/1.0\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() -> Result<()> {
    let n: usize = std::env::var("BENCH_STREAMS").ok().and_then(|v| v.parse().ok()).unwrap_or(9_000);
    // Each stream holds a socket here, two in the UI and one in the app server.
    let fds = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    if (fds as usize) < n + 100 {
        bail!("open-file limit {fds} is too low for {n} streams");
    }
    let (app_port, ui_port) = (free_port(), free_port());
    let app = spawn(
        "yelb-appserver",
        &[
            ("YELB_LISTEN_ADDR", "127.0.0.1".into()),
            ("YELB_PORT", app_port.to_string()),
            ("YELB_MAX_STREAMS", (n + 10).to_string()),
            ("YELB_MAX_CONNECTIONS", (n + 100).to_string()),
            // A closed stream is noticed at its next write: the heartbeat.
            ("YELB_EVENTS_HEARTBEAT", HEARTBEAT_SECS.to_string()),
        ],
    )?;
    wait_listening(app_port)?;
    let ui = spawn(
        "yelb-ui",
        &[
            ("YELB_UI_LISTEN_ADDR", "127.0.0.1".into()),
            ("YELB_UI_PORT", ui_port.to_string()),
            ("YELB_APPSERVER_ENDPOINT", format!("http://127.0.0.1:{app_port}")),
            ("YELB_UI_MAX_STREAMS", n.to_string()),
            ("YELB_UI_MAX_CONNECTIONS", (n + 100).to_string()),
            // Every stream comes from 127.0.0.1: no per-client share.
            ("YELB_UI_MAX_STREAMS_PER_CLIENT", "0".into()),
            ("YELB_UI_MAX_CONNECTIONS_PER_CLIENT", "0".into()),
        ],
    )?;
    wait_listening(ui_port)?;
    let rss = || (rss_kib(ui.0.id()).unwrap_or(0), rss_kib(app.0.id()).unwrap_or(0));
    let idle = rss();

    let started = Instant::now();
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        let (s, line) = open_stream(ui_port)?;
        if !line.contains(" 200 ") {
            bail!("stream {} answered {line:?}", streams.len());
        }
        streams.push(s);
    }
    let opened = started.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let peak = rss();
    let (_extra, past_cap) = open_stream(ui_port)?;
    drop(streams);
    // Both servers notice a closed stream when its next heartbeat fails.
    std::thread::sleep(Duration::from_secs(HEARTBEAT_SECS + 3));
    let after = rss();
    // Allocators return freed memory as they are next used: some ordinary traffic.
    for _ in 0..2_000 {
        http_get(ui_port, "/api/getvotes")?;
    }
    std::thread::sleep(Duration::from_secs(1));
    let later = rss();
    let open_after = {
        let metrics = http_get(app_port, "/metrics")?;
        metrics.lines().find(|l| l.starts_with("yelb_live_clients ")).unwrap_or_default().to_owned()
    };

    println!("== Live-event streams through the UI ({n}, raw sockets, 127.0.0.1) ==");
    println!("opened in {:.1} s ({:.0}/s)", opened.as_secs_f64(), n as f64 / opened.as_secs_f64());
    println!(
        "UI RSS: idle {:.1} MiB, {n} open {:.1} MiB ({:.1} KiB per stream), after closing {:.1} MiB",
        mib(idle.0),
        mib(peak.0),
        peak.0.saturating_sub(idle.0) as f64 / n as f64,
        mib(after.0)
    );
    println!(
        "app server RSS: idle {:.1} MiB, {n} open {:.1} MiB ({:.1} KiB per stream), after closing {:.1} MiB",
        mib(idle.1),
        mib(peak.1),
        peak.1.saturating_sub(idle.1) as f64 / n as f64,
        mib(after.1)
    );
    println!("after 2,000 more requests: UI {:.1} MiB, app server {:.1} MiB", mib(later.0), mib(later.1));
    println!("app server after closing: {open_after}");
    println!("stream {} (past YELB_UI_MAX_STREAMS): {past_cap}", n + 1);
    Ok(())
}
