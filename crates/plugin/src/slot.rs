//! A named place holding a plugin's current version, swappable while
//! triggers call it.
//!
//! Triggers are bound to a [`PluginSlot`], not to one [`Plugin`]: each call
//! takes the version in the slot at its start and keeps it (an `Arc`) until
//! it returns, so a swap ([`PluginSlot::replace`]) never disturbs a call in
//! flight, and the next call runs the new version. Nothing about the
//! trigger changes, so an event trigger keeps its broker subscription.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::adapter::{Bound, PluginFactory, PluginFilter};
use super::{Plugin, PluginError};
use wasmsched_core::firing::{Factory, Filter};

/// The current version of one plugin.
pub struct PluginSlot {
    current: ArcSwap<Plugin>,
}

impl PluginSlot {
    /// A slot holding `plugin`.
    pub fn new(plugin: Arc<Plugin>) -> Arc<Self> {
        Arc::new(Self {
            current: ArcSwap::new(plugin),
        })
    }

    /// The version calls made now run (lock-free).
    pub fn current(&self) -> Arc<Plugin> {
        self.current.load_full()
    }

    /// Makes `plugin` the version of every later call; returns the previous
    /// one, which the calls already running keep until they return.
    pub fn replace(&self, plugin: Arc<Plugin>) -> Arc<Plugin> {
        self.current.swap(plugin)
    }

    /// The `make-events` of whatever version is current at each call, as
    /// the factory of trigger `trigger_id` (which reads `config` through
    /// `host.config`). Fails if the current version exports no factory.
    pub fn factory(
        self: &Arc<Self>,
        trigger_id: &str,
        config: BTreeMap<String, String>,
    ) -> Result<Arc<dyn Factory>, PluginError> {
        let plugin = self.current();
        if !plugin.worlds().factory {
            return Err(PluginError::NoFactory {
                name: plugin.name().to_owned(),
            });
        }
        Ok(Arc::new(PluginFactory(
            self.bind(&plugin, trigger_id, config),
        )))
    }

    /// The `accept` of whatever version is current at each call, as the
    /// filter of trigger `trigger_id`. Fails if the current version
    /// exports no filter.
    pub fn filter(
        self: &Arc<Self>,
        trigger_id: &str,
        config: BTreeMap<String, String>,
    ) -> Result<Arc<dyn Filter>, PluginError> {
        let plugin = self.current();
        if !plugin.worlds().filter {
            return Err(PluginError::NoFilter {
                name: plugin.name().to_owned(),
            });
        }
        Ok(Arc::new(PluginFilter(
            self.bind(&plugin, trigger_id, config),
        )))
    }

    fn bind(
        self: &Arc<Self>,
        plugin: &Plugin,
        trigger_id: &str,
        config: BTreeMap<String, String>,
    ) -> Bound {
        let trigger: Arc<str> = trigger_id.into();
        Bound {
            lane: plugin.runtime.admission.lane(&trigger),
            slot: self.clone(),
            trigger,
            config: Arc::new(config),
        }
    }
}

impl fmt::Debug for PluginSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PluginSlot").field(&self.current()).finish()
    }
}
