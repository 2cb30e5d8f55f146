//! Which app servers are answering, and how many `/api` requests each served:
//! what the UI's "spread" panel shows while replicas are scaled up and down.
//!
//! Each replica counts its requests in an atomic (no Redis call per request)
//! and a reporter task adds what it counted to a Redis hash once a second,
//! with a last-seen time. [`list`] reads both back; replicas not seen for a
//! minute are left out, so scaled-down ones disappear from the panel. In
//! embedded mode the list is this replica alone.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use yelb_cache::Cache;
use yelb_core::wire::{Placement, ReplicaInfo};

use crate::{AppError, AppState};

/// How often each replica reports its count.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// Replicas silent for longer than this are left out of [`list`].
pub const FORGET_AFTER: Duration = Duration::from_secs(60);

/// Replicas silent for longer than this are deleted from Redis (by whichever
/// replica prunes next), so its hashes do not grow with every pod ever run.
pub const PRUNE_AFTER: Duration = Duration::from_secs(600);

/// Reports between two prunings.
const PRUNE_EVERY: u64 = 60;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Starts the task that reports this replica's count to Redis every second.
/// A report that fails (Redis down) is kept and added to the next one.
pub fn spawn_reporter(state: AppState, cache: Cache) {
    let stop = state.stop_token().clone();
    let placement = serde_json::to_string(state.placement()).expect("a placement always serializes");
    tokio::spawn(async move {
        let mut reported = 0u64;
        let mut tick = tokio::time::interval(REPORT_INTERVAL);
        for round in 0u64.. {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => break,
            }
            let served = state.served();
            match cache.report_served(state.hostname(), served - reported, now_ms(), &placement).await {
                Ok(()) => reported = served,
                Err(e) => tracing::debug!(error = %e, "could not report served requests"),
            }
            if round % PRUNE_EVERY == PRUNE_EVERY - 1 {
                let cutoff = now_ms().saturating_sub(PRUNE_AFTER.as_millis() as u64);
                match cache.forget_replicas_before(cutoff).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(forgotten = n, "forgot replicas silent for ten minutes"),
                    Err(e) => tracing::debug!(error = %e, "could not prune the replica list"),
                }
            }
        }
    });
}

/// Every replica seen in the last minute.
pub async fn list(state: &AppState) -> Result<Vec<ReplicaInfo>, AppError> {
    match state.views().as_redis() {
        None => Ok(vec![ReplicaInfo {
            hostname: state.hostname().to_owned(),
            served: state.served(),
            last_seen_ms: 0,
            placement: Some(state.placement().clone()),
        }]),
        Some(cache) => {
            let now = now_ms();
            let forget = FORGET_AFTER.as_millis() as u64;
            Ok(cache
                .served()
                .await
                .map_err(crate::store::StoreError::from)?
                .into_iter()
                .map(|(hostname, served, seen, placement)| ReplicaInfo {
                    hostname: hostname.chars().filter(|c| c.is_ascii_graphic()).take(253).collect(),
                    served,
                    last_seen_ms: now.saturating_sub(seen),
                    // Anyone who can write to Redis writes here: shown only once checked.
                    placement: placement
                        .and_then(|json| serde_json::from_str::<Placement>(&json).ok())
                        .map(Placement::sanitized),
                })
                .filter(|r| r.last_seen_ms <= forget)
                .collect())
        }
    }
}
