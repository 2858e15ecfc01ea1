//! `chat_poster`: posts a chat message for each alert it is fired with,
//! through outbound HTTP (`wasi:http/outgoing-handler`), which its manifest
//! grants for the chat server's origin only (`plugins/chat_poster.toml`).
//!
//! For each firing it POSTs `{"text": "..."}` to the `url` config value,
//! with `authorization: Bearer <CHAT_TOKEN>` when the secret `CHAT_TOKEN`
//! is granted. A redirect (301, 302, 303, 307, 308) is followed, up to
//! three times, by a new request that the host checks like any other: a
//! redirect to an origin the manifest does not allow fails. A 2xx answer
//! gives one event `{"posted": true, "status", "url"}` on the trigger's
//! topic; anything else is an error (the host logs it and records it in
//! the trigger's run history).

wit_bindgen::generate!({
    world: "factory-plugin",
    path: "../../../wit",
});

use exports::wasmsched::plugin::factory::Guest;
use serde_json::{Value, json};
use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasi::io::streams::StreamError;
use wasmsched::plugin::host::{Level, config, log, secret};
use wasmsched::plugin::types::{Firing, NewEvent};

const MAX_REDIRECTS: usize = 3;
/// The most of an answer's body read (the host caps it too).
const MAX_BODY: usize = 64 << 10;

struct ChatPoster;

impl Guest for ChatPoster {
    fn make_events(firing: Firing) -> Result<Vec<NewEvent>, String> {
        let url = config("url").ok_or("config key `url` is missing")?;
        let alert = firing
            .source
            .as_ref()
            .map(|event| event.data.clone())
            .or(firing.payload.clone())
            .unwrap_or_else(|| "{}".into());
        let alert: Value = serde_json::from_str(&alert).unwrap_or(Value::Null);
        let text = message(&firing.trigger_id, &alert);
        let body = json!({ "text": text }).to_string();
        let token = secret("CHAT_TOKEN");

        let mut target = url;
        for _ in 0..=MAX_REDIRECTS {
            let answer = post(&target, body.as_bytes(), token.as_deref())?;
            match (answer.status, answer.location) {
                (301 | 302 | 303 | 307 | 308, Some(location)) => {
                    log(Level::Info, &format!("{target} redirects to {location}"));
                    target = resolve(&target, &location);
                }
                (status, _) if (200..300).contains(&status) => {
                    let data = json!({ "posted": true, "status": status, "url": target });
                    return Ok(vec![NewEvent {
                        topic: None,
                        data: data.to_string(),
                        headers: Vec::new(),
                    }]);
                }
                (status, _) => {
                    let reply = String::from_utf8_lossy(&answer.body);
                    return Err(format!("POST {target}: the chat server answered {status}: {reply}"));
                }
            }
        }
        Err(format!("POST {target}: more than {MAX_REDIRECTS} redirects"))
    }
}

/// The chat message for an alert: its level (or severity), service and
/// message if it has them.
fn message(trigger: &str, alert: &Value) -> String {
    let field = |name: &str| alert.get(name).and_then(Value::as_str);
    let level = field("level").or_else(|| field("severity"));
    let service = field("service");
    let text = field("message");
    format!(
        "[{}] {}: {} (trigger {trigger})",
        level.unwrap_or("ALERT"),
        service.unwrap_or("unknown service"),
        text.unwrap_or("no message"),
    )
}

struct Answer {
    status: u16,
    location: Option<String>,
    body: Vec<u8>,
}

/// POSTs `body` as JSON to `url`; a refusal by the host (an origin not
/// allowed, a body over the cap, a timeout) comes back as the `wasi:http`
/// error code, e.g. `HttpRequestDenied`.
fn post(url: &str, body: &[u8], token: Option<&str>) -> Result<Answer, String> {
    let failed = |what: &str| format!("POST {url}: {what}");
    let (scheme, authority, path) = split(url).ok_or_else(|| failed("not an http(s) URL"))?;
    let mut headers = vec![
        ("content-type".to_owned(), b"application/json".to_vec()),
        ("content-length".to_owned(), body.len().to_string().into_bytes()),
    ];
    if let Some(token) = token {
        headers.push(("authorization".to_owned(), format!("Bearer {token}").into_bytes()));
    }
    let headers = Fields::from_list(&headers).map_err(|e| failed(&format!("{e:?}")))?;
    let request = OutgoingRequest::new(headers);
    let set = request.set_method(&Method::Post).is_ok()
        && request.set_scheme(Some(&scheme)).is_ok()
        && request.set_authority(Some(authority)).is_ok()
        && request.set_path_with_query(Some(path)).is_ok();
    if !set {
        return Err(failed("invalid request"));
    }
    let outgoing = request.body().map_err(|_| failed("no request body"))?;
    let response = outgoing_handler::handle(request, None).map_err(|e| failed(&format!("{e:?}")))?;
    // A server may answer before reading the whole body (and close it):
    // a failed write is reported only if no response comes.
    let mut written = Ok(());
    {
        let stream = outgoing.write().map_err(|_| failed("no body stream"))?;
        for chunk in body.chunks(4096) {
            if let Err(e) = stream.blocking_write_and_flush(chunk) {
                written = Err(failed(&format!("writing the body: {e:?}")));
                break;
            }
        }
    }
    if written.is_ok() {
        OutgoingBody::finish(outgoing, None).map_err(|e| failed(&format!("{e:?}")))?;
    }
    response.subscribe().block();
    let response = match response.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(failed(&format!("{code:?}"))),
        _ => return Err(written.err().unwrap_or_else(|| failed("no response"))),
    };
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .first()
        .map(|v| String::from_utf8_lossy(v).into_owned());
    let mut read = Vec::new();
    if let Ok(incoming) = response.consume()
        && let Ok(stream) = incoming.stream()
    {
        while read.len() < MAX_BODY {
            match stream.blocking_read(4096) {
                Ok(bytes) => read.extend_from_slice(&bytes),
                Err(StreamError::Closed) => break,
                Err(e) => return Err(failed(&format!("reading the answer: {e:?}"))),
            }
        }
    }
    Ok(Answer {
        status,
        location,
        body: read,
    })
}

/// `http://host:port/path` -> (scheme, authority, path-and-query).
fn split(url: &str) -> Option<(Scheme, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        _ => return None,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    Some((scheme, authority, path))
}

/// A redirect's `location`, absolute or relative to `base`'s origin.
fn resolve(base: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_owned();
    }
    let origin_end = base
        .find("://")
        .and_then(|i| base[i + 3..].find('/').map(|j| i + 3 + j))
        .unwrap_or(base.len());
    format!("{}{}", &base[..origin_end], location)
}

export!(ChatPoster);
