//! Backfills: a cron trigger fired for every scheduled instant of a past
//! range, oldest first, each marked as a backfill (header
//! `wasmsched-backfill: true`, `backfill` in the run history), at a given
//! rate, cancellable, with its progress visible. One per trigger at a time,
//! on the replica it was asked of.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{Host, HostError};
use wasmsched_core::cron::CronSchedule;
use wasmsched_core::supervise::Task;
use wasmsched_core::trigger::TriggerSpec;

/// The most instants one backfill fires.
pub const MAX_INSTANTS: usize = 10_000;

/// The slowest backfill: one firing a day.
pub const MIN_RATE: f64 = 1.0 / 86_400.0;

/// The fastest backfill, in firings per second.
pub const MAX_RATE: f64 = 10_000.0;

/// Where a backfill is.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "error")]
pub enum BackfillState {
    /// Firing.
    Running,
    /// Every instant fired.
    Done,
    /// Cancelled before the end.
    Cancelled,
    /// Stopped: the trigger could not fire (the reason).
    Failed(String),
}

/// One backfill and its progress.
#[derive(Debug)]
pub struct Backfill {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    total: usize,
    done: AtomicUsize,
    state: Mutex<BackfillState>,
    cancel: CancellationToken,
}

/// A backfill as the admin API shows it.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct BackfillView {
    /// The range's start (exclusive).
    pub from: DateTime<Utc>,
    /// Its end (inclusive).
    pub to: DateTime<Utc>,
    /// Instants in the range.
    pub total: usize,
    /// Instants fired so far.
    pub done: usize,
    /// Running, done, cancelled or failed.
    #[serde(flatten)]
    pub state: BackfillState,
}

impl Backfill {
    /// Its progress now.
    pub fn view(&self) -> BackfillView {
        BackfillView {
            from: self.from,
            to: self.to,
            total: self.total,
            done: self.done.load(Ordering::Relaxed),
            state: self.state.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }

    fn set(&self, state: BackfillState) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = state;
    }
}

impl Host {}

/// Backfills of cron triggers: started, followed and cancelled; the last of each trigger is kept.
#[derive(Clone, Copy)]
pub struct Backfills<'a> {
    host: &'a Host,
}

impl Host {
    /// Backfills of cron triggers.
    pub fn backfills(&self) -> Backfills<'_> {
        Backfills { host: self }
    }
}

impl Backfills<'_> {
    /// Starts firing cron trigger `id` for every instant in `(from, to]`,
    /// `rate` per second. Fails if the trigger is not a running cron
    /// trigger, the range is empty or holds more than [`MAX_INSTANTS`], or
    /// a backfill of the trigger is running.
    pub async fn start(
        self,
        id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        rate: f64,
    ) -> Result<BackfillView, HostError> {
        let invalid = |message: String| HostError::InvalidTable(message);
        let config =
            self.host.triggers().config(id).ok_or_else(|| {
                wasmsched_core::scheduler::SchedulerError::UnknownId(id.to_owned())
            })?;
        let TriggerSpec::Cron(cron) = &config.spec else {
            return Err(invalid(format!("trigger `{id}` is not a cron trigger")));
        };
        if from >= to {
            return Err(invalid("`from` must be before `to`".into()));
        }
        if !(MIN_RATE..=MAX_RATE).contains(&rate) {
            return Err(invalid(format!(
                "`rate`: {rate:?} is out of range: {MIN_RATE:.7} (one a day) to {MAX_RATE} firings per second"
            )));
        }
        let zone = cron.timezone.as_deref().unwrap_or("UTC");
        let schedule = CronSchedule::with_zone_name(&cron.schedule, zone)
            .map_err(|e| invalid(e.to_string()))?;
        let instants: Vec<DateTime<Utc>> = schedule
            .fires_after(from)
            .take_while(|t| *t <= to)
            .take(MAX_INSTANTS + 1)
            .collect();
        if instants.len() > MAX_INSTANTS {
            return Err(invalid(format!(
                "`from`..`to` holds more than {MAX_INSTANTS} instants: backfill a shorter range"
            )));
        }
        let registration =
            self.host.triggers().registration(id).await.ok_or_else(|| {
                wasmsched_core::scheduler::SchedulerError::UnknownId(id.to_owned())
            })?;
        let job = Arc::new(Backfill {
            from,
            to,
            total: instants.len(),
            done: AtomicUsize::new(0),
            state: Mutex::new(BackfillState::Running),
            cancel: CancellationToken::new(),
        });
        {
            let mut backfills = self
                .host
                .backfills
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if backfills
                .get(id)
                .is_some_and(|b| b.view().state == BackfillState::Running)
            {
                return Err(HostError::BackfillRunning(id.to_owned()));
            }
            backfills.insert(id.to_owned(), job.clone());
        }
        let (trigger, pause) = (registration.trigger, Duration::from_secs_f64(1.0 / rate));
        let (id, task_job) = (id.to_owned(), job.clone());
        let label = id.clone();
        let run = async move {
            let job = task_job;
            for instant in instants {
                if job.cancel.is_cancelled() {
                    return job.set(BackfillState::Cancelled);
                }
                if let Err(error) = trigger.backfill(instant).await {
                    tracing::warn!(trigger = %id, %instant, "backfill stopped: {error}");
                    return job.set(BackfillState::Failed(error.to_string()));
                }
                job.done.fetch_add(1, Ordering::Relaxed);
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = job.cancel.cancelled() => {}
                }
            }
            let cancelled =
                job.cancel.is_cancelled() && job.done.load(Ordering::Relaxed) < job.total;
            job.set(match cancelled {
                true => BackfillState::Cancelled,
                false => BackfillState::Done,
            });
            tracing::info!(trigger = %id, done = job.done.load(Ordering::Relaxed), "backfill ended");
        };
        let failed = job.clone();
        tokio::spawn(async move {
            // A panic ends it as failed: a later backfill may start.
            if let Err(panic) = wasmsched_core::supervise::catch(Task::Backfill, &label, run).await
            {
                failed.set(BackfillState::Failed(panic));
            }
        });
        tracing::info!(trigger = %config.id, %from, %to, total = job.total, "backfill started");
        Ok(job.view())
    }

    /// The trigger's last backfill (running or ended).
    pub fn get(self, id: &str) -> Option<BackfillView> {
        let backfills = self
            .host
            .backfills
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        backfills.get(id).map(|b| b.view())
    }

    /// Cancels the trigger's running backfill; its progress.
    pub fn cancel(self, id: &str) -> Option<BackfillView> {
        let backfills = self
            .host
            .backfills
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let job = backfills.get(id)?;
        job.cancel.cancel();
        Some(job.view())
    }
}
