//! What the UI's tests start: app servers (in this process, on real Postgres
//! and Redis from `yelb-testkit`), the UI server itself, a round-robin
//! balancer in front of several app servers, and headless Chromium driven
//! over WebDriver. Everything listens on 127.0.0.1 and stops when its handle
//! drops; Chromium and its driver are killed by process group.

#![allow(dead_code)] // Each test binary uses its own part of this module.
#![allow(clippy::unwrap_used)] // Test support: a failed setup is a failed test.

pub mod browser;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::sync::oneshot;
use yelb_testkit::{shared_pg, shared_redis, unique_name};

/// The flags that put app servers on the shared Postgres and Redis, each
/// call with a database and key prefix of its own.
pub fn real_backends() -> Vec<String> {
    real_backends_named().0
}

/// [`real_backends`] and the name of its database (for `psql`).
pub fn real_backends_named() -> (Vec<String>, String) {
    let db = unique_name("yelb_ui");
    let flags = vec![
        format!("--database-url={}", shared_pg().url(&db)),
        format!("--redis-url={}", shared_redis().url()),
        format!("--redis-key-prefix={}:", unique_name("ui")),
    ];
    (flags, db)
}

/// An app server running in this process.
pub struct AppServer {
    pub addr: SocketAddr,
    pub hostname: String,
    shutdown: Option<oneshot::Sender<()>>,
}

impl AppServer {
    /// Starts an app server with `flags` on 127.0.0.1 `port` (0: any) and waits until it is ready.
    pub async fn start(flags: &[String], port: u16) -> AppServer {
        let hostname = unique_name("replica").replace('_', "-");
        let mut argv = vec![
            "yelb-appserver".to_owned(),
            "--listen-addr=127.0.0.1".to_owned(),
            format!("--port={port}"),
            format!("--hostname={hostname}"),
            "--shutdown-timeout=2".to_owned(),
        ];
        argv.extend(flags.iter().cloned());
        let config = yelb_appserver::Config::from_args(yelb_appserver::config::Args::parse_from(argv))
            .expect("app server config");
        let app = yelb_appserver::Application::build(config).await.expect("app server builds");
        let addr = app.local_addr();
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(app.run_until(async move { drop(rx.await) }));
        let server = AppServer { addr, hostname, shutdown: Some(tx) };
        wait_for_status(&format!("http://{addr}/readyz"), 200).await;
        server
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for AppServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The UI server running in this process.
pub struct UiServer {
    pub url: String,
    shutdown: Option<oneshot::Sender<()>>,
}

impl UiServer {
    /// Starts the UI in front of `appserver` (a URL) with extra flags.
    pub async fn start(appserver: &str, flags: &[&str]) -> UiServer {
        UiServer::start_with_site(appserver, &site_root(), flags).await
    }

    /// Starts the UI with its bundle looked for under `site`.
    pub async fn start_with_site(appserver: &str, site: &std::path::Path, flags: &[&str]) -> UiServer {
        let mut argv = vec![
            "yelb-ui".to_owned(),
            "--listen-addr=127.0.0.1".to_owned(),
            "--port=0".to_owned(),
            format!("--appserver-endpoint={appserver}"),
            format!("--site-root={}", site.display()),
        ];
        argv.extend(flags.iter().map(|f| (*f).to_owned()));
        let config = yelb_ui::server::Args::parse_from(argv).into_config().expect("ui config");
        let listener = tokio::net::TcpListener::bind(config.listen).await.expect("bind ui");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(yelb_ui::server::run(listener, config, async move { drop(rx.await) }));
        wait_for_status(&format!("{url}/healthz"), 200).await;
        UiServer { url, shutdown: Some(tx) }
    }
}

impl Drop for UiServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Where scripts/build-ui.sh put the browser bundle.
pub fn site_root() -> PathBuf {
    let root = std::env::var_os("YELB_UI_SITE_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/site"));
    assert!(
        root.join("pkg/yelb-ui_bg.wasm").is_file() && root.join("pkg/yelb-present_bg.wasm").is_file(),
        "no browser bundle under {}: run scripts/build-ui.sh (scripts/test.sh does)",
        root.display()
    );
    root
}

/// Polls `url` until it answers `status` (at most 15 s).
pub async fn wait_for_status(url: &str, status: u16) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(r) = client.get(url).send().await
            && r.status().as_u16() == status
        {
            return;
        }
        assert!(Instant::now() < deadline, "{url} never answered {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A plain HTTP client for the tests' own calls.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// An app server that speaks only the original API, as the 2017 Ruby one
/// does: our real app server behind a filter that answers 404 for anything
/// under `/api/v1` and drops `X-Served-By`, which the original never sent.
/// Like the original's WEBrick, it answers 411 to a `POST` that has no
/// `Content-Length` (nor a chunked body), before routing.
pub struct LegacyOnly {
    pub url: String,
    shutdown: Option<oneshot::Sender<()>>,
}

impl LegacyOnly {
    pub async fn start(app: &AppServer) -> LegacyOnly {
        use axum::extract::Request;
        use axum::response::{IntoResponse, Response};
        let target = app.url();
        let client = http();
        let filter = axum::Router::new().fallback(move |request: Request| {
            let (target, client) = (target.clone(), client.clone());
            async move {
                let path = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
                let headers = request.headers();
                if request.method() == axum::http::Method::POST
                    && !headers.contains_key("content-length")
                    && !headers.contains_key("transfer-encoding")
                {
                    return (axum::http::StatusCode::LENGTH_REQUIRED, "Length Required").into_response();
                }
                if path.starts_with("/api/v1") || path.starts_with("//api/v1") {
                    return (axum::http::StatusCode::NOT_FOUND, "Not Found").into_response();
                }
                let method = reqwest::Method::from_bytes(request.method().as_str().as_bytes()).unwrap();
                let answer = client.request(method, format!("{target}{path}")).send().await.unwrap();
                let status = answer.status().as_u16();
                let content_type = answer.headers().get("content-type").cloned();
                let body = answer.bytes().await.unwrap();
                let mut response = Response::new(axum::body::Body::from(body));
                *response.status_mut() = axum::http::StatusCode::from_u16(status).unwrap();
                if let Some(ct) = content_type {
                    response.headers_mut().insert("content-type", ct.to_str().unwrap().parse().unwrap());
                }
                response
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, filter).with_graceful_shutdown(async move { drop(rx.await) }).await
        });
        LegacyOnly { url, shutdown: Some(tx) }
    }
}

impl Drop for LegacyOnly {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
