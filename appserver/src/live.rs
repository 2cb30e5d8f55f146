//! Live events: what every open page is told, and how replicas tell each other.
//!
//! - [`LiveHub`]: this replica's newest known [`LiveState`] in a
//!   `tokio::sync::watch` channel. Server-sent-event clients subscribe to it;
//!   a slow client skips straight to the newest state instead of queueing.
//! - [`spawn_bridge`]: with Redis, two tasks connect the hub to the other
//!   replicas: one publishes this replica's own changes, one merges what the
//!   others publish. Within an epoch states only grow, so merging is a
//!   per-field max and the order messages arrive in does not matter; a reset
//!   starts a newer epoch, whose state replaces the old one whole.
//!
//! While Redis is down each replica's page still updates from its own votes;
//! the bridge resubscribes with backoff and catches up on reconnect.

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use futures_util::StreamExt;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use yelb_cache::Cache;
use yelb_core::wire::{LiveState, Merged};

/// The least time between two publishes from one replica: a burst of votes
/// becomes one message per window, well inside the 250 ms latency budget.
const PUBLISH_INTERVAL: Duration = Duration::from_millis(5);

/// How long after hearing of a reset a replica reads the counts again.
const RESET_SETTLE: Duration = Duration::from_millis(300);

/// This replica's newest known state. Shared through an `Arc` in the app state.
pub struct LiveHub {
    state: watch::Sender<LiveState>,
    local_change: Notify,
}

impl Default for LiveHub {
    fn default() -> Self {
        LiveHub { state: watch::Sender::new(LiveState::default()), local_change: Notify::new() }
    }
}

impl LiveHub {
    /// Folds in a state from anywhere; wakes subscribers if it changed anything.
    ///
    /// A state read or counted here must carry the epoch [`LiveHub::epoch`]
    /// gave *before* the read started: if a reset lands meanwhile, the stale
    /// numbers then belong to the old epoch and are ignored.
    pub fn merge(&self, update: &LiveState) -> Merged {
        // Most updates (every read under load) change nothing: find that out
        // under the shared read lock before taking the write lock.
        let mut probe = *self.state.borrow();
        if probe.merge(update) == Merged::Unchanged {
            return Merged::Unchanged;
        }
        let mut merged = Merged::Unchanged;
        self.state.send_if_modified(|current| {
            merged = current.merge(update);
            merged != Merged::Unchanged
        });
        merged
    }

    /// Folds in a change made through this replica, and has it published to
    /// the others.
    pub fn local_change(&self, update: &LiveState) {
        if self.merge(update) != Merged::Unchanged {
            self.local_change.notify_one();
        }
    }

    /// The current reset generation.
    pub fn epoch(&self) -> u64 {
        self.state.borrow().epoch
    }

    /// The newest state.
    pub fn snapshot(&self) -> LiveState {
        *self.state.borrow()
    }

    /// A receiver that sees the current state and every later change.
    pub fn subscribe(&self) -> watch::Receiver<LiveState> {
        self.state.subscribe()
    }
}

/// What the bridge runs after every (re)subscription to catch up on what it
/// missed: the app state's `refresh_live` (votes and page views).
pub type CatchUp = Arc<dyn Fn() -> futures_util::future::BoxFuture<'static, ()> + Send + Sync>;

/// Starts the two tasks that connect `hub` to the other replicas through
/// `cache`. They stop when `stop` is cancelled.
pub fn spawn_bridge(hub: Arc<LiveHub>, cache: Cache, stop: CancellationToken, catch_up: CatchUp) {
    let (h, c, s) = (hub.clone(), cache.clone(), stop.clone());
    tokio::spawn(async move {
        tokio::select! {
            () = publish_loop(h, c) => {}
            () = s.cancelled() => {}
        }
    });
    tokio::spawn(async move {
        tokio::select! {
            () = subscribe_loop(hub, cache, catch_up) => {}
            () = stop.cancelled() => {}
        }
    });
}

async fn publish_loop(hub: Arc<LiveHub>, cache: Cache) {
    loop {
        hub.local_change.notified().await;
        let state = hub.snapshot();
        if let Err(e) = cache.publish(&state).await {
            tracing::debug!(error = %e, "could not publish a live update");
        }
        tokio::time::sleep(PUBLISH_INTERVAL).await;
    }
}

async fn subscribe_loop(hub: Arc<LiveHub>, cache: Cache, catch_up: CatchUp) {
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(2))
        .without_max_times();
    // A subscription that drops at once (Redis accepting, then closing)
    // must not turn into a busy loop: wait longer each time it happens.
    let mut quick_drops = 0u32;
    loop {
        if quick_drops > 0 {
            let wait = Duration::from_millis(50u64 << quick_drops.min(7)).min(Duration::from_secs(5));
            tokio::time::sleep(wait).await;
        }
        let subscribe = || async { cache.subscribe().await };
        let Ok(events) = subscribe
            .retry(backoff)
            .notify(|e, wait| tracing::debug!(error = %e, ?wait, "live events: subscribing again"))
            .await
        else {
            continue;
        };
        tracing::info!("live events: subscribed to other replicas");
        // Catch up on what was counted while we were not listening: votes
        // cast through other replicas, page views.
        catch_up().await;
        let since = tokio::time::Instant::now();
        let mut events = std::pin::pin!(events);
        while let Some(state) = events.next().await {
            if hub.merge(&state) == Merged::Reset {
                // A reset elsewhere: a vote counted here just before this
                // replica heard of it went to the old epoch. Read again once
                // the reset has settled.
                let catch_up = catch_up.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(RESET_SETTLE).await;
                    catch_up().await;
                });
            }
        }
        quick_drops = if since.elapsed() < Duration::from_secs(5) { quick_drops + 1 } else { 0 };
        tracing::warn!("live events: lost the Redis subscription");
    }
}
