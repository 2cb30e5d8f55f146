//! Votes that carry an idempotency key: counted exactly once however often
//! the client sends them, so a client may retry a vote whose answer it lost
//! (a 503 after Postgres went down mid-commit, a dropped connection).
//!
//! Keyed votes ride the group commit (`batch`) with the unkeyed ones: a
//! batch that holds at least one key is written by [`commit`] as **one**
//! transaction, whatever its size:
//!
//! 1. claim the batch's new keys in `yelb_vote_keys` (`ON CONFLICT DO
//!    NOTHING`, in key order, so two replicas' batches that share keys take
//!    their row locks in the same order and cannot deadlock);
//! 2. look up the keys that were already there (a retry; or a concurrent
//!    batch elsewhere that held the key, which the claim waited for); only
//!    when there are some;
//! 3. in one statement, add the fresh votes (unkeyed, and keyed whose key
//!    was just claimed) in one upsert, as `batch` does alone, and record
//!    each claimed key's own count from the upsert's result.
//!
//! `BEGIN` goes out with the claim and `COMMIT` with step 3, pipelined on
//! one connection: two round trips a batch (three with repeats), against
//! one for a batch without keys. (On two busy cores each round trip waits
//! for Postgres to be scheduled: six of them, one per statement, made a
//! keyed batch about seven times slower than an unkeyed one.)
//!
//! Either all of it commits or none of it does: a key is never recorded
//! without its vote, nor a vote counted without its key, so a retry after a
//! lost answer or a crash mid-batch counts exactly once. A key repeated in
//! one batch is counted for its first occurrence; the others answer its
//! count. A key sent again for another restaurant is refused
//! ([`DbError::KeyReused`]) without failing the rest of its batch.
//!
//! The table is an addition next to the original `restaurants`, which stays
//! exactly as the original app server expects. Keys are kept for
//! [`KEY_RETENTION_MINUTES`] ([`prune`]): long enough for any client's retry,
//! short enough that a flood of fresh keys cannot grow the table for hours.

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

/// The prune's index: it runs every minute.
pub(crate) const INDEX_KEYS: &str =
    "CREATE INDEX IF NOT EXISTS yelb_vote_keys_created_at ON yelb_vote_keys (created_at)";

/// Claims the keys not seen before and returns them. A key that another
/// open transaction is claiming waits for it, then counts as seen.
const CLAIM: &str = "\
INSERT INTO yelb_vote_keys (key, restaurant)
SELECT v.key, v.restaurant FROM unnest($1::text[], $2::text[]) AS v(key, restaurant) ORDER BY v.key
ON CONFLICT (key) DO NOTHING
RETURNING key";

/// The first vote of keys that were there before this batch.
const LOOKUP: &str = "SELECT key, restaurant, count FROM yelb_vote_keys WHERE key = ANY($1::text[])";

/// The batch's upsert (`batch`'s, with the same parameters $1 and $2), and
/// each claimed key's own count: its restaurant's new count less `back`,
/// the number of fresh votes for it queued after this one. The update sees
/// the keys the claim inserted: it is a later statement of the transaction.
const ADD_AND_RECORD: &str = "\
WITH up AS (
  INSERT INTO restaurants AS r (name, count)
  SELECT v.name, v.n FROM unnest($1::text[], $2::int4[]) AS v(name, n)
  ON CONFLICT (name) DO UPDATE SET count = coalesce(r.count, 0) + excluded.count
  RETURNING trim(r.name) AS name, r.count::bigint AS count
), recorded AS (
  UPDATE yelb_vote_keys AS k SET count = up.count - v.back
  FROM unnest($3::text[], $4::text[], $5::int4[]) AS v(key, restaurant, back)
  JOIN up ON up.name = v.restaurant
  WHERE k.key = v.key
)
SELECT name, count FROM up";

/// How long an idempotency key is remembered: a retry comes within seconds.
pub const KEY_RETENTION_MINUTES: u32 = 15;

const PRUNE: &str = "DELETE FROM yelb_vote_keys WHERE created_at < now() - make_interval(mins => $1)";

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

    let client = pool.get().await?;
    let work = async {
        let claim = client.prepare_cached(CLAIM).await?;
        let claim_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&keys, &restaurants];
        let (begun, claimed) =
            tokio::join!(client.batch_execute("BEGIN"), client.query(&claim, &claim_params));
        begun?;
        let claimed: HashSet<String> = claimed?.iter().map(|row| row.get(0)).collect();
        let seen: Vec<&str> = keys.iter().copied().filter(|k| !claimed.contains(*k)).collect();
        let mut earlier: HashMap<String, (String, Option<i32>)> = HashMap::new();
        if !seen.is_empty() {
            let lookup = client.prepare_cached(LOOKUP).await?;
            for row in client.query(&lookup, &[&seen]).await? {
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
        // Each fresh vote's place among its restaurant's fresh votes (1 … k),
        // so its count is C - (k - place) once the upsert says C.
        let place = batch::own_counts(
            ballots.iter().enumerate().map(|(i, b)| fresh(i).then_some(b.restaurant)),
            &added,
            added,
        );
        let back = |i: usize| added.get(ballots[i].restaurant) - place[i];
        let counts = if added.total() > 0 {
            let (names, ns) = batch::upsert_params(&added);
            let mut recorded: (Vec<&str>, Vec<&str>, Vec<i32>) = Default::default();
            for (i, b) in ballots.iter().enumerate() {
                if let (Some(Source::Fresh), Some(key)) = (&sources[i], b.key) {
                    recorded.0.push(key.as_str());
                    recorded.1.push(b.restaurant.slug());
                    recorded.2.push(i32::try_from(back(i)).unwrap_or(i32::MAX));
                }
            }
            let add = client.prepare_cached(ADD_AND_RECORD).await?;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
                [&names, &ns, &recorded.0, &recorded.1, &recorded.2];
            // COMMIT goes out right behind the statement; had the statement
            // failed, Postgres answers it with a rollback, and the
            // statement's own error fails the batch.
            let (rows, committed) = tokio::join!(client.query(&add, &params), client.batch_execute("COMMIT"));
            let rows = rows?;
            committed?;
            batch::counts_from_rows(&rows)
        } else {
            client.batch_execute("COMMIT").await?;
            VoteCounts::default()
        };
        let own = |i: usize| counts.get(ballots[i].restaurant) - back(i);
        let answers = ballots
            .iter()
            .enumerate()
            .map(|(i, b)| match &sources[i] {
                None | Some(Source::Fresh) => Ok(Tally { count: own(i), counts, replayed: false }),
                Some(Source::SameBatch(first)) => {
                    replay(b.restaurant, ballots[*first].restaurant.slug(), own(*first))
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
    let outcome = match tokio::time::timeout(timeout, work).await {
        Ok(result) => result,
        Err(_) => Err(DbError::Timeout(timeout)),
    };
    if outcome.is_err() {
        // The connection may be inside the transaction, or half-open:
        // never hand it out again (dropping it rolls back).
        drop(deadpool_postgres::Object::take(client));
    }
    outcome
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

/// Deletes keys older than `minutes`; returns how many.
pub(crate) async fn prune(pool: &Pool, minutes: u32) -> Result<u64> {
    let client = pool.get().await?;
    let minutes = i32::try_from(minutes).unwrap_or(i32::MAX);
    Ok(client.execute(PRUNE, &[&minutes]).await?)
}
