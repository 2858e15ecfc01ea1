//! `/docs`: the API reference, rendered by the server from the same
//! OpenAPI document `/openapi.json` serves.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::html;
use serde_json::Value;

use super::page;
use crate::app::AppState;

/// The OpenAPI document `/docs` renders (the HTTP API's, given by the
/// router that mounts both).
#[derive(Clone)]
pub struct ApiDocument(pub Arc<Value>);

/// `GET /docs`.
pub async fn reference(
    State(app): State<AppState>,
    Extension(ApiDocument(document)): Extension<ApiDocument>,
) -> Response {
    let paths = document["paths"].as_object().cloned().unwrap_or_default();
    let body = html! {
        p { "Every route of the HTTP API; the machine-readable document is " a href="/openapi.json" { "/openapi.json" } "." }
        nav aria-label="Routes" { ul { @for path in paths.keys() { li { a href={ "#" (anchor(path)) } { code { (path) } } } } } }
        @for (path, operations) in &paths {
            section id=(anchor(path)) {
                h2 { code { (path) } }
                @for (method, operation) in operations.as_object().into_iter().flatten() {
                    h3 { span.method { (method.to_uppercase()) } " " (text(operation, "summary")) }
                    @if !text(operation, "description").is_empty() { p { (text(operation, "description")) } }
                    @if let Some(parameters) = operation["parameters"].as_array() {
                        ul { @for parameter in parameters {
                            li { code { (text(parameter, "name")) } " (" (text(parameter, "in")) ") " (text(parameter, "description")) }
                        } }
                    }
                    @if let Some(responses) = operation["responses"].as_object() {
                        p.hint { "Answers: " @for (code, response) in responses { code { (code) } " " (text(response, "description")) "; " } }
                    }
                }
            }
        }
    };
    page(&app, "API reference", body).into_response()
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or_default()
}

fn anchor(path: &str) -> String {
    path.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}
