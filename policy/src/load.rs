//! Loading a policy text, YAML or JSON, as the filter will see it: the plugin configuration JSON string, compiled.
//!
//! Envoy hands the filter its policy as a JSON string (the Wasm filter's `configuration`; Istio
//! turns `WasmPlugin.spec.pluginConfig` into one), which the filter compiles with
//! [`Engine::from_json`] (docs/policy.md "The policy document"). Tools that start from a file
//! (the `peerguard` CLI, the playground) load it here: the text becomes that string, and that very
//! string is compiled, so what loads here is what the filter accepts, and what a tool hands to
//! Envoy is what was checked. A key written twice is refused: JSON parsers would keep one of the
//! two copies without a word, so the file a user reviewed and the policy that runs could differ.

use core::cell::RefCell;
use core::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::config::PolicyDocument;
use crate::engine::Engine;
use crate::error::{ConfigError, ConfigErrors};

/// The syntax of a policy text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    Json,
    Yaml,
}

impl Syntax {
    /// A name ending in `.json` is JSON and `.yaml`/`.yml` YAML; otherwise the text is JSON when
    /// it looks like a JSON object and YAML if not, so that a syntax error comes from the right
    /// parser.
    pub fn of(name: &str, text: &str) -> Syntax {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".json") {
            Syntax::Json
        } else if lower.ends_with(".yaml") || lower.ends_with(".yml") {
            Syntax::Yaml
        } else if text.trim_start().starts_with('{') {
            Syntax::Json
        } else {
            Syntax::Yaml
        }
    }
}

/// A policy the engine compiled, with the exact string the filter would receive.
#[derive(Debug)]
pub struct LoadedPolicy {
    /// The document as JSON, as `WasmPlugin.spec.pluginConfig` carries it.
    pub value: Value,
    /// The plugin configuration string: `value` as compact JSON. This is what was compiled.
    pub json: String,
    /// The parsed document.
    pub document: PolicyDocument,
    /// The compiled policy.
    pub engine: Engine,
}

const EMPTY: &str = "empty: peerguard needs a policy document";

impl LoadedPolicy {
    /// Loads a policy text.
    pub fn from_text(text: &str, syntax: Syntax) -> Result<LoadedPolicy, ConfigErrors> {
        if text.trim().is_empty() {
            // The filter refuses an empty configuration too (503 config_invalid).
            return Err(ConfigErrors::one(".", EMPTY));
        }
        // Syntax and repeated keys first, then the typed parse of the text as written, which gives
        // structural errors with the text's line numbers; the compile in `from_value` sees the
        // JSON string, where a line number would mean nothing to the user.
        let value = parse_value(text, syntax)?;
        match syntax {
            Syntax::Json => PolicyDocument::from_json(text),
            Syntax::Yaml => PolicyDocument::from_yaml(text),
        }?;
        LoadedPolicy::from_value(value)
    }

    /// Loads a document that is already a value (an inline test policy, an imported one).
    pub fn from_value(value: Value) -> Result<LoadedPolicy, ConfigErrors> {
        if value.is_null() {
            return Err(ConfigErrors::one(".", EMPTY));
        }
        let json = serde_json::to_string(&value).map_err(|e| ConfigErrors::one(".", format!("not JSON: {e}")))?;
        // Exactly the filter's `Engine::from_json`, in two steps to keep the parsed document.
        let document = PolicyDocument::from_json(&json)?;
        let engine = Engine::compile(&document)?;
        Ok(LoadedPolicy { value, json, document, engine })
    }
}

/// The plugin configuration string of a text without compiling it: only its syntax (and keys
/// given twice) is checked. For handing Envoy a policy the filter will refuse, on purpose.
pub fn unchecked_json(text: &str, syntax: Syntax) -> Result<String, ConfigErrors> {
    serde_json::to_string(&parse_value(text, syntax)?).map_err(|e| ConfigErrors::one(".", format!("not JSON: {e}")))
}

/// The text as a JSON value, refusing a key given twice (see [`strict_value`]).
fn parse_value(text: &str, syntax: Syntax) -> Result<Value, ConfigErrors> {
    match syntax {
        Syntax::Json => {
            let mut de = serde_json::Deserializer::from_str(text);
            // `end` refuses anything after the document, as `serde_json::from_str` does.
            let value = strict_value(&mut de)?;
            de.end().map_err(|e| ConfigErrors::one(".", format!("not valid syntax: {e}")))?;
            Ok(value)
        }
        Syntax::Yaml => strict_value(serde_yaml::Deserializer::from_str(text)),
    }
}

/// Reads a JSON value from any self-describing deserializer (JSON or YAML), refusing a mapping
/// that has the same key twice: `serde_json::Value` would keep the last copy without a word, so
/// the file a user reviewed and the policy that runs could differ.
fn strict_value<'de, D: Deserializer<'de>>(de: D) -> Result<Value, ConfigErrors>
where
    D::Error: fmt::Display,
{
    let failed_at = RefCell::new(None);
    match (StrictSeed { path: ".".to_owned(), failed_at: &failed_at }).deserialize(de) {
        Ok(v) => Ok(v),
        Err(e) => {
            let path = failed_at.take().unwrap_or_else(|| ".".to_owned());
            let message = match path.as_str() {
                "." => format!("not valid syntax: {e}"),
                _ => e.to_string(),
            };
            Err(ConfigErrors(vec![ConfigError::new(path, message)]))
        }
    }
}

/// Builds a [`Value`] at `path`; on a repeated key, records the key's path in `failed_at`.
struct StrictSeed<'a> {
    path: String,
    failed_at: &'a RefCell<Option<String>>,
}

impl StrictSeed<'_> {
    fn child(&self, key: &str) -> String {
        if self.path == "." {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }
}

impl<'de> DeserializeSeed<'de> for StrictSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v).map(Value::Number).ok_or_else(|| E::custom(format!("{v} is not a JSON number")))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        self.deserialize(de)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(StrictSeed {
            path: format!("{}[{}]", self.path, out.len()),
            failed_at: self.failed_at,
        })? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = self.child(&key);
            if out.contains_key(&key) {
                let message = format!("the key {key:?} is given twice; give it once");
                *self.failed_at.borrow_mut() = Some(path);
                return Err(de::Error::custom(message));
            }
            let v = map.next_value_seed(StrictSeed { path, failed_at: self.failed_at })?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    fn load(name: &str, text: &str) -> Result<LoadedPolicy, ConfigErrors> {
        LoadedPolicy::from_text(text, Syntax::of(name, text))
    }

    fn errors(r: Result<LoadedPolicy, ConfigErrors>) -> Vec<ConfigError> {
        match r {
            Err(errors) => errors.0,
            Ok(p) => panic!("loaded {}", p.json),
        }
    }

    #[test]
    fn yaml_and_json_load_to_the_same_plugin_configuration() {
        let yaml = load("p.yaml", "mtls: strict\npolicies:\n  - name: a\n    rules: [{}]\n").unwrap();
        let json = load("p.json", r#"{"policies":[{"rules":[{}],"name":"a"}],"mtls":"strict"}"#).unwrap();
        assert_eq!(yaml.json, json.json);
        // The string compiles in the filter's own entry point.
        Engine::from_json(&yaml.json).unwrap();
        assert_eq!(yaml.document.policies.len(), 1);
    }

    #[test]
    fn the_syntax_follows_the_name_then_the_text() {
        assert_eq!(Syntax::of("p.JSON", "a: b"), Syntax::Json);
        assert_eq!(Syntax::of("p.yml", "{}"), Syntax::Yaml);
        assert_eq!(Syntax::of("-", "  {}"), Syntax::Json);
        assert_eq!(Syntax::of("policy", "mtls: strict"), Syntax::Yaml);
    }

    #[test]
    fn a_key_given_twice_is_refused_with_its_path() {
        for (name, text, path) in [
            ("dup.json", r#"{"mtls":"strict","mtls":"permissive"}"#, "mtls"),
            (
                "nested.json",
                r#"{"policies":[{"name":"a","rules":[{"from":[{"source":{"principals":["x"],"principals":["*"]}}]}]}]}"#,
                "policies[0].rules[0].from[0].source.principals",
            ),
            ("dup.yaml", "policies:\n  - name: a\n    name: b\n", "policies[0].name"),
        ] {
            let errs = errors(load(name, text));
            assert!(errs.iter().any(|e| e.path == path && e.message.contains("twice")), "{name}: {errs:?}");
        }
    }

    #[test]
    fn empty_and_broken_texts_are_errors_at_the_root() {
        for (name, text) in [
            ("e.yaml", ""),
            ("c.yaml", "# only a comment\n"),
            ("b.json", "{\"policies\": ["),
            ("b.yaml", "policies: [\n"),
            ("t.json", "{} {}"),
        ] {
            let errs = errors(load(name, text));
            assert_eq!(errs.len(), 1, "{name}: {errs:?}");
            assert_eq!(errs[0].path, ".", "{name}: {errs:?}");
        }
        assert!(unchecked_json("{} {}", Syntax::Json).is_err());
        assert_eq!(unchecked_json("rulez: []", Syntax::Yaml).unwrap(), r#"{"rulez":[]}"#);
    }

    #[test]
    fn compile_errors_name_every_path() {
        let errs = errors(load("two.yaml", "trustDomains: []\npolicies:\n  - name: a\n  - name: a\n"));
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["trustDomains", "policies[1].name"], "{errs:?}");
    }

    #[test]
    fn a_yaml_structural_error_names_the_line_in_the_text() {
        let errs = errors(load("typo.yaml", "mtls: strict\npolicies:\n  - name: a\n    rulez: []\n"));
        assert_eq!(errs[0].path, "policies[0].rulez", "{errs:?}");
        assert!(errs[0].message.contains("line 4"), "{errs:?}");
    }

    #[test]
    fn yaml_only_constructs_that_json_cannot_carry_are_refused() {
        // A non-string key and a sequence where a mapping belongs.
        for (name, text) in [("k.yaml", "1: strict\n"), ("s.yaml", "policies:\n  - name: a\n    rules: [[]]\n")] {
            assert!(!errors(load(name, text)).is_empty(), "{name}");
        }
    }
}
