//! wasmsched: schedule and route events; user logic (factories and filters)
//! runs as native closures or sandboxed WebAssembly components.
//!
//! ```text
//! cron clock ─┐                       ┌─> broker ─> event triggers ─┐
//! HTTP / API ─┼─> firing ─> factory ──┘                             │
//! event in  ──┘      ^                                              │
//!                    └──────────── filter decides <─────────────────┘
//! ```

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
pub mod watch;

pub use broker::{Broker, BrokerError, MemoryBroker, NatsBroker, NatsOptions};
pub use clock::Clock;
pub use cron::{CronError, CronSchedule};
pub use event::{Event, NewEvent};
pub use firing::{BoxError, Factory, Filter, Firing, factory_fn, filter_fn};
pub use plugin::{CallError, Plugin, PluginError, PluginRuntime};
pub use scheduler::{Registration, Scheduler, SchedulerError};
pub use topic::{Topic, TopicError, TopicPattern};
pub use trigger::{
    ApiTrigger, CronTrigger, EventTrigger, Trigger, TriggerError, TriggerKind, TriggerOptions,
    create_api_trigger, create_cron_trigger, create_event_trigger, create_trigger,
};
