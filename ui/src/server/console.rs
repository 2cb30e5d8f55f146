//! The speaker's console at `/console`: stage control from a browser. Plain
//! server-rendered forms (an askama template, no JavaScript), so it works on
//! any laptop under the page's strict CSP.
//!
//! - Sign in with the app server's `YELB_ADMIN_TOKEN`: it is checked against
//!   the app server, then kept in an `HttpOnly`, `SameSite=Strict` cookie
//!   scoped to `/console` (so another site cannot make the browser post
//!   these forms with it).
//! - One-tap presets for the stage ([`Preset`]): a slow replica, a sick one
//!   (errors), an unready one, a crash, a CPU burn, a poisoned option, 100
//!   voters, reset; each on the replica picked above them (the first one by
//!   default) or on every replica.
//! - Reset the votes and page views; set a fault for every replica or one
//!   (from `/api/v1/replicas`); clear them all; start, resize and stop the
//!   audience simulator ([`super::simulator`]), which votes on the app
//!   server from this process. A bad field is named beside its input. The
//!   faults in force count down (`/console.js`, a nicety: without JavaScript
//!   the page shows the seconds left when it was loaded). Each action calls
//!   `/api/v1/admin/...` with the token and comes back to the page, which
//!   lists the faults in force. The app server's refusals are shown in its
//!   own words.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use yelb_core::wire::{FaultSpec, FaultsBody, ReplicasBody, ResetReceipt};

use super::UiState;
use super::error::UiError;

/// The cookie that keeps the token.
const COOKIE_NAME: &str = "yelb_admin";

#[derive(Template)]
#[template(path = "console.html")]
struct ConsolePage {
    title: String,
    signed_in: bool,
    notice: Option<String>,
    error: Option<String>,
    faults: Vec<FaultRow>,
    replicas: Vec<String>,
    /// The restaurants a fault may single out, as (slug, name).
    options: Vec<(&'static str, &'static str)>,
    sim: Option<SimView>,
    /// The fault form's field an error concerns (shown beside it), if any.
    error_field: Option<&'static str>,
    /// The presets, in the order of their buttons.
    presets: &'static [Preset],
}

impl ConsolePage {
    /// The error to show beside `field`'s input, if it concerns that field.
    fn error_for(&self, field: &str) -> Option<&str> {
        self.error_field.filter(|f| *f == field).and(self.error.as_deref())
    }

    /// The error to show at the top: any that no field claims.
    fn general_error(&self) -> Option<&str> {
        if self.error_field.is_some() { None } else { self.error.as_deref() }
    }
}

/// The fault form's fields, as the form and the app server's messages name them.
const FAULT_FIELDS: [&str; 5] =
    ["ttl_secs", "latency_ms", "latency_jitter_ms", "error_percent", "restaurant"];

/// The field an error message concerns: the first field name it starts
/// with (ours and the app server's messages begin `field: ...`).
fn field_of(message: &str) -> Option<&'static str> {
    let message = message.trim_start_matches("the app server refused the request (422): ");
    FAULT_FIELDS.into_iter().find(|f| message.starts_with(f) && message[f.len()..].starts_with([':', ',']))
}

/// One stage preset: a button that sets a ready-made fault, starts voters or resets.
pub struct Preset {
    /// Its form value.
    pub name: &'static str,
    /// Its button's label.
    pub label: &'static str,
    /// What it does, under the label.
    pub hint: &'static str,
}

/// Every preset, in the order of their buttons.
pub const PRESETS: &[Preset] = &[
    Preset { name: "slow", label: "Slow replica", hint: "+800 ms, 60 s" },
    Preset { name: "sick", label: "Sick replica", hint: "30% errors, 60 s" },
    Preset { name: "unready", label: "Unready", hint: "readiness off, 60 s" },
    Preset { name: "crash", label: "Crash one", hint: "exits once" },
    Preset { name: "burn", label: "Burn CPU", hint: "one core, 30 s" },
    Preset { name: "poisoned", label: "Poisoned option", hint: "IHOP votes fail 50%, 60 s" },
    Preset { name: "voters", label: "100 voters", hint: "50 votes/s, 2 min" },
    Preset { name: "reset", label: "Reset", hint: "votes to zero" },
];

/// The fault a preset sets on `target` (`None`: not a fault preset).
fn preset_fault(name: &str, target: &str) -> Option<FaultSpec> {
    let base = FaultSpec { scope: target.to_owned(), ttl_secs: 60, ..FaultSpec::default() };
    Some(match name {
        "slow" => FaultSpec { latency_ms: 800, latency_jitter_ms: 200, ..base },
        "sick" => FaultSpec { error_rate: 0.3, ..base },
        "unready" => FaultSpec { unready: true, ..base },
        "crash" => FaultSpec { crash: true, ..base },
        "burn" => FaultSpec { cpu_burn: true, ttl_secs: 30, ..base },
        "poisoned" => FaultSpec { error_rate: 0.5, restaurant: Some(yelb_core::Restaurant::Ihop), ..base },
        _ => return None,
    })
}

/// The simulator's run, in words.
struct SimView {
    state: &'static str,
    users: usize,
    elapsed: u64,
    duration: u64,
    votes: u64,
    per_second: String,
    replicas: String,
    errors: String,
}

/// One fault in force, in words.
struct FaultRow {
    scope: String,
    what: String,
    expires_in: u64,
}

/// The token from the request's cookie.
fn token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.to_owned())
        .filter(|t| !t.is_empty())
}

fn describe(spec: &FaultSpec) -> String {
    let mut words = Vec::new();
    if let Some(r) = spec.restaurant {
        words.push(format!("votes for {} only:", r.display_name()));
    }
    if spec.latency_ms > 0 || spec.latency_jitter_ms > 0 {
        words.push(format!("+{} ms (+0-{} ms)", spec.latency_ms, spec.latency_jitter_ms));
    }
    if spec.error_rate > 0.0 {
        words.push(format!("{:.0}% errors", spec.error_rate * 100.0));
    }
    for (on, word) in [
        (spec.unready, "readiness off"),
        (spec.unhealthy, "liveness off"),
        (spec.crash, "crash"),
        (spec.cpu_burn, "CPU burn"),
    ] {
        if on {
            words.push(word.to_owned());
        }
    }
    words.join(", ")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn html(status: StatusCode, page: &ConsolePage) -> Response {
    match page.render() {
        Ok(body) => (status, [(CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response(),
        Err(e) => UiError::BadUpstream(format!("the console page did not render: {e}")).into_response(),
    }
}

fn back_to(done: &str) -> Response {
    let location = format!("/console?done={done}");
    (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response()
}

/// What `?done=` says happened.
#[derive(Deserialize)]
pub struct Done {
    done: Option<String>,
}

/// `GET /console`.
pub async fn page(State(state): State<UiState>, headers: HeaderMap, Query(done): Query<Done>) -> Response {
    let notice = done.done.as_deref().and_then(|d| match d {
        "reset" => Some("Votes and page views are back at zero on every replica.".to_owned()),
        "fault" => Some("Fault set.".to_owned()),
        "cleared" => Some("Every fault cleared.".to_owned()),
        "signed-in" => Some("Signed in.".to_owned()),
        "simulating" => Some("The audience simulator is voting.".to_owned()),
        "resized" => Some("The audience simulator changed its number of voters.".to_owned()),
        "stopped" => Some("The audience simulator stopped.".to_owned()),
        _ => None,
    });
    render(&state, &headers, notice, None, StatusCode::OK).await
}

async fn render(
    state: &UiState,
    headers: &HeaderMap,
    notice: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let mut page = ConsolePage {
        title: state.config.title.clone(),
        signed_in: false,
        notice,
        error,
        faults: Vec::new(),
        replicas: Vec::new(),
        options: yelb_core::Restaurant::ALL.iter().map(|r| (r.slug(), r.display_name())).collect(),
        sim: None,
        error_field: None,
        presets: PRESETS,
    };
    page.error_field = page.error.as_deref().and_then(field_of);
    if let Some(token) = token(headers) {
        match state
            .upstream
            .call_admin::<FaultsBody>(Method::GET, yelb_core::api::ADMIN_FAULTS, &token, None, headers)
            .await
        {
            Ok(body) => {
                page.signed_in = true;
                let now = now_ms();
                page.faults = body
                    .faults
                    .iter()
                    .map(|f| FaultRow {
                        scope: f.spec.slot(),
                        what: describe(&f.spec),
                        expires_in: f.expires_at_ms.saturating_sub(now).div_ceil(1000),
                    })
                    .collect();
            }
            Err(e) => page.error = page.error.or(Some(e.to_string())),
        }
        if let Ok(Some(answer)) = state
            .upstream
            .call::<ReplicasBody>(Method::GET, "/api/v1/replicas", state.config.upstream_timeout)
            .await
        {
            page.replicas = answer.body.replicas.into_iter().map(|r| r.hostname).collect();
        }
        page.sim = state.simulator.status().map(|s| {
            let join = |m: &std::collections::BTreeMap<String, u64>| {
                if m.is_empty() {
                    "none".to_owned()
                } else {
                    m.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
                }
            };
            SimView {
                state: if s.running { "running" } else { "stopped" },
                users: s.users,
                elapsed: s.elapsed,
                duration: s.duration,
                votes: s.summary.total,
                per_second: format!("{:.1}", s.summary.total as f64 / s.summary.seconds.max(0.001)),
                replicas: join(&s.summary.replicas),
                errors: join(&s.summary.errors),
            }
        });
    }
    html(status, &page)
}

/// The sign-in form.
#[derive(Deserialize)]
pub struct SignIn {
    token: String,
}

/// `POST /console/sign-in`: checks the token against the app server, then
/// keeps it in the cookie.
pub async fn sign_in(
    State(state): State<UiState>,
    peer: Option<axum::Extension<yelb_service::Peer>>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    let client = yelb_service::client_of(peer.map(|p| p.0), &headers, &state.config.limits.trusted_proxies);
    if let Err(wait) = state.sign_in_failures.check(client) {
        let why =
            format!("too many wrong tokens from your address; try again in {} s", wait.as_secs().max(1));
        let mut response =
            render(&state, &HeaderMap::new(), None, Some(why), StatusCode::TOO_MANY_REQUESTS).await;
        response.headers_mut().insert(axum::http::header::RETRY_AFTER, wait.as_secs().max(1).into());
        return response;
    }
    let token = form.token.trim().to_owned();
    let valid = !token.is_empty() && token.chars().all(|c| c.is_ascii_graphic());
    let checked = if valid {
        state
            .upstream
            .call_admin::<FaultsBody>(Method::GET, yelb_core::api::ADMIN_FAULTS, &token, None, &headers)
            .await
    } else {
        Err(UiError::BadRequest("the token is printable characters without spaces".into()))
    };
    match checked {
        Ok(_) => {
            let cookie = format!("{COOKIE_NAME}={token}; Path=/console; HttpOnly; SameSite=Strict");
            let mut response = back_to("signed-in");
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(SET_COOKIE, value);
            }
            response
        }
        Err(e) => {
            if matches!(e, UiError::Refused { status: 401 | 429, .. } | UiError::BadRequest(_)) {
                state.sign_in_failures.fail(client);
                tracing::warn!(%client, "console sign-in with a wrong stage token");
            }
            render(&state, &HeaderMap::new(), None, Some(e.to_string()), status_of(&e)).await
        }
    }
}

/// Middleware on every console form: a `POST` whose `Origin` (or, without
/// one, `Referer`) names another site than the one it was sent to (another
/// port or subdomain included, which `SameSite` cookies do not stop) gets
/// 403 before it acts. A request with neither (curl, a privacy proxy) goes
/// through: the cookie still guards it.
pub async fn same_origin(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if request.method() == Method::POST
        && let Some(from) = claimed_origin(request.headers())
    {
        let to = request
            .headers()
            .get("x-forwarded-host")
            .or_else(|| request.headers().get(axum::http::header::HOST))
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !from.eq_ignore_ascii_case(to) {
            tracing::warn!(origin = %from, host = %to, "console form from another site refused");
            let body = serde_json::json!({
                "error": "this form was sent from another site; open the console itself and try again",
                "status": 403,
            });
            return (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
        }
    }
    next.run(request).await
}

/// The `host[:port]` of the page that sent a request, from `Origin` or
/// `Referer`; `Origin: null` (a sandboxed or opaque page) names no host,
/// which never matches.
fn claimed_origin(headers: &HeaderMap) -> Option<String> {
    let value = headers
        .get(axum::http::header::ORIGIN)
        .or_else(|| headers.get(axum::http::header::REFERER))?
        .to_str()
        .unwrap_or("null");
    let rest = value.split_once("://").map_or("", |(_, rest)| rest);
    Some(rest.split(['/', '?', '#']).next().unwrap_or_default().to_owned())
}

/// Middleware on every console route: adds the browser's address to
/// `X-Forwarded-For`, which the console's calls to the app server carry;
/// answers with `Cache-Control: no-store` and the console's own policy.
pub async fn forwarded(mut request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let peer = request.extensions().get::<yelb_service::Peer>().copied();
    crate::server::proxy::append_forwarded_for(request.headers_mut(), peer);
    let mut response = next.run(request).await;
    // A signed-in page lists the faults and the simulator: never cached,
    // and it runs nothing but its own script.
    let headers = response.headers_mut();
    headers.insert(axum::http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // With no-referrer (every other page's policy) a browser sends
    // `Origin: null` even on the console's own forms; same-origin sends the
    // real origin here and still nothing to other sites.
    headers.insert(axum::http::header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers
        .insert(crate::server::security::CSP, HeaderValue::from_static(crate::server::security::CONSOLE_CSP));
    response
}

/// Wrong tokens one browser may send to the sign-in form in a row, then
/// one per [`SIGN_IN_REFILL_SECS`].
pub const SIGN_IN_BURST: u32 = 5;
/// Seconds per extra sign-in attempt after the burst.
pub const SIGN_IN_REFILL_SECS: f64 = 5.0;

/// `POST /console/sign-out`.
pub async fn sign_out() -> Response {
    let mut response = back_to("signed-out");
    response.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_static("yelb_admin=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

/// The status a console page answers with after the app server refused.
fn status_of(e: &UiError) -> StatusCode {
    match e {
        UiError::Refused { status, .. } => StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY),
        UiError::BadRequest(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::BAD_GATEWAY,
    }
}

/// Runs one admin call with the cookie's token, then comes back to the page.
async fn act<T: serde::de::DeserializeOwned>(
    state: &UiState,
    headers: &HeaderMap,
    method: Method,
    path: &str,
    json: Option<String>,
    done: &str,
) -> Response {
    let Some(token) = token(headers) else {
        let e = UiError::BadRequest("sign in first".into());
        return render(state, headers, None, Some(e.to_string()), StatusCode::UNAUTHORIZED).await;
    };
    match state.upstream.call_admin::<T>(method, path, &token, json, headers).await {
        Ok(_) => back_to(done),
        Err(e) => render(state, headers, None, Some(e.to_string()), status_of(&e)).await,
    }
}

/// `POST /console/reset`.
pub async fn reset(State(state): State<UiState>, headers: HeaderMap) -> Response {
    act::<ResetReceipt>(&state, &headers, Method::POST, yelb_core::api::ADMIN_RESET, None, "reset").await
}

/// `POST /console/clear`.
pub async fn clear(State(state): State<UiState>, headers: HeaderMap) -> Response {
    act::<FaultsBody>(&state, &headers, Method::DELETE, yelb_core::api::ADMIN_FAULTS, None, "cleared").await
}

/// The fault form. Numbers arrive as text; empty means 0.
#[derive(Clone, Deserialize)]
pub struct FaultForm {
    scope: String,
    ttl_secs: String,
    #[serde(default)]
    latency_ms: String,
    #[serde(default)]
    latency_jitter_ms: String,
    #[serde(default)]
    error_percent: String,
    unready: Option<String>,
    unhealthy: Option<String>,
    crash: Option<String>,
    cpu_burn: Option<String>,
    /// Empty for every request, or one restaurant's slug.
    #[serde(default)]
    restaurant: String,
}

fn number<T: std::str::FromStr + Default>(field: &str, text: &str) -> Result<T, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(T::default());
    }
    text.parse().map_err(|_| format!("{field}: {text:?} is not a number"))
}

impl FaultForm {
    fn spec(&self) -> Result<FaultSpec, String> {
        Ok(FaultSpec {
            scope: self.scope.trim().to_owned(),
            ttl_secs: number("ttl_secs", &self.ttl_secs)?,
            latency_ms: number("latency_ms", &self.latency_ms)?,
            latency_jitter_ms: number("latency_jitter_ms", &self.latency_jitter_ms)?,
            error_rate: number::<f64>("error_percent", &self.error_percent)? / 100.0,
            unready: self.unready.is_some(),
            unhealthy: self.unhealthy.is_some(),
            crash: self.crash.is_some(),
            cpu_burn: self.cpu_burn.is_some(),
            restaurant: match self.restaurant.trim() {
                "" => None,
                slug => {
                    Some(slug.parse().map_err(|_| format!("restaurant: {slug:?} is not one of the four"))?)
                }
            },
        })
    }
}

/// `POST /console/faults`.
pub async fn set_fault(
    State(state): State<UiState>,
    headers: HeaderMap,
    Form(form): Form<FaultForm>,
) -> Response {
    match form.spec() {
        Ok(spec) => {
            let json = serde_json::to_string(&spec).ok();
            act::<FaultsBody>(&state, &headers, Method::PUT, yelb_core::api::ADMIN_FAULTS, json, "fault")
                .await
        }
        Err(why) => render(&state, &headers, None, Some(why), StatusCode::UNPROCESSABLE_ENTITY).await,
    }
}

/// The presets' form: which one, and on which replica (`all` for every one).
#[derive(Deserialize)]
pub struct PresetForm {
    preset: String,
    #[serde(default)]
    target: String,
}

/// `POST /console/preset`: one tap, one ready-made action.
pub async fn preset(
    State(state): State<UiState>,
    headers: HeaderMap,
    Form(form): Form<PresetForm>,
) -> Response {
    let target = match form.target.trim() {
        "" => "all",
        t => t,
    };
    if let Some(spec) = preset_fault(&form.preset, target) {
        let json = serde_json::to_string(&spec).ok();
        return act::<FaultsBody>(&state, &headers, Method::PUT, yelb_core::api::ADMIN_FAULTS, json, "fault")
            .await;
    }
    match form.preset.as_str() {
        "reset" => {
            act::<ResetReceipt>(&state, &headers, Method::POST, yelb_core::api::ADMIN_RESET, None, "reset")
                .await
        }
        "voters" => {
            if let Some(refused) = unless_signed_in(&state, &headers).await {
                return refused;
            }
            let url = simulator_target(&state);
            match state.simulator.start(url, 100, 50.0, std::time::Duration::from_secs(120)) {
                Ok(()) => back_to("simulating"),
                Err(why) => render(&state, &headers, None, Some(why), StatusCode::CONFLICT).await,
            }
        }
        other => {
            let why = format!("no such preset: {:?}", other.chars().take(40).collect::<String>());
            render(&state, &headers, None, Some(why), StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

/// Checks the cookie's token against the app server (the simulator runs
/// here, so the app server cannot check it).
async fn check_signed_in(state: &UiState, headers: &HeaderMap) -> Result<(), UiError> {
    let token = token(headers).ok_or_else(|| UiError::BadRequest("sign in first".into()))?;
    state
        .upstream
        .call_admin::<FaultsBody>(Method::GET, yelb_core::api::ADMIN_FAULTS, &token, None, headers)
        .await
        .map(|_| ())
}

/// The console page with the refusal, unless the cookie's token is good.
async fn unless_signed_in(state: &UiState, headers: &HeaderMap) -> Option<Response> {
    match check_signed_in(state, headers).await {
        Ok(()) => None,
        Err(e) => Some(render(state, headers, None, Some(e.to_string()), status_of(&e)).await),
    }
}

/// Where the simulator's voters vote: the first app-server endpoint.
fn simulator_target(state: &UiState) -> String {
    state.upstream.base().split(',').next().unwrap_or_default().to_owned()
}

/// The simulator form.
#[derive(Deserialize)]
pub struct SimForm {
    users: String,
    #[serde(default)]
    rate: String,
    #[serde(default)]
    seconds: String,
    /// `start` or `resize`.
    action: String,
}

/// `POST /console/simulate`: starts a run, or resizes the one going on.
pub async fn simulate(
    State(state): State<UiState>,
    headers: HeaderMap,
    Form(form): Form<SimForm>,
) -> Response {
    if let Some(refused) = unless_signed_in(&state, &headers).await {
        return refused;
    }
    let outcome = (|| {
        let users: usize = number("users", &form.users)?;
        if form.action == "resize" {
            return state.simulator.resize(users).map(|()| "resized");
        }
        let rate: f64 = number("rate", &form.rate)?;
        let seconds: u64 = number("seconds", &form.seconds)?;
        let url = simulator_target(&state);
        state
            .simulator
            .start(url, users, rate, std::time::Duration::from_secs(seconds))
            .map(|()| "simulating")
    })();
    match outcome {
        Ok(done) => back_to(done),
        Err(why) => render(&state, &headers, None, Some(why), StatusCode::UNPROCESSABLE_ENTITY).await,
    }
}

/// `POST /console/simulate/stop`.
pub async fn stop_simulation(State(state): State<UiState>, headers: HeaderMap) -> Response {
    if let Some(refused) = unless_signed_in(&state, &headers).await {
        return refused;
    }
    state.simulator.stop();
    back_to("stopped")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_read_from_its_cookie_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_static("a=1; yelb_admin=s3cret-token; b=2"));
        assert_eq!(token(&headers).as_deref(), Some("s3cret-token"));
        headers.insert(COOKIE, HeaderValue::from_static("yelb_admin="));
        assert_eq!(token(&headers), None);
    }

    #[test]
    fn the_form_becomes_a_fault_spec_and_says_which_field_is_wrong() {
        let form = FaultForm {
            scope: "all".into(),
            ttl_secs: "60".into(),
            latency_ms: "".into(),
            latency_jitter_ms: "50".into(),
            error_percent: "25".into(),
            unready: Some("on".into()),
            unhealthy: None,
            crash: None,
            cpu_burn: None,
            restaurant: String::new(),
        };
        let spec = form.spec().unwrap();
        assert_eq!((spec.ttl_secs, spec.latency_ms, spec.latency_jitter_ms), (60, 0, 50));
        assert!((spec.error_rate - 0.25).abs() < 1e-9 && spec.unready && !spec.crash);
        assert_eq!(spec.restaurant, None);
        let poisoned = FaultForm { restaurant: "ihop".into(), ..form.clone() };
        assert_eq!(poisoned.spec().unwrap().restaurant, Some(yelb_core::Restaurant::Ihop));
        let unknown = FaultForm { restaurant: "wendys".into(), ..form.clone() };
        assert!(unknown.spec().unwrap_err().starts_with("restaurant"));
        let bad = FaultForm { ttl_secs: "soon".into(), ..form };
        assert!(bad.spec().unwrap_err().starts_with("ttl_secs"));
    }

    #[test]
    fn an_error_is_placed_beside_the_field_it_names() {
        assert_eq!(field_of("ttl_secs: \"soon\" is not a number"), Some("ttl_secs"));
        assert_eq!(field_of("latency_ms, latency_jitter_ms: expected 0 to 30000"), Some("latency_ms"));
        assert_eq!(
            field_of("the app server refused the request (422): ttl_secs: expected 1 to 3600"),
            Some("ttl_secs")
        );
        assert_eq!(field_of("error_percent: \"x\" is not a number"), Some("error_percent"));
        assert_eq!(field_of("the app server at http://x cannot be reached"), None);
        assert_eq!(field_of("ttl_secsx: nope"), None);
    }

    #[test]
    fn every_fault_preset_is_a_fault_the_app_server_accepts_and_the_rest_are_actions() {
        for p in PRESETS {
            match preset_fault(p.name, "replica-a") {
                Some(spec) => {
                    assert_eq!(spec.scope, "replica-a");
                    assert!((1..=3600).contains(&spec.ttl_secs), "{}", p.name);
                    assert!(!describe(&spec).is_empty(), "{} sets something", p.name);
                }
                None => assert!(["voters", "reset"].contains(&p.name), "{}", p.name),
            }
        }
    }
}
