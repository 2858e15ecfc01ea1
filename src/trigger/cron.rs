//! Cron triggers: fire at the instants of a crontab schedule.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_util::task::TaskTracker;

use super::Dispatcher;
use super::{Binding, Trigger, TriggerError, TriggerKind, TriggerState};
use crate::cron::CronSchedule;
use crate::firing::{Cause, Factory, Firing};
use crate::timer::{TimerHandle, TimerKey};

/// Fires at every instant of its schedule, through the scheduler's shared timer.
pub struct CronTrigger {
    schedule: CronSchedule,
    factory: Option<Arc<dyn Factory>>,
    state: TriggerState,
    active: Mutex<Option<Active>>,
}

struct Active {
    timer: TimerHandle,
    key: TimerKey,
    dispatcher: Arc<Dispatcher>,
    firings: TaskTracker,
}

impl CronTrigger {
    /// A cron trigger on `schedule` running `factory` (none: publish the
    /// scheduled instant).
    pub fn new(schedule: CronSchedule, factory: Option<Arc<dyn Factory>>) -> Self {
        Self {
            schedule,
            factory,
            state: TriggerState::default(),
            active: Mutex::new(None),
        }
    }

    /// When it fires.
    pub fn schedule(&self) -> &CronSchedule {
        &self.schedule
    }

    fn dispatcher(&self) -> Option<Arc<Dispatcher>> {
        let active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        active.as_ref().map(|a| a.dispatcher.clone())
    }
}

fn firing(dispatcher: &Dispatcher, instant: DateTime<Utc>) -> Firing {
    Firing::new(dispatcher.trigger_id.clone(), instant, Cause::Cron)
}

#[async_trait]
impl Trigger for CronTrigger {
    /// The next `n` fire instants from now.
    fn next_fires(&self, n: usize) -> Vec<DateTime<Utc>> {
        self.schedule.fires_after(Utc::now()).take(n).collect()
    }

    fn kind(&self) -> TriggerKind {
        TriggerKind::Cron
    }

    async fn start(&self, binding: Binding) -> Result<(), TriggerError> {
        self.state.begin()?;
        let dispatcher = Arc::new(self.state.dispatcher(&binding, &self.factory));
        let firings = TaskTracker::new();
        let on_fire = {
            let (dispatcher, firings) = (dispatcher.clone(), firings.clone());
            Arc::new(move |instant| {
                let dispatcher = dispatcher.clone();
                firings.spawn(async move {
                    // Errors are counted and logged by the dispatcher.
                    let _ = dispatcher.fire(firing(&dispatcher, instant)).await;
                });
            })
        };
        let key = binding.timer.add(self.schedule.clone(), on_fire);
        *self.active.lock().unwrap_or_else(|p| p.into_inner()) = Some(Active {
            timer: binding.timer,
            key,
            dispatcher,
            firings,
        });
        Ok(())
    }

    async fn stop(&self) {
        let active = self.active.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(active) = active {
            active.timer.remove(active.key);
            active.firings.close();
            active.firings.wait().await;
        }
        self.state.end();
    }

    async fn run_now(&self, _payload: Option<serde_json::Value>) -> Result<u64, TriggerError> {
        let dispatcher = self.dispatcher().ok_or(TriggerError::NotRunning)?;
        dispatcher.fire(firing(&dispatcher, Utc::now())).await?;
        Ok(self.fire_count())
    }

    fn state(&self) -> &TriggerState {
        &self.state
    }
}
