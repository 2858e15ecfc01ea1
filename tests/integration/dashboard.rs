//! The dashboard over real HTTP: pages as plain HTML (before any script),
//! actions as form POSTs refused from other sites, the cron playground,
//! and the admin token's login gate.

use std::sync::Arc;

use reqwest::redirect::Policy;
use wasmsched::host::Host;

use wasmsched_test_support::served;

use served::{Served, serve};

struct Server {
    base: String,
    host: Arc<Host>,
    http: reqwest::Client,
    _served: Served,
}

async fn start(server_table: &str) -> Server {
    let served = serve(server_table).await;
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    Server {
        base: served.base.clone(),
        host: served.host.clone(),
        http,
        _served: served,
    }
}

impl Server {
    async fn page(&self, path: &str, cookie: Option<&str>) -> (u16, String) {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// A form POST as a browser on this page sends it.
    async fn action(&self, path: &str, origin: &str) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .header("origin", origin)
            .form(&[("back", "/")])
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_list_triggers_and_actions_change_the_scheduler() {
    let server = start("").await;
    let (status, overview) = server.page("/", None).await;
    assert_eq!(status, 200);
    for wanted in [
        "nightly",
        "hook",
        "open: no admin token",
        "href=\"/triggers/nightly\"",
    ] {
        assert!(overview.contains(wanted), "{wanted} missing:\n{overview}");
    }
    let (status, nightly) = server.page("/triggers/nightly", None).await;
    assert_eq!(status, 200);
    assert!(
        nightly.contains("0 3 * * *") && nightly.contains("Asia/Seoul"),
        "{nightly}"
    );
    assert!(nightly.contains("<svg"), "no timeline:\n{nightly}");

    // Pause, then resume, from the page: the scheduler follows.
    let response = server.action("/triggers/nightly/pause", &server.base).await;
    assert_eq!(response.status(), 303);
    assert!(server.host.triggers().is_paused("nightly").await);
    let (_, overview) = server.page("/", None).await;
    assert!(overview.contains("Resume nightly"), "{overview}");
    server
        .action("/triggers/nightly/resume", &server.base)
        .await;
    assert!(!server.host.triggers().is_paused("nightly").await);

    // Run now adds a row to the history.
    let response = server.action("/triggers/hook/run", &server.base).await;
    assert_eq!(response.status(), 303);
    let runs = server.host.triggers().runs("hook", 10).await.unwrap();
    assert_eq!(runs.len(), 1);
    let (_, hook) = server.page("/triggers/hook", None).await;
    assert!(hook.contains("outcome ok"), "{hook}");
    assert!(runs[0].started.is_some(), "{:?}", runs[0]);

    // The run links to the event it published, shown with its trigger.
    let event = runs[0].events[0].to_string();
    assert!(
        hook.contains(&format!("href=\"/events/{event}\"")),
        "{hook}"
    );
    let (status, shown) = server.page(&format!("/events/{event}"), None).await;
    assert_eq!(status, 200);
    assert!(
        shown.contains(&event) && shown.contains("href=\"/triggers/hook\""),
        "{shown}"
    );
    let (status, gone) = server
        .page("/events/00000000-0000-0000-0000-000000000000", None)
        .await;
    assert_eq!(status, 404);
    assert!(gone.contains("is not kept here"), "{gone}");

    // A form sent from another site does nothing.
    let forged = server
        .action("/triggers/nightly/pause", "http://evil.example")
        .await;
    assert_eq!(forged.status(), 403);
    assert!(!server.host.triggers().is_paused("nightly").await);

    // The same for the API: a page of another site cannot pause a trigger
    // on an open loopback host, nor reach it under another name (DNS
    // rebinding).
    let forged = server
        .http
        .post(format!("{}/api/admin/triggers/nightly/pause", server.base))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let rebound = server
        .http
        .get(format!("{}/api/admin/triggers", server.base))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 403);
    assert!(!server.host.triggers().is_paused("nightly").await);

    let (status, missing) = server.page("/triggers/nope", None).await;
    assert_eq!(status, 404);
    assert!(missing.contains("No trigger `nope`"), "{missing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cron_playground_explains_or_names_the_bad_field() {
    let server = start("").await;
    let (status, good) = server
        .page("/cron?expr=0+9+*+*+MON-FRI&tz=Asia%2FSeoul", None)
        .await;
    assert_eq!(status, 200);
    assert!(
        good.contains("Next fires") && good.contains("KST"),
        "{good}"
    );
    let (status, bad) = server.page("/cron?expr=61+*+*+*+*&tz=UTC", None).await;
    assert_eq!(status, 200);
    assert!(
        bad.contains("role=\"alert\"") && bad.contains("minute"),
        "{bad}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_token_gates_the_dashboard_behind_a_login() {
    let server = start("admin_token = \"dash-token-1\"").await;
    let (status, _) = server.page("/", None).await;
    assert_eq!(status, 303);
    let login = |token: &'static str| {
        server
            .http
            .post(format!("{}/login", server.base))
            .form(&[("token", token), ("next", "/triggers/nightly")])
            .send()
    };
    assert_eq!(login("wrong").await.unwrap().status(), 401);
    let admitted = login("dash-token-1").await.unwrap();
    assert_eq!(admitted.status(), 303);
    assert_eq!(admitted.headers()["location"], "/triggers/nightly");
    let cookie = admitted.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap();
    let (status, page) = server.page("/triggers/nightly", Some(session)).await;
    assert_eq!(status, 200);
    assert!(!page.contains("open: no admin token"));
    let forged = format!("{}0", session);
    assert_eq!(server.page("/", Some(&forged)).await.0, 303);
    // After login, only a path on this host is followed.
    let phishing = server
        .http
        .post(format!("{}/login", server.base))
        .form(&[("token", "dash-token-1"), ("next", "/\\evil.example")])
        .send()
        .await
        .unwrap();
    assert_eq!(phishing.headers()["location"], "/");
    assert_eq!(phishing.headers()["x-frame-options"], "DENY");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_renders_and_says_what_to_do_when_empty() {
    let server = start("").await;
    for (path, wanted) in [
        ("/plugins", "No plugins loaded"),
        ("/queues", "No dead letters"),
        ("/queues", "No pending timers"),
        ("/queues", "No sinks"),
        ("/events", "Publish an event"),
        ("/docs", "/api/admin/triggers"),
        ("/cron", "Five fields"),
    ] {
        let (status, body) = server.page(path, None).await;
        assert_eq!(status, 200, "{path}");
        assert!(body.contains(wanted), "{path}: `{wanted}` missing:\n{body}");
    }
    // A timer is listed and cancelled from the page.
    let timer = serde_json::json!({"id": "t1", "topic": "a.b", "data": {}, "delay": "1h"});
    let added = server
        .http
        .post(format!("{}/api/admin/timers", server.base))
        .json(&timer)
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);
    let (_, queues) = server.page("/queues", None).await;
    assert!(queues.contains("Cancel t1"), "{queues}");
    let cancelled = server
        .action("/queues/timers/t1/cancel", &server.base)
        .await;
    assert_eq!(cancelled.status(), 303);
    assert!(server.host.timers().list().await.unwrap().is_empty());
}
