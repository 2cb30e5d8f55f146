//! The browser side (the `hydrate` feature): talks to the app server through
//! the UI's `/api` and moves [`Ui`]'s signals.
//!
//! - [`start`]: runs once after hydration: finds out which API the app server
//!   speaks, counts the page view if the server could not, then keeps the
//!   page current: an `EventSource` on `/api/v1/events` when there is one,
//!   re-reading every [`POLL_MS`] when there is not (the original API, or the
//!   stream dropped; every [`REFUSED_POLL_MS`] when the stream was refused,
//!   a full UI), and retrying the stream with a growing, jittered pause.
//! - Through the UI's fan-out the stream also carries the spread (`spread`
//!   events: replicas, rates, faults) and the fan-out re-reads the counts
//!   itself, so a live page sends no request of its own until it votes.
//! - [`vote`]: casts a vote, waits for its answer and shows the count from it.
//! - Without `spread` events (the app server's own stream, `UI_ENV=dev`) the
//!   spread loop reads `/api/v1/replicas` every [`SPREAD_MS`] and the live
//!   page re-reads the counts every [`LIVE_POLL_MS`]. Every answer, whatever
//!   it was for, adds its hostname to the spread panel.

use gloo_timers::future::sleep;
use leptos::prelude::*;
use leptos::task::spawn_local;
use std::time::Duration;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use wasm_bindgen_futures::JsFuture;
use web_sys::{EventSource, Headers, MessageEvent, RequestInit, Response};
use yelb_core::wire::{
    ErrorBody, LegacyStats, LegacyVote, LiveState, ReplicasBody, SpreadEvent, StatsBody, VoteReceipt,
    VotesBody, counts_from_legacy,
};
use yelb_core::{Restaurant, api};

use crate::decode::{self, Decode};
use crate::model::{ApiLevel, Notice, SNAPSHOT_ID, Snapshot};
use crate::state::{LiveStatus, Ui};

/// How often the page re-reads the counts when it has no event stream.
pub const POLL_MS: u64 = 2_000;
/// How often the spread panel re-reads the cluster's request counts.
pub const SPREAD_MS: u64 = 2_000;
/// How often a live page re-reads the counts anyway: in a mixed cluster,
/// votes cast through an original app server publish no event.
pub const LIVE_POLL_MS: u64 = 5_000;
/// How often a page re-reads the counts when its stream was refused (the UI
/// is at its cap): slower than [`POLL_MS`], so a full house polls gently.
pub const REFUSED_POLL_MS: u64 = 5_000;
/// Sends of one vote at most, while the app server cannot answer.
const VOTE_ATTEMPTS: u32 = 4;
/// The first pause before a vote is sent again; it doubles each time.
const VOTE_RETRY_MS: u64 = 300;

/// A key for one click: time and randomness enough that two phones never
/// pick the same one.
fn idempotency_key() -> String {
    let random = || (js_sys::Math::random() * 4_294_967_296.0) as u64;
    format!("{:x}-{:08x}{:08x}", js_sys::Date::now() as u64, random(), random())
}

/// The longest pause between two attempts to reopen the event stream.
const MAX_RETRY_MS: u64 = 10_000;

/// Why a request to the app server failed, in words for the notice bar.
#[derive(Debug, Clone)]
enum ApiError {
    /// No answer at all (network), or the UI's server could not reach the app server.
    Unreachable(String),
    /// The app server does not have this route (it speaks only the original API).
    NotFound,
    /// Any other refusal, with the app server's own message.
    Refused(u16, String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Unreachable(why) => write!(f, "the app server cannot be reached ({why})"),
            ApiError::NotFound => f.write_str("the app server does not know this request"),
            ApiError::Refused(status, why) => write!(f, "the app server refused it ({status}: {why})"),
        }
    }
}

/// The snapshot the server rendered into the page.
pub fn read_snapshot() -> Snapshot {
    let text = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id(SNAPSHOT_ID))
        .and_then(|e| e.text_content());
    text.and_then(|t| decode::parse(&t)).unwrap_or_else(|| Snapshot::empty("Yelb"))
}

/// Where API calls go: this origin, or the app server's own URL (`UI_ENV=dev`).
#[derive(Debug, Clone)]
struct Api {
    base: String,
}

impl Api {
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request and reads a JSON answer, noting who answered (our app
    /// server names itself in `X-Served-By` on every answer).
    async fn send<T: Decode>(
        &self,
        ui: Ui,
        method: &str,
        path: &str,
        key: Option<&str>,
    ) -> Result<T, ApiError> {
        let response = fetch(method, &self.url(path), key).await?;
        if let Ok(Some(host)) = response.headers().get(api::SERVED_BY) {
            ui.answered_by(&host);
        }
        read(response).await
    }

    async fn get<T: Decode>(&self, ui: Ui, path: &str) -> Result<T, ApiError> {
        self.send(ui, "GET", path, None).await
    }

    async fn post<T: Decode>(&self, ui: Ui, path: &str) -> Result<T, ApiError> {
        self.send(ui, "POST", path, None).await
    }

    /// A vote that is safe to send again: on this origin it carries an
    /// `Idempotency-Key` (the app server counts a key once) and is retried
    /// while the app server cannot answer. Cross-origin (`UI_ENV=dev`) the
    /// original's CORS headers do not allow the key, so it is sent once.
    async fn vote(&self, ui: Ui, path: &str) -> Result<VoteReceipt, ApiError> {
        if !self.base.is_empty() {
            return self.post(ui, path).await;
        }
        let key = idempotency_key();
        let mut wait = VOTE_RETRY_MS;
        let mut attempt = 1;
        loop {
            match self.send(ui, "POST", path, Some(&key)).await {
                Err(ApiError::Unreachable(_)) if attempt < VOTE_ATTEMPTS => {
                    sleep(Duration::from_millis(wait)).await;
                    wait *= 2;
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }
}

/// The JavaScript error's message, or its text.
fn js_message(error: &wasm_bindgen::JsValue) -> String {
    error
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| error.as_string())
        .unwrap_or_else(|| "no answer".to_owned())
}

/// `fetch` on this window, with the vote's `Idempotency-Key` when given.
/// (web-sys directly: a fetch wrapper crate weighed 5 KB in the bundle
/// every phone downloads.)
async fn fetch(method: &str, url: &str, key: Option<&str>) -> Result<Response, ApiError> {
    let unreachable = |e: wasm_bindgen::JsValue| ApiError::Unreachable(js_message(&e));
    let init = RequestInit::new();
    init.set_method(method);
    if let Some(key) = key {
        let headers = Headers::new().map_err(unreachable)?;
        headers.set(api::IDEMPOTENCY_KEY, key).map_err(unreachable)?;
        init.set_headers(&headers);
    }
    let window = web_sys::window().ok_or_else(|| ApiError::Unreachable("no window".to_owned()))?;
    let answer = JsFuture::from(window.fetch_with_str_and_init(url, &init)).await.map_err(unreachable)?;
    answer.dyn_into::<Response>().map_err(unreachable)
}

/// The answer's body as text.
async fn text(response: &Response) -> Result<String, String> {
    let promise = response.text().map_err(|e| js_message(&e))?;
    let body = JsFuture::from(promise).await.map_err(|e| js_message(&e))?;
    Ok(body.as_string().unwrap_or_default())
}

async fn read<T: Decode>(response: Response) -> Result<T, ApiError> {
    let status = response.status();
    let body = text(&response).await;
    if response.ok() {
        return body
            .and_then(|b| {
                decode::parse::<T>(&b).ok_or_else(|| "an answer that is not the expected JSON".to_owned())
            })
            .map_err(|e| ApiError::Refused(status, e));
    }
    let message = match body.ok().and_then(|b| decode::parse::<ErrorBody>(&b)) {
        Some(body) => body.error,
        None => response.status_text(),
    };
    Err(match status {
        s if api::is_missing_route(s) => ApiError::NotFound,
        502..=504 => ApiError::Unreachable(message),
        _ => ApiError::Refused(status, message),
    })
}

/// Starts keeping the page current. Called once, right after hydration.
pub fn start(ui: Ui, snapshot: &Snapshot) {
    let api = Api { base: ui.api_base.get_value() };
    let view_counted = snapshot.view_counted;
    spawn_local(keep_current(ui, api.clone(), view_counted));
    spawn_local(watch_spread(ui, api));
    if let Some(body) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.body()) {
        // Tests and people alike can tell a hydrated page from a static one,
        // and the benchmark reads when it became interactive.
        let _ = body.set_attribute("data-hydrated", "true");
    }
    if let Some(performance) = web_sys::window().and_then(|w| w.performance()) {
        let _ = performance.mark("yelb:hydrated");
    }
}

/// Casts one vote and waits for its answer; the count shown is the app
/// server's answer, never a guess.
pub fn vote(ui: Ui, restaurant: Restaurant) {
    if ui.pending.get_untracked().is_some() {
        return;
    }
    let api = Api { base: ui.api_base.get_value() };
    ui.pending.set(Some(restaurant));
    spawn_local(async move {
        match cast(ui, &api, restaurant).await {
            Ok(count) => {
                let mut votes = ui.votes.get_untracked();
                *votes.get_mut(restaurant) = count;
                ui.merge_votes(&votes);
                if ui.notice.with_untracked(|n| n.as_ref().is_some_and(|n| n.is_error)) {
                    ui.notice.set(None);
                }
            }
            Err(e) => ui.notice.set(Some(Notice::error(format!(
                "Your vote for {} did not go through: {e}. Please try again.",
                restaurant.display_name()
            )))),
        }
        ui.pending.set(None);
    });
}

async fn cast(ui: Ui, api: &Api, restaurant: Restaurant) -> Result<i64, ApiError> {
    if ui.api.get_untracked() != ApiLevel::Legacy {
        match api.vote(ui, &api::vote(restaurant)).await {
            Ok(receipt) => {
                if !fanned(ui) {
                    refresh_pageviews(ui, api).await;
                }
                return Ok(receipt.count);
            }
            Err(ApiError::NotFound) => ui.api.set(ApiLevel::Legacy),
            Err(e) => return Err(e),
        }
    }
    // The original API votes with GET and answers the bare count; its answers
    // carry no hostname, so ask for it (the original UI never did).
    let count = api.get::<i64>(ui, &api::legacy_vote(restaurant)).await?;
    if let Ok(answer) = fetch("GET", &api.url(api::HOSTNAME), None).await
        && let Ok(host) = text(&answer).await
        && !host.is_empty()
    {
        ui.answered_by(host.trim());
    }
    Ok(count)
}

/// Whether the stream is the UI's fan-out, which brings the spread, the page
/// views and the re-read counts by itself (a `spread` event lately).
fn fanned(ui: Ui) -> bool {
    let at = ui.spread_at.get_value();
    at > 0.0
        && js_sys::Date::now() - at < 3.0 * SPREAD_MS as f64
        && ui.live.get_untracked() == LiveStatus::Live
}

/// `ms` scaled by a random factor in 0.5..1.5, so pages do not act in step.
fn jittered(ms: u64) -> u64 {
    (ms as f64 * (0.5 + js_sys::Math::random())) as u64
}

async fn refresh_pageviews(ui: Ui, api: &Api) {
    if let Ok(stats) = api.get::<StatsBody>(ui, api::STATS).await {
        ui.merge_pageviews(stats.pageviews);
    }
}

/// Finds out which API the app server speaks, and counts this page view if
/// the server could not when it rendered the page.
async fn introduce(ui: Ui, api: &Api, view_counted: bool) -> Result<(), ApiError> {
    if ui.api.get_untracked() == ApiLevel::Unknown {
        match api.get::<ReplicasBody>(ui, api::REPLICAS).await {
            Ok(body) => {
                ui.faults.set(body.faults);
                ui.replicas.set(body.replicas);
                ui.api.set(ApiLevel::Modern);
            }
            Err(ApiError::NotFound) => ui.api.set(ApiLevel::Legacy),
            Err(e) => return Err(e),
        }
    }
    if !view_counted {
        let pageviews = if ui.api.get_untracked() == ApiLevel::Modern {
            api.post::<StatsBody>(ui, api::PAGEVIEWS).await?.pageviews
        } else {
            // The original's answers carry no X-Served-By; its body names the host.
            let stats = api.get::<LegacyStats>(ui, api::GETSTATS).await?;
            ui.answered_by(&stats.hostname);
            stats.pageviews
        };
        ui.merge_pageviews(pageviews);
    }
    Ok(())
}

/// Re-reads the counts (and, on our API, the page views) once.
async fn poll(ui: Ui, api: &Api) -> Result<(), ApiError> {
    if ui.api.get_untracked() == ApiLevel::Modern {
        let body = api.get::<VotesBody>(ui, api::VOTES).await?;
        ui.merge_votes_in(body.epoch, &body.votes);
        refresh_pageviews(ui, api).await;
    } else {
        let body = api.get::<Vec<LegacyVote>>(ui, api::GETVOTES).await?;
        ui.merge_votes(&counts_from_legacy(&body));
    }
    Ok(())
}

/// The page's update loop: introduce, then stream (or poll), forever.
async fn keep_current(ui: Ui, api: Api, mut view_counted: bool) {
    let mut retry_ms = 1_000;
    loop {
        if let Err(e) = introduce(ui, &api, view_counted).await {
            ui.live.set(LiveStatus::Offline);
            leptos::logging::debug_warn!("app server not reachable: {e}");
            sleep(Duration::from_millis(POLL_MS)).await;
            continue;
        }
        if !view_counted {
            view_counted = true;
            // The first answer after an outage: catch up on everything missed.
            let _ = poll(ui, &api).await;
        }
        if ui.api.get_untracked() == ApiLevel::Modern {
            let opened = stream(ui, &api).await;
            if opened {
                retry_ms = 1_000;
            }
            // The stream is gone for good (the app server or the UI's server
            // went away, or it was refused): poll until it is time to try
            // again, gently when refused, and never in step with other pages.
            ui.live.set(LiveStatus::Polling);
            let every = if opened { POLL_MS.min(retry_ms) } else { REFUSED_POLL_MS };
            let until = js_sys::Date::now() + jittered(retry_ms) as f64;
            loop {
                sleep(Duration::from_millis(jittered(every))).await;
                if poll(ui, &api).await.is_err() {
                    ui.live.set(LiveStatus::Offline);
                }
                if js_sys::Date::now() >= until {
                    break;
                }
            }
            retry_ms = (retry_ms * 2).min(MAX_RETRY_MS);
        } else {
            ui.live.set(match poll(ui, &api).await {
                Ok(()) => LiveStatus::Polling,
                Err(_) => LiveStatus::Offline,
            });
            sleep(Duration::from_millis(POLL_MS)).await;
        }
    }
}

/// Follows `/api/v1/events` until the browser gives the stream up (it retries
/// short drops by itself; a refused reconnection closes it). Returns whether
/// the stream was ever open.
async fn stream(ui: Ui, api: &Api) -> bool {
    let Ok(source) = EventSource::new(&api.url(api::EVENTS)) else {
        return false;
    };
    ui.live.set(LiveStatus::Connecting);
    let opened = RwSignal::new(false);
    let on_state = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        if let Some(text) = event.data().as_string()
            && let Some(state) = decode::parse::<LiveState>(&text)
        {
            ui.merge_live(&state);
        }
    });
    let on_spread = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        if let Some(text) = event.data().as_string()
            && let Some(spread) = decode::parse::<SpreadEvent>(&text)
        {
            ui.spread_at.set_value(js_sys::Date::now());
            ui.show_spread(spread.body, spread.rates);
        }
    });
    // The fan-out's own subscription dropped (the app server went away) or
    // came back: the counts shown are not moving meanwhile.
    let on_upstream = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        if let Some(text) = event.data().as_string() {
            ui.live.set(if text.contains("true") { LiveStatus::Live } else { LiveStatus::Connecting });
        }
    });
    let on_open = Closure::<dyn FnMut()>::new(move || {
        opened.set(true);
        ui.live.set(LiveStatus::Live);
    });
    let on_error = Closure::<dyn FnMut()>::new(move || ui.live.set(LiveStatus::Connecting));
    let _ = source.add_event_listener_with_callback(api::EVENT_STATE, on_state.as_ref().unchecked_ref());
    let _ = source.add_event_listener_with_callback(api::EVENT_SPREAD, on_spread.as_ref().unchecked_ref());
    let _ =
        source.add_event_listener_with_callback(api::EVENT_UPSTREAM, on_upstream.as_ref().unchecked_ref());
    source.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    source.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    let mut next_poll = js_sys::Date::now() + LIVE_POLL_MS as f64;
    while source.ready_state() != EventSource::CLOSED {
        sleep(Duration::from_millis(500)).await;
        if source.ready_state() == EventSource::OPEN && js_sys::Date::now() >= next_poll {
            // The fan-out re-reads for every screen at once; the app
            // server's own stream does not. Merging a read never undoes an
            // event (counts only grow within an epoch).
            if !fanned(ui) {
                let _ = poll(ui, api).await;
            }
            next_poll = js_sys::Date::now() + LIVE_POLL_MS as f64;
        }
    }
    source.close();
    source.set_onopen(None);
    source.set_onerror(None);
    let _ = source.remove_event_listener_with_callback(api::EVENT_STATE, on_state.as_ref().unchecked_ref());
    let _ = source.remove_event_listener_with_callback(api::EVENT_SPREAD, on_spread.as_ref().unchecked_ref());
    let _ =
        source.remove_event_listener_with_callback(api::EVENT_UPSTREAM, on_upstream.as_ref().unchecked_ref());
    opened.get_untracked()
}

/// Keeps the spread panel's cluster-wide counts current (our API only).
async fn watch_spread(ui: Ui, api: Api) {
    // The previous read's counts and time, for requests per second.
    let mut previous: (f64, Vec<(String, u64)>) = (js_sys::Date::now(), Vec::new());
    loop {
        sleep(Duration::from_millis(SPREAD_MS)).await;
        if ui.api.get_untracked() != ApiLevel::Modern || fanned(ui) {
            continue;
        }
        match api.get::<ReplicasBody>(ui, api::REPLICAS).await {
            Ok(body) => {
                let now = js_sys::Date::now();
                let secs = ((now - previous.0) / 1000.0).max(0.001);
                let rates = body
                    .replicas
                    .iter()
                    .map(|r| {
                        let before =
                            previous.1.iter().find(|(h, _)| *h == r.hostname).map_or(r.served, |(_, n)| *n);
                        (r.hostname.clone(), r.served.saturating_sub(before) as f64 / secs)
                    })
                    .collect();
                previous = (now, body.replicas.iter().map(|r| (r.hostname.clone(), r.served)).collect());
                ui.show_spread(body, rates);
            }
            Err(ApiError::NotFound) => ui.api.set(ApiLevel::Legacy),
            Err(_) => {}
        }
    }
}
