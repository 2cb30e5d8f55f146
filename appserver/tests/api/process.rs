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
fn start_binary(vars: &[(&str, &str)]) -> (std::process::Child, u16) {
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

#[test]
fn sigterm_makes_the_process_exit_promptly_and_cleanly() {
    let (mut child, _) = start_binary(&[("RUST_LOG", "warn")]);
    let sent = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("did not exit within 5 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
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
