//! What the tests and benches of every crate share: watching a broker,
//! and (feature `host`) hosts served on loopback, calls to their HTTP API,
//! `wasmsched run` replicas, nats-servers and clusters, and checks against
//! the CloudEvents schema.

use std::path::PathBuf;
use std::time::Duration;

use wasmsched_core::broker::{Broker, SubscriberKind, Subscription};
use wasmsched_core::{Event, TopicPattern};

/// Watches `pattern` on `broker` as an observer (never slows publishers).
pub async fn observe(broker: &(impl Broker + ?Sized), pattern: &str) -> Subscription {
    broker
        .subscribe(
            &TopicPattern::new(pattern).unwrap(),
            SubscriberKind::Observer,
        )
        .await
        .unwrap()
}

/// The next event on `sub`, failing the test if none arrives `within`.
pub async fn next_event_within(sub: &mut Subscription, within: Duration) -> Event {
    tokio::time::timeout(within, sub.next())
        .await
        .expect("no event arrived")
        .expect("subscription closed")
        .event
}
#[cfg(feature = "host")]
pub mod bench;
#[cfg(feature = "host")]
pub mod http;
#[cfg(feature = "host")]
pub mod nats_cluster;
#[cfg(feature = "host")]
pub mod nats_server;
#[cfg(feature = "host")]
pub mod replica;
#[cfg(feature = "host")]
pub mod served;
#[cfg(feature = "host")]
pub mod soak;
pub mod wait;

#[cfg(feature = "host")]
pub use served::{Served, copy_example_plugin, write_config, write_run_config};

/// Why `event` is not a CloudEvent in the JSON format, checked against the
/// schema in `tests/data/cloudevents.schema.json` (formats included); empty
/// when it is one.
#[cfg(feature = "host")]
pub fn cloudevent_errors(event: &serde_json::Value) -> Vec<String> {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../data/cloudevents.schema.json")).unwrap();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    validator
        .iter_errors(event)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// The `wasmsched` binary cargo built next to the running test (tests of the
/// `wasmsched` package, where `CARGO_BIN_EXE_wasmsched` names it too; test
/// binaries live in `target/<profile>/deps/`, the binary one level up).
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("a test binary in target/<profile>/deps");
    let binary = profile.join(format!("wasmsched{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} is not built: run the tests of the `wasmsched` package (cargo test)",
        binary.display()
    );
    binary
}

/// The repository's root (its example plugins, `wit/`, `plugins/`).
pub fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/test-support in the repository")
        .to_path_buf()
}
