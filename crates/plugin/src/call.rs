//! One call into a plugin: an instance (a warm one kept from an earlier
//! call of the same trigger, or a fresh one from the cached `InstancePre`),
//! the time and memory budget, and the failure classified (returned error,
//! trap, timeout, out of memory, bad data) and counted. Calls are futures
//! that yield at every epoch tick (see `engine.rs`), their running time
//! measured on a [`RunClock`] and their whole duration bounded by the
//! plugin's `wall_timeout`; what the guest says (errors, traps) is cut to
//! [`bounded::MAX_MESSAGE_BYTES`].
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
use std::time::Instant;

use wasmtime::component::Instance;
use wasmtime::{Store, Trap};

use super::adapter::{event_to_wit, firing_to_wit, new_events_from_wit};
use super::engine::Ticking;
use super::error::{CallError, one_line};
use super::host::{self, CallSetup, CallState};
use super::limits::RunClock;
use super::{Plugin, PluginError};
use wasmsched_core::bounded;
use wasmsched_core::event::{Event, NewEvent};
use wasmsched_core::firing::Firing;

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

/// A call under way: its instance and store, the trigger and config whose
/// pool the instance returns to, its place in the epoch ticker, and when
/// it began.
struct Session<'a> {
    store: Store<CallState>,
    instance: Instance,
    trigger: &'a Arc<str>,
    config: &'a Arc<BTreeMap<String, String>>,
    calls: u32,
    started: Instant,
    _ticking: Ticking,
}

impl Plugin {
    /// Calls the plugin's `accept` for `trigger`, with its `config`.
    pub(crate) async fn accept(
        &self,
        trigger: &Arc<str>,
        config: &Arc<BTreeMap<String, String>>,
        event: &Event,
    ) -> Result<bool, CallError> {
        if !self.worlds.filter {
            return Err(self.trap("this plugin exports no filter".into()));
        }
        let event = event_to_wit(event);
        let returned = self
            .bounded(trigger, config, async |store, instance| {
                let called = self.exports.accept(store, instance, &event).await;
                called.expect("the filter export was checked")
            })
            .await?;
        returned.map_err(|message| self.failed(message))
    }

    /// Calls the plugin's `make-events` for `trigger`, with its `config`.
    pub(crate) async fn make_events(
        &self,
        trigger: &Arc<str>,
        config: &Arc<BTreeMap<String, String>>,
        firing: &Firing,
    ) -> Result<Vec<NewEvent>, CallError> {
        if !self.worlds.factory {
            return Err(self.trap("this plugin exports no factory".into()));
        }
        let firing = firing_to_wit(firing);
        let drafts = self
            .bounded(trigger, config, async |store, instance| {
                let called = self.exports.make_events(store, instance, &firing).await;
                called.expect("the factory export was checked")
            })
            .await?
            .map_err(|message| self.failed(message))?;
        new_events_from_wit(drafts).map_err(|message| {
            self.count(CallError::BadData {
                plugin: self.name().to_owned(),
                message: bounded::message(message),
            })
        })
    }

    /// One call: an instance (see [`Self::enter`]), `call` on it, and the
    /// outcome counted (see [`Self::leave`]); its running time measured,
    /// and the whole bounded by the plugin's wall-clock limit (a call cut
    /// there drops its instance).
    async fn bounded<R>(
        &self,
        trigger: &Arc<str>,
        config: &Arc<BTreeMap<String, String>>,
        call: impl AsyncFnOnce(&mut Store<CallState>, &Instance) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let clock = RunClock::default();
        let started = Instant::now();
        let run = clock.meter(async {
            let mut session = self.enter(trigger, config, clock.clone()).await?;
            let instance = session.instance;
            let outcome = call(&mut session.store, &instance).await;
            self.leave(session, outcome)
        });
        match tokio::time::timeout(self.limits.wall_timeout, run).await {
            Ok(result) => result,
            Err(_) => {
                self.stats.observe(started.elapsed());
                Err(self.count(CallError::WallTimeout {
                    plugin: self.name().to_owned(),
                    limit: self.limits.wall_timeout,
                }))
            }
        }
    }

    /// Instantiates once at load: start code runs within the limits, and
    /// the exports are type-checked against the contract. Blocks the
    /// calling thread (loading compiles anyway: call it off the runtime).
    pub(crate) fn probe(&self) -> Result<(), PluginError> {
        let _ticking = self.runtime.ticker.busy();
        let mut store = self.store(&Arc::from("(load)"), &Arc::default());
        let clock = RunClock::default();
        store
            .data_mut()
            .begin_call(self.limits.timeout, clock.clone());
        let instantiate = clock.meter(self.pre.instantiate_async(&mut store));
        let instance = match super::local::block_on_local(instantiate) {
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
        self.exports.check(&mut store, &instance).map_err(contract)
    }

    /// Starts a call: a warm instance of the trigger's, or a fresh one
    /// instantiated within the call's time and memory budget (a failure
    /// there is counted and classified like a failed call).
    async fn enter<'a>(
        &self,
        trigger: &'a Arc<str>,
        config: &'a Arc<BTreeMap<String, String>>,
        clock: RunClock,
    ) -> Result<Session<'a>, CallError> {
        self.stats.call();
        let ticking = self.runtime.ticker.busy();
        let started = Instant::now();
        let (mut store, warm, calls) = match self.take_warm(trigger, config) {
            Some(warm) => (warm.store, Some(warm.instance), warm.calls),
            None => (self.store(trigger, config), None, 0),
        };
        store.data_mut().begin_call(self.limits.timeout, clock);
        store.set_epoch_deadline(1);
        let instance = match warm {
            Some(instance) => instance,
            None => match self.pre.instantiate_async(&mut store).await {
                Ok(instance) => instance,
                Err(error) => {
                    self.stats.observe(started.elapsed());
                    return Err(self.fail(&store, &error));
                }
            },
        };
        Ok(Session {
            store,
            instance,
            trigger,
            config,
            calls,
            started,
            _ticking: ticking,
        })
    }

    /// Ends a call: counts it and any failure, forwards the guest's
    /// output, and keeps the instance warm if the call went well.
    fn leave<R>(&self, session: Session<'_>, outcome: wasmtime::Result<R>) -> Result<R, CallError> {
        self.stats.observe(session.started.elapsed());
        let store = session.store;
        let returned = match outcome {
            Ok(returned) => returned,
            Err(error) => return Err(self.fail(&store, &error)),
        };
        store.data().forward_output();
        if !store.data().limiter.refused() {
            let warm = Warm {
                store,
                instance: session.instance,
                calls: session.calls + 1,
            };
            self.put_warm(session.trigger, session.config, warm);
        }
        Ok(returned)
    }

    /// A failed call or instantiation, classified and counted; the guest's
    /// output is forwarded after classifying (a trap quotes stderr).
    fn fail(&self, store: &Store<CallState>, error: &wasmtime::Error) -> CallError {
        let error = self.count(self.classify(error, store.data()));
        store.data().forward_output();
        error
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
        let state = CallState::new(CallSetup {
            plugin: self.name.clone(),
            trigger: trigger.clone(),
            config: config.clone(),
            grants: self.grants.clone(),
            store: self.runtime.state.get().cloned(),
            memory_bytes: self.limits.memory_bytes,
        });
        host::store(&self.runtime.engine, state)
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
        let mut message = bounded::message(one_line(error));
        let stderr = state.stderr.tail(STDERR_IN_TRAP);
        if !stderr.is_empty() {
            message = format!("{message} (stderr: {stderr})");
        }
        CallError::Trap { plugin, message }
    }

    /// The plugin returned `err(message)`; the message is cut to
    /// [`bounded::MAX_MESSAGE_BYTES`] for logs, `last_error` and dead letters.
    fn failed(&self, message: String) -> CallError {
        self.count(CallError::Failed {
            plugin: self.name().to_owned(),
            message: bounded::message(message),
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
