//! Where votes and page views live, behind one interface per kind of data.
//!
//! - [`VoteStore`]: Postgres ([`yelb_db::Db`]) or memory.
//! - [`ViewStore`]: Redis ([`yelb_cache::Cache`]) or memory.
//!
//! The memory variants are the embedded mode, a product feature: the same
//! binary serves the same API with nothing else installed. They keep the
//! same promises as the real ones (a vote returns its own count; a read sees
//! every vote acknowledged before it) and pass the same test suite.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use yelb_cache::Cache;
use yelb_core::{Restaurant, VoteCounts};
use yelb_db::Db;

use crate::error::AppError;

/// How long a readiness check waits for a backend.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// The state of one backend, as `/readyz` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendHealth {
    /// Reachable and answering.
    Up,
    /// Not reachable, or (Postgres) the schema is not in place yet.
    Down,
    /// In memory: always up.
    Memory,
}

impl BackendHealth {
    /// Whether requests can be served.
    pub fn is_up(self) -> bool {
        self != BackendHealth::Down
    }
}

/// The vote store.
pub enum VoteStore {
    /// Embedded mode.
    Memory(Mutex<VoteCounts>),
    /// Postgres.
    Postgres(Db),
}

impl VoteStore {
    /// An empty in-memory store.
    pub fn memory() -> VoteStore {
        VoteStore::Memory(Mutex::new(VoteCounts::default()))
    }

    /// Casts one vote; returns the restaurant's count after it, and counts to
    /// merge into the live state (exact for the restaurants in the same
    /// commit, possibly 0 for the others: merging takes the per-field max).
    pub async fn vote(&self, restaurant: Restaurant) -> Result<(i64, VoteCounts), AppError> {
        match self {
            VoteStore::Memory(counts) => {
                let mut counts = counts.lock().unwrap_or_else(|e| e.into_inner());
                *counts.get_mut(restaurant) += 1;
                Ok((counts.get(restaurant), *counts))
            }
            VoteStore::Postgres(db) => {
                let outcome = db.vote(restaurant).await?;
                Ok((outcome.count, outcome.counts))
            }
        }
    }

    /// Every count, as fresh as the moment of the call.
    pub async fn counts(&self) -> Result<VoteCounts, AppError> {
        match self {
            VoteStore::Memory(counts) => Ok(*counts.lock().unwrap_or_else(|e| e.into_inner())),
            VoteStore::Postgres(db) => Ok(db.votes().await?),
        }
    }

    /// Whether votes can be served right now.
    pub async fn health(&self) -> BackendHealth {
        match self {
            VoteStore::Memory(_) => BackendHealth::Memory,
            VoteStore::Postgres(db) => {
                let ok = db.schema_ready()
                    && matches!(tokio::time::timeout(CHECK_TIMEOUT, db.ping()).await, Ok(Ok(())));
                if ok { BackendHealth::Up } else { BackendHealth::Down }
            }
        }
    }
}

/// The page-view counter.
pub enum ViewStore {
    /// Embedded mode.
    Memory(AtomicI64),
    /// Redis.
    Redis(Cache),
}

impl ViewStore {
    /// A counter at zero in memory.
    pub fn memory() -> ViewStore {
        ViewStore::Memory(AtomicI64::new(0))
    }

    /// Counts one view; returns the new total.
    pub async fn incr(&self) -> Result<i64, AppError> {
        match self {
            ViewStore::Memory(n) => Ok(n.fetch_add(1, Ordering::Relaxed) + 1),
            ViewStore::Redis(cache) => Ok(cache.incr_pageviews().await?),
        }
    }

    /// The total, without counting a view.
    pub async fn get(&self) -> Result<i64, AppError> {
        match self {
            ViewStore::Memory(n) => Ok(n.load(Ordering::Relaxed)),
            ViewStore::Redis(cache) => Ok(cache.pageviews().await?),
        }
    }

    /// Whether page views can be served right now.
    pub async fn health(&self) -> BackendHealth {
        match self {
            ViewStore::Memory(_) => BackendHealth::Memory,
            ViewStore::Redis(cache) => match tokio::time::timeout(CHECK_TIMEOUT, cache.ping()).await {
                Ok(Ok(())) => BackendHealth::Up,
                _ => BackendHealth::Down,
            },
        }
    }
}
