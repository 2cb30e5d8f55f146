//! The harness itself: servers start, answer, stop and come back.

// Tests fail loudly on purpose: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

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
