//! Stage control under `/api/v1/admin`, for the speaker: reset the votes
//! and page views everywhere, and inject faults ([`crate::faults`]).
//!
//! Only with `YELB_ADMIN_TOKEN` set; every request must then carry
//! `Authorization: Bearer <token>` (compared in constant time), or it gets
//! 401. Without the token the routes answer 404 and say how to turn them on.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use yelb_core::wire::{FaultSpec, FaultsBody, ResetReceipt};

use crate::{AppError, AppState};

/// Lets a request through only with the right bearer token.
pub async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match (state.admin_token(), given) {
        (Some(token), Some(given))
            if constant_time_eq::constant_time_eq(token.as_bytes(), given.as_bytes()) =>
        {
            next.run(request).await
        }
        (Some(_), _) => {
            let mut response = AppError::Unauthorized.into_response();
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"yelb-admin\""));
            response
        }
        (None, _) => AppError::AdminDisabled.into_response(),
    }
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
