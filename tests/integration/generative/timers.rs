//! One-off timers (`POST /api/admin/timers`) and backfills (`POST
//! /api/admin/triggers/{id}/backfill`) on a served host, from valid bodies
//! with one or two keys generated (instants, delays, rates at the edges).
//! Never a dropped connection or a 5xx; a 4xx names a key it was sent; an
//! accepted timer is listed as sent; an accepted backfill shows its range
//! and stops once cancelled.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::{Value, json};

use super::body::{Body, key, text, words};
use super::edges::{
    duration_json, duration_text, instant_text, json_value, number_json, odd_text, topic_text,
};
use super::harness::check;
use super::host::{Fixture, segment};
use super::triggers::serial;

fn timer_body() -> BoxedStrategy<Body> {
    let mutation = prop_oneof![
        key("id", text(odd_text())),
        key("topic", text(topic_text())),
        key("trigger", words(&["hook", "nightly", "nope", ""])),
        key("at", text(instant_text())),
        key(
            "delay",
            text(prop_oneof![4 => duration_text(), 1 => Just("1000000000d".to_owned())].boxed())
        ),
        key("delay", duration_json().prop_map(Some)),
        key("data", json_value().prop_map(Some)),
        key("extra", json_value().prop_map(Some)),
    ];
    let drop = prop::sample::select(vec![None, Some("topic"), Some("delay")]);
    (prop::collection::vec(mutation, 0..=2), drop)
        .prop_map(|(mut mutations, drop)| {
            if let Some(key) = drop
                && mutations.iter().any(|(k, _)| ["trigger", "at"].contains(k))
            {
                mutations.push((key, None));
            }
            timer(mutations)
        })
        .boxed()
}

/// A valid timer body with `mutations`.
pub fn timer(mutations: Vec<(&'static str, Option<Value>)>) -> Body {
    let base = [
        ("topic", json!("gen.timer")),
        ("delay", json!("1h")),
        ("data", json!({"n": 1})),
    ];
    Body::new(&base, mutations)
}

pub async fn timer_case(fx: &Fixture, body: Body) -> Result<(), TestCaseError> {
    let request = fx
        .client
        .post(fx.url("/api/admin/timers"))
        .json(&body.json());
    let answer = fx.send_api("POST /api/admin/timers", request).await?;
    if answer.status >= 400 {
        prop_assert!(
            !body.mutated.is_empty(),
            "a valid timer was refused: {}",
            answer.text
        );
        return body.named_in(&answer);
    }
    prop_assert!([200, 201].contains(&answer.status), "{}", answer.text);
    let id = answer.json["id"].as_str().unwrap_or_default().to_owned();
    let due = answer.json["due"].clone();
    if let Some(Value::String(at)) = body.get("at") {
        let sent = chrono::DateTime::parse_from_rfc3339(at)
            .map(|t| t.to_utc())
            .ok();
        let answered = due
            .as_str()
            .and_then(|d| d.parse::<chrono::DateTime<chrono::Utc>>().ok());
        prop_assert_eq!(answered, sent, "`at` {} answered as due {}", at, due);
    }
    let list = fx
        .send_api(
            "GET /api/admin/timers",
            fx.client.get(fx.url("/api/admin/timers")),
        )
        .await?;
    let listed = list
        .json
        .as_array()
        .and_then(|l| l.iter().find(|t| t["id"] == json!(id)).cloned());
    let due_at = due
        .as_str()
        .and_then(|d| d.parse::<chrono::DateTime<chrono::Utc>>().ok());
    let Some(timer) = listed else {
        // Unless it fired already (due now or in the past), it is lost.
        let later = chrono::Utc::now() + chrono::TimeDelta::seconds(5);
        prop_assert!(
            due_at.is_none_or(|d| d < later),
            "timer `{}`, due {}, is not listed",
            id,
            due
        );
        return Ok(());
    };
    prop_assert_eq!(&timer["due"], &due);
    for key in ["topic", "trigger"] {
        prop_assert_eq!(
            &timer[key],
            body.get(key).unwrap_or(&Value::Null),
            "`{}`",
            key
        );
    }
    let data = match body.get("data") {
        None | Some(Value::Null) => json!({}),
        Some(data) => data.clone(),
    };
    prop_assert_eq!(&timer["data"], &data);
    if id == "." || id == ".." {
        return Ok(()); // not a path segment a URL keeps
    }
    let cancel = fx
        .client
        .delete(fx.url(&format!("/api/admin/timers/{}", segment(&id))));
    let cancelled = fx.send_api("DELETE the timer", cancel).await?;
    prop_assert!([200, 404].contains(&cancelled.status), "{}", cancelled.text);
    Ok(())
}

#[test]
fn admin_timers() {
    let fx = Fixture::start("timers");
    check("POST /api/admin/timers", 800, timer_body(), |body| {
        fx.case(body, |body| timer_case(&fx, body))
    });
}

/// A backfill body, and the schedule of the cron trigger it is for.
fn backfill_body() -> BoxedStrategy<(&'static str, Body)> {
    let rate = prop_oneof![
        4 => number_json().prop_map(Some),
        1 => Just(Some(json!(1e-300))),
        1 => json_value().prop_map(Some),
    ];
    let mutation = prop_oneof![
        key("from", text(instant_text())),
        key("to", text(instant_text())),
        key("rate", rate.boxed()),
        key("extra", json_value().prop_map(Some)),
    ];
    let schedule = prop::sample::select(vec!["0 3 * * *", "*/30 * * * *", "@hourly", "0 0 1 1 *"]);
    (schedule, prop::collection::vec(mutation, 0..=2))
        .prop_map(|(schedule, mutations)| (schedule, backfill(mutations)))
        .boxed()
}

/// A valid backfill body with `mutations`.
pub fn backfill(mutations: Vec<(&'static str, Option<Value>)>) -> Body {
    let base = [
        ("from", json!("2030-01-01T00:00:00Z")),
        ("to", json!("2030-01-01T06:00:00Z")),
        ("rate", json!(1000)),
    ];
    Body::new(&base, mutations)
}

pub async fn backfill_case(fx: &Fixture, schedule: &str, body: Body) -> Result<(), TestCaseError> {
    fx.forget_admin_triggers().await;
    let id = format!("bf-{}", serial());
    let table = json!({"id": id, "kind": "cron", "topic": "gen.backfill", "schedule": schedule,
        "timezone": "Asia/Seoul"});
    let made = fx
        .send_api(
            "POST the cron trigger",
            fx.client.post(fx.url("/api/admin/triggers")).json(&table),
        )
        .await?;
    prop_assert_eq!(made.status, 201, "{}", made.text);
    let url = fx.url(&format!("/api/admin/triggers/{id}/backfill"));
    let answer = fx
        .send_api(
            "POST .../backfill",
            fx.client.post(url.clone()).json(&body.json()),
        )
        .await?;
    if answer.status >= 400 {
        prop_assert!(
            !body.mutated.is_empty(),
            "a valid backfill was refused: {}",
            answer.text
        );
        body.named_in(&answer)?;
    } else {
        prop_assert_eq!(answer.status, 202, "{}", answer.text);
        for key in ["from", "to"] {
            let sent = body.get(key).and_then(Value::as_str).unwrap();
            let sent = chrono::DateTime::parse_from_rfc3339(sent).unwrap().to_utc();
            let shown = answer.json[key].as_str().and_then(|t| t.parse().ok());
            prop_assert_eq!(shown, Some(sent), "`{}`", key);
        }
        let progress = fx
            .send_api("GET .../backfill", fx.client.get(url.clone()))
            .await?;
        prop_assert_eq!(&progress.json["from"], &answer.json["from"]);
        prop_assert_eq!(&progress.json["total"], &answer.json["total"]);
        fx.send_api("DELETE .../backfill", fx.client.delete(url.clone()))
            .await?;
        // Cancelled, it stops (a backfill stuck `running` blocks the next).
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let progress = fx
                .send_api("GET .../backfill", fx.client.get(url.clone()))
                .await?;
            if progress.json["state"] != "running" {
                break;
            }
            prop_assert!(
                Instant::now() < deadline,
                "still running 5 s after it was cancelled: {}",
                progress.text
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let removed = fx
        .send_api(
            "DELETE the trigger",
            fx.client
                .delete(fx.url(&format!("/api/admin/triggers/{id}"))),
        )
        .await?;
    prop_assert_eq!(removed.status, 200, "{}", removed.text);
    Ok(())
}

#[test]
fn admin_backfills() {
    let fx = Fixture::start("backfill");
    check("POST .../backfill", 400, backfill_body(), |value| {
        fx.case(value, |(schedule, body)| backfill_case(&fx, schedule, body))
    });
}
