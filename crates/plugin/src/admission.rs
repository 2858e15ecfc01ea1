//! Fairness between triggers: how many plugin calls may be in flight, per
//! trigger and across the host.
//!
//! A call first waits for a slot of its trigger, then for one of the
//! host's, each in arrival order (tokio's semaphores are first come, first
//! served), so one trigger cannot take every slot and a trigger's calls
//! start in the order they were made. A waiting call uses no CPU and no
//! instance; its time limit starts once it is admitted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The host-wide limit and the per-trigger lanes.
pub(crate) struct Admission {
    host: Arc<Semaphore>,
    max_calls: usize,
    per_trigger: usize,
    lanes: Mutex<HashMap<Arc<str>, Weak<Semaphore>>>,
    waiting: AtomicU64,
    queued: AtomicU64,
}

/// What [`Admission`] did, for `/metrics` and the admin API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AdmissionStats {
    /// Plugin calls that may run at once across the host.
    pub max_calls: usize,
    /// Plugin calls that may run at once for one trigger.
    pub max_calls_per_trigger: usize,
    /// Calls running now.
    pub in_flight: usize,
    /// Calls waiting for a slot now.
    pub waiting: u64,
    /// Calls that had to wait for a slot, since the start.
    pub queued_total: u64,
}

impl Admission {
    pub(crate) fn new(max_calls: usize, per_trigger: usize) -> Self {
        Self {
            host: Arc::new(Semaphore::new(max_calls)),
            max_calls,
            per_trigger,
            lanes: Mutex::default(),
            waiting: AtomicU64::new(0),
            queued: AtomicU64::new(0),
        }
    }

    /// The lane of `trigger`: shared by its filter and factory, and by
    /// every binding of the same trigger id while one is alive.
    pub(crate) fn lane(self: &Arc<Self>, trigger: &Arc<str>) -> Lane {
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        lanes.retain(|_, lane| lane.strong_count() > 0);
        let slots = match lanes.get(trigger).and_then(Weak::upgrade) {
            Some(slots) => slots,
            None => {
                let slots = Arc::new(Semaphore::new(self.per_trigger));
                lanes.insert(trigger.clone(), Arc::downgrade(&slots));
                slots
            }
        };
        Lane {
            admission: self.clone(),
            slots,
        }
    }

    pub(crate) fn stats(&self) -> AdmissionStats {
        AdmissionStats {
            max_calls: self.max_calls,
            max_calls_per_trigger: self.per_trigger,
            in_flight: self.max_calls - self.host.available_permits(),
            waiting: self.waiting.load(Ordering::Relaxed),
            queued_total: self.queued.load(Ordering::Relaxed),
        }
    }

    /// A permit of `slots`: at once if one is free, else in turn, counted.
    async fn acquire(&self, slots: &Arc<Semaphore>) -> OwnedSemaphorePermit {
        if let Ok(permit) = slots.clone().try_acquire_owned() {
            return permit;
        }
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.waiting.fetch_add(1, Ordering::Relaxed);
        // Counted down however the wait ends (a cancelled call included).
        struct Waiting<'a>(&'a AtomicU64);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        let _waiting = Waiting(&self.waiting);
        let permit = slots.clone().acquire_owned().await;
        permit.expect("admission semaphores are never closed")
    }
}

/// One trigger's way in.
pub(crate) struct Lane {
    admission: Arc<Admission>,
    slots: Arc<Semaphore>,
}

/// Held while a call runs.
pub(crate) struct Admitted {
    _trigger: OwnedSemaphorePermit,
    _host: OwnedSemaphorePermit,
}

impl Lane {
    /// Waits for a slot of the trigger, then one of the host's.
    pub(crate) async fn admit(&self) -> Admitted {
        let trigger = self.admission.acquire(&self.slots).await;
        let host = self.admission.acquire(&self.admission.host).await;
        Admitted {
            _trigger: trigger,
            _host: host,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_trigger_cannot_take_every_host_slot() {
        let admission = Arc::new(Admission::new(3, 2));
        let busy = admission.lane(&Arc::from("busy"));
        let _a = busy.admit().await;
        let _b = busy.admit().await;
        // The busy trigger's third call waits for its own lane...
        let third = tokio::time::timeout(std::time::Duration::from_millis(20), busy.admit()).await;
        assert!(third.is_err());
        // ...while another trigger still gets the host's last slot.
        let other = admission.lane(&Arc::from("other"));
        let _c = other.admit().await;
        let stats = admission.stats();
        assert_eq!((stats.in_flight, stats.waiting), (3, 0));
        assert_eq!(stats.queued_total, 1);
    }

    #[tokio::test]
    async fn waiting_calls_start_in_order() {
        let admission = Arc::new(Admission::new(1, 1));
        let lane = Arc::new(admission.lane(&Arc::from("t")));
        let first = lane.admit().await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for i in 0..5 {
            let (lane, order) = (lane.clone(), order.clone());
            waiters.push(tokio::spawn(async move {
                let _permit = lane.admit().await;
                order.lock().unwrap().push(i);
            }));
            // Let each waiter queue before the next.
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        assert_eq!(admission.stats().waiting, 5);
        drop(first);
        for waiter in waiters {
            waiter.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4]);
        assert_eq!(admission.stats().waiting, 0);
    }
}
