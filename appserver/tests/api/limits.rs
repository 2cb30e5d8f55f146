//! What a hostile or careless client cannot do: hold connections open
//! without sending, open more connections or event streams than the server
//! allows, or grow `/metrics` with invented methods.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Backend, connect_from, spawn_app, spawn_with, status_on};

fn addr(base: &str) -> String {
    base.trim_start_matches("http://").to_owned()
}

#[tokio::test]
async fn one_client_cannot_hold_more_than_its_share_and_others_still_get_in() {
    let app = spawn_with(&["--max-connections=50", "--max-connections-per-client=5", "--header-timeout=30"])
        .await
        .wait_ready()
        .await;
    let mut flood = Vec::new();
    for _ in 0..5 {
        flood.push(connect_from("127.0.0.2", &app.base).await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut over = connect_from("127.0.0.2", &app.base).await;
    let (answer, closed) = read_until_closed(&mut over, Duration::from_secs(5)).await;
    assert!(closed && answer.starts_with("HTTP/1.1 503"), "the sixth from one client: {answer}");
    // Another client, and the probes, are served as if nothing happened.
    assert_eq!(status_on(connect_from("127.0.0.3", &app.base).await, "/api/getvotes").await, "200");
    assert_eq!(status_on(connect_from("127.0.0.1", &app.base).await, "/healthz").await, "200");
    // The flooder's share comes back as its connections close.
    drop(flood);
    let deadline = Instant::now() + Duration::from_secs(5);
    while status_on(connect_from("127.0.0.2", &app.base).await, "/api/getvotes").await != "200" {
        assert!(Instant::now() < deadline, "the share must come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn past_the_connection_cap_the_reserve_answers_probes_only() {
    let app = spawn_with(&["--max-connections=4", "--header-timeout=30"]).await.wait_ready().await;
    drop(app.client.clone());
    let mut held = Vec::new();
    for i in 0..4 {
        held.push(connect_from(&format!("127.0.1.{}", i + 1), &app.base).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(status_on(connect_from("127.0.0.9", &app.base).await, "/healthz").await, "200");
    assert_eq!(status_on(connect_from("127.0.0.9", &app.base).await, "/readyz").await, "200");
    assert_eq!(status_on(connect_from("127.0.0.9", &app.base).await, "/api/getvotes").await, "503");
    drop(held);
}

/// Reads until the server closes the connection, or `within` passes.
/// Returns what was read and whether the server closed it.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
            Ok(Ok(0) | Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_client_that_sends_half_a_request_head_is_disconnected_after_the_header_timeout() {
    let app = spawn_with(&["--header-timeout=0.5"]).await.wait_ready().await;
    let mut slow = TcpStream::connect(addr(&app.base)).await.unwrap();
    slow.write_all(b"GET /api/getvotes HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
    let started = Instant::now();
    let (_, closed) = read_until_closed(&mut slow, Duration::from_secs(5)).await;
    assert!(closed, "a slowloris connection must be closed");
    assert!(started.elapsed() < Duration::from_secs(3), "closed after {:?}", started.elapsed());
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_header_timeout() {
    let app = spawn_with(&["--header-timeout=0.5"]).await.wait_ready().await;
    let mut idle = TcpStream::connect(addr(&app.base)).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let (answer, closed) = read_until_closed(&mut idle, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(closed, "an idle keep-alive connection must not be held for ever");
}

#[tokio::test]
async fn a_half_sent_body_does_not_hold_the_connection() {
    let app = spawn_with(&["--header-timeout=0.5"]).await.wait_ready().await;
    let mut slow = TcpStream::connect(addr(&app.base)).await.unwrap();
    slow.write_all(
        b"POST /api/v1/votes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{\"rest",
    )
    .await
    .unwrap();
    let (answer, closed) = read_until_closed(&mut slow, Duration::from_secs(5)).await;
    assert!(closed, "the connection must end");
    if let Some(status) = answer.split_whitespace().nth(1) {
        assert!(status.starts_with('4'), "a stalled body is the client's fault: {answer}");
    }
}

#[tokio::test]
async fn past_the_connection_cap_a_client_gets_a_clear_503_and_health_returns_after() {
    let app = spawn_with(&["--max-connections=3", "--header-timeout=30"]).await.wait_ready().await;
    // The readiness poll's pooled connection may still hold a slot: drop it.
    drop(app.client.clone());
    let mut held = Vec::new();
    // The cap, then the reserve kept for probes.
    for _ in 0..3 + yelb_service::server::PROBE_RESERVE {
        held.push(TcpStream::connect(addr(&app.base)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = TcpStream::connect(addr(&app.base)).await.unwrap();
    let (answer, closed) = read_until_closed(&mut extra, Duration::from_secs(5)).await;
    assert!(closed);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("too many open connections"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after: 1"), "{answer}");
    // The body is exactly as long as the head says (a client that trusts
    // Content-Length would otherwise wait for bytes that never come).
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let declared: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())
        })
        .expect("a Content-Length");
    assert_eq!(body.len(), declared, "{answer}");
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let fresh = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
        if let Ok(r) = fresh.get(format!("{}/healthz", app.base)).send().await
            && r.status() == 200
        {
            break;
        }
        assert!(Instant::now() < deadline, "/healthz must answer again once connections close");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn past_the_stream_cap_an_event_stream_gets_503_and_a_slot_frees_when_one_closes() {
    let app = spawn_with(&["--max-streams=1"]).await.wait_ready().await;
    let first = app.events().await;
    let r = app.get("/api/v1/events").await.unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("streams are taken"), "{body}");
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = app.get("/api/v1/events").await.unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the slot must be freed when the stream closes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn invented_methods_are_labelled_other_in_metrics(b: Backend) {
    let app = spawn_app(b).await;
    let long = "X".repeat(5_000);
    for method in [long.as_str(), "BREW", "PROPFIND"] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = app.request(m, "/api/getvotes").await;
        assert_eq!(r.status(), 405);
    }
    let text = app.get("/metrics").await.unwrap().text().await.unwrap();
    assert!(
        !text.contains("XXXX") && !text.contains("BREW") && !text.contains("PROPFIND"),
        "raw method leaked"
    );
    assert!(text.contains(r#"method="other",route="/api/getvotes",status="405"} 3"#), "{text}");
    assert!(text.len() < 20_000, "metrics stay small: {} bytes", text.len());
}

crate::on_both_backends!(invented_methods_are_labelled_other_in_metrics);
