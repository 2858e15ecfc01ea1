//! Logs and traces of `wasmsched run`: the log subscriber (stderr,
//! `RUST_LOG`), and, when `[telemetry] otlp_endpoint` or
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, the OpenTelemetry layer that
//! exports the core's firing spans (see `wasmsched::trace`) over OTLP/HTTP,
//! with the W3C propagator that carries their context on events.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use anyhow::{Context, Result};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::prelude::*;
use wasmsched::config::TelemetryConfig;

/// The standard variables that turn export on without `[telemetry]`.
const ENDPOINT_ENV: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
];

/// The exporter, kept to flush it at exit (none: traces are off).
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// Logs to stderr (`RUST_LOG` overrides the default, `info`) and, if
/// configured, exports traces.
pub fn init(config: &TelemetryConfig) -> Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env()
        // async-nats logs every reconnect attempt at info; the broker
        // adapter reports the connection's state itself.
        .unwrap_or_else(|_| EnvFilter::new("info,async_nats=warn"));
    let logs = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_filter(filter);
    let provider = exporter(config)?;
    // Only the firing spans go to the exporter; with none, nothing wants
    // them and they cost a cached check each.
    let traces = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("wasmsched"))
            // Each of these costs time on every span or every poll of an
            // instrumented future (BENCHMARKS.md, "Tracing overhead").
            .with_threads(false)
            .with_location(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_context_activation(false)
            .with_filter(Targets::new().with_target("wasmsched::trace", tracing::Level::TRACE))
    });
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .init();
    if provider.is_some() {
        wasmsched::trace::install(W3c(TraceContextPropagator::new()));
        tracing::info!("exporting traces over OTLP/HTTP");
    }
    Ok(Telemetry { provider })
}

/// The OTLP/HTTP exporter `config` (or the environment) asks for.
fn exporter(config: &TelemetryConfig) -> Result<Option<SdkTracerProvider>> {
    let from_env = ENDPOINT_ENV
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
    if config.otlp_endpoint.is_none() && !from_env {
        return Ok(None);
    }
    let mut exporter = SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary);
    if let Some(base) = &config.otlp_endpoint {
        exporter = exporter.with_endpoint(format!("{}/v1/traces", base.trim_end_matches('/')));
    }
    let exporter = exporter
        .build()
        .context("[telemetry] otlp_endpoint: cannot build the OTLP exporter")?;
    let mut resource = Resource::builder();
    match &config.service_name {
        Some(name) => resource = resource.with_service_name(name.clone()),
        None if std::env::var_os("OTEL_SERVICE_NAME").is_none() => {
            resource = resource.with_service_name("wasmsched")
        }
        None => {}
    }
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build(),
    ))
}

impl Telemetry {
    /// Exports the spans still buffered (blocking: call it off the async
    /// runtime, at exit).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown()
        {
            eprintln!("exporting the last traces failed: {error}");
        }
    }
}

/// The W3C trace context propagator, over event headers.
struct W3c(TraceContextPropagator);

impl wasmsched::trace::Propagator for W3c {
    fn continue_from(&self, span: &Span, headers: &BTreeMap<String, String>) {
        let parent = self.0.extract(&Headers(headers));
        // Fails only if the span was entered already (it never is here).
        let _ = span.set_parent(parent);
    }

    fn inject(&self, span: &Span, headers: &mut BTreeMap<String, String>) {
        self.0
            .inject_context(&span.context(), &mut HeadersMut(headers));
    }
}

struct Headers<'a>(&'a BTreeMap<String, String>);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let value = self.0.get(key).map(String::as_str)?;
        // An oversized trace state is not carried on to every event.
        (key != wasmsched::trace::TRACESTATE || value.len() <= wasmsched::trace::MAX_TRACESTATE)
            .then_some(value)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

struct HeadersMut<'a>(&'a mut BTreeMap<String, String>);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        // The propagator writes an empty `tracestate` when there is none.
        if !value.is_empty() {
            self.0.insert(key.to_owned(), value);
        }
    }
}
