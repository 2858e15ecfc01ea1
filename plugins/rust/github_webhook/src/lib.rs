//! `github_webhook`: turns a GitHub-style webhook delivered to an API
//! trigger into one event.
//!
//! The event's data is `{"kind": "github", "action", "repository",
//! "sender", "payload"}`: `action` is the payload's `action`, `repository`
//! its `repository.full_name`, `sender` its `sender.login` (each `null` when
//! missing), and `payload` the whole request body. The event goes to the
//! trigger's topic, or to the `topic` config value when set.

wit_bindgen::generate!({
    world: "factory-plugin",
    path: "../../../wit",
});

use exports::wasmsched::plugin::factory::Guest;
use serde_json::{Value, json};
use wasmsched::plugin::host::config;
use wasmsched::plugin::types::{Firing, NewEvent};

struct GithubWebhook;

impl Guest for GithubWebhook {
    fn make_events(firing: Firing) -> Result<Vec<NewEvent>, String> {
        let body = firing
            .payload
            .ok_or_else(|| "github_webhook expects an api trigger with a payload".to_string())?;
        let payload: Value =
            serde_json::from_str(&body).map_err(|e| format!("payload is not valid JSON: {e}"))?;
        let field = |pointer: &str| payload.pointer(pointer).cloned().unwrap_or(Value::Null);
        let data = json!({
            "kind": "github",
            "action": field("/action"),
            "repository": field("/repository/full_name"),
            "sender": field("/sender/login"),
            "payload": payload,
        });
        Ok(vec![NewEvent {
            topic: config("topic"),
            data: data.to_string(),
            headers: Vec::new(),
        }])
    }
}

export!(GithubWebhook);
