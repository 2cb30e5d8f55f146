//! The app server's one error type and how it becomes an HTTP answer.
//!
//! Policy: 4xx answers say exactly what was wrong with the request. 5xx
//! answers are always 503 ("try again"): every server-side failure here is a
//! backend that is down or not ready, never a bug we could describe to the
//! client; the details go to the log, the client gets a short, safe message.
//! No handler answers 500.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use yelb_core::UnknownRestaurant;
use yelb_core::wire::ErrorBody;

use crate::store::StoreError;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The path names a restaurant that does not exist.
    #[error(transparent)]
    UnknownRestaurant(#[from] UnknownRestaurant),
    /// The body or another part of the request is malformed.
    #[error("{message}")]
    BadRequest {
        /// 400, 413, 415 or 422.
        status: StatusCode,
        /// What was wrong.
        message: String,
    },
    /// No route answers this path.
    #[error("no such route: {0}")]
    NotFound(String),
    /// The route exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// This replica already serves as many event streams as it may.
    #[error("{0} (/api/getvotes)")]
    TooManyStreams(#[from] yelb_service::StreamsFull),
    /// A store cannot answer now.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An admin request without the right bearer token.
    #[error("stage control needs Authorization: Bearer <YELB_ADMIN_TOKEN>")]
    Unauthorized,
    /// This client failed the token too often; it may try again after this long.
    #[error("too many wrong stage tokens from your address; try again in {} s", .0.as_secs().max(1))]
    TooManyAttempts(std::time::Duration),
    /// An admin request while stage control is off.
    #[error("stage control is off on this replica: set YELB_ADMIN_TOKEN to turn on /api/v1/admin")]
    AdminDisabled,
    /// An error injected by a fault (the error rate, 0 to 1).
    #[error("injected fault: this replica fails {:.0}% of requests for now", .0 * 100.0)]
    Injected(f64),
}

impl AppError {
    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::UnknownRestaurant(_) | AppError::NotFound(_) | AppError::AdminDisabled => {
                StatusCode::NOT_FOUND
            }
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::TooManyAttempts(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::BadRequest { status, .. } => *status,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            // The key names an earlier vote that conflicts with this one.
            AppError::Store(StoreError::Db(yelb_db::DbError::KeyReused { .. })) => StatusCode::CONFLICT,
            AppError::Store(_) | AppError::TooManyStreams(_) | AppError::Injected(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    fn client_message(&self) -> String {
        match self {
            AppError::Store(StoreError::Db(yelb_db::DbError::NotReady)) => {
                "the vote database is not ready yet; try again shortly".into()
            }
            AppError::Store(StoreError::Db(e @ yelb_db::DbError::KeyReused { .. })) => e.to_string(),
            AppError::Store(StoreError::Db(yelb_db::DbError::Busy)) => {
                "the vote database is busy; try again shortly".into()
            }
            AppError::Store(StoreError::Db(_)) => {
                "the vote database is unavailable; try again shortly".into()
            }
            AppError::Store(StoreError::Cache(_)) => {
                "the page-view counter (Redis) is unavailable; votes still work".into()
            }
            other => other.to_string(),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() && !matches!(self, AppError::Injected(_)) {
            // One line per outage, not one per request: an outage under
            // load would otherwise write thousands of lines a second.
            if let Some(suppressed) = LOG_GATE.open() {
                tracing::warn!(error = %self, suppressed, "answering 503 (similar lines are held back for 5 s)");
            }
        }
        let retry_after = match &self {
            AppError::TooManyAttempts(wait) => Some(wait.as_secs().max(1)),
            _ => None,
        };
        let body = ErrorBody { error: self.client_message(), status: status.as_u16() };
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

/// Lets one warning through every five seconds and counts the rest.
static LOG_GATE: yelb_service::LogGate = yelb_service::LogGate::new(std::time::Duration::from_secs(5));

impl From<axum::extract::rejection::JsonRejection> for AppError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        AppError::BadRequest { status: rejection.status(), message: rejection.body_text() }
    }
}
