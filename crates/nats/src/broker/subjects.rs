//! How topics, topic patterns and trigger ids become NATS names.
//!
//! A topic `a.b` is the subject `<prefix>.a.b`. NATS wildcards are close to
//! ours but not the same: `*` is `*`, but NATS's `>` needs at least one
//! token and may only end a subject, while our `**` matches any number of
//! segments (none too) anywhere. So a pattern becomes one or two filter
//! subjects that select a superset of its topics, plus a flag saying
//! whether that superset is exact or must be matched again in our code.

use sha2::{Digest, Sha256};

use wasmsched_core::topic::{Topic, TopicPattern, safe_segment};

/// The subjects a pattern is consumed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filters {
    /// One or two NATS filter subjects.
    pub subjects: Vec<String>,
    /// Do the subjects select exactly the pattern's topics? If not, each
    /// message must be matched against the pattern again.
    pub exact: bool,
}

/// Maps topics to subjects under one prefix.
#[derive(Debug, Clone)]
pub struct Subjects {
    prefix: String,
}

impl Subjects {
    /// `prefix` must be a valid topic (`ev`, `prod.ev`).
    pub fn new(prefix: &str) -> Result<Self, String> {
        Topic::new(prefix).map_err(|e| format!("subject_prefix: {e}"))?;
        Ok(Self {
            prefix: prefix.to_owned(),
        })
    }

    /// The stream captures every subject under the prefix.
    pub fn stream_subject(&self) -> String {
        format!("{}.>", self.prefix)
    }

    /// The subject `topic` is published on.
    pub fn for_topic(&self, topic: &Topic) -> String {
        format!("{}.{}", self.prefix, topic.as_str())
    }

    /// The topic a subject carries, if it is under the prefix and valid.
    pub fn topic_of(&self, subject: &str) -> Option<Topic> {
        let rest = subject.strip_prefix(&self.prefix)?.strip_prefix('.')?;
        Topic::new(rest).ok()
    }

    /// The filter subjects that select `pattern`'s topics.
    ///
    /// - no `**`: the pattern itself (`a.*.c` → `ev.a.*.c`), exact;
    /// - one trailing `**`: its head and everything under it (`logs.**` →
    ///   `ev.logs`, `ev.logs.>`; `**` → `ev.>`), exact;
    /// - any other `**`: everything under the segments before it
    ///   (`a.**.z` → `ev.a.>`), matched again in code.
    pub fn filters(&self, pattern: &TopicPattern) -> Filters {
        let segments: Vec<&str> = pattern.as_str().split('.').collect();
        let Some(first_any) = segments.iter().position(|s| *s == "**") else {
            return Filters {
                subjects: vec![format!("{}.{}", self.prefix, pattern.as_str())],
                exact: true,
            };
        };
        let head = segments[..first_any].join(".");
        let trailing_only = segments[first_any..].iter().all(|s| *s == "**");
        let under = if head.is_empty() {
            format!("{}.>", self.prefix)
        } else {
            format!("{}.{head}.>", self.prefix)
        };
        let subjects = match (trailing_only, head.is_empty()) {
            // `logs.**` also matches `logs` itself, which `>` does not.
            (true, false) => vec![under, format!("{}.{head}", self.prefix)],
            // `**`, or a `**` with something after it: the rest after the
            // head always needs at least one more segment.
            _ => vec![under],
        };
        Filters {
            subjects,
            exact: trailing_only,
        }
    }
}

/// The durable consumer of a trigger's filter subject:
/// `<trigger id>-<hash of the filter>`.
pub fn consumer_name(trigger_id: &str, filter: &str) -> String {
    let digest = Sha256::digest(filter.as_bytes());
    format!("{}-{}", safe_segment(trigger_id), &hex::encode(digest)[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(pattern: &str) -> Filters {
        Subjects::new("ev")
            .unwrap()
            .filters(&TopicPattern::new(pattern).unwrap())
    }

    fn exact(subjects: &[&str]) -> Filters {
        Filters {
            subjects: subjects.iter().map(|s| s.to_string()).collect(),
            exact: true,
        }
    }

    #[test]
    fn literal_and_single_wildcards_map_one_to_one() {
        assert_eq!(filters("a.b"), exact(&["ev.a.b"]));
        assert_eq!(filters("a.*.c"), exact(&["ev.a.*.c"]));
        assert_eq!(filters("*"), exact(&["ev.*"]));
    }

    #[test]
    fn trailing_any_needs_the_head_itself_too() {
        assert_eq!(filters("logs.**"), exact(&["ev.logs.>", "ev.logs"]));
        assert_eq!(filters("a.*.**"), exact(&["ev.a.*.>", "ev.a.*"]));
        assert_eq!(filters("**"), exact(&["ev.>"]));
        assert_eq!(filters("logs.**.**"), exact(&["ev.logs.>", "ev.logs"]));
    }

    #[test]
    fn inner_any_filters_on_the_head_and_matches_in_code() {
        let inexact = |s: &str| Filters {
            subjects: vec![s.to_owned()],
            exact: false,
        };
        assert_eq!(filters("a.**.z"), inexact("ev.a.>"));
        assert_eq!(filters("**.z"), inexact("ev.>"));
        assert_eq!(filters("a.*.**.z.**"), inexact("ev.a.*.>"));
    }

    /// Every topic a pattern matches is selected by one of its filters
    /// (checked with NATS's own rules, written out here).
    #[test]
    fn filters_select_a_superset_of_the_pattern() {
        fn nats_matches(filter: &str, subject: &str) -> bool {
            let (f, s): (Vec<_>, Vec<_>) =
                (filter.split('.').collect(), subject.split('.').collect());
            for (i, token) in f.iter().enumerate() {
                match *token {
                    ">" => return s.len() > i,
                    "*" if i < s.len() => {}
                    t if s.get(i) == Some(&t) => {}
                    _ => return false,
                }
            }
            f.len() == s.len()
        }
        let subjects = Subjects::new("ev").unwrap();
        let topics = ["a", "a.b", "a.z", "a.b.z", "logs", "logs.x.y", "z", "b.z.c"];
        for pattern in ["a.**", "a.**.z", "**.z", "*.z", "**", "a.*", "logs.**"] {
            let pattern = TopicPattern::new(pattern).unwrap();
            let filters = subjects.filters(&pattern);
            for topic in topics.map(|t| Topic::new(t).unwrap()) {
                let selected = filters
                    .subjects
                    .iter()
                    .any(|f| nats_matches(f, &subjects.for_topic(&topic)));
                if pattern.matches(&topic) {
                    assert!(selected, "{pattern:?} misses {topic:?}");
                }
                if filters.exact {
                    assert_eq!(selected, pattern.matches(&topic), "{pattern:?} {topic:?}");
                }
            }
        }
    }

    #[test]
    fn topics_round_trip_through_subjects() {
        let subjects = Subjects::new("prod.ev").unwrap();
        let topic = Topic::new("orders.created").unwrap();
        assert_eq!(subjects.for_topic(&topic), "prod.ev.orders.created");
        assert_eq!(subjects.topic_of("prod.ev.orders.created"), Some(topic));
        assert_eq!(subjects.topic_of("other.orders"), None);
        assert!(Subjects::new("bad prefix").is_err());
    }

    #[test]
    fn names_are_safe_and_distinct() {
        assert_eq!(safe_segment("orders-worker_1"), "orders-worker_1");
        let dotted = safe_segment("orders.worker");
        assert!(dotted.starts_with("orders_worker_"), "{dotted}");
        assert_ne!(dotted, safe_segment("orders_worker"));
        assert_ne!(safe_segment("a.b"), safe_segment("a*b"));
        let (a, b) = (consumer_name("t", "ev.a.>"), consumer_name("t", "ev.a"));
        assert!(
            a.starts_with("t-") && b.starts_with("t-") && a != b,
            "{a} {b}"
        );
    }
}
