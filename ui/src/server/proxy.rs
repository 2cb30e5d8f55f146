//! The app server, as the UI's server reaches it: `/api` forwarding (the job
//! nginx did in the original) and the few calls the server makes itself.
//!
//! The app server's name is resolved when a connection opens, never at start,
//! so the UI serves its page while the app server is not there yet, and
//! answers `/api` with a 502 until it is. By default every request opens its
//! own connection (`YELB_UI_UPSTREAM_KEEPALIVE=false`): a Kubernetes Service,
//! Swarm's DNS round robin or Docker's embedded DNS balance connections, not
//! requests, so a reused connection would pin every request to one replica
//! and hide the spread the demo is there to show. On loopback or a cluster
//! network a new connection costs well under a millisecond.
//!
//! With several endpoints (`YELB_APPSERVER_ENDPOINT=a,b,c`) one that refuses
//! a connection (a crashed replica, a stopped container) is left out of the
//! turn for [`EJECT_FOR`], and a request that was never sent (no body to
//! lose) is sent again to the next endpoint: the audience sees no 502 for
//! a dead replica's share. When every endpoint is out, they are all tried.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri, header};
use futures_util::StreamExt as _;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use yelb_service::StreamSlots;

use super::error::UiError;

/// The header our app server names itself in.
pub const SERVED_BY: HeaderName = HeaderName::from_static(yelb_core::api::SERVED_BY);

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1);
/// they are never forwarded.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// The biggest answer the server reads for itself (the page's snapshot).
const MAX_BODY: usize = 64 * 1024;

/// A handle on the app server. Cloning is cheap (the client is shared).
#[derive(Debug, Clone)]
pub struct Upstream {
    /// One endpoint, or several taken in turn, one per request.
    bases: Arc<[Uri]>,
    /// Per endpoint: until when (ms since `born`) it is left out of the turn.
    out_until: Arc<[AtomicU64]>,
    born: Instant,
    turn: Arc<AtomicUsize>,
    client: Client<HttpConnector<RotatingResolver>, Body>,
    keepalive: bool,
    timeout: Duration,
    last_seen: Arc<AtomicU8>,
}

/// What the last request to the app server found, for `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reachability {
    /// No request yet.
    Unknown = 0,
    /// The last request got an answer.
    Reachable = 1,
    /// The last request got none (no such host, refused, timed out).
    Unreachable = 2,
}

impl Reachability {
    /// The word `/readyz` reports.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reachability::Unknown => "unknown",
            Reachability::Reachable => "reachable",
            Reachability::Unreachable => "unreachable",
        }
    }
}

/// Reads an answer the UI's server asked for itself: the JSON body of a
/// success, or the app server's own words for a refusal.
async fn read_json<T: DeserializeOwned>(response: Response<Body>, path: &str) -> Result<T, UiError> {
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), MAX_BODY)
        .await
        .map_err(|e| UiError::BadUpstream(format!("{path}: {e}")))?;
    if !status.is_success() {
        let message = serde_json::from_slice::<yelb_core::wire::ErrorBody>(&bytes)
            .map(|b| b.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).chars().take(200).collect());
        return Err(UiError::Refused { status: status.as_u16(), message });
    }
    serde_json::from_slice(&bytes).map_err(|e| UiError::BadUpstream(format!("{path}: {e}")))
}

/// One answer the UI's server read for itself.
#[derive(Debug)]
pub struct Answer<T> {
    /// The parsed body.
    pub body: T,
    /// The app server that answered (`X-Served-By`), if it said.
    pub served_by: Option<String>,
}

impl Upstream {
    /// A handle on the app server at `bases` (scheme and authority each;
    /// at least one), taken in turn.
    pub fn new(bases: Vec<Uri>, keepalive: bool, timeout: Duration) -> Self {
        let mut connector = HttpConnector::new_with_resolver(RotatingResolver::default());
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(if keepalive { 64 } else { 0 })
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        assert!(!bases.is_empty(), "the configuration guarantees one endpoint");
        Upstream {
            out_until: bases.iter().map(|_| AtomicU64::new(0)).collect(),
            born: Instant::now(),
            bases: bases.into(),
            turn: Arc::new(AtomicUsize::new(0)),
            client,
            keepalive,
            timeout,
            last_seen: Arc::new(AtomicU8::new(0)),
        }
    }

    /// The app server's base URLs, for messages.
    pub fn base(&self) -> String {
        self.bases
            .iter()
            .map(|b| b.to_string().trim_end_matches('/').to_owned())
            .collect::<Vec<_>>()
            .join(",")
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The next endpoint in turn that is not left out (if all are, the
    /// next in turn anyway).
    fn next_base(&self) -> usize {
        let n = self.bases.len();
        let turn = self.turn.fetch_add(1, Ordering::Relaxed) % n;
        if n == 1 {
            return 0;
        }
        let now = self.now_ms();
        (0..n)
            .map(|i| (turn + i) % n)
            .find(|&i| self.out_until[i].load(Ordering::Relaxed) <= now)
            .unwrap_or(turn)
    }

    /// `path_and_query` on endpoint `index`.
    fn uri(&self, index: usize, path_and_query: &str) -> Result<Uri, UiError> {
        let mut parts = self.bases[index].clone().into_parts();
        parts.path_and_query =
            Some(path_and_query.parse().map_err(|_| UiError::BadRequest("invalid path".to_owned()))?);
        Uri::from_parts(parts).map_err(|_| UiError::BadRequest("invalid path".to_owned()))
    }

    /// Sends a request built by `build` for an endpoint's URI to the next
    /// endpoint in turn. An endpoint that refuses the connection is left out
    /// for [`EJECT_FOR`]; if `replayable` (the request has no body, so
    /// nothing was lost), the next endpoint gets it, each endpoint at most once.
    async fn send(
        &self,
        path_and_query: &str,
        timeout: Duration,
        replayable: bool,
        mut build: impl FnMut(Uri) -> Result<Request<Body>, UiError>,
    ) -> Result<Response<Body>, UiError> {
        let attempts = if replayable { self.bases.len() } else { 1 };
        let mut index = self.next_base();
        let mut attempt = 1;
        loop {
            let request = build(self.uri(index, path_and_query)?)?;
            match self.send_once(request, timeout).await {
                Err((error, true)) => {
                    if self.bases.len() > 1 {
                        let until = self.now_ms() + EJECT_FOR.as_millis() as u64;
                        self.out_until[index].store(until, Ordering::Relaxed);
                    }
                    if attempt >= attempts {
                        return Err(error);
                    }
                    attempt += 1;
                    index = self.next_base();
                }
                Err((error, false)) => return Err(error),
                Ok(response) => return Ok(response),
            }
        }
    }

    /// Sends one request and waits (at most `timeout`) for the answer to
    /// begin; the body then streams for as long as it lasts. An error says
    /// whether the connection itself failed (the request was not sent).
    async fn send_once(
        &self,
        mut request: Request<Body>,
        timeout: Duration,
    ) -> Result<Response<Body>, (UiError, bool)> {
        // Named in errors only: kept as the authority, formatted when needed.
        let authority = request.uri().authority().cloned();
        let endpoint = || authority.as_ref().map_or_else(|| self.base(), |a| format!("http://{a}"));
        if !self.keepalive {
            // Tell the app server too, so neither side keeps the socket around.
            request.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let sent = tokio::time::timeout(timeout, self.client.request(request)).await;
        let response = match sent {
            Err(_) => {
                self.saw(Reachability::Unreachable);
                return Err((UiError::UpstreamTimeout(endpoint()), false));
            }
            // The browser's own request body failed (a malformed chunked
            // body, a body that stalled past the timeout): the browser's
            // fault, not the app server's, which stays marked as it was.
            Ok(Err(e)) if is_request_body_error(&e) => {
                return Err((
                    UiError::BadRequest(format!("the request body could not be read: {}", cause(&e))),
                    false,
                ));
            }
            Ok(Err(e)) => {
                self.saw(Reachability::Unreachable);
                let refused = e.is_connect();
                return Err((UiError::Unreachable { endpoint: endpoint(), why: cause(&e) }, refused));
            }
            Ok(Ok(response)) => {
                self.saw(Reachability::Reachable);
                response
            }
        };
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(parts, Body::new(body)))
    }

    fn saw(&self, reachability: Reachability) {
        self.last_seen.store(reachability as u8, Ordering::Relaxed);
    }

    /// Forwards a browser's `/api` request as it is (method, path, query,
    /// headers, body) and streams the answer back. An event stream holds one
    /// of `streams` while it is open; with none free it is answered 503 (the
    /// page then polls).
    pub async fn forward(
        &self,
        request: Request<Body>,
        client: std::net::IpAddr,
        streams: &StreamSlots,
    ) -> Result<Response<Body>, UiError> {
        if !FORWARDED_METHODS.contains(request.method()) {
            return Err(UiError::MethodNotAllowed(request.method().as_str().chars().take(20).collect()));
        }
        let slot = if is_event_stream(&request) { Some(streams.try_open(client)?) } else { None };
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_FORWARDED_BODY as u64) {
            return Err(UiError::BodyTooLarge(MAX_FORWARDED_BODY));
        }
        // No body (a vote, a read): nothing is lost if the connection fails,
        // so the request may go to another endpoint.
        let replayable = declared == Some(0)
            || (declared.is_none() && !request.headers().contains_key(header::TRANSFER_ENCODING));
        let (mut parts, body) = request.into_parts();
        // A chunked body is cut at the same size; the app server never sees
        // the rest (the client gets 400, its body could not be read whole).
        let body = Body::new(http_body_util::Limited::new(body, MAX_FORWARDED_BODY));
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let host = parts.headers.get(header::HOST).cloned();
        strip_hop_by_hop(&mut parts.headers);
        append_forwarded_for(&mut parts.headers, parts.extensions.get::<yelb_service::Peer>().copied());
        parts.headers.remove(header::HOST);
        if let Some(host) = host {
            parts.headers.insert(HeaderName::from_static("x-forwarded-host"), host);
        }
        // What a second endpoint would need: copied only when there is one.
        let again = (replayable && self.bases.len() > 1)
            .then(|| (parts.method.clone(), parts.version, parts.headers.clone()));
        let mut first = Some(Request::from_parts(parts, body));
        let response = self
            .send(&path, self.timeout, again.is_some(), |uri| {
                let mut outgoing = match (first.take(), &again) {
                    (Some(request), _) => request,
                    (None, Some((method, version, headers))) => {
                        let mut request = Request::new(Body::empty());
                        *request.method_mut() = method.clone();
                        *request.version_mut() = *version;
                        *request.headers_mut() = headers.clone();
                        request
                    }
                    (None, None) => {
                        return Err(UiError::BadRequest("the request was sent already".to_owned()));
                    }
                };
                *outgoing.uri_mut() = uri;
                Ok(outgoing)
            })
            .await?;
        Ok(match slot {
            // The slot is freed when the browser goes away and the body is dropped.
            Some(slot) => response.map(|body| {
                Body::from_stream(body.into_data_stream().map(move |chunk| {
                    let _ = &slot;
                    chunk
                }))
            }),
            None => response,
        })
    }

    /// Opens the app server's event stream for the fan-out. `Ok(None)`: it
    /// has none (it speaks only the original API). The answer must begin
    /// within the configured timeout; its body then runs for as long as the
    /// app server keeps it open.
    pub async fn open_events(&self) -> Result<Option<Response<Body>>, UiError> {
        // Our app server then sends every change within 10 ms (the fan-out
        // coalesces for its screens); the original has no stream.
        let path = format!("{}?interval_ms=10", yelb_core::api::EVENTS);
        let response = self
            .send(&path, self.timeout, true, |uri| {
                Request::builder()
                    .method(Method::GET)
                    .uri(uri)
                    .header(header::ACCEPT, "text/event-stream")
                    .body(Body::empty())
                    .map_err(|e| UiError::BadRequest(e.to_string()))
            })
            .await?;
        let status = response.status();
        if yelb_core::api::is_missing_route(status.as_u16()) {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(UiError::Refused {
                status: status.as_u16(),
                message: "event stream refused".to_owned(),
            });
        }
        Ok(Some(response))
    }

    /// Calls the app server for the UI's own use and parses the JSON answer.
    /// `Ok(None)` means the app server does not have the route (404/405):
    /// it speaks only the original API.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        timeout: Duration,
    ) -> Result<Option<Answer<T>>, UiError> {
        self.call_keyed(method, path, timeout, None).await
    }

    /// [`Upstream::call`] with an `Idempotency-Key`, when given.
    pub async fn call_keyed<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        timeout: Duration,
        key: Option<&yelb_core::api::IdempotencyKey>,
    ) -> Result<Option<Answer<T>>, UiError> {
        // An empty POST still says `Content-Length: 0`: the original app
        // server (WEBrick) answers a POST without one with 411.
        let response = self
            .send(path, timeout, true, |uri| {
                let mut builder = Request::builder()
                    .method(method.clone())
                    .uri(uri)
                    .header(header::ACCEPT, "application/json")
                    .header(header::CONTENT_LENGTH, "0");
                if let Some(key) = key {
                    builder = builder.header(yelb_core::api::IDEMPOTENCY_KEY, key.as_str());
                }
                builder.body(Body::empty()).map_err(|e| UiError::BadRequest(e.to_string()))
            })
            .await?;
        let status = response.status();
        // 404/405: no such route. 411: WEBrick refusing a bodiless POST, seen
        // from an original app server behind a proxy that dropped the length.
        if yelb_core::api::is_missing_route(status.as_u16()) {
            return Ok(None);
        }
        let served_by = response.headers().get(SERVED_BY).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = read_json(response, path).await?;
        Ok(Some(Answer { body, served_by }))
    }

    /// Calls stage control (`/api/v1/admin/...`) with the speaker's token
    /// and an optional JSON body, passing on `from`'s `X-Forwarded-For` (the
    /// console's request, which [`crate::server::console::forwarded`] gave
    /// one); parses the JSON answer. A refusal (401,
    /// 404 when stage control is off, 422) comes back with the app server's
    /// own words.
    pub async fn call_admin<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        token: &str,
        json: Option<String>,
        from: &HeaderMap,
    ) -> Result<T, UiError> {
        let body = json.unwrap_or_default();
        // The body is ours, in memory: a refused connection loses nothing.
        let response = self
            .send(path, self.timeout, true, |uri| {
                let mut request = Request::builder()
                    .method(method.clone())
                    .uri(uri)
                    .header(header::ACCEPT, "application/json")
                    .header(header::CONTENT_TYPE, "application/json")
                    .header(header::AUTHORIZATION, format!("Bearer {token}"))
                    .header(header::CONTENT_LENGTH, body.len())
                    .body(Body::from(body.clone()))
                    .map_err(|e| UiError::BadRequest(e.to_string()))?;
                // Who is asking, so the app server throttles that client's wrong
                // tokens rather than this UI's (it must trust this UI's address).
                if let Some(chain) = from.get("x-forwarded-for") {
                    request.headers_mut().insert(HeaderName::from_static("x-forwarded-for"), chain.clone());
                }
                Ok(request)
            })
            .await?;
        read_json(response, path).await
    }

    /// What the last request to the app server found. `/readyz` reports it
    /// without making a request of its own, so a probe never waits on the
    /// app server.
    pub fn reachability(&self) -> Reachability {
        match self.last_seen.load(Ordering::Relaxed) {
            1 => Reachability::Reachable,
            2 => Reachability::Unreachable,
            _ => Reachability::Unknown,
        }
    }
}

/// Resolves a name with the system resolver (getaddrinfo, on a blocking
/// thread) and rotates the answer by one more place on every call, so
/// successive connections start at successive replicas.
#[derive(Debug, Clone, Default)]
pub struct RotatingResolver {
    calls: Arc<AtomicUsize>,
}

impl tower::Service<Name> for RotatingResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let turn = self.calls.fetch_add(1, Ordering::Relaxed);
        Box::pin(async move {
            // The port is set by the connector from the URL.
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            Ok(rotated(addrs, turn).into_iter())
        })
    }
}

/// `addrs` starting at position `turn` (modulo their number).
fn rotated(mut addrs: Vec<SocketAddr>, turn: usize) -> Vec<SocketAddr> {
    if !addrs.is_empty() {
        let by = turn % addrs.len();
        addrs.rotate_left(by);
    }
    addrs
}

/// How long an endpoint that refused a connection is left out of the turn.
pub const EJECT_FOR: Duration = Duration::from_secs(5);

/// The methods forwarded to the app server; others (`CONNECT`, `TRACE`,
/// inventions) are answered 405 here.
const FORWARDED_METHODS: [Method; 7] =
    [Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS, Method::PATCH];

/// The largest request body forwarded: every API body is a few hundred
/// bytes, and the app server refuses more than 2 MiB by closing the
/// connection mid-body, which the browser would otherwise see as a 502.
pub const MAX_FORWARDED_BODY: usize = 64 * 1024;

/// Whether the browser asks for a long-lived event stream.
fn is_event_stream(request: &Request<Body>) -> bool {
    request.uri().path().ends_with(yelb_core::api::EVENTS)
        || request
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/event-stream"))
}

/// Whether a client error came from reading the browser's request body
/// (hyper calls errors from the body we hand it "user" errors).
fn is_request_body_error(error: &hyper_util::client::legacy::Error) -> bool {
    if error.is_connect() {
        return false;
    }
    let mut inner: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = inner {
        if let Some(hyper) = e.downcast_ref::<hyper::Error>() {
            return hyper.is_user();
        }
        inner = e.source();
    }
    false
}

/// Adds the peer to `X-Forwarded-For` (the chain a proxy passes on), so the
/// app server can tell clients apart when it trusts this UI.
pub(crate) fn append_forwarded_for(headers: &mut HeaderMap, peer: Option<yelb_service::Peer>) {
    let Some(yelb_service::Peer(peer)) = peer else { return };
    let name = HeaderName::from_static("x-forwarded-for");
    let chain = headers.get_all(&name).iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>().join(", ");
    let value = if chain.is_empty() {
        peer.ip().to_canonical().to_string()
    } else {
        format!("{chain}, {}", peer.ip().to_canonical())
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(name, value);
    }
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers named in `Connection` are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(&named) {
        headers.remove(name);
    }
}

/// The innermost cause of a client error, which names what went wrong
/// ("dns error: failed to lookup address", "Connection refused").
fn cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = error;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successive_lookups_start_at_successive_addresses() {
        let addrs: Vec<SocketAddr> =
            ["10.0.0.1:0", "10.0.0.2:0", "10.0.0.3:0"].iter().map(|a| a.parse().unwrap()).collect();
        let firsts: Vec<SocketAddr> = (0..4).map(|turn| rotated(addrs.clone(), turn)[0]).collect();
        assert_eq!(firsts, [addrs[0], addrs[1], addrs[2], addrs[0]]);
        assert_eq!(rotated(addrs.clone(), 1).len(), 3, "every address is still tried");
        assert!(rotated(Vec::new(), 5).is_empty());
    }

    #[tokio::test]
    async fn the_resolver_answers_for_names_the_system_knows() {
        use tower::Service;
        let mut resolver = RotatingResolver::default();
        let addrs: Vec<SocketAddr> = resolver.call("localhost".parse().unwrap()).await.unwrap().collect();
        assert!(addrs.iter().any(|a| a.ip().is_loopback()), "{addrs:?}");
    }
}
