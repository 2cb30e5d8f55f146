//! A bounded chaos run: three app-server processes on one Postgres and one
//! Redis, voters hammering them, and in turn a replica killed with SIGKILL
//! and restarted, Postgres crashed and restarted, Redis restarted. Every
//! vote carries an `Idempotency-Key`, and a voter whose vote got no answer
//! or a 503 sends it again, with the same key, until it is acknowledged (as
//! the UI does). Then the counts must be exact: the database holds exactly
//! the votes acknowledged, not one retry counted twice, and every replica and
//! a live stream that stayed open throughout agree with it. The figures are
//! printed (`--nocapture`) for BENCHMARKS.md.

// Tests fail loudly on purpose: an unwrap is an assertion here.
#![allow(clippy::unwrap_used)]
// The run prints its figures (seen with --nocapture) for BENCHMARKS.md.
#![allow(clippy::print_stdout)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use yelb_core::Restaurant;
use yelb_core::wire::LiveState;
use yelb_testkit::{PgServer, RedisServer, free_port, unique_name};

const BIN: &str = env!("CARGO_BIN_EXE_yelb-appserver");
const VOTERS: usize = 8;

struct Replica {
    port: u16,
    host: String,
    child: Option<Child>,
}

impl Replica {
    fn start(port: u16, host: &str, db: &str, redis: &str) -> Replica {
        let child = Command::new(BIN)
            .env_clear()
            .env("YELB_LISTEN_ADDR", "127.0.0.1")
            .env("YELB_PORT", port.to_string())
            .env("YELB_HOSTNAME", host)
            .env("YELB_DATABASE_URL", db)
            .env("YELB_REDIS_URL", redis)
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Replica { port, host: host.to_owned(), child: Some(child) }
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill9();
    }
}

#[derive(Default)]
struct Tally {
    acked: [AtomicU64; 4],
    /// Votes still unanswered when their voter gave up (bounded retries).
    doubtful: [AtomicU64; 4],
    /// Sends that got no 200: no answer, a refused connection, a 503.
    retries: AtomicU64,
    unavailable: AtomicU64,
    /// Retries answered `Idempotency-Replayed: true`: the first send had
    /// counted, only its answer was lost.
    replayed: AtomicU64,
}

fn index(r: Restaurant) -> usize {
    Restaurant::ALL.iter().position(|x| *x == r).unwrap()
}

async fn voter(id: usize, ports: Arc<Vec<u16>>, tally: Arc<Tally>, stop: Arc<AtomicBool>, keyed: bool) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().unwrap();
    let mut n = id;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let r = Restaurant::ALL[n % 4];
        let key = format!("voter{id}-vote{n}");
        // With a key: the same vote, with the same key, until it is
        // acknowledged (after the run stops, at most 15 s more). Without:
        // retried only when it never reached a server.
        let mut give_up: Option<Instant> = None;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = ports[(n + attempt) % ports.len()];
            let url = format!("http://127.0.0.1:{port}/api/v1/votes/{}", r.slug());
            let request = client.post(url);
            let request = if keyed { request.header("Idempotency-Key", &key) } else { request };
            match request.send().await {
                Ok(resp) if resp.status() == 200 => {
                    if resp.headers().contains_key("idempotency-replayed") {
                        tally.replayed.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = resp.bytes().await;
                    tally.acked[index(r)].fetch_add(1, Ordering::Relaxed);
                    break;
                }
                outcome => {
                    if matches!(&outcome, Ok(resp) if resp.status() == 503) {
                        tally.unavailable.fetch_add(1, Ordering::Relaxed);
                    }
                    // Never reached a server: it cannot have counted.
                    let unsent = matches!(&outcome, Err(e) if e.is_connect());
                    if !keyed && !unsent {
                        // Without a key a retry could count twice: the vote
                        // stays in doubt, as with the original API.
                        tally.doubtful[index(r)].fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    tally.retries.fetch_add(1, Ordering::Relaxed);
                }
            }
            if stop.load(Ordering::Relaxed) {
                let deadline = *give_up.get_or_insert_with(|| Instant::now() + Duration::from_secs(15));
                if Instant::now() > deadline {
                    tally.doubtful[index(r)].fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn wait_ready(client: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = client.get(url).send().await
            && r.status() == 200
            && r.json::<serde_json::Value>().await.map(|v| v["status"] == "ready").unwrap_or(false)
        {
            return;
        }
        assert!(Instant::now() < deadline, "{url} never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn db_counts(pg: &PgServer, db: &str) -> [u64; 4] {
    let mut out = [0; 4];
    for line in pg.psql(db, "SELECT trim(name) || '|' || count FROM restaurants").lines() {
        let (name, n) = line.split_once('|').unwrap();
        if let Ok(r) = name.parse::<Restaurant>() {
            out[index(r)] = n.parse().unwrap();
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_votes_with_keys_are_exact_through_a_replica_kill_a_postgres_crash_and_a_redis_restart() {
    chaos(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn votes_without_keys_are_never_lost_nor_invented_through_the_same_chaos() {
    chaos(false).await;
}

/// The run; `keyed`: votes carry keys and are retried until acknowledged.
async fn chaos(keyed: bool) {
    let mut pg = PgServer::start_new();
    let mut redis = RedisServer::start_new();
    let dbname = unique_name("yelb_chaos");
    let (db_url, redis_url) = (pg.url(&dbname), redis.url());
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut replicas: Vec<Replica> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| Replica::start(*p, &format!("chaos-{i}"), &db_url, &redis_url))
        .collect();
    let client = reqwest::Client::new();
    for r in &replicas {
        wait_ready(&client, &r.url("/readyz")).await;
    }
    // A phone watching replica 2 (never killed) for the whole run.
    let stream = client.get(replicas[2].url("/api/v1/events")).send().await.unwrap();
    let latest = Arc::new(std::sync::Mutex::new(LiveState::default()));
    let watcher = {
        let latest = latest.clone();
        tokio::spawn(async move {
            let mut body = stream.bytes_stream();
            let mut buf = String::new();
            while let Some(Ok(chunk)) = body.next().await {
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buf.find("\n\n") {
                    let frame: String = buf.drain(..end + 2).collect();
                    if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data:"))
                        && let Ok(state) = serde_json::from_str::<LiveState>(data.trim())
                    {
                        *latest.lock().unwrap() = state;
                    }
                }
            }
        })
    };

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let voters: Vec<_> = (0..VOTERS)
        .map(|i| tokio::spawn(voter(i, Arc::new(ports.clone()), tally.clone(), stop.clone(), keyed)))
        .collect();
    let pause = |s: u64| tokio::time::sleep(Duration::from_secs(s));

    pause(2).await;
    replicas[0].kill9();
    pause(2).await;
    replicas[0] = Replica::start(ports[0], "chaos-0", &db_url, &redis_url);
    pause(2).await;
    pg.stop(); // immediate shutdown: every connection cut mid-flight
    pause(2).await;
    pg.start();
    pause(3).await;
    redis.stop();
    pause(2).await;
    redis.start();
    pause(3).await;
    stop.store(true, Ordering::Relaxed);
    for v in voters {
        v.await.unwrap();
    }
    let elapsed = started.elapsed();
    for r in &replicas {
        wait_ready(&client, &r.url("/readyz")).await;
    }

    let db = db_counts(&pg, &dbname);
    let load = |a: &[AtomicU64; 4]| -> [u64; 4] { std::array::from_fn(|i| a[i].load(Ordering::Relaxed)) };
    let (acked, doubtful) = (load(&tally.acked), load(&tally.doubtful));
    println!(
        "chaos ({}): {:.1} s, {} voters; acknowledged {} ({:.0}/s) after {} failed sends (503: {}); \
         {} retries answered as repeats of a vote already counted; unresolved {}; database {}",
        if keyed { "keyed, retried" } else { "no keys, no retries" },
        elapsed.as_secs_f64(),
        VOTERS,
        acked.iter().sum::<u64>(),
        acked.iter().sum::<u64>() as f64 / elapsed.as_secs_f64(),
        tally.retries.load(Ordering::Relaxed),
        tally.unavailable.load(Ordering::Relaxed),
        tally.replayed.load(Ordering::Relaxed),
        doubtful.iter().sum::<u64>(),
        db.iter().sum::<u64>(),
    );
    if keyed {
        assert_eq!(doubtful, [0; 4], "every vote was acknowledged in the end");
        for (i, r) in Restaurant::ALL.iter().enumerate() {
            assert_eq!(
                db[i],
                acked[i],
                "{}: exactly the acknowledged votes, no retry counted twice",
                r.slug()
            );
        }
    } else {
        // Every acknowledged vote is in; nothing is in that was neither
        // acknowledged nor left in doubt (a commit whose answer was lost).
        for (i, r) in Restaurant::ALL.iter().enumerate() {
            assert!(
                db[i] >= acked[i],
                "{}: an acknowledged vote was lost: {} < {}",
                r.slug(),
                db[i],
                acked[i]
            );
            assert!(db[i] <= acked[i] + doubtful[i], "{}: votes nobody cast", r.slug());
        }
    }
    assert!(acked.iter().sum::<u64>() > 100, "the load ran: {acked:?}");

    // Every replica reads what the database holds.
    for r in &replicas {
        let body: serde_json::Value =
            client.get(r.url("/api/v1/votes")).send().await.unwrap().json().await.unwrap();
        for (i, rest) in Restaurant::ALL.iter().enumerate() {
            assert_eq!(body["votes"][rest.slug()], db[i], "{} on {}", rest.slug(), r.host);
        }
    }
    // And the phone that watched replica 2 throughout shows it too.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let live = *latest.lock().unwrap();
        let shown: [u64; 4] = std::array::from_fn(|i| live.votes.get(Restaurant::ALL[i]) as u64);
        if shown == db {
            break;
        }
        assert!(Instant::now() < deadline, "the live stream shows {shown:?}, the database {db:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watcher.abort();
}
