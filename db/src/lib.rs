//! Yelb's vote store on Postgres. All of Yelb's SQL lives in this crate.
//!
//! - [`Db`]: a cheap-to-clone handle over a connection pool and two
//!   background tasks, one that group-commits votes and one that coalesces
//!   reads (see [`batch`]).
//! - [`keyed`]: votes with an idempotency key, counted exactly once
//!   however often they are retried (`yelb_vote_keys`, an added table),
//!   in the same group commit as the others.
//! - [`schema`]: creates the `yelbdatabase` database and the original
//!   `restaurants` table with its four seed rows when they are missing.
//! - [`DbError`]: the one error type; every variant means "the database could
//!   not answer now" to a caller, and says why in its message.
//!
//! The table is the original's, unchanged (`name char(30) PRIMARY KEY,
//! count integer`, widened to `bigint` in place), so the original app server and database image work with it.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use yelb_core::{Restaurant, VoteCounts};

pub mod batch;
pub mod keyed;
pub mod schema;

pub use keyed::{KEY_RETENTION_MINUTES, KeyedVote};

pub use tokio_postgres::Config as PgConfig;

/// [`Db::reset`]: the original table keeps its rows, at zero.
const RESET: &str = "UPDATE restaurants SET count = 0; DELETE FROM yelb_vote_keys";

/// Why the database could not answer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had from the pool (server down, unreachable,
    /// refusing logins, or the pool exhausted past its wait timeout).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A statement failed on a live connection.
    #[error("database query failed: {}", chain(.0))]
    Query(#[from] tokio_postgres::Error),
    /// The schema is not there yet: [`Db::ensure_schema`] has not succeeded.
    #[error("database schema not ready")]
    NotReady,
    /// A statement did not finish in time (Postgres stalled or the
    /// connection is half-open); the connection was dropped.
    #[error("database did not answer within {0:?}")]
    Timeout(Duration),
    /// An idempotency key already counted a vote for another restaurant.
    #[error("this Idempotency-Key was already used for a vote for {first}")]
    KeyReused {
        /// The restaurant the key first voted for.
        first: String,
    },
    /// Too many requests are already queued for the database.
    #[error("too many requests are waiting for the database")]
    Busy,
    /// The background task serving this request has stopped (only during shutdown).
    #[error("database worker stopped")]
    WorkerGone,
    /// The configuration cannot work (bad database name, bad pool size).
    #[error("invalid database configuration: {0}")]
    Config(String),
}

impl From<deadpool_postgres::PoolError> for DbError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        DbError::Unavailable(chain(&e))
    }
}

/// An error with its causes: tokio-postgres says only "db error" at the
/// top; what Postgres said (`role "x" does not exist`) is in the source.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut inner = error.source();
    while let Some(e) = inner {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        inner = e.source();
    }
    text
}

/// Result of a database call.
pub type Result<T, E = DbError> = std::result::Result<T, E>;

/// How the store uses its connections.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// Connections in the pool (the most Postgres backends we hold).
    pub pool_size: usize,
    /// How long a request waits for a connection, and a new connection may
    /// take, before the request fails with [`DbError::Unavailable`]. Short, so
    /// that while Postgres is down callers get a quick 503, not a hang.
    pub acquire_timeout: Duration,
    /// The longest one vote commit or shared read may take, client-side
    /// (a half-open connection never answers; Postgres's own
    /// `statement_timeout` cannot help there).
    pub statement_timeout: Duration,
    /// Vote commits in flight at once (see [`batch`]).
    pub write_slots: usize,
    /// Shared reads in flight at once (see [`batch`]).
    pub read_slots: usize,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            pool_size: 8,
            acquire_timeout: Duration::from_secs(2),
            statement_timeout: Duration::from_secs(5),
            write_slots: 1,
            read_slots: 1,
        }
    }
}

/// The vote store. Cloning is cheap (an `Arc`): every clone shares the pool
/// and the background workers.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    pg_config: PgConfig,
    votes: batch::VoteBatcher,
    reads: batch::ReadCoalescer,
    schema_ready: std::sync::atomic::AtomicBool,
    statement_timeout: Duration,
    /// Why the last attempt to create the schema failed, until one succeeds.
    schema_error: std::sync::Mutex<Option<String>>,
}

/// What a committed vote returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoteOutcome {
    /// The restaurant's count right after this vote.
    pub count: i64,
    /// The counts the commit that carried this vote returned: exact for every
    /// restaurant voted for in that commit, 0 for the others. Counts only grow,
    /// so callers combine these with [`VoteCounts::merge_max`].
    pub counts: VoteCounts,
}

impl Db {
    /// Builds the store. Connects to nothing yet: connections are made on
    /// first use, so this works while Postgres is still starting. Must be
    /// called inside a Tokio runtime (it spawns the two workers).
    pub fn new(pg_config: PgConfig, options: &DbOptions) -> Result<Db> {
        if options.pool_size < 2 {
            return Err(DbError::Config("the pool needs at least 2 connections".into()));
        }
        let mut pg_config = pg_config;
        if pg_config.get_connect_timeout().is_none() {
            pg_config.connect_timeout(options.acquire_timeout);
        }
        if pg_config.get_application_name().is_none() {
            pg_config.application_name("yelb-appserver");
        }
        // A peer that vanished without closing (a crashed node, a cut
        // network) is noticed by the kernel within a minute, not hours.
        pg_config.keepalives(true).keepalives_idle(Duration::from_secs(15));
        let manager = Manager::from_config(
            pg_config.clone(),
            NoTls,
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .wait_timeout(Some(options.acquire_timeout))
            .create_timeout(Some(options.acquire_timeout))
            .recycle_timeout(Some(options.acquire_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| DbError::Config(e.to_string()))?;
        // Few commits in flight on purpose: while one commit waits for its
        // WAL flush the next batch grows, so Postgres does a few large
        // commits instead of many small ones (its CPU per commit, not per
        // vote, is the limit; BENCHMARKS.md has the figures for 4, 2 and 1
        // slots). Reads likewise. The rest of the pool stays
        // free for health checks and schema work.
        let writers = options.write_slots.clamp(1, options.pool_size - 1);
        let readers = options.read_slots.clamp(1, options.pool_size - 1);
        let timeout = options.statement_timeout;
        let votes = batch::VoteBatcher::spawn(pool.clone(), writers, timeout);
        let reads = batch::ReadCoalescer::spawn(pool.clone(), readers, timeout, votes.order().clone());
        Ok(Db {
            inner: Arc::new(Inner {
                votes,
                reads,
                pool,
                pg_config,
                schema_ready: std::sync::atomic::AtomicBool::new(false),
                statement_timeout: timeout,
                schema_error: std::sync::Mutex::new(None),
            }),
        })
    }

    /// Creates the database, table and seed rows if missing. Idempotent and
    /// safe to run from many replicas at once. Until it has succeeded once,
    /// votes and reads fail with [`DbError::NotReady`].
    pub async fn ensure_schema(&self) -> Result<()> {
        let result =
            schema::ensure(&self.inner.pg_config, &self.inner.pool, self.inner.statement_timeout).await;
        let mut why = self.inner.schema_error.lock().unwrap_or_else(|e| e.into_inner());
        match &result {
            Ok(()) => {
                *why = None;
                self.inner.schema_ready.store(true, std::sync::atomic::Ordering::Release);
            }
            Err(e) => *why = Some(e.to_string()),
        }
        result
    }

    /// Why the schema is not in place yet, if an attempt failed (a wrong
    /// password, a missing permission, Postgres not there): `/readyz` shows
    /// it, so "not ready" comes with a reason.
    pub fn schema_error(&self) -> Option<String> {
        self.inner.schema_error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether [`Db::ensure_schema`] has succeeded.
    pub fn schema_ready(&self) -> bool {
        self.inner.schema_ready.load(std::sync::atomic::Ordering::Acquire)
    }

    fn check_ready(&self) -> Result<()> {
        if self.schema_ready() { Ok(()) } else { Err(DbError::NotReady) }
    }

    /// Casts one vote. Returns only after the transaction that carries it has
    /// committed; the count is this vote's own (earlier votes included, later
    /// ones not), even when the vote shared its commit with others.
    pub async fn vote(&self, restaurant: Restaurant) -> Result<VoteOutcome> {
        self.check_ready()?;
        let tally = self.inner.votes.vote(restaurant, None).await?;
        Ok(VoteOutcome { count: tally.count, counts: tally.counts })
    }

    /// Casts one vote carrying `key`, unless that key was counted before;
    /// either way answers the count of the vote the key first cast. It
    /// shares its commit with every other vote queued meanwhile ([`keyed`]).
    pub async fn vote_once(
        &self,
        key: &yelb_core::api::IdempotencyKey,
        restaurant: Restaurant,
    ) -> Result<KeyedVote> {
        self.check_ready()?;
        let tally = self.inner.votes.vote(restaurant, Some(key.clone())).await?;
        Ok(KeyedVote { count: tally.count, replayed: tally.replayed, counts: tally.counts })
    }

    /// Forgets idempotency keys older than `minutes`
    /// ([`keyed::KEY_RETENTION_MINUTES`] is what the app server keeps); returns how many.
    pub async fn prune_vote_keys(&self, minutes: u32) -> Result<u64> {
        self.check_ready()?;
        keyed::prune(&self.inner.pool, minutes).await
    }

    /// Sets every count to zero and forgets every idempotency key, in one
    /// transaction (a multi-statement simple query is one): the stage's
    /// "reset". Votes committed after it count from zero.
    pub async fn reset(&self) -> Result<()> {
        self.check_ready()?;
        let client = self.inner.pool.get().await?;
        let timeout = self.inner.statement_timeout;
        match tokio::time::timeout(timeout, client.batch_execute(RESET)).await {
            Ok(result) => Ok(result?),
            Err(_) => {
                // Possibly half-open: never hand this connection out again.
                drop(deadpool_postgres::Object::take(client));
                Err(DbError::Timeout(timeout))
            }
        }
    }

    /// Every restaurant's count, read by a query that started after this call.
    pub async fn votes(&self) -> Result<VoteCounts> {
        self.check_ready()?;
        self.inner.reads.read().await
    }

    /// Votes queued so far and the batches (commits) that carried them.
    pub fn vote_batches(&self) -> (u64, u64) {
        let order = self.inner.votes.order();
        (order.queued(), order.batches())
    }

    /// Checks that a connection can be had and answers.
    pub async fn ping(&self) -> Result<()> {
        let client = self.inner.pool.get().await?;
        client.simple_query("SELECT 1").await?;
        Ok(())
    }
}
