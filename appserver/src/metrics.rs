//! Prometheus metrics: what `/metrics` shows and the middleware that counts.
//!
//! - `yelb_http_requests_total{method,route,status}`: requests answered.
//! - `yelb_http_request_duration_seconds{method,route}`: latency histogram.
//! - `yelb_votes_total{restaurant}`: votes cast through this replica.
//! - `yelb_live_clients`: open event streams on this replica.
//! - `yelb_admin_auth_failures_total`: wrong stage tokens.
//! - `yelb_appserver_info{hostname,version,votes_backend,views_backend}`: 1,
//!   the replica's identity.
//!
//! Routes are labelled by their pattern (`/api/{restaurant}`), never by the
//! raw path, and methods by the nine standard names or `other`, so neither a
//! scan of random URLs nor invented methods can blow up the label set.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use yelb_core::Restaurant;

use crate::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    #[prometheus(flatten)]
    route: RouteLabels,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

/// The method as a label: one of the standard methods, or `other`. A client
/// chooses the method's text, so using it raw would let one request with a
/// 380,000-character method add a label set that size to `/metrics`.
fn method_label(method: &axum::http::Method) -> &'static str {
    const KNOWN: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT"];
    KNOWN.into_iter().find(|known| *known == method.as_str()).unwrap_or("other")
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VoteLabels {
    restaurant: &'static str,
}

/// The replica's metrics. Lives in the app state; updating is lock-free
/// after a label set's first use.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    votes: Family<VoteLabels, Counter>,
    live_clients: Gauge,
    admin_failures: Counter,
}

fn latency_histogram() -> Histogram {
    // 100 µs to ~3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

impl Metrics {
    /// A registry with every metric, labelled with this replica's identity.
    pub fn new(hostname: &str, votes_backend: &str, views_backend: &str) -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: Family<RouteLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        let votes = Family::<VoteLabels, Counter>::default();
        let live_clients = Gauge::default();
        let admin_failures = Counter::default();
        registry.register("yelb_admin_auth_failures", "Wrong stage tokens", admin_failures.clone());
        registry.register("yelb_http_requests", "HTTP requests answered", requests.clone());
        registry.register(
            "yelb_http_request_duration_seconds",
            "Time from request to response headers",
            latency.clone(),
        );
        registry.register("yelb_votes", "Votes cast through this replica", votes.clone());
        registry.register("yelb_live_clients", "Open live-event streams", live_clients.clone());
        registry.register(
            "yelb_appserver",
            "This replica",
            Info::new(vec![
                ("hostname", hostname.to_owned()),
                ("version", env!("CARGO_PKG_VERSION").to_owned()),
                ("votes_backend", votes_backend.to_owned()),
                ("views_backend", views_backend.to_owned()),
            ]),
        );
        // Show every restaurant from the start, at 0, so dashboards have lines.
        for r in Restaurant::ALL {
            let _ = votes.get_or_create(&VoteLabels { restaurant: r.slug() });
        }
        Metrics { registry, requests, latency, votes, live_clients, admin_failures }
    }

    /// Counts one vote.
    pub fn vote(&self, r: Restaurant) {
        self.votes.get_or_create(&VoteLabels { restaurant: r.slug() }).inc();
    }

    /// The gauge of open event streams.
    pub fn live_clients(&self) -> &Gauge {
        &self.live_clients
    }

    /// Counts a wrong stage token.
    pub fn admin_failure(&self) {
        self.admin_failures.inc();
    }

    /// The text exposition (OpenMetrics).
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Middleware: counts and times every request.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "<unmatched>".to_owned(), |p| p.as_str().to_owned());
    // The per-replica count behind /api/v1/replicas rides on this middleware
    // because it already sees every request.
    if route.starts_with("/api/") {
        state.count_served();
    }
    let response = next.run(request).await;
    let metrics = state.metrics();
    // Built once: lookups take a reference and clone only on a label set's
    // first use.
    let labels = RouteLabels { method, route };
    metrics.latency.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RequestLabels { route: labels, status: response.status().as_u16() })
        .inc();
    response
}
