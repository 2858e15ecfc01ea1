//! One served host per property (so a panic on a server thread is the
//! property's own), on its own runtime, and the checks every answer gets:
//! the connection holds (a dropped one is a handler that panicked), the
//! status is not 5xx, an error is JSON `{"error": "..."}`.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::Value;
use wasmsched::broker::{SubscriberKind, Subscription};
use wasmsched::host::Host;
use wasmsched::{Event, TopicPattern};

use super::edges::short;
use super::harness::{install, mark, panics_since};
use wasmsched_test_support::served::{Served, serve};

pub struct Fixture {
    pub rt: tokio::runtime::Runtime,
    pub base: String,
    pub client: reqwest::Client,
    threads: String,
    served: Served,
    /// Where the panic log was when the last case ended, and its input.
    last: Mutex<(usize, String)>,
}

/// An answer: status, body as JSON (`null` if not JSON), body as text.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub json: Value,
    pub text: String,
}

impl Answer {
    /// The `error` of a JSON error body.
    pub fn error(&self) -> &str {
        self.json["error"].as_str().unwrap_or_default()
    }
}

impl Fixture {
    /// A host (wasmsched_test_support::served: `nightly`, cron; `hook`, api) whose
    /// runtime threads are named `host-<name>`.
    pub fn start(name: &str) -> Self {
        install();
        let threads = format!("host-{name}");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(threads.clone())
            .enable_all()
            .build()
            .unwrap();
        let served = rt.block_on(serve(""));
        Self {
            rt,
            base: served.base.clone(),
            // A connection per request: a server closing a kept-alive
            // connection (after a refusal) is no failure of the host.
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            threads,
            served,
            last: Mutex::new((mark(), String::new())),
        }
    }

    /// Runs one case on the runtime: fails if the host panicked since the
    /// last case ended (a task of that case panicking late: the message
    /// names its input) or during this one.
    pub fn case<V: Debug, F: Future<Output = Result<(), TestCaseError>>>(
        &self,
        value: V,
        run: impl FnOnce(V) -> F,
    ) -> Result<(), TestCaseError> {
        let (last_mark, last_input) = self.last.lock().unwrap().clone();
        let input = short(&format!("{value:?}"), 600);
        let start = mark();
        let stray = panics_since(last_mark, &self.threads);
        let result = match stray.is_empty() {
            true => self
                .rt
                .block_on(run(value))
                .and_then(|()| self.no_host_panic(start, "after the case")),
            false => Err(TestCaseError::fail(format!(
                "the host panicked after the case {last_input}: {}",
                stray.join("; ")
            ))),
        };
        *self.last.lock().unwrap() = (mark(), input);
        result
    }

    pub fn host(&self) -> &Arc<Host> {
        &self.served.host
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Removes the triggers added over the admin API, so that what a
    /// failed case left cannot fail the next.
    pub async fn forget_admin_triggers(&self) {
        let host = self.host();
        for id in host.triggers().list().await.into_keys() {
            let added = host
                .triggers()
                .config(&id)
                .is_some_and(|c| c.declared_in == wasmsched::config::DeclaredIn::AdminApi);
            if added {
                let _ = host.triggers().remove(&id).await;
            }
        }
    }

    /// Where the panic log is (see [`Self::no_host_panic`]).
    pub fn mark(&self) -> usize {
        mark()
    }

    /// Fails if a thread of this host panicked since `mark`.
    pub fn no_host_panic(&self, mark: usize, what: &str) -> Result<(), TestCaseError> {
        let panics = panics_since(mark, &self.threads);
        match panics.is_empty() {
            true => Ok(()),
            false => Err(TestCaseError::fail(format!(
                "{what}: the host panicked: {}",
                panics.join("; ")
            ))),
        }
    }

    /// Sends `request`: its answer, or a failure if the connection dropped
    /// (the handler panicked) or the status is 5xx.
    pub async fn send(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Answer, TestCaseError> {
        let start = self.mark();
        let response = match request.send().await {
            Ok(response) => response,
            // What the client cannot send (a 1 MiB URL) says nothing of the host.
            Err(error) if error.is_builder() => {
                return Err(TestCaseError::reject(format!("cannot send it: {error}")));
            }
            Err(error) => {
                let panics = panics_since(start, &self.threads).join("; ");
                return Err(TestCaseError::fail(format!(
                    "{what}: no answer ({error:?}); host panics: [{panics}]"
                )));
            }
        };
        let status = response.status().as_u16();
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(error) => {
                let panics = panics_since(start, &self.threads).join("; ");
                return Err(TestCaseError::fail(format!(
                    "{what}: {status}, then the body broke off ({error:?}); host panics: [{panics}]"
                )));
            }
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let answer = Answer {
            status,
            json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            text,
        };
        prop_assert!(
            status < 500,
            "{}: {} {}; host panics: [{}]",
            what,
            status,
            short(&answer.text, 400),
            panics_since(start, &self.threads).join("; ")
        );
        self.no_host_panic(start, what)?;
        Ok(answer)
    }

    /// [`Self::send`], and a 4xx must be JSON `{"error": "..."}`.
    pub async fn send_api(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Answer, TestCaseError> {
        let answer = self.send(what, request).await?;
        if answer.status >= 400 {
            prop_assert!(
                answer.json["error"].is_string(),
                "{}: {} without a JSON error: {}",
                what,
                answer.status,
                short(&answer.text, 300)
            );
        }
        Ok(answer)
    }

    /// Watches every event published on this host.
    pub async fn observe(&self) -> Subscription {
        self.host()
            .broker()
            .subscribe(&TopicPattern::new("**").unwrap(), SubscriberKind::Observer)
            .await
            .unwrap()
    }
}

/// The first event on `subscription` that `wanted` picks, within 10 s.
pub async fn seen(
    subscription: &mut Subscription,
    wanted: impl Fn(&Event) -> bool,
) -> Option<Event> {
    let look = async {
        loop {
            let event = subscription.next().await?.event;
            if wanted(&event) {
                return Some(event);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), look)
        .await
        .ok()
        .flatten()
}

/// `text` as one path segment.
pub fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
