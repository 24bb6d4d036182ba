//! The request schemas' string constraints, taken from the service's
//! validation rules (`service::validate`), so that the document describes
//! what the API accepts and clients (or a schema-driven fuzzer) can build
//! valid values: lengths in characters, no control characters, no format
//! characters in names and titles, not blank.
//!
//! The patterns are ECMA-262 / Python-compatible character classes over the
//! Basic Multilingual Plane; the few format characters outside it (tags,
//! some scripts' format marks) are refused by the API but not listed here.

use serde_json::{Value, json};

use crate::service::validate::{MAX_APPLICATION, MAX_DESCRIPTION, MAX_NAME};

/// Names, titles, labels: not blank, no controls but tab, no format
/// characters (Unicode category Cf), a single line.
const LABEL: &str = r"^(?=.*\S)[^\u0000-\u0008\u000A-\u001F\u007F-\u009F\u00AD\u0600-\u0605\u061C\u06DD\u070F\u0890-\u0891\u08E2\u180E\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u206F\uFEFF\uFFF9-\uFFFB]*$";

/// Free text (descriptions): no controls but newline and tab, no bidi
/// controls; may be empty.
const TEXT: &str =
    r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]*$";

fn label(max: usize) -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": max, "pattern": LABEL })
}

fn text(max: usize) -> Value {
    json!({ "type": "string", "maxLength": max, "pattern": TEXT })
}

/// Sets the constraints of every named request field of the document's
/// request schemas.
pub(super) fn document_fields(doc: &mut Value) {
    let fields: [(&str, &str, Value); 10] = [
        ("NewKey", "name", label(MAX_NAME)),
        ("KeyUpdate", "name", label(MAX_NAME)),
        ("NewKey", "description", text(MAX_DESCRIPTION)),
        ("KeyUpdate", "description", text(MAX_DESCRIPTION)),
        ("NewApp", "title", label(MAX_NAME)),
        ("AppUpdate", "title", label(MAX_NAME)),
        ("NewApp", "description", text(MAX_DESCRIPTION)),
        ("AppUpdate", "description", text(MAX_DESCRIPTION)),
        ("NewAccount", "name", label(MAX_NAME)),
        ("AccountUpdate", "name", label(MAX_NAME)),
    ];
    for (schema, field, constraint) in fields {
        set(doc, schema, field, constraint);
    }
    for schema in ["NewKey", "KeyUpdate"] {
        let mut application = label(MAX_APPLICATION);
        application["type"] = json!(["string", "null"]);
        set(doc, schema, "application", application);
    }
}

/// Replaces `schema.properties.field`, keeping its description.
fn set(doc: &mut Value, schema: &str, field: &str, mut constraint: Value) {
    let pointer = format!("/components/schemas/{schema}/properties/{field}");
    let Some(slot) = doc.pointer_mut(&pointer) else {
        debug_assert!(false, "no {pointer} in the document");
        return;
    };
    if let Some(d) = slot.get("description").cloned() {
        constraint["description"] = d;
    }
    *slot = constraint;
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_constrained_as_the_service_validates_them() {
        let doc = super::super::openapi::document();
        let name = &doc["components"]["schemas"]["NewKey"]["properties"]["name"];
        assert_eq!(name["minLength"], 1);
        assert_eq!(name["maxLength"], 200);
        let title = &doc["components"]["schemas"]["AppUpdate"]["properties"]["title"];
        assert_eq!(title["pattern"], super::LABEL);
        let app = &doc["components"]["schemas"]["KeyUpdate"]["properties"]["application"];
        assert_eq!(app["type"], serde_json::json!(["string", "null"]));
    }
}
