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
