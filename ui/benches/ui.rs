//! The UI benchmark (`./scripts/bench-ui.sh`): prints figures, asserts nothing.
//!
//! - Page weight: what a phone downloads on first visit (HTML, CSS, JS,
//!   WebAssembly), gzip-compressed as the UI server sends it.
//! - First render and interactive: headless Chromium loading the page with
//!   its cache disabled, over loopback: first contentful paint, and the
//!   moment hydration finished (the page's `yelb:hydrated` mark).
//! - Vote to other screen: two browsers on two UI servers, each in front of
//!   its own app-server replica on one Postgres and Redis (as on stage). One
//!   votes; the time until the other's total changes is taken from both
//!   pages' clocks (the same machine clock), so WebDriver's own latency is
//!   not in the figure.

#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)] // A report printer.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::browser::{Browser, DESKTOP};
use support::{AppServer, UiServer, real_backends};

const LOADS: usize = 20;
const VOTES: usize = 120;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn summary(mut values: Vec<f64>) -> String {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    format!(
        "p50 {:>6.1} ms   p95 {:>6.1} ms   max {:>6.1} ms   (n={})",
        percentile(&values, 50.0),
        percentile(&values, 95.0),
        values[values.len() - 1],
        values.len()
    )
}

async fn gzip_bytes(url: &str) -> usize {
    let client = reqwest::Client::new();
    let r = client.get(url).header("accept-encoding", "gzip").send().await.unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    let compressed = r.headers().get("content-encoding").is_some_and(|v| v == "gzip");
    let body = r.bytes().await.unwrap();
    assert!(compressed, "{url} was not sent compressed");
    body.len()
}

async fn page_weight(ui: &UiServer) {
    // Each page loads its own bundle: the phones' page the light one.
    for (page, path, bundle) in
        [("voting page", "/", "yelb-ui"), ("presenter view", "/present", "yelb-present")]
    {
        println!("{page} weight (gzip, as sent):");
        let mut total = 0;
        for (what, path) in [
            ("HTML", path.to_owned()),
            ("CSS", "/yelb.css".to_owned()),
            ("JS", format!("/pkg/{bundle}.js")),
            ("WebAssembly", format!("/pkg/{bundle}_bg.wasm")),
        ] {
            let n = gzip_bytes(&format!("{}{path}", ui.url)).await;
            total += n;
            println!("  {what:<12} {:>8.1} KB", n as f64 / 1024.0);
        }
        let target = if bundle == "yelb-ui" { "   (target <= 150 KB)" } else { "" };
        println!("  {:<12} {:>8.1} KB{target}", "total", total as f64 / 1024.0);
    }
}

async fn cdp(browser: &Browser, cmd: &str, params: Value) {
    browser.client.issue_cmd(support::browser::Cdp { cmd: cmd.to_owned(), params }).await.unwrap();
}

async fn first_render(ui: &UiServer) {
    let browser = Browser::launch(DESKTOP, true).await;
    browser.open(&format!("{}/healthz", ui.url)).await;
    cdp(&browser, "Network.enable", json!({})).await;
    cdp(&browser, "Network.setCacheDisabled", json!({"cacheDisabled": true})).await;
    let (mut paint, mut interactive) = (Vec::new(), Vec::new());
    for _ in 0..LOADS {
        browser.open_hydrated(&ui.url).await;
        let t = browser
            .eval(
                "const p = performance.getEntriesByName('first-contentful-paint')[0];
                 const h = performance.getEntriesByName('yelb:hydrated')[0];
                 return [p ? p.startTime : -1, h ? h.startTime : -1];",
            )
            .await;
        paint.push(t[0].as_f64().unwrap());
        interactive.push(t[1].as_f64().unwrap());
    }
    println!("page load over loopback, cache disabled ({LOADS} loads, from navigation start):");
    println!("  first contentful paint   {}", summary(paint));
    println!("  interactive (hydrated)   {}", summary(interactive));
    browser.close().await;
}

async fn vote_to_other_screen(first: &UiServer, second: &UiServer) {
    let voter = Browser::launch(DESKTOP, true).await;
    let watcher = Browser::launch(DESKTOP, true).await;
    voter.open_hydrated(&first.url).await;
    watcher.open_hydrated(&second.url).await;
    watcher.wait_text("[data-test='live']", "the live badge", |t| t == "live").await;
    watcher
        .eval(
            "window.__changes = [];
             const total = document.querySelector(\"[data-test='total']\");
             new MutationObserver(() => window.__changes.push([Date.now(), total.textContent]))
               .observe(total, {subtree: true, childList: true, characterData: true});
             return true;",
        )
        .await;
    let mut latencies = Vec::new();
    for i in 1..=VOTES {
        let sent = voter
            .eval(
                "const b = document.querySelector(\"article[data-restaurant='ihop'] button.vote\");
                 const t = Date.now(); b.click(); return t;",
            )
            .await
            .as_f64()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let seen = loop {
            let seen = watcher
                .eval(&format!(
                    "const c = window.__changes.find(c => c[1] == '{i}'); return c ? c[0] : null;"
                ))
                .await;
            if let Some(t) = seen.as_f64() {
                break t;
            }
            assert!(std::time::Instant::now() < deadline, "vote {i} never reached the other screen");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        latencies.push(seen - sent);
        // Let the voter's button come back, then pause past the stream's
        // 50 ms throttle, so each vote is measured on its own.
        voter
            .wait_text("article[data-restaurant='ihop'] button.vote", "the button back", |t| t == "Vote")
            .await;
        tokio::time::sleep(Duration::from_millis(80)).await;
    }
    println!("vote on one screen to the change on another (two replicas, Postgres + Redis):");
    println!("  {}   (target p95 <= 250 ms)", summary(latencies));
    voter.close().await;
    watcher.close().await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let backends = real_backends();
    let first = AppServer::start(&backends, 0).await;
    let second = AppServer::start(&backends, 0).await;
    let ui_first = UiServer::start(&first.url(), &[]).await;
    let ui_second = UiServer::start(&second.url(), &[]).await;
    println!(
        "yelb-ui benchmark: {} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu()
    );
    page_weight(&ui_first).await;
    first_render(&ui_first).await;
    vote_to_other_screen(&ui_first, &ui_second).await;
}

fn cpu() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default()
}
