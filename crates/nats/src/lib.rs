//! wasmsched on NATS JetStream, for hosts that outgrow one machine: the
//! [`NatsBroker`] keeps events in a stream every replica reads, and the
//! [`NatsStore`] keeps the state the core's `StateStore` port describes
//! (claims, run history, timers, dead letters, plugin key-value) in
//! replicated key-value buckets and a stream.

pub mod broker;
pub mod state;

pub use broker::{NatsBroker, NatsOptions};
pub use state::NatsStore;
