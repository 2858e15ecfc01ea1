//! Embedding wasmsched in a Rust program, with native closures as factory
//! and filter: an async factory that awaits (a stand-in for a database
//! lookup) and a plain synchronous filter. Run: `cargo run --example embed`.

use std::sync::Arc;

use serde_json::json;
use wasmsched::broker::SubscriberKind;
use wasmsched::{
    Broker, Cause, Event, MemoryBroker, NewEvent, Scheduler, Topic, TopicPattern, async_factory_fn,
    create_api_trigger, create_event_trigger, filter_fn,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let broker = MemoryBroker::new();
    let scheduler = Scheduler::new(Arc::new(broker.clone()));

    // Error logs anywhere under `logs.` become alerts naming the service
    // and who is on call for it. The factory awaits its lookup: only this
    // firing waits, never the scheduler.
    let alerts = create_event_trigger(
        "logs.**",
        Some(async_factory_fn(|firing| async move {
            let Cause::Event { source: log } = &firing.cause else {
                return Ok(vec![]); // only events fire this trigger
            };
            let service = log.data["service"].as_str().unwrap_or("?");
            let on_call = on_call_for(service).await;
            Ok(vec![NewEvent::new(json!({
                "alert": format!("ERROR in {service}"),
                "page": on_call,
            }))])
        })),
        // A plain closure: runs inline, so keep it quick.
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

/// Stands in for a database or HTTP lookup.
async fn on_call_for(service: &str) -> String {
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    format!("{service}-oncall@example.com")
}
