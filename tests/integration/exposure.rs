//! Safe to put on the internet: the real binary on loopback, with the
//! route groups behind their tokens, a public bind refused without an
//! admin token, connections bounded and timed out, rate limits, and TLS
//! with a certificate renewed while it runs.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use wasmsched_test_support::replica::{Log, spawn_listening};

const ADMIN: &str = "tok-admin-5d1e";
const PUBLISH: &str = "tok-publish-93ac";
const READ: &str = "tok-read-0b77";
const METRICS: &str = "tok-metrics-e412";

/// A `wasmsched run` process and what it logged.
struct Running {
    child: Child,
    base: String,
    log: Log,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `prefix.. wasmsched run --config CONFIG args..` and waits for the
/// address it logs.
fn start(config: &Path, args: &[&str], env: &[(&str, &str)], prefix: &[&str]) -> Running {
    let binary = env!("CARGO_BIN_EXE_wasmsched");
    let mut command = match prefix.split_first() {
        Some((program, rest)) => {
            let mut command = Command::new(program);
            command.args(rest).arg(binary);
            command
        }
        None => Command::new(binary),
    };
    command
        .args(["run", "--config"])
        .arg(config)
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "info");
    let (child, base, log) = spawn_listening(&mut command, false);
    Running { child, base, log }
}

fn write_config(dir: &Path, server: &str) -> std::path::PathBuf {
    let text = format!(
        "[server]\n{server}\n\n[plugins]\ndir = \"plugins\"\n\n\
         [[trigger]]\nid = \"hook\"\nkind = \"api\"\ntopic = \"hooks.in\"\nrate_limit = \"2/min\"\n"
    );
    wasmsched_test_support::write_config(dir, &text)
}

async fn status(request: reqwest::RequestBuilder) -> StatusCode {
    request.send().await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_route_group_asks_for_its_token() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("read-token"), format!("{READ}\n")).unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "admin_token = \"{ADMIN}\"\npublish_token = {{ env = \"TEST_PUBLISH_TOKEN\" }}\n\
             read_token = {{ file = \"read-token\" }}"
        ),
    );
    let running = start(
        &config,
        &["--listen", "127.0.0.1:0"],
        &[
            ("TEST_PUBLISH_TOKEN", PUBLISH),
            ("WASMSCHED_METRICS_TOKEN", METRICS),
        ],
        &[],
    );
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", running.base);
    let with = |request: reqwest::RequestBuilder, token: Option<&str>| match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    let event = serde_json::json!({"topic": "a.b", "data": {}});
    // (route, token, expected)
    let publish = [
        (None, 401),
        (Some(READ), 401),
        (Some(PUBLISH), 202),
        (Some(ADMIN), 202),
    ];
    for (token, expected) in publish {
        let request = with(http.post(url("/api/events")).json(&event), token);
        assert_eq!(status(request).await, expected, "publish with {token:?}");
    }
    let reads = [
        "/api/events/stream?pattern=**",
        "/api/admin/triggers/hook/runs",
        "/api/admin/deadletters",
    ];
    for path in reads {
        for (token, expected) in [
            (None, 401),
            (Some(PUBLISH), 401),
            (Some(READ), 200),
            (Some(ADMIN), 200),
        ] {
            let request = with(http.get(url(path)), token);
            assert_eq!(status(request).await, expected, "{path} with {token:?}");
        }
    }
    for (token, expected) in [
        (None, 401),
        (Some(READ), 401),
        (Some(PUBLISH), 401),
        (Some(ADMIN), 200),
    ] {
        let request = with(http.get(url("/api/admin/triggers")), token);
        assert_eq!(status(request).await, expected, "admin with {token:?}");
    }
    for (token, expected) in [
        (None, 401),
        (Some(READ), 401),
        (Some(METRICS), 200),
        (Some(ADMIN), 200),
    ] {
        let request = with(http.get(url("/metrics")), token);
        assert_eq!(status(request).await, expected, "/metrics with {token:?}");
    }
    assert_eq!(status(http.get(url("/healthz"))).await, 200);
    let refused = http
        .post(url("/api/events"))
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.headers()["www-authenticate"],
        "Bearer realm=\"wasmsched\""
    );
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("publish_token"),
        "{body}"
    );

    // The api trigger's own limit: 2 per minute, then 429 with Retry-After.
    let call = || {
        http.post(url("/api/triggers/hook/trigger"))
            .json(&serde_json::json!({"data": {}}))
    };
    assert_eq!(status(call()).await, 200);
    assert_eq!(status(call()).await, 200);
    let limited = call().send().await.unwrap();
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=60).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    let metrics = http
        .get(url("/metrics"))
        .bearer_auth(METRICS)
        .send()
        .await
        .unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains("wasmsched_http_rate_limited_total{trigger=\"hook\"} 1"),
        "{metrics}"
    );

    let log = running.log.lock().unwrap().join("\n");
    for token in [ADMIN, PUBLISH, READ, METRICS] {
        assert!(!log.contains(token), "a token in the log:\n{log}");
    }
}

#[test]
fn a_public_bind_needs_an_admin_token_or_an_explicit_opt_out() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let output = Command::new(env!("CARGO_BIN_EXE_wasmsched"))
        .args(["run", "--listen", "0.0.0.0:0", "--config"])
        .arg(&config)
        .env_remove("WASMSCHED_ADMIN_TOKEN")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("refusing to listen on 0.0.0.0"), "{stderr}");
    assert!(stderr.contains("WASMSCHED_ADMIN_TOKEN"), "{stderr}");
    assert!(stderr.contains("--allow-unauthenticated"), "{stderr}");

    let running = start(
        &config,
        &["--listen", "0.0.0.0:0", "--allow-unauthenticated"],
        &[],
        &[],
    );
    let log = running.log.lock().unwrap().join("\n");
    assert!(
        log.contains("WARN") && log.contains("open to anyone"),
        "{log}"
    );
}

/// 1 100 connections that send nothing, under a 1 024 open-file limit the
/// host cannot raise: the idlest are closed to admit new ones, and a real
/// request still gets through (within a second: it takes milliseconds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_do_not_lock_out_a_real_request() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let running = start(
        &config,
        &["--listen", "127.0.0.1:0"],
        &[],
        &["prlimit", "--nofile=1024:1024"],
    );
    let address: SocketAddr = running.base.trim_start_matches("http://").parse().unwrap();
    let idle: Vec<TcpStream> = (0..1100)
        .map(|_| TcpStream::connect_timeout(&address, Duration::from_secs(5)).unwrap())
        .collect();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let health = http.get(format!("{}/healthz", running.base)).send().await;
    assert_eq!(health.expect("a real request gets through").status(), 200);
    let metrics = http
        .get(format!("{}/metrics", running.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| -> u64 {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    assert!(value("wasmsched_http_connections_max") <= 1024, "{metrics}");
    assert!(
        value("wasmsched_http_connections_shed_total") > 0,
        "{metrics}"
    );
    let log = running.log.lock().unwrap().join("\n");
    assert!(log.contains("connection limit reached"), "{log}");
    drop(idle);
}

/// Reads until the server closes the connection (true) or `within` passes.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let started = Instant::now();
    let mut buffer = [0u8; 4096];
    while started.elapsed() < within {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "header_timeout = \"1s\"\nidle_timeout = \"1s\"\nbody_timeout = \"1s\"",
    );
    let running = start(&config, &["--listen", "127.0.0.1:0"], &[], &[]);
    let address: SocketAddr = running.base.trim_start_matches("http://").parse().unwrap();
    // Half-sent headers.
    let mut slow = TcpStream::connect(address).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    // Nothing sent at all.
    let mut silent = TcpStream::connect(address).unwrap();
    // A body announced and never sent (the login form reads it too).
    let mut stalled = TcpStream::connect(address).unwrap();
    stalled
        .write_all(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n")
        .unwrap();
    // A keep-alive connection that served a request, then idles.
    let mut kept = TcpStream::connect(address).unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 12];
    kept.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    for (name, stream) in [
        ("half-sent headers", &mut slow),
        ("silent", &mut silent),
        ("idle keep-alive", &mut kept),
        ("stalled body", &mut stalled),
    ] {
        assert!(
            closed_within(stream, Duration::from_secs(10)),
            "{name} connection still open"
        );
    }
}

/// A CA and a certificate for `localhost` it signed: (CA PEM, cert PEM, key PEM).
fn certificate_for_localhost() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

fn client_trusting(ca_pem: &str, address: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .resolve("localhost", address)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_and_picks_up_a_renewed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (first_ca, cert, key) = certificate_for_localhost();
    std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
    std::fs::write(dir.path().join("key.pem"), key).unwrap();
    let config = write_config(dir.path(), "tls_cert = \"cert.pem\"\ntls_key = \"key.pem\"");
    let running = start(&config, &["--listen", "127.0.0.1:0"], &[], &[]);
    assert!(running.base.starts_with("https://"), "{}", running.base);
    let address: SocketAddr = running.base.trim_start_matches("https://").parse().unwrap();
    let url = format!("https://localhost:{}/healthz", address.port());
    let first = client_trusting(&first_ca, address);
    assert_eq!(first.get(&url).send().await.unwrap().status(), 200);

    // Renewed: another CA's certificate, written over the files.
    let (second_ca, cert, key) = certificate_for_localhost();
    std::fs::write(dir.path().join("key.pem"), key).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
    let second = client_trusting(&second_ca, address);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // New connections each time: a pooled one would keep the old session.
        let second = client_trusting(&second_ca, address);
        if second.get(&url).send().await.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(second.get(&url).send().await.unwrap().status(), 200);
    let stale = client_trusting(&first_ca, address);
    assert!(
        stale.get(&url).send().await.is_err(),
        "the old certificate is still served"
    );
    let log = running.log.lock().unwrap().join("\n");
    assert!(log.contains("TLS certificate reloaded"), "{log}");
}
