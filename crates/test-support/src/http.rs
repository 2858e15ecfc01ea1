//! Calls to a host's HTTP API for the tests: the status and the JSON body
//! (`null` when there is none).

use serde_json::Value;

/// Sends `request`: its status and JSON answer.
pub async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

/// `method` on `url`, with `body` as JSON if given.
pub async fn call(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    send(request).await
}

/// `GET url`.
pub async fn get(url: String) -> (u16, Value) {
    call(reqwest::Method::GET, url, None).await
}

/// `POST url` with `body` as JSON.
pub async fn post(url: String, body: Value) -> (u16, Value) {
    call(reqwest::Method::POST, url, Some(body)).await
}

/// `GET url`: the body as text (e.g. `/metrics`), failing on any error.
pub async fn text(url: String) -> String {
    let response = reqwest::get(&url).await.unwrap();
    assert!(
        response.status().is_success(),
        "GET {url}: {}",
        response.status()
    );
    response.text().await.unwrap()
}
