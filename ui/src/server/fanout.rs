//! The live-event fan-out: one upstream subscription per UI process, shared
//! by every screen it serves.
//!
//! A phone's `GET /api/v1/events` is not forwarded. The UI's server holds ONE
//! event stream from the app server (opened when the first screen arrives,
//! reopened with a jittered back-off when it drops) and folds every `state`
//! event into one [`LiveState`]. Each change is encoded once, as the SSE
//! bytes every screen is sent, and published on a `watch` channel; a screen
//! is a receiver of it plus its connection, so the app server's cost does not
//! grow with phones and the UI's is one socket and a few hundred bytes each.
//!
//! The same pump reads `/api/v1/replicas` every [`SPREAD_EVERY`] while
//! screens are open and publishes it, with each replica's requests per
//! second, as a `spread` event; and it re-reads the counts every
//! [`REREAD_EVERY`] (in a mixed cluster votes cast through an original app
//! server publish no event), so a live page sends no request of its own.
//!
//! Each screen is sent an update at most every [`MIN_GAP`] while updates keep
//! coming (the changes in between fold into the next one) and at once after a
//! quiet spell. Its first bytes carry an SSE `retry:` picked at random, so
//! after a UI restart the browsers come back spread over seconds, not at
//! once. A heartbeat comment goes out every [`HEARTBEAT`] so proxies keep
//! idle streams open.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Method, Response, header};
use eventsource_stream::Eventsource as _;
use futures_util::StreamExt as _;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use yelb_core::api;
use yelb_core::wire::{LiveState, ReplicasBody, SpreadEvent, StatsBody, VotesBody};
use yelb_service::StreamSlot;

use super::error::UiError;
use super::proxy::Upstream;

/// The shortest gap between two updates to one screen.
pub const MIN_GAP: Duration = Duration::from_millis(200);
/// How often the pump reads the replicas for the spread panel.
pub const SPREAD_EVERY: Duration = Duration::from_secs(1);
/// How often the pump re-reads the counts besides the stream.
pub const REREAD_EVERY: Duration = Duration::from_secs(5);
/// How often an idle screen gets a heartbeat comment.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// The range a screen's reconnection delay (`retry:`) is picked from.
const RETRY_MS: std::ops::Range<u64> = 1_000..6_000;
/// How long the pump waits before asking an app server without an event
/// stream (the original) again.
const MISSING_PAUSE: Duration = Duration::from_secs(30);
/// The shortest pause between two attempts to subscribe.
const MIN_RETRY: Duration = Duration::from_millis(250);
/// The longest pause between two attempts to resubscribe.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Where the upstream subscription stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstate {
    /// Not tried yet.
    Unknown,
    /// Open: events arrive as they happen.
    Live,
    /// The app server has no event stream (it speaks only the original API).
    Missing,
    /// Not reachable, or dropped; being retried.
    Down,
}

impl Upstate {
    /// The word `/readyz` reports.
    pub const fn as_str(self) -> &'static str {
        match self {
            Upstate::Unknown => "unknown",
            Upstate::Live => "live",
            Upstate::Missing => "none (original API)",
            Upstate::Down => "down",
        }
    }
}

/// What every screen is sent, encoded once per change. Versions start at 1;
/// a screen that has sent version 0 of a part has sent nothing of it.
#[derive(Debug, Clone, Default)]
struct Frames {
    state: Bytes,
    state_version: u64,
    spread: Bytes,
    spread_version: u64,
    upstream: Bytes,
    upstream_version: u64,
    beat: u64,
}

/// The fan-out. Cloning shares it.
#[derive(Debug, Clone)]
pub struct Fanout {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    upstream: Upstream,
    frames: watch::Sender<Frames>,
    upstate: watch::Sender<Upstate>,
    /// The counts as folded from every event and re-read.
    live: std::sync::Mutex<LiveState>,
    started: AtomicBool,
    ever_live: AtomicBool,
    screens: AtomicUsize,
    subscriptions: AtomicU64,
    /// Wakes the pump from its back-off (a screen arrived while it was down).
    nudge: tokio::sync::Notify,
    stop: CancellationToken,
}

impl Fanout {
    /// A fan-out from `upstream`; nothing runs until the first screen.
    pub fn new(upstream: Upstream) -> Self {
        Fanout {
            inner: Arc::new(Inner {
                upstream,
                frames: watch::Sender::new(Frames::default()),
                upstate: watch::Sender::new(Upstate::Unknown),
                live: std::sync::Mutex::new(LiveState::default()),
                started: AtomicBool::new(false),
                ever_live: AtomicBool::new(false),
                screens: AtomicUsize::new(0),
                subscriptions: AtomicU64::new(0),
                nudge: tokio::sync::Notify::new(),
                stop: CancellationToken::new(),
            }),
        }
    }

    /// Screens open now.
    pub fn screens(&self) -> usize {
        self.inner.screens.load(Ordering::Relaxed)
    }

    /// Upstream subscriptions opened so far (one, unless it dropped).
    pub fn subscriptions(&self) -> u64 {
        self.inner.subscriptions.load(Ordering::Relaxed)
    }

    /// Where the upstream subscription stands.
    pub fn upstate(&self) -> Upstate {
        *self.inner.upstate.borrow()
    }

    /// Ends every screen's stream and the pump (at shutdown): the browsers
    /// reconnect after their own `retry:`.
    pub fn close(&self) {
        self.inner.stop.cancel();
    }

    /// Answers one screen's `GET /api/v1/events`, holding `slot` while it is
    /// open. Waits (at most `timeout`) for the first subscription's outcome:
    /// an app server without a stream gets the screen a 404 (it polls the
    /// original API then), one never reached a 502.
    pub async fn open(&self, slot: StreamSlot, timeout: Duration) -> Result<Response<Body>, UiError> {
        self.start();
        let mut upstate = self.inner.upstate.subscribe();
        let first = tokio::time::timeout(timeout, upstate.wait_for(|s| *s != Upstate::Unknown))
            .await
            .map(|state| state.map(|s| *s));
        let Ok(Ok(now)) = first else {
            return Err(UiError::UpstreamTimeout(self.inner.upstream.base()));
        };
        match now {
            Upstate::Missing => {
                return Err(UiError::Refused {
                    status: 404,
                    message: "this app server has no event stream (it speaks the original API)".to_owned(),
                });
            }
            Upstate::Down if !self.inner.ever_live.load(Ordering::Relaxed) => {
                // Try again now rather than at the end of the back-off: the
                // page retries shortly.
                self.inner.nudge.notify_one();
                return Err(UiError::Unreachable {
                    endpoint: self.inner.upstream.base(),
                    why: "its event stream cannot be opened".to_owned(),
                });
            }
            _ => {}
        }
        // Owed one state at once: wait (briefly) for the first to be folded.
        let mut frames = self.inner.frames.subscribe();
        let _ = tokio::time::timeout(timeout, frames.wait_for(|f| f.state_version > 0)).await;
        let retry = fastrand::u64(RETRY_MS);
        let screen = Screen {
            frames,
            sent: Sent::default(),
            prefix: Some(Bytes::from(format!("retry: {retry}\n\n"))),
            next_at: tokio::time::Instant::now(),
            stop: self.inner.stop.clone(),
            _count: ScreenCount::new(self.inner.clone()),
            _slot: slot,
        };
        // The first chunk is sent at once: the current frames, whatever they are.
        let body = futures_util::stream::unfold(screen, Screen::next);
        let mut response = Response::new(Body::from_stream(body));
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        // Tell nginx-style proxies in front not to buffer the stream.
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        Ok(response)
    }

    /// Starts the pump once.
    fn start(&self) {
        if self.inner.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let stop = inner.stop.clone();
            tokio::select! {
                () = stop.cancelled() => {}
                () = subscribe_forever(inner.clone()) => {}
                () = read_forever(inner.clone()) => {}
                () = beat_forever(inner) => {}
            }
        });
    }
}

/// Counts a screen while it lives.
#[derive(Debug)]
struct ScreenCount(Arc<Inner>);

impl ScreenCount {
    fn new(inner: Arc<Inner>) -> Self {
        inner.screens.fetch_add(1, Ordering::Relaxed);
        ScreenCount(inner)
    }
}

impl Drop for ScreenCount {
    fn drop(&mut self) {
        self.0.screens.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The versions of each part a screen was last sent.
#[derive(Debug, Default, Clone, Copy)]
struct Sent {
    state: u64,
    spread: u64,
    upstream: u64,
    beat: u64,
}

/// One open screen: what it has been sent, and when it may be sent more.
struct Screen {
    frames: watch::Receiver<Frames>,
    sent: Sent,
    /// Sent before the first frames (`retry:`).
    prefix: Option<Bytes>,
    next_at: tokio::time::Instant,
    stop: CancellationToken,
    _count: ScreenCount,
    _slot: StreamSlot,
}

impl Screen {
    /// The next chunk: what changed since the last one, no sooner than
    /// [`MIN_GAP`] after it. `None` ends the stream (shutdown).
    async fn next(mut self) -> Option<(Result<Bytes, std::convert::Infallible>, Screen)> {
        tokio::select! {
            () = self.stop.cancelled() => return None,
            () = tokio::time::sleep_until(self.next_at) => {}
        }
        loop {
            if let Some(chunk) = self.take_news() {
                self.next_at = tokio::time::Instant::now() + MIN_GAP;
                return Some((Ok(chunk), self));
            }
            tokio::select! {
                () = self.stop.cancelled() => return None,
                changed = self.frames.changed() => if changed.is_err() { return None },
            }
        }
    }

    /// The bytes this screen has not been sent yet, if any.
    fn take_news(&mut self) -> Option<Bytes> {
        let frames = self.frames.borrow_and_update();
        let state = frames.state_version != self.sent.state && !frames.state.is_empty();
        let spread = frames.spread_version != self.sent.spread && !frames.spread.is_empty();
        let upstream = frames.upstream_version != self.sent.upstream && !frames.upstream.is_empty();
        let beat = frames.beat != self.sent.beat;
        self.sent = Sent {
            state: frames.state_version,
            spread: frames.spread_version,
            upstream: frames.upstream_version,
            beat: frames.beat,
        };
        let prefix = self.prefix.take();
        let parts: Vec<&Bytes> = [
            prefix.as_ref(),
            upstream.then_some(&frames.upstream),
            state.then_some(&frames.state),
            spread.then_some(&frames.spread),
        ]
        .into_iter()
        .flatten()
        .collect();
        match parts.as_slice() {
            [] if beat => Some(Bytes::from_static(b": heartbeat\n\n")),
            [] => None,
            [one] => Some((*one).clone()),
            many => Some(Bytes::from(many.iter().flat_map(|b| b.iter().copied()).collect::<Vec<u8>>())),
        }
    }
}

/// An SSE frame: `event: NAME`, one `data:` line of JSON.
fn frame(event: &str, json: &str) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {json}\n\n"))
}

impl Inner {
    /// Folds `state` into the counts and, if they changed, publishes them.
    fn fold(&self, state: &LiveState) {
        let (changed, live) = {
            let mut live = self.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            (live.merge(state) != yelb_core::wire::Merged::Unchanged, *live)
        };
        // The first state is published even if it is all zeros: screens
        // are owed one state as soon as they open.
        let first = self.frames.borrow().state_version == 0;
        if (changed || first)
            && let Ok(json) = serde_json::to_string(&live)
        {
            let bytes = frame(api::EVENT_STATE, &json);
            self.frames.send_modify(|f| {
                f.state = bytes;
                f.state_version += 1;
            });
        }
    }

    fn set_upstate(&self, state: Upstate) {
        if state == Upstate::Live {
            self.ever_live.store(true, Ordering::Relaxed);
        }
        let changed = self.upstate.send_if_modified(|s| {
            let changed = *s != state;
            *s = state;
            changed
        });
        // Screens hear of it only once they have been live: until then they
        // are refused instead.
        if changed && matches!(state, Upstate::Live | Upstate::Down) && self.ever_live.load(Ordering::Relaxed)
        {
            let bytes = frame(
                api::EVENT_UPSTREAM,
                if state == Upstate::Live { r#"{"live":true}"# } else { r#"{"live":false}"# },
            );
            self.frames.send_modify(|f| {
                f.upstream = bytes;
                f.upstream_version += 1;
            });
        }
    }

    fn idle(&self) -> bool {
        self.screens.load(Ordering::Relaxed) == 0
    }
}

/// Holds the upstream subscription, reopening it when it drops.
async fn subscribe_forever(inner: Arc<Inner>) {
    let mut backoff = Duration::from_millis(500);
    loop {
        match inner.upstream.open_events().await {
            Ok(Some(response)) => {
                inner.subscriptions.fetch_add(1, Ordering::Relaxed);
                inner.set_upstate(Upstate::Live);
                backoff = Duration::from_millis(500);
                let mut events = response.into_body().into_data_stream().eventsource();
                while let Some(event) = events.next().await {
                    let Ok(event) = event else { break };
                    if event.event == api::EVENT_STATE
                        && let Ok(state) = serde_json::from_str::<LiveState>(&event.data)
                    {
                        inner.fold(&state);
                    }
                }
                tracing::info!("the app server's event stream ended; resubscribing");
                inner.set_upstate(Upstate::Down);
            }
            Ok(None) => {
                inner.set_upstate(Upstate::Missing);
                tokio::time::sleep(MISSING_PAUSE).await;
                continue;
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot subscribe to the app server's events");
                inner.set_upstate(Upstate::Down);
            }
        }
        // Jittered, so UI replicas do not come back in step; cut short when
        // a screen asks, but never below the floor.
        let pause = backoff.mul_f64(0.5 + fastrand::f64());
        tokio::time::sleep(MIN_RETRY).await;
        tokio::select! {
            () = tokio::time::sleep(pause.saturating_sub(MIN_RETRY)) => {}
            () = inner.nudge.notified() => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// While screens are open: reads the replicas every [`SPREAD_EVERY`] and the
/// counts every [`REREAD_EVERY`] (every [`SPREAD_EVERY`] while the stream is
/// down), and publishes what it read.
async fn read_forever(inner: Arc<Inner>) {
    let timeout = Duration::from_secs(2);
    let mut previous: Option<(Instant, ReplicasBody)> = None;
    let mut last_reread = Instant::now();
    let mut tick = tokio::time::interval(SPREAD_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let upstate = *inner.upstate.borrow();
        if inner.idle() || upstate == Upstate::Missing || upstate == Upstate::Unknown {
            continue;
        }
        if let Ok(Some(answer)) =
            inner.upstream.call::<ReplicasBody>(Method::GET, api::REPLICAS, timeout).await
        {
            let now = Instant::now();
            let rates = previous.as_ref().map(|(then, before)| rates(before, &answer.body, now - *then));
            let event = SpreadEvent { body: answer.body.clone(), rates: rates.unwrap_or_default() };
            if let Ok(json) = serde_json::to_string(&event) {
                let bytes = frame(api::EVENT_SPREAD, &json);
                inner.frames.send_modify(|f| {
                    f.spread = bytes;
                    f.spread_version += 1;
                });
            }
            previous = Some((now, answer.body));
        }
        if upstate == Upstate::Down || last_reread.elapsed() >= REREAD_EVERY {
            last_reread = Instant::now();
            reread(&inner, timeout).await;
        }
    }
}

/// Re-reads the counts and page views and folds them in. The votes are read
/// first and their epoch stamps both: a reset landing in between can then
/// only put a post-reset figure under the old epoch, which the reset's own
/// event replaces.
async fn reread(inner: &Inner, timeout: Duration) {
    let Ok(Some(votes)) = inner.upstream.call::<VotesBody>(Method::GET, api::VOTES, timeout).await else {
        return;
    };
    let pageviews = match inner.upstream.call::<StatsBody>(Method::GET, api::STATS, timeout).await {
        Ok(Some(stats)) => stats.body.pageviews,
        _ => 0,
    };
    inner.fold(&LiveState { votes: votes.body.votes, pageviews, epoch: votes.body.epoch });
}

/// Requests per second each replica in `now` served since `before`.
fn rates(before: &ReplicasBody, now: &ReplicasBody, elapsed: Duration) -> Vec<(String, f64)> {
    let secs = elapsed.as_secs_f64().max(0.001);
    now.replicas
        .iter()
        .filter_map(|r| {
            let then = before.replicas.iter().find(|b| b.hostname == r.hostname)?;
            Some((r.hostname.clone(), r.served.saturating_sub(then.served) as f64 / secs))
        })
        .collect()
}

/// Bumps the heartbeat every [`HEARTBEAT`].
async fn beat_forever(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.tick().await;
    loop {
        tick.tick().await;
        inner.frames.send_modify(|f| f.beat += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yelb_core::wire::ReplicaInfo;

    fn body(served: &[(&str, u64)]) -> ReplicasBody {
        ReplicasBody {
            hostname: "a".into(),
            replicas: served
                .iter()
                .map(|(h, n)| ReplicaInfo {
                    hostname: (*h).into(),
                    served: *n,
                    last_seen_ms: 0,
                    placement: None,
                })
                .collect(),
            faults: vec![],
            backends: None,
        }
    }

    #[test]
    fn rates_are_per_second_and_only_for_replicas_seen_twice() {
        let before = body(&[("a", 100), ("b", 10)]);
        let now = body(&[("a", 300), ("b", 10), ("c", 50)]);
        let r = rates(&before, &now, Duration::from_secs(2));
        assert_eq!(r, vec![("a".to_owned(), 100.0), ("b".to_owned(), 0.0)]);
    }

    #[test]
    fn a_frame_is_one_named_event_with_one_data_line() {
        let f = frame("state", r#"{"a":1}"#);
        assert_eq!(&f[..], b"event: state\ndata: {\"a\":1}\n\n");
    }
}
