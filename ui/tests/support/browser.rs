//! Headless Chromium (Debian's package) driven over WebDriver by fantoccini.
//!
//! Each [`Browser`] has its own chromedriver in its own process group, with a
//! fresh profile directory; dropping it kills the group, so a failing test
//! leaves no browser behind. Browser tests take [`exclusive`] first: this
//! machine has two cores, and two Chromiums at once only make timings noisy.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::sync::{Mutex, MutexGuard};

/// How long a test waits for something to appear on a page.
pub const PATIENCE: Duration = Duration::from_secs(15);

static EXCLUSIVE: Mutex<()> = Mutex::const_new(());

/// One browser test at a time.
pub async fn exclusive() -> MutexGuard<'static, ()> {
    EXCLUSIVE.lock().await
}

/// Phone and desktop viewport sizes for screenshots.
pub const DESKTOP: (u32, u32) = (1366, 1000);
/// An ordinary phone (emulated: headless windows are at least 500 wide).
pub const PHONE: (u32, u32) = (390, 844);

/// A Chromium window.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// A new headless Chromium of this size, with or without JavaScript.
    pub async fn launch(size: (u32, u32), javascript: bool) -> Browser {
        let port = yelb_testkit::free_port();
        let mut command = Command::new("chromedriver");
        command
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let driver = yelb_testkit::spawn_tied(command)
            .expect("chromedriver (apt-get install chromium-driver; scripts/test.sh does)");
        let profile = tempfile::tempdir().unwrap();
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
            format!("--window-size={},{}", size.0, size.1),
        ];
        if !javascript {
            args.push("--blink-settings=scriptEnabled=false".to_owned());
        }
        let mut chrome = json!({"binary": "/usr/bin/chromium", "args": args});
        if size.0 < 500 {
            chrome["mobileEmulation"] = json!({
                "deviceMetrics": {"width": size.0, "height": size.1, "pixelRatio": 2.0, "mobile": true, "touch": false}
            });
        }
        let capabilities = json!({"goog:chromeOptions": chrome, "goog:loggingPrefs": {"browser": "ALL"}});
        let Value::Object(capabilities) = capabilities else { unreachable!() };
        let webdriver = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&webdriver)
                .await
            {
                Ok(client) => break client,
                Err(e) => {
                    assert!(Instant::now() < deadline, "chromedriver did not start: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        Browser { client, driver, _profile: profile }
    }

    /// Resizes the window so that the page's viewport is exactly `w` x `h`
    /// (the window's size includes its frame, even headless).
    pub async fn set_viewport(&self, w: u32, h: u32) {
        self.open("about:blank").await;
        let inner = self.eval("return [innerWidth, innerHeight]").await;
        let (iw, ih) = (inner[0].as_u64().unwrap() as u32, inner[1].as_u64().unwrap() as u32);
        let (ow, oh) = self.client.get_window_size().await.expect("window size");
        let (ow, oh) = (ow as u32, oh as u32);
        self.client.set_window_size(w + (ow - iw), h + (oh - ih)).await.expect("resize");
        let inner = self.eval("return [innerWidth, innerHeight]").await;
        assert_eq!(inner, json!([w, h]), "the viewport after resizing");
    }

    /// Opens `url`.
    pub async fn open(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// Opens `url` and waits until the page is hydrated (interactive).
    pub async fn open_hydrated(&self, url: &str) {
        self.open(url).await;
        self.wait_for("body[data-hydrated='true']").await;
    }

    /// Waits until an element matching `css` exists.
    pub async fn wait_for(&self, css: &str) {
        self.client.wait().at_most(PATIENCE).for_element(Locator::Css(css)).await.unwrap_or_else(|e| {
            panic!("{css} never appeared: {e}");
        });
    }

    /// Whether an element matching `css` exists now.
    pub async fn exists(&self, css: &str) -> bool {
        self.client.find(Locator::Css(css)).await.is_ok()
    }

    /// The text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        let element = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
        element.text().await.unwrap_or_else(|e| panic!("{css}: {e}"))
    }

    /// The texts of every element matching `css`.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let mut texts = Vec::new();
        for element in self.client.find_all(Locator::Css(css)).await.unwrap_or_default() {
            texts.push(element.text().await.unwrap_or_default());
        }
        texts
    }

    /// An attribute of the first element matching `css`.
    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        let element = self.client.find(Locator::Css(css)).await.ok()?;
        element.attr(name).await.ok().flatten()
    }

    /// Waits until the text of `css` satisfies `ok`, and returns it.
    pub async fn wait_text(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if ok(&text) {
                return text;
            }
            assert!(Instant::now() < deadline, "{css} never showed {what}; last text: {text:?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Clicks the first element matching `css`.
    pub async fn click(&self, css: &str) {
        let element = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
        element.click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Runs JavaScript in the page and returns its value.
    pub async fn eval(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    /// The browser console's errors (and failed loads) since the last call.
    pub async fn console_errors(&self) -> Vec<String> {
        let log = self.client.issue_cmd(BrowserLog).await.expect("read the browser log");
        log.as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["level"] == "SEVERE")
            .map(|entry| entry["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Saves a screenshot of the whole page (not only the viewport) as
    /// `target/screenshots/{name}.png`, for people to look at.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let params = json!({"format": "png", "captureBeyondViewport": true});
        let shot = self
            .client
            .issue_cmd(Cdp { cmd: "Page.captureScreenshot".into(), params })
            .await
            .expect("screenshot");
        let data = shot["data"].as_str().expect("screenshot data");
        let png =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, data).expect("base64 png");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Ends the session cleanly.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        self.kill();
    }

    fn kill(&mut self) {
        // The whole group: chromedriver and every Chromium process it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if self.driver.try_wait().ok().flatten().is_none() {
            self.kill();
        }
    }
}

/// ChromeDriver's log endpoint (not part of W3C WebDriver, so fantoccini has
/// no method for it): the console messages and failed requests of the page.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}

/// Any DevTools command, through ChromeDriver's passthrough.
#[derive(Debug)]
pub struct Cdp {
    pub cmd: String,
    pub params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/goog/cdp/execute", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({"cmd": self.cmd, "params": self.params}).to_string()))
    }
}
