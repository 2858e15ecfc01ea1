//! Api triggers: fire when called, from Rust code or over HTTP.

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use serde_json::Value;

use super::Dispatcher;
use super::{Binding, Trigger, TriggerError, TriggerKind, TriggerState};
use crate::firing::{Cause, Factory};

/// Fires once per [`ApiTrigger::trigger`] call, with the caller's payload.
pub struct ApiTrigger {
    factory: Option<Arc<dyn Factory>>,
    state: TriggerState,
    dispatcher: RwLock<Option<Arc<Dispatcher>>>,
}

impl ApiTrigger {
    /// An api trigger running `factory` (none: publish the payload as is).
    pub fn new(factory: Option<Arc<dyn Factory>>) -> Self {
        Self {
            factory,
            state: TriggerState::default(),
            dispatcher: RwLock::new(None),
        }
    }

    /// Fires with `payload` and returns the trigger's fire count, once the
    /// resulting events are published.
    pub async fn trigger(&self, payload: Value) -> Result<u64, TriggerError> {
        let dispatcher = self
            .dispatcher
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(TriggerError::NotRunning)?;
        let firing = dispatcher.firing(Cause::Api { payload });
        dispatcher.fire(firing).await?;
        Ok(self.fire_count())
    }
}

#[async_trait]
impl Trigger for ApiTrigger {
    fn kind(&self) -> TriggerKind {
        TriggerKind::Api
    }

    async fn start(&self, binding: Binding) -> Result<(), TriggerError> {
        self.state.begin()?;
        let dispatcher = self.state.dispatcher(&binding, &self.factory);
        *self.dispatcher.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(dispatcher));
        Ok(())
    }

    async fn stop(&self) {
        self.dispatcher
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        self.state.end();
    }

    async fn run_now(&self, payload: Option<Value>) -> Result<u64, TriggerError> {
        self.trigger(payload.unwrap_or_else(|| Value::Object(Default::default())))
            .await
    }

    fn state(&self) -> &TriggerState {
        &self.state
    }
}
