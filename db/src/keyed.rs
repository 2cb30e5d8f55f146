//! Votes that carry an idempotency key: counted exactly once however often
//! the client sends them, so a client may retry a vote whose answer it lost
//! (a 503 after Postgres went down mid-commit, a dropped connection).
//!
//! Keyed votes ride the group commit (`batch`) with the unkeyed ones: a
//! batch that holds at least one key is written by [`commit`] as **one**
//! transaction of four statements, whatever its size:
//!
//! 1. claim the batch's new keys in `yelb_vote_keys` (`ON CONFLICT DO
//!    NOTHING`, in key order, so two replicas' batches that share keys take
//!    their row locks in the same order and cannot deadlock);
//! 2. look up the keys that were already there (a retry; or a concurrent
//!    batch elsewhere that held the key, which this statement waited for);
//! 3. add the fresh votes (unkeyed, and keyed whose key was just claimed)
//!    in one upsert, as `batch` does alone;
//! 4. record each claimed key's own count.
//!
//! Either all of it commits or none of it does: a key is never recorded
//! without its vote, nor a vote counted without its key, so a retry after a
//! lost answer or a crash mid-batch counts exactly once. A key repeated in
//! one batch is counted for its first occurrence; the others answer its
//! count. A key sent again for another restaurant is refused
//! ([`DbError::KeyReused`]) without failing the rest of its batch.
//!
//! The table is an addition next to the original `restaurants`, which stays
//! exactly as the original app server expects. Keys are kept for a day
//! ([`prune`]).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use deadpool_postgres::Pool;
use yelb_core::api::IdempotencyKey;
use yelb_core::{Restaurant, VoteCounts};

use crate::batch::{self, Tally};
use crate::{DbError, Result};

/// The keys table: additive, unknown to the original app server.
pub(crate) const CREATE_KEYS: &str = "CREATE TABLE IF NOT EXISTS yelb_vote_keys (\
     key text PRIMARY KEY, restaurant text NOT NULL, count integer, \
     created_at timestamptz NOT NULL DEFAULT now())";

/// Claims the keys not seen before and returns them. A key that another
/// open transaction is claiming waits for it, then counts as seen.
const CLAIM: &str = "\
INSERT INTO yelb_vote_keys (key, restaurant)
SELECT v.key, v.restaurant FROM unnest($1::text[], $2::text[]) AS v(key, restaurant) ORDER BY v.key
ON CONFLICT (key) DO NOTHING
RETURNING key";

/// The first vote of keys that were there before this batch.
const LOOKUP: &str = "SELECT key, restaurant, count FROM yelb_vote_keys WHERE key = ANY($1::text[])";

/// Each claimed key's own count.
const RECORD: &str = "\
UPDATE yelb_vote_keys AS k SET count = v.count
FROM unnest($1::text[], $2::int4[]) AS v(key, count) WHERE k.key = v.key";

const PRUNE: &str = "DELETE FROM yelb_vote_keys WHERE created_at < now() - interval '1 day'";

/// What a keyed vote did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyedVote {
    /// The restaurant's count right after the vote (the first time it was counted).
    pub count: i64,
    /// True when the key had been counted before: nothing was added now.
    pub replayed: bool,
    /// The counts of the commit that carried it, as in
    /// [`crate::VoteOutcome::counts`]; all zero for a repeat.
    pub counts: VoteCounts,
}

/// One vote of a batch, as [`commit`] sees it.
pub(crate) struct Ballot<'a> {
    pub(crate) restaurant: Restaurant,
    pub(crate) key: Option<&'a IdempotencyKey>,
}

/// Where a keyed ballot's answer comes from.
enum Source {
    /// Counted now: the ballot's own count, once the upsert has returned.
    Fresh,
    /// A repeat of a key first sent earlier in this batch (its index).
    SameBatch(usize),
    /// A key counted by an earlier commit.
    Earlier,
}

/// Writes a batch holding keyed votes as one transaction (module docs) and
/// answers each ballot, in order. `Err` means nothing was written and every
/// ballot failed.
pub(crate) async fn commit(
    pool: &Pool,
    ballots: &[Ballot<'_>],
    timeout: Duration,
) -> Result<Vec<Result<Tally>>> {
    // The first occurrence of each key claims it; sorted for the lock order.
    let mut first_of: HashMap<&str, usize> = HashMap::new();
    for (i, b) in ballots.iter().enumerate() {
        if let Some(key) = b.key {
            first_of.entry(key.as_str()).or_insert(i);
        }
    }
    let mut claims: Vec<(&str, &str)> =
        first_of.iter().map(|(key, &i)| (*key, ballots[i].restaurant.slug())).collect();
    claims.sort_unstable();
    let (keys, restaurants): (Vec<&str>, Vec<&str>) = claims.into_iter().unzip();

    let mut client = pool.get().await?;
    let work = async {
        let tx = client.transaction().await?;
        let claim = tx.prepare_cached(CLAIM).await?;
        let claimed: HashSet<String> =
            tx.query(&claim, &[&keys, &restaurants]).await?.iter().map(|row| row.get(0)).collect();
        let seen: Vec<&str> = keys.iter().copied().filter(|k| !claimed.contains(*k)).collect();
        let mut earlier: HashMap<String, (String, Option<i32>)> = HashMap::new();
        if !seen.is_empty() {
            let lookup = tx.prepare_cached(LOOKUP).await?;
            for row in tx.query(&lookup, &[&seen]).await? {
                earlier.insert(row.get(0), (row.get(1), row.get(2)));
            }
        }
        let sources: Vec<Option<Source>> = ballots
            .iter()
            .enumerate()
            .map(|(i, b)| {
                b.key.map(|key| {
                    let first = first_of[key.as_str()];
                    if !claimed.contains(key.as_str()) {
                        Source::Earlier
                    } else if first == i {
                        Source::Fresh
                    } else {
                        Source::SameBatch(first)
                    }
                })
            })
            .collect();
        let fresh = |i: usize| matches!(sources[i], None | Some(Source::Fresh));
        let mut added = VoteCounts::default();
        for (i, b) in ballots.iter().enumerate() {
            if fresh(i) {
                *added.get_mut(b.restaurant) += 1;
            }
        }
        let counts =
            if added.total() > 0 { batch::upsert(&tx, &added).await? } else { VoteCounts::default() };
        let own = batch::own_counts(
            ballots.iter().enumerate().map(|(i, b)| fresh(i).then_some(b.restaurant)),
            &added,
            counts,
        );
        let (recorded_keys, recorded_counts): (Vec<&str>, Vec<i32>) = ballots
            .iter()
            .enumerate()
            .filter(|(i, _)| matches!(sources[*i], Some(Source::Fresh)))
            .filter_map(|(i, b)| b.key.map(|k| (k.as_str(), i32::try_from(own[i]).unwrap_or(i32::MAX))))
            .unzip();
        if !recorded_keys.is_empty() {
            let record = tx.prepare_cached(RECORD).await?;
            tx.execute(&record, &[&recorded_keys, &recorded_counts]).await?;
        }
        tx.commit().await?;
        let answers = ballots
            .iter()
            .enumerate()
            .map(|(i, b)| match &sources[i] {
                None | Some(Source::Fresh) => Ok(Tally { count: own[i], counts, replayed: false }),
                Some(Source::SameBatch(first)) => {
                    replay(b.restaurant, ballots[*first].restaurant.slug(), own[*first])
                }
                Some(Source::Earlier) => {
                    let key = b.key.map_or("", IdempotencyKey::as_str);
                    match earlier.get(key) {
                        Some((first, count)) => replay(b.restaurant, first, i64::from(count.unwrap_or(0))),
                        // Forgotten between the claim and the look-up (a
                        // reset or the daily prune): nothing was counted
                        // for it, and a retry will be.
                        None => Err(DbError::Unavailable("the vote's key was reset meanwhile; retry".into())),
                    }
                }
            })
            .collect();
        Ok::<_, DbError>(answers)
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

/// The answer to a key counted before: its first count, if it voted for the
/// same restaurant.
fn replay(restaurant: Restaurant, first: &str, count: i64) -> Result<Tally> {
    if first.trim() == restaurant.slug() {
        Ok(Tally { count, counts: VoteCounts::default(), replayed: true })
    } else {
        Err(DbError::KeyReused { first: first.trim().to_owned() })
    }
}

/// Deletes keys older than a day; returns how many.
pub(crate) async fn prune(pool: &Pool) -> Result<u64> {
    let client = pool.get().await?;
    Ok(client.execute(PRUNE, &[]).await?)
}
