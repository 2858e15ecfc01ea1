//! Waiting for something to happen, with a bound: the one polling loop the
//! tests share. A wait that runs out fails the test naming what it waited
//! for; none asserts on timing (the bounds are generous, for busy machines).

use std::future::Future;
use std::time::{Duration, Instant};

/// How often a wait checks again.
const POLL: Duration = Duration::from_millis(10);

/// Polls `check` until it gives a value, failing the test with `what`
/// after `within` (real time).
pub async fn until<T>(what: &str, within: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(done) = check() {
            return done;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for: {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Polls the async `check` until it holds, failing the test with `what`
/// after `within` (real time).
pub async fn until_async<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for: {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `check` until it holds, failing the test with `what` after
/// `within` (real time).
pub async fn until_true(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    until(what, within, || check().then_some(())).await
}
