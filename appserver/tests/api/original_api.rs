//! The original Yelb API, route by route: bodies, statuses, content types,
//! CORS headers, `//api` paths, ignored query strings, HEAD and OPTIONS.

use reqwest::Method;

use crate::helpers::{Backend, spawn_app};
use crate::on_both_backends;

const CORS_HEADERS: &str = "Authorization,Accepts,Content-Type,X-CSRF-Token,X-Requested-With";
const CORS_METHODS: &str = "GET,POST,PUT,DELETE,OPTIONS";

/// A 200 with the original's content type and headers.
fn assert_original_ok(r: &reqwest::Response, hostname: &str) {
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_original_headers(r, hostname);
}

fn assert_original_headers(r: &reqwest::Response, hostname: &str) {
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], "*");
    assert_eq!(h["access-control-allow-headers"], CORS_HEADERS);
    assert_eq!(h["access-control-allow-methods"], CORS_METHODS);
    assert_eq!(h["x-served-by"], hostname);
}

async fn getvotes_lists_all_four_in_the_original_order_at_zero(b: Backend) {
    let app = spawn_app(b).await;
    let r = app.get("/api/getvotes").await.unwrap();
    assert_original_ok(&r, &app.hostname);
    assert_eq!(
        r.text().await.unwrap(),
        r#"[{"name":"outback","value":0},{"name":"bucadibeppo","value":0},{"name":"ihop","value":0},{"name":"chipotle","value":0}]"#
    );
}

async fn a_get_on_a_restaurant_votes_and_returns_the_bare_new_count(b: Backend) {
    let app = spawn_app(b).await;
    for expected in 1..=3 {
        let r = app.get("/api/ihop").await.unwrap();
        assert_original_ok(&r, &app.hostname);
        assert_eq!(r.text().await.unwrap(), expected.to_string());
    }
    assert_eq!(app.get("/api/chipotle").await.unwrap().text().await.unwrap(), "1");
    let votes = app.get_json("/api/getvotes").await;
    assert_eq!(votes[2], serde_json::json!({"name": "ihop", "value": 3}));
    assert_eq!(votes[3], serde_json::json!({"name": "chipotle", "value": 1}));
}

async fn every_restaurant_has_its_vote_route(b: Backend) {
    let app = spawn_app(b).await;
    for name in ["outback", "bucadibeppo", "ihop", "chipotle"] {
        assert_eq!(app.get(&format!("/api/{name}")).await.unwrap().text().await.unwrap(), "1", "{name}");
    }
    let votes = app.get_json("/api/getvotes").await;
    assert!(votes.as_array().unwrap().iter().all(|v| v["value"] == 1));
}

async fn getstats_counts_a_page_view_and_names_the_host(b: Backend) {
    let app = spawn_app(b).await;
    let first = app.get_json("/api/getstats").await;
    let second = app.get("/api/getstats").await.unwrap();
    assert_eq!(second.headers()["content-type"], "application/json");
    assert_original_headers(&second, &app.hostname);
    let second: serde_json::Value = second.json().await.unwrap();
    assert_eq!(first, serde_json::json!({"hostname": app.hostname, "pageviews": 1}));
    assert_eq!(second["pageviews"], 2);
    // Key order is part of the contract: hostname first.
    let text = app.get("/api/getstats").await.unwrap().text().await.unwrap();
    assert_eq!(text, format!(r#"{{"hostname":"{}","pageviews":3}}"#, app.hostname));
}

async fn pageviews_counts_a_view_and_returns_a_bare_integer(b: Backend) {
    let app = spawn_app(b).await;
    let r = app.get("/api/pageviews").await.unwrap();
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.text().await.unwrap(), "1");
    app.get("/api/getstats").await.unwrap();
    assert_eq!(
        app.get("/api/pageviews").await.unwrap().text().await.unwrap(),
        "3",
        "one counter for both routes"
    );
}

async fn hostname_is_bare_unquoted_text(b: Backend) {
    let app = spawn_app(b).await;
    let r = app.get("/api/hostname").await.unwrap();
    assert_original_ok(&r, &app.hostname);
    assert_eq!(r.text().await.unwrap(), app.hostname);
}

async fn double_slash_paths_work_like_single_slash_paths(b: Backend) {
    let app = spawn_app(b).await;
    assert_eq!(app.get("//api/outback").await.unwrap().text().await.unwrap(), "1");
    let votes = app.get_json("//api/getvotes").await;
    assert_eq!(votes[0]["value"], 1);
    assert_eq!(app.get_json("//api/getstats").await["pageviews"], 1);
    assert_eq!(app.get("///api//hostname").await.unwrap().text().await.unwrap(), app.hostname);
}

async fn query_strings_are_ignored(b: Backend) {
    let app = spawn_app(b).await;
    assert_eq!(app.get("/api/ihop?x=1&cache=0").await.unwrap().text().await.unwrap(), "1");
    assert_eq!(app.get_json("//api/getvotes?t=123").await[2]["value"], 1);
}

async fn head_on_a_vote_route_does_not_vote(b: Backend) {
    let app = spawn_app(b).await;
    for _ in 0..3 {
        let r = app.request(Method::HEAD, "/api/outback").await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/json");
        assert_eq!(r.headers()["x-served-by"], app.hostname.as_str());
    }
    assert_eq!(app.request(Method::HEAD, "/api/kfc").await.status(), 404);
    assert_eq!(app.get_json("/api/getvotes").await[0]["value"], 0);
}

async fn options_is_a_working_cors_preflight(b: Backend) {
    let app = spawn_app(b).await;
    for path in ["/api/getvotes", "/api/ihop", "//api/getstats", "/api/v1/votes"] {
        let r = app
            .client
            .request(Method::OPTIONS, format!("{}{path}", app.base))
            .header("origin", "http://localhost:8080")
            .header("access-control-request-method", "GET")
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "preflight {path}: {}", r.status());
        assert_original_headers(&r, &app.hostname);
    }
    assert_eq!(app.get_json("/api/getvotes").await[2]["value"], 0, "a preflight never votes");
}

async fn an_unknown_restaurant_is_a_404_naming_the_valid_ones(b: Backend) {
    let app = spawn_app(b).await;
    let r = app.get("/api/pizzahut").await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_original_headers(&r, &app.hostname);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], 404);
    assert_eq!(
        body["error"],
        "unknown restaurant 'pizzahut'; expected one of outback, bucadibeppo, ihop, chipotle"
    );
}

async fn wrong_methods_on_original_routes_are_405_json(b: Backend) {
    let app = spawn_app(b).await;
    for (method, path) in
        [(Method::POST, "/api/getvotes"), (Method::DELETE, "/api/ihop"), (Method::PUT, "/api/hostname")]
    {
        let r = app.request(method.clone(), path).await;
        assert_eq!(r.status(), 405, "{method} {path}");
        assert_original_headers(&r, &app.hostname);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["status"], 405);
    }
    assert_eq!(app.get_json("/api/getvotes").await[2]["value"], 0, "a rejected DELETE never votes");
}

on_both_backends!(
    getvotes_lists_all_four_in_the_original_order_at_zero,
    a_get_on_a_restaurant_votes_and_returns_the_bare_new_count,
    every_restaurant_has_its_vote_route,
    getstats_counts_a_page_view_and_names_the_host,
    pageviews_counts_a_view_and_returns_a_bare_integer,
    hostname_is_bare_unquoted_text,
    double_slash_paths_work_like_single_slash_paths,
    query_strings_are_ignored,
    head_on_a_vote_route_does_not_vote,
    options_is_a_working_cors_preflight,
    an_unknown_restaurant_is_a_404_naming_the_valid_ones,
    wrong_methods_on_original_routes_are_405_json,
);
