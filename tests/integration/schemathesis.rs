//! The OpenAPI document checked by schemathesis, the standard's own
//! fuzzer (PyPI `schemathesis`, pinned in
//! `tests/standards/schemathesis-requirements.txt`; `.ci/run` installs it),
//! against a real host's `/openapi.json`: every operation, every check
//! (all of them, selected in the config file: each answer's status, content type, headers and body
//! as documented; what a schema allows accepted and what it refuses
//! refused; a route that names a token enforcing it), with generated
//! requests, the documented examples, the edges of each schema and linked
//! sequences. Twice: a host with no token (the document says every route is
//! open, and it is) and one with an admin token, which schemathesis sends.
//! The test fails with schemathesis' report if it found anything.
//!
//! `st` is `$WASMSCHED_SCHEMATHESIS`, else the one on `PATH`; without one
//! the test fails saying how to install it. What JSON Schema cannot say
//! (one field compared with another) and the host's fixtures (the ids of
//! its triggers and sink) are in `tests/standards/schemathesis.toml`;
//! `WASMSCHED_SCHEMATHESIS_SEED` picks another seed, and
//! `WASMSCHED_SCHEMATHESIS_EXAMPLES` more or fewer cases per operation.

use std::path::{Path, PathBuf};
use std::process::Command;

use wasmsched_test_support::Served;
use wasmsched_test_support::served::{NIGHTLY_AND_HOOK, orders_and_ops};

const ADMIN: &str = "schemathesis-admin-secret";

/// Generated cases per operation and phase: some 4 000 requests a run,
/// both runs (side by side) in under a minute on two idle cores.
const EXAMPLES: &str = "50";

/// The seed, so that a run can be repeated (`st` prints it).
const SEED: &str = "20261207";

/// A host with a cron, an api and an event trigger and a webhook sink
/// (to a closed port), `server` as the body of `[server]`, serving on a
/// free loopback port.
async fn serve(server: &str) -> Served {
    // Delivers to a closed port.
    let orders_and_ops = orders_and_ops("http://127.0.0.1:9");
    let config = format!(
        r#"[server]
{server}
{NIGHTLY_AND_HOOK}
{orders_and_ops}
"#
    );
    Served::start(&config, &[]).await
}

/// The `st` to run: `$WASMSCHED_SCHEMATHESIS`, else `st` on `PATH`.
fn st() -> PathBuf {
    if let Some(path) = std::env::var_os("WASMSCHED_SCHEMATHESIS") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("st"))
            .find(|candidate| candidate.is_file())
    });
    on_path.unwrap_or_else(|| {
        panic!(
            "schemathesis is not installed: set WASMSCHED_SCHEMATHESIS to its `st`, or put `st` \
             on PATH (python3 -m venv venv && venv/bin/pip install -r \
             tests/standards/schemathesis-requirements.txt; .ci/run does this)"
        )
    })
}

/// Runs schemathesis against the host at `base`, sending `token` if any;
/// panics with its report if it found a failure.
fn check(base: &str, token: Option<&str>) {
    let standards = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standards");
    let setting = |name: &str, default: &str| std::env::var(name).unwrap_or(default.to_owned());
    // Its caches (.hypothesis, .schemathesis) go to a directory of its own.
    let cwd = tempfile::tempdir().unwrap();
    let mut command = Command::new(st());
    command
        .current_dir(cwd.path())
        .env("WASMSCHED_STANDARDS_DIR", &standards)
        .env("NO_COLOR", "1")
        .arg("--config-file")
        .arg(standards.join("schemathesis.toml"))
        .args(["run", &format!("{base}/openapi.json")])
        .args([
            "--max-examples",
            &setting("WASMSCHED_SCHEMATHESIS_EXAMPLES", EXAMPLES),
        ])
        .args(["--seed", &setting("WASMSCHED_SCHEMATHESIS_SEED", SEED)])
        .args(["--generation-database", "none", "--no-color"]);
    if let Some(token) = token {
        command.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("running {:?}: {e}", command.get_program()));
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let who = token.map_or("no token", |_| "the admin token");
    assert!(
        output.status.success(),
        "schemathesis found failures ({who}):\n{report}"
    );
    // What it ran, for the log.
    let summary = report.lines().skip_while(|l| !l.contains("SUMMARY"));
    eprintln!(
        "schemathesis ({who}):\n{}",
        summary.collect::<Vec<_>>().join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_says_what_an_open_host_does() {
    let served = serve("").await;
    let base = served.base.clone();
    tokio::task::spawn_blocking(move || check(&base, None))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_says_what_a_host_with_an_admin_token_does() {
    let served = serve(&format!("admin_token = \"{ADMIN}\"")).await;
    let base = served.base.clone();
    tokio::task::spawn_blocking(move || check(&base, Some(ADMIN)))
        .await
        .unwrap();
}
