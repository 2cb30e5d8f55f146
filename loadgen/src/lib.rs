//! The audience simulator: virtual voters against a Yelb UI (or an app
//! server), for the stage and for autoscaling demos.
//!
//! - [`Options`]: how many voters, how fast, for how long.
//! - [`Engine`]: runs the voters. Each one votes for a random restaurant
//!   through `POST /api/v1/votes/{r}` with an `Idempotency-Key`, and retries
//!   a vote that got a 503 or no answer with the same key (so a retry is
//!   never counted twice), then waits its think time. The number of voters
//!   can change while it runs ([`Engine::set_users`]).
//! - [`Stats`]: what happened so far, read at any time: votes counted per
//!   restaurant, answers per replica (`X-Served-By`), failures by status,
//!   latency percentiles, overall and over the last second.
//!
//! - [`screens`]: live screens (`--screens N`), each an open event stream
//!   through the UI, and the vote → screen latency they saw.
//!
//! The binary (`src/main.rs`) draws [`Stats`] once a second and prints a
//! summary (text or JSON) at the end.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use yelb_core::Restaurant;
use yelb_core::api;

pub mod screens;

/// How a run goes.
#[derive(Debug, Clone)]
pub struct Options {
    /// The UI's (or an app server's) base URL, e.g. `http://localhost:8080`.
    pub url: String,
    /// Virtual voters at once.
    pub users: usize,
    /// Votes per second, all voters together (0: as fast as they can).
    pub rate: f64,
    /// How long to run.
    pub duration: Duration,
    /// How often a failed vote is tried again (same key).
    pub retries: u32,
    /// How long one request may take.
    pub timeout: Duration,
}

/// What a run did; serializable as the `--json` summary.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Summary {
    /// Seconds it ran.
    pub seconds: f64,
    /// Votes acknowledged (200), per restaurant slug.
    pub counted: BTreeMap<String, u64>,
    /// Acknowledged votes in all.
    pub total: u64,
    /// Of those, answers that were a replay of a retried key.
    pub replayed: u64,
    /// Answers per replica, from `X-Served-By`.
    pub replicas: BTreeMap<String, u64>,
    /// Failed attempts by status (`503`, `network`, ...), retries included.
    pub errors: BTreeMap<String, u64>,
    /// Votes given up after every retry failed.
    pub given_up: u64,
    /// Latency of answered requests: median, ms.
    pub p50_ms: f64,
    /// Latency of answered requests: 99th percentile, ms.
    pub p99_ms: f64,
    /// What the live screens saw, when the run held some (`--screens`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub screens: Option<screens::ScreenSummary>,
}

/// Live counters, shared by the voters and whoever draws them.
#[derive(Default)]
pub struct Stats {
    counted: [AtomicU64; 4],
    replayed: AtomicU64,
    given_up: AtomicU64,
    replicas: Mutex<BTreeMap<String, u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
    /// Every answered request's latency, in microseconds.
    latencies: Mutex<Vec<u32>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The `q` quantile of sorted microsecond latencies, in ms.
/// The pause between one voter's votes so that `users` voters together make
/// `rate` votes a second; `jitter` in 0..1 spreads it over 0.5 to 1.5 times
/// the mean. At most an hour: a rate like 1e-300 means "hardly ever", not a
/// duration too large to represent.
pub(crate) fn think_time(users: usize, rate: f64, jitter: f64) -> Duration {
    let secs = users as f64 / rate * (0.5 + jitter);
    Duration::try_from_secs_f64(secs.min(3600.0)).unwrap_or(Duration::from_secs(3600))
}

pub(crate) fn quantile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

impl Stats {
    fn answered(&self, took: Duration, replica: Option<&str>) {
        lock(&self.latencies).push(took.as_micros().min(u128::from(u32::MAX)) as u32);
        if let Some(r) = replica {
            *lock(&self.replicas).entry(r.to_owned()).or_default() += 1;
        }
    }

    fn failed(&self, why: String) {
        *lock(&self.errors).entry(why).or_default() += 1;
    }

    /// Acknowledged votes so far.
    pub fn total(&self) -> u64 {
        self.counted.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Latency percentiles (p50, p99) of requests answered since `since`
    /// answers ago (`0`: all), in ms.
    pub fn percentiles_since(&self, from: usize) -> (f64, f64) {
        let mut window: Vec<u32> = lock(&self.latencies).get(from..).unwrap_or_default().to_vec();
        window.sort_unstable();
        (quantile(&window, 0.5), quantile(&window, 0.99))
    }

    /// How many requests have been answered (a mark for [`Stats::percentiles_since`]).
    pub fn answered_count(&self) -> usize {
        lock(&self.latencies).len()
    }

    /// Everything so far, as a summary of a run of `elapsed`.
    pub fn summary(&self, elapsed: Duration) -> Summary {
        let counted: BTreeMap<String, u64> = Restaurant::ALL
            .iter()
            .zip(&self.counted)
            .map(|(r, c)| (r.slug().to_owned(), c.load(Ordering::Relaxed)))
            .collect();
        let (p50_ms, p99_ms) = self.percentiles_since(0);
        Summary {
            seconds: elapsed.as_secs_f64(),
            total: counted.values().sum(),
            counted,
            replayed: self.replayed.load(Ordering::Relaxed),
            replicas: lock(&self.replicas).clone(),
            errors: lock(&self.errors).clone(),
            given_up: self.given_up.load(Ordering::Relaxed),
            p50_ms,
            p99_ms,
            screens: None,
        }
    }
}

/// Runs the voters.
pub struct Engine {
    options: Options,
    client: reqwest::Client,
    stats: Arc<Stats>,
    users: Arc<AtomicUsize>,
    started: Instant,
    acks: Option<Arc<screens::Acks>>,
}

impl Engine {
    /// An engine for `options`; nothing runs until [`Engine::run`].
    pub fn new(options: Options) -> anyhow::Result<Engine> {
        // One connection per voter, kept alive: a phone keeps its connection.
        let client = reqwest::Client::builder().timeout(options.timeout).build()?;
        let users = Arc::new(AtomicUsize::new(options.users));
        Ok(Engine {
            options,
            client,
            stats: Arc::new(Stats::default()),
            users,
            started: Instant::now(),
            acks: None,
        })
    }

    /// Makes the voters note when each vote was acknowledged, with its
    /// count, for the screens to time against.
    pub fn with_acks(mut self, acks: Arc<screens::Acks>) -> Engine {
        self.acks = Some(acks);
        self
    }

    /// The live counters.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// How many voters vote now.
    pub fn users(&self) -> usize {
        self.users.load(Ordering::Relaxed)
    }

    /// Changes how many voters vote (up to the number started with, or
    /// more: voters are started up to the largest number ever asked for).
    pub fn set_users(&self, n: usize) {
        self.users.store(n, Ordering::Relaxed);
    }

    /// A handle that resizes the run from elsewhere while [`Engine::run`]
    /// holds the engine.
    pub fn users_handle(&self) -> Arc<AtomicUsize> {
        self.users.clone()
    }

    /// Time since the run started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Runs for the configured duration; returns the summary.
    pub async fn run(&mut self) -> Summary {
        self.started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.options.duration;
        let mut tasks = tokio::task::JoinSet::new();
        let mut spawned = 0usize;
        loop {
            // Start voters up to the number asked for; extra ones idle.
            while spawned < self.users() {
                let voter = Voter {
                    index: spawned,
                    url: self.options.url.trim_end_matches('/').to_owned(),
                    client: self.client.clone(),
                    stats: self.stats.clone(),
                    users: self.users.clone(),
                    rate: self.options.rate,
                    retries: self.options.retries,
                    acks: self.acks.clone(),
                };
                tasks.spawn(voter.run(deadline));
                spawned += 1;
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100).min(deadline - tokio::time::Instant::now())).await;
        }
        while tasks.join_next().await.is_some() {}
        self.stats.summary(self.started.elapsed())
    }
}

/// One virtual voter.
struct Voter {
    index: usize,
    url: String,
    client: reqwest::Client,
    stats: Arc<Stats>,
    users: Arc<AtomicUsize>,
    rate: f64,
    retries: u32,
    acks: Option<Arc<screens::Acks>>,
}

impl Voter {
    async fn run(self, deadline: tokio::time::Instant) {
        while tokio::time::Instant::now() < deadline {
            let users = self.users.load(Ordering::Relaxed);
            if self.index >= users {
                // Resized below this voter: idle until asked for again.
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            self.vote(deadline).await;
            if self.rate > 0.0 {
                // Think time so that all voters together make `rate` votes a
                // second, jittered so they do not march in step.
                let wait = think_time(users, self.rate, fastrand::f64());
                tokio::time::sleep_until((tokio::time::Instant::now() + wait).min(deadline)).await;
            }
        }
    }

    /// One vote, retried with the same key on a 503 or a lost answer.
    async fn vote(&self, deadline: tokio::time::Instant) {
        let restaurant = Restaurant::ALL[fastrand::usize(..Restaurant::ALL.len())];
        let key = format!("loadgen-{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        let url = format!("{}{}", self.url, api::vote(restaurant));
        for attempt in 0..=self.retries {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 << attempt.min(5))).await;
                if tokio::time::Instant::now() >= deadline {
                    break;
                }
            }
            let start = Instant::now();
            let answer = self.client.post(&url).header(api::IDEMPOTENCY_KEY, &key).send().await;
            match answer {
                Ok(r) => {
                    let replica =
                        r.headers().get(api::SERVED_BY).and_then(|v| v.to_str().ok()).map(str::to_owned);
                    self.stats.answered(start.elapsed(), replica.as_deref());
                    let status = r.status().as_u16();
                    if status == 200 {
                        let acked = Instant::now();
                        let replayed = r.headers().contains_key(api::IDEMPOTENCY_REPLAYED);
                        if replayed {
                            self.stats.replayed.fetch_add(1, Ordering::Relaxed);
                        }
                        if let Some(acks) = &self.acks
                            && !replayed
                            && let Ok(receipt) = r.json::<yelb_core::wire::VoteReceipt>().await
                        {
                            acks.record(restaurant, receipt.count, acked);
                        }
                        let slot = Restaurant::ALL.iter().position(|r| *r == restaurant).unwrap_or(0);
                        self.stats.counted[slot].fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    self.stats.failed(status.to_string());
                    // Only "try again" answers are worth trying again.
                    if !matches!(status, 502..=504) {
                        break;
                    }
                }
                Err(e) => self.stats.failed(if e.is_timeout() { "timeout".into() } else { "network".into() }),
            }
        }
        self.stats.given_up.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vanishing_rate_gives_a_long_wait_not_a_panic() {
        assert_eq!(think_time(10, 1e-300, 0.5), Duration::from_secs(3600));
        assert_eq!(think_time(10, f64::MIN_POSITIVE, 0.99), Duration::from_secs(3600));
        let t = think_time(10, 100.0, 0.5);
        assert!((t.as_secs_f64() - 0.1).abs() < 1e-9, "{t:?}");
    }
}
