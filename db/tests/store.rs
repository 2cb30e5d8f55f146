//! The vote store against a real Postgres started by the test harness.

// Tests fail loudly on purpose: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use yelb_core::{Restaurant, VoteCounts};
use yelb_db::{Db, DbError, DbOptions, PgConfig};
use yelb_testkit::{PgServer, shared_pg, unique_name};

fn config(pg: &PgServer, dbname: &str) -> PgConfig {
    pg.url(dbname).parse().expect("valid url")
}

async fn fresh_db() -> (Db, String) {
    let name = unique_name("yelb_db");
    let db = Db::new(config(shared_pg(), &name), &DbOptions::default()).unwrap();
    db.ensure_schema().await.unwrap();
    (db, name)
}

#[tokio::test]
async fn ensure_schema_creates_the_database_table_and_four_seed_rows() {
    let (db, name) = fresh_db().await;
    assert_eq!(db.votes().await.unwrap(), VoteCounts::default());
    let rows = shared_pg().psql(&name, "SELECT name || '|' || count FROM restaurants ORDER BY name");
    assert_eq!(
        rows, "bucadibeppo|0\nchipotle|0\nihop|0\noutback|0",
        "char(30) values concatenate without their padding"
    );
    let columns = shared_pg().psql(
        &name,
        "SELECT column_name || ':' || data_type || ':' || coalesce(character_maximum_length, 0) \
         FROM information_schema.columns WHERE table_name = 'restaurants' ORDER BY ordinal_position",
    );
    // The original layout, with the counter 64-bit (the original reads it as text).
    assert_eq!(columns, "name:character:30\ncount:bigint:0", "the original layout, count widened");
}

#[tokio::test]
async fn ensure_schema_is_idempotent_and_keeps_existing_votes() {
    let (db, _) = fresh_db().await;
    db.vote(Restaurant::Ihop).await.unwrap();
    db.ensure_schema().await.unwrap();
    db.ensure_schema().await.unwrap();
    assert_eq!(db.votes().await.unwrap().ihop, 1);
}

#[tokio::test]
async fn many_replicas_creating_the_schema_at_once_all_succeed() {
    let name = unique_name("yelb_race");
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let db = Db::new(config(shared_pg(), &name), &DbOptions::default()).unwrap();
        tasks.push(tokio::spawn(async move { db.ensure_schema().await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(shared_pg().psql(&name, "SELECT count(*) FROM restaurants"), "4");
}

#[tokio::test]
async fn a_database_prepared_like_the_original_image_is_used_as_is() {
    let name = unique_name("yelb_orig");
    let pg = shared_pg();
    pg.psql("postgres", &format!("CREATE DATABASE {name}"));
    pg.psql(
        &name,
        "CREATE TABLE restaurants (name char(30), count integer, PRIMARY KEY (name)); \
         INSERT INTO restaurants (name, count) VALUES ('outback', 7), ('bucadibeppo', 0), ('chipotle', 0), ('ihop', 3);",
    );
    let db = Db::new(config(pg, &name), &DbOptions::default()).unwrap();
    db.ensure_schema().await.unwrap();
    assert_eq!(db.votes().await.unwrap(), VoteCounts { outback: 7, ihop: 3, ..Default::default() });
    assert_eq!(db.vote(Restaurant::Outback).await.unwrap().count, 8);
}

#[tokio::test]
async fn a_counter_at_the_32_bit_limit_keeps_counting_and_spares_the_other_votes() {
    // The original image's table, with IHOP one vote from 2^31 - 1.
    let name = unique_name("yelb_big");
    let pg = shared_pg();
    pg.psql("postgres", &format!("CREATE DATABASE {name}"));
    pg.psql(
        &name,
        "CREATE TABLE restaurants (name char(30), count integer, PRIMARY KEY (name)); \
         INSERT INTO restaurants (name, count) VALUES ('outback', 0), ('bucadibeppo', 0), ('chipotle', 0), ('ihop', 2147483646);",
    );
    let db = Db::new(config(pg, &name), &DbOptions::default()).unwrap();
    db.ensure_schema().await.unwrap();
    // A batch of votes for IHOP past the limit, and others beside them.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let db = db.clone();
        let r = if i % 2 == 0 { Restaurant::Ihop } else { Restaurant::Chipotle };
        tasks.push(tokio::spawn(async move { db.vote(r).await }));
    }
    for t in tasks {
        t.await.unwrap().expect("no vote fails at the 32-bit limit");
    }
    let counts = db.votes().await.unwrap();
    assert_eq!(counts.ihop, 2_147_483_646 + 20);
    assert_eq!(counts.chipotle, 20);
    assert_eq!(pg.psql(&name, "SELECT count FROM restaurants WHERE name = 'ihop'"), "2147483666");
}

#[tokio::test]
async fn calls_before_the_schema_is_ensured_fail_with_not_ready() {
    let db = Db::new(config(shared_pg(), &unique_name("yelb_nr")), &DbOptions::default()).unwrap();
    assert!(matches!(db.vote(Restaurant::Ihop).await, Err(DbError::NotReady)));
    assert!(matches!(db.votes().await, Err(DbError::NotReady)));
}

#[tokio::test]
async fn each_vote_returns_its_own_count_and_is_read_back() {
    let (db, _) = fresh_db().await;
    assert_eq!(db.vote(Restaurant::Chipotle).await.unwrap().count, 1);
    let second = db.vote(Restaurant::Chipotle).await.unwrap();
    assert_eq!(second.count, 2);
    assert_eq!(second.counts.chipotle, 2);
    assert_eq!(db.vote(Restaurant::Outback).await.unwrap().count, 1);
    assert_eq!(db.votes().await.unwrap(), VoteCounts { chipotle: 2, outback: 1, ..Default::default() });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_concurrent_votes_are_all_counted_with_distinct_counts() {
    let (db, name) = fresh_db().await;
    let per = 1500;
    let mut tasks = Vec::new();
    for i in 0..per * 2 {
        let db = db.clone();
        let r = if i % 2 == 0 { Restaurant::Ihop } else { Restaurant::Outback };
        tasks.push(tokio::spawn(async move { (r, db.vote(r).await.unwrap().count) }));
    }
    let mut seen = HashSet::new();
    for t in tasks {
        let (r, count) = t.await.unwrap();
        assert!(seen.insert((r, count)), "count {count} for {r} handed out twice");
        assert!((1..=per as i64).contains(&count));
    }
    assert_eq!(seen.len(), per * 2);
    assert_eq!(shared_pg().psql(&name, "SELECT sum(count) FROM restaurants"), (per * 2).to_string());
}

#[tokio::test]
async fn a_deleted_seed_row_comes_back_on_the_next_vote() {
    let (db, name) = fresh_db().await;
    shared_pg().psql(&name, "DELETE FROM restaurants WHERE name = 'ihop'");
    assert_eq!(db.vote(Restaurant::Ihop).await.unwrap().count, 1);
    assert_eq!(shared_pg().psql(&name, "SELECT count FROM restaurants WHERE name = 'ihop'"), "1");
}

#[tokio::test]
async fn a_read_never_misses_a_vote_acknowledged_before_it() {
    let (db, _) = fresh_db().await;
    for expected in 1..=50 {
        db.vote(Restaurant::Bucadibeppo).await.unwrap();
        assert_eq!(db.votes().await.unwrap().bucadibeppo, expected);
    }
}

#[tokio::test]
async fn when_postgres_goes_down_calls_fail_fast_and_recover_when_it_returns() {
    let mut pg = PgServer::start_new();
    let options = DbOptions { acquire_timeout: Duration::from_millis(500), ..Default::default() };
    let db = Db::new(config(&pg, "yelbdatabase"), &options).unwrap();
    db.ensure_schema().await.unwrap();
    assert_eq!(db.vote(Restaurant::Ihop).await.unwrap().count, 1);

    pg.stop();
    let started = Instant::now();
    assert!(db.vote(Restaurant::Ihop).await.is_err());
    assert!(db.votes().await.is_err());
    assert!(db.ping().await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "failures must be quick, took {:?}",
        started.elapsed()
    );

    pg.start();
    // Connections broken by the restart are replaced; allow a bounded few tries.
    let mut recovered = None;
    for _ in 0..20 {
        if let Ok(outcome) = db.vote(Restaurant::Ihop).await {
            recovered = Some(outcome.count);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(recovered, Some(2), "the vote before the outage survived; nothing counted twice");
}

#[tokio::test]
async fn an_unreachable_server_gives_unavailable_not_a_hang() {
    let port = yelb_testkit::free_port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/yelbdatabase");
    let options = DbOptions { acquire_timeout: Duration::from_millis(300), ..Default::default() };
    let db = Db::new(url.parse().unwrap(), &options).unwrap();
    let err = db.ensure_schema().await.unwrap_err();
    assert!(matches!(err, DbError::Unavailable(_)), "{err:?}");
}

#[test]
fn a_pool_of_one_is_rejected_as_a_configuration_error() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _guard = rt.enter();
    let options = DbOptions { pool_size: 1, ..Default::default() };
    let result = Db::new("postgres://x@127.0.0.1/y".parse().unwrap(), &options);
    assert!(matches!(result, Err(DbError::Config(_))));
}

#[tokio::test]
async fn a_read_that_arrives_after_a_vote_was_sent_sees_it_even_before_the_vote_is_answered() {
    // The original Angular UI fires the vote and the re-read at once, without
    // waiting for the vote's answer. Every read queued after a vote must
    // include it.
    let (db, _) = fresh_db().await;
    let db = std::sync::Arc::new(db);
    let mut missed = 0;
    for i in 1..=30 {
        let voter = db.clone();
        let vote = tokio::spawn(async move { voter.vote(Restaurant::Ihop).await.unwrap() });
        // Let the vote reach the queue (the test runtime has one thread).
        tokio::task::yield_now().await;
        let seen = db.votes().await.unwrap().ihop;
        if seen < i {
            missed += 1;
        }
        assert_eq!(vote.await.unwrap().count, i);
    }
    assert_eq!(missed, 0, "reads missed the vote sent just before them");
}

#[tokio::test]
async fn a_frozen_postgres_fails_votes_after_the_statement_timeout_and_they_recover_after() {
    let pg = PgServer::start_new();
    let name = unique_name("yelb_frozen");
    let options = DbOptions { statement_timeout: Duration::from_millis(800), ..DbOptions::default() };
    let db = Db::new(config(&pg, &name), &options).unwrap();
    db.ensure_schema().await.unwrap();
    assert_eq!(db.vote(Restaurant::Chipotle).await.unwrap().count, 1);

    pg.freeze();
    let started = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(10), db.vote(Restaurant::Chipotle)).await;
    let elapsed = started.elapsed();
    pg.thaw();
    let result = outcome.expect("a vote must not hang on a frozen Postgres");
    assert!(
        matches!(result, Err(DbError::Timeout(_) | DbError::Unavailable(_))),
        "{result:?} after {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(4), "failed after {elapsed:?}");

    // The stalled connection was dropped, not reused: votes work again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(outcome) = db.vote(Restaurant::Chipotle).await {
            assert!(outcome.count >= 2);
            break;
        }
        assert!(Instant::now() < deadline, "votes must recover once Postgres answers");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_vote_with_a_key_counts_once_however_often_it_is_sent() {
    let (db, name) = fresh_db().await;
    let key: yelb_core::api::IdempotencyKey = "click-1".parse().unwrap();
    let first = db.vote_once(&key, Restaurant::Outback).await.unwrap();
    assert_eq!((first.count, first.replayed), (1, false));
    for _ in 0..3 {
        let again = db.vote_once(&key, Restaurant::Outback).await.unwrap();
        assert_eq!((again.count, again.replayed), (1, true), "a retry answers the first count");
    }
    assert_eq!(db.vote(Restaurant::Outback).await.unwrap().count, 2, "unkeyed votes still count");
    let other: yelb_core::api::IdempotencyKey = "click-2".parse().unwrap();
    assert_eq!(db.vote_once(&other, Restaurant::Outback).await.unwrap().count, 3);
    assert!(matches!(
        db.vote_once(&key, Restaurant::Ihop).await,
        Err(DbError::KeyReused { first }) if first == "outback"
    ));
    assert_eq!(db.votes().await.unwrap().outback, 3);
    assert_eq!(shared_pg().psql(&name, "SELECT count(*) FROM yelb_vote_keys"), "2");
}

#[tokio::test]
async fn concurrent_sends_of_one_key_count_once() {
    let (db, _) = fresh_db().await;
    let db = std::sync::Arc::new(db);
    let key: yelb_core::api::IdempotencyKey = "same-click".parse().unwrap();
    let sends: Vec<_> = (0..8)
        .map(|_| {
            let (db, key) = (db.clone(), key.clone());
            tokio::spawn(async move { db.vote_once(&key, Restaurant::Chipotle).await.unwrap() })
        })
        .collect();
    let mut counted = 0;
    for send in sends {
        let outcome = send.await.unwrap();
        assert_eq!(outcome.count, 1);
        counted += usize::from(!outcome.replayed);
    }
    assert_eq!(counted, 1, "exactly one send counted");
    assert_eq!(db.votes().await.unwrap().chipotle, 1);
}

#[tokio::test]
async fn creating_the_schema_on_a_stalled_connection_gives_up_and_the_next_attempt_succeeds() {
    let pg = PgServer::start_new();
    let options = DbOptions { statement_timeout: Duration::from_millis(800), ..DbOptions::default() };
    // The maintenance database exists, so the pool holds a live connection.
    let db = Db::new(config(&pg, "postgres"), &options).unwrap();
    db.ping().await.unwrap();

    pg.freeze();
    let attempt = tokio::time::timeout(Duration::from_secs(10), db.ensure_schema()).await;
    pg.thaw();
    let result = attempt.expect("a schema attempt must not wait for ever on a stalled connection");
    assert!(result.is_err(), "{result:?}");
    assert!(db.schema_error().is_some(), "/readyz can say why");

    db.ensure_schema().await.unwrap();
    assert!(db.schema_ready());
    assert_eq!(db.vote(Restaurant::Ihop).await.unwrap().count, 1);
}

fn key(text: &str) -> yelb_core::api::IdempotencyKey {
    text.parse().unwrap()
}

#[tokio::test]
async fn keyed_votes_share_group_commits_with_unkeyed_ones_and_each_gets_its_own_count() {
    let (db, name) = fresh_db().await;
    let db = std::sync::Arc::new(db);
    let before = db.vote_batches();
    // 300 keyed votes, each key sent twice at once, and 300 unkeyed ones.
    let mut tasks = Vec::new();
    for i in 0..300 {
        for _ in 0..2 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                let k = key(&format!("click-{i}"));
                let v = db.vote_once(&k, Restaurant::Ihop).await.unwrap();
                (Some(i), v.count, v.replayed)
            }));
        }
        let db = db.clone();
        tasks
            .push(tokio::spawn(async move { (None, db.vote(Restaurant::Ihop).await.unwrap().count, false) }));
    }
    let mut counts = Vec::new();
    let mut by_key: std::collections::HashMap<i32, Vec<(i64, bool)>> = Default::default();
    for t in tasks {
        let (k, count, replayed) = t.await.unwrap();
        match k {
            Some(k) => by_key.entry(k).or_default().push((count, replayed)),
            None => counts.push(count),
        }
    }
    for (k, answers) in &by_key {
        assert_eq!(answers.iter().filter(|(_, replayed)| !replayed).count(), 1, "key {k}: {answers:?}");
        assert_eq!(answers[0].0, answers[1].0, "a repeat answers the first count: {answers:?}");
        counts.push(answers[0].0);
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=600).collect::<Vec<_>>(), "600 votes counted, each with its own count");
    assert_eq!(db.votes().await.unwrap().ihop, 600);
    assert_eq!(shared_pg().psql(&name, "SELECT count(*) FROM yelb_vote_keys WHERE count IS NOT NULL"), "300");
    let (queued, batches) = db.vote_batches();
    let (queued, batches) = (queued - before.0, batches - before.1);
    assert_eq!(queued, 900, "every vote, keyed or not, went through the batcher");
    assert!((1..=90).contains(&batches), "900 votes took {batches} commits: keyed votes must be batched");
}

#[tokio::test]
async fn a_key_sent_for_two_restaurants_in_one_batch_is_refused_once_and_the_batch_still_counts() {
    let (db, _) = fresh_db().await;
    let db = std::sync::Arc::new(db);
    let mut tasks = Vec::new();
    for r in [Restaurant::Outback, Restaurant::Chipotle] {
        let db = db.clone();
        tasks.push(tokio::spawn(async move { db.vote_once(&key("shared"), r).await.map(|v| v.count) }));
    }
    for _ in 0..50 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move { db.vote(Restaurant::Ihop).await.map(|v| v.count) }));
    }
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => {}
            Err(DbError::KeyReused { .. }) => refused += 1,
            Err(e) => panic!("no other failure: {e}"),
        }
    }
    assert_eq!(refused, 1, "the second restaurant for one key is a conflict");
    let counts = db.votes().await.unwrap();
    assert_eq!((counts.ihop, counts.outback + counts.chipotle), (50, 1));
}

#[tokio::test]
async fn two_replicas_sending_the_same_keys_at_once_count_each_key_once_without_deadlock() {
    let name = unique_name("yelb_two");
    let replicas: Vec<_> = (0..2)
        .map(|_| std::sync::Arc::new(Db::new(config(shared_pg(), &name), &DbOptions::default()).unwrap()))
        .collect();
    for db in &replicas {
        db.ensure_schema().await.unwrap();
    }
    let mut tasks = Vec::new();
    for (n, db) in replicas.iter().enumerate() {
        for i in 0..400 {
            // Opposite orders on the two replicas: the lock order must not depend on it.
            let i = if n == 0 { i } else { 399 - i };
            let db = db.clone();
            let r = Restaurant::ALL[i % 4];
            tasks.push(tokio::spawn(async move { db.vote_once(&key(&format!("k{i}")), r).await }));
        }
    }
    let mut fresh = 0;
    for t in tasks {
        fresh += usize::from(!t.await.unwrap().unwrap().replayed);
    }
    assert_eq!(fresh, 400, "each key counted on exactly one replica");
    assert_eq!(replicas[0].votes().await.unwrap().total(), 400);
}

#[tokio::test]
async fn keyed_voters_retrying_through_a_postgres_crash_count_every_key_exactly_once() {
    let mut pg = PgServer::start_new();
    let options = DbOptions { acquire_timeout: Duration::from_millis(300), ..Default::default() };
    let db = std::sync::Arc::new(Db::new(config(&pg, "yelbdatabase"), &options).unwrap());
    db.ensure_schema().await.unwrap();
    let acknowledged = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut voters = Vec::new();
    for v in 0..40 {
        let (db, acknowledged) = (db.clone(), acknowledged.clone());
        voters.push(tokio::spawn(async move {
            for n in 0..60 {
                let k = key(&format!("voter{v}-{n}"));
                // Retry with the same key until an answer comes, as the UI does.
                loop {
                    assert!(Instant::now() < deadline, "votes must recover after the restart");
                    if db.vote_once(&k, Restaurant::ALL[n % 4]).await.is_ok() {
                        acknowledged.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    // Crash Postgres (immediate shutdown) while batches are in flight.
    while acknowledged.load(std::sync::atomic::Ordering::Relaxed) < 600 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    pg.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    pg.start();
    for v in voters {
        v.await.unwrap();
    }
    assert_eq!(acknowledged.load(std::sync::atomic::Ordering::Relaxed), 2400);
    assert_eq!(db.votes().await.unwrap().total(), 2400, "every key counted once: none lost, none twice");
    assert_eq!(pg.psql("yelbdatabase", "SELECT count(*) FROM yelb_vote_keys"), "2400");
}

#[tokio::test]
async fn keys_are_forgotten_after_a_quarter_of_an_hour_not_a_day() {
    let (db, name) = fresh_db().await;
    assert_eq!(yelb_db::KEY_RETENTION_MINUTES, 15);
    let k = key("old-click");
    db.vote_once(&k, Restaurant::Ihop).await.unwrap();
    db.vote_once(&key("new-click"), Restaurant::Ihop).await.unwrap();
    // One key sixteen minutes old, one fresh.
    shared_pg().psql(
        &name,
        "UPDATE yelb_vote_keys SET created_at = now() - interval '16 minutes' WHERE key = 'old-click'",
    );
    assert_eq!(db.prune_vote_keys(yelb_db::KEY_RETENTION_MINUTES).await.unwrap(), 1);
    assert_eq!(shared_pg().psql(&name, "SELECT key FROM yelb_vote_keys"), "new-click");
    assert_eq!(db.prune_vote_keys(yelb_db::KEY_RETENTION_MINUTES).await.unwrap(), 0);
}
