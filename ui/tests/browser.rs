//! The UI in headless Chromium, against the real UI server and real app
//! servers on real Postgres and Redis. Screenshots land in
//! `target/screenshots/` for a person to look at.

#![allow(clippy::unwrap_used)] // Helpers of tests: a failed step is a failed test.

mod support;

use std::time::Duration;

use support::browser::{Browser, DESKTOP, PHONE, exclusive};
use support::{AppServer, UiServer, http, real_backends};
use yelb_core::Restaurant;

const IHOP_VOTE: &str = "article[data-restaurant='ihop'] button.vote";
const IHOP_COUNT: &str = "article[data-restaurant='ihop'] [data-test='count']";

/// The usual stage: one app server on the real backends, the UI in front of
/// it, and a desktop browser with the page open and hydrated. Fields drop in
/// order: the browser first, the servers, then the lock.
struct Page {
    browser: Browser,
    ui: UiServer,
    app: AppServer,
    /// The app server's database, for `psql`.
    db: String,
    _one: tokio::sync::MutexGuard<'static, ()>,
}

impl Page {
    async fn open(ui_flags: &[&str]) -> Page {
        let one = exclusive().await;
        let (backends, db) = support::real_backends_named();
        let app = AppServer::start(&backends, 0).await;
        let ui = UiServer::start(&app.url(), ui_flags).await;
        let browser = Browser::launch(DESKTOP, true).await;
        browser.open_hydrated(&ui.url).await;
        Page { browser, ui, app, db, _one: one }
    }
}

/// An app server with stage control on `token`, a UI in front of it, a browser.
async fn console_setup(token: &str) -> (AppServer, UiServer, Browser) {
    let mut backends = real_backends();
    backends.push(format!("--admin-token={token}"));
    let app = AppServer::start(&backends, 0).await;
    let ui = UiServer::start(&app.url(), &[]).await;
    (app, ui, Browser::launch(DESKTOP, true).await)
}

/// A script that sets the value of the input `css`.
fn fill(css: &str, value: &str) -> String {
    format!("document.querySelector(\"{css}\").value = {value:?}; return true;")
}

/// Sets a fault through `app`'s stage control.
async fn set_fault(app: &AppServer, token: &str, spec: &str) {
    let set = http()
        .put(format!("{}/api/v1/admin/faults", app.url()))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(spec.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200, "PUT faults {spec}");
}

fn number(text: &str) -> i64 {
    text.trim().parse().unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_the_cards_chart_views_and_hostname_without_console_errors() {
    let Page { browser, ui, app, _one, .. } = Page::open(&["--title=Yelb at RustConf"]).await;

    assert_eq!(browser.client.title().await.unwrap(), "Yelb at RustConf");
    let names = browser.texts("article.card h2").await;
    let expected: Vec<&str> = Restaurant::CARD_ORDER.iter().map(|r| r.display_name()).collect();
    assert_eq!(names, expected, "the original's cards, in its order");
    let taglines = browser.texts("article.card .tagline").await;
    assert_eq!(taglines[0], "Pancakes, for a powerful start!");
    assert_eq!(browser.text("[data-test='hostname']").await, app.hostname);
    assert_eq!(browser.text("[data-test='total']").await, "0");
    browser.wait_text("[data-test='pageviews']", "a page-view count", |t| number(t) >= 1).await;
    browser.wait_text("[data-test='live']", "the live badge", |t| t == "live").await;
    assert!(browser.exists(".qr-code svg").await, "a QR code for the audience");
    // Loaded through 127.0.0.1: the QR code gives this machine's LAN address
    // with the same port, or says that phones cannot open it.
    let url = browser.text("[data-test='public-url']").await;
    let host = ui.url.trim_start_matches("http://");
    let expected = yelb_ui::server::audience::choose(
        None,
        "http",
        Some(host),
        &yelb_ui::server::audience::lan_addresses(),
    );
    assert_eq!(url, expected.url);
    assert_eq!(browser.exists("[data-test='url-warning']").await, expected.warning.is_some());
    if let Some(port) = host.rsplit(':').next() {
        assert!(url.ends_with(&format!(":{port}/")), "{url}");
    }
    browser.screenshot("desktop").await;

    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    browser.close().await;

    let phone = Browser::launch(PHONE, true).await;
    phone.open_hydrated(&ui.url).await;
    // Nothing is wider than the phone: no sideways scrolling.
    let widths = phone.eval("return [document.documentElement.scrollWidth, window.innerWidth]").await;
    assert_eq!(widths[0], widths[1], "page width vs. phone width");
    assert_eq!(widths[1], 390);
    phone.screenshot("phone").await;
    assert!(phone.console_errors().await.is_empty());
    phone.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vote_waits_for_its_answer_and_moves_the_count_and_the_chart() {
    let Page { browser, ui: _ui, app, db, _one } = Page::open(&[]).await;
    let arc = "circle.arc.c-ihop";
    assert_eq!(browser.attr(arc, "stroke-dasharray").await.as_deref(), Some("0.000 100.000"));

    browser.click(IHOP_VOTE).await;
    browser.wait_text(IHOP_COUNT, "one vote", |t| t == "1").await;
    assert_eq!(browser.text("[data-test='total']").await, "1");
    assert_eq!(browser.attr(arc, "stroke-dasharray").await.as_deref(), Some("100.000 0.000"));
    browser.click("article[data-restaurant='chipotle'] button.vote").await;
    browser.wait_text("[data-test='total']", "two votes", |t| t == "2").await;
    assert_eq!(browser.attr(arc, "stroke-dasharray").await.as_deref(), Some("50.000 50.000"));
    assert_eq!(browser.text("li[data-restaurant='ihop'] .pct").await, "50%");

    // The app server counted them: the chart showed its answers, not guesses.
    let votes: serde_json::Value =
        http().get(format!("{}/api/v1/votes", app.url())).send().await.unwrap().json().await.unwrap();
    assert_eq!(votes["votes"]["ihop"], 1);
    assert_eq!(votes["votes"]["chipotle"], 1);
    // Each click went with its own idempotency key (safe to retry).
    let keys = yelb_testkit::shared_pg().psql(&db, "SELECT count(DISTINCT key) FROM yelb_vote_keys");
    assert_eq!(keys, "2");
    assert!(browser.console_errors().await.is_empty());
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_screen_sees_a_vote_cast_through_another_replica_live() {
    let _one = exclusive().await;
    let backends = real_backends();
    let first = AppServer::start(&backends, 0).await;
    let second = AppServer::start(&backends, 0).await;
    let ui_one = UiServer::start(&first.url(), &[]).await;
    let ui_two = UiServer::start(&second.url(), &[]).await;
    let voter = Browser::launch(DESKTOP, true).await;
    let watcher = Browser::launch(DESKTOP, true).await;
    voter.open_hydrated(&ui_one.url).await;
    watcher.open_hydrated(&ui_two.url).await;
    watcher.wait_text("[data-test='live']", "the live badge", |t| t == "live").await;

    voter.click(IHOP_VOTE).await;
    watcher.wait_text(IHOP_COUNT, "the other screen's vote", |t| t == "1").await;
    assert_eq!(watcher.text("[data-test='live']").await, "live", "it came by the stream, not by polling");
    assert_eq!(watcher.text("[data-test='hostname']").await, second.hostname);
    voter.close().await;
    watcher.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_replicas_behind_the_ui_both_hostnames_appear_in_the_spread_panel() {
    let _one = exclusive().await;
    let backends = real_backends();
    let first = AppServer::start(&backends, 0).await;
    let second = AppServer::start(&backends, 0).await;
    let service = yelb_testkit::Balancer::start(vec![first.addr, second.addr]);
    let ui = UiServer::start(&format!("http://{}", service.addr()), &[]).await;
    let browser = Browser::launch(DESKTOP, true).await;
    browser.open_hydrated(&ui.url).await;
    for _ in 0..4 {
        browser.click(IHOP_VOTE).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    for list in ["recent", "cluster"] {
        let css = format!("[data-test='{list}'] .bar-host");
        let deadline = std::time::Instant::now() + support::browser::PATIENCE;
        loop {
            let hosts = browser.texts(&css).await;
            if hosts.contains(&first.hostname) && hosts.contains(&second.hostname) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{list} shows {hosts:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    browser.screenshot("spread").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_page_sends_no_request_but_its_stream_for_20_s_and_still_shows_the_spread_and_votes() {
    let Page { browser, ui: _ui, app, _one, .. } = Page::open(&[]).await;
    browser.wait_text("[data-test='live']", "the live badge", |t| t == "live").await;
    browser
        .eval(
            "performance.clearResourceTimings(); performance.setResourceTimingBufferSize(1000); return true",
        )
        .await;
    // Other people vote meanwhile; the page hears of it by its stream only.
    for _ in 0..3 {
        http().post(format!("{}/api/v1/votes/ihop", app.url())).send().await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(20)).await;
    let requests = browser
        .eval(
            "return performance.getEntriesByType('resource').map(e => e.name)\
             .filter(n => n.includes('/api') && !n.includes('/api/v1/events'))",
        )
        .await;
    assert_eq!(requests, serde_json::json!([]), "requests besides the stream");
    assert_eq!(browser.text(IHOP_COUNT).await, "3");
    assert_eq!(browser.text("[data-test='live']").await, "live");
    let hosts = browser.texts("[data-test='cluster'] .bar-host").await;
    assert!(hosts.contains(&app.hostname), "the spread came by the stream: {hosts:?}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_loads_while_the_app_server_is_down_and_recovers_by_itself() {
    let _one = exclusive().await;
    let port = yelb_testkit::free_port();
    let ui = UiServer::start(&format!("http://127.0.0.1:{port}"), &[]).await;
    let browser = Browser::launch(DESKTOP, true).await;
    browser.open_hydrated(&ui.url).await;
    assert_eq!(browser.text("[data-test='live']").await, "app server unreachable");
    assert!(browser.text("[data-test='notice']").await.contains("not answering"));
    assert_eq!(browser.texts("article.card").await.len(), 4, "the cards are there anyway");
    browser.screenshot("appserver-down").await;

    let app = AppServer::start(&real_backends(), port).await;
    browser.wait_text("[data-test='live']", "the live badge", |t| t == "live").await;
    browser.wait_text("[data-test='hostname']", "the app server's name", |t| t == app.hostname).await;
    browser.wait_text("[data-test='pageviews']", "the counted view", |t| number(t) == 1).await;
    browser.click(IHOP_VOTE).await;
    browser.wait_text(IHOP_COUNT, "a vote", |t| t == "1").await;
    let errors = browser.console_errors().await;
    // The failed calls while the app server was away are expected; nothing else.
    assert!(errors.iter().all(|e| e.contains("502 (Bad Gateway)")), "console errors: {errors:#?}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_vote_says_so_and_the_message_can_be_dismissed() {
    let _one = exclusive().await;
    let port = yelb_testkit::free_port();
    let app = AppServer::start(&real_backends(), port).await;
    let ui = UiServer::start(&app.url(), &[]).await;
    let browser = Browser::launch(DESKTOP, true).await;
    browser.open_hydrated(&ui.url).await;
    drop(app);
    support::wait_for_status(&format!("{}/api/getvotes", ui.url), 502).await;

    browser.click(IHOP_VOTE).await;
    let notice =
        browser.wait_text("[data-test='notice']", "an error", |t| t.contains("did not go through")).await;
    assert!(notice.contains("IHOP"), "{notice}");
    assert_eq!(browser.text(IHOP_COUNT).await, "0");
    browser.click("[data-test='notice'] button.dismiss").await;
    assert!(!browser.exists("[data-test='notice']").await);
    // The page keeps working: the button is usable again.
    assert!(
        browser.client.find(fantoccini::Locator::Css(IHOP_VOTE)).await.unwrap().is_enabled().await.unwrap()
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_javascript_the_page_shows_the_votes_and_a_form_vote_counts() {
    let _one = exclusive().await;
    let app = AppServer::start(&real_backends(), 0).await;
    let ui = UiServer::start(&app.url(), &[]).await;
    let browser = Browser::launch(PHONE, false).await;
    browser.open(&ui.url).await;
    browser.wait_for(IHOP_COUNT).await;
    assert!(!browser.exists("body[data-hydrated]").await, "JavaScript is off");
    assert_eq!(browser.text(IHOP_COUNT).await, "0");

    browser.click(IHOP_VOTE).await;
    browser.wait_text("[data-test='notice']", "the thanks", |t| t.contains("vote for IHOP is counted")).await;
    assert_eq!(browser.text(IHOP_COUNT).await, "1");
    assert_eq!(browser.text("[data-test='total']").await, "1");
    browser.screenshot("phone-no-javascript").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_front_of_the_original_api_votes_work_and_live_and_spread_switch_off() {
    let _one = exclusive().await;
    let app = AppServer::start(&real_backends(), 0).await;
    let legacy = support::LegacyOnly::start(&app).await;
    let ui = UiServer::start(&legacy.url, &[]).await;
    let browser = Browser::launch(DESKTOP, true).await;
    browser.open_hydrated(&ui.url).await;
    assert_eq!(browser.text("[data-test='live']").await, "polling");
    assert!(
        !browser
            .client
            .find(fantoccini::Locator::Css(".spread"))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap(),
        "no spread panel without /api/v1/replicas"
    );
    assert_eq!(browser.text("[data-test='hostname']").await, app.hostname);

    browser.click(IHOP_VOTE).await;
    browser.wait_text(IHOP_COUNT, "the vote", |t| t == "1").await;
    // Another voter, straight at the app server: polling picks it up.
    http().get(format!("{}/api/chipotle", legacy.url)).send().await.unwrap();
    browser.wait_text("[data-test='total']", "both votes", |t| t == "2").await;
    let errors = browser.console_errors().await;
    // The probe of /api/v1/replicas answers 404 here, on purpose; nothing else may fail.
    assert!(errors.iter().all(|e| e.contains("/api/v1/")), "console errors: {errors:#?}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_stream_comes_back_by_itself_after_the_app_server_restarts() {
    let _one = exclusive().await;
    let backends = real_backends();
    let port = yelb_testkit::free_port();
    let app = AppServer::start(&backends, port).await;
    let ui = UiServer::start(&app.url(), &[]).await;
    let browser = Browser::launch(DESKTOP, true).await;
    browser.open_hydrated(&ui.url).await;
    browser.wait_text("[data-test='live']", "the live badge", |t| t == "live").await;

    drop(app);
    browser.wait_text("[data-test='live']", "the stream's loss", |t| t != "live").await;
    let app = AppServer::start(&backends, port).await;
    browser.wait_text("[data-test='live']", "the stream back", |t| t == "live").await;
    // A vote cast elsewhere arrives on the new stream.
    http().post(format!("{}/api/v1/votes/outback", app.url())).send().await.unwrap();
    browser
        .wait_text("article[data-restaurant='outback'] [data-test='count']", "the new vote", |t| t == "1")
        .await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vote_buttons_work_from_the_keyboard() {
    let Page { browser, ui: _ui, app: _app, _one, .. } = Page::open(&[]).await;
    let button = browser.client.find(fantoccini::Locator::Css(IHOP_VOTE)).await.unwrap();
    assert_eq!(button.attr("aria-label").await.unwrap().as_deref(), Some("Vote for IHOP"));
    // Tab from the top of the page reaches the first card's button first.
    browser.eval("document.activeElement.blur(); return true").await;
    browser.client.active_element().await.unwrap().send_keys(&fantoccini::key::Key::Tab).await.unwrap();
    let focused = browser.eval("return document.activeElement.getAttribute('aria-label')").await;
    assert_eq!(focused, "Vote for IHOP", "first Tab stop");
    browser.client.active_element().await.unwrap().send_keys(&fantoccini::key::Key::Enter).await.unwrap();
    browser.wait_text(IHOP_COUNT, "the keyboard's vote", |t| t == "1").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_page_also_shows_votes_that_published_no_event_as_through_an_original_app_server() {
    use yelb_testkit::{shared_pg, shared_redis, unique_name};
    let _one = exclusive().await;
    let db = unique_name("yelb_mixed");
    let flags = vec![
        format!("--database-url={}", shared_pg().url(&db)),
        format!("--redis-url={}", shared_redis().url()),
        format!("--redis-key-prefix={}:", unique_name("ui")),
    ];
    let app = AppServer::start(&flags, 0).await;
    let ui = UiServer::start(&app.url(), &[]).await;
    let browser = Browser::launch(DESKTOP, true).await;
    browser.open_hydrated(&ui.url).await;
    browser.wait_text("[data-test='live']", "the live badge", |t| t == "live").await;
    // An original app server in the same cluster writes to Postgres and
    // publishes nothing on Redis.
    shared_pg().psql(&db, "UPDATE restaurants SET count = count + 5 WHERE name = 'ihop'");
    browser.wait_text(IHOP_COUNT, "the votes no event announced", |t| number(t) == 5).await;
    assert_eq!(browser.text("[data-test='live']").await, "live", "and it is still live");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_drops_every_open_page_to_zero_across_replicas() {
    let _one = exclusive().await;
    let mut backends = real_backends();
    backends.push("--admin-token=browser-test-token".to_owned());
    let first = AppServer::start(&backends, 0).await;
    let second = AppServer::start(&backends, 0).await;
    // Forwarding stage control is off by default; this test resets through it.
    let ui_one = UiServer::start(&first.url(), &["--forward-admin=true"]).await;
    let ui_two = UiServer::start(&second.url(), &[]).await;
    let one = Browser::launch(DESKTOP, true).await;
    let two = Browser::launch(DESKTOP, true).await;
    one.open_hydrated(&ui_one.url).await;
    two.open_hydrated(&ui_two.url).await;
    two.wait_text("[data-test='live']", "the live badge", |t| t == "live").await;
    for _ in 0..3 {
        let n = number(&one.text(IHOP_COUNT).await);
        one.click(IHOP_VOTE).await;
        one.wait_text(IHOP_COUNT, "the vote", |t| number(t) == n + 1).await;
    }
    two.wait_text(IHOP_COUNT, "the votes on the other page", |t| t == "3").await;

    let reset = http()
        .post(format!("{}/api/v1/admin/reset", ui_one.url))
        .bearer_auth("browser-test-token")
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200, "a reset through the UI's /api forwarding");
    for page in [&one, &two] {
        page.wait_text(IHOP_COUNT, "the count back at zero", |t| t == "0").await;
        page.wait_text("[data-test='pageviews']", "the page views back at zero", |t| number(t) == 0).await;
    }
    // Counting starts again from zero, on both pages.
    two.click(IHOP_VOTE).await;
    for page in [&one, &two] {
        page.wait_text(IHOP_COUNT, "the first vote after the reset", |t| t == "1").await;
    }
    assert!(one.console_errors().await.is_empty());
    one.close().await;
    two.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spread_panel_shows_each_replicas_canary_colour_and_its_faults() {
    let _one = exclusive().await;
    let mut backends = real_backends();
    backends.push("--admin-token=browser-test-token".to_owned());
    let mut canary = backends.clone();
    canary.extend(["--color=orange".to_owned(), "--message=canary".to_owned()]);
    let stable = AppServer::start(&backends, 0).await;
    let tagged = AppServer::start(&canary, 0).await;
    let ui = UiServer::start(&stable.url(), &[]).await;
    let fault = format!(r#"{{"scope":"{}","ttl_secs":60,"latency_ms":5}}"#, tagged.hostname);
    set_fault(&stable, "browser-test-token", &fault).await;
    let page = Browser::launch(DESKTOP, true).await;
    page.open_hydrated(&ui.url).await;
    let cluster = "[data-test='cluster'] li";
    page.wait_text(cluster, "both replicas in the cluster list", |_| true).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let rows = page.texts(cluster).await;
        if rows
            .iter()
            .any(|r| r.contains(&tagged.hostname) && r.contains("canary") && r.contains("fault: +5 ms"))
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the canary's row never showed: {rows:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let colours: Vec<String> = page
        .eval("return [...document.querySelectorAll(\"[data-test='cluster'] .fill\")].map(e => getComputedStyle(e).backgroundColor)")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert!(colours.contains(&"rgb(255, 165, 0)".to_owned()), "an orange bar: {colours:?}");
    assert_eq!(page.texts("[data-test='fault']").await.len(), 1, "only the canary has a fault");
    page.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_signs_in_sets_and_clears_a_fault_and_resets_the_votes() {
    let _one = exclusive().await;
    let (app, ui, page) = console_setup("console-test-token").await;

    page.open(&format!("{}/console", ui.url)).await;
    page.eval(&fill("[data-test='token']", "wrong-token-000")).await;
    page.click("[data-test='sign-in']").await;
    page.wait_text("[data-test='console-error']", "the refusal", |t| t.contains("401")).await;
    page.eval(&fill("[data-test='token']", "console-test-token")).await;
    page.click("[data-test='sign-in']").await;
    page.wait_text("[data-test='console-notice']", "signed in", |t| t == "Signed in.").await;
    assert_eq!(page.text("[data-test='no-faults']").await, "None.");
    page.screenshot("console-laptop").await;

    page.eval(&fill("[name='error_percent']", "100")).await;
    page.click("[data-test='set-fault']").await;
    page.wait_text("[data-test='faults'] tbody", "the fault listed", |t| {
        t.contains("all") && t.contains("100% errors")
    })
    .await;
    let status = http().get(format!("{}/api/getvotes", app.url())).send().await.unwrap().status();
    assert_eq!(status, 503, "the fault is in force on the app server");
    page.click("[data-test='clear']").await;
    page.wait_text("[data-test='no-faults']", "no faults", |t| t == "None.").await;

    for _ in 0..3 {
        assert_eq!(
            http().post(format!("{}/api/v1/votes/ihop", app.url())).send().await.unwrap().status(),
            200
        );
    }
    page.click("[data-test='reset']").await;
    page.wait_text("[data-test='console-notice']", "the reset", |t| t.contains("zero")).await;
    let votes: serde_json::Value =
        http().get(format!("{}/api/v1/votes", app.url())).send().await.unwrap().json().await.unwrap();
    assert_eq!(votes["total"], 0);
    // The refused sign-in answered 401 on purpose; nothing else may fail.
    let errors: Vec<String> =
        page.console_errors().await.into_iter().filter(|e| !e.contains("401")).collect();
    assert!(errors.is_empty(), "no CSP or load errors on the console: {errors:?}");
    page.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_presenter_view_shows_the_votes_live_and_each_replica_with_its_rate_and_fault() {
    let _one = exclusive().await;
    let mut backends = real_backends();
    backends.push("--admin-token=present-test-token".to_owned());
    let first = AppServer::start(&backends, 0).await;
    let second = AppServer::start(&backends, 0).await;
    let ui = UiServer::start(&first.url(), &[]).await;
    let page = Browser::launch(DESKTOP, true).await;
    page.open_hydrated(&format!("{}/present", ui.url)).await;
    assert!(page.exists("main.present svg").await, "the donut");
    assert!(page.exists("main.present .qr-code svg").await, "the QR code");
    let host = ui.url.trim_start_matches("http://");
    let lan = yelb_ui::server::audience::lan_addresses();
    let expected = yelb_ui::server::audience::choose(None, "http", Some(host), &lan);
    assert_eq!(
        page.text("main.present [data-test='public-url']").await,
        expected.url,
        "a URL phones can open"
    );
    assert_eq!(page.exists("[data-test='other-urls']").await, lan.len() > 1, "the other addresses, if any");
    assert!(!page.exists("button.vote").await, "no voting cards on the projector");
    page.wait_text("[data-test='live']", "the live badge", |t| t == "live").await;

    // Votes through both replicas show at once.
    for app in [&first, &second, &second] {
        http().post(format!("{}/api/v1/votes/chipotle", app.url())).send().await.unwrap();
    }
    page.wait_text("[data-test='present-total']", "three votes", |t| t == "3").await;

    let fault = format!(r#"{{"scope":"{}","ttl_secs":60,"error_rate":0.5}}"#, second.hostname);
    set_fault(&first, "present-test-token", &fault).await;
    // Load on the first replica shows as its rate; the second gets a badge.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        for _ in 0..20 {
            http().get(format!("{}/api/getvotes", first.url())).send().await.unwrap();
        }
        let rows = page.texts("[data-test='replica']").await;
        let busy = rows.iter().any(|r| {
            r.contains(&first.hostname)
                && r.split_whitespace()
                    .zip(r.split_whitespace().skip(1))
                    .any(|(n, unit)| unit == "req/s" && n.parse::<f64>().is_ok_and(|x| x > 1.0))
        });
        let badge = rows.iter().any(|r| r.contains(&second.hostname) && r.contains("50% errors"));
        if busy && badge && rows.len() == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the topology never showed rate and fault: {rows:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    page.screenshot("present").await;
    assert!(page.console_errors().await.is_empty());
    page.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_runs_resizes_and_stops_the_audience_simulator() {
    let _one = exclusive().await;
    let (app, ui, page) = console_setup("simulator-test-token").await;
    let console = format!("{}/console", ui.url);
    page.open(&console).await;
    page.eval(&fill("[data-test='token']", "simulator-test-token")).await;
    page.click("[data-test='sign-in']").await;
    page.wait_text("[data-test='console-notice']", "signed in", |t| t == "Signed in.").await;

    // A short run, flat out: what it counted is what the app server holds.
    page.eval(&fill("[data-test='sim-users']", "4")).await;
    page.eval(&fill("[data-test='sim-rate']", "0")).await;
    page.eval(&fill("[data-test='sim-seconds']", "2")).await;
    page.click("[data-test='sim-start']").await;
    page.wait_text("[data-test='console-notice']", "started", |t| t.contains("voting")).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let counted = loop {
        page.open(&console).await;
        let status = page.text("[data-test='sim-status']").await;
        if status.starts_with("stopped") {
            break number(&page.text("[data-test='sim-votes']").await);
        }
        assert!(std::time::Instant::now() < deadline, "the run never ended: {status}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let votes: serde_json::Value =
        http().get(format!("{}/api/v1/votes", app.url())).send().await.unwrap().json().await.unwrap();
    assert!(counted > 10, "only {counted} votes");
    assert_eq!(votes["total"].as_i64(), Some(counted), "the simulator's count is the app server's");

    // A long run, resized, then stopped.
    page.eval(&fill("[data-test='sim-users']", "2")).await;
    page.eval(&fill("[data-test='sim-rate']", "10")).await;
    page.eval(&fill("[data-test='sim-seconds']", "600")).await;
    page.click("[data-test='sim-start']").await;
    page.wait_text("[data-test='sim-status']", "two voters", |t| t.starts_with("running: 2 voters")).await;
    page.eval(&fill("[data-test='sim-users']", "5")).await;
    page.click("[data-test='sim-resize']").await;
    page.wait_text("[data-test='sim-status']", "five voters", |t| t.starts_with("running: 5 voters")).await;
    page.click("[data-test='sim-stop']").await;
    page.wait_text("[data-test='sim-status']", "stopped", |t| t.starts_with("stopped")).await;
    page.close().await;
}

/// The boxes of the presenter view's parts, the viewport and the scroll
/// size, and how the total sits in the donut's hole, measured in the page.
const PRESENT_GEOMETRY: &str = r#"
const box = (el) => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
const one = (css) => { const el = document.querySelector(css); return el ? box(el) : null; };
const all = (css) => [...document.querySelectorAll(css)].map(box);
const svg = document.querySelector('main.present .donut svg').getBoundingClientRect();
const total = document.querySelector('main.present .donut .total').getBoundingClientRect();
const cx = svg.left + svg.width / 2, cy = svg.top + svg.height / 2;
const hole = 12.915 / 42 * svg.width;
const corners = [[total.left, total.top], [total.right, total.top], [total.left, total.bottom], [total.right, total.bottom]];
const legend = [...document.querySelectorAll('main.present .legend li')].map(li =>
  [li.querySelector('.name'), li.querySelector('.n'), li.querySelector('.pct')].map(e => e.getBoundingClientRect())
).map(([name, n, pct]) => [name.right <= n.left + 0.5, n.right <= pct.left + 0.5, name.height < 2 * n.height]);
return {
  viewport: [innerWidth, innerHeight],
  scroll: [document.documentElement.scrollWidth, document.documentElement.scrollHeight],
  parts: {
    head: one('.present-head'), chart: one('main.present .donut svg'), legend: one('main.present .legend'),
    qr: one('main.present .qr'), code: one('main.present .qr-code svg'), url: one("main.present [data-test='public-url']"),
    topology: one('.topology'),
  },
  nodes: all('.topology .node'),
  total_in_hole: Math.max(...corners.map(([x, y]) => Math.hypot(x - cx, y - cy))) / hole,
  legend,
};
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_presenter_view_fits_every_projector_size_before_and_after_hydration() {
    use serde_json::Value;
    let _one = exclusive().await;
    let (mut backends, db) = support::real_backends_named();
    backends.push("--admin-token=fit-test-token-0001".to_owned());
    let first = AppServer::start(&backends, 0).await;
    let second = AppServer::start(&backends, 0).await;
    let third = AppServer::start(&backends, 0).await;
    let service = yelb_testkit::Balancer::start(vec![first.addr, second.addr, third.addr]);
    let ui = UiServer::start(&format!("http://{}", service.addr()), &[]).await;
    // Counts of every width: a five-digit total, "Buca di Beppo" with its own.
    http().post(format!("{}/api/v1/votes/ihop", first.url())).send().await.unwrap();
    yelb_testkit::shared_pg().psql(
        &db,
        "UPDATE restaurants SET count = CASE name WHEN 'ihop' THEN 12790 WHEN 'bucadibeppo' THEN 1279 \
         WHEN 'outback' THEN 7 ELSE 0 END",
    );
    for _ in 0..30 {
        http().get(format!("{}/api/v1/votes", ui.url)).send().await.unwrap();
    }
    // The page as the server renders it, never hydrated: a UI without the
    // bundle (the browser still runs the measuring script).
    let no_bundle = tempfile::tempdir().unwrap();
    let static_ui =
        UiServer::start_with_site(&format!("http://{}", service.addr()), no_bundle.path(), &[]).await;
    for (w, h) in [(1024, 768), (1280, 720), (1920, 1080), (3840, 2160)] {
        let mut seen: Vec<Value> = Vec::new();
        for javascript in [false, true] {
            let browser = Browser::launch((w, h), true).await;
            browser.set_viewport(w, h).await;
            if javascript {
                browser.open_hydrated(&format!("{}/present?theme=dark", ui.url)).await;
                browser.wait_text("[data-test='present-total']", "the total", |t| t == "14076").await;
                browser.wait_for("[data-test='replica']").await;
            } else {
                browser.open(&format!("{}/present?theme=dark", static_ui.url)).await;
                browser.wait_for("main.present").await;
            }
            let g = browser.eval(PRESENT_GEOMETRY).await;
            let (vw, vh) = (g["viewport"][0].as_f64().unwrap(), g["viewport"][1].as_f64().unwrap());
            let at = format!("{w}x{h} (javascript {javascript})");
            assert!(
                g["scroll"][0].as_f64().unwrap() <= vw && g["scroll"][1].as_f64().unwrap() <= vh,
                "{at} scrolls: {g}"
            );
            let inside = |b: &Value| {
                let b: Vec<f64> = b.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
                b[0] >= -0.5 && b[1] >= -0.5 && b[2] <= vw + 0.5 && b[3] <= vh + 0.5
            };
            for (part, b) in g["parts"].as_object().unwrap() {
                assert!(!b.is_null(), "{at}: no {part}");
                assert!(inside(b), "{at}: {part} {b} is outside {vw}x{vh}");
            }
            for node in g["nodes"].as_array().unwrap() {
                assert!(inside(node), "{at}: a topology node {node} is outside");
            }
            let code = &g["parts"]["code"];
            let qr_height = code[3].as_f64().unwrap() - code[1].as_f64().unwrap();
            assert!(qr_height >= 0.4 * vh, "{at}: the QR code is {qr_height} px of {vh}");
            assert!(g["total_in_hole"].as_f64().unwrap() < 1.0, "{at}: the total runs onto the ring: {g}");
            for row in g["legend"].as_array().unwrap() {
                assert_eq!(
                    row,
                    &serde_json::json!([true, true, true]),
                    "{at}: a legend row overlaps or wraps: {g}"
                );
            }
            browser
                .screenshot(&format!("present-{w}x{h}-{}", if javascript { "hydrated" } else { "static" }))
                .await;
            seen.push(g["parts"].clone());
            browser.close().await;
        }
        // The same layout before and after hydration (to a pixel).
        for (part, before) in seen[0].as_object().unwrap() {
            let after = &seen[1][part];
            let moved = (0..4)
                .map(|i| (before[i].as_f64().unwrap() - after[i].as_f64().unwrap()).abs())
                .fold(0.0, f64::max);
            assert!(moved <= 1.0, "{w}x{h}: {part} moved {moved} px on hydration: {before} -> {after}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_presenter_colours_the_stores_by_health_and_shows_none_in_embedded_mode() {
    let _one = exclusive().await;
    let mut pg = yelb_testkit::PgServer::start_new();
    let flags = vec![
        format!("--database-url={}", pg.url("yelb_stores")),
        format!("--redis-url={}", yelb_testkit::shared_redis().url()),
        format!("--redis-key-prefix={}:", yelb_testkit::unique_name("stores")),
    ];
    let app = AppServer::start(&flags, 0).await;
    let ui = UiServer::start(&app.url(), &[]).await;
    let browser = Browser::launch(DESKTOP, true).await;
    browser.open_hydrated(&format!("{}/present", ui.url)).await;
    assert_eq!(store_health(&browser).await, serde_json::json!(["Postgres:up", "Redis:up"]));
    pg.stop();
    let deadline = std::time::Instant::now() + support::browser::PATIENCE;
    while store_health(&browser).await != serde_json::json!(["Postgres:down", "Redis:up"]) {
        assert!(
            std::time::Instant::now() < deadline,
            "Postgres never shown down: {}",
            store_health(&browser).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    browser.screenshot("present-postgres-down").await;
    browser.close().await;

    // Embedded: votes and views in memory, no boxes for services that do not exist.
    let embedded = AppServer::start(&[], 0).await;
    let ui = UiServer::start(&embedded.url(), &[]).await;
    let browser = Browser::launch(DESKTOP, true).await;
    browser.open_hydrated(&format!("{}/present", ui.url)).await;
    browser.wait_for("[data-test='replica']").await;
    tokio::time::sleep(Duration::from_millis(1500)).await; // a spread event or two
    assert_eq!(store_health(&browser).await, serde_json::json!([]));
    browser.close().await;
}

/// The topology's store boxes, as `name:health`.
async fn store_health(browser: &Browser) -> serde_json::Value {
    browser
        .eval(
            "return [...document.querySelectorAll(\"[data-test='store']\")]\
             .map(e => e.textContent.trim() + ':' + e.dataset.health)",
        )
        .await
}

/// Adds a replica name this test does not run to the presets' target list
/// and picks it, so that the crash and the CPU burn hit nothing here.
const AIM_AT_GHOST: &str = "const s = document.querySelector(\"[data-test='preset-target']\");\
    s.add(new Option('ghost-replica', 'ghost-replica')); s.value = 'ghost-replica'; return true";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_phone_every_console_preset_does_what_it_says() {
    let _one = exclusive().await;
    let token = "preset-test-token";
    let mut backends = real_backends();
    backends.push(format!("--admin-token={token}"));
    let app = AppServer::start(&backends, 0).await;
    let ui = UiServer::start(&app.url(), &[]).await;
    let page = Browser::launch(PHONE, true).await;
    page.open(&format!("{}/console", ui.url)).await;
    page.eval(&fill("[data-test='token']", token)).await;
    page.click("[data-test='sign-in']").await;
    page.wait_text("[data-test='console-notice']", "signed in", |t| t == "Signed in.").await;

    // Laid out for the phone: no sideways scrolling, every preset a big target.
    let widths = page.eval("return [document.documentElement.scrollWidth, window.innerWidth]").await;
    assert_eq!(widths[0], widths[1], "page width vs. phone width");
    let sizes = page
        .eval("return [...document.querySelectorAll(\"[data-test^='preset-']\")].filter(b => b.tagName === 'BUTTON')\
               .map(b => [b.value, b.getBoundingClientRect().width, b.getBoundingClientRect().height])")
        .await;
    let sizes = sizes.as_array().unwrap();
    assert_eq!(sizes.len(), 8, "{sizes:?}");
    for s in sizes {
        assert!(s[1].as_f64().unwrap() >= 120.0 && s[2].as_f64().unwrap() >= 48.0, "a small button: {s}");
    }
    page.screenshot("console-phone").await;

    let admin_faults = || async {
        let r =
            http().get(format!("{}/api/v1/admin/faults", app.url())).bearer_auth(token).send().await.unwrap();
        r.json::<serde_json::Value>().await.unwrap()["faults"].clone()
    };
    for (preset, words, check) in [
        ("slow", "+800 ms", "latency_ms"),
        ("sick", "30% errors", "error_rate"),
        ("unready", "readiness off", "unready"),
        ("crash", "crash", "crash"),
        ("burn", "CPU burn", "cpu_burn"),
        ("poisoned", "votes for IHOP only", "restaurant"),
    ] {
        page.eval(AIM_AT_GHOST).await;
        page.click(&format!("[data-test='preset-{preset}']")).await;
        page.wait_text("[data-test='faults'] tbody", preset, |t| {
            t.contains("ghost-replica") && t.contains(words)
        })
        .await;
        let faults = admin_faults().await;
        let spec = &faults[0];
        assert_eq!(spec["scope"], "ghost-replica", "{preset}: {faults}");
        assert!(!spec[check].is_null() && spec[check] != false && spec[check] != 0, "{preset}: {faults}");
        page.click("[data-test='clear']").await;
        page.wait_text("[data-test='no-faults']", "no faults", |t| t == "None.").await;
    }

    // On this replica for real: the poisoned option fails IHOP's votes only,
    // and the countdown ticks.
    page.click("[data-test='preset-poisoned']").await;
    page.wait_text("[data-test='faults'] tbody", "the poisoned option", |t| t.contains("IHOP")).await;
    let first = page.text("[data-test='expires']").await;
    let statuses = |slug: &'static str| {
        let url = format!("{}/api/v1/votes/{slug}", app.url());
        async move {
            let mut s = Vec::new();
            for _ in 0..20 {
                s.push(http().post(&url).send().await.unwrap().status().as_u16());
            }
            s
        }
    };
    assert!(statuses("ihop").await.contains(&503), "IHOP's votes fail");
    assert!(statuses("chipotle").await.iter().all(|s| *s == 200), "the others do not");
    page.wait_text("[data-test='expires']", "the countdown", |t| t != first).await;
    page.click("[data-test='clear']").await;
    page.wait_text("[data-test='no-faults']", "no faults", |t| t == "None.").await;

    page.click("[data-test='preset-voters']").await;
    page.wait_text("[data-test='sim-status']", "100 voters", |t| {
        t.contains("running") && t.contains("100 voters")
    })
    .await;
    let deadline = std::time::Instant::now() + support::browser::PATIENCE;
    loop {
        let votes: serde_json::Value =
            http().get(format!("{}/api/v1/votes", app.url())).send().await.unwrap().json().await.unwrap();
        if votes["total"].as_i64().unwrap() >= 50 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the voters vote: {votes}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    page.click("[data-test='sim-stop']").await;
    page.wait_text("[data-test='console-notice']", "stopped", |t| t.contains("stopped")).await;

    page.click("[data-test='preset-reset']").await;
    page.wait_text("[data-test='console-notice']", "the reset", |t| t.contains("zero")).await;
    let votes: serde_json::Value =
        http().get(format!("{}/api/v1/votes", app.url())).send().await.unwrap().json().await.unwrap();
    assert_eq!(votes["total"], 0);

    // A bad field is named beside its input, not only at the top.
    page.eval(&fill("[name='ttl_secs']", "99999")).await;
    page.eval("document.querySelector(\"[name='ttl_secs']\").removeAttribute('max'); return true").await;
    page.click("[data-test='set-fault']").await;
    page.wait_text("[data-test='field-error-ttl_secs']", "the field's error", |t| t.contains("1 to 3600"))
        .await;
    assert!(
        !page.exists("[data-test='console-error']").await,
        "the error is beside the field, not at the top"
    );
    let errors = page.console_errors().await;
    let errors: Vec<&String> = errors.iter().filter(|e| !e.contains("422")).collect();
    assert!(errors.is_empty(), "no CSP or script errors: {errors:?}");
    page.close().await;
}
