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
//! - at most [`Limits::max_connections`] connections are served at once;
//!   one more gets a short `503` with `Retry-After` and is closed, so the
//!   process keeps descriptors for its health probes and backends;
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

/// Descriptors kept back from the connection cap for the process's own use
/// (backends, the listener, logging, health checks).
const RESERVED_FDS: u64 = 64;

/// What one server accepts. Built from each server's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Long-lived event streams open at once ([`StreamSlots`]).
    pub max_streams: usize,
    /// Time a client has to send a request head (and the longest a
    /// keep-alive connection may sit idle), and to send a request body.
    pub header_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_connections: 10_000, max_streams: 2_000, header_timeout: Duration::from_secs(10) }
    }
}

/// The cap on open event streams: each stream holds a slot while it is open.
/// Cloning shares the slots.
#[derive(Debug, Clone)]
pub struct StreamSlots {
    slots: Arc<Semaphore>,
    max: usize,
}

/// A held stream slot; dropping it frees the slot.
pub type StreamSlot = tokio::sync::OwnedSemaphorePermit;

impl StreamSlots {
    /// `max` slots.
    pub fn new(max: usize) -> Self {
        StreamSlots { slots: Arc::new(Semaphore::new(max)), max }
    }

    /// A slot, or `None` when all are taken (answer 503 then).
    pub fn try_open(&self) -> Option<StreamSlot> {
        self.slots.clone().try_acquire_owned().ok()
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Streams open now.
    pub fn open(&self) -> usize {
        self.max - self.slots.available_permits()
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
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    let service = tower::ServiceBuilder::new()
        .layer(RequestBodyTimeoutLayer::new(limits.header_timeout))
        .map_request(|request: Request<TimeoutBody<Incoming>>| request.map(Body::new))
        .service(service);
    let service = TowerToHyperService::new(service);
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
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tokio::spawn(refuse(stream, limits.header_timeout));
            tracing::debug!(%peer, "connection refused: at the connection cap");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = http.serve_connection(TokioIo::new(stream), service.clone());
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(slot);
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
