//! The UI server against a hostile or broken client: a malformed request
//! body, odd methods, odd bundle paths, too many streams, and the headers
//! that keep the page from being framed or made to run foreign script.
//! Real app servers on real Postgres and Redis.

#![allow(clippy::unwrap_used)] // Helpers of tests: a failed step is a failed test.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{AppServer, UiServer, http, real_backends};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends `raw` on a fresh connection and returns everything read until the
/// server closes it (or 5 s pass).
async fn raw(ui: &UiServer, raw: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(ui.url.trim_start_matches("http://")).await.unwrap();
    stream.write_all(raw).await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut got)).await;
    String::from_utf8_lossy(&got).into_owned()
}

/// Sends an HTTP/1.0 request `head` (no blank line) from the loopback
/// address `from`, another client as the UI sees it; the whole answer.
async fn from_client(from: &str, ui: &UiServer, head: &str, body: &str) -> String {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(ui.url.trim_start_matches("http://").parse().unwrap()).await.unwrap();
    let request = format!("{head}\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut got)).await;
    String::from_utf8_lossy(&got).into_owned()
}

fn status(answer: &str) -> &str {
    answer.split_whitespace().nth(1).unwrap_or("none")
}

async fn readyz(ui: &UiServer) -> Value {
    http().get(format!("{}/readyz", ui.url)).send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn a_malformed_chunked_body_is_the_clients_fault_and_the_app_server_stays_reachable() {
    let app = AppServer::start(&real_backends(), 0).await;
    let ui = UiServer::start(&app.url(), &[]).await;
    http().get(format!("{}/api/getvotes", ui.url)).send().await.unwrap();
    assert_eq!(readyz(&ui).await["appserver"], "reachable");
    let answer = raw(
        &ui,
        b"POST /api/v1/votes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz-not-hex\r\n{}\r\n0\r\n\r\n",
    )
    .await;
    let status = answer.split_whitespace().nth(1).unwrap_or("none");
    assert!(status.starts_with('4'), "a malformed body is a 4xx, never a 502: {answer}");
    assert_eq!(readyz(&ui).await["appserver"], "reachable", "the app server did nothing wrong");
}

#[tokio::test]
async fn connect_and_trace_are_refused_with_405_not_forwarded() {
    let app = AppServer::start(&real_backends(), 0).await;
    let ui = UiServer::start(&app.url(), &[]).await;
    for method in ["TRACE", "BREW"] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = http().request(m, format!("{}/api/getvotes", ui.url)).send().await.unwrap();
        assert_eq!(r.status(), 405, "{method}");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("not allowed"), "{body}");
    }
    let answer = raw(&ui, b"CONNECT /api/getvotes HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    let status = answer.split_whitespace().nth(1).unwrap_or("none");
    assert!(status.starts_with('4'), "CONNECT is refused: {answer}");
    assert_ne!(readyz(&ui).await["appserver"], "unreachable");
}

#[tokio::test]
async fn odd_bundle_paths_get_404_never_an_empty_500() {
    let app = AppServer::start(&real_backends(), 0).await;
    let ui = UiServer::start(&app.url(), &[]).await;
    let long = format!("/pkg/{}", "a".repeat(300));
    for path in [long.as_str(), "/pkg/a%00b", "/pkg/..%2fCargo.toml", "/pkg/.hidden", "/pkg/no-such.js"] {
        for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
            let r = http().request(method.clone(), format!("{}{path}", ui.url)).send().await.unwrap();
            assert_eq!(r.status(), 404, "{method} {path}");
        }
    }
    let r = http().get(format!("{}/pkg/yelb-ui.js", ui.url)).send().await.unwrap();
    assert_eq!(r.status(), 200, "the real bundle is still served");
}

#[tokio::test]
async fn the_page_carries_a_content_security_policy_whose_nonce_is_on_its_scripts() {
    let app = AppServer::start(&real_backends(), 0).await;
    let ui = UiServer::start(&app.url(), &[]).await;
    let r = http().get(&ui.url).send().await.unwrap();
    let headers = r.headers().clone();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    let csp = headers["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let nonce = csp.split("'nonce-").nth(1).unwrap().split('\'').next().unwrap().to_owned();
    assert!(nonce.len() >= 16, "{nonce}");
    let html = r.text().await.unwrap();
    assert!(html.contains(&format!(r#"nonce="{nonce}""#)), "the hydration script carries the nonce");
    let again = http().get(&ui.url).send().await.unwrap();
    assert!(
        !again.headers()["content-security-policy"].to_str().unwrap().contains(&nonce),
        "a fresh nonce per page"
    );
    let api = http().get(format!("{}/api/getvotes", ui.url)).send().await.unwrap();
    assert_eq!(api.headers()["x-content-type-options"], "nosniff", "forwarded answers too");
}

#[tokio::test]
async fn past_the_stream_cap_a_forwarded_event_stream_gets_503_and_the_slot_comes_back() {
    let app = AppServer::start(&real_backends(), 0).await;
    let ui = UiServer::start(&app.url(), &["--max-streams=1"]).await;
    let first = http().get(format!("{}/api/v1/events", ui.url)).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let second = http().get(format!("{}/api/v1/events", ui.url)).send().await.unwrap();
    assert_eq!(second.status(), 503);
    assert!(second.text().await.unwrap().contains("streams are taken"));
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = http().get(format!("{}/api/v1/events", ui.url)).send().await.unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the slot must come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_silent_connection_to_the_ui_is_closed_after_the_header_timeout() {
    let app = AppServer::start(&real_backends(), 0).await;
    let ui = UiServer::start(&app.url(), &["--header-timeout=0.5"]).await;
    let started = std::time::Instant::now();
    let answer = raw(&ui, b"GET / HTTP/1.1\r\nHost: x\r\n").await;
    assert!(started.elapsed() < Duration::from_secs(3), "closed after {:?}", started.elapsed());
    assert!(!answer.contains("200 OK"), "{answer}");
}

// Prints its figures (seen with --nocapture) for BENCHMARKS.md.
#[allow(clippy::print_stdout)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_socket_fuzzing_of_the_ui_gets_no_500_no_hang_and_leaves_it_healthy() {
    use yelb_testkit::fuzz;
    let app = AppServer::start(&real_backends(), 0).await;
    let port = yelb_testkit::free_port();
    let mut ui = std::process::Command::new(env!("CARGO_BIN_EXE_yelb-ui"))
        .env_clear()
        .env("YELB_UI_LISTEN_ADDR", "127.0.0.1")
        .env("YELB_UI_PORT", port.to_string())
        .env("YELB_APPSERVER_ENDPOINT", app.url())
        .env("YELB_UI_SITE_ROOT", support::site_root())
        .env("YELB_UI_HEADER_TIMEOUT", "1")
        .env("RUST_LOG", "error")
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    support::wait_for_status(&format!("{url}/readyz"), 200).await;
    let before = fuzz::rss_kib(ui.id()).unwrap();
    let paths =
        ["/", "/api/getvotes", "/api/v1/votes", "/vote/ihop", "/pkg/yelb-ui.js", "/yelb.css", "/readyz"];
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let report =
        tokio::task::spawn_blocking(move || fuzz::run(addr, &paths, 5_000, 20261203, Duration::from_secs(3)))
            .await
            .unwrap();
    let after = fuzz::rss_kib(ui.id()).unwrap();
    println!("UI raw fuzz: {}; RSS {before} -> {after} KiB", report.summary());
    let ready: Value = http().get(format!("{url}/readyz")).send().await.unwrap().json().await.unwrap();
    let _ = ui.kill();
    let _ = ui.wait();
    // The app server is up throughout: a 502 would blame it wrongly.
    let failures = report.failures(&[503]);
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(ready["appserver"], "reachable", "fuzzing the UI never marks the app server unreachable");
    assert!(after < before + 32 * 1024, "RSS grew from {before} to {after} KiB");
}

#[tokio::test]
async fn one_client_holds_at_most_its_share_of_the_screens_and_others_still_get_theirs() {
    let app = AppServer::start(&real_backends(), 0).await;
    let ui = UiServer::start(&app.url(), &["--max-streams=10", "--max-streams-per-client=2"]).await;
    let mut open = Vec::new();
    for _ in 0..2 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut stream = socket.connect(ui.url.trim_start_matches("http://").parse().unwrap()).await.unwrap();
        stream.write_all(b"GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        open.push(stream);
    }
    // However the path is spelled (the app server collapses slashes).
    for path in ["/api/v1/events", "/api/v1//events", "//api//v1/events/"] {
        let answer = from_client("127.0.0.2", &ui, &format!("GET {path} HTTP/1.0"), "").await;
        assert_eq!(status(&answer), "503", "{path}: {answer}");
        assert!(answer.contains("its share"), "{answer}");
    }
    // The stream stays open: from_client returns what came in 3 s.
    let answer = from_client("127.0.0.3", &ui, "GET /api/v1/events HTTP/1.0", "").await;
    assert_eq!(status(&answer), "200", "another client: {answer}");
    assert!(readyz(&ui).await["events"]["screens"].as_u64().unwrap() >= 2);
    drop(open);
}

#[tokio::test]
async fn the_public_ui_does_not_forward_stage_control_unless_told_to() {
    let token = "hostile-test-token-4f9a";
    let app = AppServer::start(&[format!("--admin-token={token}")], 0).await;
    let ui = UiServer::start(&app.url(), &[]).await;
    for path in ["/api/v1/admin/faults", "//api//v1//admin/reset", "/api/v1/admin/", "/api/V1/Admin/faults"] {
        let r = http().post(format!("{}{path}", ui.url)).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("not served on this public listener"), "{body}");
    }
    // The vote API is still forwarded.
    assert_eq!(http().get(format!("{}/api/getvotes", ui.url)).send().await.unwrap().status(), 200);
    let open = UiServer::start(&app.url(), &["--forward-admin=true"]).await;
    let r = http().get(format!("{}/api/v1/admin/faults", open.url)).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), 200, "forwarded when asked");
}

#[tokio::test]
async fn guessing_at_the_console_sign_in_is_throttled_per_browser() {
    let token = "hostile-test-token-4f9a";
    let app = AppServer::start(&[format!("--admin-token={token}")], 0).await;
    let ui = UiServer::start(&app.url(), &[]).await;
    let sign_in = |from: &'static str, guess: &'static str| {
        let ui = &ui;
        async move {
            let body = format!("token={guess}");
            from_client(
                from,
                ui,
                "POST /console/sign-in HTTP/1.0\r\nContent-Type: application/x-www-form-urlencoded",
                &body,
            )
            .await
        }
    };
    for i in 0..yelb_ui::server::console::SIGN_IN_BURST {
        let answer = sign_in("127.0.0.2", "not-the-token-01234").await;
        assert_eq!(status(&answer), "401", "guess {i}: {answer}");
    }
    let answer = sign_in("127.0.0.2", "not-the-token-01234").await;
    assert_eq!(status(&answer), "429", "{answer}");
    assert!(answer.contains("too many wrong tokens"), "{answer}");
    assert_eq!(status(&sign_in("127.0.0.2", "hostile-test-token-4f9a").await), "429", "even the right one");
    // The speaker, elsewhere, signs in.
    let answer = sign_in("127.0.0.3", "hostile-test-token-4f9a").await;
    assert_eq!(status(&answer), "303", "{answer}");
}

#[tokio::test]
async fn an_oversized_body_gets_413_or_400_never_a_502_blaming_the_app_server() {
    let app = AppServer::start(&real_backends(), 0).await;
    let ui = UiServer::start(&app.url(), &[]).await;
    http().get(format!("{}/api/getvotes", ui.url)).send().await.unwrap();
    let big = "x".repeat(3 * 1024 * 1024);
    let r = http()
        .post(format!("{}/api/v1/votes", ui.url))
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("larger than"), "{body}");
    // Chunked, with no length to check first: cut and refused as the client's fault.
    let stream = futures_util::stream::iter((0..48).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 64 * 1024])));
    let r = http()
        .post(format!("{}/api/v1/votes", ui.url))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await;
    if let Ok(r) = r {
        assert!(r.status().is_client_error(), "a chunked 3 MB body: {}", r.status());
    }
    assert_eq!(readyz(&ui).await["appserver"], "reachable", "the app server did nothing wrong");
}

#[tokio::test]
async fn a_console_form_posted_from_another_port_of_the_same_host_is_refused() {
    let token = "hostile-test-token-4f9a";
    let app = AppServer::start(&[format!("--admin-token={token}")], 0).await;
    let ui = UiServer::start(&app.url(), &[]).await;
    let host = ui.url.trim_start_matches("http://").to_owned();
    let cookie = format!("yelb_admin={token}");
    let post = |path: &'static str, origin: Option<String>, referer: Option<String>| {
        let mut r = http().post(format!("{}{path}", ui.url)).header("cookie", cookie.clone());
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        if let Some(o) = referer {
            r = r.header("referer", o);
        }
        async move { r.send().await.unwrap().status().as_u16() }
    };
    let evil = "http://127.0.0.1:1/".to_owned();
    for path in ["/console/reset", "/console/clear", "/console/sign-out", "/console/simulate"] {
        assert_eq!(post(path, Some(evil.clone()), None).await, 403, "{path} from another port");
        assert_eq!(post(path, None, Some(format!("{evil}attack.html"))).await, 403, "{path} by Referer");
        assert_eq!(post(path, Some("null".into()), None).await, 403, "{path} from an opaque origin");
    }
    // From the console itself, it acts (303 back to the page).
    assert_eq!(post("/console/reset", Some(format!("http://{host}")), None).await, 303);
    assert_eq!(post("/console/reset", None, None).await, 303, "no Origin at all: the cookie decides");
}

#[tokio::test]
async fn the_console_is_never_cached_and_runs_only_its_own_script() {
    let app = AppServer::start(&real_backends(), 0).await;
    let ui = UiServer::start(&app.url(), &[]).await;
    let r = http().get(format!("{}/console", ui.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self';") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
}
