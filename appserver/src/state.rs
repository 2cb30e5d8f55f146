//! The shared state every handler gets: [`AppState`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use yelb_core::wire::LiveState;

use crate::live::LiveHub;
use crate::metrics::Metrics;
use crate::store::{ViewStore, VoteStore};

/// Everything a request may need. Cloning copies one `Arc`: all clones share
/// the stores, the live hub and the metrics.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    hostname: String,
    votes: VoteStore,
    views: ViewStore,
    live: Arc<LiveHub>,
    metrics: Metrics,
    shutting_down: AtomicBool,
    stop: CancellationToken,
    heartbeat: Duration,
    /// `/api` requests this replica answered, all time.
    served: AtomicU64,
    /// The cap on open event streams.
    streams: yelb_service::StreamSlots,
    trusted_proxies: yelb_service::TrustedProxies,
    /// Wrong stage tokens per client ([`crate::routes::admin`]).
    admin_failures: yelb_service::FailureThrottle,
    /// The faults in force ([`crate::faults`]).
    faults: crate::faults::Faults,
    /// Stage control's bearer token; `None` turns it off.
    admin_token: Option<secrecy::SecretString>,
    /// What this replica runs and where.
    placement: yelb_core::wire::Placement,
    /// The stores' health as last checked, for `/api/v1/replicas`.
    backends: tokio::sync::Mutex<Option<(std::time::Instant, yelb_core::wire::Backends)>>,
}

impl AppState {
    /// Builds the state around ready-made stores; `heartbeat` is the idle
    /// interval of event streams.
    /// `limits` caps the open event streams (in total and per client, the
    /// client named by its trusted proxies' `X-Forwarded-For`). With an
    /// `admin_token`, stage control (`/api/v1/admin`, faults) is on.
    pub fn new(
        hostname: String,
        votes: VoteStore,
        views: ViewStore,
        heartbeat: Duration,
        limits: &yelb_service::Limits,
        admin_token: Option<secrecy::SecretString>,
        placement: yelb_core::wire::Placement,
    ) -> AppState {
        let metrics = Metrics::new(&hostname, votes.backend_name(), views.backend_name());
        let faults = crate::faults::Faults::new(&hostname);
        AppState {
            inner: Arc::new(Inner {
                hostname,
                votes,
                views,
                live: Arc::new(LiveHub::default()),
                metrics,
                shutting_down: AtomicBool::new(false),
                stop: CancellationToken::new(),
                heartbeat,
                served: AtomicU64::new(0),
                streams: yelb_service::StreamSlots::new(limits.max_streams, limits.max_streams_per_client),
                trusted_proxies: limits.trusted_proxies.clone(),
                admin_failures: yelb_service::FailureThrottle::new(
                    crate::routes::admin::FAILURE_BURST,
                    crate::routes::admin::FAILURES_PER_SEC,
                    crate::routes::admin::OVERALL_FAILURES_PER_SEC,
                ),
                faults,
                admin_token,
                placement,
                backends: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// The stores' health, checked at most once a second (every screen's
    /// spread read would otherwise ping Postgres and Redis).
    pub async fn backends(&self) -> yelb_core::wire::Backends {
        let mut cached = self.inner.backends.lock().await;
        if let Some((at, backends)) = *cached
            && at.elapsed() < Duration::from_secs(1)
        {
            return backends;
        }
        let (postgres, redis) = tokio::join!(self.votes().health(), self.views().health());
        let backends = yelb_core::wire::Backends { postgres, redis };
        *cached = Some((std::time::Instant::now(), backends));
        backends
    }

    /// The name this replica reports.
    pub fn hostname(&self) -> &str {
        &self.inner.hostname
    }

    /// The vote store.
    pub fn votes(&self) -> &VoteStore {
        &self.inner.votes
    }

    /// The page-view counter.
    pub fn views(&self) -> &ViewStore {
        &self.inner.views
    }

    /// The live hub.
    pub fn live(&self) -> &Arc<LiveHub> {
        &self.inner.live
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Cancelled when the server stops: ends event streams and background tasks.
    pub fn stop_token(&self) -> &CancellationToken {
        &self.inner.stop
    }

    /// The heartbeat interval of idle event streams.
    pub fn heartbeat(&self) -> Duration {
        self.inner.heartbeat
    }

    /// What this replica runs and where.
    pub fn placement(&self) -> &yelb_core::wire::Placement {
        &self.inner.placement
    }

    /// The faults in force.
    pub fn faults(&self) -> &crate::faults::Faults {
        &self.inner.faults
    }

    /// Stage control's token, when it is on.
    pub fn admin_token(&self) -> Option<&str> {
        use secrecy::ExposeSecret as _;
        self.inner.admin_token.as_ref().map(|t| t.expose_secret())
    }

    /// Wrong stage tokens per client.
    pub fn admin_failures(&self) -> &yelb_service::FailureThrottle {
        &self.inner.admin_failures
    }

    /// The peers whose `X-Forwarded-For` names the client.
    pub fn trusted_proxies(&self) -> &yelb_service::TrustedProxies {
        &self.inner.trusted_proxies
    }

    /// The cap on open event streams.
    pub fn streams(&self) -> &yelb_service::StreamSlots {
        &self.inner.streams
    }

    /// Counts one `/api` request answered by this replica.
    pub fn count_served(&self) {
        self.inner.served.fetch_add(1, Ordering::Relaxed);
    }

    /// `/api` requests this replica answered since it started.
    pub fn served(&self) -> u64 {
        self.inner.served.load(Ordering::Relaxed)
    }

    /// Whether shutdown has begun (readiness then fails).
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Acquire)
    }

    /// Marks the start of shutdown: `/readyz` fails from now on.
    pub fn begin_shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::Release);
    }

    /// Casts a vote and tells the live hub.
    pub async fn vote(&self, r: yelb_core::Restaurant) -> Result<i64, crate::AppError> {
        let epoch = self.live().epoch();
        let (count, counts) = self.votes().vote(r).await?;
        self.metrics().vote(r);
        self.live().local_change(&LiveState { votes: counts, pageviews: 0, epoch });
        Ok(count)
    }

    /// Casts a vote carrying an idempotency key (counted once however often
    /// it is retried) and tells the live hub when it counted.
    pub async fn vote_once(
        &self,
        key: &yelb_core::api::IdempotencyKey,
        r: yelb_core::Restaurant,
    ) -> Result<crate::store::Cast, crate::AppError> {
        let epoch = self.live().epoch();
        let cast = self.votes().vote_once(key, r).await?;
        if !cast.replayed {
            self.metrics().vote(r);
            self.live().local_change(&LiveState { votes: cast.counts, pageviews: 0, epoch });
        }
        Ok(cast)
    }

    /// Counts a page view and tells the live hub.
    pub async fn count_view(&self) -> Result<i64, crate::AppError> {
        let epoch = self.live().epoch();
        let pageviews = self.views().incr().await?;
        self.live().local_change(&LiveState { pageviews, epoch, ..Default::default() });
        Ok(pageviews)
    }

    /// Best effort: reads the epoch, the counts and the page views and folds
    /// them into the live hub, so what it shows starts from fresh numbers. A
    /// backend that is down is skipped (the hub still carries what others
    /// publish).
    pub async fn refresh_live(&self) {
        if let Some(cache) = self.views().as_redis()
            && let Ok(epoch) = cache.epoch().await
        {
            self.live().merge(&LiveState { epoch, ..Default::default() });
        }
        let _ = self.counts().await;
        let epoch = self.live().epoch();
        if let Ok(pageviews) = self.views().get().await {
            self.live().merge(&LiveState { pageviews, epoch, ..Default::default() });
        }
    }

    /// Reads the counts and tells the live hub what it learned. Returns them
    /// with the epoch they belong to.
    pub async fn counts_in_epoch(&self) -> Result<(yelb_core::VoteCounts, u64), crate::AppError> {
        let epoch = self.live().epoch();
        let counts = self.votes().counts().await?;
        self.live().merge(&LiveState { votes: counts, pageviews: 0, epoch });
        Ok((counts, epoch))
    }

    /// [`AppState::counts_in_epoch`] without the epoch.
    pub async fn counts(&self) -> Result<yelb_core::VoteCounts, crate::AppError> {
        Ok(self.counts_in_epoch().await?.0)
    }

    /// Sets every vote and the page views to zero, on every replica: a new
    /// epoch (from Redis when there is one, so every replica agrees on it),
    /// the stores zeroed, and the new state published, which replaces the
    /// old one on every open page. Returns the new epoch.
    pub async fn reset(&self) -> Result<u64, crate::AppError> {
        let epoch = match self.views().as_redis() {
            Some(cache) => {
                cache.next_epoch(self.live().epoch() + 1).await.map_err(crate::store::StoreError::from)?
            }
            None => self.live().epoch() + 1,
        };
        self.votes().reset().await?;
        self.views().reset().await?;
        self.live().local_change(&LiveState { epoch, ..Default::default() });
        tracing::info!(epoch, "reset: votes and page views are zero");
        Ok(epoch)
    }
}
