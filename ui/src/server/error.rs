//! The UI server's one error type and how each case answers.
//!
//! Answers under `/api` keep the app server's error shape (`ErrorBody`), so a
//! browser sees the same JSON whether the app server refused a request or the
//! UI's server could not reach it. Nothing here answers 500.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use yelb_core::wire::ErrorBody;

/// What can go wrong in the UI's server.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// The app server's name does not resolve, or nothing answers there.
    #[error("the app server at {endpoint} cannot be reached ({why}); retry shortly")]
    Unreachable {
        /// The configured endpoint.
        endpoint: String,
        /// The underlying cause.
        why: String,
    },
    /// The app server took too long to start answering.
    #[error("the app server at {0} did not answer in time")]
    UpstreamTimeout(String),
    /// The app server answered something the UI cannot read.
    #[error("the app server sent an answer the UI cannot read: {0}")]
    BadUpstream(String),
    /// The app server refused a request the UI made for itself.
    #[error("the app server refused the request ({status}): {message}")]
    Refused {
        /// Its status.
        status: u16,
        /// Its message.
        message: String,
    },
    /// The browser's request cannot be forwarded.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A request body larger than any API call needs.
    #[error("the request body is larger than {0} bytes, more than any API call needs")]
    BodyTooLarge(usize),
    /// A method the UI does not forward (`CONNECT`, `TRACE`, inventions).
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    /// The UI already forwards as many event streams as it may.
    #[error("{0}")]
    TooManyStreams(#[from] yelb_service::StreamsFull),
}

impl UiError {
    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            UiError::Unreachable { .. } | UiError::BadUpstream(_) => StatusCode::BAD_GATEWAY,
            UiError::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            UiError::Refused { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            UiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            UiError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            UiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            UiError::TooManyStreams(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

static LOG_GATE: yelb_service::LogGate = yelb_service::LogGate::new(std::time::Duration::from_secs(5));

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let status = self.status();
        // One line per outage, not one per request.
        if status.is_server_error()
            && let Some(suppressed) = LOG_GATE.open()
        {
            tracing::warn!(error = %self, suppressed, "answering {status} (similar lines are held back for 5 s)");
        }
        let body = ErrorBody { error: self.to_string(), status: status.as_u16() };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::BAD_GATEWAY || status == StatusCode::SERVICE_UNAVAILABLE {
            // Browsers and scripts may retry; the app server is usually just starting.
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
