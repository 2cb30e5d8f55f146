//! The UI's own process (feature `ssr`): renders the page, serves the
//! browser bundle, takes no-JavaScript votes and forwards `/api`.
//!
//! - [`config`]: flags and variables, read once into [`Config`].
//! - [`proxy`]: [`Upstream`], the app server as this process reaches it.
//! - [`page`]: `GET /` and `POST /vote/{restaurant}`.
//! - [`error`]: [`UiError`], the one error type, and its answers.
//! - [`security`]: the headers every answer carries, and the page's
//!   Content-Security-Policy.
//!
//! Routes: `/` (the page), `/vote/{restaurant}`, `/api` and everything under
//! it (also `//api/...`, as the original UI requested), `/pkg/*` (the
//! WebAssembly bundle, precompressed), `/yelb.css`, `/favicon.svg`,
//! `/healthz` (the process is up) and `/readyz` (the bundle is there; what the
//! last request to the app server found is reported, without a request of its
//! own, and never makes the UI unready, so an orchestrator does not restart a
//! healthy UI for an app server's outage).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use leptos::config::LeptosOptions;
use serde_json::json;
use tokio::net::TcpListener;
use tower_http::compression::CompressionLayer;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

pub mod audience;
pub mod config;
pub mod console;
pub mod error;
pub mod fanout;
pub mod page;
pub mod proxy;
pub mod security;
pub mod simulator;

pub use config::{Args, Command, Config};
pub use error::UiError;
pub use proxy::Upstream;
pub use yelb_service::shutdown_signal;

/// The voting page's bundle (`pkg/yelb-ui.js`, `pkg/yelb-ui_bg.wasm`): what
/// every phone downloads, without the presenter view's code.
pub const OUTPUT_NAME: &str = "yelb-ui";
/// The presenter view's bundle (`pkg/yelb-present.js`, `..._bg.wasm`): the
/// same crate built with the `present` feature, loaded only by `/present`.
pub const PRESENT_OUTPUT_NAME: &str = "yelb-present";
/// How long open streams may keep the process alive after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

const CSS: &str = include_str!("../../style/yelb.css");
const FAVICON: &str = include_str!("../../style/favicon.svg");
/// The console's one nicety: the faults' countdowns.
const CONSOLE_JS: &str = include_str!("../../style/console.js");

/// Shared by every handler. Cloning copies three `Arc`s and the client handle.
#[derive(Debug, Clone)]
pub struct UiState {
    /// The settings.
    pub config: Arc<Config>,
    /// The app server.
    pub upstream: Upstream,
    /// What Leptos needs to write the voting page's hydration scripts.
    pub leptos: LeptosOptions,
    /// The same for the presenter view, which loads its own bundle.
    pub leptos_present: LeptosOptions,
    /// The cap on open event streams (screens).
    pub streams: yelb_service::StreamSlots,
    /// The live events, from one upstream subscription to every screen.
    pub fanout: fanout::Fanout,
    /// The console's audience simulator.
    pub simulator: simulator::Simulator,
    /// Wrong tokens at the console's sign-in, per browser.
    pub sign_in_failures: yelb_service::FailureThrottle,
}

impl UiState {
    /// State for a configuration.
    pub fn new(config: Config) -> Self {
        let upstream = Upstream::new(config.appserver.clone(), config.keepalive, config.upstream_timeout);
        let leptos = LeptosOptions::builder()
            .output_name(OUTPUT_NAME)
            .site_root(config.site_root.to_string_lossy().into_owned())
            .site_pkg_dir("pkg")
            .build();
        let mut leptos_present = leptos.clone();
        leptos_present.output_name = PRESENT_OUTPUT_NAME.into();
        let streams =
            yelb_service::StreamSlots::new(config.limits.max_streams, config.limits.max_streams_per_client);
        let fanout = fanout::Fanout::new(upstream.clone());
        let sign_in_failures = yelb_service::FailureThrottle::new(
            console::SIGN_IN_BURST,
            1.0 / console::SIGN_IN_REFILL_SECS,
            20.0,
        );
        UiState {
            config: Arc::new(config),
            upstream,
            leptos,
            leptos_present,
            streams,
            fanout,
            simulator: Default::default(),
            sign_in_failures,
        }
    }

    /// Whether both bundles are on disk.
    fn bundle_present(&self) -> bool {
        [OUTPUT_NAME, PRESENT_OUTPUT_NAME]
            .iter()
            .all(|name| self.config.site_root.join("pkg").join(format!("{name}_bg.wasm")).is_file())
    }
}

/// The UI's router, with no listener attached (tests call it in-process).
pub fn app(state: UiState) -> Router {
    let pkg = ServeDir::new(state.config.site_root.join("pkg")).precompressed_br().precompressed_gzip();
    // Small assets are revalidated rather than cached for long: file names
    // carry no hash, and a redeploy on stage must show at once.
    let revalidate =
        SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    let site = Router::new()
        .route("/", get(page::page))
        .route("/present", get(page::present))
        .route("/yelb.css", get(|| async { asset("text/css; charset=utf-8", CSS) }))
        .route("/favicon.svg", get(|| async { asset("image/svg+xml", FAVICON) }))
        .route("/console.js", get(|| async { asset("text/javascript; charset=utf-8", CONSOLE_JS) }))
        .layer(CompressionLayer::new());
    let pkg = tower::ServiceBuilder::new().layer(revalidate).service(pkg);
    Router::new()
        .merge(site)
        .nest_service("/pkg", pkg)
        .route_layer(axum::middleware::from_fn(guard_pkg))
        .route("/vote/{restaurant}", post(page::vote))
        .merge(console_routes())
        .route("/api", any(forward))
        .route("/api/{*rest}", any(forward))
        .route("/healthz", get(|| async { axum::Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .fallback(fallback)
        .layer(axum::middleware::map_response(security::add_headers))
        .with_state(state)
}

/// The console's routes, each request tagged with who sent it.
fn console_routes() -> Router<UiState> {
    Router::new()
        .route("/console", get(console::page))
        .route("/console/sign-in", post(console::sign_in))
        .route("/console/sign-out", post(console::sign_out))
        .route("/console/reset", post(console::reset))
        .route("/console/faults", post(console::set_fault))
        .route("/console/clear", post(console::clear))
        .route("/console/preset", post(console::preset))
        .route("/console/simulate", post(console::simulate))
        .route("/console/simulate/stop", post(console::stop_simulation))
        .route_layer(axum::middleware::from_fn(console::forwarded))
        .route_layer(axum::middleware::from_fn(console::same_origin))
}

/// The bundle is a handful of plain file names. Anything else under `/pkg`
/// is refused here, before `ServeDir` sees it: it answers an over-long name
/// or a NUL byte with an empty 500.
async fn guard_pkg(request: Request<Body>, next: axum::middleware::Next) -> Response {
    let path = request.uri().path();
    if let Some(name) = path.strip_prefix("/pkg/")
        && !is_bundle_file_name(name)
    {
        let body = json!({"error": "no such file in the bundle", "status": 404});
        return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
    }
    next.run(request).await
}

/// A bundle file name: letters, digits, `.`, `-` and `_`, at most 100 of
/// them, not starting with a dot (no `..`, no hidden files, no escapes).
fn is_bundle_file_name(name: &str) -> bool {
    (1..=100).contains(&name.len())
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

async fn forward(State(state): State<UiState>, request: Request<Body>) -> Result<Response, UiError> {
    let client = yelb_service::client_of(
        request.extensions().get::<yelb_service::Peer>().copied(),
        request.headers(),
        &state.config.limits.trusted_proxies,
    );
    if !state.config.forward_admin && is_admin(&request) {
        let body = json!({
            "error": "stage control is not served on this public listener: use /console, or the app server's own address",
            "status": 404,
        });
        return Ok((StatusCode::NOT_FOUND, axum::Json(body)).into_response());
    }
    if is_live_events(&request) {
        let slot = state.streams.try_open(client)?;
        return state.fanout.open(slot, state.config.upstream_timeout).await;
    }
    state.upstream.forward(request, client, &state.streams).await
}

/// `GET /api/v1/events` (however many slashes): a screen, served by the
/// fan-out rather than forwarded.
fn is_live_events(request: &Request<Body>) -> bool {
    let path = request.uri().path();
    request.method() == axum::http::Method::GET
        && path.starts_with('/')
        && path
            .split('/')
            .filter(|s| !s.is_empty())
            .eq(yelb_core::api::EVENTS.split('/').filter(|s| !s.is_empty()))
}

/// `/api/v1/admin` and anything under it, however many slashes (the app
/// server collapses them), in any letter case the router might accept.
fn is_admin(request: &Request<Body>) -> bool {
    let mut segments = request.uri().path().split('/').filter(|s| !s.is_empty());
    let admin = yelb_core::api::ADMIN.split('/').filter(|s| !s.is_empty());
    admin.into_iter().all(|want| segments.next().is_some_and(|got| got.eq_ignore_ascii_case(want)))
}

/// `//api/...` (the original UI's double slash) is forwarded as it is; the app
/// server treats it as `/api/...`. Anything else is not here.
async fn fallback(state: State<UiState>, request: Request<Body>) -> Result<Response, UiError> {
    if request.uri().path().starts_with("//api") {
        return forward(state, request).await;
    }
    let body = json!({"error": format!("no such page: {}", request.uri().path()), "status": 404});
    Ok((StatusCode::NOT_FOUND, axum::Json(body)).into_response())
}

async fn readyz(State(state): State<UiState>) -> Response {
    let appserver = state.upstream.reachability().as_str();
    if state.bundle_present() {
        let events = json!({
            "screens": state.fanout.screens(),
            "upstream": state.fanout.upstate().as_str(),
            "subscriptions": state.fanout.subscriptions(),
        });
        axum::Json(json!({"status": "ready", "appserver": appserver, "events": events})).into_response()
    } else {
        let why = format!("the browser bundle is missing under {}", state.config.site_root.display());
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"status": "not ready", "error": why})))
            .into_response()
    }
}

/// Serves the UI on `listener` until `shutdown` completes; open streams then
/// get [`SHUTDOWN_GRACE`] to finish.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Leptos renders on whatever executor it is given; ours is Tokio.
    let _ = any_spawner::Executor::init_tokio();
    let state = UiState::new(config);
    if !state.bundle_present() {
        tracing::warn!(
            site_root = %state.config.site_root.display(),
            "browser bundle not found: the page renders but will not hydrate (build it with scripts/build-ui.sh)"
        );
    }
    let addr = listener.local_addr()?;
    tracing::info!(%addr, appserver = %state.upstream.base(), keepalive = state.config.keepalive, "yelb-ui listening");
    let limits = state.config.limits.clone();
    let fanout = state.fanout.clone();
    let shutdown = async move {
        shutdown.await;
        // Screens end at once and reconnect after their own jittered `retry:`.
        fanout.close();
    };
    yelb_service::serve(listener, app(state), limits, shutdown, SHUTDOWN_GRACE).await?;
    Ok(())
}

/// The `healthcheck` subcommand: probes this configuration's own listener.
pub fn healthcheck(args: &Args, path: &str) -> bool {
    let listen: SocketAddr = match args.listen() {
        Ok(listen) => listen,
        Err(e) => {
            eprintln!("yelb-ui healthcheck: {e}");
            return false;
        }
    };
    match yelb_service::healthcheck(listen, path) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("yelb-ui healthcheck: {e}");
            false
        }
    }
}

/// Starts logging for this configuration.
pub fn init_tracing(config: &Config) {
    yelb_service::init_tracing(config.log_format);
}
