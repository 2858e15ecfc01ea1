//! Crontab schedules: strict 5-field parsing, IANA time zones, and the next
//! fire times with cronie's daylight-saving rules.
//!
//! * Fields: minute, hour, day of month, month, day of week; names (`JAN`,
//!   `MON`), ranges, steps, lists, `L`, `LW`, `15W`, `5L`, `1#1`; 0 and 7 are
//!   Sunday; macros `@yearly @annually @monthly @weekly @daily @midnight @hourly`.
//! * Day of month and day of week: a day matches when either field does,
//!   unless either field starts with `*`, in which case both must (Vixie cron).
//! * Daylight saving ([`next`] has the details): a *wildcard* job (minute or
//!   hour field starting with `*`) follows real time; a *fixed* job runs once
//!   per local date-time, at the first instant after a forward jump if its
//!   time was skipped.

mod fields;
mod next;
mod pattern;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, Weak};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

impl CronError {
    /// The key of a cron trigger's table at fault: `timezone` or `schedule`.
    pub fn key(&self) -> &'static str {
        match self {
            CronError::UnknownZone(_) => "timezone",
            _ => "schedule",
        }
    }
}

/// Why an expression or zone was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CronError {
    #[error(
        "cron expression is empty; expected 5 fields: minute hour day-of-month month day-of-week"
    )]
    /// The expression is blank.
    Empty,
    #[error(
        "`{expr}` has {found} fields; expected 5: minute hour day-of-month month day-of-week{hint}"
    )]
    /// Not 5 fields (seconds and years are not supported).
    FieldCount {
        /// The expression.
        expr: String,
        /// How many fields it has.
        found: usize,
        /// What to do about it, if there is an obvious fix.
        hint: &'static str,
    },
    /// One field is wrong.
    #[error("{field} field `{value}`: {problem}")]
    Field {
        /// `minute`, `hour`, `day-of-month`, `month` or `day-of-week`.
        field: &'static str,
        /// What the field says.
        value: String,
        /// What is wrong with it.
        problem: String,
    },
    #[error(
        "unknown macro `{0}`; known: @yearly @annually @monthly @weekly @daily @midnight @hourly"
    )]
    /// An `@macro` that does not exist.
    UnknownMacro(String),
    #[error(
        "unknown time zone `{0}`; use an IANA name such as `UTC`, `Europe/Berlin` or `Asia/Seoul`"
    )]
    /// Not an IANA time zone name.
    UnknownZone(String),
    /// Valid, but no date matches (e.g. `0 0 31 2 *`).
    #[error("`{0}` never fires: no date matches it")]
    NeverFires(String),
    /// Refused by the parser for another reason.
    #[error("`{expr}`: {message}")]
    Invalid {
        /// The expression.
        expr: String,
        /// The parser's reason.
        message: String,
    },
}

/// Schedules in use, by (expression, zone): see [`CronSchedule::shared`].
type SharedSchedules = HashMap<(String, String), Weak<CronSchedule>>;

/// A parsed crontab expression bound to a time zone.
#[derive(Debug)]
pub struct CronSchedule {
    expression: String,
    pattern: pattern::Pattern,
    zone: Tz,
    /// cronie's "fixed" job: neither minute nor hour starts with `*`.
    fixed_time: bool,
    /// The zone never changes its offset (`UTC`, `Etc/GMT+5`): no
    /// transitions to look for.
    fixed_offset: bool,
    /// The last answer of [`CronSchedule::next_after`]. It answers any instant from `after` up to `next` as well, so the
    /// 100 000 triggers sharing a schedule that start together compute
    /// their first fire once.
    last: Mutex<Option<Answer>>,
}

/// An instant asked about and the next fire after it.
#[derive(Debug, Clone, Copy)]
struct Answer {
    after: DateTime<Utc>,
    next: Option<DateTime<Utc>>,
}

impl Clone for CronSchedule {
    fn clone(&self) -> Self {
        Self {
            expression: self.expression.clone(),
            pattern: self.pattern.clone(),
            zone: self.zone,
            fixed_time: self.fixed_time,
            fixed_offset: self.fixed_offset,
            last: Mutex::new(*self.last()),
        }
    }
}

/// Does `zone` keep one offset forever? The tz database's `Etc/` zones and
/// the names of UTC and GMT do, by definition.
fn has_fixed_offset(zone: Tz) -> bool {
    let name = zone.name();
    name.starts_with("Etc/")
        || matches!(
            name,
            "UTC" | "UCT" | "GMT" | "GMT0" | "GMT+0" | "GMT-0" | "Greenwich" | "Universal" | "Zulu"
        )
}

impl CronSchedule {
    /// Parses `expression` for the zone `zone`; errors name the bad field.
    pub fn new(expression: &str, zone: Tz) -> Result<Self, CronError> {
        let expanded = expand_macro(expression.trim())?;
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        match fields.len() {
            0 => return Err(CronError::Empty),
            5 => {}
            found => {
                return Err(CronError::FieldCount {
                    expr: expression.to_owned(),
                    found,
                    hint: match found {
                        6 | 7 => " (seconds and year fields are not supported)",
                        _ => "",
                    },
                });
            }
        }
        fields::validate(&fields)?;
        let cron = parse_croner(expression)?;
        let schedule = Self {
            expression: expression.trim().to_owned(),
            pattern: pattern::Pattern::compile(&cron),
            zone,
            fixed_time: !(fields[0].starts_with('*') || fields[1].starts_with('*')),
            fixed_offset: has_fixed_offset(zone),
            last: Mutex::new(None),
        };
        if schedule.next_after(Utc::now()).is_none() {
            return Err(CronError::NeverFires(expression.to_owned()));
        }
        Ok(schedule)
    }

    /// Parses `expression` in the zone named `zone` (an IANA name).
    pub fn with_zone_name(expression: &str, zone: &str) -> Result<Self, CronError> {
        Self::new(expression, parse_zone(zone)?)
    }

    /// Parses `expression` in UTC.
    pub fn utc(expression: &str) -> Result<Self, CronError> {
        Self::new(expression, Tz::UTC)
    }

    /// The schedule of `expression` in zone `zone`, shared: triggers with
    /// the same expression and zone hold one copy (a schedule takes about
    /// 200 bytes, and a host may run 100 000 triggers on a handful of
    /// schedules).
    pub fn shared(expression: &str, zone: &str) -> Result<Arc<Self>, CronError> {
        static SHARED: Mutex<Option<SharedSchedules>> = Mutex::new(None);
        let key = (expression.to_owned(), zone.to_owned());
        {
            let shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(schedule) = shared.as_ref().and_then(|m| m.get(&key)?.upgrade()) {
                return Ok(schedule);
            }
        }
        let schedule = Arc::new(Self::with_zone_name(expression, zone)?);
        let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        let map = shared.get_or_insert_with(HashMap::new);
        if map.len() >= 1024 && map.len().is_power_of_two() {
            map.retain(|_, s| s.strong_count() > 0);
        }
        map.insert(key, Arc::downgrade(&schedule));
        Ok(schedule)
    }

    /// The expression as written.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The time zone it is read in.
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// True for cronie's fixed-time jobs (see the module docs).
    pub fn is_fixed_time(&self) -> bool {
        self.fixed_time
    }

    /// The first fire instant strictly after `after`, or `None` if there is none.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Searched within years 1 to 5000: at chrono's own ends the local
        // time of an instant may not exist.
        use chrono::Datelike;
        if !(1..pattern::LAST_YEAR).contains(&after.year()) {
            return None;
        }
        // No fire lies between the last question and its answer.
        if let Some(last) = *self.last()
            && last.after <= after
            && last.next.is_none_or(|next| after < next)
        {
            return last.next;
        }
        let next = match self.fixed_offset {
            true => next::next_at_fixed_offset(&self.pattern, self.zone, after),
            false => next::next_after(&self.pattern, self.zone, self.fixed_time, after),
        };
        *self.last() = Some(Answer { after, next });
        next
    }

    fn last(&self) -> std::sync::MutexGuard<'_, Option<Answer>> {
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fire instants strictly after `after`, in increasing order.
    pub fn fires_after(&self, after: DateTime<Utc>) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        std::iter::successors(self.next_after(after), move |t| self.next_after(*t))
    }

    /// A plain-English description, e.g. "At 09:00 on Monday through Friday".
    pub fn describe(&self) -> String {
        // Parsed again: the schedule keeps only what it matches.
        parse_croner(&self.expression).map_or_else(|_| self.expression.clone(), |c| c.describe())
    }
}

/// croner's reading of a valid 5-field `expression` (macros expanded).
fn parse_croner(expression: &str) -> Result<croner::Cron, CronError> {
    let expanded = expand_macro(expression.trim())?;
    let fields: Vec<&str> = expanded.split_whitespace().collect();
    let vixie_and = fields.get(2).is_some_and(|f| f.starts_with('*'))
        || fields.get(4).is_some_and(|f| f.starts_with('*'));
    croner_parser(vixie_and)
        .parse(&expanded)
        .map_err(|e| CronError::Invalid {
            expr: expression.to_owned(),
            message: e.to_string(),
        })
}

/// croner set up for 5 fields; day of month *and* day of week when
/// `vixie_and` (either field starts with `*`), otherwise either.
fn croner_parser(vixie_and: bool) -> croner::parser::CronParser {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .year(croner::parser::Year::Disallowed)
        .dom_and_dow(vixie_and)
        .build()
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.expression, self.zone)
    }
}

/// How long trigger `trigger_id` waits after each scheduled instant when
/// its schedule has `jitter`: an offset in `[0, jitter)`, derived from the
/// id (the same on every replica and after a restart, different between
/// triggers, so a crowd of `0 * * * *` jobs spreads out). Millisecond
/// steps; zero without jitter.
pub fn jitter_offset(trigger_id: &str, jitter: std::time::Duration) -> std::time::Duration {
    use sha2::{Digest, Sha256};
    let span = u64::try_from(jitter.as_millis()).unwrap_or(u64::MAX);
    if span == 0 {
        return std::time::Duration::ZERO;
    }
    let digest = Sha256::digest(trigger_id.as_bytes());
    let seed = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    std::time::Duration::from_millis(seed % span)
}

/// Looks up an IANA zone name such as `Asia/Seoul`.
pub fn parse_zone(name: &str) -> Result<Tz, CronError> {
    Tz::from_str(name).map_err(|_| CronError::UnknownZone(name.to_owned()))
}

fn expand_macro(expression: &str) -> Result<String, CronError> {
    if !expression.starts_with('@') {
        return Ok(expression.to_owned());
    }
    let expanded = match expression.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ => return Err(CronError::UnknownMacro(expression.to_owned())),
    };
    Ok(expanded.to_owned())
}

#[cfg(test)]
mod tests;
