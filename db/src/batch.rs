//! Group commit for votes and coalesced reads: how one Postgres serves tens of
//! thousands of requests a second without breaking freshness or durability.
//!
//! - [`VoteBatcher`]: votes queue on a channel. A worker takes everything
//!   queued, once a connection slot is free, and writes it as **one**
//!   statement (one commit). Each voter is answered only after that commit,
//!   with its own count: if a commit added `k` votes to a restaurant whose
//!   count became `C`, its voters get `C-k+1 … C`. While a commit is in flight
//!   the next batch grows, so the batch size follows the load by itself.
//! - [`ReadCoalescer`]: readers queue the same way and share one `SELECT`,
//!   which always *starts after* every reader it answers arrived, so nobody
//!   gets a count older than their request (a vote acknowledged before a read
//!   is always in it).
//!
//! - [`VoteOrder`]: a read also waits for every vote that *arrived* before
//!   it to be committed (or to fail), so a client that fires a vote and then
//!   a read without waiting for the vote's answer (the original Angular UI
//!   does) still sees its vote. A read that arrives first cannot.
//!
//! Votes with an idempotency key ride the same batches: a batch that holds
//! one is written as one transaction that also claims and records the keys
//! (`keyed`), so the UI's votes, which all carry a key, get the group commit
//! too.
//!
//! A failed statement fails every request in its batch; none of those votes
//! were acknowledged, and none are retried (a retry could count twice if only
//! the answer was lost; a client with a key retries safely itself).
//!
//! Bounds: every statement runs under a client-side timeout (a half-open
//! connection to Postgres fails its batch instead of stalling every vote
//! behind it), and each queue holds at most [`MAX_QUEUED`] requests; one
//! more fails at once with [`DbError::Busy`].

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use yelb_core::api::IdempotencyKey;
use yelb_core::{Restaurant, VoteCounts};

use crate::keyed::{self, Ballot};
use crate::{DbError, Result};

/// The most votes one statement carries; more wait for the next commit.
const MAX_VOTE_BATCH: usize = 4096;

/// The most requests one queue holds; past it a request fails at once
/// rather than waiting behind a backlog it cannot get through in time.
pub const MAX_QUEUED: usize = 65_536;

/// Adds a batch of votes as one upsert and returns the new count of every
/// restaurant the batch touched.
///
/// The upsert (rather than a plain UPDATE) means a seed row someone deleted
/// comes back instead of swallowing votes.
const VOTE_BATCH: &str = "\
INSERT INTO restaurants AS r (name, count)
SELECT v.name, v.n FROM unnest($1::text[], $2::int4[]) AS v(name, n)
ON CONFLICT (name) DO UPDATE SET count = coalesce(r.count, 0) + excluded.count
RETURNING trim(r.name), r.count::bigint";

const READ_ALL: &str = "SELECT trim(name), coalesce(count, 0)::bigint FROM restaurants";

/// What the batcher answers one vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tally {
    /// The restaurant's count right after this vote (for a repeated key:
    /// after the vote the key first cast).
    pub(crate) count: i64,
    /// The counts the commit returned (exact for the restaurants it touched,
    /// 0 for the others); all 0 for a repeat.
    pub(crate) counts: VoteCounts,
    /// The key had been counted before: nothing was added now.
    pub(crate) replayed: bool,
}

/// A vote waiting in the queue.
struct Queued {
    restaurant: Restaurant,
    key: Option<IdempotencyKey>,
    reply: oneshot::Sender<Result<Tally>>,
}

type ReadReply = oneshot::Sender<Result<VoteCounts>>;

/// The sending side of the vote queue; see the module docs.
pub struct VoteBatcher {
    tx: mpsc::Sender<Queued>,
    order: Arc<VoteOrder>,
}

impl VoteBatcher {
    /// Starts the worker, with at most `in_flight` commits at once, each
    /// statement bounded by `timeout`.
    pub fn spawn(pool: Pool, in_flight: usize, timeout: Duration) -> VoteBatcher {
        let (tx, rx) = mpsc::channel::<Queued>(MAX_QUEUED);
        let order = Arc::new(VoteOrder::default());
        let worker_order = order.clone();
        spawn_worker(rx, in_flight, MAX_VOTE_BATCH, move |batch, slot| {
            let (pool, order) = (pool.clone(), worker_order.clone());
            async move { commit_votes(&pool, batch, slot, timeout, &order).await }
        });
        VoteBatcher { tx, order }
    }

    /// Queues one vote, with its idempotency key if it has one, and waits
    /// for its commit.
    pub(crate) async fn vote(&self, restaurant: Restaurant, key: Option<IdempotencyKey>) -> Result<Tally> {
        let (reply, answer) = oneshot::channel();
        // Taking the number and queueing happen under one lock, so numbers
        // enter the queue in order and every batch is a contiguous range.
        self.order.enqueue(|| self.tx.try_send(Queued { restaurant, key, reply }))?;
        answer.await.map_err(|_| DbError::WorkerGone)?
    }

    /// The ordering of votes, for reads to wait on.
    pub fn order(&self) -> &Arc<VoteOrder> {
        &self.order
    }
}

/// Votes are numbered as they are queued; a read waits until every vote
/// numbered before its arrival is settled (committed or failed).
#[derive(Debug, Default)]
pub struct VoteOrder {
    /// Held while a vote is numbered and queued, so numbers enter the queue in order.
    queueing: std::sync::Mutex<()>,
    queued: std::sync::atomic::AtomicU64,
    settled: tokio::sync::watch::Sender<u64>,
    /// Batches written so far (each one commit), whatever their outcome.
    batches: std::sync::atomic::AtomicU64,
}

impl VoteOrder {
    fn enqueue<E>(
        &self,
        send: impl FnOnce() -> std::result::Result<(), mpsc::error::TrySendError<E>>,
    ) -> Result<()> {
        let _queueing = self.queueing.lock().unwrap_or_else(|e| e.into_inner());
        match send() {
            Ok(()) => {
                self.queued.fetch_add(1, std::sync::atomic::Ordering::Release);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => Err(DbError::Busy),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(DbError::WorkerGone),
        }
    }

    /// Votes queued so far.
    pub fn queued(&self) -> u64 {
        self.queued.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Marks `n` more votes settled. With one commit in flight (the
    /// default) batches settle in queue order; with more, a later batch may
    /// settle first, and then readers wait for the earlier one too, which is
    /// what they need.
    fn settle(&self, n: u64) {
        self.batches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.settled.send_modify(|s| *s += n);
    }

    /// Batches written so far: with [`VoteOrder::queued`], the mean batch size.
    pub fn batches(&self) -> u64 {
        self.batches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits (at most `within`) until every vote queued before `mark` is settled.
    pub async fn wait_settled(&self, mark: u64, within: Duration) {
        // The common case, no vote in flight, costs one atomic load.
        if *self.settled.borrow() >= mark {
            return;
        }
        let mut rx = self.settled.subscribe();
        let _ = tokio::time::timeout(within, rx.wait_for(|s| *s >= mark)).await;
    }
}

async fn commit_votes(
    pool: &Pool,
    batch: Vec<Queued>,
    slot: OwnedSemaphorePermit,
    timeout: Duration,
    order: &VoteOrder,
) {
    let ballots: Vec<Ballot<'_>> =
        batch.iter().map(|q| Ballot { restaurant: q.restaurant, key: q.key.as_ref() }).collect();
    let result = if ballots.iter().any(|b| b.key.is_some()) {
        keyed::commit(pool, &ballots, timeout).await
    } else {
        commit_plain(pool, &ballots, timeout).await
    };
    drop(ballots);
    // The next batch may start while this one's voters are being answered.
    drop(slot);
    order.settle(batch.len() as u64);
    match result {
        Ok(answers) => {
            for (queued, answer) in batch.into_iter().zip(answers) {
                let _ = queued.reply.send(answer);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, votes = batch.len(), "vote batch failed");
            let msg = e.to_string();
            for queued in batch {
                let _ = queued.reply.send(Err(DbError::Unavailable(msg.clone())));
            }
        }
    }
}

/// A batch without keys: one upsert, no transaction around it.
async fn commit_plain(pool: &Pool, ballots: &[Ballot<'_>], timeout: Duration) -> Result<Vec<Result<Tally>>> {
    let mut added = VoteCounts::default();
    for b in ballots {
        *added.get_mut(b.restaurant) += 1;
    }
    let (names, ns) = upsert_params(&added);
    let rows = query_bounded(pool, VOTE_BATCH, &[&names, &ns], timeout).await?;
    let counts = counts_from_rows(&rows);
    Ok(own_counts(ballots.iter().map(|b| Some(b.restaurant)), &added, counts)
        .into_iter()
        .map(|count| Ok(Tally { count, counts, replayed: false }))
        .collect())
}

/// Hands out C-k+1 … C per restaurant, in queue order: a restaurant whose
/// count became `C` after `k` votes were added. `None` (a repeat, counted
/// before) gets 0.
pub(crate) fn own_counts(
    ballots: impl Iterator<Item = Option<Restaurant>>,
    added: &VoteCounts,
    counts: VoteCounts,
) -> Vec<i64> {
    let mut next = VoteCounts::default();
    for r in Restaurant::ALL {
        *next.get_mut(r) = counts.get(r) - added.get(r) + 1;
    }
    ballots
        .map(|r| {
            r.map_or(0, |r| {
                let count = next.get(r);
                *next.get_mut(r) += 1;
                count
            })
        })
        .collect()
}

pub(crate) fn upsert_params(added: &VoteCounts) -> (Vec<&'static str>, Vec<i32>) {
    added
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(r, n)| (r.slug(), i32::try_from(n).unwrap_or(i32::MAX)))
        .unzip()
}

pub(crate) fn counts_from_rows(rows: &[tokio_postgres::Row]) -> VoteCounts {
    let mut counts = VoteCounts::default();
    for row in rows {
        let name: &str = row.get(0);
        let count: Option<i64> = row.get(1);
        // Rows for names that are not ours (someone's experiment) are ignored.
        if let Ok(r) = name.parse::<Restaurant>() {
            *counts.get_mut(r) = count.unwrap_or(0);
        }
    }
    counts
}

/// The sending side of the read queue; see the module docs.
pub struct ReadCoalescer {
    tx: mpsc::Sender<ReadReply>,
    votes: Arc<VoteOrder>,
    timeout: Duration,
}

impl ReadCoalescer {
    /// Starts the worker, with at most `in_flight` queries at once, each
    /// bounded by `timeout`; reads wait for the votes of `votes` queued
    /// before them.
    pub fn spawn(pool: Pool, in_flight: usize, timeout: Duration, votes: Arc<VoteOrder>) -> ReadCoalescer {
        let (tx, rx) = mpsc::channel::<ReadReply>(MAX_QUEUED);
        spawn_worker(rx, in_flight, usize::MAX, move |waiters, slot| {
            let pool = pool.clone();
            async move { answer_reads(&pool, waiters, slot, timeout).await }
        });
        ReadCoalescer { tx, votes, timeout }
    }

    /// Waits for the votes queued before this call to settle, then for the
    /// next query to start, and returns its result.
    pub async fn read(&self) -> Result<VoteCounts> {
        let mark = self.votes.queued();
        self.votes.wait_settled(mark, self.timeout).await;
        let (reply, answer) = oneshot::channel();
        self.tx.try_send(reply).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => DbError::Busy,
            mpsc::error::TrySendError::Closed(_) => DbError::WorkerGone,
        })?;
        answer.await.map_err(|_| DbError::WorkerGone)?
    }
}

/// Runs `sql` with `params` on a pooled connection, failing with
/// [`DbError::Timeout`] after `timeout`. A connection that timed out is
/// taken out of the pool and closed, never handed to the next batch: it may
/// be half-open (Postgres gone without a FIN), and would stall that too.
async fn query_bounded(
    pool: &Pool,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    timeout: Duration,
) -> Result<Vec<tokio_postgres::Row>> {
    let client = pool.get().await?;
    let work = async {
        let stmt = client.prepare_cached(sql).await?;
        Ok::<_, DbError>(client.query(&stmt, params).await?)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result,
        Err(_) => {
            drop(deadpool_postgres::Object::take(client));
            Err(DbError::Timeout(timeout))
        }
    }
}

async fn answer_reads(pool: &Pool, waiters: Vec<ReadReply>, slot: OwnedSemaphorePermit, timeout: Duration) {
    let result = read_all(pool, timeout).await;
    // The next read may start while this one's waiters are being answered.
    drop(slot);
    match result {
        Ok(counts) => {
            for w in waiters {
                let _ = w.send(Ok(counts));
            }
        }
        Err(e) => {
            let msg = e.to_string();
            for w in waiters {
                let _ = w.send(Err(DbError::Unavailable(msg.clone())));
            }
        }
    }
}

/// The loop both queues share: wait for one item, then for a free slot, then
/// take everything queued meanwhile (up to `max`) as one batch for `handle`.
/// Waiting for the slot *before* draining is what grows batches under load.
/// `handle` gets the slot and frees it as soon as its database work is done,
/// before it answers the batch, so the next batch overlaps the answering.
fn spawn_worker<T, F, Fut>(mut rx: mpsc::Receiver<T>, slots: usize, max: usize, handle: F)
where
    T: Send + 'static,
    F: Fn(Vec<T>, OwnedSemaphorePermit) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(slots));
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let Ok(slot) = slots.clone().acquire_owned().await else { break };
            let mut batch = vec![first];
            while batch.len() < max {
                match rx.try_recv() {
                    Ok(item) => batch.push(item),
                    Err(_) => break,
                }
            }
            tokio::spawn(handle(batch, slot));
        }
    });
}

async fn read_all(pool: &Pool, timeout: Duration) -> Result<VoteCounts> {
    let rows = query_bounded(pool, READ_ALL, &[], timeout).await?;
    Ok(counts_from_rows(&rows))
}
