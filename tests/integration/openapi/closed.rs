//! JSON schemas made strict: every object a schema describes with named
//! properties is closed (`unevaluatedProperties: false`, which sees
//! through `$ref`, `allOf` and `oneOf`, unlike `additionalProperties`), so
//! that a value with a field the schema does not name fails. utoipa leaves
//! objects open (as JSON Schema does by default).

use serde_json::{Map, Value};

/// Closes `schema` if it describes an object with named properties
/// (`unevaluatedProperties: false`, which sees through `$ref`, `allOf` and
/// `oneOf`, unlike `additionalProperties`), and the schemas inside it.
pub fn seal(schema: &mut Value, schemas: &Map<String, Value>) {
    close_inside(schema, schemas);
    if describes_object(schema, schemas, 0) {
        let object = schema.as_object_mut().unwrap();
        object.insert("unevaluatedProperties".into(), Value::Bool(false));
    }
}

/// Seals the schemas where a value's own parts are checked (properties,
/// items, map values); the parts of a composition are sealed by whoever
/// uses it, as a whole.
pub fn close_inside(schema: &mut Value, schemas: &Map<String, Value>) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    for (keyword, value) in object.iter_mut() {
        match keyword.as_str() {
            "properties" => value
                .as_object_mut()
                .unwrap()
                .values_mut()
                .for_each(|property| seal(property, schemas)),
            "items" | "additionalProperties" => seal(value, schemas),
            "allOf" | "oneOf" | "anyOf" | "prefixItems" => value
                .as_array_mut()
                .unwrap()
                .iter_mut()
                .for_each(|part| close_inside(part, schemas)),
            _ => {}
        }
    }
}

fn describes_object(schema: &Value, schemas: &Map<String, Value>, depth: usize) -> bool {
    assert!(depth < 32, "a schema refers to itself");
    if schema.get("properties").is_some() {
        return true;
    }
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.strip_prefix("#/components/schemas/").unwrap();
        return describes_object(&schemas[name], schemas, depth + 1);
    }
    ["allOf", "oneOf", "anyOf"]
        .iter()
        .filter_map(|keyword| schema[keyword].as_array())
        .flatten()
        .any(|part| describes_object(part, schemas, depth + 1))
}
