//! The dashboard in a real browser: Debian's Chromium, headless, driven
//! over WebDriver (chromedriver, started here on a free port) against real
//! hosts on loopback. Screenshots go to `$CARGO_TARGET_TMPDIR/screenshots`.
//!
//! Needs `chromium` and `chromium-driver` (`.ci/run` installs them).

use std::net::TcpListener as StdListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use wasmsched_test_support::served;

use served::serve;

const CHROMEDRIVER: &str = "chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// chromedriver on a free port, and a headless Chromium session on it.
async fn browser() -> (Driver, Client) {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver runs (apt-get install chromium chromium-driver; .ci/run does)");
    let driver = Driver(child);
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("{url}/status")).await.is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--disable-default-apps"]
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&url)
        .await
        .expect("a Chromium session");
    (driver, client)
}

async fn screenshot(client: &Client, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = client.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// Every resource the page loaded came from `base` (nothing leaves loopback).
async fn only_local_requests(client: &Client, base: &str) {
    let script = "return performance.getEntriesByType('resource').map(e => e.name)";
    let loaded = client.execute(script, vec![]).await.unwrap();
    for url in loaded.as_array().unwrap() {
        let url = url.as_str().unwrap();
        assert!(url.starts_with(base), "the page loaded {url}");
    }
}

async fn wait_for(client: &Client, css: &str, within: Duration) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(within)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("`{css}` never appeared: {e}"))
}

async fn click(client: &Client, css: &str) {
    let element = client.find(Locator::Css(css)).await.unwrap();
    element.click().await.unwrap();
}

async fn type_into(client: &Client, css: &str, text: &str) {
    let element = client.find(Locator::Css(css)).await.unwrap();
    element.send_keys(text).await.unwrap();
}

const PAGE_LOAD: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_in_a_real_browser() {
    let served = serve("").await;
    let (_driver, client) = browser().await;
    let base = &served.base;

    // The triggers page lists the triggers.
    client.goto(&format!("{base}/")).await.unwrap();
    let rows = client
        .find_all(Locator::Css("tr[data-trigger]"))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for row in rows {
        ids.push(row.attr("data-trigger").await.unwrap().unwrap());
    }
    assert_eq!(ids, ["hook", "nightly"]);
    only_local_requests(&client, base).await;
    screenshot(&client, "overview").await;

    // Pause, then resume: the page and the scheduler both change.
    click(&client, "button[aria-label='Pause nightly']").await;
    let resume = wait_for(&client, "button[aria-label='Resume nightly']", PAGE_LOAD).await;
    assert!(served.host.triggers().is_paused("nightly").await);
    resume.click().await.unwrap();
    wait_for(&client, "button[aria-label='Pause nightly']", PAGE_LOAD).await;
    assert!(!served.host.triggers().is_paused("nightly").await);

    // Run now adds a row to the history.
    client.goto(&format!("{base}/triggers/hook")).await.unwrap();
    assert!(
        client
            .find_all(Locator::Css("table.runs tbody tr"))
            .await
            .unwrap()
            .is_empty()
    );
    click(&client, "button[aria-label='Run hook now']").await;
    wait_for(&client, "table.runs tbody tr", PAGE_LOAD).await;
    assert_eq!(
        client
            .find_all(Locator::Css("table.runs tbody tr"))
            .await
            .unwrap()
            .len(),
        1
    );
    screenshot(&client, "trigger").await;

    // A published event appears in the live view within a second.
    client
        .goto(&format!("{base}/events?pattern=browser.**"))
        .await
        .unwrap();
    let status = client.find(Locator::Css("#tail-status")).await.unwrap();
    let deadline = Instant::now() + PAGE_LOAD;
    while !status.text().await.unwrap().starts_with("Watching") {
        assert!(Instant::now() < deadline, "the live view never connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let published = reqwest::Client::new()
        .post(format!("{base}/api/events"))
        .json(&json!({"topic": "browser.check", "data": {"n": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), 202);
    let shown = wait_for(&client, "#events li code", Duration::from_secs(1)).await;
    assert_eq!(shown.text().await.unwrap(), "browser.check");
    // The form publishes too.
    type_into(&client, "#topic", "browser.form").await;
    click(&client, "#publish button").await;
    let confirmed = wait_for(&client, "p.ok", PAGE_LOAD).await;
    assert!(confirmed.text().await.unwrap().starts_with("Published"));
    screenshot(&client, "events").await;

    // The cron playground names the bad field.
    client
        .goto(&format!("{base}/cron?expr=61+*+*+*+*&tz=UTC"))
        .await
        .unwrap();
    let error = client
        .find(Locator::Css("p.error"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(error.contains("minute"), "{error}");
    client
        .goto(&format!("{base}/cron?expr=0+9+*+*+MON-FRI&tz=Asia%2FSeoul"))
        .await
        .unwrap();
    only_local_requests(&client, base).await;
    screenshot(&client, "cron").await;

    // Readable at 375 px wide.
    client.set_window_size(375, 800).await.unwrap();
    client.goto(&format!("{base}/")).await.unwrap();
    let width: Value = client
        .execute("return document.documentElement.scrollWidth", vec![])
        .await
        .unwrap();
    assert!(
        width.as_u64().unwrap() <= 375,
        "the page is {width} px wide at 375"
    );
    screenshot(&client, "overview-375").await;
    client.set_window_size(1280, 900).await.unwrap();

    // With an admin token: the token gate blocks, then admits.
    let gated = serve("admin_token = \"browser-token-3\"").await;
    client.goto(&format!("{}/", gated.base)).await.unwrap();
    assert_eq!(client.current_url().await.unwrap().path(), "/login");
    type_into(&client, "#token", "wrong").await;
    click(&client, "form[action='/login'] button").await;
    let refused = wait_for(&client, "p.error", PAGE_LOAD).await;
    assert_eq!(refused.text().await.unwrap(), "Wrong token.");
    type_into(&client, "#token", "browser-token-3").await;
    click(&client, "form[action='/login'] button").await;
    wait_for(&client, "tr[data-trigger='nightly']", PAGE_LOAD).await;
    assert_eq!(client.current_url().await.unwrap().path(), "/");

    client.close().await.unwrap();
}
