//! Two app servers sharing one Postgres and one Redis, as replicas behind a
//! load balancer.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::Method;
use yelb_testkit::{shared_pg, shared_redis, unique_name};

use crate::helpers::{TestApp, spawn_with};

async fn two_replicas() -> (TestApp, TestApp, String) {
    let db_name = unique_name("yelb_pair");
    let db = format!("--database-url={}", shared_pg().url(&db_name));
    let rd = format!("--redis-url={}", shared_redis().url());
    let prefix = format!("--redis-key-prefix={}:", unique_name("pair"));
    let a = spawn_with(&[&db, &rd, &prefix]).await.wait_ready().await;
    let b = spawn_with(&[&db, &rd, &prefix]).await.wait_ready().await;
    (a, b, db_name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_concurrent_votes_over_two_replicas_are_all_counted() {
    let (a, b, db_name) = two_replicas().await;
    let total = 4000usize;
    let restaurants = ["outback", "bucadibeppo", "ihop", "chipotle"];
    let client = reqwest::Client::new();
    let results: Vec<(u16, String)> = futures_util::stream::iter(0..total)
        .map(|i| {
            let base = if i % 2 == 0 { a.base.clone() } else { b.base.clone() };
            let name = restaurants[i % 4];
            // Mix the original GET route and the modern POST route.
            let req = if i % 3 == 0 {
                client.get(format!("{base}/api/{name}"))
            } else {
                client.post(format!("{base}/api/v1/votes/{name}"))
            };
            async move {
                let r = req.send().await.expect("request sent");
                (r.status().as_u16(), r.headers()["x-served-by"].to_str().unwrap().to_owned())
            }
        })
        .buffer_unordered(256)
        .collect()
        .await;
    assert!(results.iter().all(|(s, _)| *s == 200), "every vote acknowledged");
    let by_a = results.iter().filter(|(_, h)| *h == a.hostname).count();
    assert_eq!(by_a, total / 2, "half went to each replica");

    let body = a.get_json("/api/v1/votes").await;
    assert_eq!(body["total"], total);
    for name in restaurants {
        assert_eq!(body["votes"][name], total / 4, "{name}");
    }
    assert_eq!(shared_pg().psql(&db_name, "SELECT sum(count) FROM restaurants"), total.to_string());
    assert_eq!(b.get_json("/api/v1/votes").await["total"], total, "the other replica agrees");
}

#[tokio::test]
async fn a_client_on_one_replica_sees_votes_cast_on_the_other() {
    let (a, b, _) = two_replicas().await;
    let mut on_a = a.events().await;
    on_a.next_state(Duration::from_secs(5)).await.expect("initial state");
    let started = std::time::Instant::now();
    let r = b.request(Method::POST, "/api/v1/votes/ihop").await;
    assert_eq!(r.headers()["x-served-by"], b.hostname.as_str());
    let seen = on_a.until(Duration::from_secs(5), |s| s.votes.ihop == 1).await;
    assert!(seen.is_some(), "the vote on B reached A's stream");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?}");

    b.get("/api/getstats").await.unwrap();
    assert!(on_a.until(Duration::from_secs(5), |s| s.pageviews == 1).await.is_some(), "page views too");
}

#[tokio::test]
async fn replicas_report_their_own_hostnames() {
    let (a, b, _) = two_replicas().await;
    assert_ne!(a.hostname, b.hostname);
    assert_eq!(a.get("/api/hostname").await.unwrap().text().await.unwrap(), a.hostname);
    assert_eq!(b.get_json("/api/getstats").await["hostname"], b.hostname.as_str());
}

#[tokio::test]
async fn the_replicas_endpoint_shows_every_replica_and_what_it_served() {
    let (a, b, _) = two_replicas().await;
    for _ in 0..5 {
        a.get("/api/getvotes").await.unwrap();
    }
    for _ in 0..3 {
        b.get("/api/getvotes").await.unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        // Ask A: it must know B's count too (through Redis).
        let body = a.get_json("/api/v1/replicas").await;
        let served = |host: &str| {
            body["replicas"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["hostname"] == host)
                .and_then(|r| r["served"].as_u64())
        };
        if served(&a.hostname).is_some_and(|n| n >= 5) && served(&b.hostname).is_some_and(|n| n >= 3) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "both replicas never listed: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_placement_poisoned_in_redis_is_shown_only_once_made_harmless() {
    let db = format!("--database-url={}", shared_pg().url(&unique_name("yelb_poison")));
    let prefix = format!("{}:", unique_name("poison"));
    let rd = format!("--redis-url={}", shared_redis().url());
    let app = spawn_with(&[&db, &rd, &format!("--redis-key-prefix={prefix}")]).await.wait_ready().await;
    // Someone with write access to Redis, posing as a replica.
    let options = yelb_cache::CacheOptions { key_prefix: prefix, ..Default::default() };
    let cache = yelb_cache::Cache::new(&shared_redis().url(), &options).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let long = "x".repeat(5000);
    let placement = serde_json::json!({
        "version": "6.6.6", "arch": "x86_64", "orchestrator": "docker",
        "color": "red;background:url(//evil.example/x)",
        "message": format!("\u{7}{long}"),
        "node": "n1",
    });
    cache.report_served("evil\nreplica", 1, now, &placement.to_string()).await.unwrap();
    let body = app.get_json("/api/v1/replicas").await;
    let evil = body["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["hostname"] == "evilreplica")
        .unwrap_or_else(|| panic!("the poisoned entry, its hostname cleaned: {body}"));
    assert!(evil["placement"].get("color").is_none(), "a colour that is not one is dropped: {evil}");
    let message = evil["placement"]["message"].as_str().unwrap();
    assert_eq!(message.chars().count(), 80, "bounded");
    assert!(!message.contains('\u{7}'), "control characters dropped");
    // A real colour still shows.
    let good =
        serde_json::json!({"version": "1", "arch": "x86_64", "orchestrator": "docker", "color": "#0a0"});
    cache.report_served("good-replica", 1, now, &good.to_string()).await.unwrap();
    let body = app.get_json("/api/v1/replicas").await;
    let good = body["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["hostname"] == "good-replica")
        .unwrap()
        .clone();
    assert_eq!(good["placement"]["color"], "#0a0");
}
