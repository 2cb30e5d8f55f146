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
//! A failed statement fails every request in its batch; none of those votes
//! were acknowledged, and none are retried (a retry could count twice if only
//! the answer was lost).

use std::sync::Arc;

use deadpool_postgres::Pool;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use yelb_core::{Restaurant, VoteCounts};

use crate::{DbError, Result, VoteOutcome};

/// The most votes one statement carries; more wait for the next commit.
const MAX_VOTE_BATCH: usize = 4096;

/// Adds a batch of votes as one upsert and returns the new count of every
/// restaurant the batch touched.
///
/// The upsert (rather than a plain UPDATE) means a seed row someone deleted
/// comes back instead of swallowing votes.
const VOTE_BATCH: &str = "\
INSERT INTO restaurants AS r (name, count)
SELECT v.name, v.n FROM unnest($1::text[], $2::int4[]) AS v(name, n)
ON CONFLICT (name) DO UPDATE SET count = coalesce(r.count, 0) + excluded.count
RETURNING trim(r.name), r.count";

const READ_ALL: &str = "SELECT trim(name), coalesce(count, 0) FROM restaurants";

type VoteReply = oneshot::Sender<Result<VoteOutcome>>;
type ReadReply = oneshot::Sender<Result<VoteCounts>>;

/// The sending side of the vote queue; see the module docs.
pub struct VoteBatcher {
    tx: mpsc::UnboundedSender<(Restaurant, VoteReply)>,
}

impl VoteBatcher {
    /// Starts the worker, with at most `in_flight` commits at once.
    pub fn spawn(pool: Pool, in_flight: usize) -> VoteBatcher {
        let (tx, rx) = mpsc::unbounded_channel::<(Restaurant, VoteReply)>();
        spawn_worker(rx, in_flight, MAX_VOTE_BATCH, move |batch, slot| {
            let pool = pool.clone();
            async move { commit_votes(&pool, batch, slot).await }
        });
        VoteBatcher { tx }
    }

    /// Queues one vote and waits for its commit.
    pub async fn vote(&self, restaurant: Restaurant) -> Result<VoteOutcome> {
        let (reply, answer) = oneshot::channel();
        self.tx.send((restaurant, reply)).map_err(|_| DbError::WorkerGone)?;
        answer.await.map_err(|_| DbError::WorkerGone)?
    }
}

async fn commit_votes(pool: &Pool, batch: Vec<(Restaurant, VoteReply)>, slot: OwnedSemaphorePermit) {
    let mut added = VoteCounts::default();
    for (r, _) in &batch {
        *added.get_mut(*r) += 1;
    }
    let result = write_batch(pool, &added).await;
    // The next batch may start while this one's voters are being answered.
    drop(slot);
    match result {
        Ok(counts) => {
            // Hand out C-k+1 … C per restaurant, in queue order.
            let mut next = VoteCounts::default();
            for r in Restaurant::ALL {
                *next.get_mut(r) = counts.get(r) - added.get(r) + 1;
            }
            for (r, reply) in batch {
                let count = next.get(r);
                *next.get_mut(r) += 1;
                let _ = reply.send(Ok(VoteOutcome { count, counts }));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, votes = batch.len(), "vote batch failed");
            let msg = e.to_string();
            for (_, reply) in batch {
                let _ = reply.send(Err(DbError::Unavailable(msg.clone())));
            }
        }
    }
}

async fn write_batch(pool: &Pool, added: &VoteCounts) -> Result<VoteCounts> {
    let client = pool.get().await?;
    let stmt = client.prepare_cached(VOTE_BATCH).await?;
    let (names, ns): (Vec<&str>, Vec<i32>) = added
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(r, n)| (r.slug(), i32::try_from(n).unwrap_or(i32::MAX)))
        .unzip();
    let rows = client.query(&stmt, &[&names, &ns]).await?;
    Ok(counts_from_rows(&rows))
}

fn counts_from_rows(rows: &[tokio_postgres::Row]) -> VoteCounts {
    let mut counts = VoteCounts::default();
    for row in rows {
        let name: &str = row.get(0);
        let count: Option<i32> = row.get(1);
        // Rows for names that are not ours (someone's experiment) are ignored.
        if let Ok(r) = name.parse::<Restaurant>() {
            *counts.get_mut(r) = i64::from(count.unwrap_or(0));
        }
    }
    counts
}

/// The sending side of the read queue; see the module docs.
pub struct ReadCoalescer {
    tx: mpsc::UnboundedSender<ReadReply>,
}

impl ReadCoalescer {
    /// Starts the worker, with at most `in_flight` queries at once.
    pub fn spawn(pool: Pool, in_flight: usize) -> ReadCoalescer {
        let (tx, rx) = mpsc::unbounded_channel::<ReadReply>();
        spawn_worker(rx, in_flight, usize::MAX, move |waiters, slot| {
            let pool = pool.clone();
            async move { answer_reads(&pool, waiters, slot).await }
        });
        ReadCoalescer { tx }
    }

    /// Waits for the next query to start and returns its result.
    pub async fn read(&self) -> Result<VoteCounts> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(reply).map_err(|_| DbError::WorkerGone)?;
        answer.await.map_err(|_| DbError::WorkerGone)?
    }
}

async fn answer_reads(pool: &Pool, waiters: Vec<ReadReply>, slot: OwnedSemaphorePermit) {
    let result = read_all(pool).await;
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
fn spawn_worker<T, F, Fut>(mut rx: mpsc::UnboundedReceiver<T>, slots: usize, max: usize, handle: F)
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

async fn read_all(pool: &Pool) -> Result<VoteCounts> {
    let client = pool.get().await?;
    let stmt = client.prepare_cached(READ_ALL).await?;
    let rows = client.query(&stmt, &[]).await?;
    Ok(counts_from_rows(&rows))
}
