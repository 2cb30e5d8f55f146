//! Where votes and page views live, behind one interface per kind of data.
//!
//! - [`VoteStore`]: Postgres ([`yelb_db::Db`]) or memory.
//! - [`ViewStore`]: Redis ([`yelb_cache::Cache`]) or memory.
//!
//! The memory variants are the embedded mode, a product feature: the same
//! binary serves the same API with nothing else installed. They keep the
//! same promises as the real ones (a vote returns its own count; a read sees
//! every vote acknowledged before it) and pass the same test suite.
//!
//! Both return [`StoreError`], which knows nothing of HTTP; the variants of
//! each store are private, and callers ask [`VoteStore::postgres`] or
//! [`ViewStore::redis`] when they need the backend itself.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use yelb_cache::Cache;
use yelb_core::api::IdempotencyKey;
use yelb_core::{Restaurant, VoteCounts};
use yelb_db::Db;

/// Why a store could not answer. `AppError` turns it into a 503.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Postgres could not answer.
    #[error(transparent)]
    Db(#[from] yelb_db::DbError),
    /// Redis could not answer.
    #[error(transparent)]
    Cache(#[from] yelb_cache::CacheError),
}

/// How long a readiness check waits for a backend.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

pub use yelb_core::wire::BackendHealth;

/// The vote store.
pub struct VoteStore(Votes);

enum Votes {
    Memory(Mutex<Counted>),
    Postgres(Db),
}

/// The embedded store: the counts, and the idempotency keys already counted
/// (the most recent [`MEMORY_KEYS`], oldest forgotten first).
#[derive(Default)]
struct Counted {
    counts: VoteCounts,
    keys: std::collections::HashMap<IdempotencyKey, (Restaurant, i64)>,
    order: std::collections::VecDeque<IdempotencyKey>,
}

/// Keys the embedded store remembers.
const MEMORY_KEYS: usize = 100_000;

/// What a vote did: the count after it, and whether its idempotency key
/// had been counted before (then nothing was added now).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cast {
    /// The restaurant's count right after the vote.
    pub count: i64,
    /// Counts to merge into the live state (exact for this restaurant).
    pub counts: VoteCounts,
    /// True for a repeat of a key already counted.
    pub replayed: bool,
}

impl VoteStore {
    /// An empty in-memory store.
    pub fn memory() -> VoteStore {
        VoteStore(Votes::Memory(Mutex::new(Counted::default())))
    }

    /// A store on Postgres.
    pub fn postgres(db: Db) -> VoteStore {
        VoteStore(Votes::Postgres(db))
    }

    /// The Postgres store, if this is one.
    pub fn as_postgres(&self) -> Option<&Db> {
        match &self.0 {
            Votes::Postgres(db) => Some(db),
            Votes::Memory(_) => None,
        }
    }

    /// `memory` or `postgres`, for logs and metrics.
    pub fn backend_name(&self) -> &'static str {
        if self.as_postgres().is_some() { "postgres" } else { "memory" }
    }

    /// Why the store is not ready, when it knows (Postgres: the schema
    /// could not be created, and the error said why).
    pub fn problem(&self) -> Option<String> {
        self.as_postgres().and_then(Db::schema_error)
    }

    /// Casts one vote; returns the restaurant's count after it, and counts to
    /// merge into the live state (exact for the restaurants in the same
    /// commit, possibly 0 for the others: merging takes the per-field max).
    pub async fn vote(&self, restaurant: Restaurant) -> Result<(i64, VoteCounts), StoreError> {
        match &self.0 {
            Votes::Memory(counted) => {
                let mut counted = counted.lock().unwrap_or_else(|e| e.into_inner());
                *counted.counts.get_mut(restaurant) += 1;
                Ok((counted.counts.get(restaurant), counted.counts))
            }
            Votes::Postgres(db) => {
                let outcome = db.vote(restaurant).await?;
                Ok((outcome.count, outcome.counts))
            }
        }
    }

    /// Casts one vote carrying `key`, unless that key was counted before.
    pub async fn vote_once(&self, key: &IdempotencyKey, restaurant: Restaurant) -> Result<Cast, StoreError> {
        match &self.0 {
            Votes::Memory(counted) => {
                let mut counted = counted.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((first, count)) = counted.keys.get(key).copied() {
                    if first != restaurant {
                        return Err(yelb_db::DbError::KeyReused { first: first.slug().to_owned() }.into());
                    }
                    return Ok(Cast { count, counts: VoteCounts::default(), replayed: true });
                }
                *counted.counts.get_mut(restaurant) += 1;
                let count = counted.counts.get(restaurant);
                if counted.order.len() >= MEMORY_KEYS
                    && let Some(oldest) = counted.order.pop_front()
                {
                    counted.keys.remove(&oldest);
                }
                counted.keys.insert(key.clone(), (restaurant, count));
                counted.order.push_back(key.clone());
                Ok(Cast { count, counts: counted.counts, replayed: false })
            }
            Votes::Postgres(db) => {
                let outcome = db.vote_once(key, restaurant).await?;
                Ok(Cast { count: outcome.count, counts: outcome.counts, replayed: outcome.replayed })
            }
        }
    }

    /// Sets every count to zero and forgets every idempotency key.
    pub async fn reset(&self) -> Result<(), StoreError> {
        match &self.0 {
            Votes::Memory(counted) => {
                *counted.lock().unwrap_or_else(|e| e.into_inner()) = Counted::default();
                Ok(())
            }
            Votes::Postgres(db) => Ok(db.reset().await?),
        }
    }

    /// Every count, as fresh as the moment of the call.
    pub async fn counts(&self) -> Result<VoteCounts, StoreError> {
        match &self.0 {
            Votes::Memory(counted) => Ok(counted.lock().unwrap_or_else(|e| e.into_inner()).counts),
            Votes::Postgres(db) => Ok(db.votes().await?),
        }
    }

    /// Whether votes can be served right now.
    pub async fn health(&self) -> BackendHealth {
        match &self.0 {
            Votes::Memory(_) => BackendHealth::Memory,
            Votes::Postgres(db) => {
                let ok = db.schema_ready()
                    && matches!(tokio::time::timeout(CHECK_TIMEOUT, db.ping()).await, Ok(Ok(())));
                if ok { BackendHealth::Up } else { BackendHealth::Down }
            }
        }
    }
}

/// The page-view counter.
pub struct ViewStore(Views);

enum Views {
    Memory(AtomicI64),
    Redis(Cache),
}

impl ViewStore {
    /// A counter at zero in memory.
    pub fn memory() -> ViewStore {
        ViewStore(Views::Memory(AtomicI64::new(0)))
    }

    /// A counter in Redis.
    pub fn redis(cache: Cache) -> ViewStore {
        ViewStore(Views::Redis(cache))
    }

    /// The Redis store, if this is one.
    pub fn as_redis(&self) -> Option<&Cache> {
        match &self.0 {
            Views::Redis(cache) => Some(cache),
            Views::Memory(_) => None,
        }
    }

    /// `memory` or `redis`, for logs and metrics.
    pub fn backend_name(&self) -> &'static str {
        if self.as_redis().is_some() { "redis" } else { "memory" }
    }

    /// Counts one view; returns the new total.
    pub async fn incr(&self) -> Result<i64, StoreError> {
        match &self.0 {
            Views::Memory(n) => Ok(n.fetch_add(1, Ordering::Relaxed) + 1),
            Views::Redis(cache) => Ok(cache.incr_pageviews().await?),
        }
    }

    /// Sets the counter to zero.
    pub async fn reset(&self) -> Result<(), StoreError> {
        match &self.0 {
            Views::Memory(n) => {
                n.store(0, Ordering::Relaxed);
                Ok(())
            }
            Views::Redis(cache) => Ok(cache.reset_pageviews().await?),
        }
    }

    /// The total, without counting a view.
    pub async fn get(&self) -> Result<i64, StoreError> {
        match &self.0 {
            Views::Memory(n) => Ok(n.load(Ordering::Relaxed)),
            Views::Redis(cache) => Ok(cache.pageviews().await?),
        }
    }

    /// Whether page views can be served right now.
    pub async fn health(&self) -> BackendHealth {
        match &self.0 {
            Views::Memory(_) => BackendHealth::Memory,
            Views::Redis(cache) => match tokio::time::timeout(CHECK_TIMEOUT, cache.ping()).await {
                Ok(Ok(())) => BackendHealth::Up,
                _ => BackendHealth::Down,
            },
        }
    }
}
