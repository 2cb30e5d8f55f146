//! Runtime faults for the stage, set through `PUT /api/v1/admin/faults`.
//!
//! - [`Faults`]: the faults in force on this replica, and what they do:
//!   [`FaultLayer`] (in front of the data routes) adds latency or answers
//!   503; `/readyz` and `/healthz` ask [`Faults::unready`] and
//!   [`Faults::unhealthy`]; a crash or a CPU burn starts when a fault asking
//!   for it is applied.
//! - Where they are kept: with Redis, in the hash the cache crate names
//!   (scope → fault), and every replica reloads them when the control channel
//!   says so, and every few seconds in case it missed a message
//!   ([`spawn_watcher`]). In the embedded mode, in this process.
//!
//! Every fault has a time to live and expires by itself: [`Faults::effect`]
//! ignores expired ones, and [`spawn_watcher`] drops them every second, so
//! the no-fault fast path is one atomic load again.
//!
//! A scope is `all` or one replica's hostname. What several faults in force
//! do together: the largest latency and error rate, and any of the switches.
//! A fault may name one restaurant: then only votes for it (by path) get its
//! latency and errors ([`Faults::effect`] takes the vote's restaurant).
//!
//! [`FaultLayer`] sits inside the router's header, CORS and metrics layers
//! (`routes::app`), so an injected 503 or delay carries `X-Served-By` and
//! CORS like any answer, and `/metrics` counts it by route and status.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use yelb_core::wire::{Fault, FaultSpec};

use crate::{AppError, AppState};

/// The scope that names every replica.
pub const ALL: &str = "all";
/// The longest time to live.
pub const MAX_TTL_SECS: u64 = 3600;
/// Faults in force at once (one per scope): enough for every replica of a
/// big demo, few enough that the list stays a few KiB for the console and
/// every screen's live stream.
pub const MAX_FAULTS: usize = 32;
/// The largest latency (and jitter).
pub const MAX_LATENCY_MS: u64 = 30_000;
/// The exit status of an injected crash (EX_SOFTWARE).
pub const CRASH_STATUS: i32 = 70;
/// How often every replica reloads the faults from Redis anyway.
const RELOAD_EVERY: Duration = Duration::from_secs(5);

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Checks a spec; the message names the field that is wrong.
pub fn validate(spec: &FaultSpec) -> Result<(), String> {
    let scope = &spec.scope;
    if scope.is_empty() || scope.len() > 253 || !scope.chars().all(|c| c.is_ascii_graphic()) {
        return Err("scope: expected \"all\" or a replica's hostname".into());
    }
    if !(1..=MAX_TTL_SECS).contains(&spec.ttl_secs) {
        return Err(format!("ttl_secs: expected 1 to {MAX_TTL_SECS}"));
    }
    if spec.latency_ms > MAX_LATENCY_MS || spec.latency_jitter_ms > MAX_LATENCY_MS {
        return Err(format!("latency_ms, latency_jitter_ms: expected 0 to {MAX_LATENCY_MS}"));
    }
    if !(0.0..=1.0).contains(&spec.error_rate) {
        return Err("error_rate: expected 0 to 1".into());
    }
    if spec.restaurant.is_some() && (spec.unready || spec.unhealthy || spec.crash || spec.cpu_burn) {
        return Err(
            "restaurant: a fault on one option takes only latency_ms, latency_jitter_ms and error_rate"
                .into(),
        );
    }
    Ok(())
}

/// Whether a spec asks for nothing (a PUT of it clears its scope).
pub fn is_empty(spec: &FaultSpec) -> bool {
    spec.latency_ms == 0
        && spec.latency_jitter_ms == 0
        && spec.error_rate == 0.0
        && !spec.unready
        && !spec.unhealthy
        && !spec.crash
        && !spec.cpu_burn
}

/// What the faults in force do to this replica's requests right now.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Effect {
    /// Fixed delay.
    pub latency_ms: u64,
    /// Random extra delay, up to this.
    pub jitter_ms: u64,
    /// Share of requests answered 503.
    pub error_rate: f64,
    /// `/readyz` fails.
    pub unready: bool,
    /// `/healthz` fails.
    pub unhealthy: bool,
}

/// The faults in force on this replica.
pub struct Faults {
    hostname: String,
    started_at_ms: u64,
    /// False when no fault applies to this replica: the fast path.
    any: AtomicBool,
    /// Those whose scope is `all` or this hostname.
    mine: RwLock<Vec<Fault>>,
    /// Every fault in force, every scope (what `GET` lists).
    all: RwLock<Vec<Fault>>,
    /// The embedded mode's store, by scope (unused with Redis).
    local: Mutex<HashMap<String, Fault>>,
    /// Until when (Unix ms) a core spins; 0 when none.
    burn_until: Arc<AtomicU64>,
    burning: Arc<AtomicBool>,
    crashing: AtomicBool,
}

impl Faults {
    /// No faults, on the replica called `hostname`, started now.
    pub fn new(hostname: &str) -> Faults {
        Faults {
            hostname: hostname.to_owned(),
            started_at_ms: now_ms(),
            any: AtomicBool::new(false),
            mine: RwLock::new(Vec::new()),
            all: RwLock::new(Vec::new()),
            local: Mutex::new(HashMap::new()),
            burn_until: Arc::new(AtomicU64::new(0)),
            burning: Arc::new(AtomicBool::new(false)),
            crashing: AtomicBool::new(false),
        }
    }

    /// Makes `faults` (every scope) the ones in force, dropping expired
    /// ones, and starts the crash or CPU burn they ask of this replica.
    pub fn apply(&self, faults: Vec<Fault>) {
        let now = now_ms();
        let live: Vec<Fault> = faults.into_iter().filter(|f| f.expires_at_ms > now).collect();
        let mine: Vec<Fault> = live.iter().filter(|f| f.spec.applies_to(&self.hostname)).cloned().collect();
        self.burn(mine.iter().filter(|f| f.spec.cpu_burn).map(|f| f.expires_at_ms).max().unwrap_or(0));
        // A crash set before this process started has already happened.
        if mine.iter().any(|f| f.spec.crash && f.set_at_ms >= self.started_at_ms) {
            self.crash();
        }
        self.any.store(!mine.is_empty(), Ordering::Release);
        *self.mine.write().unwrap_or_else(|e| e.into_inner()) = mine;
        *self.all.write().unwrap_or_else(|e| e.into_inner()) = live;
    }

    /// Drops the faults that have expired.
    pub fn expire(&self) {
        if self.all.read().unwrap_or_else(|e| e.into_inner()).is_empty() {
            return;
        }
        let all = self.all.read().unwrap_or_else(|e| e.into_inner()).clone();
        self.apply(all);
    }

    /// What the faults do to this replica now, for a request that votes
    /// for `vote` (by path) or for none; `None` when nothing applies (one
    /// atomic load when no fault is set).
    pub fn effect(&self, vote: Option<yelb_core::Restaurant>) -> Option<Effect> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let now = now_ms();
        let mine = self.mine.read().unwrap_or_else(|e| e.into_inner());
        let mut effect = None::<Effect>;
        let concerns = |f: &Fault| f.spec.restaurant.is_none() || f.spec.restaurant == vote;
        for f in mine.iter().filter(|f| f.expires_at_ms > now && concerns(f)) {
            let e = effect.get_or_insert_with(Effect::default);
            e.latency_ms = e.latency_ms.max(f.spec.latency_ms);
            e.jitter_ms = e.jitter_ms.max(f.spec.latency_jitter_ms);
            e.error_rate = e.error_rate.max(f.spec.error_rate);
            e.unready |= f.spec.unready;
            e.unhealthy |= f.spec.unhealthy;
        }
        effect
    }

    /// Every fault in force, every scope.
    pub fn in_force(&self) -> Vec<Fault> {
        let now = now_ms();
        let mut all: Vec<Fault> = self
            .all
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|f| f.expires_at_ms > now)
            .cloned()
            .collect();
        all.sort_by_key(|f| f.spec.slot());
        all
    }

    /// Whether `/readyz` must fail.
    pub fn unready(&self) -> bool {
        self.effect(None).is_some_and(|e| e.unready)
    }

    /// Whether `/healthz` must fail.
    pub fn unhealthy(&self) -> bool {
        self.effect(None).is_some_and(|e| e.unhealthy)
    }

    /// The embedded mode: stores `fault` under its scope (or clears the
    /// scope) in this process, and applies the result.
    fn set_local(&self, scope: &str, fault: Option<Fault>) {
        let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        match fault {
            Some(f) => local.insert(scope.to_owned(), f),
            None => local.remove(scope),
        };
        self.apply(local.values().cloned().collect());
    }

    /// The embedded mode: clears every scope.
    fn clear_local(&self) {
        self.local.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.apply(Vec::new());
    }

    /// Keeps one thread spinning until `until` (Unix ms); 0 stops it.
    fn burn(&self, until: u64) {
        self.burn_until.store(until, Ordering::Release);
        if until <= now_ms() || self.burning.swap(true, Ordering::AcqRel) {
            return;
        }
        let (until, burning) = (self.burn_until.clone(), self.burning.clone());
        let spawned = std::thread::Builder::new().name("yelb-cpu-burn".into()).spawn(move || {
            tracing::warn!("burning one core: an injected fault");
            while now_ms() < until.load(Ordering::Acquire) {
                for _ in 0..100_000 {
                    std::hint::spin_loop();
                }
            }
            burning.store(false, Ordering::Release);
            tracing::info!("CPU burn over");
        });
        if spawned.is_err() {
            self.burning.store(false, Ordering::Release);
        }
    }

    /// Exits the process shortly (time for the answer that set it to go out).
    fn crash(&self) {
        if self.crashing.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::error!(status = CRASH_STATUS, "crashing on purpose: an injected fault");
        std::thread::spawn(|| {
            std::thread::sleep(Duration::from_millis(200));
            std::process::exit(CRASH_STATUS);
        });
    }
}

impl AppState {
    /// Sets (or, for a spec that asks for nothing, clears) the fault of one
    /// scope, everywhere. Returns every fault in force.
    pub async fn set_fault(&self, spec: FaultSpec) -> Result<Vec<Fault>, AppError> {
        let now = now_ms();
        let scope = spec.slot();
        let in_force = self.faults().in_force();
        if !is_empty(&spec)
            && in_force.len() >= MAX_FAULTS
            && !in_force.iter().any(|f| f.spec.slot() == scope)
        {
            return Err(AppError::BadRequest {
                status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                message: format!("at most {MAX_FAULTS} faults at once; clear one (or all) first"),
            });
        }
        let fault = (!is_empty(&spec)).then(|| Fault {
            expires_at_ms: now + spec.ttl_secs * 1000,
            set_at_ms: now,
            spec,
        });
        match self.views().as_redis() {
            Some(cache) => {
                let json =
                    fault.as_ref().map(|f| serde_json::to_string(f).expect("a fault always serializes"));
                cache.set_fault(&scope, json.as_deref()).await.map_err(crate::store::StoreError::from)?;
                self.reload_faults().await?;
            }
            None => self.faults().set_local(&scope, fault),
        }
        Ok(self.faults().in_force())
    }

    /// Clears every fault, everywhere.
    pub async fn clear_faults(&self) -> Result<(), AppError> {
        match self.views().as_redis() {
            Some(cache) => {
                cache.clear_faults().await.map_err(crate::store::StoreError::from)?;
                self.reload_faults().await?;
            }
            None => self.faults().clear_local(),
        }
        Ok(())
    }

    /// Reads the faults from Redis and applies them (the embedded mode has
    /// nothing to read). Malformed entries are logged and skipped.
    pub async fn reload_faults(&self) -> Result<(), AppError> {
        let Some(cache) = self.views().as_redis() else { return Ok(()) };
        let stored = cache.faults().await.map_err(crate::store::StoreError::from)?;
        let faults = stored
            .into_iter()
            .filter_map(|(scope, json)| match serde_json::from_str::<Fault>(&json) {
                Ok(f) => Some(f),
                Err(e) => {
                    tracing::warn!(%scope, error = %e, "ignoring a malformed fault in Redis");
                    None
                }
            })
            // Redis is shared: whatever is written there, a bounded list.
            .filter(|f| validate(&f.spec).is_ok())
            .take(MAX_FAULTS)
            .collect();
        self.faults().apply(faults);
        Ok(())
    }
}

/// Keeps this replica's faults current: drops expired ones every second and,
/// with Redis, reloads them on every control message and every few seconds.
pub fn spawn_watcher(state: AppState) {
    let stop = state.stop_token().clone();
    let ticker = state.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        let mut reload_at = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = every.tick() => {}
                () = stop.cancelled() => break,
            }
            ticker.faults().expire();
            if tokio::time::Instant::now() >= reload_at {
                let _ = ticker.reload_faults().await;
                reload_at = tokio::time::Instant::now() + RELOAD_EVERY;
            }
        }
    });
    let Some(cache) = state.views().as_redis().cloned() else { return };
    let stop = state.stop_token().clone();
    tokio::spawn(async move {
        let listen = async {
            loop {
                match cache.watch_control().await {
                    Ok(messages) => {
                        let _ = state.reload_faults().await;
                        let mut messages = std::pin::pin!(messages);
                        while messages.next().await.is_some() {
                            let _ = state.reload_faults().await;
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "control channel: subscribing again"),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        };
        tokio::select! {
            () = listen => {}
            () = stop.cancelled() => {}
        }
    });
}

/// Whether faults apply to `path`: the two APIs, not the probes, metrics,
/// the OpenAPI document or stage control itself.
fn is_data_path(path: &str) -> bool {
    path.starts_with("/api/") && !path.starts_with("/api/v1/admin/") && path != "/api/openapi.json"
}

/// The restaurant a request votes for by its path: `GET /api/{r}` (the
/// original) or `POST /api/v1/votes/{r}`.
fn vote_in_path(method: &axum::http::Method, path: &str) -> Option<yelb_core::Restaurant> {
    let name = match *method {
        axum::http::Method::GET => path.strip_prefix("/api/")?,
        axum::http::Method::POST => path.strip_prefix("/api/v1/votes/")?,
        _ => return None,
    };
    name.parse().ok()
}

/// The layer on the router's routes: with a fault in force, a data route's
/// request waits the latency, then gets 503 for the error rate's share.
/// With none, the router is called directly: one atomic load, no boxed
/// future (an `axum::middleware::from_fn` on each route cost about 8% of a
/// request in process; see BENCHMARKS.md).
#[derive(Clone)]
pub struct FaultLayer {
    state: AppState,
}

impl FaultLayer {
    /// The layer for `state`'s faults.
    pub fn new(state: AppState) -> FaultLayer {
        FaultLayer { state }
    }
}

impl<S> tower::Layer<S> for FaultLayer {
    type Service = FaultService<S>;

    fn layer(&self, inner: S) -> FaultService<S> {
        FaultService { inner, state: self.state.clone() }
    }
}

/// The service [`FaultLayer`] wraps a route in.
#[derive(Clone)]
pub struct FaultService<S> {
    inner: S,
    state: AppState,
}

type Faulted = futures_util::future::BoxFuture<'static, Result<Response, std::convert::Infallible>>;

impl<S> tower::Service<Request> for FaultService<S>
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = futures_util::future::Either<S::Future, Faulted>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let path = request.uri().path();
        let effect =
            self.state.faults().effect(vote_in_path(request.method(), path)).filter(|_| is_data_path(path));
        let Some(effect) = effect else {
            return futures_util::future::Either::Left(self.inner.call(request));
        };
        // The service made ready is the one to call; leave a clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        futures_util::future::Either::Right(Box::pin(async move {
            let jitter = if effect.jitter_ms > 0 { fastrand::u64(0..=effect.jitter_ms) } else { 0 };
            let delay = effect.latency_ms + jitter;
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            if effect.error_rate > 0.0 && fastrand::f64() < effect.error_rate {
                let mut response = AppError::Injected(effect.error_rate).into_response();
                response.headers_mut().insert("x-yelb-fault", HeaderValue::from_static("error"));
                return Ok(response);
            }
            inner.call(request).await
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(scope: &str, ttl_ms: u64, spec: FaultSpec) -> Fault {
        let now = now_ms();
        Fault {
            spec: FaultSpec { scope: scope.into(), ttl_secs: 1, ..spec },
            set_at_ms: now,
            expires_at_ms: now + ttl_ms,
        }
    }

    #[test]
    fn faults_for_other_replicas_or_expired_do_nothing_here() {
        let faults = Faults::new("web-1");
        assert_eq!(faults.effect(None), None);
        faults.apply(vec![
            fault("web-2", 60_000, FaultSpec { error_rate: 1.0, ..Default::default() }),
            fault("all", 0, FaultSpec { unready: true, ..Default::default() }),
        ]);
        assert_eq!(faults.effect(None), None);
        assert_eq!(faults.in_force().len(), 1, "the other replica's fault is listed");
    }

    #[test]
    fn faults_in_force_combine_and_expire() {
        let faults = Faults::new("web-1");
        faults.apply(vec![
            fault("all", 60_000, FaultSpec { latency_ms: 100, error_rate: 0.2, ..Default::default() }),
            fault(
                "web-1",
                150,
                FaultSpec { latency_ms: 50, error_rate: 0.5, unready: true, ..Default::default() },
            ),
        ]);
        let e = faults.effect(None).unwrap();
        assert_eq!((e.latency_ms, e.error_rate, e.unready, e.unhealthy), (100, 0.5, true, false));
        std::thread::sleep(Duration::from_millis(200));
        faults.expire();
        let e = faults.effect(None).unwrap();
        assert_eq!((e.latency_ms, e.error_rate, e.unready), (100, 0.2, false));
    }

    #[test]
    fn specs_are_checked_field_by_field() {
        let ok = FaultSpec { scope: "all".into(), ttl_secs: 60, error_rate: 0.5, ..Default::default() };
        assert_eq!(validate(&ok), Ok(()));
        for (bad, field) in [
            (FaultSpec { ttl_secs: 0, ..ok.clone() }, "ttl_secs"),
            (FaultSpec { ttl_secs: 3601, ..ok.clone() }, "ttl_secs"),
            (FaultSpec { error_rate: 1.5, ..ok.clone() }, "error_rate"),
            (FaultSpec { error_rate: f64::NAN, ..ok.clone() }, "error_rate"),
            (FaultSpec { latency_ms: 30_001, ..ok.clone() }, "latency"),
            (FaultSpec { scope: "a b".into(), ..ok.clone() }, "scope"),
            (FaultSpec { scope: String::new(), ..ok.clone() }, "scope"),
        ] {
            assert!(validate(&bad).unwrap_err().starts_with(field), "{bad:?}");
        }
        assert!(is_empty(&FaultSpec { scope: "all".into(), ttl_secs: 5, ..Default::default() }));
        assert!(!is_empty(&ok));
    }
}
