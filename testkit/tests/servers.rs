//! The harness itself: servers start, answer, stop and come back.

// Tests fail loudly on purpose: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;
use yelb_testkit::{PgServer, RedisServer};

#[test]
fn postgres_starts_answers_and_restarts_on_the_same_port() {
    let mut pg = PgServer::start_new();
    assert_eq!(pg.psql("postgres", "SELECT 40 + 2"), "42");
    let port = pg.port();
    pg.stop();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    pg.start();
    assert_eq!(pg.psql("postgres", "SELECT 'back'"), "back");
}

#[test]
fn redis_starts_answers_and_stops() {
    let mut redis = RedisServer::start_new();
    assert_eq!(redis.command("PING").as_deref(), Some("+PONG"));
    assert_eq!(redis.command("INCR k").as_deref(), Some(":1"));
    assert_eq!(redis.get("k").as_deref(), Some("1"));
    assert_eq!(redis.get("missing"), None);
    redis.stop();
    assert_eq!(redis.command("PING"), None);
}

#[test]
fn the_balancer_hands_connections_to_its_backends_in_turn() {
    use std::io::{Read, Write};
    let backends: Vec<std::net::TcpListener> =
        (0..2).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let addrs = backends.iter().map(|l| l.local_addr().unwrap()).collect();
    let balancer = yelb_testkit::Balancer::start(addrs);
    let mut served = Vec::new();
    for round in 0..4 {
        let mut client = std::net::TcpStream::connect(balancer.addr()).unwrap();
        client.write_all(b"ping").unwrap();
        let backend = &backends[round % 2];
        let (mut conn, _) = backend.accept().unwrap();
        let mut buf = [0u8; 4];
        conn.read_exact(&mut buf).unwrap();
        conn.write_all(format!("b{}", round % 2).as_bytes()).unwrap();
        drop(conn);
        let mut answer = String::new();
        client.read_to_string(&mut answer).unwrap();
        served.push(answer);
    }
    assert_eq!(served, ["b0", "b1", "b0", "b1"]);
    assert_eq!(balancer.connections(), 4);
}

#[test]
fn a_frozen_postgres_does_not_answer_and_a_thawed_one_does() {
    let pg = PgServer::start_new();
    assert_eq!(pg.psql("postgres", "SELECT 1"), "1");
    pg.freeze();
    let out = std::process::Command::new("timeout")
        .args([
            "2",
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port().to_string(),
            "-U",
            "postgres",
            "-c",
            "SELECT 1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a frozen server must not answer");
    pg.thaw();
    assert_eq!(pg.psql("postgres", "SELECT 1"), "1");
}

/// Not a test: what the two tests below run in a child process. It starts
/// the shared server, writes where its data is, and ends as it is told.
#[test]
#[ignore = "run as a child process by the data-directory tests"]
fn child_process_with_the_shared_server() {
    let dir = yelb_testkit::shared_pg().data_dir().to_owned();
    std::fs::write(std::env::var("YELB_TESTKIT_CHILD_OUT").unwrap(), dir.to_str().unwrap()).unwrap();
    if std::env::var("YELB_TESTKIT_CHILD").as_deref() == Ok("killed") {
        std::process::abort();
    }
}

/// Runs this test binary as a child that uses the shared server; returns
/// whether it exited cleanly and the server's data directory.
fn run_child(how: &str) -> (bool, PathBuf) {
    let out = tempfile::NamedTempFile::new().unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "child_process_with_the_shared_server", "--quiet"])
        .env("YELB_TESTKIT_CHILD", how)
        .env("YELB_TESTKIT_CHILD_OUT", out.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    let dir = PathBuf::from(std::fs::read_to_string(out.path()).unwrap());
    assert!(dir.starts_with(std::env::temp_dir()), "{dir:?}");
    (status.success(), dir)
}

#[test]
fn the_shared_servers_data_goes_when_its_process_exits() {
    let (clean, dir) = run_child("exits");
    assert!(clean);
    assert!(!dir.exists(), "{dir:?} was left behind");
}

#[test]
fn a_killed_processs_data_goes_with_the_next_server() {
    let (clean, dir) = run_child("killed");
    assert!(!clean);
    assert!(dir.exists(), "a killed process cannot clean up: {dir:?} should still be there");
    let _next = PgServer::new_stopped();
    assert!(!dir.exists(), "{dir:?} was left behind");
}

#[test]
fn a_servers_data_goes_with_its_handle() {
    let pg = PgServer::start_new();
    let dir = pg.data_dir().to_owned();
    assert!(dir.join("data").exists());
    drop(pg);
    assert!(!dir.exists(), "{dir:?} was left behind");
}
