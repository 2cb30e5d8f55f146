//! `bench-keynote`: a keynote audience on one small box. Three app servers
//! on a durable Postgres and a Redis, one UI in front of them on its default
//! settings, and `yelb-loadgen` playing the room: `KEYNOTE_SCREENS` live
//! screens (default 10,000) held open through the UI while voters cast
//! keyed votes at `KEYNOTE_RATE` a second (default 1,000) for
//! `KEYNOTE_SECONDS` (default 20).
//!
//! Prints the simulator's summary (votes, vote → screen latency over all
//! screens, missed and late updates, bytes per screen, refused streams) and
//! the servers' peak resident memory, the UI's per open screen. Every
//! process runs on 127.0.0.1 and is killed when the run ends. Run through
//! `scripts/bench.sh`.

#![allow(clippy::print_stdout)] // a benchmark's job is to print figures

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use yelb_bench::{Proc, bin};
use yelb_testkit::fuzz::rss_kib;
use yelb_testkit::{PgServer, RedisServer, free_port};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn spawn(name: &str, vars: &[(&str, String)]) -> Result<Proc> {
    let exe = bin(name);
    let mut cmd = Command::new(&exe);
    cmd.env_clear().env("RUST_LOG", "error").stdin(Stdio::null());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    Ok(Proc(cmd.spawn().with_context(|| format!("starting {}", exe.display()))?))
}

fn wait_ok(port: u16, path: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let url = format!("http://127.0.0.1:{port}{path}");
    while Instant::now() < deadline {
        if probe::get_ok(&url) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{url} never answered 200")
}

/// A tiny blocking GET, enough for readiness (no client crate needed).
mod probe {
    use std::io::{Read, Write};

    pub fn get_ok(url: &str) -> bool {
        let Some(rest) = url.strip_prefix("http://") else { return false };
        let (host, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
        let Ok(mut s) = std::net::TcpStream::connect(host) else { return false };
        if s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes()).is_err() {
            return false;
        }
        let mut buf = [0u8; 16];
        s.read(&mut buf)
            .is_ok_and(|n| buf[..n].starts_with(b"HTTP/1.1 200") || buf[..n].starts_with(b"HTTP/1.0 200"))
    }
}

fn main() -> Result<()> {
    let screens: usize = env_or("KEYNOTE_SCREENS", 10_000);
    let rate: f64 = env_or("KEYNOTE_RATE", 1_000.0);
    let seconds: u64 = env_or("KEYNOTE_SECONDS", 20);
    let _ = rlimit::increase_nofile_limit(u64::MAX);

    let pg = PgServer::start_durable();
    let redis = RedisServer::start_new();
    let mut apps = Vec::new();
    let mut endpoints = Vec::new();
    for host in ["keynote-a", "keynote-b", "keynote-c"] {
        let port = free_port();
        apps.push(spawn(
            "yelb-appserver",
            &[
                ("YELB_LISTEN_ADDR", "127.0.0.1".into()),
                ("YELB_PORT", port.to_string()),
                ("YELB_HOSTNAME", host.into()),
                ("YELB_DATABASE_URL", pg.url("yelbdatabase")),
                ("YELB_REDIS_URL", redis.url()),
            ],
        )?);
        wait_ok(port, "/readyz")?;
        endpoints.push(format!("http://127.0.0.1:{port}"));
    }
    let ui_port = free_port();
    // The UI on its defaults but one: every simulated phone comes from
    // 127.0.0.1, as a whole venue behind one NAT address would, so the
    // per-client shares are off (README: YELB_UI_MAX_*_PER_CLIENT=0).
    let ui = spawn(
        "yelb-ui",
        &[
            ("YELB_UI_LISTEN_ADDR", "127.0.0.1".into()),
            ("YELB_UI_PORT", ui_port.to_string()),
            ("YELB_APPSERVER_ENDPOINT", endpoints.join(",")),
            ("YELB_UI_MAX_STREAMS_PER_CLIENT", "0".into()),
            ("YELB_UI_MAX_CONNECTIONS_PER_CLIENT", "0".into()),
        ],
    )?;
    wait_ok(ui_port, "/healthz")?;
    std::thread::sleep(Duration::from_millis(500));
    let ui_idle = rss_kib(ui.0.id()).unwrap_or(0);
    let apps_idle: Vec<u64> = apps.iter().map(|a| rss_kib(a.0.id()).unwrap_or(0)).collect();

    let started = Instant::now();
    let mut loadgen = Proc(
        Command::new(bin("yelb-loadgen"))
            .args(["--url", &format!("http://127.0.0.1:{ui_port}")])
            .args(["--screens", &screens.to_string(), "--users", "200"])
            .args(["--rate", &rate.to_string(), "--duration", &format!("{seconds}s")])
            .args(["--json", "--quiet"])
            .stdout(Stdio::piped())
            .spawn()
            .context("starting yelb-loadgen (cargo build --release -p yelb-loadgen)")?,
    );
    // Peak memory while the screens are open, sampled.
    let (mut ui_peak, mut apps_peak) = (ui_idle, apps_idle.clone());
    while loadgen.0.try_wait()?.is_none() {
        ui_peak = ui_peak.max(rss_kib(ui.0.id()).unwrap_or(0));
        for (peak, app) in apps_peak.iter_mut().zip(&apps) {
            *peak = (*peak).max(rss_kib(app.0.id()).unwrap_or(0));
        }
        std::thread::sleep(Duration::from_millis(250));
        if started.elapsed() > Duration::from_secs(seconds + 120) {
            bail!("yelb-loadgen did not finish");
        }
    }
    let mut out = String::new();
    std::io::Read::read_to_string(loadgen.0.stdout.as_mut().context("loadgen's output")?, &mut out)?;
    let summary: serde_json::Value = serde_json::from_str(&out).context("yelb-loadgen's JSON summary")?;
    let votes: i64 = pg.psql("yelbdatabase", "SELECT sum(count) FROM restaurants").parse()?;

    let s = &summary["screens"];
    let open = s["open_peak"].as_u64().unwrap_or(0);
    println!(
        "keynote: {screens} screens, {rate} keyed votes/s asked for {seconds} s, 3 app servers, 1 UI on its defaults"
    );
    println!(
        "votes: {} acknowledged ({:.0}/s), {votes} in Postgres, p50 {:.1} ms, p99 {:.1} ms, errors {}",
        summary["total"],
        summary["total"].as_f64().unwrap_or(0.0) / summary["seconds"].as_f64().unwrap_or(1.0),
        summary["p50_ms"].as_f64().unwrap_or(f64::NAN),
        summary["p99_ms"].as_f64().unwrap_or(f64::NAN),
        summary["errors"]
    );
    println!(
        "screens: {open} open at the peak, refused {}, vote -> screen p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms \
         over {} samples, {} late (> 250 ms), {} missed the final counts, {:.0} bytes per screen",
        s["refused"],
        s["p50_ms"].as_f64().unwrap_or(f64::NAN),
        s["p95_ms"].as_f64().unwrap_or(f64::NAN),
        s["p99_ms"].as_f64().unwrap_or(f64::NAN),
        s["samples"],
        s["late"],
        s["missed"],
        s["bytes_per_screen"].as_f64().unwrap_or(f64::NAN)
    );
    println!(
        "memory: UI {:.1} MB idle, {:.1} MB peak ({:.1} KiB per open screen); app servers idle {:?} MB, peak {:?} MB",
        ui_idle as f64 / 1024.0,
        ui_peak as f64 / 1024.0,
        (ui_peak.saturating_sub(ui_idle)) as f64 / open.max(1) as f64,
        apps_idle.iter().map(|k| (*k as f64 / 102.4).round() / 10.0).collect::<Vec<_>>(),
        apps_peak.iter().map(|k| (*k as f64 / 102.4).round() / 10.0).collect::<Vec<_>>(),
    );
    drop(ui);
    drop(apps);
    Ok(())
}
