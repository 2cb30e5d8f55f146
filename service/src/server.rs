//! The HTTP server loop both of Yelb's servers run: [`serve`] a service on a
//! bound listener, within [`Limits`], until a shutdown future completes.
//!
//! Why not `axum::serve`: it has no header or idle timeout and no cap on
//! connections, so a slowloris client (or twenty thousand silent ones)
//! holds sockets forever until descriptors run out and even `/healthz`
//! hangs. Here:
//!
//! - every connection must send a complete request head within
//!   [`Limits::header_timeout`], and an idle keep-alive connection is closed
//!   after the same time (hyper's `header_read_timeout` runs from the moment
//!   the connection waits for a request);
//! - a request body must arrive within the same time (tower-http's
//!   `RequestBodyTimeoutLayer`), so a half-sent body cannot hold a
//!   connection either;
//! - at most [`Limits::max_connections`] connections are served at once,
//!   and at most [`Limits::max_connections_per_client`] from one client
//!   ([`crate::clients`]; trusted proxies are not counted per client); one
//!   more gets a short `503` with `Retry-After` and is closed, so the
//!   process keeps descriptors for its health probes and backends;
//! - past the total cap, [`PROBE_RESERVE`] more connections from clients
//!   within their share are served, but only for [`Limits::reserved_paths`]
//!   (health probes, the presenter): one client's flood cannot stop an
//!   orchestrator from seeing the process is alive;
//! - every request carries its connection's [`Peer`] address;
//! - the soft `RLIMIT_NOFILE` is raised to the hard limit at start
//!   ([`raise_fd_limit`]) and the cap is kept below it.
//!
//! Shutdown: when `shutdown` completes the listener closes, every connection
//! is told to finish its request in flight and close, and the call returns
//! once they have, or after `drain` at the latest.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutBody};

use crate::clients::{ClientHold, Peer, PerClient, TrustedProxies};

/// Descriptors kept back from the connection cap for the process's own use
/// (backends, the listener, logging, health checks).
const RESERVED_FDS: u64 = 64;

/// Connections served past the total cap, for [`Limits::reserved_paths`] only.
pub const PROBE_RESERVE: usize = 32;

/// What one server accepts. Built from each server's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Connections one client may hold at once (its peer address; see
    /// [`crate::clients`]). Trusted proxies are exempt.
    pub max_connections_per_client: usize,
    /// Long-lived event streams open at once ([`StreamSlots`]).
    pub max_streams: usize,
    /// Event streams one client may hold at once.
    pub max_streams_per_client: usize,
    /// Peers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
    /// Path prefixes served on the [`PROBE_RESERVE`] connections.
    pub reserved_paths: &'static [&'static str],
    /// Time a client has to send a request head (and the longest a
    /// keep-alive connection may sit idle), and to send a request body.
    pub header_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            max_connections_per_client: 10_000,
            max_streams: 2_000,
            max_streams_per_client: 2_000,
            trusted_proxies: TrustedProxies::default(),
            reserved_paths: &["/healthz", "/readyz"],
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// The cap on open event streams: each stream holds a slot while it is open,
/// in total and in its client's share. Cloning shares the slots.
#[derive(Debug, Clone)]
pub struct StreamSlots {
    slots: Arc<Semaphore>,
    max: usize,
    per_client: PerClient,
}

/// A held stream slot; dropping it frees the slot and the client's unit.
#[derive(Debug)]
pub struct StreamSlot {
    _total: tokio::sync::OwnedSemaphorePermit,
    _client: ClientHold,
}

/// Why a stream was refused (answer 503 with this as the reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StreamsFull {
    /// Every slot is taken.
    #[error("all {0} live-update streams are taken; poll instead")]
    Server(usize),
    /// This client holds its share.
    #[error("your address already holds {0} live-update streams, its share; poll instead")]
    Client(usize),
}

impl StreamSlots {
    /// `max` slots, `per_client` of them at most for one client.
    pub fn new(max: usize, per_client: usize) -> Self {
        StreamSlots { slots: Arc::new(Semaphore::new(max)), max, per_client: PerClient::new(per_client) }
    }

    /// A slot for a stream from `client` (see [`crate::clients::client_of`]).
    pub fn try_open(&self, client: std::net::IpAddr) -> Result<StreamSlot, StreamsFull> {
        let total = self.slots.clone().try_acquire_owned().map_err(|_| StreamsFull::Server(self.max))?;
        let hold = self.per_client.try_hold(client).ok_or(StreamsFull::Client(self.per_client.max()))?;
        Ok(StreamSlot { _total: total, _client: hold })
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Streams open now.
    pub fn open(&self) -> usize {
        self.max - self.slots.available_permits()
    }

    /// Clients with a stream open now.
    pub fn clients(&self) -> usize {
        self.per_client.clients()
    }
}

/// The canned answer to a connection over the cap. Written by hand because
/// the point is to spend nothing on it: no parsing, no service call.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 81\r\n\r\n\
{\"error\":\"this server has too many open connections; retry shortly\",\"status\":503}";

/// Raises the soft limit on open files to the hard limit and returns it (or
/// `None` where it cannot be read). Containers often start with a soft
/// limit of 1024 under a hard one of a million.
pub fn raise_fd_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(e) => {
            tracing::debug!(error = %e, "cannot raise the open-file limit");
            None
        }
    }
}

/// `limits.max_connections`, lowered to fit under the open-file limit.
pub fn effective_max_connections(limits: &Limits, fd_limit: Option<u64>) -> usize {
    match fd_limit {
        Some(fds) => {
            let room = fds.saturating_sub(RESERVED_FDS).max(1);
            limits.max_connections.min(usize::try_from(room).unwrap_or(usize::MAX))
        }
        None => limits.max_connections,
    }
}

/// Serves `service` on `listener` within `limits` until `shutdown`
/// completes; then drains (see the module docs) for at most `drain`.
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> std::io::Result<()>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let max = effective_max_connections(&limits, raise_fd_limit());
    if max < limits.max_connections {
        tracing::warn!(
            max,
            asked = limits.max_connections,
            "connection cap lowered to fit the open-file limit"
        );
    }
    let slots = Arc::new(Semaphore::new(max));
    let reserve = Arc::new(Semaphore::new(PROBE_RESERVE));
    let per_client = PerClient::new(limits.max_connections_per_client);
    let reserved_paths = limits.reserved_paths;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    let service = tower::ServiceBuilder::new()
        .layer(RequestBodyTimeoutLayer::new(limits.header_timeout))
        .map_request(|request: Request<TimeoutBody<Incoming>>| request.map(Body::new))
        .service(service);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors or memory: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed; pausing");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let peer_ip = peer.ip().to_canonical();
        // A trusted proxy speaks for many clients: no share of its own.
        let hold = if limits.trusted_proxies.contains(peer_ip) {
            None
        } else {
            match per_client.try_hold(peer_ip) {
                Some(hold) => Some(hold),
                None => {
                    tokio::spawn(refuse(stream, limits.header_timeout));
                    tracing::debug!(%peer, "connection refused: the client holds its share");
                    continue;
                }
            }
        };
        let (slot, reserved) = match slots.clone().try_acquire_owned() {
            Ok(slot) => (slot, false),
            Err(_) => match reserve.clone().try_acquire_owned() {
                Ok(slot) => (slot, true),
                Err(_) => {
                    tokio::spawn(refuse(stream, limits.header_timeout));
                    tracing::debug!(%peer, "connection refused: at the connection cap");
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = PeerService {
            inner: service.clone(),
            peer: Peer(peer),
            reserved_paths: reserved.then_some(reserved_paths),
        };
        let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop((slot, hold));
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::debug!("every connection closed"),
        () = tokio::time::sleep(drain) => {
            tracing::warn!(?drain, "connections still open after the drain time; stopping anyway");
        }
    }
    Ok(())
}

/// The service of one connection: tags each request with the peer, and on a
/// reserve connection answers anything but the reserved paths with 503.
#[derive(Clone)]
struct PeerService<S> {
    inner: S,
    peer: Peer,
    reserved_paths: Option<&'static [&'static str]>,
}

impl<S, B> tower::Service<Request<B>> for PeerService<S>
where
    S: tower::Service<Request<B>, Response = Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        if let Some(paths) = self.reserved_paths
            && !paths.iter().any(|p| request.uri().path().starts_with(p))
        {
            return Box::pin(async { Ok(busy()) });
        }
        request.extensions_mut().insert(self.peer);
        Box::pin(self.inner.call(request))
    }
}

/// [`BUSY`] as a response, on a connection that then closes.
fn busy() -> Response<Body> {
    let body = &BUSY[BUSY.windows(4).position(|w| w == b"\r\n\r\n").map_or(0, |i| i + 4)..];
    Response::builder()
        .status(503)
        .header("content-type", "application/json")
        .header("retry-after", "1")
        .header("connection", "close")
        .body(Body::from(body))
        .unwrap_or_default()
}

async fn refuse(mut stream: tokio::net::TcpStream, within: Duration) {
    let _ = tokio::time::timeout(within, async {
        let _ = stream.write_all(BUSY).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busy_answer_declares_its_exact_length() {
        let text = std::str::from_utf8(BUSY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["status"], 503);
    }

    #[test]
    fn the_cap_stays_under_the_open_file_limit() {
        let limits = Limits { max_connections: 10_000, ..Limits::default() };
        assert_eq!(effective_max_connections(&limits, Some(1024)), 1024 - RESERVED_FDS as usize);
        assert_eq!(effective_max_connections(&limits, Some(1 << 20)), 10_000);
        assert_eq!(effective_max_connections(&limits, None), 10_000);
        assert_eq!(effective_max_connections(&limits, Some(10)), 1);
    }
}
