//! Loading a policy file: YAML or JSON in, the plugin configuration string the filter receives out, compiled by the engine.
//!
//! Envoy hands the filter its policy as a JSON string (the wasm filter's `configuration`; Istio
//! turns `WasmPlugin.spec.pluginConfig` into one), and the filter compiles that string with
//! `Engine::from_json` (docs/policy.md "The policy document"). Every command that reads a policy
//! (`check`, `validate`, `test`, `import`, `render`, `live`) loads it here: the file becomes that
//! string, and that very string is compiled the way the filter compiles it, so a policy that loads
//! here is one the filter accepts, and what `render` and `live` hand to Envoy is what was checked.
//!
//! A key written twice is refused (JSON parsers would silently keep one of the two copies), and
//! errors name the file and the JSON path.

use std::cell::RefCell;
use std::fmt;
use std::path::{Path, PathBuf};

use peerguard_policy::{ConfigError, ConfigErrors, Engine, PolicyDocument};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// A policy that the engine compiled, with the exact string the filter would receive.
#[derive(Debug)]
pub struct PolicyFile {
    /// Where the policy came from, for messages (`-` is stdin).
    pub file: PathBuf,
    /// The document as JSON, as `WasmPlugin.spec.pluginConfig` carries it.
    pub value: Value,
    /// The plugin configuration string: `value` as compact JSON. This is what was compiled.
    pub json: String,
    /// The parsed document.
    pub document: PolicyDocument,
    /// The compiled policy.
    pub engine: Engine,
    /// What the filter logs as warnings when it loads this policy now (for example a trust anchor
    /// that has expired or expires within 30 days).
    pub warnings: Vec<String>,
}

/// Why a policy did not load.
#[derive(Debug)]
#[non_exhaustive]
pub enum LoadError {
    /// The file cannot be read.
    Read { file: PathBuf, source: std::io::Error },
    /// The file is not a policy the filter would accept; every error with its JSON path.
    Invalid { file: PathBuf, errors: ConfigErrors },
}

impl LoadError {
    /// The file the error is about.
    pub fn file(&self) -> &Path {
        match self {
            LoadError::Read { file, .. } | LoadError::Invalid { file, .. } => file,
        }
    }

    /// Every problem as a [`ConfigErrors`] (a read error at the root `.`), for callers that report
    /// paths in their own terms.
    pub fn into_config_errors(self) -> ConfigErrors {
        match self {
            LoadError::Invalid { errors, .. } => errors,
            read @ LoadError::Read { .. } => ConfigErrors::one(".", read.to_string()),
        }
    }

    fn invalid(file: &Path, path: impl Into<String>, message: impl Into<String>) -> LoadError {
        LoadError::Invalid { file: file.to_path_buf(), errors: ConfigErrors::one(path, message) }
    }
}

impl fmt::Display for LoadError {
    /// One line per error, `FILE: PATH: MESSAGE`, then `FILE: invalid: N errors`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Read { file, source } => write!(f, "cannot read {}: {source}", file.display()),
            LoadError::Invalid { file, errors } => f.write_str(&describe_errors(file, errors)),
        }
    }
}

impl std::error::Error for LoadError {}

/// `errors` as `peerguard validate` prints them: `FILE: PATH: MESSAGE` lines and a count.
pub fn describe_errors(file: &Path, errors: &ConfigErrors) -> String {
    let mut out = String::new();
    for e in errors.iter() {
        out.push_str(&format!("{}: {}: {}\n", file.display(), e.path, e.message));
    }
    let n = errors.0.len();
    out.push_str(&format!("{}: invalid: {n} error{}", file.display(), if n == 1 { "" } else { "s" }));
    out
}

/// The syntax of a policy text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    Json,
    Yaml,
}

impl Syntax {
    /// `.json` is JSON and `.yaml`/`.yml` YAML; anything else is JSON when it looks like a JSON
    /// object and YAML otherwise, so that a syntax error comes from the right parser.
    pub fn of(file: &Path, text: &str) -> Syntax {
        let ext = file.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("json") => Syntax::Json,
            Some("yaml" | "yml") => Syntax::Yaml,
            _ if text.trim_start().starts_with('{') => Syntax::Json,
            _ => Syntax::Yaml,
        }
    }
}

impl PolicyFile {
    /// Reads and compiles the policy in `file` (`-` reads stdin).
    pub fn load(file: &Path) -> Result<PolicyFile, LoadError> {
        let text = read_text(file)?;
        PolicyFile::from_text(file, &text, Syntax::of(file, &text))
    }

    /// Compiles a policy text; `file` names it in messages.
    pub fn from_text(file: &Path, text: &str, syntax: Syntax) -> Result<PolicyFile, LoadError> {
        let invalid = |errors| LoadError::Invalid { file: file.to_path_buf(), errors };
        if text.trim().is_empty() {
            // The filter refuses an empty configuration too (503 config_invalid).
            return Err(LoadError::invalid(file, ".", "empty: peerguard needs a policy document"));
        }
        // Syntax and repeated keys first, then the typed parse of the text as written, which gives
        // structural errors with the file's line numbers; the compile in `from_value` sees the
        // JSON string, where a line number would mean nothing to the user.
        let value = parse_value(file, text, syntax)?;
        match syntax {
            Syntax::Json => PolicyDocument::from_json(text),
            Syntax::Yaml => PolicyDocument::from_yaml(text),
        }
        .map_err(invalid)?;
        PolicyFile::from_value(file, value)
    }

    /// Compiles a document that is already a value (an inline test policy, an imported one).
    pub fn from_value(file: &Path, value: Value) -> Result<PolicyFile, LoadError> {
        let invalid = |errors| LoadError::Invalid { file: file.to_path_buf(), errors };
        if value.is_null() {
            return Err(LoadError::invalid(file, ".", "empty: peerguard needs a policy document"));
        }
        let json =
            serde_json::to_string(&value).map_err(|e| invalid(ConfigErrors::one(".", format!("not JSON: {e}"))))?;
        // Exactly the filter's `Engine::from_json`, kept in two steps for the parsed document.
        let document = PolicyDocument::from_json(&json).map_err(invalid)?;
        let engine = Engine::compile(&document).map_err(invalid)?;
        let warnings = engine.load_warnings(unix_now());
        Ok(PolicyFile { file: file.to_path_buf(), value, json, document, engine, warnings })
    }

    /// Prints the load warnings on stderr, `peerguard: FILE: warning: ...`, as every command does.
    pub fn print_warnings(&self) {
        for w in &self.warnings {
            eprintln!("peerguard: {}: warning: {w}", self.file.display());
        }
    }
}

/// The plugin configuration string of `file` without compiling it: only its syntax is checked.
/// For `peerguard live reload --force`, which hands Envoy a policy the filter will refuse.
pub fn unchecked_json(file: &Path) -> Result<String, LoadError> {
    let text = read_text(file)?;
    let value = parse_value(file, &text, Syntax::of(file, &text))?;
    serde_json::to_string(&value).map_err(|e| LoadError::invalid(file, ".", format!("not JSON: {e}")))
}

fn read_text(file: &Path) -> Result<String, LoadError> {
    let bytes = read_input(file).map_err(|source| LoadError::Read { file: file.to_path_buf(), source })?;
    String::from_utf8(bytes).map_err(|_| LoadError::invalid(file, ".", "the file is not UTF-8 text"))
}

/// The text as a JSON value, refusing a key given twice (see [`strict_value`]).
fn parse_value(file: &Path, text: &str, syntax: Syntax) -> Result<Value, LoadError> {
    match syntax {
        Syntax::Json => {
            let mut de = serde_json::Deserializer::from_str(text);
            // `end` refuses anything after the document, as `serde_json::from_str` does.
            strict_value(&mut de).and_then(|v| {
                de.end().map_err(|e| ConfigErrors::one(".", format!("not valid syntax: {e}"))).map(|()| v)
            })
        }
        Syntax::Yaml => strict_value(serde_yaml::Deserializer::from_str(text)),
    }
    .map_err(|errors| LoadError::Invalid { file: file.to_path_buf(), errors })
}

/// The bytes of `file`, or of stdin for `-`.
pub fn read_input(file: &Path) -> std::io::Result<Vec<u8>> {
    if file.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)?;
        return Ok(buf);
    }
    std::fs::read(file)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
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

    fn load(name: &str, text: &str) -> Result<PolicyFile, LoadError> {
        PolicyFile::from_text(Path::new(name), text, Syntax::of(Path::new(name), text))
    }

    fn errors(r: Result<PolicyFile, LoadError>) -> Vec<ConfigError> {
        match r {
            Err(LoadError::Invalid { errors, .. }) => errors.0,
            Err(e) => panic!("not an invalid-policy error: {e}"),
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
    fn empty_unreadable_and_broken_files_are_errors_at_the_root() {
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
        let missing = PolicyFile::load(Path::new("/nonexistent/peerguard/policy.yaml")).unwrap_err();
        assert!(matches!(missing, LoadError::Read { .. }), "{missing}");
        assert!(missing.to_string().contains("/nonexistent/peerguard/policy.yaml"), "{missing}");
    }

    #[test]
    fn errors_name_the_file_and_every_path() {
        let e =
            load("bad.yaml", "policies:\n  - name: a\n    action: ALOW\n  - name: a\n    rules: [{}]\n").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("bad.yaml: policies[0].action: "), "{text}");
        assert!(text.ends_with("bad.yaml: invalid: 1 error"), "{text}");
        let e = load("two.yaml", "trustDomains: []\npolicies:\n  - name: a\n  - name: a\n").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("two.yaml: trustDomains: "), "{text}");
        assert!(text.contains("two.yaml: policies[1].name: "), "{text}");
        assert!(text.ends_with("two.yaml: invalid: 2 errors"), "{text}");
    }

    #[test]
    fn a_yaml_structural_error_names_the_line_in_the_file() {
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
