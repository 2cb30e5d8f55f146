//! The modern API under `/api/v1`: votes are `POST`, reads are JSON objects,
//! and `/api/v1/events` streams live updates. Described in `openapi.json`.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use tokio_stream::wrappers::WatchStream;
use yelb_core::Restaurant;
use yelb_core::api::{self, BadIdempotencyKey, IdempotencyKey};
use yelb_core::wire::{ReplicasBody, StatsBody, VoteReceipt, VoteRequest, VotesBody};

use crate::{AppError, AppState};

/// The least time between two events on one stream. The first change after a
/// quiet spell goes out at once; changes inside the window are folded into
/// the next event (the `watch` channel keeps only the newest state). This
/// caps what a burst of votes costs per phone at 20 events a second, well
/// inside the 250 ms a viewer should wait.
pub const MIN_EVENT_INTERVAL: Duration = Duration::from_millis(50);
/// The shortest interval a client may ask for (`?interval_ms=`): the UI's
/// fan-out, one subscriber for thousands of screens that coalesces for
/// them itself, asks for this to keep its own delay small.
pub const FLOOR_EVENT_INTERVAL: Duration = Duration::from_millis(10);

/// The event interval `?interval_ms=N` asks for (clamped to
/// [`FLOOR_EVENT_INTERVAL`]..=1 s), or [`MIN_EVENT_INTERVAL`].
fn event_interval(query: Option<&str>) -> Result<Duration, AppError> {
    let asked =
        query.into_iter().flat_map(|q| q.split('&')).find_map(|pair| pair.strip_prefix("interval_ms="));
    let Some(asked) = asked else { return Ok(MIN_EVENT_INTERVAL) };
    let ms: u64 = asked.parse().map_err(|_| AppError::BadRequest {
        status: StatusCode::BAD_REQUEST,
        message: format!(
            "interval_ms must be a whole number of milliseconds, not {:?}",
            asked.chars().take(40).collect::<String>()
        ),
    })?;
    Ok(Duration::from_millis(ms).clamp(FLOOR_EVENT_INTERVAL, Duration::from_secs(1)))
}

/// `GET /api/v1/votes`.
pub async fn votes(State(state): State<AppState>) -> Result<Json<VotesBody>, AppError> {
    let (votes, epoch) = state.counts_in_epoch().await?;
    Ok(Json(VotesBody { total: votes.total(), votes, hostname: state.hostname().to_owned(), epoch }))
}

/// The vote's `Idempotency-Key`, if it carries one.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, AppError> {
    let Some(value) = headers.get(api::IDEMPOTENCY_KEY) else { return Ok(None) };
    let bad = |e: &dyn std::fmt::Display| AppError::BadRequest {
        status: StatusCode::BAD_REQUEST,
        message: e.to_string(),
    };
    let text = value.to_str().map_err(|_| bad(&BadIdempotencyKey))?;
    text.parse().map(Some).map_err(|e| bad(&e))
}

/// Casts the vote (once per key, when there is one) and answers the receipt;
/// a repeat of a key says so in `Idempotency-Replayed: true`.
async fn receipt(
    state: &AppState,
    restaurant: Restaurant,
    headers: &HeaderMap,
) -> Result<Response, AppError> {
    let (count, replayed) = match idempotency_key(headers)? {
        Some(key) => {
            let cast = state.vote_once(&key, restaurant).await?;
            (cast.count, cast.replayed)
        }
        None => (state.vote(restaurant).await?, false),
    };
    let body = Json(VoteReceipt { restaurant, count, hostname: state.hostname().to_owned() });
    Ok(if replayed {
        ([(HeaderName::from_static(api::IDEMPOTENCY_REPLAYED), "true")], body).into_response()
    } else {
        body.into_response()
    })
}

/// `POST /api/v1/votes` with `{"restaurant": "ihop"}`.
pub async fn vote_body(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<VoteRequest>, JsonRejection>,
) -> Result<Response, AppError> {
    let Json(request) = body?;
    receipt(&state, request.restaurant, &headers).await
}

/// `POST /api/v1/votes/{restaurant}`.
pub async fn vote_path(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    receipt(&state, name.parse()?, &headers).await
}

/// `GET /api/v1/stats`: the page-view total, without counting a view.
pub async fn stats(State(state): State<AppState>) -> Result<Json<StatsBody>, AppError> {
    let pageviews = state.views().get().await?;
    Ok(Json(StatsBody { hostname: state.hostname().to_owned(), pageviews }))
}

/// `POST /api/v1/pageviews`: counts a page view.
pub async fn count_view(State(state): State<AppState>) -> Result<Json<StatsBody>, AppError> {
    let pageviews = state.count_view().await?;
    Ok(Json(StatsBody { hostname: state.hostname().to_owned(), pageviews }))
}

/// `GET /api/v1/events`: a `state` event with the newest [`LiveState`] now
/// and after every change, from any replica, at most one per
/// [`MIN_EVENT_INTERVAL`] (or `?interval_ms=`); a heartbeat comment when idle.
/// At most `YELB_MAX_STREAMS` are open at once; one more gets 503, and the
/// page polls instead.
pub async fn events(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    peer: Option<axum::Extension<yelb_service::Peer>>,
    headers: axum::http::HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, AppError> {
    let interval = event_interval(query.as_deref())?;
    let client = yelb_service::client_of(peer.map(|p| p.0), &headers, state.trusted_proxies());
    let slot = state.streams().try_open(client)?;
    state.refresh_live().await;
    let gauge = state.metrics().live_clients().clone();
    gauge.inc();
    let guard = GaugeGuard(gauge);
    let stop = state.stop_token().clone();
    let throttled = tokio_stream::StreamExt::throttle(WatchStream::new(state.live().subscribe()), interval);
    let stream = throttled
        .map(move |live| {
            let _ = (&guard, &slot); // live as long as the stream
            Ok(Event::default().event("state").json_data(live).unwrap_or_default())
        })
        .take_until(async move { stop.cancelled().await });
    // A heartbeat comment on idle streams keeps proxies from closing them and
    // lets clients notice a dead connection.
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(state.heartbeat())))
}

/// `GET /api/v1/replicas`: every app server seen in the last minute, with
/// the `/api` requests it answered (cluster-wide through Redis; just this
/// replica in embedded mode). Figures lag by up to a second.
pub async fn replicas(State(state): State<AppState>) -> Result<Json<ReplicasBody>, AppError> {
    let mut replicas = crate::replicas::list(&state).await?;
    replicas.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    let faults = state.faults().in_force();
    let backends = Some(state.backends().await);
    Ok(Json(ReplicasBody { hostname: state.hostname().to_owned(), replicas, faults, backends }))
}

struct GaugeGuard(prometheus_client::metrics::gauge::Gauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
