//! Distributed tracing of firings: the spans a firing makes and the W3C
//! trace context (`traceparent`) they continue from and hand on.
//!
//! Spans (all `tracing` spans at TRACE level, target `wasmsched::trace`):
//!
//! | span | around | parent |
//! |---|---|---|
//! | `event` | an event trigger handling one delivered event | the event's `traceparent` header |
//! | `api` | an api trigger's HTTP call | the request's `traceparent` header |
//! | `filter` | the filter call | `event` |
//! | `firing` | one firing: factory and publishes | `event`, `api`, or none (cron) |
//! | `factory` | the factory call (plugin or closure) | `firing` |
//! | `publish` | publishing one event | `firing` |
//! | `deliver` | one sink delivery attempt (an HTTP POST) | the sink's `factory` |
//!
//! Each published event carries its `publish` span's context as the
//! `traceparent` header (and `tracestate`), so the event triggers it
//! reaches, on this replica or another through JetStream, join the trace.
//!
//! Off by default and free when off: nothing subscribes to TRACE spans of
//! this target unless the binary exports traces (`[telemetry]`), so the
//! span macros return disabled spans after a cached check, and no header
//! is read or written. The binary installs a [`Propagator`] (OpenTelemetry's
//! W3C propagator) together with the exporter; the core only calls it.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use tracing::Span;

/// The W3C trace context headers carried on events.
pub const TRACEPARENT: &str = "traceparent";
/// Vendor-specific trace state, carried next to [`TRACEPARENT`].
pub const TRACESTATE: &str = "tracestate";

/// Reads and writes the trace context of spans (implemented by the
/// binary's OpenTelemetry layer).
pub trait Propagator: Send + Sync + 'static {
    /// Makes `span` continue the trace whose context `headers` carry.
    fn continue_from(&self, span: &Span, headers: &BTreeMap<String, String>);
    /// Writes `span`'s context into `headers`.
    fn inject(&self, span: &Span, headers: &mut BTreeMap<String, String>);
}

static PROPAGATOR: OnceLock<Box<dyn Propagator>> = OnceLock::new();

/// Installs the propagator for the process (once: tracing is global, like
/// the `tracing` subscriber); false if one was installed already.
pub fn install(propagator: impl Propagator) -> bool {
    PROPAGATOR.set(Box::new(propagator)).is_ok()
}

/// Whether traces are exported (a propagator is installed).
pub fn enabled() -> bool {
    PROPAGATOR.get().is_some()
}

/// The longest `tracestate` carried on (W3C allows 32 members; 512 bytes is
/// what the spec asks implementations to keep at least).
pub const MAX_TRACESTATE: usize = 512;

/// Makes `span` a child of the context in `headers`, if tracing is on and
/// they carry one.
pub fn continue_from(span: &Span, headers: &BTreeMap<String, String>) {
    if let Some(propagator) = PROPAGATOR.get()
        && !span.is_disabled()
        && headers.contains_key(TRACEPARENT)
    {
        propagator.continue_from(span, headers);
    }
}

/// Writes `span`'s context into `headers`, if tracing is on.
pub fn inject(span: &Span, headers: &mut BTreeMap<String, String>) {
    if let Some(propagator) = PROPAGATOR.get()
        && !span.is_disabled()
    {
        propagator.inject(span, headers);
    }
}

/// The span of an event trigger handling `event`, continuing its trace.
pub fn event_span(trigger: &str, event: &crate::event::Event) -> Span {
    let span = tracing::trace_span!(
        target: "wasmsched::trace",
        "event",
        otel.name = %format_args!("event {trigger}"),
        otel.kind = "consumer",
        trigger,
        topic = %event.topic,
        event.id = %event.id,
    );
    continue_from(&span, &event.headers);
    span
}

/// The span of an api trigger's call, continuing the caller's trace
/// (`headers`: the request's trace context headers).
pub fn api_span(trigger: &str, headers: &BTreeMap<String, String>) -> Span {
    let span = tracing::trace_span!(
        target: "wasmsched::trace",
        "api",
        otel.name = %format_args!("call {trigger}"),
        otel.kind = "server",
        trigger,
    );
    continue_from(&span, headers);
    span
}

/// The trace context headers (`traceparent`, `tracestate`) among
/// `headers`, when tracing is on and they are well-formed: a
/// `traceparent` of version `00` (55 characters), a `tracestate` of at
/// most [`MAX_TRACESTATE`] bytes (else dropped). Nothing when off.
pub fn context_headers<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> BTreeMap<String, String> {
    if !enabled() {
        return BTreeMap::new();
    }
    let mut context = BTreeMap::new();
    for (name, value) in headers {
        let Ok(value) = std::str::from_utf8(value) else {
            continue;
        };
        if name.eq_ignore_ascii_case(TRACEPARENT) && is_traceparent(value) {
            context.insert(TRACEPARENT.to_owned(), value.to_owned());
        } else if name.eq_ignore_ascii_case(TRACESTATE) && value.len() <= MAX_TRACESTATE {
            context.insert(TRACESTATE.to_owned(), value.to_owned());
        }
    }
    if !context.contains_key(TRACEPARENT) {
        context.clear();
    }
    context
}

/// `00-<32 hex>-<16 hex>-<2 hex>`.
fn is_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex =
        |part: &str, len: usize| part.len() == len && part.bytes().all(|b| b.is_ascii_hexdigit());
    parts.len() == 4
        && parts[0] == "00"
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
}

/// The span of one firing of `trigger`.
pub fn firing_span(trigger: &str, kind: crate::firing::TriggerKind) -> Span {
    tracing::trace_span!(
        target: "wasmsched::trace",
        "firing",
        otel.name = %format_args!("fire {trigger}"),
        trigger,
        kind = kind.as_str(),
        events = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
    )
}

/// The span of a plugin or closure call: `filter` or `factory`; `plugin`
/// names the plugin (none: a native closure), asked only when tracing.
pub fn call_span(what: &'static str, plugin: impl FnOnce() -> Option<String>) -> Span {
    let span = tracing::trace_span!(
        target: "wasmsched::trace",
        "call",
        otel.name = what,
        plugin = tracing::field::Empty,
    );
    if !span.is_disabled() {
        span.record("plugin", plugin().as_deref().unwrap_or("native"));
    }
    span
}

/// The span of publishing `event`; its context goes into the event's
/// headers.
pub fn publish_span(event: &mut crate::event::Event) -> Span {
    let span = tracing::trace_span!(
        target: "wasmsched::trace",
        "publish",
        otel.name = %format_args!("publish {}", event.topic),
        otel.kind = "producer",
        topic = %event.topic,
        event.id = %event.id,
    );
    inject(&span, &mut event.headers);
    span
}

/// The span of one sink delivery attempt to `url` (shown redacted).
pub fn deliver_span(sink_url: &str) -> Span {
    tracing::trace_span!(
        target: "wasmsched::trace",
        "deliver",
        otel.name = "deliver",
        otel.kind = "client",
        url = sink_url,
        otel.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
    )
}

/// Marks `span` (a `firing` or `deliver`) as failed with `error`.
pub fn record_error(span: &Span, error: &dyn std::fmt::Display) {
    if !span.is_disabled() {
        span.record("otel.status_code", "ERROR");
        span.record("otel.status_description", tracing::field::display(error));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_traceparents_pass() {
        assert!(is_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        for bad in [
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-zzf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "",
        ] {
            assert!(!is_traceparent(bad), "{bad}");
        }
    }
}
