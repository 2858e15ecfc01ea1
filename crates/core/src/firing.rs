//! The ports user logic plugs into: a [`Firing`] (which trigger, when, and
//! its [`Cause`]), the [`Factory`] that turns it into events and the
//! [`Filter`] that decides whether an event fires an event trigger. Native
//! closures and WebAssembly plugins are two adapters of the same ports.
//!
//! This module depends on events and topics only; the triggers that fire
//! and dispatch (`crate::trigger`) depend on it, never the other way.

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::{Event, NewEvent};

/// Errors returned by user logic (closures, plugins).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The three kinds of trigger. Exhaustive on purpose: the plugin contract
/// (WIT `trigger-kind`), the API and the dashboard name each kind, and a new
/// one must reach all of them.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum TriggerKind {
    /// Fires on a crontab schedule in a time zone.
    Cron,
    /// Fires when called (HTTP or Rust).
    Api,
    /// Fires for broker events matching a pattern.
    Event,
}

impl TriggerKind {
    /// `cron`, `api` or `event`.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerKind::Cron => "cron",
            TriggerKind::Api => "api",
            TriggerKind::Event => "event",
        }
    }
}

impl fmt::Display for TriggerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for TriggerKind {
    type Error = UnknownKind;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl FromStr for TriggerKind {
    type Err = UnknownKind;

    /// `cron`, `api` or `event`, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "cron" => Ok(TriggerKind::Cron),
            "api" => Ok(TriggerKind::Api),
            "event" => Ok(TriggerKind::Event),
            _ => Err(UnknownKind(s.to_owned())),
        }
    }
}

/// A trigger kind that is not `cron`, `api` or `event`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown trigger kind `{0}`; expected `cron`, `api` or `event`")]
pub struct UnknownKind(pub String);

/// One firing of a trigger: which trigger, when, and what fired it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Firing {
    /// The trigger that fired.
    pub trigger_id: String,
    /// The scheduled instant (cron) or the instant the firing was received.
    pub instant: DateTime<Utc>,
    /// What fired the trigger, with what it carries.
    pub cause: Cause,
}

/// What fired a trigger: one variant per [`TriggerKind`].
///
/// ```
/// use wasmsched_core::{Cause, Firing};
/// fn describe(firing: &Firing) -> String {
///     match &firing.cause {
///         Cause::Cron { .. } => format!("scheduled for {}", firing.instant),
///         Cause::Api { payload } => format!("called with {payload}"),
///         Cause::Event { source } => format!("event {} on {}", source.id, source.topic),
///         _ => "something new".to_owned(),
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[non_exhaustive]
pub enum Cause {
    /// The schedule came due; [`Firing::instant`] is the scheduled instant.
    Cron {
        /// On time, caught up after downtime, or backfilled on request.
        run: CronRun,
    },
    /// An api call (HTTP or [`crate::ApiTrigger::trigger`]) with its payload.
    Api {
        /// The JSON the caller sent (`data` over HTTP).
        payload: Value,
    },
    /// An event on the trigger's source pattern (that its filter accepted,
    /// or made up by "run now").
    Event {
        /// The event that fired the trigger.
        source: Event,
    },
    /// Events of an event trigger with a `batch` setting, fired together
    /// (oldest first; never empty).
    Batch {
        /// The events of the batch.
        events: Vec<Event>,
    },
}

/// Why a cron instant runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CronRun {
    /// Its time came.
    OnTime,
    /// It fell while no replica ran the trigger, and runs late (the
    /// trigger's `catch_up` policy).
    CatchUp,
    /// A backfill asked for it (`POST /api/admin/triggers/{id}/backfill`).
    Backfill,
}

impl Cause {
    /// A cron instant that came due.
    pub fn cron() -> Self {
        Cause::Cron {
            run: CronRun::OnTime,
        }
    }
}

impl Firing {
    /// A firing of `trigger_id` at `instant`, caused by `cause`.
    pub fn new(trigger_id: impl Into<String>, instant: DateTime<Utc>, cause: Cause) -> Self {
        Self {
            trigger_id: trigger_id.into(),
            instant,
            cause,
        }
    }

    /// The kind of trigger that fired.
    pub fn kind(&self) -> TriggerKind {
        match self.cause {
            Cause::Cron { .. } => TriggerKind::Cron,
            Cause::Api { .. } => TriggerKind::Api,
            Cause::Event { .. } | Cause::Batch { .. } => TriggerKind::Event,
        }
    }

    /// The api payload, for an api firing.
    pub fn payload(&self) -> Option<&Value> {
        match &self.cause {
            Cause::Api { payload } => Some(payload),
            _ => None,
        }
    }

    /// The source event, for an event firing (the last of a batch).
    pub fn source(&self) -> Option<&Event> {
        match &self.cause {
            Cause::Event { source } => Some(source),
            Cause::Batch { events } => events.last(),
            _ => None,
        }
    }

    /// The events of a batched firing.
    pub fn batch(&self) -> Option<&[Event]> {
        match &self.cause {
            Cause::Batch { events } => Some(events),
            _ => None,
        }
    }
}

/// Turns a firing into events.
///
/// Implement it with `#[async_trait]` for a type of your own, or wrap a
/// closure: [`factory_fn`] takes a plain synchronous closure (it runs on
/// the async runtime, so keep it quick), [`async_factory_fn`] one that
/// awaits (a database, an HTTP call). WebAssembly plugins are another
/// implementation (`wasmsched::plugin`).
#[async_trait]
pub trait Factory: Send + Sync {
    /// The events to publish for `firing`; an error fails the firing,
    /// which then publishes nothing.
    async fn make_events(&self, firing: &Firing) -> Result<Vec<NewEvent>, BoxError>;

    /// The plugin behind this factory, if it is one (named in errors).
    fn plugin(&self) -> Option<String> {
        None
    }

    /// What errors call this factory when it runs for trigger `trigger`:
    /// "factory of trigger `x`" unless it is something else to its user
    /// (a sink's delivery names the sink).
    fn describe(&self, trigger: &str) -> String {
        format!("factory of trigger `{trigger}`")
    }

    /// Is `error` (from [`Self::make_events`]) a time limit running out?
    /// The run history says `timeout` rather than `error` then.
    fn is_timeout(&self, error: &(dyn std::error::Error + 'static)) -> bool {
        let _ = error;
        false
    }
}

#[async_trait]
impl<F> Factory for F
where
    F: Fn(&Firing) -> Result<Vec<NewEvent>, BoxError> + Send + Sync,
{
    async fn make_events(&self, firing: &Firing) -> Result<Vec<NewEvent>, BoxError> {
        self(firing)
    }
}

/// Decides whether an event fires an event trigger. Implement it like
/// [`Factory`], or wrap a closure with [`filter_fn`] / [`async_filter_fn`].
#[async_trait]
pub trait Filter: Send + Sync {
    /// `true` fires the trigger; an error counts as a failure, and the
    /// broker may deliver the event again.
    async fn accept(&self, event: &Event) -> Result<bool, BoxError>;

    /// The plugin behind this filter, if it is one (named in traces).
    fn plugin(&self) -> Option<String> {
        None
    }
}

#[async_trait]
impl<F> Filter for F
where
    F: Fn(&Event) -> bool + Send + Sync,
{
    async fn accept(&self, event: &Event) -> Result<bool, BoxError> {
        Ok(self(event))
    }
}

/// Wraps a synchronous closure as a shareable factory (helps type
/// inference). It runs on the async runtime's worker: keep it quick, or
/// use [`async_factory_fn`] and `tokio::task::spawn_blocking` inside.
pub fn factory_fn<F>(f: F) -> Arc<dyn Factory>
where
    F: Fn(&Firing) -> Result<Vec<NewEvent>, BoxError> + Send + Sync + 'static,
{
    Arc::new(f)
}

/// Wraps an async closure as a shareable factory. It gets its own copy of
/// the firing, so the future it returns may outlive the call.
///
/// ```
/// use wasmsched_core::{NewEvent, async_factory_fn};
/// let factory = async_factory_fn(|firing| async move {
///     tokio::time::sleep(std::time::Duration::from_millis(1)).await;
///     Ok(vec![NewEvent::new(serde_json::json!({"trigger": firing.trigger_id}))])
/// });
/// # drop(factory);
/// ```
pub fn async_factory_fn<F, Fut>(f: F) -> Arc<dyn Factory>
where
    F: Fn(Firing) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<NewEvent>, BoxError>> + Send + 'static,
{
    Arc::new(AsyncFactory(f))
}

struct AsyncFactory<F>(F);

#[async_trait]
impl<F, Fut> Factory for AsyncFactory<F>
where
    F: Fn(Firing) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Vec<NewEvent>, BoxError>> + Send,
{
    async fn make_events(&self, firing: &Firing) -> Result<Vec<NewEvent>, BoxError> {
        (self.0)(firing.clone()).await
    }
}

/// Wraps a synchronous closure as a shareable filter (helps type
/// inference). Like [`factory_fn`], it runs on the async runtime's worker.
pub fn filter_fn<F>(f: F) -> Arc<dyn Filter>
where
    F: Fn(&Event) -> bool + Send + Sync + 'static,
{
    Arc::new(f)
}

/// Wraps an async closure as a shareable filter; it gets its own copy of
/// the event.
pub fn async_filter_fn<F, Fut>(f: F) -> Arc<dyn Filter>
where
    F: Fn(Event) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<bool, BoxError>> + Send + 'static,
{
    Arc::new(AsyncFilter(f))
}

struct AsyncFilter<F>(F);

#[async_trait]
impl<F, Fut> Filter for AsyncFilter<F>
where
    F: Fn(Event) -> Fut + Send + Sync,
    Fut: Future<Output = Result<bool, BoxError>> + Send,
{
    async fn accept(&self, event: &Event) -> Result<bool, BoxError> {
        (self.0)(event.clone()).await
    }
}
