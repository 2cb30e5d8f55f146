//! Health, readiness, metrics and the index.

use crate::helpers::{Backend, spawn_app};
use crate::on_both_backends;

async fn healthz_answers_ok(b: Backend) {
    let app = spawn_app(b).await;
    let r = app.get("/healthz").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-served-by"], app.hostname.as_str());
    assert_eq!(r.json::<serde_json::Value>().await.unwrap(), serde_json::json!({"status": "ok"}));
}

async fn readyz_reports_each_backend(b: Backend) {
    let app = spawn_app(b).await;
    let body = app.get_json("/readyz").await;
    let expected = match b {
        Backend::Memory => "memory",
        Backend::Real => "up",
    };
    assert_eq!(body["status"], "ready");
    assert_eq!(body["hostname"], app.hostname.as_str());
    assert_eq!(body["checks"], serde_json::json!({"postgres": expected, "redis": expected}));
}

async fn metrics_count_requests_votes_and_name_the_replica(b: Backend) {
    let app = spawn_app(b).await;
    app.get("/api/ihop").await.unwrap();
    app.get("/api/ihop").await.unwrap();
    app.get("/api/nope").await.unwrap();
    app.get("/api/getvotes").await.unwrap();
    let r = app.get("/metrics").await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let text = r.text().await.unwrap();
    let has = |needle: &str| assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    has(r#"yelb_votes_total{restaurant="ihop"} 2"#);
    has(r#"yelb_votes_total{restaurant="chipotle"} 0"#);
    has(r#"yelb_http_requests_total{method="GET",route="/api/{restaurant}",status="200"} 2"#);
    has(r#"yelb_http_requests_total{method="GET",route="/api/{restaurant}",status="404"} 1"#);
    has(r#"yelb_http_requests_total{method="GET",route="/api/getvotes",status="200"} 1"#);
    has(r#"yelb_http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/api/getvotes"} 1"#);
    has(&format!(r#"hostname="{}""#, app.hostname));
    has("yelb_appserver_info{");
    has("# EOF");
}

async fn a_scan_of_random_paths_does_not_grow_the_metric_labels(b: Backend) {
    let app = spawn_app(b).await;
    for i in 0..20 {
        app.get(&format!("/random/{i}")).await.unwrap();
    }
    let text = app.get("/metrics").await.unwrap().text().await.unwrap();
    assert!(!text.contains("/random/"));
    assert!(text.contains(r#"route="<unmatched>",status="404"} 20"#), "{text}");
}

async fn the_index_links_to_the_docs(b: Backend) {
    let app = spawn_app(b).await;
    let body = app.get_json("/").await;
    assert_eq!(body["name"], "yelb-appserver");
    assert_eq!(body["links"]["openapi"], "/api/openapi.json");
}

on_both_backends!(
    healthz_answers_ok,
    readyz_reports_each_backend,
    metrics_count_requests_votes_and_name_the_replica,
    a_scan_of_random_paths_does_not_grow_the_metric_labels,
    the_index_links_to_the_docs,
);
