//! Yelb's Redis tier. All of Yelb's Redis keys and channels live in this crate.
//!
//! - [`Cache`]: a cheap-to-clone handle over one multiplexed, self-reconnecting
//!   connection (redis-rs's `ConnectionManager`): every request pipelines onto
//!   it, so there is never a connection per request.
//! - The page-view counter: key `pageviews`, an integer string changed with
//!   `INCR`, no TTL — exactly the original's, so old and new app servers share it.
//! - The live-event bus: channel `yelb:events`, carrying [`LiveState`] as JSON
//!   between replicas ([`Cache::publish`], [`Cache::subscribe`]).
//! - Requests served per replica: hashes `yelb:served` (hostname → count),
//!   `yelb:seen` (hostname → last report, Unix ms) and `yelb:placement`
//!   (hostname → what it runs and where, JSON) ([`Cache::report_served`],
//!   [`Cache::served`]).
//! - The reset epoch: key `yelb:epoch`, an integer raised by every reset
//!   ([`Cache::next_epoch`], [`Cache::epoch`]).
//! - Faults: hash `yelb:faults` (scope → fault as JSON) and channel
//!   `yelb:control`, which says "read the faults again"
//!   ([`Cache::set_fault`], [`Cache::faults`], [`Cache::watch_control`]).
//! - [`CacheError`]: the one error type.
//!
//! An optional key prefix lets several Yelbs (or tests) share one Redis; the
//! default, empty prefix gives the original key names.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use yelb_core::wire::LiveState;

/// Why Redis could not answer.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Redis is unreachable or a command failed or timed out.
    #[error("redis unavailable: {0}")]
    Redis(#[from] redis::RedisError),
    /// The URL is not a Redis URL.
    #[error("invalid redis url: {0}")]
    Config(String),
}

/// Result of a cache call.
pub type Result<T, E = CacheError> = std::result::Result<T, E>;

/// How the cache talks to Redis.
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// Put before every key and channel name (empty: the original names).
    pub key_prefix: String,
    /// How long one command, or one connection attempt, may take. Short, so
    /// that while Redis is down page views fail fast instead of hanging.
    pub timeout: Duration,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions { key_prefix: String::new(), timeout: Duration::from_millis(1000) }
    }
}

/// The key and channel names, built once.
#[derive(Debug)]
struct Keys {
    pageviews: String,
    events: String,
    served: String,
    seen: String,
    placement: String,
    epoch: String,
    faults: String,
    control: String,
}

/// The Redis tier. Cloning is cheap: clones share the connection.
#[derive(Clone)]
pub struct Cache {
    client: redis::Client,
    conn: ConnectionManager,
    keys: Arc<Keys>,
}

impl Cache {
    /// Builds the handle without connecting: the first command connects, and
    /// later ones reconnect after a failure, so this works before Redis is up.
    /// Must be called inside a Tokio runtime.
    pub fn new(url: &str, options: &CacheOptions) -> Result<Cache> {
        let client = redis::Client::open(url).map_err(|e| CacheError::Config(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.timeout))
            .set_response_timeout(Some(options.timeout))
            // One quick retry: a command during an outage should fail in about
            // a timeout, not wait through a long backoff.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        let p = &options.key_prefix;
        let keys = Keys {
            pageviews: format!("{p}pageviews"),
            events: format!("{p}yelb:events"),
            served: format!("{p}yelb:served"),
            seen: format!("{p}yelb:seen"),
            placement: format!("{p}yelb:placement"),
            epoch: format!("{p}yelb:epoch"),
            faults: format!("{p}yelb:faults"),
            control: format!("{p}yelb:control"),
        };
        Ok(Cache { client, conn, keys: Arc::new(keys) })
    }

    /// Counts one page view and returns the new total.
    pub async fn incr_pageviews(&self) -> Result<i64> {
        Ok(self.conn.clone().incr(&self.keys.pageviews, 1).await?)
    }

    /// The page-view total, without counting a view (0 when never counted).
    pub async fn pageviews(&self) -> Result<i64> {
        let value: Option<i64> = self.conn.clone().get(&self.keys.pageviews).await?;
        Ok(value.unwrap_or(0))
    }

    /// Sets the page-view counter to zero (a reset).
    pub async fn reset_pageviews(&self) -> Result<()> {
        let _: () = self.conn.clone().set(&self.keys.pageviews, 0).await?;
        Ok(())
    }

    /// Raises the reset epoch and returns it: one more than before, and at
    /// least `floor` (so a Redis that lost the key cannot hand out an epoch
    /// the replicas have already passed).
    pub async fn next_epoch(&self, floor: u64) -> Result<u64> {
        const RAISE: &str = "local e = redis.call('INCR', KEYS[1]) \
             if e < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) e = tonumber(ARGV[1]) end \
             return e";
        Ok(redis::cmd("EVAL")
            .arg(RAISE)
            .arg(1)
            .arg(&self.keys.epoch)
            .arg(floor)
            .query_async(&mut self.conn.clone())
            .await?)
    }

    /// The reset epoch (0 before the first reset).
    pub async fn epoch(&self) -> Result<u64> {
        let value: Option<u64> = self.conn.clone().get(&self.keys.epoch).await?;
        Ok(value.unwrap_or(0))
    }

    /// Stores `fault` (JSON) under `scope`, replacing what that scope had
    /// (`None` removes it), and tells every replica to read the faults again.
    pub async fn set_fault(&self, scope: &str, fault: Option<&str>) -> Result<()> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        match fault {
            Some(json) => pipe.hset(&self.keys.faults, scope, json).ignore(),
            None => pipe.hdel(&self.keys.faults, scope).ignore(),
        };
        pipe.publish(&self.keys.control, "faults").ignore();
        let _: () = pipe.query_async(&mut self.conn.clone()).await?;
        Ok(())
    }

    /// Removes every fault and tells every replica.
    pub async fn clear_faults(&self) -> Result<()> {
        let _: () = redis::pipe()
            .atomic()
            .del(&self.keys.faults)
            .ignore()
            .publish(&self.keys.control, "faults")
            .ignore()
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// Every stored fault, as (scope, JSON); expired ones included (their
    /// JSON says when they expire).
    pub async fn faults(&self) -> Result<Vec<(String, String)>> {
        let all: std::collections::HashMap<String, String> =
            self.conn.clone().hgetall(&self.keys.faults).await?;
        Ok(all.into_iter().collect())
    }

    /// Opens a subscriber connection to the control channel; the stream
    /// yields once per message and ends when the connection drops.
    pub async fn watch_control(&self) -> Result<impl Stream<Item = ()> + Send + 'static> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(&self.keys.control).await?;
        Ok(pubsub.into_on_message().map(|_| ()))
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> Result<()> {
        let _: String = redis::cmd("PING").query_async(&mut self.conn.clone()).await?;
        Ok(())
    }

    /// Tells every replica about a new state.
    pub async fn publish(&self, state: &LiveState) -> Result<()> {
        let payload = serde_json::to_string(state).expect("LiveState always serializes");
        let _: i64 = self.conn.clone().publish(&self.keys.events, payload).await?;
        Ok(())
    }

    /// Adds `delta` to `hostname`'s served count and records `now_ms` as the
    /// time it was last seen and `placement` (JSON), atomically.
    pub async fn report_served(
        &self,
        hostname: &str,
        delta: u64,
        now_ms: u64,
        placement: &str,
    ) -> Result<()> {
        let _: () = redis::pipe()
            .atomic()
            .hincr(&self.keys.served, hostname, delta)
            .ignore()
            .hset(&self.keys.seen, hostname, now_ms)
            .ignore()
            .hset(&self.keys.placement, hostname, placement)
            .ignore()
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// Forgets every replica last seen before `cutoff_ms` (Unix ms), so the
    /// two hashes hold the replicas of the last while, not every pod name
    /// a cluster ever had. Returns how many were forgotten.
    pub async fn forget_replicas_before(&self, cutoff_ms: u64) -> Result<usize> {
        let seen: std::collections::HashMap<String, u64> = self.conn.clone().hgetall(&self.keys.seen).await?;
        let stale: Vec<&String> = seen.iter().filter(|(_, t)| **t < cutoff_ms).map(|(h, _)| h).collect();
        if stale.is_empty() {
            return Ok(0);
        }
        let _: () = redis::pipe()
            .atomic()
            .hdel(&self.keys.served, &stale)
            .ignore()
            .hdel(&self.keys.seen, &stale)
            .ignore()
            .hdel(&self.keys.placement, &stale)
            .ignore()
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(stale.len())
    }

    /// Every replica that ever reported: (hostname, served, last seen in
    /// Unix ms, placement JSON if it sent one).
    pub async fn served(&self) -> Result<Vec<(String, u64, u64, Option<String>)>> {
        type Hash<V> = std::collections::HashMap<String, V>;
        let (served, seen, mut placement): (Hash<u64>, Hash<u64>, Hash<String>) = redis::pipe()
            .hgetall(&self.keys.served)
            .hgetall(&self.keys.seen)
            .hgetall(&self.keys.placement)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(served
            .into_iter()
            .map(|(host, n)| {
                let last = seen.get(&host).copied().unwrap_or(0);
                let placed = placement.remove(&host);
                (host, n, last, placed)
            })
            .collect())
    }

    /// Opens a dedicated subscriber connection and returns the states every
    /// replica (this one included) publishes from now on. The stream ends when
    /// the connection drops; callers subscribe again. Messages that are not a
    /// valid state are logged and skipped.
    pub async fn subscribe(&self) -> Result<impl Stream<Item = LiveState> + Send + 'static> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(&self.keys.events).await?;
        Ok(pubsub.into_on_message().filter_map(|msg| async move {
            match serde_json::from_slice::<LiveState>(msg.get_payload_bytes()) {
                Ok(state) => Some(state),
                Err(e) => {
                    tracing::warn!(error = %e, "ignoring a malformed message on the events channel");
                    None
                }
            }
        }))
    }
}
