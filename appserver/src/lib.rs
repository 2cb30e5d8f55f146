//! Yelb's app server as a library; `main.rs` only reads config and calls it.
//!
//! - [`config`]: every variable, typed, read once.
//! - [`Application`]: binds the listener and starts the background work
//!   ([`Application::build`]), then serves until a shutdown signal
//!   ([`Application::run_until`]). Tests bind port 0 and read the port back.
//! - [`run`]: the server as a function of a bound listener, a state and a
//!   shutdown future.
//! - [`routes`]: the HTTP surface; [`routes::app`] is the pure router.
//! - [`state`], [`store`], [`live`], [`replicas`], [`metrics`], [`error`]:
//!   shared state, the two stores, live events, the per-replica request
//!   counts, Prometheus metrics, the error type.
//!
//! The HTTP loop itself (timeouts, connection cap, draining) is
//! `yelb_service::serve`, shared with the UI's server.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use secrecy::ExposeSecret;
use tokio::net::TcpListener;

pub mod config;
pub mod error;
pub mod faults;
pub mod live;
pub mod metrics;
pub mod replicas;
pub mod routes;
pub mod state;
pub mod store;

pub use config::Config;
pub use error::AppError;
pub use state::AppState;
pub use yelb_service::{healthcheck, shutdown_signal};

use config::{ViewBackend, VoteBackend};
use store::{ViewStore, VoteStore};

/// A bound, not yet serving app server.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    shutdown_delay: Duration,
    shutdown_timeout: Duration,
    limits: yelb_service::Limits,
}

impl Application {
    /// Binds the listener and builds the state. Connects to nothing before
    /// returning: Postgres and Redis are reached in the background, with
    /// backoff, so the server answers `/healthz` at once whatever is up.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        use anyhow::Context as _;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {} (YELB_LISTEN_ADDR, YELB_PORT)", config.listen))?;
        let state = build_state(&config)?;
        Ok(Application {
            listener,
            state,
            shutdown_delay: config.shutdown_delay,
            shutdown_timeout: config.shutdown_timeout,
            limits: config.limits.clone(),
        })
    }

    /// The address actually bound (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// The shared state (tests look inside).
    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Serves until `shutdown` completes, then shuts down gracefully.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let timing = ShutdownTiming { delay: self.shutdown_delay, timeout: self.shutdown_timeout };
        run(self.listener, self.state, shutdown, timing, self.limits).await
    }
}

/// How shutdown unfolds once its signal arrives.
#[derive(Debug, Clone, Copy)]
pub struct ShutdownTiming {
    /// Readiness fails for this long while requests are still served.
    pub delay: Duration,
    /// Then in-flight requests get this long before we return anyway.
    pub timeout: Duration,
}

/// Builds the stores from the configuration and starts the background work
/// (schema creation with backoff, the live bridge). Needs a Tokio runtime.
pub fn build_state(config: &Config) -> anyhow::Result<AppState> {
    let votes = match &config.votes {
        VoteBackend::Memory => VoteStore::memory(),
        VoteBackend::Postgres { config: pg, pool_size } => {
            let options = yelb_db::DbOptions { pool_size: *pool_size, ..Default::default() };
            VoteStore::postgres(yelb_db::Db::new((**pg).clone(), &options)?)
        }
    };
    let views = match &config.views {
        ViewBackend::Memory => ViewStore::memory(),
        ViewBackend::Redis { url, key_prefix } => {
            let options = yelb_cache::CacheOptions { key_prefix: key_prefix.clone(), ..Default::default() };
            ViewStore::redis(yelb_cache::Cache::new(url.expose_secret(), &options)?)
        }
    };
    let state = AppState::new(
        config.hostname.clone(),
        votes,
        views,
        config.events_heartbeat,
        &config.limits,
        config.admin_token.clone(),
        config.placement.clone(),
    );
    tracing::info!(hostname = %config.hostname, "{}", config.describe_backends());
    start_background(&state);
    Ok(state)
}

fn start_background(state: &AppState) {
    if state.admin_token().is_some() {
        faults::spawn_watcher(state.clone());
    }
    let stop = state.stop_token().clone();
    if let Some(db) = state.votes().as_postgres() {
        let (db, state2) = (db.clone(), state.clone());
        tokio::spawn(async move {
            let backoff = ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(20))
                .with_max_delay(Duration::from_secs(2))
                .without_max_times();
            let connect = || async { db.ensure_schema().await };
            // Said once per distinct reason, not every two seconds for ever.
            let last = std::sync::Mutex::new(String::new());
            let attempt = connect.retry(backoff).notify(|e, wait| {
                let why = e.to_string();
                let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
                if *last != why {
                    tracing::warn!(error = %why, ?wait, "Postgres not ready; retrying (said again only if the reason changes)");
                    *last = why;
                }
            });
            tokio::select! {
                result = attempt => {
                    if result.is_ok() {
                        tracing::info!("Postgres ready: schema in place");
                        state2.refresh_live().await;
                    }
                }
                () = stop.cancelled() => {}
            }
        });
    }
    if let Some(db) = state.votes().as_postgres() {
        // Idempotency keys are kept a quarter of an hour (a retry comes in
        // seconds; a flood of fresh keys must not pile up for a day); prune
        // every minute from every replica (cheap at that size, and harmless
        // when another replica just ran it).
        let (db, stop) = (db.clone(), state.stop_token().clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    () = stop.cancelled() => break,
                }
                match db.prune_vote_keys(yelb_db::KEY_RETENTION_MINUTES).await {
                    Ok(0) | Err(yelb_db::DbError::NotReady) => {}
                    Ok(n) => tracing::info!(keys = n, "forgot idempotency keys older than 15 minutes"),
                    Err(e) => tracing::debug!(error = %e, "could not prune idempotency keys"),
                }
            }
        });
    }
    if let Some(cache) = state.views().as_redis() {
        let catch_up: live::CatchUp = {
            let state = state.clone();
            Arc::new(move || {
                let state = state.clone();
                Box::pin(async move { state.refresh_live().await })
            })
        };
        live::spawn_bridge(state.live().clone(), cache.clone(), state.stop_token().clone(), catch_up);
        replicas::spawn_reporter(state.clone(), cache.clone());
    }
}

/// Serves `state` on `listener` within `limits` until `shutdown` completes.
/// Then: readiness fails at once; after `timing.delay` the listener closes
/// and event streams end; in-flight requests get `timing.timeout` to finish.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
    timing: ShutdownTiming,
    limits: yelb_service::Limits,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!("listening on http://{addr}");
    let graceful = {
        let state = state.clone();
        async move {
            shutdown.await;
            tracing::info!(delay = ?timing.delay, "shutting down: readiness now fails");
            state.begin_shutdown();
            tokio::time::sleep(timing.delay).await;
            tracing::info!("shutting down: closing the listener and event streams");
            state.stop_token().cancel();
        }
    };
    let result =
        yelb_service::serve(listener, routes::service(state), limits, graceful, timing.timeout).await;
    tracing::info!("stopped");
    result
}
