//! The HTTP surface: [`app`] builds the router, [`service`] wraps it in what
//! must run before routing (collapsing `//api` to `/api`).
//!
//! - [`legacy`]: the original API.
//! - [`v1`]: the modern API and live events.
//! - [`ops`]: health, readiness, metrics, OpenAPI, index.
//! - [`admin`]: stage control (reset, faults), with `YELB_ADMIN_TOKEN` only.
//!   With it on, faults apply to the data routes (the two APIs, not the
//!   probes, metrics, OpenAPI or admin): [`crate::faults::FaultLayer`] is
//!   the innermost layer of [`app`], inside metrics, CORS and `X-Served-By`.
//!
//! Every answer carries `X-Served-By: <hostname>` and the original's three
//! CORS headers; every `OPTIONS` is answered as a CORS preflight; unknown
//! paths and methods get JSON errors.

use axum::extract::Request;
use axum::http::header::{ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS};
use axum::http::{HeaderName, HeaderValue, Method, Uri};
use axum::routing::{any, get, post};
use axum::{Router, middleware};
use tower_http::cors::{AllowHeaders, AllowMethods, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnFailure, DefaultOnRequest, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::{AppError, AppState};

pub mod admin;
pub mod legacy;
pub mod ops;
pub mod v1;

/// The header that names the replica on every answer.
pub const SERVED_BY: HeaderName = HeaderName::from_static("x-served-by");

/// The original's `Access-Control-Allow-Headers`.
const CORS_HEADERS: &str = "Authorization,Accepts,Content-Type,X-CSRF-Token,X-Requested-With";
/// The original's `Access-Control-Allow-Methods`.
const CORS_METHODS: &str = "GET,POST,PUT,DELETE,OPTIONS";

/// The router, with every route and layer. Pure: no I/O until served.
pub fn app(state: AppState) -> Router {
    let served_by =
        HeaderValue::from_str(state.hostname()).unwrap_or_else(|_| HeaderValue::from_static("unknown"));
    let cors = CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods(AllowMethods::list([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ]))
        .allow_headers(AllowHeaders::list(
            CORS_HEADERS
                .split(',')
                .map(|h| HeaderName::from_bytes(h.as_bytes()).expect("valid header names")),
        ))
        // A page on another origin (the original's UI_ENV=dev) may read who answered.
        .expose_headers([SERVED_BY]);
    // The CORS layer answers preflights; the two overriding layers then put
    // the original's exact header strings on every answer, preflight or not.
    let data = Router::new()
        .route("/api/getvotes", get(legacy::getvotes))
        .route("/api/getstats", get(legacy::getstats))
        .route("/api/pageviews", get(legacy::pageviews))
        .route("/api/hostname", get(legacy::hostname))
        .route("/api/{restaurant}", get(legacy::vote).head(legacy::vote_head))
        .route("/api/v1/votes", get(v1::votes).post(v1::vote_body))
        .route("/api/v1/votes/{restaurant}", post(v1::vote_path))
        .route("/api/v1/stats", get(v1::stats))
        .route("/api/v1/pageviews", post(v1::count_view))
        .route("/api/v1/events", get(v1::events))
        .route("/api/v1/replicas", get(v1::replicas));
    let stage_control = state.admin_token().is_some();
    let (data, admin) = if stage_control {
        let admin = Router::new()
            .route("/api/v1/admin/reset", post(admin::reset))
            .route(
                "/api/v1/admin/faults",
                get(admin::faults).put(admin::set_fault).delete(admin::clear_faults),
            )
            .route_layer(middleware::from_fn_with_state(state.clone(), admin::require_token));
        (data, admin)
    } else {
        let off = Router::new()
            .route("/api/v1/admin/reset", any(admin::disabled))
            .route("/api/v1/admin/faults", any(admin::disabled));
        (data, off)
    };
    let router = Router::new()
        .route("/", get(ops::index))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/api/openapi.json", get(ops::openapi))
        .merge(data)
        .merge(admin)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Innermost, so an injected answer is attributed like any other:
        // counted by route and status, with CORS and `X-Served-By`.
        .layer(crate::faults::FaultLayer::new(state.clone()))
        .layer(middleware::from_fn_with_state(state.clone(), crate::metrics::track))
        .layer(cors)
        .layer(SetResponseHeaderLayer::overriding(
            ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(CORS_HEADERS),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(CORS_METHODS),
        ))
        .layer(SetResponseHeaderLayer::overriding(SERVED_BY, served_by));
    // Access log, off by default: RUST_LOG=info,tower_http=debug shows one
    // line per request. Only added when that level is enabled, so the hot
    // path pays nothing for it otherwise (a disabled layer still builds
    // spans). Failures log at DEBUG too: a 503 during an outage is already
    // logged once by `AppError`.
    let router = if tracing::enabled!(target: "tower_http::trace", Level::DEBUG) {
        router.layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::DEBUG))
                .on_request(DefaultOnRequest::new().level(Level::DEBUG))
                .on_response(DefaultOnResponse::new().level(Level::DEBUG))
                .on_failure(DefaultOnFailure::new().level(Level::DEBUG)),
        )
    } else {
        router
    };
    router.with_state(state)
}

/// [`app`] behind path normalisation, ready for `axum::serve`.
pub fn service(
    state: AppState,
) -> impl tower::Service<
    Request,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    tower::ServiceBuilder::new().map_request(collapse_slashes).service(app(state))
}

/// The original UI asks for `//api/getvotes`: treat runs of `/` as one.
fn collapse_slashes(mut request: Request) -> Request {
    let path = request.uri().path();
    if !path.contains("//") {
        return request;
    }
    let mut collapsed = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && collapsed.ends_with('/')) {
            collapsed.push(c);
        }
    }
    if let Some(q) = request.uri().query() {
        collapsed.push('?');
        collapsed.push_str(q);
    }
    let mut parts = request.uri().clone().into_parts();
    if let Ok(pq) = collapsed.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    request
}

async fn not_found(uri: Uri) -> AppError {
    AppError::NotFound(uri.path().chars().take(200).collect())
}

async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}
