//! Stage control under `/api/v1/admin`, for the speaker: reset the votes
//! and page views everywhere, and inject faults ([`crate::faults`]).
//!
//! Only with `YELB_ADMIN_TOKEN` set; every request must then carry
//! `Authorization: Bearer <token>` (compared in constant time), or it gets
//! 401. Without the token the routes answer 404 and say how to turn them on.
//!
//! Guessing is throttled ([`yelb_service::FailureThrottle`]): a client
//! (its address, or the one its trusted proxy names) may fail
//! [`FAILURE_BURST`] times, then [`FAILURES_PER_SEC`] times a second; past
//! that every attempt gets 429 before the token is compared. Each failure is
//! logged with the client's address (at most one line a second, with a
//! count of those held back).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use yelb_core::wire::{FaultSpec, FaultsBody, ResetReceipt};

use crate::{AppError, AppState};

/// Wrong tokens one client may send in a row.
pub const FAILURE_BURST: u32 = 10;
/// Wrong tokens a second one client may send after its burst.
pub const FAILURES_PER_SEC: f64 = 0.5;
/// Wrong tokens a second from all clients together past which a
/// distributed guess is reported.
pub const OVERALL_FAILURES_PER_SEC: f64 = 20.0;

static FAILURE_LOG: yelb_service::LogGate = yelb_service::LogGate::new(std::time::Duration::from_secs(1));

/// Lets a request through only with the right bearer token.
pub async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let client = yelb_service::client_of(
        request.extensions().get::<yelb_service::Peer>().copied(),
        request.headers(),
        state.trusted_proxies(),
    );
    let given = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    // No token at all guesses nothing: a plain 401, not counted. A token
    // from a client out of tries is refused before it is compared.
    if state.admin_token().is_some()
        && given.is_some()
        && let Err(wait) = state.admin_failures().check(client)
    {
        return AppError::TooManyAttempts(wait).into_response();
    }
    match (state.admin_token(), given) {
        (Some(token), Some(given))
            if constant_time_eq::constant_time_eq(token.as_bytes(), given.as_bytes()) =>
        {
            next.run(request).await
        }
        (Some(_), None) => unauthorized(),
        (Some(_), Some(_)) => {
            let failure = state.admin_failures().fail(client);
            state.metrics().admin_failure();
            if let Some(suppressed) = FAILURE_LOG.open() {
                tracing::warn!(
                    %client,
                    left = failure.client_left,
                    distributed = failure.overall_exceeded,
                    suppressed,
                    "wrong stage token"
                );
            }
            unauthorized()
        }
        (None, _) => AppError::AdminDisabled.into_response(),
    }
}

/// 401 with the challenge.
fn unauthorized() -> Response {
    let mut response = AppError::Unauthorized.into_response();
    response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"yelb-admin\""));
    response
}

/// Every admin path while stage control is off.
pub async fn disabled() -> AppError {
    AppError::AdminDisabled
}

/// `POST /api/v1/admin/reset`.
pub async fn reset(State(state): State<AppState>) -> Result<Json<ResetReceipt>, AppError> {
    let epoch = state.reset().await?;
    Ok(Json(ResetReceipt { epoch, hostname: state.hostname().to_owned() }))
}

fn faults_body(state: &AppState) -> Json<FaultsBody> {
    Json(FaultsBody { hostname: state.hostname().to_owned(), faults: state.faults().in_force() })
}

/// `GET /api/v1/admin/faults`: every fault in force, every scope.
pub async fn faults(State(state): State<AppState>) -> Json<FaultsBody> {
    faults_body(&state)
}

/// `PUT /api/v1/admin/faults`: sets one scope's fault (a spec that asks for
/// nothing clears it).
pub async fn set_fault(
    State(state): State<AppState>,
    spec: Result<Json<FaultSpec>, JsonRejection>,
) -> Result<Json<FaultsBody>, AppError> {
    let Json(spec) = spec?;
    crate::faults::validate(&spec)
        .map_err(|message| AppError::BadRequest { status: StatusCode::UNPROCESSABLE_ENTITY, message })?;
    state.set_fault(spec).await?;
    Ok(faults_body(&state))
}

/// `DELETE /api/v1/admin/faults`: clears every fault.
pub async fn clear_faults(State(state): State<AppState>) -> Result<Json<FaultsBody>, AppError> {
    state.clear_faults().await?;
    Ok(faults_body(&state))
}
