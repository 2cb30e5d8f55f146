//! The original Yelb API, drop-in: the same paths, bodies and content types,
//! so the original UI and scripts written for it work unchanged.
//!
//! Two of the original's faults are fixed on purpose: `HEAD` on a vote path
//! does not vote, and a vote's count is read inside its own write (so it is
//! exactly this vote's count).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use yelb_core::Restaurant;
use yelb_core::wire::{LegacyStats, LegacyVote, legacy_votes};

use crate::{AppError, AppState};

/// `GET /api/getvotes`: all four counts, in the original order.
pub async fn getvotes(State(state): State<AppState>) -> Result<Json<Vec<LegacyVote>>, AppError> {
    Ok(Json(legacy_votes(&state.counts().await?)))
}

/// `GET /api/getstats`: counts a page view, returns it with the hostname.
pub async fn getstats(State(state): State<AppState>) -> Result<Json<LegacyStats>, AppError> {
    let pageviews = state.count_view().await?;
    Ok(Json(LegacyStats { hostname: state.hostname().to_owned(), pageviews }))
}

/// `GET /api/pageviews`: counts a page view, returns the bare number.
pub async fn pageviews(State(state): State<AppState>) -> Result<Json<i64>, AppError> {
    Ok(Json(state.count_view().await?))
}

/// `GET /api/hostname`: the bare hostname, unquoted, labelled JSON as the original did.
pub async fn hostname(State(state): State<AppState>) -> Response {
    let mut response = state.hostname().to_owned().into_response();
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `GET /api/{restaurant}`: casts one vote, returns the bare count after it.
pub async fn vote(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<i64>, AppError> {
    let restaurant: Restaurant = name.parse()?;
    Ok(Json(state.vote(restaurant).await?))
}

/// `HEAD /api/{restaurant}`: the headers a vote would have, without voting.
pub async fn vote_head(Path(name): Path<String>) -> Result<Response, AppError> {
    let _: Restaurant = name.parse()?;
    let mut response = ().into_response();
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}
