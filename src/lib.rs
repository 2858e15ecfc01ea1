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
//! WebAssembly plugins yield to the runtime every millisecond, so a slow
//! one never holds a worker thread ([`plugin`]).
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

pub mod bounded;
pub mod broker;
pub mod clock;
pub mod config;
pub mod cron;
pub mod event;
pub mod firing;
pub mod host;
pub mod http;
pub mod plugin;
pub mod scheduler;
pub mod timer;
pub mod topic;
pub mod trigger;
pub mod units;
pub mod watch;

pub use bounded::EventLimits;
pub use broker::{Broker, BrokerError, MemoryBroker, NatsBroker, NatsOptions};
pub use clock::Clock;
pub use cron::{CronError, CronSchedule};
pub use event::{Event, NewEvent};
pub use firing::{
    BoxError, Cause, Factory, Filter, Firing, async_factory_fn, async_filter_fn, factory_fn,
    filter_fn,
};
pub use plugin::{CallError, Plugin, PluginError, PluginRuntime};
pub use scheduler::{Registration, Scheduler, SchedulerError};
pub use topic::{Topic, TopicError, TopicPattern};
pub use trigger::{
    ApiTrigger, CronTrigger, EventTrigger, Trigger, TriggerError, TriggerKind, TriggerOptions,
    create_api_trigger, create_cron_trigger, create_event_trigger, create_trigger,
};
