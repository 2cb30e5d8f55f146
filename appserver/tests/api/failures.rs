//! Backends that are down, late, or restarted; the app must answer clearly
//! and recover by itself.

use std::time::{Duration, Instant};

use reqwest::Method;
use yelb_testkit::{PgServer, RedisServer, shared_pg, shared_redis, unique_name};

use crate::helpers::{TestApp, spawn_with};

async fn status_of(app: &TestApp, path: &str) -> (u16, serde_json::Value) {
    let r = app.get(path).await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

async fn wait_for(app: &TestApp, path: &str, status: u16, within: Duration) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let (s, body) = status_of(app, path).await;
        if s == status {
            return body;
        }
        assert!(Instant::now() < deadline, "{path} did not turn {status} within {within:?}; last {s} {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn with_both_backends_down_at_start_it_is_alive_not_ready_then_ready_when_they_arrive() {
    let mut pg = PgServer::new_stopped();
    let mut redis = RedisServer::new_stopped();
    let db = format!("--database-url={}", pg.url("yelbdatabase"));
    let rd = format!("--redis-url={}", redis.url());
    let app = spawn_with(&[&db, &rd]).await;

    assert_eq!(status_of(&app, "/healthz").await.0, 200, "alive without any backend");
    let (s, body) = status_of(&app, "/readyz").await;
    assert_eq!(s, 503);
    assert_eq!(body["status"], "not ready");
    assert_eq!(body["checks"]["postgres"], "down");
    assert_eq!(body["checks"]["redis"], "down");
    let (s, body) = status_of(&app, "/api/ihop").await;
    assert_eq!(s, 503);
    assert!(body["error"].as_str().unwrap().contains("not ready"), "{body}");
    assert_eq!(status_of(&app, "/api/getvotes").await.0, 503);
    assert_eq!(status_of(&app, "/api/getstats").await.0, 503);

    pg.start();
    redis.start();
    let body = wait_for(&app, "/readyz", 200, Duration::from_secs(15)).await;
    // Redis may lag a moment behind Postgres; wait for both.
    if body["status"] != "ready" {
        let deadline = Instant::now() + Duration::from_secs(10);
        while status_of(&app, "/readyz").await.1["status"] != "ready" {
            assert!(Instant::now() < deadline, "never fully ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(app.get("/api/ihop").await.unwrap().text().await.unwrap(), "1");
    assert_eq!(app.get_json("/api/getstats").await["pageviews"], 1);
    assert_eq!(pg.psql("yelbdatabase", "SELECT count(*) FROM restaurants"), "4", "schema created on arrival");
}

#[tokio::test]
async fn votes_keep_working_while_redis_is_down_and_page_views_return_with_it() {
    let mut redis = RedisServer::start_new();
    let db = format!("--database-url={}", shared_pg().url(&unique_name("yelb_rd")));
    let rd = format!("--redis-url={}", redis.url());
    let app = spawn_with(&[&db, &rd]).await.wait_ready().await;
    assert_eq!(app.get_json("/api/getstats").await["pageviews"], 1);

    redis.stop();
    assert_eq!(app.get("/api/outback").await.unwrap().text().await.unwrap(), "1", "votes work");
    let r = app.request(Method::POST, "/api/v1/votes/outback").await;
    assert_eq!(r.status(), 200);
    let (s, body) = status_of(&app, "/api/getstats").await;
    assert_eq!(s, 503);
    assert_eq!(body["status"], 503);
    assert!(body["error"].as_str().unwrap().contains("Redis"), "{body}");
    let body = wait_for(&app, "/readyz", 200, Duration::from_secs(5)).await;
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["checks"]["redis"], "down");

    redis.start();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, body) = status_of(&app, "/api/getstats").await;
        if s == 200 {
            assert_eq!(body["pageviews"], 1, "a fresh Redis without persistence counts from 1");
            break;
        }
        assert!(Instant::now() < deadline, "page views never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.get_json("/api/getvotes").await[0]["value"], 2, "no vote lost");
}

#[tokio::test]
async fn a_postgres_restart_mid_run_gives_503s_then_recovers_with_every_vote_kept() {
    let mut pg = PgServer::start_new();
    let db = format!("--database-url={}", pg.url("yelbdatabase"));
    let rd = format!("--redis-url={}", shared_redis().url());
    let prefix = format!("--redis-key-prefix={}:", unique_name("pgr"));
    let app = spawn_with(&[&db, &rd, &prefix]).await.wait_ready().await;
    for _ in 0..5 {
        app.get("/api/chipotle").await.unwrap();
    }

    pg.stop();
    let (s, body) = status_of(&app, "/api/chipotle").await;
    assert_eq!(s, 503, "{body}");
    assert_eq!(body["error"], "the vote database is unavailable; try again shortly");
    assert_eq!(status_of(&app, "/api/getvotes").await.0, 503);
    let body = wait_for(&app, "/readyz", 503, Duration::from_secs(5)).await;
    assert_eq!(body["checks"]["postgres"], "down");
    assert_eq!(status_of(&app, "/healthz").await.0, 200, "still alive: no restart wanted");
    assert_eq!(app.get_json("/api/getstats").await["pageviews"], 1, "page views work without Postgres");

    pg.start();
    wait_for(&app, "/api/getvotes", 200, Duration::from_secs(15)).await;
    assert_eq!(app.get("/api/chipotle").await.unwrap().text().await.unwrap(), "6");
    assert_eq!(pg.psql("yelbdatabase", "SELECT count FROM restaurants WHERE name = 'chipotle'"), "6");
}

#[tokio::test]
async fn graceful_shutdown_fails_readiness_first_then_ends_streams_and_returns() {
    use clap::Parser;
    let args = yelb_appserver::config::Args::try_parse_from([
        "yelb-appserver",
        "--listen-addr=127.0.0.1",
        "--port=0",
        "--shutdown-delay=0.5",
        "--shutdown-timeout=2",
    ])
    .unwrap();
    let config = yelb_appserver::Config::from_args(args).unwrap();
    let app = yelb_appserver::Application::build(config).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    let client = reqwest::Client::new();
    assert_eq!(client.get(format!("{base}/readyz")).send().await.unwrap().status(), 200);
    let mut stream = client.get(format!("{base}/api/v1/events")).send().await.unwrap().bytes_stream();
    use futures_util::StreamExt;
    assert!(stream.next().await.is_some(), "the stream sent its first state");

    let asked = Instant::now();
    tx.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503, "readiness fails during the delay");
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["status"], "shutting down");
    assert_eq!(
        client.get(format!("{base}/api/getvotes")).send().await.unwrap().status(),
        200,
        "still serving"
    );

    // The stream ends cleanly once the delay is over.
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(chunk) = stream.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(end.is_ok(), "event stream ended");
    let result = tokio::time::timeout(Duration::from_secs(5), server).await;
    assert!(matches!(result, Ok(Ok(Ok(())))), "server returned Ok");
    let took = asked.elapsed();
    assert!(took >= Duration::from_millis(500) && took < Duration::from_secs(3), "took {took:?}");
}

#[tokio::test]
async fn readiness_says_why_postgres_is_not_ready_when_the_schema_cannot_be_created() {
    let url = shared_pg().url(&unique_name("yelb_norole")).replacen(
        "postgres://postgres",
        "postgres://nobody_here",
        1,
    );
    let app = spawn_with(&[&format!("--database-url={url}")]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, body) = status_of(&app, "/readyz").await;
        assert_eq!(s, 503);
        if let Some(why) = body["postgres_error"].as_str() {
            assert!(why.contains("nobody_here"), "the reason names the role: {why}");
            break;
        }
        assert!(Instant::now() < deadline, "/readyz never said why: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn after_a_redis_outage_a_replica_catches_up_on_votes_cast_through_others() {
    let mut redis = RedisServer::start_new();
    let db = format!("--database-url={}", shared_pg().url(&unique_name("yelb_catch")));
    let rd = format!("--redis-url={}", redis.url());
    let a = spawn_with(&[&db, &rd]).await.wait_ready().await;
    let b = spawn_with(&[&db, &rd]).await.wait_ready().await;
    let mut events = a.events().await;
    assert!(events.until(Duration::from_secs(5), |s| s.votes.ihop == 0).await.is_some());

    redis.stop();
    // Through B while Redis is down: A's hub cannot hear of these.
    for _ in 0..3 {
        assert_eq!(b.request(Method::POST, "/api/v1/votes/ihop").await.status(), 200);
    }
    redis.start();
    let seen = events.until(Duration::from_secs(15), |s| s.votes.ihop == 3).await;
    assert!(seen.is_some(), "A's stream must show B's votes once Redis is back");
}
