//! The simulator against a real app server on real Postgres and Redis: what
//! it says it counted is what the database holds, faults and all.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use clap::Parser as _;
use yelb_testkit::{shared_pg, shared_redis, unique_name};

const TOKEN: &str = "loadgen-test-token";

/// An app server in this process on the shared Postgres and Redis; its URL
/// and its database.
async fn app_server() -> (String, String, tokio::sync::oneshot::Sender<()>) {
    app_server_with(&[]).await
}

/// [`app_server`] with more flags.
async fn app_server_with(extra: &[&str]) -> (String, String, tokio::sync::oneshot::Sender<()>) {
    let db = unique_name("yelb_loadgen");
    let mut argv = vec![
        "yelb-appserver".to_owned(),
        "--listen-addr=127.0.0.1".to_owned(),
        "--port=0".to_owned(),
        format!("--database-url={}", shared_pg().url(&db)),
        format!("--redis-url={}", shared_redis().url()),
        format!("--redis-key-prefix={}:", unique_name("lg")),
        format!("--admin-token={TOKEN}"),
    ];
    argv.extend(extra.iter().map(|f| (*f).to_owned()));
    let config = yelb_appserver::Config::from_args(yelb_appserver::config::Args::parse_from(argv)).unwrap();
    let app = yelb_appserver::Application::build(config).await.unwrap();
    let url = format!("http://{}", app.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move { drop(rx.await) }));
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if client.get(format!("{url}/readyz")).send().await.is_ok_and(|r| r.status() == 200) {
            return (url, db, tx);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the app server never became ready");
}

/// Runs the binary and returns its JSON summary.
async fn loadgen(args: &[&str]) -> serde_json::Value {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_yelb-loadgen"))
            .args(&args)
            .args(["--json", "--quiet"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn database_counts(db: &str) -> serde_json::Value {
    let rows = shared_pg()
        .psql(db, "SELECT string_agg(trim(name) || '=' || count, ',' ORDER BY name) FROM restaurants");
    let map: serde_json::Map<String, serde_json::Value> = rows
        .split(',')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_owned(), serde_json::json!(v.parse::<u64>().unwrap()))
        })
        .collect();
    serde_json::Value::Object(map)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_simulator_counted_is_what_the_database_holds() {
    let (url, db, _stop) = app_server().await;
    let summary = loadgen(&["--url", &url, "--users", "16", "--rate", "0", "--duration", "3s"]).await;
    let total = summary["total"].as_u64().unwrap();
    assert!(total > 100, "only {total} votes in 3 s: {summary}");
    assert_eq!(summary["counted"], database_counts(&db), "{summary}");
    assert_eq!(summary["errors"], serde_json::json!({}));
    assert_eq!(
        summary["replicas"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum::<u64>(),
        total
    );
    assert!(summary["p99_ms"].as_f64().unwrap() >= summary["p50_ms"].as_f64().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_an_injected_error_rate_retries_keep_the_counts_exact() {
    let (url, db, _stop) = app_server().await;
    let set = reqwest::Client::new()
        .put(format!("{url}/api/v1/admin/faults"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(r#"{"scope":"all","ttl_secs":60,"error_rate":0.3}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let summary =
        loadgen(&["--url", &url, "--users", "8", "--rate", "0", "--duration", "2s", "--retries", "6"]).await;
    let failed = summary["errors"]["503"].as_u64().unwrap_or(0);
    assert!(failed > 20, "a 30% error rate showed as {failed} 503s: {summary}");
    assert_eq!(summary["counted"], database_counts(&db), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limits_the_votes_per_second() {
    let (url, _db, _stop) = app_server().await;
    let summary = loadgen(&["--url", &url, "--users", "5", "--rate", "20", "--duration", "3s"]).await;
    let total = summary["total"].as_u64().unwrap();
    // 20 a second for 3 s, give or take the jitter of the think times.
    assert!((35..=80).contains(&total), "{total} votes at 20/s for 3 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screens_see_every_vote_and_time_it_from_the_answer() {
    let (url, _db, _stop) = app_server().await;
    let summary =
        loadgen(&["--url", &url, "--users", "8", "--rate", "200", "--duration", "3s", "--screens", "40"])
            .await;
    let screens = &summary["screens"];
    assert_eq!(screens["screens"], 40, "{summary}");
    assert_eq!(screens["open_peak"], 40, "every screen got its stream: {summary}");
    assert_eq!(screens["refused"], serde_json::json!({}), "{summary}");
    assert_eq!(screens["missed"], 0, "every screen ends on the final counts: {summary}");
    let samples = screens["samples"].as_u64().unwrap();
    assert!(samples > 40 * 10, "each screen timed many votes, got {samples} samples: {summary}");
    let (p50, p99) = (screens["p50_ms"].as_f64().unwrap(), screens["p99_ms"].as_f64().unwrap());
    assert!(p50 <= p99 && p99 < 2000.0, "p50 {p50} ms, p99 {p99} ms: {summary}");
    assert!(screens["bytes_per_screen"].as_f64().unwrap() > 100.0, "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screens_past_the_stream_cap_are_counted_as_refused() {
    let (url, _db, _stop) = app_server_with(&["--max-streams=5"]).await;
    let summary =
        loadgen(&["--url", &url, "--users", "2", "--rate", "20", "--duration", "2s", "--screens", "8"]).await;
    let screens = &summary["screens"];
    assert_eq!(screens["open_peak"], 5, "{summary}");
    assert!(screens["refused"]["503"].as_u64().unwrap() >= 3, "{summary}");
    assert_eq!(screens["missed"], 3, "the refused screens never saw the counts: {summary}");
}
