//! Field-by-field validation of a 5-field crontab expression.
//!
//! `croner` does the real parsing; this pass exists so that a mistake is
//! reported as `hour field "25": 25 is out of range 0-23` rather than as a
//! generic parse failure.

use super::CronError;

/// What one crontab field accepts.
struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// `L`, `LW`, `15W` (day of month).
    month_day_modifiers: bool,
    /// `5L`, `1#2` (day of week).
    weekday_modifiers: bool,
}

const MONTHS: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const FIELDS: [FieldSpec; 5] = [
    FieldSpec {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
        month_day_modifiers: false,
        weekday_modifiers: false,
    },
    FieldSpec {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
        month_day_modifiers: false,
        weekday_modifiers: false,
    },
    FieldSpec {
        name: "day-of-month",
        min: 1,
        max: 31,
        names: &[],
        month_day_modifiers: true,
        weekday_modifiers: false,
    },
    FieldSpec {
        name: "month",
        min: 1,
        max: 12,
        names: MONTHS,
        month_day_modifiers: false,
        weekday_modifiers: false,
    },
    FieldSpec {
        name: "day-of-week",
        min: 0,
        max: 7,
        names: WEEKDAYS,
        month_day_modifiers: false,
        weekday_modifiers: true,
    },
];

/// Checks each of the five fields; the first problem found is returned,
/// naming the field and the offending value.
pub fn validate(fields: &[&str]) -> Result<(), CronError> {
    for (spec, field) in FIELDS.iter().zip(fields) {
        for item in field.split(',') {
            spec.validate_item(item)
                .map_err(|problem| CronError::Field {
                    field: spec.name,
                    value: (*field).to_owned(),
                    problem,
                })?;
        }
    }
    Ok(())
}

impl FieldSpec {
    fn validate_item(&self, item: &str) -> Result<(), String> {
        if item.is_empty() {
            return Err("empty list item (stray comma?)".into());
        }
        let upper = item.to_ascii_uppercase();
        if self.month_day_modifiers && (upper == "L" || upper == "LW") {
            return Ok(());
        }
        if self.month_day_modifiers
            && let Some(day) = upper.strip_suffix('W')
        {
            return self.value(day).map(drop);
        }
        if self.weekday_modifiers {
            if upper == "L" {
                return Ok(());
            }
            if let Some(day) = upper.strip_suffix('L') {
                return self.value(day).map(drop);
            }
            if let Some((day, nth)) = upper.split_once('#') {
                self.value(day)?;
                return match nth.parse::<u32>() {
                    Ok(1..=5) => Ok(()),
                    _ => Err(format!("`#{nth}`: the occurrence must be 1 to 5")),
                };
            }
        }
        let (range, step) = match upper.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (upper.as_str(), None),
        };
        if let Some(step) = step {
            match step.parse::<u32>() {
                Ok(0) => return Err(format!("`{item}`: a step of 0 never advances")),
                Ok(s) if s > self.max => {
                    return Err(format!(
                        "`{item}`: step {s} is larger than the field's range {}-{}",
                        self.min, self.max
                    ));
                }
                Ok(_) => {}
                Err(_) => return Err(format!("`{item}`: step `{step}` is not a number")),
            }
        }
        if range == "*" {
            return Ok(());
        }
        match range.split_once('-') {
            Some((low, high)) => {
                let (low_value, high_value) = (self.value(low)?, self.value(high)?);
                if low_value > high_value {
                    return Err(format!(
                        "`{range}` is a reversed range ({low_value} > {high_value})"
                    ));
                }
                Ok(())
            }
            None if step.is_some() => Err(format!(
                "`{item}`: a step needs `*` or a range before it (write `*/{s}` or `{range}-{max}/{s}`)",
                s = step.unwrap_or_default(),
                max = self.max
            )),
            None => self.value(range).map(drop),
        }
    }

    /// A number or a name (`MON`, `JAN`), checked against the field's range.
    fn value(&self, text: &str) -> Result<u32, String> {
        if let Some(index) = self.names.iter().position(|n| *n == text) {
            return Ok(index as u32 + self.min);
        }
        let value: u32 = text.parse().map_err(|_| {
            if self.names.is_empty() {
                format!("`{text}` is not a number")
            } else {
                format!(
                    "`{text}` is neither a number nor one of {}",
                    self.names.join(" ")
                )
            }
        })?;
        if value < self.min || value > self.max {
            return Err(format!("{value} is out of range {}-{}", self.min, self.max));
        }
        Ok(value)
    }
}
