//! The run history's writer: firings hand their [`Run`] to a channel and go
//! on; one task writes what gathers within [`LINGER`] of the first in one
//! batch (one transaction, or one round of acknowledgements), so history
//! costs a firing a channel send. The same task keeps the events the runs
//! published in [`RecentEvents`], for the dashboard.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::{RecentEvents, Run, StateStore};
use crate::event::Event;

/// Runs waiting to be written; beyond this many (the store is slow or
/// unreachable) runs are dropped and counted rather than slowing firings.
const QUEUE: usize = 16_384;
/// The most runs written in one batch.
const BATCH: usize = 512;
/// How long a batch waits for more runs after its first: one commit per
/// this much time under load instead of one per few firings.
const LINGER: std::time::Duration = std::time::Duration::from_millis(10);

enum Message {
    Run(Box<Recorded>),
    Flush(oneshot::Sender<()>),
}

/// A run, with copies of the events it published and their size.
struct Recorded {
    run: Run,
    events: Vec<Event>,
    bytes: u64,
}

/// Hands runs to the store in batches. Cheap to clone.
#[derive(Clone)]
pub struct RunLog {
    sender: mpsc::Sender<Message>,
    counters: Arc<Counters>,
    recent: Arc<RecentEvents>,
}

#[derive(Default)]
struct Counters {
    written: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

/// What a [`RunLog`] has done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RunLogStats {
    /// Runs written to the store.
    pub written: u64,
    /// Runs the store refused (each batch's error is logged).
    pub failed: u64,
    /// Runs dropped because too many waited for a slow store.
    pub dropped: u64,
}

impl RunLog {
    /// Starts the writer task on the current tokio runtime; it ends when
    /// every clone of the log is dropped, after writing what it holds.
    pub fn spawn(store: Arc<dyn StateStore>) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let counters = Arc::new(Counters::default());
        let recent = Arc::new(RecentEvents::default());
        tokio::spawn(write(store, receiver, counters.clone(), recent.clone()));
        Self {
            sender,
            counters,
            recent,
        }
    }

    /// Queues `run` for the store. A firing never waits for history: with
    /// the queue full (the store is slow or unreachable), the run is
    /// dropped, counted and, now and then, logged.
    pub async fn record(&self, run: Run) {
        self.record_published(run, Vec::new(), 0).await;
    }

    /// Queues `run` as [`RunLog::record`] does, and keeps copies of the
    /// `events` it published (`bytes` in all) among the recent events.
    pub async fn record_published(&self, run: Run, events: Vec<Event>, bytes: u64) {
        let recorded = Recorded { run, events, bytes };
        if let Err(mpsc::error::TrySendError::Full(_)) =
            self.sender.try_send(Message::Run(Box::new(recorded)))
        {
            let dropped = self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            if dropped.is_multiple_of(10_000) {
                tracing::warn!(
                    "run history: the state store is behind; {} runs dropped so far",
                    dropped + 1
                );
            }
        }
    }

    /// Returns once every run recorded before the call is written (or
    /// refused).
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.sender.send(Message::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }

    /// The event `id`, if a recorded run published it recently enough
    /// (see [`RecentEvents`] for the bounds).
    pub fn recent_event(&self, id: uuid::Uuid) -> Option<Event> {
        self.recent.get(id)
    }

    /// Runs written and refused so far.
    pub fn stats(&self) -> RunLogStats {
        RunLogStats {
            written: self.counters.written.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
        }
    }
}

async fn write(
    store: Arc<dyn StateStore>,
    mut receiver: mpsc::Receiver<Message>,
    counters: Arc<Counters>,
    recent: Arc<RecentEvents>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut flushes = Vec::new();
    while let Some(first) = receiver.recv().await {
        let until = tokio::time::Instant::now() + LINGER;
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Run(recorded) => {
                    let Recorded { run, events, bytes } = *recorded;
                    recent.push(events, bytes);
                    batch.push(run);
                }
                // Whoever flushes waits for what was recorded before: now.
                Message::Flush(done) => {
                    flushes.push(done);
                    break;
                }
            }
            if batch.len() < BATCH {
                next = tokio::time::timeout_at(until, receiver.recv())
                    .await
                    .ok()
                    .flatten();
            }
        }
        if !batch.is_empty() {
            let count = batch.len() as u64;
            match store.append_runs(&batch).await {
                Ok(()) => counters.written.fetch_add(count, Ordering::Relaxed),
                Err(error) => {
                    tracing::warn!("run history: {count} runs not kept: {error}");
                    counters.failed.fetch_add(count, Ordering::Relaxed)
                }
            };
            batch.clear();
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}
