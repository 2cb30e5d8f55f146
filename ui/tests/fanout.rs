//! The UI's live-event fan-out, over HTTP, against real app servers on real
//! Postgres and Redis: one upstream subscription for every screen, updates
//! coalesced per screen, the spread and the upstream's state on the stream,
//! and the original API's answer passed on.

#![allow(clippy::unwrap_used)] // Tests: a failed step is a failed test.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{AppServer, LegacyOnly, UiServer, http, real_backends};

/// One open `/api/v1/events` through the UI, read event by event.
struct Screen {
    response: reqwest::Response,
    buffer: String,
}

/// One server-sent event: its name (`None` for a comment or a `retry:`) and data.
#[derive(Debug)]
struct Sse {
    event: Option<String>,
    data: String,
    retry: Option<u64>,
}

impl Screen {
    async fn open(ui: &UiServer) -> Screen {
        let response = http().get(format!("{}/api/v1/events", ui.url)).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Screen { response, buffer: String::new() }
    }

    /// The next event, or `None` if none comes within `within`.
    async fn next(&mut self, within: Duration) -> Option<Sse> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut sse = Sse { event: None, data: String::new(), retry: None };
                for line in block.lines() {
                    if let Some(name) = line.strip_prefix("event: ") {
                        sse.event = Some(name.to_owned());
                    } else if let Some(data) = line.strip_prefix("data: ") {
                        sse.data.push_str(data);
                    } else if let Some(ms) = line.strip_prefix("retry: ") {
                        sse.retry = ms.parse().ok();
                    }
                }
                return Some(sse);
            }
            // A timeout, the end of the stream or a reset connection: no event.
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk()).await.ok()?.ok()??;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// Events named `name` until one satisfies `ok`, within `within`.
    async fn until(&mut self, name: &str, within: Duration, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let event =
                self.next(left).await.unwrap_or_else(|| panic!("no matching {name} event in {within:?}"));
            if event.event.as_deref() == Some(name) {
                let data: Value = serde_json::from_str(&event.data).unwrap();
                if ok(&data) {
                    return data;
                }
            }
        }
    }
}

/// The app server's `yelb_live_clients` gauge: its open event streams.
async fn live_clients(app: &AppServer) -> u64 {
    let text = http().get(format!("{}/metrics", app.url())).send().await.unwrap().text().await.unwrap();
    let line = text.lines().find(|l| l.starts_with("yelb_live_clients ")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

async fn readyz(ui: &UiServer) -> Value {
    http().get(format!("{}/readyz", ui.url)).send().await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_holds_one_upstream_subscription_however_many_screens_are_open() {
    let app = AppServer::start(&real_backends(), 0).await;
    let ui = UiServer::start(&app.url(), &[]).await;
    let mut screens = Vec::new();
    for _ in 0..60 {
        let mut screen = Screen::open(&ui).await;
        screen.until("state", Duration::from_secs(5), |_| true).await;
        screens.push(screen);
    }
    assert_eq!(live_clients(&app).await, 1, "one stream from the UI to the app server, for 60 screens");
    let ready = readyz(&ui).await;
    assert_eq!(ready["events"]["screens"], 60, "{ready}");
    assert_eq!(ready["events"]["subscriptions"], 1, "{ready}");
    assert_eq!(ready["events"]["upstream"], "live", "{ready}");

    // A vote reaches every screen through that one subscription.
    let r = http().post(format!("{}/api/v1/votes/ihop", app.url())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    for screen in &mut screens {
        screen.until("state", Duration::from_secs(5), |s| s["votes"]["ihop"] == 1).await;
    }
    drop(screens);
    let deadline = Instant::now() + Duration::from_secs(5);
    while readyz(&ui).await["events"]["screens"] != 0 {
        assert!(Instant::now() < deadline, "closed screens are counted out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screen_gets_at_most_one_update_per_200_ms_under_load_and_the_last_one_always() {
    let app = AppServer::start(&real_backends(), 0).await;
    let ui = UiServer::start(&app.url(), &[]).await;
    let mut screen = Screen::open(&ui).await;
    let first = screen.next(Duration::from_secs(5)).await.unwrap();
    let retry = first.retry.expect("the first bytes set a reconnection delay");
    assert!((1_000..6_000).contains(&retry), "retry: {retry}");
    screen.until("state", Duration::from_secs(5), |_| true).await;

    // 150 votes over about 1.5 s, one every 10 ms.
    let voter = tokio::spawn({
        let url = app.url();
        async move {
            for _ in 0..150 {
                http().post(format!("{url}/api/v1/votes/chipotle")).send().await.unwrap();
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    let started = Instant::now();
    let mut updates = Vec::new();
    loop {
        let event = screen.next(Duration::from_secs(5)).await.expect("updates keep coming");
        if event.event.as_deref() != Some("state") {
            continue;
        }
        let state: Value = serde_json::from_str(&event.data).unwrap();
        updates.push(Instant::now());
        if state["votes"]["chipotle"] == 150 {
            break;
        }
    }
    voter.await.unwrap();
    let span = started.elapsed();
    // One update per 200 ms at most (the app server's own stream sends one
    // per 50 ms); counted, not timed one by one, as chunks can bunch up on
    // the way to the reader.
    let allowed = (span.as_millis() / 200 + 2) as usize;
    assert!(updates.len() <= allowed, "{} updates in {span:?} (at most {allowed})", updates.len());
    assert!(updates.len() >= 3, "updates did arrive during the burst: {}", updates.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spread_and_the_upstreams_loss_ride_the_stream() {
    let backends = real_backends();
    let port = yelb_testkit::free_port();
    let app = AppServer::start(&backends, port).await;
    let ui = UiServer::start(&app.url(), &[]).await;
    let mut screen = Screen::open(&ui).await;
    // Requests through the UI so that the replica has a rate to show.
    for _ in 0..20 {
        http().get(format!("{}/api/v1/votes", ui.url)).send().await.unwrap();
    }
    let spread = screen
        .until("spread", Duration::from_secs(10), |s| {
            s["replicas"].as_array().is_some_and(|r| !r.is_empty())
                && s["rates"].as_array().is_some_and(|r| !r.is_empty())
        })
        .await;
    assert_eq!(spread["replicas"][0]["hostname"], app.hostname.as_str(), "{spread}");
    assert_eq!(spread["rates"][0][0], app.hostname.as_str(), "{spread}");

    // The app server goes away: the screen stays open and is told.
    drop(app);
    screen.until("upstream", Duration::from_secs(10), |u| u["live"] == false).await;
    let app = AppServer::start(&backends, port).await;
    screen.until("upstream", Duration::from_secs(20), |u| u["live"] == true).await;
    http().post(format!("{}/api/v1/votes/outback", app.url())).send().await.unwrap();
    screen.until("state", Duration::from_secs(5), |s| s["votes"]["outback"] == 1).await;
    assert_eq!(readyz(&ui).await["events"]["subscriptions"], 2, "resubscribed once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_front_of_the_original_api_a_screen_gets_404_and_the_page_polls() {
    let app = AppServer::start(&real_backends(), 0).await;
    let legacy = LegacyOnly::start(&app).await;
    let ui = UiServer::start(&legacy.url, &[]).await;
    let r = http().get(format!("{}/api/v1/events", ui.url)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("original API"), "{body}");
    assert_eq!(readyz(&ui).await["events"]["upstream"], "none (original API)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ui_shutdown_ends_every_screen_at_once() {
    let app = AppServer::start(&real_backends(), 0).await;
    let ui = UiServer::start(&app.url(), &[]).await;
    let mut screen = Screen::open(&ui).await;
    screen.until("state", Duration::from_secs(5), |_| true).await;
    let started = Instant::now();
    drop(ui);
    while screen.next(Duration::from_secs(10)).await.is_some() {}
    assert!(started.elapsed() < Duration::from_secs(3), "ended after {:?}", started.elapsed());
}
