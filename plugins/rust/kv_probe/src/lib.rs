//! `kv_probe`: a test factory that runs the key-value operations an api
//! call asks for and publishes what each returned, so the host's tests can
//! check scoping, quotas and denial (`wasmsched:plugin/kv`, 0.2.0).
//!
//! Payload: `{"ops": [["set", KEY, VALUE], ["get", KEY], ["delete", KEY],
//! ["list", PREFIX], ["secret", NAME]]}`. One event: `{"results": [...]}`,
//! each result `{"ok": ...}` or `{"err": "QuotaExceeded: ..."}`.

wit_bindgen::generate!({
    world: "factory-plugin",
    path: "../../../wit",
});

use exports::wasmsched::plugin::factory::Guest;
use serde_json::{Value, json};
use wasmsched::plugin::host::secret;
use wasmsched::plugin::kv;
use wasmsched::plugin::types::{Firing, NewEvent};

struct KvProbe;

fn error(e: kv::Error) -> Value {
    let text = match e {
        kv::Error::Denied => "Denied".to_owned(),
        kv::Error::QuotaExceeded(m) => format!("QuotaExceeded: {m}"),
        kv::Error::InvalidKey => "InvalidKey".to_owned(),
        kv::Error::Unavailable(m) => format!("Unavailable: {m}"),
    };
    json!({ "err": text })
}

fn result<T: Into<Value>>(r: Result<T, kv::Error>) -> Value {
    match r {
        Ok(v) => json!({ "ok": v.into() }),
        Err(e) => error(e),
    }
}

impl Guest for KvProbe {
    fn make_events(firing: Firing) -> Result<Vec<NewEvent>, String> {
        let payload: Value =
            serde_json::from_str(firing.payload.as_deref().unwrap_or("{}")).map_err(|e| e.to_string())?;
        let ops = payload["ops"].as_array().cloned().unwrap_or_default();
        let arg = |op: &Value, i: usize| op[i].as_str().unwrap_or_default().to_owned();
        let results: Vec<Value> = ops
            .iter()
            .map(|op| match op[0].as_str().unwrap_or_default() {
                "set" => result(kv::set(&arg(op, 1), &arg(op, 2)).map(|()| Value::Null)),
                "get" => result(kv::get(&arg(op, 1))),
                "delete" => result(kv::delete(&arg(op, 1))),
                "list" => result(kv::list_keys(&arg(op, 1))),
                "secret" => json!({ "ok": secret(&arg(op, 1)).is_some() }),
                other => json!({ "err": format!("unknown op {other}") }),
            })
            .collect();
        Ok(vec![NewEvent {
            topic: None,
            data: json!({ "results": results }).to_string(),
            headers: Vec::new(),
        }])
    }
}

export!(KvProbe);
