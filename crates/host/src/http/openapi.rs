//! The OpenAPI document of the HTTP API (`/openapi.json`, rendered by the
//! dashboard's `/docs`), derived from the code that serves it, so that it
//! cannot drift from it:
//!
//! - paths, parameters, request bodies and answers from each handler's
//!   `#[utoipa::path]`, and their schemas from the types the handlers
//!   (de)serialize (`ToSchema`); the router registers the same handlers
//!   ([`super::api_routes`]);
//! - who may call what (bearer token `security`, and the 401) from the
//!   group [`super::router`] gates each route with; the 403 and 429 of the
//!   middleware in front of every route but `/healthz`;
//! - the api triggers, served by the fallback at paths their configs
//!   choose, at their default paths `/api/triggers/{id}/trigger` and
//!   `/api/triggers/{id}/status`.
//!
//! The dashboard's HTML pages (`/`, `/triggers/...`, `/docs`, ...) are not
//! part of the API and not described.

use std::sync::LazyLock;

use serde_json::Value;
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Components, Header, Ref, RefOr};

use super::error::{ErrorBody, error_response};
use super::{Access, api_triggers};
use crate::app::Tokens;
use crate::app::tokens::opened_by;
use crate::config::TokenKind;

/// The document as JSON, built once, with what utoipa's derive cannot say
/// added ([`super::schemas`]).
static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
    let mut document = serde_json::to_value(document()).expect("the document serializes");
    let schemas = document["components"]["schemas"].as_object_mut();
    super::schemas::refine(schemas.expect("the document has schemas"));
    document
});

/// The OpenAPI 3.1 document of the HTTP API, for a host with every token
/// configured.
pub fn openapi_document() -> Value {
    DOCUMENT.clone()
}

/// The document as a host with `tokens` serves it: each guarded operation
/// names the configured tokens that open it, and one that no configured
/// token guards is open (no `security`, no 401), as [`Tokens::check`] has
/// it (`/metrics` without a metrics token, every group without any token).
pub fn served_document(tokens: &Tokens) -> Value {
    let mut document = openapi_document();
    let kinds = [
        TokenKind::Admin,
        TokenKind::Publish,
        TokenKind::Read,
        TokenKind::Metrics,
    ];
    let paths = document["paths"]
        .as_object_mut()
        .expect("the document has paths");
    for operation in paths.values_mut().filter_map(Value::as_object_mut) {
        for operation in operation.values_mut() {
            // A group's own token comes first (`opened_by`).
            let first = operation["security"][0]
                .as_object()
                .and_then(|r| r.keys().next());
            let Some(group) = first.and_then(|key| kinds.into_iter().find(|k| k.key() == key))
            else {
                continue;
            };
            let openers = tokens.openers(group);
            let operation = operation
                .as_object_mut()
                .expect("an operation is an object");
            if openers.is_empty() {
                operation.remove("security");
                operation["responses"]
                    .as_object_mut()
                    .map(|r| r.remove("401"));
            } else {
                let requirements = openers.iter().map(|k| serde_json::json!({k.key(): []}));
                operation.insert("security".into(), requirements.collect());
            }
        }
    }
    document
}

/// What the document says of itself, and the schemas the responses added
/// here refer to.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "wasmsched",
        description = "Schedule and route events; user logic runs as sandboxed WebAssembly \
            components. A bearer token guards each group of routes when configured (`[server]` \
            in wasmsched.toml); errors are `{\"error\": \"...\"}`."
    ),
    components(schemas(ErrorBody))
)]
struct Base;

/// The api triggers' routes, at their default paths.
#[derive(OpenApi)]
#[openapi(paths(api_triggers::trigger, api_triggers::status))]
struct ApiTriggers;

fn document() -> utoipa::openapi::OpenApi {
    let mut document = Base::openapi();
    let parts = super::api_routes()
        .into_iter()
        .map(|(who, routes)| (who, routes.into_openapi()))
        .chain([(Access::Open, ApiTriggers::openapi())]);
    for (who, mut part) in parts {
        for operation in part.paths.paths.values_mut().flat_map(operations) {
            describe_access(operation, who);
        }
        document.merge(part);
    }
    let components = document.components.get_or_insert_with(Components::new);
    components.security_schemes.extend(security_schemes());
    components.responses.extend(shared_responses());
    document
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
        &mut item.query,
    ]
    .into_iter()
    .flatten()
}

/// Adds to `operation` what the middleware in front of it does: the
/// tokens that open it (and its 401), the cross-site and rate-limit
/// refusals.
fn describe_access(operation: &mut Operation, who: Access) {
    // Grouped by who may call them rather than by module.
    operation.tags = None;
    let responses = &mut operation.responses.responses;
    let mut refer = |status: &str, name: &str| {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
    };
    if let Access::Token(group) = who {
        refer("401", "Unauthorized");
        let requirements = opened_by(group)
            .into_iter()
            .map(|token| SecurityRequirement::new(token.key(), Vec::<String>::new()));
        operation.security = Some(requirements.collect());
    }
    if who != Access::Always {
        refer("403", "Forbidden");
        refer("429", "TooManyRequests");
    }
}

/// A scheme per token (named by its key in `[server]`), and the api
/// triggers' own `auth`.
fn security_schemes() -> Vec<(String, RefOr<SecurityScheme>)> {
    let bearer = |description: String| {
        let http = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(description));
        RefOr::T(SecurityScheme::Http(http.build()))
    };
    let tokens = [
        (TokenKind::Admin, "every route"),
        (TokenKind::Publish, "`POST /api/events`"),
        (
            TokenKind::Read,
            "the event stream, run history and dead letters",
        ),
        (TokenKind::Metrics, "`/metrics` (open without one)"),
    ];
    let mut schemes: Vec<_> = tokens
        .into_iter()
        .map(|(token, opens)| {
            let description = format!(
                "`{}` of `[server]`: opens {opens}. Not asked for while not configured.",
                token.key()
            );
            (token.key().to_owned(), bearer(description))
        })
        .collect();
    schemes.push((
        "trigger_bearer".into(),
        bearer("An api trigger's `auth.bearer_token`.".into()),
    ));
    let signature = ApiKeyValue::with_description(
        "X-Hub-Signature-256",
        "An api trigger's `auth.hmac_secret`: `sha256=<hex HMAC-SHA256 of the raw body>`, in \
         the trigger's `auth.signature_header` (default `X-Hub-Signature-256`).",
    );
    schemes.push((
        "trigger_signature".into(),
        RefOr::T(SecurityScheme::ApiKey(ApiKey::Header(signature))),
    ));
    schemes
}

/// The refusals of the middleware, referred to by every operation behind it.
fn shared_responses() -> Vec<(String, RefOr<utoipa::openapi::Response>)> {
    let string = utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .build();
    let unauthorized = error_response("No bearer token, or one that does not open this route")
        .header("WWW-Authenticate", Header::new(string.clone()));
    let forbidden = error_response(
        "Refused: a request that changes something sent by a page of another site, or a host \
         with no admin token asked for by a name other than localhost",
    );
    let limited =
        error_response("Over the per-client rate limit (`[server] rate_limit_per_client`)")
            .header("Retry-After", Header::new(string));
    [
        ("Unauthorized", unauthorized),
        ("Forbidden", forbidden),
        ("TooManyRequests", limited),
    ]
    .into_iter()
    .map(|(name, response)| (name.to_owned(), RefOr::T(response.build())))
    .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_operation_has_a_unique_id_and_a_summary() {
        let document = openapi_document();
        let mut ids = BTreeSet::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let id = operation["operationId"].as_str().unwrap();
                assert!(ids.insert(id.to_owned()), "{method} {path}: `{id}` again");
                assert!(operation["summary"].is_string(), "{method} {path}");
            }
        }
    }

    #[test]
    fn every_reference_resolves() {
        let document = openapi_document();
        let text = document.to_string();
        for reference in text.split("\"$ref\":\"").skip(1) {
            let pointer = reference.split('"').next().unwrap();
            let pointer = pointer.strip_prefix('#').unwrap();
            assert!(document.pointer(pointer).is_some(), "{pointer} dangles");
        }
    }

    #[test]
    fn a_host_serves_the_tokens_it_asks_for() {
        let security = |document: &Value, path: &str, method: &str| {
            document["paths"][path][method]["security"].clone()
        };
        let open = served_document(&Tokens::default());
        for (path, method) in [("/api/admin/triggers", "get"), ("/api/events", "post")] {
            assert!(security(&open, path, method).is_null(), "{method} {path}");
            let responses = &open["paths"][path][method]["responses"];
            assert!(responses["401"].is_null(), "{method} {path}");
        }
        let admin_only = served_document(&Tokens::new([(TokenKind::Admin, "a".to_owned())]));
        let publish = security(&admin_only, "/api/events", "post");
        assert_eq!(publish, serde_json::json!([{ "admin_token": [] }]));
        // Without a metrics token, /metrics is open.
        assert!(security(&admin_only, "/metrics", "get").is_null());
        let api_trigger = security(&admin_only, "/api/triggers/{id}/trigger", "post");
        assert_eq!(
            api_trigger,
            security(&openapi_document(), "/api/triggers/{id}/trigger", "post")
        );
    }

    #[test]
    fn guarded_routes_name_their_tokens() {
        let document = openapi_document();
        let security =
            |path: &str, method: &str| document["paths"][path][method]["security"].clone();
        assert_eq!(
            security("/api/admin/triggers", "get"),
            serde_json::json!([{ "admin_token": [] }])
        );
        assert_eq!(
            security("/api/events", "post"),
            serde_json::json!([{ "publish_token": [] }, { "admin_token": [] }])
        );
        assert!(security("/healthz", "get").is_null());
        let health = &document["paths"]["/healthz"]["get"]["responses"];
        assert!(
            health["429"].is_null(),
            "/healthz is outside the rate limit"
        );
    }
}
