//! The UI server without a browser: the server-rendered HTML, `/api`
//! forwarding, the no-JavaScript vote, health, and the configuration table.
//! Real app servers on real Postgres and Redis throughout.

#![allow(clippy::unwrap_used)] // Helpers of tests: a failed step is a failed test.

mod support;

use std::collections::HashSet;
use std::process::Command;

use serde_json::Value;
use support::{AppServer, LegacyOnly, UiServer, http, real_backends};
use yelb_core::Restaurant;
use yelb_ui::model::{ApiLevel, SNAPSHOT_ID, Snapshot};
use yelb_ui::server::audience;

/// The snapshot the server rendered into a page.
fn snapshot_of(html: &str) -> Snapshot {
    let open = format!(r#"<script type="application/json" id="{SNAPSHOT_ID}">"#);
    let start = html.find(&open).expect("the page carries its snapshot") + open.len();
    let end = html[start..].find("</script>").unwrap() + start;
    serde_json::from_str(&html[start..end]).expect("snapshot JSON")
}

/// The text right after the element whose opening tag holds `attribute`.
fn text_of(html: &str, attribute: &str) -> String {
    let at = html.find(attribute).unwrap_or_else(|| panic!("no element with {attribute}"));
    let start = html[at..].find('>').unwrap() + at + 1;
    html[start..].chars().take_while(|c| *c != '<').collect()
}

async fn page(ui: &UiServer) -> String {
    let r = http().get(&ui.url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    r.text().await.unwrap()
}

#[tokio::test]
async fn the_server_rendered_page_holds_the_cards_counts_hostname_and_views() {
    let app = AppServer::start(&real_backends(), 0).await;
    for _ in 0..2 {
        http().post(format!("{}/api/v1/votes/ihop", app.url())).send().await.unwrap();
    }
    http().post(format!("{}/api/v1/votes/outback", app.url())).send().await.unwrap();
    let ui = UiServer::start(&app.url(), &["--title=Demo <Day>"]).await;
    let html = page(&ui).await;

    assert!(html.contains("<title>Demo &lt;Day&gt;</title>"), "the title, escaped");
    let order: Vec<usize> = Restaurant::CARD_ORDER
        .iter()
        .map(|r| html.find(&format!(r#"<article data-restaurant="{}""#, r.slug())).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "cards in the original's order");
    for r in Restaurant::CARD_ORDER {
        assert!(html.contains(r.tagline()), "{}", r.tagline());
        assert!(
            html.contains(&format!(r#"<form method="post" action="/vote/{}""#, r.slug())),
            "a real form per card"
        );
    }
    assert_eq!(text_of(&html, r#"data-test="hostname""#), app.hostname);
    assert_eq!(text_of(&html, r#"data-test="total""#), "3", "the donut's total");
    assert!(html.contains(r#"stroke-dasharray="66.667 33.333""#), "IHOP's arc is two thirds");
    assert!(html.contains("/pkg/yelb-ui.js"), "the hydration script");

    let snapshot = snapshot_of(&html);
    assert_eq!(snapshot.api, ApiLevel::Modern);
    assert_eq!(snapshot.votes.unwrap().ihop, 2);
    assert_eq!(snapshot.pageviews, Some(1));
    assert!(snapshot.view_counted);
    assert_eq!(snapshot.title, "Demo <Day>");
    assert!(snapshot.qr_svg.starts_with("<svg"));
    // Opened through 127.0.0.1: the QR code gives this machine's LAN address.
    let host = ui.url.trim_start_matches("http://");
    let expected = audience::choose(None, "http", Some(host), &audience::lan_addresses());
    assert_eq!(snapshot.public_url, expected.url);
    assert!(
        !audience::is_loopback_host(snapshot.public_url.trim_start_matches("http://"))
            || snapshot.url_warning.is_some()
    );

    // Every render counts one page view, as the original's page load did.
    assert_eq!(snapshot_of(&page(&ui).await).pageviews, Some(2));
}

#[tokio::test]
async fn the_public_url_follows_the_proxy_headers_or_the_configuration() {
    let app = AppServer::start(&real_backends(), 0).await;
    let ui = UiServer::start(&app.url(), &[]).await;
    let r = http()
        .get(&ui.url)
        .header("x-forwarded-host", "yelb.example.org")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(snapshot_of(&r.text().await.unwrap()).public_url, "https://yelb.example.org/");
    let r = http().get(&ui.url).header("x-forwarded-host", "evil\"><script>").send().await.unwrap();
    assert_eq!(snapshot_of(&r.text().await.unwrap()).public_url, "/", "a hostile Host is not echoed");

    let fixed = UiServer::start(&app.url(), &["--public-url=https://vote.example.com/"]).await;
    assert_eq!(snapshot_of(&page(&fixed).await).public_url, "https://vote.example.com/");

    // Through a loopback host, with the port it was reached on.
    let lan = audience::lan_addresses();
    let r = http().get(&ui.url).header("host", "localhost:8123").send().await.unwrap();
    let snapshot = snapshot_of(&r.text().await.unwrap());
    match lan.first() {
        Some(ip) => {
            assert_eq!(snapshot.public_url, format!("http://{ip}:8123/"));
            assert_eq!(snapshot.url_warning, None);
        }
        None => {
            assert_eq!(snapshot.public_url, "http://localhost:8123/");
            assert!(snapshot.url_warning.unwrap().contains("phones cannot open it"));
        }
    }
    assert_eq!(snapshot.other_urls.len(), lan.len().saturating_sub(1));
    // The configured URL still wins over loopback.
    let r = http().get(&fixed.url).header("host", "localhost:8123").send().await.unwrap();
    assert_eq!(snapshot_of(&r.text().await.unwrap()).public_url, "https://vote.example.com/");
}

#[tokio::test]
async fn api_requests_are_forwarded_with_the_app_servers_answers_and_headers() {
    let app = AppServer::start(&real_backends(), 0).await;
    let ui = UiServer::start(&app.url(), &[]).await;
    let client = http();
    for path in ["/api/getvotes", "//api/getvotes", "/api/getvotes?cache=1"] {
        let r = client.get(format!("{}{path}", ui.url)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["x-served-by"], app.hostname.as_str());
        assert_eq!(r.headers()["access-control-allow-origin"], "*");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body[0]["name"], "outback", "{path}");
    }
    let r = client.post(format!("{}/api/v1/votes/chipotle", ui.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["count"], 1);
    let r = client
        .post(format!("{}/api/v1/votes", ui.url))
        .header("content-type", "application/json")
        .body(r#"{"restaurant":"ihop"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "bodies are forwarded");
    let r = client.post(format!("{}/api/v1/votes/pizza", ui.url)).send().await.unwrap();
    assert_eq!(r.status(), 404, "the app server's refusal passes through");
    assert!(r.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("pizza"));

    // The event stream passes through as a stream.
    let mut events = client.get(format!("{}/api/v1/events", ui.url)).send().await.unwrap();
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let first =
        tokio::time::timeout(std::time::Duration::from_secs(5), events.chunk()).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&first.unwrap()).into_owned();
    assert!(text.contains("event: state") && text.contains(r#""chipotle":1"#), "{text}");
}

/// Hostnames that answered `n` requests through the UI.
async fn hostnames(ui: &UiServer, n: usize) -> Vec<String> {
    let client = http();
    let mut hosts = Vec::new();
    for _ in 0..n {
        let r = client.get(format!("{}/api/hostname", ui.url)).send().await.unwrap();
        hosts.push(r.headers()["x-served-by"].to_str().unwrap().to_owned());
    }
    hosts
}

#[tokio::test]
async fn by_default_each_request_gets_its_own_connection_so_replicas_share_the_load() {
    let backends = real_backends();
    let first = AppServer::start(&backends, 0).await;
    let second = AppServer::start(&backends, 0).await;
    let service = yelb_testkit::Balancer::start(vec![first.addr, second.addr]);
    let ui = UiServer::start(&format!("http://{}", service.addr()), &[]).await;
    let hosts = hostnames(&ui, 20).await;
    let first_count = hosts.iter().filter(|h| **h == first.hostname).count();
    assert_eq!(first_count, 10, "round robin per connection: {hosts:?}");
    assert!(service.connections() >= 20);
}

#[tokio::test]
async fn several_endpoints_are_taken_in_turn_without_any_balancer() {
    // Nomad's own service discovery has no DNS: its template lists every
    // app server, comma-separated.
    let backends = real_backends();
    let first = AppServer::start(&backends, 0).await;
    let second = AppServer::start(&backends, 0).await;
    let ui = UiServer::start(&format!("{},{}", first.url(), second.url()), &[]).await;
    let hosts = hostnames(&ui, 20).await;
    let first_count = hosts.iter().filter(|h| **h == first.hostname).count();
    assert_eq!(first_count, 10, "in turn: {hosts:?}");
}

#[tokio::test]
async fn a_dead_endpoint_in_the_list_costs_the_audience_no_502() {
    // A crashed replica (nothing listens on its port) in Nomad's list: its
    // share of the requests goes to the live one, votes included.
    let live = AppServer::start(&real_backends(), 0).await;
    let dead = yelb_testkit::free_port();
    let ui = UiServer::start(&format!("http://127.0.0.1:{dead},{}", live.url()), &[]).await;
    let client = http();
    for i in 0..20 {
        let r = client.post(format!("{}/api/v1/votes/ihop", ui.url)).send().await.unwrap();
        assert_eq!(r.status(), 200, "vote {i}");
        assert_eq!(r.headers()["x-served-by"].to_str().unwrap(), live.hostname);
        let r = client.get(format!("{}/api/getvotes", ui.url)).send().await.unwrap();
        assert_eq!(r.status(), 200, "read {i}");
    }
    let votes: Value =
        client.get(format!("{}/api/v1/votes", ui.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(votes["votes"]["ihop"], 20, "every vote counted once: {votes}");
    // The page's own reads take the same path.
    let snapshot = snapshot_of(&page(&ui).await);
    assert_eq!(snapshot.hostname.as_deref(), Some(live.hostname.as_str()));
}

#[tokio::test]
async fn with_keepalive_on_requests_share_a_connection_and_stick_to_one_replica() {
    let backends = real_backends();
    let first = AppServer::start(&backends, 0).await;
    let second = AppServer::start(&backends, 0).await;
    let service = yelb_testkit::Balancer::start(vec![first.addr, second.addr]);
    let ui = UiServer::start(&format!("http://{}", service.addr()), &["--upstream-keepalive=true"]).await;
    let hosts: HashSet<String> = hostnames(&ui, 20).await.into_iter().collect();
    assert_eq!(hosts.len(), 1, "one pooled connection, one replica: {hosts:?}");
    assert!(service.connections() <= 2, "{} connections", service.connections());
}

#[tokio::test]
async fn while_the_app_server_is_away_the_page_still_renders_and_api_answers_502() {
    let port = yelb_testkit::free_port();
    let ui = UiServer::start(&format!("http://127.0.0.1:{port}"), &[]).await;
    let html = page(&ui).await;
    let snapshot = snapshot_of(&html);
    assert_eq!(snapshot.votes, None);
    assert_eq!(snapshot.api, ApiLevel::Unknown);
    assert!(snapshot.notice.unwrap().text.contains("not answering"));
    assert!(html.contains("Pancakes, for a powerful start!"), "the cards render anyway");

    let r = http().get(format!("{}/api/getvotes", ui.url)).send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], 502);
    assert!(body["error"].as_str().unwrap().contains(&format!("127.0.0.1:{port}")), "{body}");

    // The UI's own health does not depend on the app server's.
    assert_eq!(http().get(format!("{}/healthz", ui.url)).send().await.unwrap().status(), 200);
    let ready = http().get(format!("{}/readyz", ui.url)).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<Value>().await.unwrap()["appserver"], "unreachable", "as the last request found");

    let form = http().post(format!("{}/vote/ihop", ui.url)).send().await.unwrap();
    assert_eq!(form.status(), 303);
    assert_eq!(form.headers()["location"], "/?vote_failed=ihop&why=unreachable");

    // Then the app server arrives, on the address the UI was given.
    let app = AppServer::start(&real_backends(), port).await;
    let r = http().get(format!("{}/api/getvotes", ui.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(snapshot_of(&page(&ui).await).hostname.as_deref(), Some(app.hostname.as_str()));
}

#[tokio::test]
async fn a_form_vote_counts_and_redirects_back_to_the_page() {
    let (backends, db) = support::real_backends_named();
    let app = AppServer::start(&backends, 0).await;
    let ui = UiServer::start(&app.url(), &[]).await;
    let r = http().post(format!("{}/vote/bucadibeppo", ui.url)).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/?voted=bucadibeppo");
    let r = http().get(format!("{}/?voted=bucadibeppo", ui.url)).send().await.unwrap();
    let snapshot = snapshot_of(&r.text().await.unwrap());
    assert_eq!(snapshot.votes.unwrap().bucadibeppo, 1);
    assert!(snapshot.notice.unwrap().text.contains("Buca di Beppo is counted"));
    let keys = yelb_testkit::shared_pg().psql(&db, "SELECT key FROM yelb_vote_keys");
    assert!(keys.starts_with("ui-") && !keys.contains('\n'), "one vote, sent with a key: {keys:?}");

    let r = http().post(format!("{}/vote/pizza", ui.url)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("unknown restaurant 'pizza'"));
    let r = http().get(format!("{}/vote/ihop", ui.url)).send().await.unwrap();
    assert_eq!(r.status(), 405, "a GET never votes");
    let r = http().get(format!("{}/no/such/page", ui.url)).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn in_front_of_an_app_server_with_only_the_original_api_the_core_page_works() {
    let app = AppServer::start(&real_backends(), 0).await;
    let legacy = LegacyOnly::start(&app).await;
    let ui = UiServer::start(&legacy.url, &[]).await;
    let snapshot = snapshot_of(&page(&ui).await);
    assert_eq!(snapshot.api, ApiLevel::Legacy);
    assert_eq!(
        snapshot.hostname.as_deref(),
        Some(app.hostname.as_str()),
        "from the original's getstats body"
    );
    assert_eq!(snapshot.pageviews, Some(1));

    // The form vote falls back to the original's GET /api/{restaurant}.
    let r = http().post(format!("{}/vote/ihop", ui.url)).send().await.unwrap();
    assert_eq!(r.headers()["location"], "/?voted=ihop");
    let html = page(&ui).await;
    assert_eq!(snapshot_of(&html).votes.unwrap().ihop, 1);
    let at = html.find(r#"class="spread""#).unwrap();
    let open_tag = &html[html[..at].rfind('<').unwrap()..at + html[at..].find('>').unwrap()];
    assert!(open_tag.contains(" hidden"), "spread panel hidden: {open_tag}");
}

#[tokio::test]
async fn the_bundle_is_served_compressed_with_the_right_types() {
    let app = AppServer::start(&real_backends(), 0).await;
    let ui = UiServer::start(&app.url(), &[]).await;
    let client = reqwest::Client::builder().no_gzip().build().unwrap();
    let r = client
        .get(format!("{}/pkg/yelb-ui_bg.wasm", ui.url))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/wasm");
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let r =
        client.get(format!("{}/yelb.css", ui.url)).header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let ready = http().get(format!("{}/readyz", ui.url)).send().await.unwrap();
    assert_eq!(ready.json::<Value>().await.unwrap()["status"], "ready");
}

/// What a browser downloads for `path` with gzip allowed: the compressed size.
async fn as_sent(ui: &UiServer, path: &str) -> usize {
    let client = reqwest::Client::builder().no_gzip().build().unwrap();
    let r = client.get(format!("{}{path}", ui.url)).header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    assert_eq!(r.headers().get("content-encoding").map(|v| v.to_str().unwrap()), Some("gzip"), "{path}");
    r.bytes().await.unwrap().len()
}

/// The decompressed bytes of `path`.
async fn raw(ui: &UiServer, path: &str) -> Vec<u8> {
    let r = http().get(format!("{}{path}", ui.url)).send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.bytes().await.unwrap().to_vec()
}

/// Issue 16.4: the phones' page loads a bundle of its own, without the
/// presenter view's code, and stays light. Before the split every page
/// loaded one 243 KB bundle (gzipped) with the presenter in it.
#[tokio::test]
async fn the_voting_page_loads_a_light_bundle_without_the_presenter() {
    let app = AppServer::start(&real_backends(), 0).await;
    let ui = UiServer::start(&app.url(), &[]).await;
    let voting = page(&ui).await;
    assert!(voting.contains("/pkg/yelb-ui.js") && !voting.contains("yelb-present"), "the voting bundle");
    let present = http().get(format!("{}/present", ui.url)).send().await.unwrap().text().await.unwrap();
    assert!(present.contains("/pkg/yelb-present.js") && !present.contains("/pkg/yelb-ui.js"), "its own");

    // The presenter's topology strip (its aria-label is a string in the
    // code that hydrates it) is in the presenter's bundle only.
    let needle = b"Topology";
    let has = |wasm: &[u8]| wasm.windows(needle.len()).any(|w| w == needle);
    assert!(has(&raw(&ui, "/pkg/yelb-present_bg.wasm").await), "the presenter's bundle has it");
    let voting_wasm = raw(&ui, "/pkg/yelb-ui_bg.wasm").await;
    assert!(!has(&voting_wasm), "the voting bundle does not");
    // No JSON parser of its own: serde_json's messages are not in it (the
    // browser's JSON.parse reads the answers, ui/src/decode.rs).
    let serde_json = b"EOF while parsing";
    assert!(!voting_wasm.windows(serde_json.len()).any(|w| w == serde_json), "serde_json in the bundle");

    let mut total = 0;
    for path in ["/", "/yelb.css", "/pkg/yelb-ui.js", "/pkg/yelb-ui_bg.wasm"] {
        total += as_sent(&ui, path).await;
    }
    // Issue 16's target: at most 150 KB as sent (BENCHMARKS.md has the figures).
    assert!(total <= 150_000, "the voting page downloads {total} bytes");
}

#[tokio::test]
async fn a_ui_without_its_bundle_is_not_ready() {
    let app = AppServer::start(&real_backends(), 0).await;
    let empty = tempfile::tempdir().unwrap();
    let ui = UiServer::start_with_site(&app.url(), empty.path(), &[]).await;
    let r = http().get(format!("{}/readyz", ui.url)).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("bundle"));
}

const BIN: &str = env!("CARGO_BIN_EXE_yelb-ui");

#[test]
fn bad_configuration_stops_the_ui_at_start_naming_the_variable() {
    for (var, value) in [
        ("YELB_UI_PORT", "http"),
        ("YELB_APPSERVER_ENDPOINT", "yelb-appserver"),
        ("YELB_UI_UPSTREAM_KEEPALIVE", "sometimes"),
        ("UI_ENV", "staging"),
    ] {
        let out = Command::new(BIN).env_clear().env(var, value).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}={value}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(var), "{var}");
    }
}

#[test]
fn help_and_the_readme_list_the_same_variables() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let start = readme.find("<!-- ui-config -->").expect("README marks the UI table");
    let end = readme[start..].find("<!-- /ui-config -->").unwrap() + start;
    let mut in_readme: Vec<String> = readme[start..end]
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect();
    let out = Command::new(BIN).arg("--help").output().unwrap();
    // Joined into one line: --help wraps to the terminal's width.
    let help = String::from_utf8_lossy(&out.stdout).split_whitespace().collect::<Vec<_>>().join(" ");
    let mut in_help: Vec<String> =
        help.split("[env: ").skip(1).filter_map(|s| s.split([']', '=']).next()).map(str::to_owned).collect();
    in_help.push("RUST_LOG".to_owned());
    in_help.sort();
    in_readme.sort();
    assert_eq!(in_help, in_readme);
}
