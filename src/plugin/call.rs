//! One call into a plugin: an instance (a warm one kept from an earlier
//! call of the same trigger, or a fresh one from the cached `InstancePre`),
//! the time and memory budget, and the failure classified (returned error,
//! trap, timeout, out of memory, bad data) and counted.
//!
//! Instances are reused because instantiating dominates a call's cost
//! (BENCHMARKS.md): after a successful call the instance goes back to its
//! trigger's pool, at most [`WARM_PER_TRIGGER`] of them, and is retired
//! after [`CALLS_PER_INSTANCE`] calls; any trap, timeout or memory refusal
//! discards it. Reuse is per trigger and config (the store carries
//! them) and per plugin version (a swap starts with fresh instances).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use wasmtime::component::Instance;
use wasmtime::{Store, Trap};

use super::adapter::{event_to_wit, firing_to_wit, new_events_from_wit};
use super::engine::deadline_ticks;
use super::error::{CallError, one_line};
use super::host::{self, CallState};
use super::{Plugin, PluginError};
use crate::event::{Event, NewEvent};
use crate::firing::Firing;

/// Characters of the guest's stderr quoted in a trap's message.
const STDERR_IN_TRAP: usize = 300;

/// Idle instances kept per trigger.
pub(crate) const WARM_PER_TRIGGER: usize = 2;

/// Calls an instance serves before it is retired (bounds heap growth of
/// interpreters such as SpiderMonkey that never shrink).
pub(crate) const CALLS_PER_INSTANCE: u32 = 1_000;

/// Whose idle instances a pool holds: a trigger with its config (a
/// reloaded manifest may give the same trigger id another config).
pub(crate) type WarmKey = (Arc<str>, Arc<BTreeMap<String, String>>);

/// An idle instance, ready for the next call of its trigger.
pub(crate) struct Warm {
    store: Store<CallState>,
    instance: Instance,
    calls: u32,
}

impl Plugin {
    /// Calls the plugin's `accept` for `trigger`, with its `config`.
    pub(crate) fn accept(
        &self,
        trigger: &Arc<str>,
        config: &Arc<BTreeMap<String, String>>,
        event: &Event,
    ) -> Result<bool, CallError> {
        let Some(filter) = &self.filter else {
            return Err(self.trap("this plugin exports no filter".into()));
        };
        let event = event_to_wit(event);
        let returned = self.run(trigger, config, |store, instance| {
            filter
                .load(&mut *store, instance)?
                .call_accept(&mut *store, &event)
        })?;
        returned.map_err(|message| self.failed(message))
    }

    /// Calls the plugin's `make-events` for `trigger`, with its `config`.
    pub(crate) fn make_events(
        &self,
        trigger: &Arc<str>,
        config: &Arc<BTreeMap<String, String>>,
        firing: &Firing,
    ) -> Result<Vec<NewEvent>, CallError> {
        let Some(factory) = &self.factory else {
            return Err(self.trap("this plugin exports no factory".into()));
        };
        let firing = firing_to_wit(firing);
        let returned = self.run(trigger, config, |store, instance| {
            factory
                .load(&mut *store, instance)?
                .call_make_events(&mut *store, &firing)
        })?;
        let drafts = returned.map_err(|message| self.failed(message))?;
        new_events_from_wit(drafts).map_err(|message| {
            self.count(CallError::BadData {
                plugin: self.name().to_owned(),
                message,
            })
        })
    }

    /// Instantiates once at load: start code runs within the limits, and
    /// the exports are type-checked against the contract.
    pub(crate) fn probe(&self) -> Result<(), PluginError> {
        let mut store = self.store(&Arc::from("(load)"), &Arc::default());
        let instance = match self.pre.instantiate(&mut store) {
            Ok(instance) => instance,
            Err(error) => {
                let error = self.classify(&error, store.data());
                store.data().forward_output();
                return Err(error.into());
            }
        };
        store.data().forward_output();
        let contract = |error: wasmtime::Error| PluginError::Contract {
            name: self.name().to_owned(),
            message: one_line(&error),
        };
        if let Some(factory) = &self.factory {
            factory.load(&mut store, &instance).map_err(contract)?;
        }
        if let Some(filter) = &self.filter {
            filter.load(&mut store, &instance).map_err(contract)?;
        }
        Ok(())
    }

    /// Runs `call` on a fresh instance; counts the call and any failure.
    fn run<R>(
        &self,
        trigger: &Arc<str>,
        config: &Arc<BTreeMap<String, String>>,
        call: impl FnOnce(&mut Store<CallState>, &Instance) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        self.stats.call();
        let started = std::time::Instant::now();
        let (mut store, warm_instance, calls) = match self.take_warm(trigger, config) {
            Some(warm) => (warm.store, Some(warm.instance), warm.calls),
            None => (self.store(trigger, config), None, 0),
        };
        store.set_epoch_deadline(deadline_ticks(self.limits.timeout));
        store.data_mut().begin_call();
        let outcome = match warm_instance {
            Some(instance) => Ok(instance),
            None => self.pre.instantiate(&mut store),
        }
        .and_then(|instance| call(&mut store, &instance).map(|returned| (returned, instance)));
        self.stats.observe(started.elapsed());
        // Classify before forwarding the output: a trap quotes stderr.
        let outcome = outcome.map_err(|error| self.count(self.classify(&error, store.data())));
        store.data().forward_output();
        let (returned, instance) = outcome?;
        if !store.data().limiter.refused() {
            self.put_warm(
                trigger,
                config,
                Warm {
                    store,
                    instance,
                    calls: calls + 1,
                },
            );
        }
        Ok(returned)
    }

    fn take_warm(
        &self,
        trigger: &Arc<str>,
        config: &Arc<BTreeMap<String, String>>,
    ) -> Option<Warm> {
        let key = (trigger.clone(), config.clone());
        let warm = self
            .warm
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&key)?
            .pop()?;
        self.runtime.warm_instances.fetch_sub(1, Ordering::Relaxed);
        Some(warm)
    }

    /// Keeps `warm` for the trigger's next call, unless it has served its
    /// calls or enough instances are idle already (per trigger, and across
    /// the runtime, so idle instances never crowd out the pool).
    fn put_warm(&self, trigger: &Arc<str>, config: &Arc<BTreeMap<String, String>>, warm: Warm) {
        if warm.calls >= CALLS_PER_INSTANCE {
            return;
        }
        let mut pools = self.warm.lock().unwrap_or_else(|p| p.into_inner());
        let pool = pools.entry((trigger.clone(), config.clone())).or_default();
        if pool.len() >= WARM_PER_TRIGGER {
            return;
        }
        let idle = &self.runtime.warm_instances;
        if idle.fetch_add(1, Ordering::Relaxed) >= super::engine::MAX_WARM_INSTANCES {
            idle.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        pool.push(warm);
    }

    fn store(
        &self,
        trigger: &Arc<str>,
        config: &Arc<BTreeMap<String, String>>,
    ) -> Store<CallState> {
        let state = CallState::new(
            self.name.clone(),
            trigger.clone(),
            config.clone(),
            self.limits.memory_bytes,
        );
        let mut store = host::store(&self.runtime.engine, state);
        store.set_epoch_deadline(deadline_ticks(self.limits.timeout));
        store
    }

    /// Out of memory if the limiter refused a growth during the call (the
    /// guest may then trap, abort or fail in its own way); a timeout if the
    /// epoch deadline struck; a trap otherwise.
    fn classify(&self, error: &wasmtime::Error, state: &CallState) -> CallError {
        let plugin = self.name().to_owned();
        if state.limiter.refused() || error.is::<super::limits::MemoryCapReached>() {
            return CallError::MemoryExhausted {
                plugin,
                limit_bytes: self.limits.memory_bytes,
            };
        }
        if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            return CallError::Timeout {
                plugin,
                limit: self.limits.timeout,
            };
        }
        let mut message = one_line(error);
        let stderr = state.stderr.tail(STDERR_IN_TRAP);
        if !stderr.is_empty() {
            message = format!("{message} (stderr: {stderr})");
        }
        CallError::Trap { plugin, message }
    }

    fn failed(&self, message: String) -> CallError {
        self.count(CallError::Failed {
            plugin: self.name().to_owned(),
            message,
        })
    }

    fn trap(&self, message: String) -> CallError {
        CallError::Trap {
            plugin: self.name().to_owned(),
            message,
        }
    }

    fn count(&self, error: CallError) -> CallError {
        self.stats.failure(&error);
        error
    }
}
