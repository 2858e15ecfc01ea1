//! Firings, and the two ports user logic plugs into: [`Factory`] and [`Filter`].
//!
//! A firing (a cron instant, an api call, an event arriving) goes to the
//! trigger's factory, which returns the events to publish. Native closures
//! and WebAssembly plugins are two adapters of the same ports.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use serde::Serialize;
use serde_json::{Value, json};

use crate::bounded::{self, EventLimits, LimitError};
use crate::broker::{Broker, BrokerError};
use crate::clock::Clock;
use crate::event::{Event, NewEvent};
use crate::topic::Topic;
use crate::trigger::TriggerKind;

/// Errors returned by user logic (closures, plugins).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One firing of a trigger: which trigger, when, and what fired it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Firing {
    pub trigger_id: String,
    /// The scheduled instant (cron) or the instant the firing was received.
    pub instant: DateTime<Utc>,
    /// What fired the trigger, with what it carries.
    pub cause: Cause,
}

/// What fired a trigger: one variant per [`TriggerKind`].
///
/// ```
/// use wasmsched::{Cause, Firing};
/// fn describe(firing: &Firing) -> String {
///     match &firing.cause {
///         Cause::Cron => format!("scheduled for {}", firing.instant),
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
    Cron,
    /// An api call (HTTP or [`crate::ApiTrigger::trigger`]) with its payload.
    Api { payload: Value },
    /// An event on the trigger's source pattern (that its filter accepted,
    /// or made up by "run now").
    Event { source: Event },
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
            Cause::Cron => TriggerKind::Cron,
            Cause::Api { .. } => TriggerKind::Api,
            Cause::Event { .. } => TriggerKind::Event,
        }
    }

    /// The api payload, for an api firing.
    pub fn payload(&self) -> Option<&Value> {
        match &self.cause {
            Cause::Api { payload } => Some(payload),
            _ => None,
        }
    }

    /// The source event, for an event firing.
    pub fn source(&self) -> Option<&Event> {
        match &self.cause {
            Cause::Event { source } => Some(source),
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
/// use wasmsched::{NewEvent, async_factory_fn};
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

/// Counters kept per trigger.
#[derive(Debug, Default)]
pub struct TriggerCounters {
    pub fires: AtomicU64,
    pub errors: AtomicU64,
    pub events_published: AtomicU64,
    pub filter_accepted: AtomicU64,
    pub filter_rejected: AtomicU64,
}

/// A snapshot of [`TriggerCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TriggerStats {
    pub fires: u64,
    pub errors: u64,
    pub events_published: u64,
    pub filter_accepted: u64,
    pub filter_rejected: u64,
}

impl TriggerCounters {
    pub fn snapshot(&self) -> TriggerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TriggerStats {
            fires: get(&self.fires),
            errors: get(&self.errors),
            events_published: get(&self.events_published),
            filter_accepted: get(&self.filter_accepted),
            filter_rejected: get(&self.filter_rejected),
        }
    }
}

/// Why a firing published nothing.
#[derive(Debug, thiserror::Error)]
pub enum FireError {
    #[error("factory of trigger `{trigger}` failed: {message}")]
    Factory { trigger: String, message: String },
    #[error("publishing for trigger `{trigger}` failed: {source}")]
    Publish {
        trigger: String,
        #[source]
        source: BrokerError,
    },
    /// The events broke [`EventLimits`]; none was published.
    #[error("trigger `{trigger}` published nothing{}: {source}", made_by(plugin))]
    Limit {
        trigger: String,
        /// The plugin that made the events, if a plugin did.
        plugin: Option<String>,
        #[source]
        source: Box<LimitError>,
    },
}

fn made_by(plugin: &Option<String>) -> String {
    match plugin {
        Some(plugin) => format!(" (events from plugin `{plugin}`)"),
        None => String::new(),
    }
}

/// Everything a started trigger needs to turn a firing into published events.
pub struct Dispatcher {
    pub trigger_id: String,
    pub topic: Topic,
    pub broker: Arc<dyn Broker>,
    pub factory: Option<Arc<dyn Factory>>,
    pub counters: Arc<TriggerCounters>,
    /// Checked before anything of a firing is published.
    pub limits: EventLimits,
    /// Stamps api and event firings.
    pub clock: Clock,
}

impl Dispatcher {
    /// A firing of this trigger now (by the scheduler's clock).
    pub fn firing(&self, cause: Cause) -> Firing {
        Firing::new(self.trigger_id.clone(), self.clock.now(), cause)
    }

    /// Runs the factory (or the default) and publishes what it returns.
    /// Failures are counted and logged with the trigger id.
    pub async fn fire(&self, firing: Firing) -> Result<usize, FireError> {
        self.counters.fires.fetch_add(1, Ordering::Relaxed);
        let result = self.publish_firing(&firing).await;
        if let Err(error) = &result {
            self.counters.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(trigger = %self.trigger_id, "{error}");
        }
        result
    }

    async fn publish_firing(&self, firing: &Firing) -> Result<usize, FireError> {
        let drafts = self.make_events(firing).await?;
        self.limits
            .check_firing(&drafts)
            .map_err(|source| FireError::Limit {
                trigger: self.trigger_id.clone(),
                plugin: self.factory.as_ref().and_then(|f| f.plugin()),
                source: Box::new(source),
            })?;
        let count = drafts.len();
        for (index, draft) in drafts.into_iter().enumerate() {
            let event = draft.into_event(&self.topic);
            tracing::debug!(trigger = %self.trigger_id, topic = %event.topic, id = %event.id, "publishing");
            let published = match publish_key(firing, index) {
                Some(key) => self.broker.publish_once(event, key).await,
                None => self.broker.publish(event).await,
            };
            published.map_err(|source| FireError::Publish {
                trigger: self.trigger_id.clone(),
                source,
            })?;
            self.counters
                .events_published
                .fetch_add(1, Ordering::Relaxed);
        }
        Ok(count)
    }

    /// The factory's events; a panic or error (its message cut to
    /// [`bounded::MAX_ERROR_BYTES`]) fails the firing.
    async fn make_events(&self, firing: &Firing) -> Result<Vec<NewEvent>, FireError> {
        let Some(factory) = &self.factory else {
            return Ok(vec![default_event(firing)]);
        };
        let outcome = AssertUnwindSafe(factory.make_events(firing))
            .catch_unwind()
            .await;
        let message = match outcome {
            Ok(Ok(events)) => return Ok(events),
            Ok(Err(error)) => bounded::error(error.to_string()),
            Err(panic) => format!("panicked: {}", bounded::error(panic_message(&panic))),
        };
        Err(FireError::Factory {
            trigger: self.trigger_id.clone(),
            message,
        })
    }
}

/// The key that makes publishing the `index`th event of `firing` happen
/// once however often it is repeated: by every replica firing the same
/// cron instant (`<trigger id>:<scheduled instant>`), or by a replica
/// handling a redelivered source event (`<trigger id>:<source event id>`).
/// Later events of one firing add `/<index>`. Api calls have no key: two
/// calls are two firings.
fn publish_key(firing: &Firing, index: usize) -> Option<String> {
    let base = match &firing.cause {
        Cause::Cron => format!("{}:{}", firing.trigger_id, firing.instant.to_rfc3339()),
        Cause::Event { source } => format!("{}:{}", firing.trigger_id, source.id),
        Cause::Api { .. } => return None,
    };
    Some(match index {
        0 => base,
        n => format!("{base}/{n}"),
    })
}

/// What a trigger without a factory publishes: the api payload, the source
/// event's data, or the scheduled instant.
fn default_event(firing: &Firing) -> NewEvent {
    let data = match &firing.cause {
        Cause::Api { payload } => payload.clone(),
        Cause::Event { source } => source.data.clone(),
        Cause::Cron => json!({
            "trigger_id": firing.trigger_id,
            "scheduled": firing.instant.to_rfc3339(),
        }),
    };
    NewEvent::new(data)
}

/// The message of a caught panic.
pub(crate) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn firing(cause: Cause) -> Firing {
        Firing::new("t", "2030-01-07T09:00:00Z".parse().unwrap(), cause)
    }

    #[test]
    fn publish_keys_name_the_trigger_and_what_fired_it() {
        let cron = firing(Cause::Cron);
        assert_eq!(
            publish_key(&cron, 0).unwrap(),
            "t:2030-01-07T09:00:00+00:00"
        );
        assert_eq!(
            publish_key(&cron, 2).unwrap(),
            "t:2030-01-07T09:00:00+00:00/2"
        );
        let source = Event::new(Topic::new("a").unwrap(), Value::Null);
        let id = source.id;
        let event = firing(Cause::Event { source });
        assert_eq!(publish_key(&event, 0).unwrap(), format!("t:{id}"));
        let api = firing(Cause::Api {
            payload: Value::Null,
        });
        assert_eq!(publish_key(&api, 0), None);
    }
}
