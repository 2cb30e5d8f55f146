//! Votes that carry an idempotency key: counted exactly once however often
//! the client sends them, so a client may retry a vote whose answer it lost
//! (a 503 after Postgres went down mid-commit, a dropped connection).
//!
//! Each key is recorded in `yelb_vote_keys` in the same transaction that
//! adds the vote; a repeat finds the key and answers the first vote's count
//! without counting again. The table is an addition next to the original
//! `restaurants`, which stays exactly as the original app server expects.
//! Keys are kept for a day ([`prune`]).
//!
//! These votes do not go through the group commit (`batch`): each is its own
//! transaction, a few round trips. The browser sends one per click, far
//! below what one connection does a second.

use std::time::Duration;

use deadpool_postgres::Pool;
use yelb_core::Restaurant;
use yelb_core::api::IdempotencyKey;

use crate::{DbError, Result};

/// The keys table: additive, unknown to the original app server.
pub(crate) const CREATE_KEYS: &str = "CREATE TABLE IF NOT EXISTS yelb_vote_keys (\
     key text PRIMARY KEY, restaurant text NOT NULL, count integer, \
     created_at timestamptz NOT NULL DEFAULT now())";

/// Claims the key; a second claim of the same key waits for the first
/// transaction, then does nothing.
const CLAIM: &str =
    "INSERT INTO yelb_vote_keys (key, restaurant) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING";

/// The vote itself (an upsert, as in `batch`, so a deleted seed row comes back).
const ADD_ONE: &str = "\
INSERT INTO restaurants AS r (name, count) VALUES ($1, 1)
ON CONFLICT (name) DO UPDATE SET count = coalesce(r.count, 0) + 1
RETURNING r.count";

const RECORD: &str = "UPDATE yelb_vote_keys SET count = $2 WHERE key = $1";

const LOOKUP: &str = "SELECT restaurant, count FROM yelb_vote_keys WHERE key = $1";

const PRUNE: &str = "DELETE FROM yelb_vote_keys WHERE created_at < now() - interval '1 day'";

/// What a keyed vote did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyedVote {
    /// The restaurant's count right after the vote (the first time it was counted).
    pub count: i64,
    /// True when the key had been counted before: nothing was added now.
    pub replayed: bool,
}

/// Counts the vote unless its key was counted before (see the module docs).
pub(crate) async fn vote(
    pool: &Pool,
    key: &IdempotencyKey,
    restaurant: Restaurant,
    timeout: Duration,
) -> Result<KeyedVote> {
    let mut client = pool.get().await?;
    let work = async {
        let tx = client.transaction().await?;
        let claimed = tx.execute(CLAIM, &[&key.as_str(), &restaurant.slug()]).await? == 1;
        let outcome = if claimed {
            let count: Option<i32> = tx.query_one(ADD_ONE, &[&restaurant.slug()]).await?.get(0);
            let count = count.unwrap_or(0);
            tx.execute(RECORD, &[&key.as_str(), &count]).await?;
            KeyedVote { count: i64::from(count), replayed: false }
        } else {
            let row = tx.query_one(LOOKUP, &[&key.as_str()]).await?;
            let (first, count): (String, Option<i32>) = (row.get(0), row.get(1));
            if first != restaurant.slug() {
                return Err(DbError::KeyReused { first });
            }
            KeyedVote { count: i64::from(count.unwrap_or(0)), replayed: true }
        };
        tx.commit().await?;
        Ok(outcome)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result,
        Err(_) => {
            // Possibly half-open: never hand this connection out again.
            drop(deadpool_postgres::Object::take(client));
            Err(DbError::Timeout(timeout))
        }
    }
}

/// Deletes keys older than a day; returns how many.
pub(crate) async fn prune(pool: &Pool) -> Result<u64> {
    let client = pool.get().await?;
    Ok(client.execute(PRUNE, &[]).await?)
}
