//! The Redis tier against a real Redis started by the test harness.

// Tests fail loudly on purpose: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use yelb_cache::{Cache, CacheOptions};
use yelb_core::VoteCounts;
use yelb_core::wire::LiveState;
use yelb_testkit::{RedisServer, shared_redis, unique_name};

fn cache(url: &str, prefix: &str) -> Cache {
    let options = CacheOptions { key_prefix: prefix.to_owned(), timeout: Duration::from_millis(300) };
    Cache::new(url, &options).unwrap()
}

#[tokio::test]
async fn page_views_use_the_original_pageviews_key_with_incr() {
    let redis = RedisServer::start_new();
    let c = cache(&redis.url(), "");
    assert_eq!(c.pageviews().await.unwrap(), 0);
    assert_eq!(c.incr_pageviews().await.unwrap(), 1);
    assert_eq!(c.incr_pageviews().await.unwrap(), 2);
    assert_eq!(redis.get("pageviews").as_deref(), Some("2"), "an integer string, as the original stores it");
    assert_eq!(redis.command("TTL pageviews").as_deref(), Some(":-1"), "no TTL");
}

#[tokio::test]
async fn a_counter_left_by_the_original_app_server_is_continued() {
    let prefix = unique_name("orig") + ":";
    shared_redis().command(&format!("SET {prefix}pageviews 41")).unwrap();
    assert_eq!(cache(&shared_redis().url(), &prefix).incr_pageviews().await.unwrap(), 42);
}

#[tokio::test]
async fn published_states_reach_every_subscriber() {
    let prefix = unique_name("bus") + ":";
    let a = cache(&shared_redis().url(), &prefix);
    let b = cache(&shared_redis().url(), &prefix);
    let mut on_b = Box::pin(b.subscribe().await.unwrap());
    let state = LiveState { votes: VoteCounts { ihop: 3, ..Default::default() }, pageviews: 9, epoch: 0 };
    a.publish(&state).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(2), on_b.next()).await.unwrap();
    assert_eq!(got, Some(state));
}

#[tokio::test]
async fn malformed_messages_on_the_channel_are_skipped() {
    let prefix = unique_name("junk") + ":";
    let c = cache(&shared_redis().url(), &prefix);
    let mut events = Box::pin(c.subscribe().await.unwrap());
    shared_redis().command(&format!("PUBLISH {prefix}yelb:events not-json")).unwrap();
    let state = LiveState { pageviews: 1, ..Default::default() };
    c.publish(&state).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(2), events.next()).await.unwrap();
    assert_eq!(got, Some(state));
}

#[tokio::test]
async fn prefixes_keep_two_yelbs_apart() {
    let one = cache(&shared_redis().url(), &(unique_name("one") + ":"));
    let two = cache(&shared_redis().url(), &(unique_name("two") + ":"));
    one.incr_pageviews().await.unwrap();
    one.incr_pageviews().await.unwrap();
    assert_eq!(two.incr_pageviews().await.unwrap(), 1);
}

#[tokio::test]
async fn while_redis_is_down_calls_fail_fast_and_work_again_when_it_is_back() {
    let mut redis = RedisServer::start_new();
    let c = cache(&redis.url(), "");
    assert_eq!(c.incr_pageviews().await.unwrap(), 1);
    let mut events = Box::pin(c.subscribe().await.unwrap());

    redis.stop();
    let started = Instant::now();
    assert!(c.incr_pageviews().await.is_err());
    assert!(c.ping().await.is_err());
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    let ended = tokio::time::timeout(Duration::from_secs(5), events.next()).await.unwrap();
    assert_eq!(ended, None, "the subscription ends so the caller can subscribe again");

    redis.start();
    let mut back = None;
    for _ in 0..30 {
        if let Ok(n) = c.incr_pageviews().await {
            back = Some(n);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(back, Some(1), "a restarted Redis without persistence starts counting again");
}

#[tokio::test]
async fn served_counts_add_up_per_replica_with_their_last_seen_time() {
    let c = cache(&shared_redis().url(), &(unique_name("served") + ":"));
    c.report_served("a", 5, 1_000, "{}").await.unwrap();
    c.report_served("b", 2, 1_500, r#"{"v":1}"#).await.unwrap();
    c.report_served("a", 3, 2_000, r#"{"v":2}"#).await.unwrap();
    let mut got = c.served().await.unwrap();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("a".to_owned(), 8, 2_000, Some(r#"{"v":2}"#.to_owned())),
            ("b".to_owned(), 2, 1_500, Some(r#"{"v":1}"#.to_owned()))
        ]
    );
}

#[tokio::test]
async fn a_bad_url_is_a_configuration_error() {
    assert!(Cache::new("http://nope", &CacheOptions::default()).is_err());
}

#[tokio::test]
async fn replicas_silent_past_the_cutoff_are_deleted_from_both_hashes() {
    let prefix = unique_name("prune") + ":";
    let c = cache(&shared_redis().url(), &prefix);
    c.report_served("old-pod", 7, 1_000, "{}").await.unwrap();
    c.report_served("new-pod", 3, 9_000, "{}").await.unwrap();
    assert_eq!(c.forget_replicas_before(5_000).await.unwrap(), 1);
    let left: Vec<String> = c.served().await.unwrap().into_iter().map(|(h, ..)| h).collect();
    assert_eq!(left, ["new-pod"]);
    for hash in ["served", "seen", "placement"] {
        let hkeys = shared_redis().command(&format!("HKEYS {prefix}yelb:{hash}")).unwrap();
        assert!(!hkeys.contains("old-pod"), "{hash}: {hkeys}");
    }
    assert_eq!(c.forget_replicas_before(5_000).await.unwrap(), 0, "nothing more to forget");
}
