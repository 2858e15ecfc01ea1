//! The cron playground: an expression and a zone in, the explanation and
//! the next fires out, or the error naming the bad field (as
//! `wasmsched cron explain` prints it).

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use maud::html;
use serde::Deserialize;

use super::{page, time};
use crate::app::AppState;
use wasmsched_core::cron::CronSchedule;

/// The form's fields.
#[derive(Deserialize)]
pub struct Playground {
    expr: Option<String>,
    tz: Option<String>,
}

/// `GET /cron?expr=...&tz=...`.
pub async fn playground(State(app): State<AppState>, Query(query): Query<Playground>) -> Response {
    let expr = query.expr.unwrap_or_default();
    let tz = query
        .tz
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "UTC".to_owned());
    let parsed = (!expr.is_empty()).then(|| CronSchedule::with_zone_name(&expr, &tz));
    let body = html! {
        form method="get" action="/cron" {
            label for="expr" { "Expression" }
            input #expr name="expr" value=(expr) placeholder="0 9 * * MON-FRI" autocomplete="off";
            label for="tz" { "Time zone" }
            input #tz name="tz" value=(tz) placeholder="Asia/Seoul" autocomplete="off";
            button type="submit" { "Explain" }
        }
        @match &parsed {
            None => p.hint { "Five fields: minute, hour, day of month, month, day of week." },
            Some(Err(error)) => p.error role="alert" { (error) },
            Some(Ok(schedule)) => {
                p.explanation { (schedule.describe()) }
                h2 { "Next fires" }
                ol { @for at in schedule.fires_after(Utc::now()).take(10) { li { (time(at)) " · " (at.with_timezone(&schedule.zone()).format("%a %Y-%m-%d %H:%M %Z")) } } }
            }
        }
    };
    page(&app, "Cron playground", body).into_response()
}
