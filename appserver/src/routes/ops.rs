//! Operations endpoints: liveness, readiness, metrics, the OpenAPI document
//! and a small index at `/`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use serde::Serialize;

use crate::AppState;
use crate::store::BackendHealth;

/// The OpenAPI 3.1 description of both APIs.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// `GET /healthz`: the process is alive and serving HTTP. Checks no backend,
/// so an orchestrator never restarts us for a database outage. Fails only
/// while an injected fault says so (`unhealthy`).
pub async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    if state.faults().unhealthy() {
        let body = serde_json::json!({ "status": "unhealthy", "reason": "injected fault" });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body));
    }
    (StatusCode::OK, Json(serde_json::json!({ "status": "ok" })))
}

#[derive(Serialize)]
struct Readiness {
    status: &'static str,
    hostname: String,
    checks: Checks,
    /// Why Postgres is not ready, when the schema could not be created.
    #[serde(skip_serializing_if = "Option::is_none")]
    postgres_error: Option<String>,
}

#[derive(Serialize)]
struct Checks {
    postgres: BackendHealth,
    redis: BackendHealth,
}

/// `GET /readyz`: 200 `ready` when both backends answer, 200 `degraded`
/// when only Redis is missing (votes still work), 503 `not ready` without
/// Postgres, 503 `shutting down` once shutdown has begun, and 503 while an
/// injected fault turns readiness off.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let (postgres, redis) = tokio::join!(state.votes().health(), state.views().health());
    let status = if state.is_shutting_down() {
        "shutting down"
    } else if state.faults().unready() {
        "unready (injected fault)"
    } else if !postgres.is_up() {
        "not ready"
    } else if !redis.is_up() {
        "degraded"
    } else {
        "ready"
    };
    let code = match status {
        "ready" | "degraded" => StatusCode::OK,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    let postgres_error = if postgres.is_up() { None } else { state.votes().problem() };
    let body = Readiness {
        status,
        hostname: state.hostname().to_owned(),
        checks: Checks { postgres, redis },
        postgres_error,
    };
    (code, Json(body))
}

/// `GET /metrics`: Prometheus text exposition.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics().render())
}

/// `GET /api/openapi.json`.
pub async fn openapi() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], OPENAPI)
}

/// `GET /`: what this is and where to look.
pub async fn index(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "name": "yelb-appserver",
        "version": env!("CARGO_PKG_VERSION"),
        "hostname": state.hostname(),
        "links": {
            "openapi": "/api/openapi.json",
            "votes": "/api/v1/votes",
            "events": "/api/v1/events",
            "health": "/healthz",
            "ready": "/readyz",
            "metrics": "/metrics",
        }
    }))
}
