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
    #[error("this replica already serves {0} live streams; poll /api/getvotes instead")]
    TooManyStreams(usize),
    /// The vote store cannot answer now.
    #[error(transparent)]
    Db(#[from] yelb_db::DbError),
    /// Redis cannot answer now.
    #[error(transparent)]
    Cache(#[from] yelb_cache::CacheError),
}

impl AppError {
    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::UnknownRestaurant(_) | AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::BadRequest { status, .. } => *status,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::Db(_) | AppError::Cache(_) | AppError::TooManyStreams(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    fn client_message(&self) -> String {
        match self {
            AppError::Db(yelb_db::DbError::NotReady) => {
                "the vote database is not ready yet; try again shortly".into()
            }
            AppError::Db(_) => "the vote database is unavailable; try again shortly".into(),
            AppError::Cache(_) => "the page-view counter (Redis) is unavailable; votes still work".into(),
            other => other.to_string(),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, "backend unavailable");
        }
        let body = ErrorBody { error: self.client_message(), status: status.as_u16() };
        (status, Json(body)).into_response()
    }
}

impl From<axum::extract::rejection::JsonRejection> for AppError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        AppError::BadRequest { status: rejection.status(), message: rejection.body_text() }
    }
}
