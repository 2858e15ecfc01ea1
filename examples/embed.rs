//! Embedding wasmsched in a Rust program, with native closures as factory
//! and filter. Run: `cargo run --example embed`.

use std::sync::Arc;

use serde_json::json;
use wasmsched::broker::SubscriberKind;
use wasmsched::{
    Broker, Event, MemoryBroker, NewEvent, Scheduler, Topic, TopicPattern, create_api_trigger,
    create_event_trigger, factory_fn, filter_fn,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let broker = MemoryBroker::new();
    let scheduler = Scheduler::new(Arc::new(broker.clone()));

    // Error logs anywhere under `logs.` become alerts naming the service.
    let alerts = create_event_trigger(
        "logs.**",
        Some(factory_fn(|firing| {
            let log = &firing.source.as_ref().expect("an event trigger").data;
            Ok(vec![NewEvent::new(
                json!({ "alert": format!("ERROR in {}", log["service"]) }),
            )])
        })),
        Some(filter_fn(|event: &Event| event.data["level"] == "ERROR")),
    )?;
    scheduler
        .register_trigger("alerts", alerts, Topic::new("alerts.critical")?)
        .await?;

    // An api trigger without a factory publishes its payload as is.
    let hook = create_api_trigger(None);
    scheduler
        .register_trigger("hook", hook.clone(), Topic::new("logs.app")?)
        .await?;

    let mut alerts_seen = broker
        .subscribe(&TopicPattern::new("alerts.*")?, SubscriberKind::Observer)
        .await?;
    scheduler.start().await?;

    let count = hook
        .trigger(json!({ "level": "ERROR", "service": "billing" }))
        .await?;
    let alert = alerts_seen.next().await.expect("an alert").event;
    println!(
        "hook fired {count} time(s); {}: {}",
        alert.topic, alert.data
    );
    scheduler.stop().await;
    Ok(())
}
