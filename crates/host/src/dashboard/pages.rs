//! The overview (health and the triggers, paged), a trigger's page (spec,
//! schedule, history, timeline, actions) and the plugins page.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use super::{empty, not_found, page, raw, time, timeline};
use crate::app::AppState;
use crate::app::views::{TriggerView, view};
use crate::host::PluginChangeKind;
use wasmsched_core::firing::TriggerKind;
use wasmsched_core::state::Run;

/// Triggers per page of the overview.
const PER_PAGE: usize = 100;
/// Runs shown on a trigger's page (and drawn on its timeline).
const RUNS_SHOWN: usize = 200;

/// The overview's query: which page of triggers.
#[derive(Deserialize)]
pub struct Paging {
    page: Option<usize>,
}

/// `GET /`: health, counts, problems, and the triggers (100 a page).
pub async fn overview(State(app): State<AppState>, Query(paging): Query<Paging>) -> Response {
    let registered = app.host.triggers().list().await;
    let total = registered.len();
    let pages = total.div_ceil(PER_PAGE).max(1);
    let current = paging.page.unwrap_or(1).clamp(1, pages);
    let mut views = Vec::new();
    for (id, registration) in registered
        .iter()
        .skip((current - 1) * PER_PAGE)
        .take(PER_PAGE)
    {
        if let Some(config) = app.host.triggers().config(id) {
            views.push(view(&app, id, registration, &config).await);
        }
    }
    let broker = app.host.broker().health();
    let problems = app.host.problems();
    let failing_plugins: Vec<(String, String)> = app.host.plugins().errors().into_iter().collect();
    let body = html! {
        section.cards aria-label="Health" {
            div.card { h2 { "Broker" } p { (broker.kind) " · " @if broker.connected { "connected" } @else { strong.bad { "unreachable" } } } }
            div.card { h2 { "Triggers" } p { (total) " registered" } }
            div.card { h2 { "Plugins" } p { (app.host.plugins().list().len()) " loaded" @if !failing_plugins.is_empty() { " · " strong.bad { (failing_plugins.len()) " failing" } } } }
        }
        @if !problems.is_empty() {
            section aria-label="Problems" {
                h2 { "Problems" }
                ul.problems { @for problem in &problems { li { (problem) } } }
            }
        }
        @for (name, error) in &failing_plugins {
            p.error { "plugin " a href="/plugins" { (name) } ": " (error) }
        }
        section aria-label="Triggers" {
            h2 { "Triggers" }
            @if views.is_empty() {
                (empty("No triggers yet", html! { "add one in wasmsched.toml or " code { "POST /api/admin/triggers" } "." }))
            } @else {
                (triggers_table(&views))
                @if pages > 1 {
                    nav.paging aria-label="Pages" {
                        @if current > 1 { a href={ "/?page=" (current - 1) } rel="prev" { "← previous" } }
                        span { "page " (current) " of " (pages) }
                        @if current < pages { a href={ "/?page=" (current + 1) } rel="next" { "next →" } }
                    }
                }
            }
        }
    };
    page(&app, "Overview", body).into_response()
}

fn state(view: &TriggerView) -> &'static str {
    match (view.paused, view.running) {
        (true, _) => "paused",
        (false, true) => "running",
        (false, false) => "stopped",
    }
}

fn triggers_table(views: &[TriggerView]) -> Markup {
    html! {
        div.scroll {
            table.triggers {
                thead { tr { th { "Trigger" } th { "Kind" } th { "State" } th { "Next fire" } th { "Fires" } th { "Errors" } th { "Actions" } } }
                tbody {
                    @for v in views {
                        tr data-trigger=(v.id) {
                            td { a href={ "/triggers/" (v.id) } { (v.id) } br; small { (v.topic) } }
                            td { (v.kind) }
                            td { span class={ "state " (state(v)) } { (state(v)) } }
                            td { (next_fire(v)) }
                            td.num { (v.fire_count) }
                            td.num { (v.error_count) }
                            td { (actions(v, "/")) }
                        }
                    }
                }
            }
        }
    }
}

fn next_fire(view: &TriggerView) -> Markup {
    let parsed = view
        .next_fire
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
    match parsed {
        Some(at) => html! {
            (time(at.with_timezone(&Utc)))
            @if let Some(zone) = &view.timezone {
                br; small { (at.with_timezone(&zone.parse::<chrono_tz::Tz>().unwrap_or(chrono_tz::UTC)).format("%H:%M %Z")) " in " (zone) }
            }
        },
        None => html! { "—" },
    }
}

/// Pause or resume, and run now, as forms posting back to `back`.
fn actions(view: &TriggerView, back: &str) -> Markup {
    let base = format!("/triggers/{}", view.id);
    html! {
        div.actions {
            @if view.paused {
                form method="post" action={ (base) "/resume" } { input type="hidden" name="back" value=(back); button type="submit" aria-label={ "Resume " (view.id) } { "Resume" } }
            } @else {
                form method="post" action={ (base) "/pause" } { input type="hidden" name="back" value=(back); button type="submit" aria-label={ "Pause " (view.id) } { "Pause" } }
            }
            form method="post" action={ (base) "/run" } { input type="hidden" name="back" value=(back); button type="submit" aria-label={ "Run " (view.id) " now" } { "Run now" } }
        }
    }
}

/// `GET /triggers/{id}`.
pub async fn trigger(State(app): State<AppState>, Path(id): Path<String>) -> Response {
    let (Some(registration), Some(config)) = (
        app.host.triggers().registration(&id).await,
        app.host.triggers().config(&id),
    ) else {
        return not_found(&app, format!("No trigger `{id}` is registered."));
    };
    let view = view(&app, &id, &registration, &config).await;
    let runs: Vec<Run> = app
        .host
        .triggers()
        .runs(&id, RUNS_SHOWN)
        .await
        .unwrap_or_default();
    let schedule = view.schedule.clone();
    let now = Utc::now();
    let body = html! {
        (actions(&view, &format!("/triggers/{id}")))
        dl.spec {
            dt { "Kind" } dd { (view.kind) }
            dt { "State" } dd { span class={ "state " (state(&view)) } { (state(&view)) } }
            dt { "Topic" } dd { code { (view.topic) } }
            @if let Some(plugin) = &view.plugin { dt { "Plugin" } dd { a href="/plugins" { (plugin) } } }
            @if let Some(path) = &view.path { dt { "Path" } dd { code { "POST " (path) "/trigger" } } }
            @if let Some(source) = &view.source { dt { "Source" } dd { code { (source) } } }
            @if let Some(jitter) = &view.jitter { dt { "Jitter" } dd { (jitter) } }
            dt { "Declared in" } dd { (view.declared_in) }
            dt { "Fires / errors" } dd { (view.fire_count) " / " (view.error_count) }
            dt { "Events published" } dd { (view.stats.events_published) }
            @if view.kind == TriggerKind::Cron { dt { "Missed / caught up" } dd { (view.stats.missed) " / " (view.stats.catch_ups) } }
        }
        @if let Some(flow) = &view.flow {
            section aria-label="Flow control" {
                h2 { "Flow control" }
                p { code { (serde_json::to_string(flow).unwrap_or_default()) } }
                dl.spec {
                    dt { "Deduplicated" } dd { (view.stats.deduplicated) }
                    dt { "Throttled" } dd { (view.stats.throttled) }
                    dt { "Debounced" } dd { (view.stats.debounced) }
                    dt { "Batched" } dd { (view.stats.batched) }
                    dt { "Waited for a concurrency slot" } dd { (view.stats.concurrency_waits) }
                }
            }
        }
        @if let Some(schedule) = &schedule {
            section aria-label="Schedule" {
                h2 { "Schedule" }
                p { code { (schedule.expression()) } " in " (schedule.zone().name()) ": " (schedule.describe()) }
                h3 { "Next fires" }
                ol { @for at in schedule.fires_after(now).take(5) { li { (time(at)) } } }
                h3 { "Last 24 hours" }
                figure.timeline {
                    (raw(timeline::svg(schedule, &runs, now)))
                    figcaption { "Top: scheduled instants. Bottom: runs, placed when they began and joined to their instant (green ok, red error or timeout, grey missed or skipped, drawn at the instant)." }
                }
            }
        }
        section aria-label="Run history" {
            h2 { "Run history" }
            @if runs.is_empty() {
                (empty("No runs recorded yet", html! { "they appear here after the trigger fires (keep history with a [state] store)." }))
            } @else {
                div.scroll {
                    table.runs {
                        thead { tr { th { "Instant" } th { abbr title="How long after its instant the run began" { "Began" } } th { "Outcome" } th { "Took" } th { "Events" } th { "Error" } } }
                        tbody {
                            @for run in &runs {
                                tr {
                                    td { (time(run.instant)) }
                                    td.num { (delay(run)) }
                                    td { span class={ "outcome " (run.outcome.as_str()) } { (run.outcome.as_str()) } }
                                    td.num { (format!("{:.1} ms", run.duration_ms)) }
                                    td { @for event in &run.events { a.event href={ "/events/" (event) } title=(event) { code { (event.to_string()[24..].to_owned()) } } " " } }
                                    td { (run.error.as_deref().unwrap_or("")) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page(&app, &format!("Trigger {id}"), body).into_response()
}

/// How long after its instant a run began (`+0.02 s`), if it fired.
fn delay(run: &Run) -> String {
    run.started
        .map(|started| {
            let seconds = (started - run.instant).num_milliseconds() as f64 / 1000.0;
            format!("{seconds:+.2} s")
        })
        .unwrap_or_default()
}

/// Where an action's form says to go back to.
#[derive(Deserialize)]
pub struct Back {
    back: Option<String>,
}

fn back_to(back: Option<String>, id: &str) -> String {
    match back {
        Some(back) => super::session::local_path(Some(back)),
        None => format!("/triggers/{id}"),
    }
}

/// `POST /triggers/{id}/pause`.
pub async fn pause(
    State(app): State<AppState>,
    Path(id): Path<String>,
    axum::Form(back): axum::Form<Back>,
) -> Response {
    let paused = app.host.triggers().pause(&id).await;
    done(
        &app,
        paused.map_err(|e| e.to_string()),
        back_to(back.back, &id),
    )
}

/// `POST /triggers/{id}/resume`.
pub async fn resume(
    State(app): State<AppState>,
    Path(id): Path<String>,
    axum::Form(back): axum::Form<Back>,
) -> Response {
    let resumed = app.host.triggers().resume(&id).await;
    done(
        &app,
        resumed.map_err(|e| e.to_string()),
        back_to(back.back, &id),
    )
}

/// Back to `back` after an action, or the error.
fn done(app: &AppState, result: Result<(), String>, back: String) -> Response {
    match result {
        Ok(()) => Redirect::to(&back).into_response(),
        Err(error) => not_found(app, error),
    }
}

/// `POST /triggers/{id}/run`: fires it now (as the admin API's run).
pub async fn run_now(
    State(app): State<AppState>,
    Path(id): Path<String>,
    axum::Form(back): axum::Form<Back>,
) -> Response {
    let Some(registration) = app.host.triggers().registration(&id).await else {
        return not_found(&app, format!("No trigger `{id}` is registered."));
    };
    if let Err(error) = registration.trigger.run_now(None).await {
        tracing::warn!(trigger = %id, "run now from the dashboard failed: {error}");
    }
    Redirect::to(&back_to(back.back, &id)).into_response()
}

/// `GET /plugins`.
pub async fn plugins(State(app): State<AppState>) -> Response {
    let plugins = app.host.plugins().list();
    let errors = app.host.plugins().errors();
    let body = html! {
        @if plugins.is_empty() && errors.is_empty() {
            (empty("No plugins loaded", html! { "put a component in plugins/ (" code { "wasmsched new NAME --lang rust" } " starts one)." }))
        }
        @for (name, plugin) in &plugins {
            section.plugin aria-label={ "Plugin " (name) } {
                h2 { (name) }
                dl.spec {
                    dt { "Hash" } dd { code { (plugin.hash()) } }
                    dt { "Contract" } dd { (plugin.contract_version()) }
                    dt { "Worlds" } dd { (plugin.worlds().names().join(", ")) }
                    dt { "Loaded" } dd { (time(plugin.loaded_at())) }
                    dt { "Calls / errors / traps / timeouts" } dd {
                        @let stats = plugin.stats();
                        (stats.calls) " / " (stats.errors) " / " (stats.traps) " / " (stats.timeouts)
                    }
                    dt { "Limits" } dd {
                        @let limits = plugin.limits();
                        (wasmsched_core::units::format_duration(limits.timeout)) " running, "
                        (wasmsched_core::units::format_duration(limits.wall_timeout)) " in all, "
                        (limits.memory_bytes / (1 << 20)) " MiB"
                    }
                    dt { "Imports" } dd { @if plugin.imports().is_empty() { "none" } @else { (plugin.imports().join(", ")) } }
                    dt { "Grants" } dd { code { (serde_json::to_string(&plugin.grants().view()).unwrap_or_default()) } }
                    @if let Some(error) = errors.get(name) { dt { "Last error" } dd.bad { (error) } }
                }
                h3 { "Reload history" }
                ol.history { @for change in app.host.plugins().history(name).iter().rev() {
                    li { (time(change.at)) " · " @match &change.change {
                        PluginChangeKind::Loaded { hash } => { "loaded " code { (short(hash)) } },
                        PluginChangeKind::Swapped { from, hash } => { "swapped " code { (short(from)) } " → " code { (short(hash)) } },
                        PluginChangeKind::Failed { error } => { span.bad { "failed: " (error) } },
                    } }
                } }
                figure.latency {
                    (raw(timeline::latency_svg(&plugin.latency())))
                    figcaption { "Call latency: calls per bucket (upper bound)." }
                }
            }
        }
        @for (name, error) in errors.iter().filter(|(n, _)| !plugins.contains_key(*n)) {
            section.plugin { h2 { (name) } p.error { "not loaded: " (error) } }
        }
    };
    page(&app, "Plugins", body).into_response()
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}
