//! Host bindings of the two versions of the contract a plugin may target:
//! `wasmsched:plugin@0.2.0` (`wit/plugin.wit`) and 0.1.0
//! (`wit/versions/0.1.0/plugin.wit`), and the [`Exports`] of a loaded
//! component, which say which version it speaks.
//!
//! The host works in 0.2.0 records; a 0.1.0 plugin gets them converted
//! (0.1.0 has no `firing.batch`) and its results converted back. Both
//! versions' `host` interfaces are linked side by side, so a 0.1.0 plugin
//! and a 0.2.0 one run in the same host unchanged.

use serde::Serialize;
use wasmtime::component::{Instance, InstancePre};
use wasmtime::{AsContextMut, Store};

use super::host::CallState;

use super::wit::{v0_1, v0_2};
use v0_1::exports::wasmsched::plugin::{factory as factory_1, filter as filter_1};
use v0_1::wasmsched::plugin::types as wit_1;
use v0_2::exports::wasmsched::plugin::{factory as factory_2, filter as filter_2};
pub(crate) use v0_2::wasmsched::plugin::types as wit;

/// A version of the contract.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum ContractVersion {
    /// `wasmsched:plugin@0.1.x`: factories and filters, `host.log` and
    /// `host.config`.
    #[serde(rename = "0.1.0")]
    V0_1,
    /// `wasmsched:plugin@0.2.x`: adds `host.secret`, `kv` and batched
    /// firings.
    #[serde(rename = "0.2.0")]
    V0_2,
}

impl ContractVersion {
    /// The version of an interface name's `@x.y.z`, if it is one of ours
    /// (any patch release, no pre-release).
    pub(crate) fn of(version: &str) -> Option<Self> {
        let (minor, patch) = version.strip_prefix("0.")?.split_once('.')?;
        if patch.is_empty() || !patch.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        match minor {
            "1" => Some(Self::V0_1),
            "2" => Some(Self::V0_2),
            _ => None,
        }
    }

    /// The package with its version, as WIT spells it.
    pub fn package(self) -> &'static str {
        match self {
            Self::V0_1 => "wasmsched:plugin@0.1.0",
            Self::V0_2 => "wasmsched:plugin@0.2.0",
        }
    }
}

impl std::fmt::Display for ContractVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.package())
    }
}

/// Where a loaded component's exports are, by the version it targets.
pub(crate) enum Exports {
    V0_1 {
        factory: Option<factory_1::GuestIndices>,
        filter: Option<filter_1::GuestIndices>,
    },
    V0_2 {
        factory: Option<factory_2::GuestIndices>,
        filter: Option<filter_2::GuestIndices>,
    },
}

impl Exports {
    /// Looks the exports up in `pre`, for the ones the component has.
    pub(crate) fn new(
        pre: &InstancePre<CallState>,
        version: ContractVersion,
        factory: bool,
        filter: bool,
    ) -> wasmtime::Result<Self> {
        Ok(match version {
            ContractVersion::V0_1 => Self::V0_1 {
                factory: factory
                    .then(|| factory_1::GuestIndices::new(pre))
                    .transpose()?,
                filter: filter
                    .then(|| filter_1::GuestIndices::new(pre))
                    .transpose()?,
            },
            ContractVersion::V0_2 => Self::V0_2 {
                factory: factory
                    .then(|| factory_2::GuestIndices::new(pre))
                    .transpose()?,
                filter: filter
                    .then(|| filter_2::GuestIndices::new(pre))
                    .transpose()?,
            },
        })
    }

    pub(crate) fn version(&self) -> ContractVersion {
        match self {
            Self::V0_1 { .. } => ContractVersion::V0_1,
            Self::V0_2 { .. } => ContractVersion::V0_2,
        }
    }

    /// Type-checks the exports against an instance (at load).
    pub(crate) fn check(
        &self,
        store: &mut Store<CallState>,
        instance: &Instance,
    ) -> wasmtime::Result<()> {
        match self {
            Self::V0_1 { factory, filter } => {
                if let Some(f) = factory {
                    f.load(&mut *store, instance)?;
                }
                if let Some(f) = filter {
                    f.load(&mut *store, instance)?;
                }
            }
            Self::V0_2 { factory, filter } => {
                if let Some(f) = factory {
                    f.load(&mut *store, instance)?;
                }
                if let Some(f) = filter {
                    f.load(&mut *store, instance)?;
                }
            }
        }
        Ok(())
    }

    /// Calls `accept`; `None` if the component exports no filter.
    pub(crate) async fn accept(
        &self,
        mut store: impl AsContextMut<Data = CallState>,
        instance: &Instance,
        event: &wit::Event,
    ) -> Option<wasmtime::Result<Result<bool, String>>> {
        Some(match self {
            Self::V0_1 { filter, .. } => {
                let guest = filter.as_ref()?.load(&mut store, instance);
                match guest {
                    Ok(guest) => guest.call_accept(store, &event_1(event)).await,
                    Err(error) => Err(error),
                }
            }
            Self::V0_2 { filter, .. } => match filter.as_ref()?.load(&mut store, instance) {
                Ok(guest) => guest.call_accept(store, event).await,
                Err(error) => Err(error),
            },
        })
    }

    /// Calls `make-events`; `None` if the component exports no factory.
    pub(crate) async fn make_events(
        &self,
        mut store: impl AsContextMut<Data = CallState>,
        instance: &Instance,
        firing: &wit::Firing,
    ) -> Option<wasmtime::Result<Result<Vec<wit::NewEvent>, String>>> {
        Some(match self {
            Self::V0_1 { factory, .. } => {
                let guest = factory.as_ref()?.load(&mut store, instance);
                let called = match guest {
                    Ok(guest) => guest.call_make_events(store, &firing_1(firing)).await,
                    Err(error) => Err(error),
                };
                called.map(|returned| {
                    returned.map(|events| events.into_iter().map(new_event_2).collect())
                })
            }
            Self::V0_2 { factory, .. } => match factory.as_ref()?.load(&mut store, instance) {
                Ok(guest) => guest.call_make_events(store, firing).await,
                Err(error) => Err(error),
            },
        })
    }
}

fn event_1(event: &wit::Event) -> wit_1::Event {
    wit_1::Event {
        id: event.id.clone(),
        topic: event.topic.clone(),
        time: event.time.clone(),
        data: event.data.clone(),
        headers: event.headers.clone(),
    }
}

/// A firing for a 0.1.0 plugin: a batched firing reaches it as its last
/// event (`source`), as 0.1.0 has no batches.
fn firing_1(firing: &wit::Firing) -> wit_1::Firing {
    wit_1::Firing {
        trigger_id: firing.trigger_id.clone(),
        kind: match firing.kind {
            wit::TriggerKind::Cron => wit_1::TriggerKind::Cron,
            wit::TriggerKind::Api => wit_1::TriggerKind::Api,
            wit::TriggerKind::Event => wit_1::TriggerKind::Event,
        },
        instant: firing.instant.clone(),
        payload: firing.payload.clone(),
        source: firing.source.as_ref().map(event_1),
    }
}

fn new_event_2(event: wit_1::NewEvent) -> wit::NewEvent {
    wit::NewEvent {
        topic: event.topic,
        data: event.data,
        headers: event.headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(ContractVersion::of("0.1.0"), Some(ContractVersion::V0_1));
        assert_eq!(ContractVersion::of("0.1.17"), Some(ContractVersion::V0_1));
        assert_eq!(ContractVersion::of("0.2.0"), Some(ContractVersion::V0_2));
        assert_eq!(ContractVersion::of("0.3.0"), None);
        assert_eq!(ContractVersion::of("0.1.0-rc1"), None);
        assert_eq!(ContractVersion::of("0.1."), None);
        assert_eq!(ContractVersion::of("1.0.0"), None);
    }
}
