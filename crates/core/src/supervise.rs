//! Panics caught where a task or a unit of work begins.
//!
//! A panic is a defect, but it must not silently lose work or leave a
//! trigger stuck: each place that runs work for a user (an event being
//! handled, a held event or batch firing, a backfill, a one-off timer, a
//! cron trigger's clock, an HTTP request) runs it through [`catch`] or
//! [`spawn`], which log the panic with what was running and for whom,
//! count it by [`Task`] (`wasmsched_task_panics_total` in `/metrics`), and
//! hand the caller an error to retry, dead-letter or report.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::FutureExt;
use tokio::task::JoinHandle;

/// What was running when a panic was caught (the metric's `task` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// An event trigger handling an event (retried, then a dead letter).
    Event,
    /// An event trigger firing a held event or a batch (dead letters).
    Deferred,
    /// An event trigger's consumer loop (the trigger stops taking events).
    Consumer,
    /// A cron trigger's clock.
    Cron,
    /// A one-off timer firing (kept in the store: fired again later).
    Timer,
    /// A backfill (marked failed).
    Backfill,
    /// An HTTP request (answered 500).
    Http,
}

impl Task {
    /// Every kind, in the order of [`panics`].
    pub const ALL: [Task; 7] = [
        Task::Event,
        Task::Deferred,
        Task::Consumer,
        Task::Cron,
        Task::Timer,
        Task::Backfill,
        Task::Http,
    ];

    /// The `task` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Event => "event",
            Task::Deferred => "deferred",
            Task::Consumer => "consumer",
            Task::Cron => "cron",
            Task::Timer => "timer",
            Task::Backfill => "backfill",
            Task::Http => "http",
        }
    }
}

static PANICS: [AtomicU64; Task::ALL.len()] = [const { AtomicU64::new(0) }; Task::ALL.len()];

/// Panics caught so far in this process, by kind.
pub fn panics() -> [(Task, u64); Task::ALL.len()] {
    Task::ALL.map(|task| (task, PANICS[task as usize].load(Ordering::Relaxed)))
}

/// Counts and logs a panic of `task` for `id` (a trigger, timer or path);
/// its message, for the caller's error.
pub fn caught(task: Task, id: &str, message: String) -> String {
    PANICS[task as usize].fetch_add(1, Ordering::Relaxed);
    tracing::error!(
        task = task.as_str(),
        id,
        "panicked (a defect of wasmsched: please report it): {message}"
    );
    format!("wasmsched panicked: {message}")
}

/// Runs `future`; a panic inside it is caught, counted and logged, and
/// comes back as `Err` with its message.
pub async fn catch<F: Future>(task: Task, id: &str, future: F) -> Result<F::Output, String> {
    match AssertUnwindSafe(future).catch_unwind().await {
        Ok(output) => Ok(output),
        Err(panic) => Err(caught(task, id, panic_message(&panic))),
    }
}

/// Spawns `future` under [`catch`]: `None` from the handle if it panicked.
pub fn spawn<F>(task: Task, id: impl Into<String>, future: F) -> JoinHandle<Option<F::Output>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let id = id.into();
    tokio::spawn(async move { catch(task, &id, future).await.ok() })
}

/// The message of a caught panic (its `&str` or `String` payload).
pub fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_is_counted_and_becomes_an_error() {
        let before = panics()[Task::Backfill as usize].1;
        let error = catch(Task::Backfill, "nightly", async { panic!("boom") })
            .await
            .unwrap_err();
        assert!(error.contains("boom"), "{error}");
        assert_eq!(panics()[Task::Backfill as usize].1, before + 1);
        let spawned = spawn(Task::Backfill, "nightly", async { 7 }).await.unwrap();
        assert_eq!(spawned, Some(7));
    }
}
