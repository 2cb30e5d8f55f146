//! The page and the no-JavaScript vote.
//!
//! - [`page`]: `GET /`: reads the app server (votes, a counted page view,
//!   which API it speaks) into a [`Snapshot`], then renders the Leptos app
//!   with it. If the app server does not answer within [`RENDER_WAIT`], the
//!   page is rendered anyway and the browser catches up when it can.
//! - [`vote`]: `POST /vote/{restaurant}`: the cards' form target, so a vote
//!   works before hydration or without JavaScript. It casts the vote and
//!   redirects back to the page (303, post/redirect/get), which names the outcome.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use leptos::nonce::Nonce;
use leptos::prelude::provide_context;
use qrcode::{Color, QrCode};
use serde::Deserialize;
use yelb_core::wire::{LegacyStats, LegacyVote, ReplicasBody, VoteReceipt, counts_from_legacy};
use yelb_core::{Restaurant, api};

use super::UiState;
use super::error::UiError;
use super::security::{CSP, content_security_policy};
use crate::app::shell;
use crate::model::{ApiLevel, Notice, Snapshot};

/// The longest the page waits for the app server before rendering without it.
pub const RENDER_WAIT: Duration = Duration::from_millis(1500);

/// The page's query string: the outcome of a no-JavaScript vote.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    voted: Option<String>,
    vote_failed: Option<String>,
    /// Why it failed: `unreachable` (no answer) or `refused` (an error answer).
    why: Option<String>,
    /// The presenter view's theme: `dark` or `light`.
    theme: Option<String>,
}

impl PageQuery {
    fn notice(&self) -> Option<Notice> {
        let name = |slug: &str| slug.parse::<Restaurant>().ok().map(Restaurant::display_name);
        if let Some(name) = self.vote_failed.as_deref().and_then(name) {
            let why = match self.why.as_deref() {
                Some("refused") => "the app server could not take it just now",
                _ => "the app server is not answering",
            };
            return Some(Notice::error(format!(
                "Your vote for {name} did not go through: {why}. Please try again."
            )));
        }
        self.voted
            .as_deref()
            .and_then(name)
            .map(|name| Notice::info(format!("Thanks! Your vote for {name} is counted.")))
    }
}

/// `GET /`.
pub async fn page(state: State<UiState>, query: Query<PageQuery>, request: Request<Body>) -> Response {
    render(state, query, request, false).await
}

/// `GET /present`: the presenter view, for the projector.
pub async fn present(state: State<UiState>, query: Query<PageQuery>, request: Request<Body>) -> Response {
    render(state, query, request, true).await
}

async fn render(
    State(state): State<UiState>,
    Query(query): Query<PageQuery>,
    request: Request<Body>,
    present: bool,
) -> Response {
    let mut snapshot = snapshot(&state, request.headers(), query.notice()).await;
    snapshot.present = present;
    snapshot.theme = match query.theme.as_deref() {
        Some("dark") => Some("dark".to_owned()),
        Some("light") => Some("light".to_owned()),
        _ => None,
    };
    let options = if present { state.leptos_present.clone() } else { state.leptos.clone() };
    // One nonce per answer: Leptos writes it on its inline hydration script,
    // and the policy allows only scripts that carry it (or come from here).
    let nonce = Nonce::new();
    let csp = content_security_policy(&nonce, &state.config.api_base);
    let render = leptos_axum::render_app_async_with_context(
        move || {
            provide_context(snapshot.clone());
            provide_context(nonce.clone());
        },
        move || shell(options.clone()),
    );
    let mut response = render(request).await;
    let headers = response.headers_mut();
    // Always fresh: the page carries live numbers.
    headers.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    headers.insert(CSP, csp);
    response
}

/// Everything the page needs from the app server, read concurrently.
pub async fn snapshot(state: &UiState, headers: &HeaderMap, notice: Option<Notice>) -> Snapshot {
    let wait = RENDER_WAIT.min(state.config.upstream_timeout);
    let up = &state.upstream;
    let (votes, stats, replicas) = tokio::join!(
        up.call::<Vec<LegacyVote>>(Method::GET, api::GETVOTES, wait),
        // The original's call: counts this page view and names the app server.
        up.call::<LegacyStats>(Method::GET, api::GETSTATS, wait),
        up.call::<ReplicasBody>(Method::GET, api::REPLICAS, wait),
    );
    let audience = audience(state, headers);
    let mut snapshot = Snapshot::empty(&state.config.title);
    snapshot.qr_svg = qr_svg(&audience.url);
    snapshot.public_url = audience.url;
    snapshot.other_urls = audience.others;
    snapshot.url_warning = audience.warning;
    snapshot.api_base = state.config.api_base.clone();
    snapshot.notice = notice;
    if let Ok(Some(answer)) = votes {
        snapshot.votes = Some(counts_from_legacy(&answer.body));
    }
    if let Ok(Some(answer)) = stats {
        snapshot.hostname = Some(answer.body.hostname);
        snapshot.pageviews = Some(answer.body.pageviews);
        snapshot.view_counted = true;
    }
    snapshot.api = ApiLevel::from_probe(match replicas {
        Ok(Some(answer)) => {
            snapshot.replicas = answer.body.replicas;
            snapshot.backends = answer.body.backends;
            Some(200)
        }
        Ok(None) => Some(404),
        Err(_) => None,
    });
    if snapshot.votes.is_none() && snapshot.notice.is_none() {
        snapshot.notice = Some(Notice::error(
            "The app server is not answering yet. This page will update by itself as soon as it does.",
        ));
    }
    snapshot
}

/// Where the QR code sends the audience ([`super::audience`]): the
/// configured public URL, or the one this request was made to (as the
/// browser saw it, through any proxy that says so), or, when that is a
/// loopback address, this machine's LAN address.
fn audience(state: &UiState, headers: &HeaderMap) -> super::audience::Audience {
    use super::audience::{choose, is_loopback_host, lan_addresses};
    let configured = state.config.public_url.as_deref();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let host = header("x-forwarded-host").or_else(|| header("host")).unwrap_or_default();
    let proto = match header("x-forwarded-proto") {
        Some("https") => "https",
        _ => "http",
    };
    // A Host header is the client's to choose; accept only a plain host[:port].
    let plain = !host.is_empty()
        && host.len() <= 255
        && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    let host = plain.then_some(host);
    // The interfaces are looked at only for the speaker's own loopback page.
    let lan =
        if configured.is_none() && host.is_some_and(is_loopback_host) { lan_addresses() } else { Vec::new() };
    choose(configured, proto, host, &lan)
}

/// The QR code of `url` as an inline SVG element: one path of horizontal
/// runs of dark modules, a few kilobytes even for long URLs, scaled by CSS.
pub fn qr_svg(url: &str) -> String {
    const QUIET: usize = 4;
    let Ok(code) = QrCode::new(url.as_bytes()) else {
        return String::new();
    };
    let width = code.width();
    let colors = code.to_colors();
    let mut path = String::new();
    for (y, row) in colors.chunks(width).enumerate() {
        let mut x = 0;
        while x < width {
            if row[x] == Color::Dark {
                let start = x;
                while x < width && row[x] == Color::Dark {
                    x += 1;
                }
                let run = x - start;
                path.push_str(&format!("M{} {}h{run}v1h-{run}z", start + QUIET, y + QUIET));
            } else {
                x += 1;
            }
        }
    }
    let size = width + 2 * QUIET;
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" shape-rendering="crispEdges" role="img" aria-label="QR code"><rect width="{size}" height="{size}" fill="#fff"/><path fill="#000" d="{path}"/></svg>"##
    )
}

/// `POST /vote/{restaurant}`.
pub async fn vote(State(state): State<UiState>, Path(name): Path<String>) -> Result<Response, Response> {
    let restaurant =
        name.parse::<Restaurant>().map_err(|e| (StatusCode::NOT_FOUND, e.to_string()).into_response())?;
    let slug = restaurant.slug();
    let outcome = cast(&state, restaurant).await;
    if let Err(e) = &outcome {
        tracing::warn!(error = %e, restaurant = slug, "form vote failed");
    }
    let target = match outcome {
        Ok(()) => format!("/?voted={slug}"),
        Err(UiError::Refused { .. } | UiError::BadUpstream(_)) => format!("/?vote_failed={slug}&why=refused"),
        Err(_) => format!("/?vote_failed={slug}&why=unreachable"),
    };
    Ok(Redirect::to(&target).into_response())
}

/// Sends of one form vote at most, while the app server cannot answer.
const VOTE_ATTEMPTS: u32 = 3;

/// A fresh key for one form vote: the time, and randomness from the
/// standard library's per-process hash keys.
fn idempotency_key() -> api::IdempotencyKey {
    use std::hash::BuildHasher;
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let random = std::collections::hash_map::RandomState::new().hash_one(n);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("ui-{:x}-{random:016x}-{n:x}", now.as_millis()).parse().unwrap_or_else(|_| {
        // Only hex digits and dashes above: always a valid key.
        unreachable!("a hex key is always valid")
    })
}

async fn cast(state: &UiState, restaurant: Restaurant) -> Result<(), UiError> {
    let wait = state.config.upstream_timeout;
    // Retried with the same key while the app server cannot answer: it
    // counts the key once even if an earlier send counted and only its
    // answer was lost.
    let key = idempotency_key();
    let mut attempt = 1;
    let modern = loop {
        let sent = state
            .upstream
            .call_keyed::<VoteReceipt>(Method::POST, &api::vote(restaurant), wait, Some(&key))
            .await;
        match sent {
            Err(UiError::Unreachable { .. } | UiError::UpstreamTimeout(_)) if attempt < VOTE_ATTEMPTS => {}
            Err(UiError::Refused { status: 503, .. }) if attempt < VOTE_ATTEMPTS => {}
            other => break other?,
        }
        tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
        attempt += 1;
    };
    if modern.is_none() {
        // The original app server: it votes on GET and answers the bare count.
        let path = api::legacy_vote(restaurant);
        state.upstream.call::<i64>(Method::GET, &path, wait).await?.ok_or_else(|| UiError::Refused {
            status: 404,
            message: format!("the app server has no {path}"),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_qr_code_is_an_inline_svg_element() {
        let svg = qr_svg("http://yelb.example:8080/");
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        assert!(svg.ends_with("</svg>"));
        assert!(!svg.contains("<?xml"));
        assert!(svg.len() < 6_000, "compact: {} bytes", svg.len());
    }

    #[test]
    fn notices_name_the_restaurant_and_ignore_unknown_ones() {
        let voted = PageQuery { voted: Some("ihop".into()), ..PageQuery::default() };
        assert_eq!(voted.notice(), Some(Notice::info("Thanks! Your vote for IHOP is counted.")));
        let failed = PageQuery { vote_failed: Some("bucadibeppo".into()), ..PageQuery::default() };
        assert!(failed.notice().is_some_and(|n| n.is_error && n.text.contains("Buca di Beppo")));
        let refused = PageQuery {
            vote_failed: Some("ihop".into()),
            why: Some("refused".into()),
            ..PageQuery::default()
        };
        let text = refused.notice().unwrap().text;
        assert!(text.contains("could not take it") && !text.contains("not answering"), "{text}");
        let bogus = PageQuery { voted: Some("<script>".into()), ..PageQuery::default() };
        assert_eq!(bogus.notice(), None);
    }
}
