//! Requests to the API under test, each checked against the document: the
//! body of a request the API took valid under the request schema; the
//! answer's status documented for the operation, its content type
//! documented for the status, a JSON body valid under the (closed) schema.

use std::collections::BTreeSet;
use std::sync::Mutex;

use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Map, Value, json};

use super::closed::{close_inside, seal};

/// One request: a documented path (`template`) with its `{...}` filled by
/// `ids` in order.
pub struct Ask {
    method: Method,
    template: &'static str,
    ids: Vec<String>,
    query: Vec<(&'static str, String)>,
    token: Option<&'static str>,
    headers: Vec<(&'static str, &'static str)>,
    json: Option<Value>,
    raw: Option<(&'static str, String)>,
}

fn ask(method: Method, template: &'static str) -> Ask {
    Ask {
        method,
        template,
        ids: Vec::new(),
        query: Vec::new(),
        token: None,
        headers: Vec::new(),
        json: None,
        raw: None,
    }
}

/// `GET template`.
pub fn get(template: &'static str) -> Ask {
    ask(Method::GET, template)
}

/// `POST template`.
pub fn post(template: &'static str) -> Ask {
    ask(Method::POST, template)
}

/// `DELETE template`.
pub fn delete(template: &'static str) -> Ask {
    ask(Method::DELETE, template)
}

impl Ask {
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.ids.push(id.into());
        self
    }
    pub fn query(mut self, name: &'static str, value: &str) -> Self {
        self.query.push((name, value.to_owned()));
        self
    }
    /// With `Authorization: Bearer <token>`.
    pub fn token(mut self, token: &'static str) -> Self {
        self.token = Some(token);
        self
    }
    pub fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }
    pub fn json(mut self, body: Value) -> Self {
        self.json = Some(body);
        self
    }
    /// `body` sent as `content_type`.
    pub fn body(mut self, content_type: &'static str, body: Value) -> Self {
        self.raw = Some((content_type, body.to_string()));
        self
    }
    fn path(&self) -> String {
        let mut ids = self.ids.iter();
        let mut path = String::new();
        for (i, part) in self.template.split('{').enumerate() {
            match (i, part.split_once('}')) {
                (0, _) | (_, None) => path.push_str(part),
                (_, Some((_, rest))) => {
                    path.push_str(ids.next().expect("an id per placeholder"));
                    path.push_str(rest);
                }
            }
        }
        assert!(ids.next().is_none(), "more ids than placeholders");
        path
    }
}

/// A host's API, its document, and what the test has called.
pub struct Api {
    base: String,
    http: reqwest::Client,
    document: Value,
    /// The document's component schemas, with their objects closed.
    schemas: Map<String, Value>,
    /// `(method, path)` of the operations called.
    called: Mutex<BTreeSet<(String, String)>>,
    /// The groups ([`Api::group`]) an error answer was checked for.
    errors: Mutex<BTreeSet<String>>,
}

impl Api {
    /// The API at `base`, with the document it serves.
    pub async fn new(base: String) -> Self {
        let http = reqwest::Client::new();
        let document: Value = http
            .get(format!("{base}/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
        let mut schemas = document["components"]["schemas"]
            .as_object()
            .unwrap()
            .clone();
        let all = schemas.clone();
        for schema in schemas.values_mut() {
            close_inside(schema, &all);
        }
        Self {
            base,
            http,
            document,
            schemas,
            called: Mutex::default(),
            errors: Mutex::default(),
        }
    }

    pub async fn send(&self, ask: &Ask) -> reqwest::Response {
        let path = ask.path();
        let mut request = self
            .http
            .request(ask.method.clone(), format!("{}{path}", self.base))
            .query(&ask.query);
        if let Some(token) = ask.token {
            request = request.bearer_auth(token);
        }
        for (name, value) in &ask.headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = &ask.json {
            request = request.json(body);
        }
        if let Some((content_type, body)) = &ask.raw {
            request = request
                .header(CONTENT_TYPE, *content_type)
                .body(body.clone());
        }
        request.send().await.unwrap()
    }

    /// Sends `ask` and checks that its status is `status`, documented for
    /// the operation, and that its content type is one documented for that
    /// status: the answer, and the schema documented for its body.
    pub async fn answer(&self, ask: &Ask, status: u16) -> (reqwest::Response, Option<Value>) {
        let response = self.send(ask).await;
        self.documented(ask, response, status)
    }

    /// [`Self::answer`] for a response received.
    fn documented(
        &self,
        ask: &Ask,
        response: reqwest::Response,
        status: u16,
    ) -> (reqwest::Response, Option<Value>) {
        let what = format!("{} {}", ask.method, ask.path());
        assert_eq!(response.status().as_u16(), status, "{what}");
        let method = ask.method.as_str().to_lowercase();
        let operation = &self.document["paths"][ask.template][&method];
        assert!(
            operation.is_object(),
            "{method} {} is not documented",
            ask.template
        );
        let documented = operation["responses"]
            .get(status.to_string())
            .map(|r| self.resolve(r))
            .unwrap_or_else(|| panic!("{what}: {status} is not documented"));
        self.called
            .lock()
            .unwrap()
            .insert((method.clone(), ask.template.to_owned()));
        match status {
            ..300 => self.check_request(ask, operation, &what),
            400.. => {
                let group = self.group(operation);
                self.errors.lock().unwrap().insert(group);
            }
            _ => {}
        }
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let Some(content) = documented["content"].as_object() else {
            return (response, None);
        };
        let (_, media) = content
            .iter()
            .find(|(documented, _)| essence(documented) == essence(&content_type))
            .unwrap_or_else(|| {
                panic!("{what}: answered `{content_type}`, documented: {content:?}")
            });
        (response, Some(media["schema"].clone()))
    }

    /// Checks that a body the API took is one the document describes.
    fn check_request(&self, ask: &Ask, operation: &Value, what: &str) {
        let (content_type, body) = match (&ask.json, &ask.raw) {
            (Some(body), _) => ("application/json", body.clone()),
            (None, Some((content_type, body))) => {
                (*content_type, serde_json::from_str(body).unwrap())
            }
            (None, None) => return,
        };
        let schema = &operation["requestBody"]["content"][content_type]["schema"];
        assert!(
            schema.is_object(),
            "{what}: no {content_type} body documented"
        );
        let errors = self.errors_of(schema, &body);
        assert!(
            errors.is_empty(),
            "{what}: the body sent is not as documented: {errors:#?}"
        );
    }

    /// [`Self::answer`], and its JSON body checked against its schema: the
    /// body (a string if not JSON).
    pub async fn check(&self, ask: Ask, status: u16) -> Value {
        let response = self.send(&ask).await;
        self.checked(&ask, response, status).await
    }

    /// [`Self::check`] for a response received.
    pub async fn checked(&self, ask: &Ask, response: reqwest::Response, status: u16) -> Value {
        let (response, schema) = self.documented(ask, response, status);
        let is_json = response
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|v| essence(v.to_str().unwrap()) == "application/json");
        let text = response.text().await.unwrap();
        match (schema, is_json) {
            (Some(schema), true) => {
                let body: Value = serde_json::from_str(&text).unwrap();
                let what = format!("{} {}: {status}", ask.method, ask.path());
                let errors = self.errors_of(&schema, &body);
                assert!(
                    errors.is_empty(),
                    "{what} is not as documented: {errors:#?}\n{body:#}"
                );
                body
            }
            _ => Value::String(text),
        }
    }

    /// Why `body` does not match `schema` (closed), if it does not.
    pub fn errors_of(&self, schema: &Value, body: &Value) -> Vec<String> {
        let mut root = schema.clone();
        seal(&mut root, &self.schemas);
        let root = match root {
            Value::Object(mut root) => {
                let schemas = Value::Object(self.schemas.clone());
                root.insert("components".into(), json!({ "schemas": schemas }));
                Value::Object(root)
            }
            other => other,
        };
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&root)
            .unwrap();
        validator
            .iter_errors(body)
            .map(|e| format!("{e} at `{}`", e.instance_path()))
            .collect()
    }

    fn resolve(&self, value: &Value) -> Value {
        match value["$ref"].as_str() {
            Some(pointer) => self.document.pointer(&pointer[1..]).unwrap().clone(),
            None => value.clone(),
        }
    }

    /// Who may call an operation: the security schemes it names (`open`:
    /// none).
    fn group(&self, operation: &Value) -> String {
        let Some(requirements) = operation["security"].as_array() else {
            return "open".into();
        };
        let names: Vec<&str> = requirements
            .iter()
            .map(|r| r.as_object().unwrap().keys().next().map_or("none", |k| k))
            .collect();
        names.join(" or ")
    }

    /// Every documented operation was called, and every group with a
    /// documented error had one answered.
    pub fn assert_everything_exercised(&self) {
        let called = self.called.lock().unwrap();
        let errors = self.errors.lock().unwrap();
        let (mut uncalled, mut groups) = (Vec::new(), BTreeSet::new());
        for (path, item) in self.document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                if !called.contains(&(method.clone(), path.clone())) {
                    uncalled.push(format!("{method} {path}"));
                }
                let responses = operation["responses"].as_object().unwrap();
                if responses.keys().any(|status| status.starts_with('4')) {
                    groups.insert(self.group(operation));
                }
            }
        }
        assert!(
            uncalled.is_empty(),
            "documented, never called: {uncalled:?}"
        );
        let unchecked: Vec<_> = groups.difference(&errors).collect();
        assert!(
            unchecked.is_empty(),
            "no error answer checked for: {unchecked:?}"
        );
    }
}

/// A media type without its parameters, lowercased.
fn essence(content_type: &str) -> String {
    let essence = content_type.split(';').next().unwrap_or_default();
    essence.trim().to_ascii_lowercase()
}
