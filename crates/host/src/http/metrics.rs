//! `/metrics`: the host's counters, gauges and histograms in the OpenMetrics
//! text format, encoded by prometheus-client (or in the classic Prometheus
//! text format, see `prometheus_text.rs`).
//!
//! The counters live where the work happens (triggers, plugins, sinks, the
//! listener, as atomics); a scrape takes a [`Snapshot`] of them and encodes
//! it through a [`Collector`]. Histograms: plugin call latency, cron
//! lateness, sink delivery time and flow-control (concurrency) waits, all
//! in seconds. Series per trigger are bounded: past [`PER_TRIGGER_AUTO`]
//! triggers (or with `[metrics] per_trigger = false`) trigger counters are
//! summed per kind.

use std::fmt;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet, text,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use super::AppState;
use super::prometheus_text::{CLASSIC, OPENMETRICS, to_classic, wants_openmetrics};
use crate::sink::SinkStats;
use wasmsched_core::histogram::HistogramSnapshot;
use wasmsched_core::trigger::TriggerStats;
use wasmsched_core::trigger::health::HealthSnapshot;
use wasmsched_plugin::{AdmissionStats, PluginStats};

/// With `[metrics] per_trigger` unset, series per trigger are written up
/// to this many triggers; beyond, totals per kind.
pub const PER_TRIGGER_AUTO: usize = 1000;

/// Label pairs of one series.
type Labels = Vec<(&'static str, String)>;

/// Metrics
///
/// Counters per trigger, plugin and sink, histograms of plugin call
/// latency, cron lateness, sink delivery time and flow-control waits: in
/// the OpenMetrics text format to clients that accept it (Prometheus
/// does), else in the classic Prometheus text format 0.0.4.
#[utoipa::path(get, path = "/metrics",
    responses((status = 200, description = "Every metric",
        content(
            (String = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
            (String = "text/plain; version=0.0.4; charset=utf-8"),
        ))))]
pub async fn metrics(State(app): State<AppState>, headers: HeaderMap) -> impl IntoResponse {
    let snapshot = Snapshot::take(&app).await;
    let mut registry = Registry::default();
    registry.register_collector(Box::new(snapshot));
    let mut out = String::new();
    text::encode(&mut out, &registry).expect("writing to a String");
    match wants_openmetrics(&headers) {
        true => ([(header::CONTENT_TYPE, OPENMETRICS)], out),
        false => ([(header::CONTENT_TYPE, CLASSIC)], to_classic(&out)),
    }
}

/// Everything `/metrics` shows, read at one scrape.
#[derive(Debug)]
struct Snapshot {
    /// Per trigger (`trigger`, `kind`) or per kind.
    triggers: Vec<(Labels, TriggerStats)>,
    /// Concurrency waits, summed over triggers.
    flow_wait: Option<HistogramSnapshot>,
    plugins: Vec<(Labels, PluginStats, HistogramSnapshot)>,
    plugin_loads: u64,
    admission: AdmissionStats,
    health: HealthSnapshot,
    sinks: Vec<(Labels, SinkStats, HistogramSnapshot)>,
    broker: (Labels, bool, u64),
    /// Open, cap, shed, refused, timed out.
    connections: [u64; 5],
    rate_limited: Vec<(Labels, u64)>,
    /// Panics caught, by task (`wasmsched_core::supervise`).
    panics: Vec<(Labels, u64)>,
    /// Tasks alive on the runtime (a leak shows here first).
    tasks: u64,
}

impl Snapshot {
    async fn take(app: &AppState) -> Self {
        let host = &app.host;
        let registered = host.triggers().list().await;
        let per_trigger = host
            .config()
            .metrics_per_trigger
            .unwrap_or(registered.len() <= PER_TRIGGER_AUTO);
        let mut triggers: Vec<(Labels, TriggerStats)> = Vec::new();
        let mut flow_wait: Option<HistogramSnapshot> = None;
        for (id, registration) in &registered {
            let trigger = &registration.trigger;
            let kind = trigger.kind().to_string();
            let stats = trigger.stats();
            if let Some(waits) = trigger.state().counters.concurrency_wait() {
                flow_wait = Some(flow_wait.unwrap_or_default().plus(&waits));
            }
            if per_trigger {
                triggers.push((vec![("trigger", id.clone()), ("kind", kind)], stats));
            } else {
                // Bounded: one series per kind, summed.
                match triggers.iter_mut().find(|(l, _)| l[0].1 == kind) {
                    Some((_, total)) => *total = total.plus(&stats),
                    None => triggers.push((vec![("kind", kind)], stats)),
                }
            }
        }
        let plugins = host
            .plugins()
            .list()
            .into_iter()
            .map(|(name, p)| (vec![("plugin", name)], p.stats(), p.latency()))
            .collect();
        let sinks = host
            .sinks()
            .stats()
            .into_iter()
            .map(|(id, stats, time)| (vec![("sink", id)], stats, time))
            .collect();
        let broker = host.broker().health();
        let c = &app.connections;
        let connections = [
            c.open.load(Ordering::Relaxed) as u64,
            c.max.load(Ordering::Relaxed) as u64,
            c.shed.load(Ordering::Relaxed),
            c.refused.load(Ordering::Relaxed),
            c.timed_out.load(Ordering::Relaxed),
        ];
        let rate_limited = app
            .rate_limits
            .refused()
            .into_iter()
            .map(|(label, n)| (vec![label], n))
            .collect();
        Self {
            triggers,
            flow_wait,
            plugins,
            plugin_loads: host.reload_count(),
            admission: host.runtime().admission(),
            health: host.schedule_health(),
            tasks: tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks() as u64,
            panics: wasmsched_core::supervise::panics()
                .into_iter()
                .map(|(task, n)| (vec![("task", task.as_str().to_owned())], n))
                .collect(),
            sinks,
            broker: (
                vec![("broker", broker.kind.to_owned())],
                broker.connected,
                broker.duplicates,
            ),
            connections,
            rate_limited,
        }
    }
}

type TriggerCounter = (&'static str, &'static str, fn(&TriggerStats) -> u64);
type PluginCounter = (&'static str, &'static str, fn(&PluginStats) -> u64);

/// Counter names are given without `_total`: the encoder appends it.
const TRIGGER_COUNTERS: [TriggerCounter; 12] = [
    ("wasmsched_trigger_firings", "Firings per trigger.", |s| {
        s.fires
    }),
    (
        "wasmsched_trigger_errors",
        "Failed firings (factory, filter or publish errors).",
        |s| s.errors,
    ),
    (
        "wasmsched_events_published",
        "Events published per trigger.",
        |s| s.events_published,
    ),
    (
        "wasmsched_filter_accepted",
        "Events a trigger's filter accepted.",
        |s| s.filter_accepted,
    ),
    (
        "wasmsched_filter_rejected",
        "Events a trigger's filter rejected.",
        |s| s.filter_rejected,
    ),
    (
        "wasmsched_trigger_missed",
        "Cron instants that fell while no replica ran the trigger, not run (see the run history).",
        |s| s.missed,
    ),
    (
        "wasmsched_trigger_catch_ups",
        "Cron instants run late, after downtime.",
        |s| s.catch_ups,
    ),
    (
        "wasmsched_flow_deduplicated",
        "Events dropped by the trigger's dedupe (flow control).",
        |s| s.deduplicated,
    ),
    (
        "wasmsched_flow_throttled",
        "Events dropped by the trigger's throttle (flow control).",
        |s| s.throttled,
    ),
    (
        "wasmsched_flow_debounced",
        "Events replaced by a later one under the trigger's debounce.",
        |s| s.debounced,
    ),
    (
        "wasmsched_flow_batched",
        "Events collected into the trigger's batches.",
        |s| s.batched,
    ),
    (
        "wasmsched_flow_concurrency_waits",
        "Firings that waited for a concurrency slot of their key.",
        |s| s.concurrency_waits,
    ),
];

const PLUGIN_COUNTERS: [PluginCounter; 6] = [
    ("wasmsched_plugin_calls", "Calls into each plugin.", |s| {
        s.calls
    }),
    (
        "wasmsched_plugin_errors",
        "Calls where the plugin returned an error.",
        |s| s.errors,
    ),
    (
        "wasmsched_plugin_traps",
        "Calls that trapped (panic, unreachable, ...).",
        |s| s.traps,
    ),
    (
        "wasmsched_plugin_timeouts",
        "Calls stopped at their deadline.",
        |s| s.timeouts,
    ),
    (
        "wasmsched_plugin_memory_exhausted",
        "Calls stopped at their memory cap.",
        |s| s.memory_exhausted,
    ),
    (
        "wasmsched_plugin_bad_data",
        "Calls that returned invalid JSON or topics.",
        |s| s.bad_data,
    ),
];

impl Collector for Snapshot {
    fn encode(&self, mut out: DescriptorEncoder) -> fmt::Result {
        let out = &mut out;
        for (name, help, value) in TRIGGER_COUNTERS {
            let samples = self.triggers.iter().map(|(l, s)| (l, value(s)));
            family(out, name, help, MetricType::Counter, samples)?;
        }
        if let Some(waits) = &self.flow_wait {
            let help =
                "How long firings waited for a concurrency slot of their key, across triggers.";
            histograms(out, "wasmsched_flow_wait", help, [(&Labels::new(), waits)])?;
        }
        for (name, help, value) in PLUGIN_COUNTERS {
            let samples = self.plugins.iter().map(|(l, s, _)| (l, value(s)));
            family(out, name, help, MetricType::Counter, samples)?;
        }
        let help = "Plugin call latency, instantiation included.";
        let latency = self.plugins.iter().map(|(l, _, h)| (l, h));
        histograms(out, "wasmsched_plugin_call", help, latency)?;
        one(
            out,
            "wasmsched_plugin_loads",
            "Plugin loads and reloads that succeeded.",
            MetricType::Counter,
            self.plugin_loads,
        )?;
        let admission = &self.admission;
        one(
            out,
            "wasmsched_plugin_calls_in_flight",
            "Plugin calls running now (at most [plugins] max_calls).",
            MetricType::Gauge,
            admission.in_flight as u64,
        )?;
        one(
            out,
            "wasmsched_plugin_calls_waiting",
            "Plugin calls waiting for a slot now (per-trigger or host-wide limit).",
            MetricType::Gauge,
            admission.waiting,
        )?;
        one(
            out,
            "wasmsched_plugin_calls_queued",
            "Plugin calls that had to wait for a slot.",
            MetricType::Counter,
            admission.queued_total,
        )?;

        let help = "How late cron fires ran after their scheduled instant (jitter excluded).";
        let lateness = [(&Labels::new(), &self.health.lateness)];
        histograms(out, "wasmsched_cron_lateness", help, lateness)?;
        let missed: Vec<(Labels, u64)> = self
            .health
            .missed
            .iter()
            .map(|(reason, n)| (vec![("reason", reason.as_str().to_owned())], *n))
            .collect();
        let help = "Cron instants not run, by reason (outside_window, policy, over_max, paused).";
        family(
            out,
            "wasmsched_cron_missed",
            help,
            MetricType::Counter,
            missed.iter().map(|(l, n)| (l, *n)),
        )?;

        family(
            out,
            "wasmsched_task_panics",
            "Panics caught (defects of wasmsched), by task: event and deferred work is retried or dead-lettered, an http request answered 500.",
            MetricType::Counter,
            self.panics.iter().map(|(l, n)| (l, *n)),
        )?;

        let delivered = self.sinks.iter().map(|(l, s, _)| (l, s.delivered));
        family(
            out,
            "wasmsched_sink_delivered",
            "Events a sink's endpoint took (2xx).",
            MetricType::Counter,
            delivered,
        )?;
        let failed = self.sinks.iter().map(|(l, s, _)| (l, s.failed_attempts));
        family(
            out,
            "wasmsched_sink_failed_attempts",
            "Sink delivery attempts that failed (retried, or a dead letter).",
            MetricType::Counter,
            failed,
        )?;
        let times = self.sinks.iter().map(|(l, _, h)| (l, h));
        histograms(
            out,
            "wasmsched_sink_delivery",
            "How long each sink delivery attempt took, answered or not.",
            times,
        )?;

        let (labels, connected, duplicates) = &self.broker;
        family(
            out,
            "wasmsched_broker_connected",
            "1 while the broker is reachable.",
            MetricType::Gauge,
            [(labels, u64::from(*connected))],
        )?;
        family(
            out,
            "wasmsched_broker_duplicates",
            "Publishes dropped as duplicates of a recent one (another replica's cron firing, a redelivery).",
            MetricType::Counter,
            [(labels, *duplicates)],
        )?;

        one(
            out,
            "wasmsched_runtime_tasks",
            "Tasks alive on the async runtime now.",
            MetricType::Gauge,
            self.tasks,
        )?;
        let [open, max, shed, refused, timed_out] = self.connections;
        one(
            out,
            "wasmsched_http_connections",
            "Connections open now.",
            MetricType::Gauge,
            open,
        )?;
        one(
            out,
            "wasmsched_http_connections_max",
            "The cap on connections open at once ([server] max_connections, fitted to the open-file limit).",
            MetricType::Gauge,
            max,
        )?;
        one(
            out,
            "wasmsched_http_connections_shed",
            "Idle connections closed to admit new ones past the cap.",
            MetricType::Counter,
            shed,
        )?;
        one(
            out,
            "wasmsched_http_connections_refused",
            "New connections refused past the cap, every open one busy.",
            MetricType::Counter,
            refused,
        )?;
        one(
            out,
            "wasmsched_http_connections_timed_out",
            "Connections closed for idling (idle_timeout, or no request within header_timeout).",
            MetricType::Counter,
            timed_out,
        )?;
        let limited = self.rate_limited.iter().map(|(l, n)| (l, *n));
        family(
            out,
            "wasmsched_http_rate_limited",
            "Requests answered 429: per api trigger (rate_limit) or per client address.",
            MetricType::Counter,
            limited,
        )
    }
}

/// One counter or gauge family: a sample per label set.
fn family<'a>(
    out: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (&'a Labels, u64)>,
) -> fmt::Result {
    let mut family = out.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        sample(family.encode_family(labels)?, kind, value)?;
    }
    Ok(())
}

/// One counter or gauge without labels.
fn one(
    out: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    value: u64,
) -> fmt::Result {
    let family = out.encode_descriptor(name, help, None, kind)?;
    sample(family, kind, value)
}

fn sample(encoder: MetricEncoder, kind: MetricType, value: u64) -> fmt::Result {
    match kind {
        MetricType::Counter => ConstCounter::new(value).encode(encoder),
        _ => ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(encoder),
    }
}

/// One histogram family in seconds (`name` gets `_seconds`).
fn histograms<'a>(
    out: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (&'a Labels, &'a HistogramSnapshot)>,
) -> fmt::Result {
    let mut family =
        out.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    for (labels, histogram) in samples {
        // The encoder wants counts per bucket (it sums them), with +Inf.
        let mut buckets = Vec::with_capacity(histogram.buckets.len() + 1);
        let mut below = 0;
        for (bound, cumulative) in &histogram.buckets {
            buckets.push((*bound, cumulative - below));
            below = *cumulative;
        }
        buckets.push((f64::INFINITY, histogram.count - below));
        family
            .encode_family(labels)?
            .encode_histogram::<NoLabelSet>(
                histogram.sum_seconds,
                histogram.count,
                &buckets,
                None,
            )?;
    }
    Ok(())
}
