//! Topics (`logs.app.error`) and topic patterns (`logs.*.error`, `logs.**`).
//!
//! A topic is a dot-separated list of non-empty segments. A pattern is a topic
//! whose segments may also be `*` (exactly one segment) or `**` (zero or more
//! segments, anywhere in the pattern).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a topic or pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// Nothing was given.
    #[error("topic is empty")]
    Empty,
    #[error(
        "topic `{topic}` has an empty segment at position {position} (segments are separated by single dots)"
    )]
    /// Two dots in a row, or a dot at an end.
    EmptySegment {
        /// The topic as given.
        topic: String,
        /// Which segment, from 0.
        position: usize,
    },
    #[error(
        "topic `{topic}`: segment `{segment}` contains `{character}`; use letters, digits, `-` and `_`"
    )]
    /// A character other than letters, digits, `-` and `_`.
    BadCharacter {
        /// The topic as given.
        topic: String,
        /// The segment holding it.
        segment: String,
        /// The character.
        character: char,
    },
    #[error("topic `{topic}`: wildcard segment `{segment}` is only allowed in patterns")]
    /// `*` or `**` in a topic (they belong in patterns).
    WildcardInTopic {
        /// The topic as given.
        topic: String,
        /// The wildcard segment.
        segment: String,
    },
    #[error(
        "pattern `{pattern}`: segment `{segment}` mixes `*` with other characters; `*` and `**` must stand alone"
    )]
    /// A segment such as `a*`.
    PartialWildcard {
        /// The pattern as given.
        pattern: String,
        /// The segment.
        segment: String,
    },
}

/// A concrete, validated topic such as `pipeline.collection.completed`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic(std::sync::Arc<str>);

impl Topic {
    /// Validates `topic`; the error names the bad segment.
    pub fn new(topic: impl Into<String>) -> Result<Self, TopicError> {
        let topic = topic.into();
        for segment in segments_of(&topic)? {
            if segment.contains('*') {
                return Err(TopicError::WildcardInTopic {
                    topic: topic.clone(),
                    segment: segment.to_owned(),
                });
            }
            check_characters(&topic, segment)?;
        }
        // Shared: a clone (every event, every trigger's dispatcher) is a
        // reference count, not a copy.
        Ok(Self(topic.into()))
    }

    /// The topic, e.g. `logs.app.error`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The dot-separated segments of the topic.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('.')
    }
}

/// A pattern that topics are matched against: `a.*.c`, `logs.**`, `**.error`, `**`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicPattern {
    text: String,
    segments: Vec<PatternSegment>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PatternSegment {
    Literal(String),
    /// `*`: exactly one segment.
    One,
    /// `**`: zero or more segments.
    Any,
}

impl TopicPattern {
    /// Validates `pattern`; the error names the bad segment.
    pub fn new(pattern: impl Into<String>) -> Result<Self, TopicError> {
        let text = pattern.into();
        let mut segments = Vec::new();
        for segment in segments_of(&text)? {
            let parsed = match segment {
                "*" => PatternSegment::One,
                "**" => PatternSegment::Any,
                s if s.contains('*') => {
                    return Err(TopicError::PartialWildcard {
                        pattern: text.clone(),
                        segment: s.to_owned(),
                    });
                }
                s => {
                    check_characters(&text, s)?;
                    PatternSegment::Literal(s.to_owned())
                }
            };
            // `**.**` means the same as `**`; keep one so matching stays linear.
            if parsed == PatternSegment::Any && segments.last() == Some(&PatternSegment::Any) {
                continue;
            }
            segments.push(parsed);
        }
        Ok(Self { text, segments })
    }

    /// The pattern as written, e.g. `logs.**`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when the pattern has no wildcard, i.e. it matches exactly one topic.
    pub fn is_literal(&self) -> bool {
        self.segments
            .iter()
            .all(|s| matches!(s, PatternSegment::Literal(_)))
    }

    /// The literal segments before the first wildcard (`logs.app` for `logs.app.*.x`).
    pub fn literal_prefix(&self) -> Vec<&str> {
        self.segments
            .iter()
            .map_while(|s| match s {
                PatternSegment::Literal(l) => Some(l.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Does `topic` match this pattern?
    pub fn matches(&self, topic: &Topic) -> bool {
        let topic: Vec<&str> = topic.segments().collect();
        matches_segments(&self.segments, &topic)
    }
}

/// Glob-style matching with backtracking on the last `**` only: linear in
/// practice, O(n·m) at worst, never exponential.
fn matches_segments(pattern: &[PatternSegment], topic: &[&str]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where to resume if the current attempt fails: (pattern index after `**`, topic index).
    let mut resume: Option<(usize, usize)> = None;
    while t < topic.len() {
        match pattern.get(p) {
            Some(PatternSegment::Any) => {
                resume = Some((p + 1, t));
                p += 1;
            }
            Some(PatternSegment::One) => {
                p += 1;
                t += 1;
            }
            Some(PatternSegment::Literal(l)) if l == topic[t] => {
                p += 1;
                t += 1;
            }
            _ => match resume {
                // Let the last `**` swallow one more segment and retry.
                Some((after_any, swallowed_up_to)) => {
                    resume = Some((after_any, swallowed_up_to + 1));
                    p = after_any;
                    t = swallowed_up_to + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|s| *s == PatternSegment::Any)
}

fn segments_of(text: &str) -> Result<std::str::Split<'_, char>, TopicError> {
    if text.is_empty() {
        return Err(TopicError::Empty);
    }
    if let Some(position) = text.split('.').position(str::is_empty) {
        return Err(TopicError::EmptySegment {
            topic: text.to_owned(),
            position: position + 1,
        });
    }
    Ok(text.split('.'))
}

fn check_characters(text: &str, segment: &str) -> Result<(), TopicError> {
    match segment
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '*')))
    {
        Some(character) => Err(TopicError::BadCharacter {
            topic: text.to_owned(),
            segment: segment.to_owned(),
            character,
        }),
        None => Ok(()),
    }
}

macro_rules! string_newtype_impls {
    ($ty:ident, $schema_description:literal) => {
        // A string in the HTTP API's OpenAPI document.
        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $ty {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some($schema_description))
                    .into()
            }
        }
        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $ty {}
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $ty {
            type Err = TopicError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }
        impl TryFrom<&str> for $ty {
            type Error = TopicError;
            fn try_from(s: &str) -> Result<Self, Self::Error> {
                Self::new(s)
            }
        }
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}
string_newtype_impls!(
    Topic,
    "A topic: dot-separated segments, e.g. `logs.app.error`."
);
string_newtype_impls!(
    TopicPattern,
    "A topic pattern: `*` matches one segment, `**` any number, e.g. `logs.**`."
);

/// `text` as one topic segment (or NATS name token): ASCII letters,
/// digits, `-` and `_` are kept, anything else becomes `_`, and a short
/// hash of the original is appended when something changed so that two
/// texts never share a segment.
pub fn safe_segment(text: &str) -> String {
    use sha2::{Digest, Sha256};
    let cleaned: String = text
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' => c,
            _ => '_',
        })
        .collect();
    if cleaned == text && !text.is_empty() {
        return cleaned;
    }
    let digest = Sha256::digest(text.as_bytes());
    format!("{cleaned}_{}", &hex::encode(digest)[..8])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(s: &str) -> Topic {
        Topic::new(s).unwrap()
    }
    fn p(s: &str) -> TopicPattern {
        TopicPattern::new(s).unwrap()
    }

    #[test]
    fn seed_patterns() {
        assert!(p("logs.**").matches(&t("logs.app.error")));
        assert!(p("logs.**").matches(&t("logs")));
        assert!(!p("logs.**").matches(&t("metrics.cpu")));
        assert!(p("logs.*.error").matches(&t("logs.app.error")));
        assert!(!p("logs.*.error").matches(&t("logs.app.db.error")));
        assert!(p("logs.**.error").matches(&t("logs.app.db.error")));
        assert!(p("logs.**.error").matches(&t("logs.error")));
        assert!(p("**").matches(&t("anything.at.all")));
        assert!(p("a.*.c").matches(&t("a.b.c")));
        assert!(!p("a.*.c").matches(&t("a.c")));
        assert!(p("**.error").matches(&t("x.y.error")));
        assert!(!p("**.error").matches(&t("x.error.y")));
    }

    #[test]
    fn bad_topics_name_the_problem() {
        assert_eq!(Topic::new(""), Err(TopicError::Empty));
        let err = Topic::new("logs..error").unwrap_err().to_string();
        assert!(err.contains("position 2"), "{err}");
        let err = Topic::new("logs.*").unwrap_err().to_string();
        assert!(err.contains("only allowed in patterns"), "{err}");
        let err = Topic::new("logs.a b").unwrap_err().to_string();
        assert!(err.contains("`a b`"), "{err}");
        let err = TopicPattern::new("logs.err*").unwrap_err().to_string();
        assert!(err.contains("`err*`"), "{err}");
    }

    /// The obvious recursive definition, exponential but easy to trust.
    fn reference(pattern: &[&str], topic: &[&str]) -> bool {
        match (pattern.first(), topic.first()) {
            (None, None) => true,
            (Some(&"**"), _) => {
                reference(&pattern[1..], topic)
                    || (!topic.is_empty() && reference(pattern, &topic[1..]))
            }
            (Some(&"*"), Some(_)) => reference(&pattern[1..], &topic[1..]),
            (Some(l), Some(s)) => l == s && reference(&pattern[1..], &topic[1..]),
            _ => false,
        }
    }

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof!["a", "b", "c"].prop_map(String::from)
    }
    fn pattern_segment() -> impl Strategy<Value = String> {
        prop_oneof!["a", "b", "c", "\\*", "\\*\\*"].prop_map(String::from)
    }

    proptest! {
        #[test]
        fn matcher_agrees_with_reference(
            pattern in proptest::collection::vec(pattern_segment(), 1..7),
            topic in proptest::collection::vec(segment(), 1..8),
        ) {
            let pattern_refs: Vec<&str> = pattern.iter().map(String::as_str).collect();
            let topic_refs: Vec<&str> = topic.iter().map(String::as_str).collect();
            let compiled = p(&pattern.join("."));
            prop_assert_eq!(
                compiled.matches(&t(&topic.join("."))),
                reference(&pattern_refs, &topic_refs)
            );
        }
    }
}
