//! `/metrics` in the format its client asked for: OpenMetrics 1.0 to
//! clients that accept `application/openmetrics-text` (Prometheus itself
//! does), the classic Prometheus text format 0.0.4 to every other client
//! (`curl`, older scrapers, `promtool check metrics`).
//!
//! prometheus-client writes OpenMetrics only; [`to_classic`] rewrites its
//! output. The two differ in three places: a counter family is named
//! without `_total` in OpenMetrics and with it in the classic format (so
//! that `# HELP`/`# TYPE` name what the samples are called), `# UNIT`
//! lines exist only in OpenMetrics, and OpenMetrics ends with `# EOF`.

use axum::http::HeaderMap;
use axum::http::header::ACCEPT;

/// The OpenMetrics text format's media type.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The classic Prometheus text format's media type.
pub const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Does the client accept OpenMetrics (a media type compared without
/// regard to case, with a quality above zero)?
pub fn wants_openmetrics(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default();
            let refused = parts.any(|param| match param.split_once('=') {
                Some((name, q)) if name.trim().eq_ignore_ascii_case("q") => {
                    q.trim().parse::<f64>().is_ok_and(|q| q <= 0.0)
                }
                _ => false,
            });
            media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
        })
}

/// `openmetrics` (as prometheus-client writes it) in the classic format.
pub fn to_classic(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len() + openmetrics.len() / 16);
    // The counter families, by their OpenMetrics name.
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let descriptor = line
            .strip_prefix("# HELP ")
            .map(|rest| ("# HELP ", rest))
            .or_else(|| line.strip_prefix("# TYPE ").map(|rest| ("# TYPE ", rest)));
        match descriptor {
            Some((kind, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let tail = match (kind, tail) {
                    ("# TYPE ", "unknown") => "untyped",
                    _ => tail,
                };
                match counters.contains(name) {
                    true => out.push_str(&format!("{kind}{name}_total {tail}\n")),
                    false => out.push_str(&format!("{kind}{name} {tail}\n")),
                }
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn counters_are_named_for_their_samples_and_openmetrics_only_lines_go() {
        let openmetrics = "# HELP a_firings Firings.\n# TYPE a_firings counter\n\
            a_firings_total{trigger=\"t\"} 3\n# HELP a_open Open.\n# TYPE a_open gauge\na_open 1\n\
            # HELP a_wait_seconds Waits.\n# TYPE a_wait_seconds histogram\n# UNIT a_wait_seconds seconds\n\
            a_wait_seconds_sum 0.5\na_wait_seconds_count 1\na_wait_seconds_bucket{le=\"+Inf\"} 1\n# EOF\n";
        assert_eq!(
            to_classic(openmetrics),
            "# HELP a_firings_total Firings.\n# TYPE a_firings_total counter\n\
             a_firings_total{trigger=\"t\"} 3\n# HELP a_open Open.\n# TYPE a_open gauge\na_open 1\n\
             # HELP a_wait_seconds Waits.\n# TYPE a_wait_seconds histogram\n\
             a_wait_seconds_sum 0.5\na_wait_seconds_count 1\na_wait_seconds_bucket{le=\"+Inf\"} 1\n"
        );
    }

    #[test]
    fn openmetrics_goes_to_those_that_accept_it() {
        let accepts = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(ACCEPT, HeaderValue::from_str(value).unwrap());
            wants_openmetrics(&headers)
        };
        // What Prometheus 2.x sends.
        assert!(accepts(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        ));
        assert!(accepts("Application/OpenMetrics-Text"));
        assert!(!accepts("text/plain; version=0.0.4"));
        assert!(!accepts("*/*"));
        assert!(!accepts("application/openmetrics-text; q=0"));
        assert!(!wants_openmetrics(&HeaderMap::new()));
    }
}
