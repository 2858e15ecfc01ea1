//! wasmsched: schedule and route events; user logic (factories and filters)
//! runs as native closures or sandboxed WebAssembly components.
//!
//! ```text
//! cron clock ─┐                       ┌─> broker ─> event triggers ─┐
//! HTTP / API ─┼─> firing ─> factory ──┘                             │
//! event in  ──┘      ^                                              │
//!                    └──────────── filter decides <─────────────────┘
//! ```
//!
//! Factories and filters are async ([`Factory`], [`Filter`]): a native one
//! may await (a database, an HTTP call) and only its own firing waits;
//! WebAssembly plugins (feature `plugins`) yield to the runtime every
//! millisecond, so a slow one never holds a worker thread.
//!
//! Cargo features, all on by default: `plugins` (the WebAssembly runtime),
//! `nats` (the JetStream broker), `host` (config files, hot reload, the
//! HTTP API) and `cli` (the `wasmsched` binary). Embedding with native
//! closures needs none of them: `cargo build --no-default-features`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use wasmsched::{MemoryBroker, NewEvent, Scheduler, Topic, async_factory_fn, create_api_trigger};
//!
//! let scheduler = Scheduler::new(Arc::new(MemoryBroker::new()));
//! let hook = create_api_trigger(Some(async_factory_fn(|firing| async move {
//!     tokio::time::sleep(std::time::Duration::from_millis(1)).await; // a lookup, say
//!     Ok(vec![NewEvent::new(firing.payload().cloned().unwrap_or_default())])
//! })));
//! scheduler.register_trigger("hook", hook.clone(), Topic::new("hooks.in")?).await?;
//! scheduler.start().await?;
//! assert_eq!(hook.trigger(serde_json::json!({"n": 1})).await?, 1);
//! scheduler.stop().await;
//! # Ok(())
//! # }
//! ```
//!
//! A cron trigger with a closure factory, and an event trigger whose filter
//! lets through the ticks of even minutes. The clock is simulated, starting
//! just before 09:00 UTC, so the example does not wait a minute:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use serde_json::json;
//! use wasmsched::broker::SubscriberKind;
//! use wasmsched::{
//!     Broker, Cause, Clock, Event, MemoryBroker, NewEvent, Scheduler, Topic, TopicPattern,
//!     create_cron_trigger, create_event_trigger, factory_fn, filter_fn,
//! };
//!
//! let broker = MemoryBroker::new();
//! let start = "2030-01-07T08:59:59.900Z".parse()?;
//! let scheduler = Scheduler::with_clock(Arc::new(broker.clone()), Clock::simulated(start));
//!
//! // Every minute, a tick saying which minute it is.
//! let tick = create_cron_trigger("* * * * *", Some(factory_fn(|firing| {
//!     assert!(matches!(firing.cause, Cause::Cron { .. }));
//!     Ok(vec![NewEvent::new(json!({ "minute": firing.instant.format("%M").to_string() }))])
//! })))?;
//! scheduler.register_trigger("tick", tick, Topic::new("clock.tick")?).await?;
//!
//! // Ticks of even minutes go on, as they are (no factory: the source's data).
//! let even = create_event_trigger(
//!     "clock.*",
//!     None,
//!     Some(filter_fn(|event: &Event| {
//!         event.data["minute"].as_str().and_then(|m| m.parse::<u32>().ok()).is_some_and(|m| m % 2 == 0)
//!     })),
//! )?;
//! scheduler.register_trigger("even", even, Topic::new("even.tick")?).await?;
//!
//! let mut out = broker.subscribe(&TopicPattern::new("even.*")?, SubscriberKind::Observer).await?;
//! scheduler.start().await?;
//! let first = out.next().await.expect("an even tick").event; // 09:00: minute 00
//! assert_eq!(first.data, json!({ "minute": "00" }));
//! scheduler.stop().await;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

// The core (wasmsched-core): builds with `--no-default-features`.
pub use wasmsched_core::{
    bounded, clock, cloudevent, cron, event, firing, histogram, scheduler, supervise, timer, topic,
    trace, trigger, units,
};

/// The broker port and the in-memory broker; NATS JetStream (feature
/// `nats`) in [`broker::nats`].
pub mod broker {
    pub use wasmsched_core::broker::*;
    #[cfg(feature = "nats")]
    pub use wasmsched_nats::broker as nats;
    #[cfg(feature = "nats")]
    pub use wasmsched_nats::broker::{NatsBroker, NatsOptions};
}

/// The state store port and its adapters: SQLite (feature `sqlite`),
/// JetStream (feature `nats`) in [`state::nats`].
pub mod state {
    pub use wasmsched_core::state::*;
    #[cfg(feature = "nats")]
    pub use wasmsched_nats::state as nats;
}

// Behind Cargo features (all on by default): see Cargo.toml.
#[cfg(feature = "host")]
pub use wasmsched_host::{app, config, dashboard, host, http, sink, web};
#[cfg(feature = "plugins")]
pub use wasmsched_plugin as plugin;

pub use wasmsched_core::{
    ApiTrigger, CronTrigger, EventTrigger, Trigger, TriggerError, TriggerKind, TriggerSpec,
    create_api_trigger, create_cron_trigger, create_event_trigger, create_trigger,
};
pub use wasmsched_core::{
    BoxError, Broker, BrokerError, Cause, Clock, CronError, CronRun, CronSchedule, Event,
    EventLimits, Factory, Filter, Firing, MemoryBroker, NewEvent, Registration, Scheduler,
    SchedulerError, Topic, TopicError, TopicPattern, async_factory_fn, async_filter_fn, factory_fn,
    filter_fn,
};
#[cfg(feature = "nats")]
pub use wasmsched_nats::{NatsBroker, NatsOptions};
#[cfg(feature = "plugins")]
pub use wasmsched_plugin::{CallError, Plugin, PluginError, PluginRuntime};
