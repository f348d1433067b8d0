//! Reading a policy document (JSON, or YAML with the `yaml` feature), naming the path of the first structural error.

use crate::config::PolicyDocument;
use crate::error::ConfigErrors;

impl PolicyDocument {
    /// Parses JSON, naming the path of the first structural error (unknown key, wrong type).
    pub fn from_json(text: &str) -> Result<PolicyDocument, ConfigErrors> {
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
            check_mappings(&value)?;
        }
        let de = &mut serde_json::Deserializer::from_str(text);
        let doc = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
            let path = e.path().to_string();
            ConfigErrors::one(path, e.inner().to_string())
        })?;
        // Nothing may follow the document (as `serde_json::from_str` checks): `{A} {B}` must not
        // quietly run A alone.
        de.end().map_err(|e| ConfigErrors::one(".", format!("text after the policy document: {e}")))?;
        Ok(doc)
    }

    /// Parses YAML (the CLI and files), naming the path of the first structural error.
    #[cfg(feature = "yaml")]
    pub fn from_yaml(text: &str) -> Result<PolicyDocument, ConfigErrors> {
        if let Ok(value) = serde_yaml::from_str::<serde_json::Value>(text) {
            check_mappings(&value)?;
        }
        let de = serde_yaml::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            ConfigErrors::one(path, e.inner().to_string())
        })
    }
}

/// Where the document's structs sit. Serde's derive reads a struct from a sequence of its fields
/// as well as from a mapping, so `rules: [[]]` would silently become a rule with no conditions,
/// which matches everything; [`check_mappings`] refuses a sequence at each of these positions.
enum Shape {
    Map(&'static [(&'static str, Shape)]),
    List(&'static Shape),
}

const OPERATIONS: Shape = Shape::List(&Shape::Map(&[("operation", Shape::Map(&[]))]));
const REQUIREMENTS: Shape = Shape::Map(&[("revocation", Shape::Map(&[]))]);
const DOCUMENT: Shape = Shape::Map(&[
    ("denyResponse", Shape::Map(&[])),
    ("certificate", REQUIREMENTS),
    ("certificateRules", Shape::List(&Shape::Map(&[("to", OPERATIONS), ("require", REQUIREMENTS)]))),
    (
        "policies",
        Shape::List(&Shape::Map(&[(
            "rules",
            Shape::List(&Shape::Map(&[
                ("from", Shape::List(&Shape::Map(&[("source", Shape::Map(&[]))]))),
                ("to", OPERATIONS),
                ("when", Shape::List(&Shape::Map(&[]))),
            ])),
        )])),
    ),
]);

fn check_mappings(doc: &serde_json::Value) -> Result<(), ConfigErrors> {
    fn walk(v: &serde_json::Value, shape: &Shape, path: &str) -> Result<(), ConfigErrors> {
        let join = |key: &str| if path == "." { key.to_owned() } else { format!("{path}.{key}") };
        match (shape, v) {
            (Shape::Map(_), serde_json::Value::Array(_)) => {
                Err(ConfigErrors::one(path, "expected a mapping (key: value), found a sequence"))
            }
            (Shape::Map(fields), serde_json::Value::Object(map)) => {
                for (key, inner) in fields.iter() {
                    if let Some(child) = map.get(*key) {
                        walk(child, inner, &join(key))?;
                    }
                }
                Ok(())
            }
            (Shape::List(item), serde_json::Value::Array(items)) => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, item, &format!("{path}[{i}]"))?;
                }
                Ok(())
            }
            // Any other mismatch is a type error that the typed parse reports with its path.
            _ => Ok(()),
        }
    }
    walk(doc, &DOCUMENT, ".")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn text_after_the_json_document_is_refused() {
        for text in ["{} {}", r#"{"mtls":"strict"} garbage"#, r#"{"mtls":"strict"}{"mtls":"permissive"}"#] {
            let err = PolicyDocument::from_json(text).unwrap_err();
            assert_eq!(err.0[0].path, ".", "{text}: {err}");
            assert!(err.0[0].message.starts_with("text after the policy document"), "{text}: {err}");
        }
        // Whitespace after it is not text.
        PolicyDocument::from_json("{\"mtls\":\"strict\"}\n \t").unwrap();
    }
}
