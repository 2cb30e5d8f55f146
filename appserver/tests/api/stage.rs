//! Stage control (`/api/v1/admin`): the token, the reset across replicas
//! with live streams open, and every fault kind with its expiry, on the
//! embedded store and on real Postgres and Redis. Crash and CPU burn act on
//! the whole process, so they run against the real binary.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use yelb_testkit::{shared_pg, shared_redis, unique_name};

use crate::helpers::{Backend, TestApp, spawn_with};
use crate::on_both_backends;

const TOKEN: &str = "stage-token-for-tests";

async fn spawn_admin(b: Backend) -> TestApp {
    let token = format!("--admin-token={TOKEN}");
    match b {
        Backend::Memory => spawn_with(&[&token]).await.wait_ready().await,
        Backend::Real => {
            let (flags, db) = crate::helpers::real_backend_flags();
            let mut refs: Vec<&str> = flags.iter().map(String::as_str).collect();
            refs.push(&token);
            let mut app = spawn_with(&refs).await.wait_ready().await;
            app.db_name = Some(db);
            app
        }
    }
}

impl TestApp {
    /// An admin request with the token; `body` is JSON.
    async fn admin(&self, method: Method, path: &str, body: Option<&str>) -> reqwest::Response {
        let mut req = self.client.request(method, format!("{}{path}", self.base)).bearer_auth(TOKEN);
        if let Some(body) = body {
            req = req.header("content-type", "application/json").body(body.to_owned());
        }
        req.send().await.unwrap()
    }

    async fn set_fault(&self, spec: &str) {
        let r = self.admin(Method::PUT, "/api/v1/admin/faults", Some(spec)).await;
        assert_eq!(r.status(), 200, "PUT faults {spec}: {}", r.text().await.unwrap());
    }

    async fn status(&self, path: &str) -> u16 {
        self.get(path).await.unwrap().status().as_u16()
    }
}

/// Polls until `path` answers `want` (bounded by `within`); returns how long it took.
async fn until_status(app: &TestApp, path: &str, want: u16, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if app.status(path).await == want {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "{path} never answered {want} within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn without_a_token_configured_the_admin_routes_are_404_and_say_why(b: Backend) {
    let app = crate::helpers::spawn_app(b).await;
    for (method, path) in [(Method::POST, "/api/v1/admin/reset"), (Method::GET, "/api/v1/admin/faults")] {
        let r = app.admin(method, path, None).await;
        assert_eq!(r.status(), 404, "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("YELB_ADMIN_TOKEN"), "{body}");
    }
}

async fn the_token_is_refused_when_missing_or_wrong_and_accepted_when_right(b: Backend) {
    let app = spawn_admin(b).await;
    let url = format!("{}/api/v1/admin/reset", app.base);
    for auth in [None, Some("Bearer wrong-token-123"), Some("Basic c3RhZ2U="), Some(TOKEN)] {
        let mut req = app.client.post(&url);
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"yelb-admin\"");
    }
    let r = app.admin(Method::POST, "/api/v1/admin/reset", None).await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["epoch"].as_u64().unwrap() >= 1, "{body}");
}

async fn a_reset_zeroes_votes_and_page_views_and_counting_starts_again(b: Backend) {
    let app = spawn_admin(b).await;
    for _ in 0..3 {
        assert_eq!(app.request(Method::POST, "/api/v1/votes/ihop").await.status(), 200);
    }
    assert_eq!(app.request(Method::POST, "/api/v1/pageviews").await.status(), 200);
    let mut stream = app.events().await;
    let r = app.admin(Method::POST, "/api/v1/admin/reset", None).await;
    assert_eq!(r.status(), 200);
    let epoch = r.json::<serde_json::Value>().await.unwrap()["epoch"].as_u64().unwrap();
    // The open stream is told: a state of the new epoch, at zero.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let state = stream.next_state(Duration::from_secs(5)).await.expect("a state event");
        if state.epoch == epoch {
            assert_eq!((state.votes.total(), state.pageviews), (0, 0), "{state:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the stream never carried epoch {epoch}");
    }
    let votes = app.get_json("/api/v1/votes").await;
    assert_eq!((votes["total"].as_i64(), votes["epoch"].as_u64()), (Some(0), Some(epoch)));
    assert_eq!(app.get_json("/api/v1/stats").await["pageviews"], 0);
    if let Some(db) = &app.db_name {
        assert_eq!(shared_pg().psql(db, "SELECT sum(count) FROM restaurants"), "0");
    }
    let again = app.request(Method::POST, "/api/v1/votes/ihop").await;
    assert_eq!(again.json::<serde_json::Value>().await.unwrap()["count"], 1);
}

async fn an_error_fault_fails_the_api_but_not_probes_or_metrics_and_expires(b: Backend) {
    let app = spawn_admin(b).await;
    app.set_fault(r#"{"scope":"all","ttl_secs":2,"error_rate":1.0}"#).await;
    let r = app.get("/api/getvotes").await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["x-yelb-fault"], "error");
    assert!(r.text().await.unwrap().contains("injected fault"));
    assert_eq!(app.request(Method::POST, "/api/v1/votes/ihop").await.status(), 503);
    for path in ["/healthz", "/readyz", "/metrics", "/api/v1/admin/faults"] {
        let status = if path.contains("admin") {
            app.admin(Method::GET, path, None).await.status().as_u16()
        } else {
            app.status(path).await
        };
        assert_eq!(status, 200, "{path} is not affected");
    }
    let listed =
        app.admin(Method::GET, "/api/v1/admin/faults", None).await.json::<serde_json::Value>().await.unwrap();
    assert_eq!(listed["faults"][0]["error_rate"], 1.0);
    let took = until_status(&app, "/api/getvotes", 200, Duration::from_secs(6)).await;
    assert!(took > Duration::from_millis(1000), "expired too early ({took:?})");
    let listed =
        app.admin(Method::GET, "/api/v1/admin/faults", None).await.json::<serde_json::Value>().await.unwrap();
    assert_eq!(listed["faults"], serde_json::json!([]));
}

async fn a_partial_error_rate_fails_about_that_share(b: Backend) {
    let app = spawn_admin(b).await;
    app.set_fault(r#"{"scope":"all","ttl_secs":30,"error_rate":0.5}"#).await;
    let mut failed = 0;
    for _ in 0..200 {
        if app.status("/api/hostname").await == 503 {
            failed += 1;
        }
    }
    assert!((60..=140).contains(&failed), "{failed} of 200 failed at a 50% error rate");
    // A PUT that asks for nothing clears the scope.
    app.set_fault(r#"{"scope":"all","ttl_secs":30}"#).await;
    assert_eq!(app.status("/api/hostname").await, 200);
}

async fn latency_is_added_to_the_api_and_not_to_probes(b: Backend) {
    let app = spawn_admin(b).await;
    app.set_fault(r#"{"scope":"all","ttl_secs":30,"latency_ms":300,"latency_jitter_ms":100}"#).await;
    let timed = |path: &'static str| {
        let app = &app;
        async move {
            let start = Instant::now();
            assert_eq!(app.status(path).await, 200);
            start.elapsed()
        }
    };
    let api = timed("/api/hostname").await;
    assert!((Duration::from_millis(300)..Duration::from_millis(1500)).contains(&api), "{api:?}");
    let probe = timed("/healthz").await;
    assert!(probe < Duration::from_millis(200), "/healthz took {probe:?}");
    let r = app.admin(Method::DELETE, "/api/v1/admin/faults", None).await;
    assert_eq!(r.status(), 200);
    let api = timed("/api/hostname").await;
    assert!(api < Duration::from_millis(200), "{api:?} after clearing");
}

async fn readiness_and_liveness_switches_fail_their_probe_until_they_expire(b: Backend) {
    let app = spawn_admin(b).await;
    app.set_fault(r#"{"scope":"all","ttl_secs":2,"unready":true}"#).await;
    assert_eq!(app.status("/readyz").await, 503);
    assert_eq!(app.status("/healthz").await, 200);
    assert_eq!(app.status("/api/getvotes").await, 200, "readiness off still serves");
    until_status(&app, "/readyz", 200, Duration::from_secs(6)).await;
    app.set_fault(r#"{"scope":"all","ttl_secs":2,"unhealthy":true}"#).await;
    assert_eq!(app.status("/healthz").await, 503);
    assert_eq!(app.status("/readyz").await, 200);
    until_status(&app, "/healthz", 200, Duration::from_secs(6)).await;
}

async fn bad_fault_specs_get_a_clear_4xx(b: Backend) {
    let app = spawn_admin(b).await;
    for (spec, status, says) in [
        (r#"{"scope":"all","ttl_secs":0,"error_rate":1}"#, 422, "ttl_secs"),
        (r#"{"scope":"all","ttl_secs":5,"error_rate":2}"#, 422, "error_rate"),
        (r#"{"scope":"all","ttl_secs":5,"latency_ms":99999}"#, 422, "latency_ms"),
        (r#"{"scope":"","ttl_secs":5,"unready":true}"#, 422, "scope"),
        (r#"{"scope":"all","ttl_secs":5,"explode":true}"#, 422, "explode"),
        (r#"{"scope":"all""#, 400, ""),
    ] {
        let r = app.admin(Method::PUT, "/api/v1/admin/faults", Some(spec)).await;
        assert_eq!(r.status(), status, "{spec}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains(says), "{spec}: {body}");
    }
    assert_eq!(app.status("/api/getvotes").await, 200, "nothing was set");
}

async fn an_injected_error_carries_the_replica_and_cors_headers_and_is_counted_in_metrics(b: Backend) {
    let app = spawn_admin(b).await;
    app.set_fault(r#"{"scope":"all","ttl_secs":30,"error_rate":1.0}"#).await;
    let r = app
        .client
        .get(format!("{}/api/getvotes", app.base))
        .header("origin", "http://elsewhere.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers().get("x-served-by").map(|v| v.to_str().unwrap()), Some(app.hostname.as_str()));
    assert_eq!(r.headers()["access-control-allow-origin"], "*", "a page on another origin can read it");
    assert_eq!(r.headers()["x-yelb-fault"], "error");
    let metrics = app.get("/metrics").await.unwrap().text().await.unwrap();
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("yelb_http_requests_total{")
                && l.contains(r#"route="/api/getvotes""#)
                && l.contains(r#"status="503""#)
        })
        .unwrap_or_else(|| panic!("no 503 for /api/getvotes in /metrics:\n{metrics}"));
    let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 1.0, "{line}");
}

async fn a_fault_on_one_option_fails_only_the_votes_for_it(b: Backend) {
    let app = spawn_admin(b).await;
    app.set_fault(r#"{"scope":"all","ttl_secs":30,"error_rate":1.0,"restaurant":"ihop"}"#).await;
    // A fault of the same scope without an option is kept beside it.
    app.set_fault(r#"{"scope":"all","ttl_secs":30,"latency_ms":1}"#).await;
    for _ in 0..20 {
        assert_eq!(app.request(Method::POST, "/api/v1/votes/ihop").await.status(), 503);
        assert_eq!(app.status("/api/ihop").await, 503);
        assert_eq!(app.request(Method::POST, "/api/v1/votes/outback").await.status(), 200);
        assert_eq!(app.status("/api/chipotle").await, 200);
        assert_eq!(app.status("/api/getvotes").await, 200);
    }
    let listed =
        app.admin(Method::GET, "/api/v1/admin/faults", None).await.json::<serde_json::Value>().await.unwrap();
    let options: Vec<&str> = listed["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["restaurant"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(options.len(), 2, "{listed}");
    assert!(options.contains(&"ihop") && options.contains(&"-"), "{listed}");
    let votes = app.get_json("/api/v1/votes").await;
    assert_eq!((votes["votes"]["ihop"].as_i64(), votes["votes"]["outback"].as_i64()), (Some(0), Some(20)));
    // Clearing the option's slot leaves the other fault.
    app.set_fault(r#"{"scope":"all","ttl_secs":30,"restaurant":"ihop"}"#).await;
    assert_eq!(app.request(Method::POST, "/api/v1/votes/ihop").await.status(), 200);
    let r = app
        .admin(
            Method::PUT,
            "/api/v1/admin/faults",
            Some(r#"{"scope":"all","ttl_secs":5,"restaurant":"ihop","crash":true}"#),
        )
        .await;
    assert_eq!(r.status(), 422, "an option fault takes only latency and errors");
}

on_both_backends!(
    an_injected_error_carries_the_replica_and_cors_headers_and_is_counted_in_metrics,
    a_fault_on_one_option_fails_only_the_votes_for_it,
    the_number_of_faults_in_force_is_bounded,
    without_a_token_configured_the_admin_routes_are_404_and_say_why,
    the_token_is_refused_when_missing_or_wrong_and_accepted_when_right,
    a_reset_zeroes_votes_and_page_views_and_counting_starts_again,
    an_error_fault_fails_the_api_but_not_probes_or_metrics_and_expires,
    a_partial_error_rate_fails_about_that_share,
    latency_is_added_to_the_api_and_not_to_probes,
    readiness_and_liveness_switches_fail_their_probe_until_they_expire,
    bad_fault_specs_get_a_clear_4xx,
    each_replica_reports_its_version_colour_and_placement,
);

async fn two_admin_replicas() -> (TestApp, TestApp, String) {
    let db_name = unique_name("yelb_stage");
    let db = format!("--database-url={}", shared_pg().url(&db_name));
    let rd = format!("--redis-url={}", shared_redis().url());
    let prefix = format!("--redis-key-prefix={}:", unique_name("stage"));
    let token = format!("--admin-token={TOKEN}");
    let a = spawn_with(&[&db, &rd, &prefix, &token]).await.wait_ready().await;
    let b = spawn_with(&[&db, &rd, &prefix, &token]).await.wait_ready().await;
    (a, b, db_name)
}

#[tokio::test]
async fn a_reset_on_one_replica_zeroes_the_open_streams_of_the_other() {
    let (a, b, db) = two_admin_replicas().await;
    for _ in 0..5 {
        a.request(Method::POST, "/api/v1/votes/chipotle").await;
        b.request(Method::POST, "/api/v1/votes/outback").await;
    }
    b.request(Method::POST, "/api/v1/pageviews").await;
    let mut on_b = b.events().await;
    // The stream first shows the counts so far.
    let deadline = Instant::now() + Duration::from_secs(5);
    while on_b.next_state(Duration::from_secs(5)).await.unwrap().votes.total() < 10 {
        assert!(Instant::now() < deadline, "b's stream never showed the 10 votes");
    }
    let r = a.admin(Method::POST, "/api/v1/admin/reset", None).await;
    let epoch = r.json::<serde_json::Value>().await.unwrap()["epoch"].as_u64().unwrap();
    let start = Instant::now();
    loop {
        let state = on_b.next_state(Duration::from_secs(5)).await.expect("b's stream goes on");
        if state.epoch == epoch {
            assert_eq!((state.votes.total(), state.pageviews), (0, 0));
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "b never heard of the reset");
    }
    assert!(start.elapsed() < Duration::from_secs(1), "the reset took {:?} to reach b", start.elapsed());
    // A late state of the old epoch cannot bring the old counts back, and
    // new votes count from zero on both.
    b.request(Method::POST, "/api/v1/votes/ihop").await;
    assert_eq!(a.get_json("/api/v1/votes").await["total"], 1);
    assert_eq!(b.get_json("/api/v1/votes").await["votes"]["ihop"], 1);
    assert_eq!(shared_pg().psql(&db, "SELECT sum(count) FROM restaurants"), "1");
}

#[tokio::test]
async fn a_fault_scoped_to_one_replica_reaches_it_through_redis_and_spares_the_other() {
    let (a, b, _) = two_admin_replicas().await;
    let spec = format!(r#"{{"scope":"{}","ttl_secs":3,"error_rate":1.0}}"#, b.hostname);
    a.set_fault(&spec).await;
    let reached = until_status(&b, "/api/getvotes", 503, Duration::from_secs(3)).await;
    assert!(reached < Duration::from_millis(1500), "took {reached:?} to reach b");
    assert_eq!(a.status("/api/getvotes").await, 200, "a is out of scope");
    let listed =
        b.admin(Method::GET, "/api/v1/admin/faults", None).await.json::<serde_json::Value>().await.unwrap();
    assert_eq!(listed["faults"][0]["scope"], b.hostname.as_str());
    until_status(&b, "/api/getvotes", 200, Duration::from_secs(6)).await;
}

const BIN: &str = env!("CARGO_BIN_EXE_yelb-appserver");

/// The real binary in embedded mode with stage control on; its port.
fn start_admin_binary() -> (std::process::Child, u16) {
    crate::process::start_binary(&[("YELB_ADMIN_TOKEN", TOKEN), ("RUST_LOG", "warn")])
}

fn put_fault(port: u16, spec: &str) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "PUT /api/v1/admin/faults HTTP/1.0\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{spec}",
        spec.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The process's CPU time (user + system), in seconds, from /proc.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[test]
fn a_crash_fault_exits_the_process_with_status_70() {
    let (mut child, port) = start_admin_binary();
    assert_eq!(put_fault(port, r#"{"scope":"all","ttl_secs":30,"crash":true}"#), 200);
    let status = crate::process::wait_exit(&mut child, Duration::from_secs(5));
    assert_eq!(status.code(), Some(70));
}

#[test]
fn a_cpu_burn_fault_spins_a_core_until_it_expires() {
    let (mut child, port) = start_admin_binary();
    let pid = child.id();
    let idle = cpu_secs(pid);
    std::thread::sleep(Duration::from_millis(1000));
    let idle = cpu_secs(pid) - idle;
    assert_eq!(put_fault(port, r#"{"scope":"all","ttl_secs":3,"cpu_burn":true}"#), 200);
    std::thread::sleep(Duration::from_millis(200));
    let before = cpu_secs(pid);
    std::thread::sleep(Duration::from_millis(1000));
    let burning = cpu_secs(pid) - before;
    // Expired after 3 s; the watcher drops it within a second.
    std::thread::sleep(Duration::from_millis(3000));
    let before = cpu_secs(pid);
    std::thread::sleep(Duration::from_millis(1000));
    let after = cpu_secs(pid) - before;
    let _ = child.kill();
    let _ = child.wait();
    assert!(idle < 0.1, "idle used {idle} s of CPU a second");
    // A whole core when the machine is idle; other tests share the two
    // cores, so a third of one is the bar.
    assert!(burning > 0.3, "burning used only {burning} s of CPU a second");
    assert!(after < 0.1, "still {after} s of CPU a second after expiry");
}

async fn each_replica_reports_its_version_colour_and_placement(b: Backend) {
    let app = match b {
        Backend::Memory => {
            spawn_with(&["--color=Teal", "--message=canary v2", "--node=node-7", "--zone=eu-1a"])
                .await
                .wait_ready()
                .await
        }
        Backend::Real => {
            let (flags, _) = crate::helpers::real_backend_flags();
            let mut refs: Vec<&str> = flags.iter().map(String::as_str).collect();
            refs.extend(["--color=#0a0", "--orchestrator=nomad"]);
            spawn_with(&refs).await.wait_ready().await
        }
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let placement = loop {
        let body = app.get_json("/api/v1/replicas").await;
        let me = body["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["hostname"] == app.hostname.as_str())
            .cloned();
        if let Some(p) = me.map(|m| m["placement"].clone()).filter(|p| !p.is_null()) {
            break p;
        }
        assert!(Instant::now() < deadline, "never listed with a placement: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(placement["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(placement["arch"], std::env::consts::ARCH);
    match b {
        Backend::Memory => {
            assert_eq!(placement["color"], "teal");
            assert_eq!(placement["message"], "canary v2");
            assert_eq!(
                (placement["node"].as_str(), placement["zone"].as_str()),
                (Some("node-7"), Some("eu-1a"))
            );
            // Detected: this test may itself run in a container.
            let detected = placement["orchestrator"].as_str().unwrap();
            assert!(["kubernetes", "nomad", "ecs", "docker", "local"].contains(&detected), "{detected}");
        }
        Backend::Real => {
            assert_eq!(placement["color"], "#0a0");
            assert_eq!(placement["orchestrator"], "nomad");
            assert!(placement.get("message").is_none());
        }
    }
}

#[test]
fn a_colour_that_is_not_a_colour_stops_the_start() {
    for bad in ["red;background:url(x)", "#12", "#gggggg"] {
        let out = Command::new(BIN)
            .env_clear()
            .env("YELB_PORT", "0")
            .env("YELB_COLOR", bad)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("YELB_COLOR"), "{bad}");
    }
}

#[tokio::test]
async fn guessing_the_token_is_throttled_per_client_logged_and_counted() {
    use crate::helpers::{connect_from, exchange};
    let app = spawn_admin(Backend::Memory).await;
    let guess = |from: &'static str, token: &'static str| {
        let base = app.base.clone();
        async move {
            let stream = connect_from(from, &base).await;
            exchange(stream, &format!("GET /api/v1/admin/faults HTTP/1.0\r\nAuthorization: Bearer {token}"))
                .await
        }
    };
    let burst = yelb_appserver::routes::admin::FAILURE_BURST;
    for i in 0..burst {
        let answer = guess("127.0.0.2", "wrong-guess-0123456789").await;
        assert!(answer.split_whitespace().nth(1) == Some("401"), "guess {i}: {answer}");
    }
    let answer = guess("127.0.0.2", "wrong-guess-0123456789").await;
    assert!(answer.split_whitespace().nth(1) == Some("429"), "past the burst: {answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after:"), "{answer}");
    assert!(answer.contains("too many wrong stage tokens"), "{answer}");
    // While throttled even the right token is refused: refusals must not
    // leave a guesser a way to tell a hit.
    let answer = guess("127.0.0.2", TOKEN).await;
    assert!(
        answer.split_whitespace().nth(1) == Some("429"),
        "the right token from the throttled client: {answer}"
    );
    // Another client (the speaker) is not held back by the guesser.
    let answer = guess("127.0.0.3", TOKEN).await;
    assert!(answer.split_whitespace().nth(1) == Some("200"), "the speaker: {answer}");
    let metrics = app.get("/metrics").await.unwrap().text().await.unwrap();
    let line = metrics.lines().find(|l| l.starts_with("yelb_admin_auth_failures_total")).unwrap_or_default();
    assert_eq!(line.split_whitespace().nth(1), Some(burst.to_string().as_str()), "{metrics}");
}

#[test]
fn a_weak_token_is_refused_at_start_with_a_clear_error() {
    let out = Command::new(BIN)
        .env("YELB_ADMIN_TOKEN", "password1234567890")
        .env("YELB_PORT", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("YELB_ADMIN_TOKEN") && err.contains("common word"), "{err}");
    assert!(!err.contains("password1234567890"), "the token must not be printed: {err}");
}

#[test]
fn a_wrong_token_is_logged_with_the_client_address_and_never_the_token() {
    use std::io::{Read, Write};
    let (mut child, port) = start_admin_binary();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET /api/v1/admin/faults HTTP/1.0\r\nAuthorization: Bearer guessed-0123456789abc\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.split_whitespace().nth(1) == Some("401"), "{answer}");
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    let line =
        log.lines().find(|l| l.contains("wrong stage token")).unwrap_or_else(|| panic!("no log line: {log}"));
    assert!(line.contains("127.0.0.1"), "{line}");
    assert!(!log.contains("guessed-0123456789abc") && !log.contains(TOKEN), "{log}");
}

async fn the_number_of_faults_in_force_is_bounded(b: Backend) {
    let app = spawn_admin(b).await;
    let max = yelb_appserver::faults::MAX_FAULTS;
    for i in 0..max {
        app.set_fault(&format!(r#"{{"scope":"ghost-{i}","ttl_secs":60,"latency_ms":1}}"#)).await;
    }
    let r = app
        .admin(
            Method::PUT,
            "/api/v1/admin/faults",
            Some(r#"{"scope":"one-more","ttl_secs":60,"latency_ms":1}"#),
        )
        .await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("at most"));
    // A scope already in force can still change; clearing frees room.
    app.set_fault(r#"{"scope":"ghost-0","ttl_secs":60,"latency_ms":2}"#).await;
    assert_eq!(app.admin(Method::DELETE, "/api/v1/admin/faults", None).await.status(), 200);
    app.set_fault(r#"{"scope":"one-more","ttl_secs":60,"latency_ms":1}"#).await;
}
