//! The real binary: configuration errors, `--help`, the README's table, signals.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_yelb-appserver");

fn run_with_env(vars: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null()).output().expect("run binary")
}

#[test]
fn a_bad_value_stops_the_start_with_the_variable_named() {
    for (var, value) in [
        ("YELB_PORT", "http"),
        ("RACK_ENV", "staging"),
        ("YELB_LOG_FORMAT", "yaml"),
        ("YELB_DB_POOL_SIZE", "zero"),
        ("YELB_HOSTNAME", "has space"),
    ] {
        let out = run_with_env(&[(var, value), ("YELB_PORT", if var == "YELB_PORT" { value } else { "0" })]);
        assert_eq!(out.status.code(), Some(2), "{var}={value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(var), "stderr names {var}: {stderr}");
    }
}

/// The variables in the README's configuration table.
fn readme_variables() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let start = readme.find("<!-- appserver-config -->").expect("README marks the appserver table");
    let end = readme[start..].find("<!-- /appserver-config -->").unwrap() + start;
    readme[start..end]
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn help_and_the_readme_list_the_same_variables() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let mut in_help: Vec<String> =
        help.split("[env: ").skip(1).filter_map(|s| s.split([']', '=']).next()).map(str::to_owned).collect();
    in_help.push("RUST_LOG".to_owned()); // read by tracing, documented in YELB_LOG_FORMAT's help
    in_help.sort();
    let mut in_readme = readme_variables();
    in_readme.sort();
    assert_eq!(in_help, in_readme);
}

/// Starts the real binary in embedded mode on a free port with `vars` set,
/// its stderr captured, and waits until it listens.
pub(crate) fn start_binary(vars: &[(&str, &str)]) -> (std::process::Child, u16) {
    let port = yelb_testkit::free_port();
    let mut cmd = Command::new(BIN);
    cmd.env_clear().env("YELB_LISTEN_ADDR", "127.0.0.1").env("YELB_PORT", port.to_string());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let child = cmd.stdin(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "never listened");
        std::thread::sleep(Duration::from_millis(10));
    }
    (child, port)
}

/// Waits (bounded by `within`) for `child` to exit; kills it and fails the
/// test if it does not.
pub(crate) fn wait_exit(child: &mut std::process::Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sigterm_makes_the_process_exit_promptly_and_cleanly() {
    let (mut child, _) = start_binary(&[("RUST_LOG", "warn")]);
    let sent = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let status = wait_exit(&mut child, Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
}

#[test]
fn access_logs_appear_when_asked_for_and_are_json_when_configured() {
    let (mut child, port) =
        start_binary(&[("YELB_LOG_FORMAT", "json"), ("RUST_LOG", "info,tower_http=debug")]);
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET /api/getvotes HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.0 200"), "{out}");
    }
    let sent = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let mut stderr = String::new();
    use std::io::Read;
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(child.wait().unwrap().success());
    let lines: Vec<serde_json::Value> =
        stderr.lines().map(|l| serde_json::from_str(l).expect("every log line is JSON")).collect();
    assert!(
        lines.iter().any(|l| l["message"] == "finished processing request" && l["status"] == 200),
        "no access log line for the request: {stderr}"
    );
    assert!(lines.iter().any(|l| l["message"].as_str().unwrap_or("").contains("embedded mode")));
}

#[test]
fn the_healthcheck_subcommand_exits_0_for_a_live_server_and_1_otherwise() {
    let (mut child, port) = start_binary(&[("RUST_LOG", "warn")]);
    let probe = |path: &str, port: u16| {
        Command::new(BIN)
            .env_clear()
            .env("YELB_PORT", port.to_string())
            .args(["healthcheck", "--path", path])
            .output()
            .unwrap()
    };
    assert_eq!(probe("/healthz", port).status.code(), Some(0));
    assert_eq!(probe("/readyz", port).status.code(), Some(0), "embedded mode is ready at once");
    let missing = probe("/nope", port);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("answered 404"));
    let _ = child.kill();
    let _ = child.wait();
    let down = probe("/healthz", port);
    assert_eq!(down.status.code(), Some(1), "nothing listens any more");
}

/// Polls `GET path` on `port` until it answers `status` (bounded).
fn wait_http(port: u16, path: &str, status: &str) {
    use std::io::{Read, Write};
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = write!(s, "GET {path} HTTP/1.0\r\n\r\n");
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            if out.split_whitespace().nth(1) == Some(status) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{path} never answered {status}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn get_body(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

// Prints its figures (seen with --nocapture) for BENCHMARKS.md.
#[allow(clippy::print_stdout)]
#[test]
fn raw_socket_fuzzing_gets_no_500_no_hang_and_leaves_the_server_healthy_and_small() {
    use yelb_testkit::fuzz;
    let db = shared_pg_url();
    let (redis, prefix) =
        (yelb_testkit::shared_redis().url(), format!("{}:", yelb_testkit::unique_name("fz")));
    let (mut child, port) = start_binary(&[
        ("RUST_LOG", "error"),
        ("YELB_DATABASE_URL", &db),
        ("YELB_REDIS_URL", &redis),
        ("YELB_REDIS_KEY_PREFIX", &prefix),
        ("YELB_HEADER_TIMEOUT", "1"),
    ]);
    wait_http(port, "/readyz", "200");
    let before = fuzz::rss_kib(child.id()).unwrap();
    let paths = [
        "/api/getvotes",
        "/api/getstats",
        "/api/ihop",
        "/api/v1/votes",
        "/api/v1/votes/chipotle",
        "/api/v1/events",
        "/api/v1/replicas",
        "/metrics",
        "/readyz",
        "/",
    ];
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let report = fuzz::run(addr, &paths, 10_000, 20261203, Duration::from_secs(3));
    let after = fuzz::rss_kib(child.id()).unwrap();
    let metrics = get_body(port, "/metrics");
    println!(
        "app server raw fuzz: {}; RSS {before} -> {after} KiB; /metrics {} bytes",
        report.summary(),
        metrics.len()
    );
    let failures = report.failures(&[503]);
    wait_http(port, "/healthz", "200");
    let _ = child.kill();
    let _ = child.wait();
    assert!(failures.is_empty(), "{failures:?}");
    // Bounded by methods x routes x statuses; one raw 380k-character method
    // used to add 7.6 MB by itself.
    assert!(metrics.len() < 512 * 1024, "/metrics grew to {} bytes", metrics.len());
    assert!(after < before + 32 * 1024, "RSS grew from {before} to {after} KiB");
}

fn shared_pg_url() -> String {
    yelb_testkit::shared_pg().url(&yelb_testkit::unique_name("yelb_fuzz"))
}
