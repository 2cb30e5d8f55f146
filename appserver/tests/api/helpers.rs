//! `spawn_app` and friends: each test gets its own app server on port 0 and,
//! on the real backends, its own database and Redis key prefix on the
//! process-wide Postgres and Redis that the test harness starts.

use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::StreamExt;
use reqwest::{Method, Response};
use tokio::sync::oneshot;
use yelb_appserver::config::Args;
use yelb_appserver::{Application, Config};
use yelb_core::wire::LiveState;
use yelb_testkit::{shared_pg, shared_redis, unique_name};

/// Which stores a test app uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded in-memory mode.
    Memory,
    /// A real Postgres and a real Redis.
    Real,
}

/// Generates one test per backend from `async fn name(backend: Backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test] async fn $name() { super::$name($crate::helpers::Backend::Memory).await })*
        }
        mod postgres_and_redis {
            $(#[tokio::test] async fn $name() { super::$name($crate::helpers::Backend::Real).await })*
        }
    };
}

/// A running app server.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The hostname it reports.
    pub hostname: String,
    /// The database it uses, when on Postgres.
    pub db_name: Option<String>,
    /// A client without connection reuse surprises.
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    /// Kept so the server task is not detached silently; it ends on shutdown.
    _task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Flags for a fresh database and key prefix on the shared servers.
pub fn real_backend_flags() -> (Vec<String>, String) {
    let db = unique_name("yelb_api");
    let flags = vec![
        format!("--database-url={}", shared_pg().url(&db)),
        format!("--redis-url={}", shared_redis().url()),
        format!("--redis-key-prefix={}:", unique_name("t")),
    ];
    (flags, db)
}

/// Starts an app on `backend` and waits until it is ready.
pub async fn spawn_app(backend: Backend) -> TestApp {
    match backend {
        Backend::Memory => spawn_with(&[]).await,
        Backend::Real => {
            let (flags, db) = real_backend_flags();
            let refs: Vec<&str> = flags.iter().map(String::as_str).collect();
            let mut app = spawn_with(&refs).await;
            app.db_name = Some(db);
            app
        }
    }
    .wait_ready()
    .await
}

/// Starts an app with extra command-line flags; does not wait for readiness.
pub async fn spawn_with(flags: &[&str]) -> TestApp {
    let hostname = unique_name("replica").replace('_', "-");
    let mut argv = vec![
        "yelb-appserver".to_owned(),
        "--listen-addr=127.0.0.1".to_owned(),
        "--port=0".to_owned(),
        format!("--hostname={hostname}"),
        "--shutdown-timeout=5".to_owned(),
    ];
    argv.extend(flags.iter().map(|f| (*f).to_owned()));
    let args = Args::try_parse_from(argv).expect("test flags parse");
    let config = Config::from_args(args).expect("test config is valid");
    // The same path as `main`: build (binds port 0), then run until told.
    let app = Application::build(config).await.expect("the app builds");
    let base = format!("http://{}", app.local_addr());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    TestApp {
        base,
        hostname,
        db_name: None,
        client: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap(),
        shutdown: Some(tx),
        _task: task,
    }
}

impl TestApp {
    /// Waits (bounded) until `/readyz` answers 200.
    pub async fn wait_ready(self) -> TestApp {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(r) = self.get("/readyz").await
                && r.status() == 200
                && r.json::<serde_json::Value>().await.unwrap()["status"] == "ready"
            {
                return self;
            }
            assert!(Instant::now() < deadline, "app did not become ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> reqwest::Result<Response> {
        self.client.get(format!("{}{path}", self.base)).send().await
    }

    /// Any method on `path`.
    pub async fn request(&self, method: Method, path: &str) -> Response {
        self.client.request(method, format!("{}{path}", self.base)).send().await.unwrap()
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(&self, path: &str, body: &str) -> Response {
        self.client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    /// `GET path`, expecting 200, returning the body as JSON.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let r = self.get(path).await.unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }

    /// Opens `/api/v1/events`.
    pub async fn events(&self) -> EventStream {
        let r = self.get("/api/v1/events").await.unwrap();
        assert_eq!(r.status(), 200);
        EventStream::from_response(r)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A reader of server-sent events.
pub struct EventStream {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

impl EventStream {
    /// Reads an event-stream answer.
    pub fn from_response(r: reqwest::Response) -> EventStream {
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        EventStream { body: Box::pin(r.bytes_stream()), buf: String::new() }
    }

    /// The next `state` event, or `None` if the stream ends or `wait` passes.
    pub async fn next_state(&mut self, wait: Duration) -> Option<LiveState> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..end + 2).collect();
                let mut event = None;
                let mut data = String::new();
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    }
                }
                if event.as_deref() == Some("state") {
                    return Some(serde_json::from_str(&data).expect("state events carry LiveState JSON"));
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next()).await.ok()??;
            self.buf.push_str(&String::from_utf8_lossy(&chunk.ok()?));
        }
    }

    /// Reads states until `pred` holds, or `None` after `wait`.
    pub async fn until(&mut self, wait: Duration, pred: impl Fn(&LiveState) -> bool) -> Option<LiveState> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let state = self.next_state(left).await?;
            if pred(&state) {
                return Some(state);
            }
        }
    }
}

/// A connection to `base` from the loopback address `from` (127.0.0.0/8 is
/// all this machine's): another client, as the server sees it.
pub async fn connect_from(from: &str, base: &str) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(base.trim_start_matches("http://").parse().unwrap()).await.unwrap()
}

/// Sends `head` (an HTTP/1.0 request head without its blank line) on
/// `stream` and reads the answer until the server closes; the whole answer.
pub async fn exchange(mut stream: tokio::net::TcpStream, head: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    stream.write_all(format!("{head}\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// One `GET path` on `stream`; the status it answered ("no answer" if none).
pub async fn status_on(stream: tokio::net::TcpStream, path: &str) -> String {
    let answer = exchange(stream, &format!("GET {path} HTTP/1.0")).await;
    answer.split_whitespace().nth(1).unwrap_or("no answer").to_owned()
}
