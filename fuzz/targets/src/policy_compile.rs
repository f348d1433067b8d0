//! Target `policy_compile`: policy JSON and YAML through `PolicyDocument` into `Engine::compile`.
//!
//! The input is tried as JSON and as YAML. Properties:
//! - parsing and compiling never panic;
//! - parsing the same text twice gives the same document or the same errors;
//! - compiling the same document twice gives the same engine or the same errors, and errors are
//!   never an empty list nor one without a message;
//! - a parsed document survives a JSON round trip (serialize, `from_json`) unchanged, so what
//!   `peerguard render` writes means what the user wrote (YAML and JSON are one schema).

use peerguard_policy::{ConfigErrors, Engine, PolicyDocument};

/// The target body.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let json = PolicyDocument::from_json(text);
    assert_eq!(json, PolicyDocument::from_json(text), "from_json gave two answers for one text");
    check(&json);
    let yaml = PolicyDocument::from_yaml(text);
    assert_eq!(yaml, PolicyDocument::from_yaml(text), "from_yaml gave two answers for one text");
    check(&yaml);
}

fn check(parsed: &Result<PolicyDocument, ConfigErrors>) {
    let doc = match parsed {
        Ok(doc) => doc,
        Err(errors) => return check_errors(errors),
    };
    let first = compile(doc);
    if let Err(errors) = &first {
        check_errors(errors);
    }
    assert_eq!(first, compile(doc), "compiling one document twice gave two outcomes");

    let text = serde_json::to_string(doc);
    assert!(text.is_ok(), "a parsed document does not serialize: {text:?}");
    let Ok(text) = text else { return };
    let again = PolicyDocument::from_json(&text);
    assert_eq!(again.as_ref().ok(), Some(doc), "the JSON round trip changed the document: {text}");
}

fn check_errors(errors: &ConfigErrors) {
    assert!(!errors.0.is_empty(), "an error result without errors");
    for e in errors.iter() {
        assert!(!e.message.is_empty(), "an error without a message at {:?}", e.path);
    }
}

/// The engine's observable shape, independent of hash-set iteration order: its `{:#?}` lines,
/// sorted (a `HashSet` of pins prints its elements in a per-process random order).
fn compile(doc: &PolicyDocument) -> Result<Vec<String>, ConfigErrors> {
    Engine::compile(doc).map(|engine| {
        let mut lines: Vec<String> = format!("{engine:#?}").lines().map(str::to_owned).collect();
        lines.sort_unstable();
        lines
    })
}
