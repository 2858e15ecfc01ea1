//! JSON bodies for the admin API: a valid body with one or two keys set
//! to generated values, and the check that a refusal names one of them.

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::edges::{json_value, names, short};
use super::host::Answer;

/// A body: a valid one with `mutated` keys set to generated values
/// (`None`: the key removed).
#[derive(Debug, Clone)]
pub struct Body {
    pub fields: Vec<(&'static str, Option<Value>)>,
    pub mutated: Vec<&'static str>,
}

impl Body {
    pub fn new(
        base: &[(&'static str, Value)],
        mutations: Vec<(&'static str, Option<Value>)>,
    ) -> Self {
        let mut fields: Vec<_> = base.iter().map(|(k, v)| (*k, Some(v.clone()))).collect();
        let mut mutated = Vec::new();
        for (key, value) in mutations {
            fields.retain(|(k, _)| *k != key);
            fields.push((key, value));
            mutated.push(key);
        }
        Self { fields, mutated }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.as_ref())
    }

    pub fn json(&self) -> Value {
        let object: Map<String, Value> = self
            .fields
            .iter()
            .filter_map(|(k, v)| Some((k.to_string(), v.clone()?)))
            .collect();
        Value::Object(object)
    }

    /// A 4xx names a key it was sent, or a key of a table it was sent.
    pub fn named_in(&self, answer: &Answer) -> Result<(), TestCaseError> {
        if answer.status == 413 || answer.status == 409 || self.mutated.is_empty() {
            return Ok(());
        }
        let message = answer.error();
        let mut wanted: Vec<String> = self.mutated.iter().map(|k| k.to_string()).collect();
        // Another kind makes the other keys wrong.
        if self.mutated.contains(&"kind") {
            wanted.extend(self.fields.iter().map(|(k, _)| k.to_string()));
        }
        for key in &self.mutated {
            if let Some(Value::Object(table)) = self.get(key) {
                wanted.extend(table.keys().cloned());
            }
        }
        prop_assert!(
            wanted.iter().any(|w| names(message, w)),
            "{} names none of {:?}: {}",
            answer.status,
            self.mutated,
            short(message, 300)
        );
        Ok(())
    }
}

pub fn text(strategy: BoxedStrategy<String>) -> BoxedStrategy<Option<Value>> {
    prop_oneof![8 => strategy.prop_map(|t| Some(Value::String(t))), 1 => json_value().prop_map(Some)]
        .boxed()
}

pub fn key<V: Strategy<Value = Option<Value>> + 'static>(
    name: &'static str,
    value: V,
) -> BoxedStrategy<(&'static str, Option<Value>)> {
    value.prop_map(move |v| (name, v)).boxed()
}

pub fn words(options: &[&'static str]) -> BoxedStrategy<Option<Value>> {
    text(
        prop::sample::select(options.to_vec())
            .prop_map(str::to_owned)
            .boxed(),
    )
}
