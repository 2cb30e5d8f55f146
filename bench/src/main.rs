//! `yelb-bench`: prints the app server's throughput, latency, memory and
//! start-up figures, each beside the axum hello-world ceiling measured in the
//! same run, plus the cross-replica live-event latency.
//!
//! Everything runs on 127.0.0.1: a durable Postgres (fsync on, the defaults)
//! and a Redis started by `yelb-testkit`, the release binaries of the app
//! server and `bench-hello`, and `wrk` as the load. Run it through
//! `scripts/bench.sh`, which builds and installs what it needs.
//! `BENCH_SECONDS` (default 10) sets each load run's length.

#![allow(clippy::print_stdout)] // a benchmark's job is to print figures

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use yelb_testkit::{PgServer, RedisServer, free_port};

use yelb_bench::{Proc, bin};

fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// One `wrk` run's figures.
#[derive(Debug, Clone, Copy)]
struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    ok: u64,
}

fn parse_latency(v: &str) -> f64 {
    let v = v.trim();
    for (suffix, scale) in [("us", 0.001), ("ms", 1.0), ("s", 1000.0)] {
        if let Some(n) = v.strip_suffix(suffix) {
            return n.parse::<f64>().unwrap_or(f64::NAN) * scale;
        }
    }
    f64::NAN
}

fn wrk(url: &str, script: Option<&str>, seconds: u64) -> Result<Load> {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t1", "-c64", &format!("-d{seconds}s"), "--latency"]);
    if let Some(s) = script {
        cmd.args(["-s", s]);
    }
    let out = cmd.arg(url).output().context("running wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut load = Load { rps: 0.0, p50_ms: f64::NAN, p99_ms: f64::NAN, ok: 0 };
    let mut total = 0u64;
    let mut bad = 0u64;
    for line in text.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            load.rps = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = t.strip_prefix("50%") {
            load.p50_ms = parse_latency(v);
        } else if let Some(v) = t.strip_prefix("99%") {
            load.p99_ms = parse_latency(v);
        } else if t.contains("requests in") {
            total = t.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0);
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            bad = v.trim().parse().unwrap_or(0);
        } else if t.starts_with("Socket errors") {
            eprintln!("wrk {url}: {t}");
        }
    }
    load.ok = total.saturating_sub(bad);
    if bad > 0 {
        eprintln!("wrk {url}: {bad} non-2xx answers");
    }
    Ok(load)
}

fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes()).ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    std::str::from_utf8(&buf[..n]).ok()?.split_whitespace().nth(1)?.parse().ok()
}

fn wait_status(port: u16, path: &str, want: u16, limit: Duration) -> Result<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if http_status(port, path) == Some(want) {
            return Ok(started.elapsed());
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    bail!("{path} on port {port} did not answer {want} within {limit:?}")
}

fn spawn_appserver(port: u16, pg: &PgServer, redis: &RedisServer, host: &str) -> Result<(Proc, Duration)> {
    spawn_appserver_with(port, pg, redis, host, &[])
}

fn spawn_appserver_with(
    port: u16,
    pg: &PgServer,
    redis: &RedisServer,
    host: &str,
    extra: &[(&str, &str)],
) -> Result<(Proc, Duration)> {
    let started = Instant::now();
    let child = Command::new(bin("yelb-appserver"))
        .env_clear()
        .envs(extra.iter().copied())
        .env("YELB_LISTEN_ADDR", "127.0.0.1")
        .env("YELB_PORT", port.to_string())
        .env("YELB_HOSTNAME", host)
        .env("YELB_DATABASE_URL", pg.url("yelbdatabase"))
        .env("YELB_REDIS_URL", redis.url())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .context("starting yelb-appserver (build it with --release first)")?;
    let proc = Proc(child);
    // Ready = `/readyz` says 200 with both backends up, measured from spawn.
    wait_status(port, "/readyz", 200, Duration::from_secs(20))?;
    Ok((proc, started.elapsed()))
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned()))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or_else(|| "?".into(), |kb| format!("{:.0} GiB", kb as f64 / 1024.0 / 1024.0));
    format!("{cpu}, {cores} cores, {mem}")
}

async fn cross_replica_latency(a: u16, b: u16, votes: usize) -> Result<Vec<Duration>> {
    let client = reqwest::Client::new();
    let resp = client.get(format!("http://127.0.0.1:{b}/api/v1/events")).send().await?;
    let mut body = resp.bytes_stream();
    let mut buf = String::new();
    let mut latest_ihop = -1i64;
    let mut samples = Vec::with_capacity(votes);
    for _ in 0..votes {
        let started = Instant::now();
        let receipt: serde_json::Value =
            client.post(format!("http://127.0.0.1:{a}/api/v1/votes/ihop")).send().await?.json().await?;
        let target = receipt["count"].as_i64().context("vote count")?;
        while latest_ihop < target {
            let chunk = tokio::time::timeout(Duration::from_secs(5), body.next())
                .await
                .context("no event within 5 s")?
                .context("stream ended")??;
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let frame: String = buf.drain(..end + 2).collect();
                if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data:")) {
                    let state: yelb_core::wire::LiveState = serde_json::from_str(data.trim())?;
                    latest_ihop = latest_ihop.max(state.votes.ihop);
                }
            }
        }
        samples.push(started.elapsed());
    }
    Ok(samples)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> Result<()> {
    let seconds: u64 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    println!("machine: {}", machine());
    println!(
        "load: wrk -t1 -c64 -d{seconds}s on 127.0.0.1; Postgres with fsync on (durable commits); Redis without persistence\n"
    );

    let pg = PgServer::start_durable();
    let redis = RedisServer::start_new();
    // BENCH_ONLY=fault: just the fault layer's cost (for iterating on it).
    if std::env::var("BENCH_ONLY").as_deref() == Ok("fault") {
        return fault_layer_cost(&pg, &redis, seconds.min(5));
    }

    // The ceiling, measured before and after the app runs; ratios use the
    // higher of the two, so a slow moment of this shared machine cannot
    // flatter the app.
    let hello_port = free_port();
    let hello = Proc(Command::new(bin("bench-hello")).arg(hello_port.to_string()).spawn()?);
    wait_status(hello_port, "/", 200, Duration::from_secs(10))?;
    let ceiling_before = wrk(&format!("http://127.0.0.1:{hello_port}/"), None, seconds)?;
    drop(hello);

    // Start-up: the first start creates the database (CREATE DATABASE copies
    // a template and fsyncs it); the later ones find the schema in place.
    let mut ready_times = Vec::new();
    for i in 0..5 {
        let port = free_port();
        let (proc, took) = spawn_appserver(port, &pg, &redis, &format!("bench-start-{i}"))?;
        ready_times.push(took);
        drop(proc);
    }
    let port = free_port();
    let (app, ready) = spawn_appserver(port, &pg, &redis, "bench-a")?;
    ready_times.push(ready);
    let pid = app.0.id();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = rss_kib(pid, "VmRSS:");

    let script = std::env::temp_dir().join(format!("yelb-bench-post-{}.lua", std::process::id()));
    std::fs::write(&script, "wrk.method = \"POST\"\n")?;
    let script = script.to_string_lossy().to_string();
    // The vote the audience sends: every UI click and simulated voter has
    // its own Idempotency-Key (one wrk thread, so a counter is unique).
    let keyed_script = std::env::temp_dir().join(format!("yelb-bench-keyed-{}.lua", std::process::id()));
    std::fs::write(
        &keyed_script,
        format!(
            "wrk.method = \"POST\"\nlocal n = 0\nrequest = function()\n  n = n + 1\n  \
             wrk.headers[\"Idempotency-Key\"] = \"bench-{}-\" .. n\n  return wrk.format()\nend\n",
            std::process::id()
        ),
    )?;
    let keyed_script = keyed_script.to_string_lossy().to_string();

    let base = format!("http://127.0.0.1:{port}");
    let votes_before: i64 =
        pg.psql("yelbdatabase", "SELECT coalesce(sum(count),0) FROM restaurants").parse()?;
    let getvotes = wrk(&format!("{base}/api/getvotes"), None, seconds)?;
    // Keyed before unkeyed: a run right after 400k unkeyed updates shares
    // the cores with the autovacuum they set off (10k keyed votes/s there
    // against 29k on a fresh table, measured by hand).
    let vote_keyed = wrk(&format!("{base}/api/v1/votes/chipotle"), Some(&keyed_script), seconds)?;
    let vote_post = wrk(&format!("{base}/api/v1/votes/ihop"), Some(&script), seconds)?;
    let keys_stored: u64 = pg.psql("yelbdatabase", "SELECT count(*) FROM yelb_vote_keys").parse()?;
    let vote_get = wrk(&format!("{base}/api/outback"), None, seconds)?;
    let getstats = wrk(&format!("{base}/api/getstats"), None, seconds)?;
    let votes_after: i64 =
        pg.psql("yelbdatabase", "SELECT coalesce(sum(count),0) FROM restaurants").parse()?;
    let loaded_rss = rss_kib(pid, "VmRSS:");
    let peak_rss = rss_kib(pid, "VmHWM:");
    drop(app);

    let hello = Proc(Command::new(bin("bench-hello")).arg(hello_port.to_string()).spawn()?);
    wait_status(hello_port, "/", 200, Duration::from_secs(10))?;
    let ceiling_after = wrk(&format!("http://127.0.0.1:{hello_port}/"), None, seconds)?;
    drop(hello);
    let ceiling = if ceiling_after.rps > ceiling_before.rps { ceiling_after } else { ceiling_before };
    let _ = std::fs::remove_file(&script);
    let _ = std::fs::remove_file(&keyed_script);

    // Live events across replicas.
    let port_a = free_port();
    let (app_a, _) = spawn_appserver(port_a, &pg, &redis, "bench-a2")?;
    let port_b = free_port();
    let (app_b, _) = spawn_appserver(port_b, &pg, &redis, "bench-b")?;
    let mut samples = cross_replica_latency(port_a, port_b, 200).await?;
    samples.sort();
    drop(app_b);
    drop(app_a);

    println!(
        "ceiling: {:.0} req/s before the app runs, {:.0} after; ratios use the higher\n",
        ceiling_before.rps, ceiling_after.rps
    );
    println!("| endpoint | req/s | vs hello | p50 ms | p99 ms | p50 vs hello | p99 vs hello |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let row = |name: &str, l: &Load| {
        println!(
            "| {name} | {:.0} | {:.0}% | {:.2} | {:.2} | {:.2}x | {:.2}x |",
            l.rps,
            100.0 * l.rps / ceiling.rps,
            l.p50_ms,
            l.p99_ms,
            l.p50_ms / ceiling.p50_ms,
            l.p99_ms / ceiling.p99_ms
        );
    };
    row("axum hello-world (ceiling)", &ceiling);
    row("GET /api/getvotes", &getvotes);
    row("POST /api/v1/votes/ihop", &vote_post);
    row("POST /api/v1/votes/chipotle + Idempotency-Key", &vote_keyed);
    row("GET /api/outback (original vote)", &vote_get);
    row("GET /api/getstats", &getstats);

    let acknowledged = vote_post.ok + vote_get.ok + vote_keyed.ok;
    let committed = votes_after - votes_before;
    println!();
    println!(
        "votes: {acknowledged} acknowledged, {committed} committed in Postgres -> {}",
        if committed >= acknowledged as i64 { "every acknowledged vote committed" } else { "VOTES LOST" }
    );
    println!(
        "keyed votes: {} acknowledged, {keys_stored} keys stored -> {}",
        vote_keyed.ok,
        if keys_stored >= vote_keyed.ok { "every acknowledged key recorded" } else { "KEYS LOST" }
    );
    let first = ready_times[0];
    let mut sorted = ready_times[1..].to_vec();
    sorted.sort();
    println!(
        "start to ready (spawn -> /readyz 200 with Postgres and Redis up): {:.1} ms median of {} starts \
         (best {:.1}, worst {:.1}); the very first start, which also creates the database: {:.1} ms",
        sorted[sorted.len() / 2].as_secs_f64() * 1000.0,
        sorted.len(),
        sorted[0].as_secs_f64() * 1000.0,
        sorted[sorted.len() - 1].as_secs_f64() * 1000.0,
        first.as_secs_f64() * 1000.0,
    );
    println!(
        "RSS: idle {:.1} MB, after load {:.1} MB, peak {:.1} MB",
        idle_rss as f64 / 1024.0,
        loaded_rss as f64 / 1024.0,
        peak_rss as f64 / 1024.0
    );
    println!(
        "live event, vote on replica A -> state on replica B's stream ({} votes): p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        samples.len(),
        pct(&samples, 0.5),
        pct(&samples, 0.95),
        pct(&samples, 1.0)
    );
    fault_layer_cost(&pg, &redis, seconds.min(5))?;
    if committed < acknowledged as i64 {
        bail!("acknowledged votes were lost");
    }
    Ok(())
}

/// The cost of stage control's fault layer with no fault set: getvotes on
/// an app server without `YELB_ADMIN_TOKEN` (no layer) and one with it (the
/// layer runs, finds nothing), alternated four times (ABBA order) so drift on
/// this shared machine hits both alike; medians compared.
fn fault_layer_cost(pg: &PgServer, redis: &RedisServer, seconds: u64) -> Result<()> {
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for round in 0..4 {
        // Which goes first alternates too, so drift within a round cancels.
        let order = if round % 2 == 0 { [false, true] } else { [true, false] };
        for with_token in order {
            let into = if with_token { &mut on } else { &mut off };
            let port = free_port();
            let extra: &[(&str, &str)] =
                if with_token { &[("YELB_ADMIN_TOKEN", "bench-token-12345")] } else { &[] };
            let (app, _) = spawn_appserver_with(port, pg, redis, &format!("bench-fault-{round}"), extra)?;
            into.push(wrk(&format!("http://127.0.0.1:{port}/api/getvotes"), None, seconds)?);
            drop(app);
        }
    }
    let median = |runs: &[Load], f: fn(&Load) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        (v[1] + v[2]) / 2.0
    };
    let (rps_off, rps_on) = (median(&off, |l| l.rps), median(&on, |l| l.rps));
    let (p50_off, p50_on) = (median(&off, |l| l.p50_ms), median(&on, |l| l.p50_ms));
    // On a thread of its own: it runs its own runtime, outside main's.
    let (bare, layered) = std::thread::spawn(fault_layer_in_process)
        .join()
        .map_err(|_| anyhow::anyhow!("the in-process run panicked"))??;
    println!(
        "fault layer, no fault set, in process (the router called directly, GET /api/hostname, no network): \
         {bare:.0} ns a request without it, {layered:.0} ns with it -> {:+.1}%",
        100.0 * (layered - bare) / bare
    );
    println!(
        "fault layer, no fault set (GET /api/getvotes, 4 alternating rounds of {seconds} s, medians): \
         without it {rps_off:.0} req/s p50 {p50_off:.2} ms, with it {rps_on:.0} req/s p50 {p50_on:.2} ms \
         -> throughput {:+.1}%, p50 {:+.1}%",
        100.0 * (rps_on - rps_off) / rps_off,
        100.0 * (p50_on - p50_off) / p50_off
    );
    Ok(())
}

/// Sends `n` requests for `/api/hostname` through `service`, one after the
/// other; how long they took.
fn run_requests<S>(runtime: &tokio::runtime::Runtime, service: S, n: u32) -> std::time::Duration
where
    S: tower::Service<axum::http::Request<axum::body::Body>> + Clone,
{
    use tower::ServiceExt as _;
    runtime.block_on(async {
        let start = Instant::now();
        for _ in 0..n {
            let request =
                axum::http::Request::get("/api/hostname").body(axum::body::Body::empty()).unwrap_or_default();
            let _ = service.clone().oneshot(request).await;
        }
        start.elapsed()
    })
}

/// The fault layer's cost without the network's noise: the app server's
/// router (embedded mode) called in this process, without and with stage
/// control, 200,000 requests a round, six rounds in ABBA order with fresh
/// instances each round; medians of nanoseconds per request.
fn fault_layer_in_process() -> Result<(f64, f64)> {
    const N: u32 = 200_000;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    // Stage control off: the router alone (what `service` wraps, minus the
    // layer). On: `routes::service`, the layer included, no fault set.
    let state = |token: bool| -> Result<yelb_appserver::AppState> {
        let mut argv = vec!["yelb-appserver", "--hostname=bench"];
        if token {
            argv.push("--admin-token=bench-token-12345");
        }
        let args = <yelb_appserver::config::Args as clap::Parser>::try_parse_from(argv)?;
        let config = yelb_appserver::Config::from_args(args)?;
        runtime.block_on(async { yelb_appserver::build_state(&config) })
    };
    // Fresh instances every round, built in alternating order: two
    // identical routers built one after the other time up to 10% apart.
    let time = |service: &dyn Fn() -> Result<std::time::Duration>| -> Result<f64> {
        Ok(service()?.as_nanos() as f64 / f64::from(N))
    };
    let bare = || Ok(run_requests(&runtime, yelb_appserver::routes::app(state(false)?), N));
    let layered = || Ok(run_requests(&runtime, yelb_appserver::routes::service(state(true)?), N));
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for round in 0..6 {
        if round % 2 == 0 {
            off.push(time(&bare)?);
            on.push(time(&layered)?);
        } else {
            on.push(time(&layered)?);
            off.push(time(&bare)?);
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[2] + v[3]) / 2.0
    };
    Ok((median(off), median(on)))
}
