//! The modern API: POST votes, JSON objects, live events, 4xx errors that
//! name the problem.

use std::time::Duration;

use reqwest::Method;
use yelb_core::VoteCounts;

use crate::helpers::{Backend, spawn_app};
use crate::on_both_backends;

async fn post_with_a_json_body_votes_and_returns_a_receipt(b: Backend) {
    let app = spawn_app(b).await;
    let r = app.post_json("/api/v1/votes", r#"{"restaurant":"bucadibeppo"}"#).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-served-by"], app.hostname.as_str());
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"restaurant": "bucadibeppo", "count": 1, "hostname": app.hostname}));
}

async fn a_page_on_another_origin_may_read_which_replica_answered(b: Backend) {
    let app = spawn_app(b).await;
    let r = app
        .client
        .get(format!("{}/api/getvotes", app.base))
        .header("origin", "http://localhost:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert_eq!(r.headers()["access-control-expose-headers"], "x-served-by");
}

async fn post_on_a_restaurant_path_votes(b: Backend) {
    let app = spawn_app(b).await;
    let r = app.request(Method::POST, "/api/v1/votes/chipotle").await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["count"], 1);
    let body: serde_json::Value =
        app.request(Method::POST, "//api/v1/votes/chipotle").await.json().await.unwrap();
    assert_eq!(body["count"], 2);
}

async fn a_vote_with_an_idempotency_key_counts_once_and_says_when_it_was_a_repeat(b: Backend) {
    let app = spawn_app(b).await;
    let send = |key: &'static str, path: &'static str| {
        app.client.post(format!("{}{path}", app.base)).header("Idempotency-Key", key).send()
    };
    let first = send("tap-1", "/api/v1/votes/ihop").await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotency-replayed").is_none());
    assert_eq!(first.json::<serde_json::Value>().await.unwrap()["count"], 1);
    for _ in 0..2 {
        let again = send("tap-1", "/api/v1/votes/ihop").await.unwrap();
        assert_eq!(again.status(), 200);
        assert_eq!(again.headers()["idempotency-replayed"], "true");
        assert_eq!(again.json::<serde_json::Value>().await.unwrap()["count"], 1, "the first vote's count");
    }
    assert_eq!(app.get_json("/api/v1/votes").await["votes"]["ihop"], 1, "counted once");

    let reused = send("tap-1", "/api/v1/votes/chipotle").await.unwrap();
    assert_eq!(reused.status(), 409);
    let body: serde_json::Value = reused.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("ihop"), "{body}");

    let bad = send("has space", "/api/v1/votes/ihop").await.unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("Idempotency-Key"));
    // The JSON-body form takes the header too.
    let body = app
        .client
        .post(format!("{}/api/v1/votes", app.base))
        .header("Idempotency-Key", "tap-2")
        .json(&serde_json::json!({"restaurant": "ihop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(body.json::<serde_json::Value>().await.unwrap()["count"], 2);
    assert_eq!(app.get_json("/api/v1/votes").await["total"], 2);
}

async fn get_votes_returns_an_object_with_the_total(b: Backend) {
    let app = spawn_app(b).await;
    app.request(Method::POST, "/api/v1/votes/ihop").await;
    app.get("/api/outback").await.unwrap();
    let body = app.get_json("/api/v1/votes").await;
    assert_eq!(
        body,
        serde_json::json!({
            "votes": {"outback": 1, "bucadibeppo": 0, "ihop": 1, "chipotle": 0},
            "total": 2,
            "hostname": app.hostname,
            "epoch": 0,
        })
    );
}

async fn stats_reads_without_counting_and_pageviews_counts(b: Backend) {
    let app = spawn_app(b).await;
    assert_eq!(app.get_json("/api/v1/stats").await["pageviews"], 0);
    let r = app.request(Method::POST, "/api/v1/pageviews").await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"hostname": app.hostname, "pageviews": 1}));
    assert_eq!(app.get_json("/api/v1/stats").await["pageviews"], 1);
    assert_eq!(app.get_json("/api/v1/stats").await["pageviews"], 1);
}

async fn malformed_vote_bodies_get_4xx_json_errors(b: Backend) {
    let app = spawn_app(b).await;
    let cases: &[(&str, Option<&str>, u16, &str)] = &[
        (r#"{"restaurant":"kfc"}"#, Some("application/json"), 422, "unknown variant `kfc`"),
        (r#"{"restaurant":"ihop","extra":1}"#, Some("application/json"), 422, "unknown field `extra`"),
        (r#"{}"#, Some("application/json"), 422, "missing field `restaurant`"),
        (r#"{"restaurant":"#, Some("application/json"), 400, "EOF"),
        ("restaurant=ihop", Some("application/x-www-form-urlencoded"), 415, "Content-Type: application/json"),
        (r#"{"restaurant":"ihop"}"#, None, 415, "Content-Type: application/json"),
    ];
    for (body, content_type, status, needle) in cases {
        let mut req = app.client.post(format!("{}/api/v1/votes", app.base)).body(body.to_string());
        if let Some(ct) = content_type {
            req = req.header("content-type", *ct);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), *status, "body {body}");
        assert_eq!(r.headers()["content-type"], "application/json");
        let err: serde_json::Value = r.json().await.unwrap();
        assert_eq!(err["status"], *status);
        assert!(err["error"].as_str().unwrap().contains(needle), "{err} should mention {needle}");
    }
    assert_eq!(app.get_json("/api/v1/votes").await["total"], 0, "no bad request cast a vote");
}

async fn an_oversized_body_is_rejected_without_voting(b: Backend) {
    let app = spawn_app(b).await;
    let huge = format!(r#"{{"restaurant":"ihop","pad":"{}"}}"#, "x".repeat(3 * 1024 * 1024));
    let r = app.post_json("/api/v1/votes", &huge).await;
    assert_eq!(r.status(), 413);
    assert_eq!(app.get_json("/api/v1/votes").await["total"], 0);
}

async fn unknown_routes_and_methods_are_json_errors(b: Backend) {
    let app = spawn_app(b).await;
    let r = app.get("/api/v2/votes/ihop").await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["x-served-by"], app.hostname.as_str());
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"error": "no such route: /api/v2/votes/ihop", "status": 404}));

    let r = app.get("/api/v1/votes/ihop").await.unwrap();
    assert_eq!(r.status(), 405, "voting is POST in the modern API");
    assert_eq!(app.request(Method::POST, "/api/v1/votes/pizza").await.status(), 404);
    assert_eq!(app.request(Method::DELETE, "/api/v1/votes").await.status(), 405);
    assert_eq!(app.get_json("/api/v1/votes").await["total"], 0);
}

async fn the_event_stream_sends_the_state_now_and_after_every_change(b: Backend) {
    let app = spawn_app(b).await;
    app.get("/api/ihop").await.unwrap();
    let mut events = app.events().await;
    let first = events.next_state(Duration::from_secs(5)).await.expect("an initial state");
    assert_eq!(first.votes, VoteCounts { ihop: 1, ..Default::default() });

    app.request(Method::POST, "/api/v1/votes/outback").await;
    let after_vote = events.until(Duration::from_secs(5), |s| s.votes.outback == 1).await;
    assert_eq!(after_vote.expect("vote pushed").votes.ihop, 1);

    app.get("/api/getstats").await.unwrap();
    let after_view = events.until(Duration::from_secs(5), |s| s.pageviews == 1).await;
    assert!(after_view.is_some(), "page view pushed");
}

#[tokio::test]
async fn an_event_stream_may_ask_for_its_interval_and_junk_is_a_400() {
    let app = crate::helpers::spawn_with(&[]).await.wait_ready().await;
    let r = app.get("/api/v1/events?interval_ms=soon").await.unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("interval_ms"), "{body}");

    // A slow stream (1 s, the most) folds a burst of 30 votes over ~1.5 s
    // into at most three events after the first; the default (50 ms) would send ~30.
    let r = app.get("/api/v1/events?interval_ms=5000").await.unwrap();
    assert_eq!(r.status(), 200);
    let mut events = crate::helpers::EventStream::from_response(r);
    events.next_state(Duration::from_secs(5)).await.expect("the state now");
    let started = std::time::Instant::now();
    for _ in 0..30 {
        app.request(Method::POST, "/api/v1/votes/ihop").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Until 1.2 s after the last vote (so its event is due), however long
    // the votes took on a loaded machine: at most one event per second of
    // the whole time, plus the first.
    let until = started.elapsed() + Duration::from_millis(1_200);
    let mut seen = 0;
    while started.elapsed() < until {
        if events.next_state(Duration::from_millis(100)).await.is_some() {
            seen += 1;
        }
    }
    let most = started.elapsed().as_secs() + 1;
    assert!((1..=most).contains(&seen), "{seen} events in {:?} at 1 s apart", started.elapsed());
}

#[tokio::test]
async fn idle_event_streams_send_heartbeat_comments() {
    let app = crate::helpers::spawn_with(&["--events-heartbeat=0.2"]).await.wait_ready().await;
    let r = app.get("/api/v1/events").await.unwrap();
    let mut body = r.bytes_stream();
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(3), async {
        use futures_util::StreamExt;
        while let Some(Ok(chunk)) = body.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            // A comment line (starts with ':') after the first state event.
            if seen.contains("event: state") && seen.lines().any(|l| l.starts_with(':')) {
                return;
            }
        }
    })
    .await;
    assert!(found.is_ok(), "no heartbeat within 3 s: {seen:?}");
}

async fn the_openapi_document_describes_every_api_route(b: Backend) {
    let app = spawn_app(b).await;
    let doc = app.get_json("/api/openapi.json").await;
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: std::collections::BTreeSet<&str> =
        doc["paths"].as_object().unwrap().keys().map(String::as_str).collect();
    // Every path the router registers, read from its source, so a route
    // added without documentation (or documentation of a route that is
    // gone) fails here.
    let source = include_str!("../../src/routes/mod.rs");
    let routed: std::collections::BTreeSet<&str> =
        source.split(".route(\"").skip(1).filter_map(|rest| rest.split('"').next()).collect();
    assert!(routed.len() >= 15, "found the routes: {routed:?}");
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(undocumented.is_empty(), "routes missing from openapi.json: {undocumented:?}");
    assert!(unrouted.is_empty(), "documented paths with no route: {unrouted:?}");
}

async fn replicas_lists_this_replica_with_its_request_count(b: Backend) {
    let app = spawn_app(b).await;
    for _ in 0..3 {
        app.get("/api/getvotes").await.unwrap();
    }
    app.get("/healthz").await.unwrap(); // not an /api request: not counted
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let body = app.get_json("/api/v1/replicas").await;
        assert_eq!(body["hostname"], app.hostname.as_str());
        let me = body["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["hostname"] == app.hostname.as_str())
            .cloned();
        // 3 getvotes, plus the replicas calls themselves (/api requests too).
        if let Some(me) = me.filter(|m| m["served"].as_u64().unwrap() >= 4) {
            let last_seen = me["last_seen_ms"].as_u64().unwrap();
            match b {
                // Embedded: the list is this replica, now.
                Backend::Memory => assert_eq!(last_seen, 0),
                // Through Redis: reported every second, so never older than two.
                Backend::Real => assert!(last_seen <= 2_000, "last seen {last_seen} ms ago"),
            }
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never listed with its count: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

on_both_backends!(
    a_vote_with_an_idempotency_key_counts_once_and_says_when_it_was_a_repeat,
    replicas_lists_this_replica_with_its_request_count,
    post_with_a_json_body_votes_and_returns_a_receipt,
    a_page_on_another_origin_may_read_which_replica_answered,
    post_on_a_restaurant_path_votes,
    get_votes_returns_an_object_with_the_total,
    stats_reads_without_counting_and_pageviews_counts,
    malformed_vote_bodies_get_4xx_json_errors,
    an_oversized_body_is_rejected_without_voting,
    unknown_routes_and_methods_are_json_errors,
    the_event_stream_sends_the_state_now_and_after_every_change,
    the_openapi_document_describes_every_api_route,
);
