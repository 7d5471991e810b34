//! Headless Chromium for the browser tests, driven over WebDriver: Debian's chromedriver on a
//! port it picks itself, one session with a fresh profile per test, and screenshots of the
//! page as it is at desktop (1280×900) and phone (390×844) size under `target/screenshots/`.

use anyhow::{anyhow, bail, Context, Result};
use fantoccini::elements::Element;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a test waits for something to appear on a page before it fails.
pub const WAIT: Duration = Duration::from_secs(60);

/// The flags Chromium needs here: no sandbox (root in a container), no GPU, and nothing
/// that reaches outside the machine or outlives the test.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
    "--lang=ko-KR",
];

/// A screen a page is photographed at.
#[derive(Debug, Clone, Copy)]
pub struct Viewport {
    pub name: &'static str,
    pub width: u32,
    pub height: u32,
    pub mobile: bool,
}

pub const DESKTOP: Viewport = Viewport {
    name: "desktop",
    width: 1280,
    height: 900,
    mobile: false,
};

pub const PHONE: Viewport = Viewport {
    name: "phone",
    width: 390,
    height: 844,
    mobile: true,
};

/// A running chromedriver, killed (with the browsers it started) when dropped.
pub struct Chromedriver {
    child: Child,
    url: String,
    chromium: PathBuf,
}

impl Chromedriver {
    /// Starts chromedriver on a free loopback port. Panics, naming the Debian packages, when
    /// Chromium or chromedriver is not installed: the browser tests fail rather than skip.
    pub fn start() -> Chromedriver {
        let chromium = installed("ANJEON_CHROMIUM", &["chromium", "chromium-browser"])
            .unwrap_or_else(|| missing("Chromium", "chromium"));
        let driver = installed("ANJEON_CHROMEDRIVER", &["chromedriver"])
            .unwrap_or_else(|| missing("chromedriver", "chromium-driver"));
        assert!(
            korean_font(),
            "no font with Korean glyphs is installed (fc-list :lang=ko lists none): every page \
             would be drawn in empty boxes; install Debian's `fonts-nanum` (as .ci/run does)"
        );
        let mut child = Command::new(&driver)
            .args(["--port=0", "--log-level=WARNING"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver.display()));
        let stdout = child.stdout.take().expect("chromedriver's stdout");
        let mut port = None;
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap_or_default();
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                port = rest.trim_end_matches('.').trim().parse::<u16>().ok();
                break;
            }
        }
        let Some(port) = port else {
            let _ = child.kill();
            let status = child.wait();
            panic!("chromedriver did not say which port it listens on (exit: {status:?})");
        };
        Chromedriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            chromium,
        }
    }

    /// A new browser session with a fresh profile, on the site at `base` (`http://host:port`).
    pub async fn session(&self, base: &str) -> Result<Browser> {
        let profile = tempfile::tempdir().context("a profile folder")?;
        let mut args: Vec<String> = FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": self.chromium, "args": args }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&self.url)
            .await
            .with_context(|| format!("start {} through {}", self.chromium.display(), self.url))?;
        let browser = Browser {
            client,
            base: base.trim_end_matches('/').to_string(),
            _profile: profile,
        };
        browser.emulate(DESKTOP).await?;
        Ok(browser)
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `env` when set, else the first of `names` on `PATH`.
fn installed(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// Whether fontconfig, which Chromium draws text with, knows a font covering Korean.
fn korean_font() -> bool {
    Command::new("fc-list")
        .arg(":lang=ko")
        .output()
        .is_ok_and(|out| out.status.success() && !out.stdout.trim_ascii().is_empty())
}

fn missing(what: &str, package: &str) -> ! {
    panic!(
        "{what} is not installed, and the browser tests need it: install Debian's `chromium` \
         and `chromium-driver` (`apt-get install chromium chromium-driver`, as .ci/run does), \
         or point ANJEON_CHROMIUM / ANJEON_CHROMEDRIVER at them (missing package: {package})"
    )
}

/// A Chrome DevTools command sent through chromedriver's `goog/cdp/execute` endpoint.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({ "cmd": self.cmd, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}

/// One browser session on the site under test.
pub struct Browser {
    client: Client,
    base: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The absolute URL of `path` on the site.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Loads `path` and fails unless the server answered it with 2xx.
    pub async fn open(&self, path: &str) -> Result<()> {
        self.client
            .goto(&self.url(path))
            .await
            .with_context(|| format!("load {path}"))?;
        self.expect_loaded(path).await
    }

    /// Fails unless the page now shown was answered with 2xx (after a navigation by the
    /// page itself, e.g. a form submission or a redirect).
    pub async fn expect_loaded(&self, what: &str) -> Result<()> {
        let status = self
            .js("const n = performance.getEntriesByType('navigation')[0]; return n ? n.responseStatus : 0;")
            .await?;
        let status = status.as_u64().unwrap_or(0);
        if !(200..300).contains(&status) {
            bail!(
                "{what}: the server answered {status} (the page is not there yet?); it says: {}",
                self.page_text().await
            );
        }
        Ok(())
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub async fn js(&self, script: &str) -> Result<Value> {
        self.js_with(script, Vec::new()).await
    }

    pub async fn js_with(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        self.client
            .execute(script, args)
            .await
            .with_context(|| format!("run script: {script}"))
    }

    /// The page's visible text (its first 2000 characters), for failure messages.
    pub async fn page_text(&self) -> String {
        match self
            .js("return document.body ? document.body.innerText : '';")
            .await
        {
            Ok(Value::String(text)) => text.chars().take(2000).collect(),
            Ok(other) => other.to_string(),
            Err(e) => format!("(cannot read the page: {e})"),
        }
    }

    /// The first element matching `css`, now.
    pub async fn find(&self, css: &str) -> Result<Element> {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => Ok(element),
            Err(e) => Err(anyhow!(
                "no `{css}` on {}: {e}\npage text: {}",
                self.current_path().await,
                self.page_text().await
            )),
        }
    }

    pub async fn find_all(&self, css: &str) -> Result<Vec<Element>> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .with_context(|| format!("look for `{css}`"))
    }

    /// The first element matching `css` once there is one, waiting up to [`WAIT`].
    pub async fn wait_for(&self, css: &str) -> Result<Element> {
        let start = Instant::now();
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await {
                return Ok(element);
            }
            if start.elapsed() > WAIT {
                bail!(
                    "`{css}` did not appear on {} within {WAIT:?}\npage text: {}",
                    self.current_path().await,
                    self.page_text().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits up to [`WAIT`] until the JavaScript expression `condition` is truthy;
    /// `what` says in words what was awaited.
    pub async fn wait_until(&self, what: &str, condition: &str) -> Result<()> {
        let script = format!("return !!({condition});");
        let start = Instant::now();
        loop {
            if self.js(&script).await? == Value::Bool(true) {
                return Ok(());
            }
            if start.elapsed() > WAIT {
                bail!(
                    "{what}: not so within {WAIT:?} on {}\npage text: {}",
                    self.current_path().await,
                    self.page_text().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The path (and query) of the page shown now.
    pub async fn current_path(&self) -> String {
        match self.client.current_url().await {
            Ok(url) => match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_string(),
            },
            Err(e) => format!("(unknown page: {e})"),
        }
    }

    async fn cdp(&self, cmd: &'static str, params: Value) -> Result<Value> {
        self.client
            .issue_cmd(Cdp { cmd, params })
            .await
            .with_context(|| format!("DevTools {cmd}"))
    }

    /// Lays the page out as on `viewport`'s screen.
    pub async fn emulate(&self, viewport: Viewport) -> Result<()> {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({
                "width": viewport.width,
                "height": viewport.height,
                "deviceScaleFactor": 1,
                "mobile": viewport.mobile,
            }),
        )
        .await?;
        self.cdp(
            "Emulation.setTouchEmulationEnabled",
            json!({ "enabled": viewport.mobile }),
        )
        .await?;
        Ok(())
    }

    /// Saves the page as it is now at desktop and at phone size, to
    /// `target/screenshots/<test>/<page>-<desktop|phone>.png`; with `show`, the first
    /// element matching it is scrolled into view first. Leaves the page at desktop size.
    pub async fn screenshots(&self, test: &str, page: &str, show: Option<&str>) -> Result<()> {
        let dir = screenshot_dir().join(test);
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        for viewport in [DESKTOP, PHONE] {
            self.emulate(viewport).await?;
            if let Some(css) = show {
                self.js_with(
                    "const e = document.querySelector(arguments[0]); if (e) e.scrollIntoView({block: 'center'});",
                    vec![json!(css)],
                )
                .await?;
            }
            // a frame for the new layout to be painted
            self.js("return await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))));")
                .await?;
            let png = self
                .client
                .screenshot()
                .await
                .with_context(|| format!("screenshot of {page}"))?;
            let size = png_size(&png).context("the screenshot is not a PNG")?;
            if size != (viewport.width, viewport.height) {
                bail!(
                    "the {} screenshot of {page} is {}×{}, not {}×{}",
                    viewport.name,
                    size.0,
                    size.1,
                    viewport.width,
                    viewport.height
                );
            }
            let path = dir.join(format!("{page}-{}.png", viewport.name));
            std::fs::write(&path, png).with_context(|| format!("write {}", path.display()))?;
        }
        self.emulate(DESKTOP).await
    }

    /// What the page does wrong for accessibility (see `audit.js`) at desktop and at phone
    /// size, each sentence prefixed with the size. Leaves the page at desktop size.
    pub async fn audit(&self) -> Result<Vec<String>> {
        let mut problems: Vec<(String, Vec<&str>)> = Vec::new();
        for viewport in [DESKTOP, PHONE] {
            self.emulate(viewport).await?;
            let found = self.js(include_str!("audit.js")).await?;
            let found: Vec<String> =
                serde_json::from_value(found).context("audit.js's list of problems")?;
            for problem in found {
                match problems.iter_mut().find(|(p, _)| *p == problem) {
                    Some((_, sizes)) => sizes.push(viewport.name),
                    None => problems.push((problem, vec![viewport.name])),
                }
            }
        }
        self.emulate(DESKTOP).await?;
        Ok(problems
            .into_iter()
            .map(|(problem, sizes)| format!("{} ({})", problem, sizes.join(", ")))
            .collect())
    }

    /// Ends the session (Chromium exits, its profile folder is removed).
    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

/// `target/screenshots`, next to the test binaries' temporary folder.
pub fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(|target| target.join("screenshots"))
        .unwrap_or_else(|| PathBuf::from("target/screenshots"))
}

/// Width and height from a PNG's header.
fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    if png.len() < 24 || &png[..8] != b"\x89PNG\r\n\x1a\n" || &png[12..16] != b"IHDR" {
        return None;
    }
    let word = |at: usize| u32::from_be_bytes([png[at], png[at + 1], png[at + 2], png[at + 3]]);
    Some((word(16), word(20)))
}
