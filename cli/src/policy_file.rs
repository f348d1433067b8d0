//! Loading a policy file: the file name, reading (or stdin), and the load warnings around the engine's loader.
//!
//! Every command that reads a policy (`check`, `validate`, `test`, `import`, `render`, `live`)
//! loads it here. The text goes through `peerguard_policy::load`: it becomes the JSON string Envoy
//! hands the filter, and that very string is compiled as the filter compiles it, so a policy that
//! loads here is one the filter accepts, and what `render` and `live` hand to Envoy is what was
//! checked (docs/policy.md "The policy document"). Errors name the file and the JSON path.

use std::fmt;
use std::path::{Path, PathBuf};

pub use peerguard_policy::load::Syntax;
use peerguard_policy::load::{self, LoadedPolicy};
use peerguard_policy::{ConfigErrors, Engine, PolicyDocument};
use serde_json::Value;

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

impl PolicyFile {
    /// Reads and compiles the policy in `file` (`-` reads stdin).
    pub fn load(file: &Path) -> Result<PolicyFile, LoadError> {
        let text = read_text(file)?;
        PolicyFile::from_text(file, &text, syntax_of(file, &text))
    }

    /// Compiles a policy text; `file` names it in messages.
    pub fn from_text(file: &Path, text: &str, syntax: Syntax) -> Result<PolicyFile, LoadError> {
        PolicyFile::new(file, LoadedPolicy::from_text(text, syntax))
    }

    /// Compiles a document that is already a value (an inline test policy, an imported one).
    pub fn from_value(file: &Path, value: Value) -> Result<PolicyFile, LoadError> {
        PolicyFile::new(file, LoadedPolicy::from_value(value))
    }

    fn new(file: &Path, loaded: Result<LoadedPolicy, ConfigErrors>) -> Result<PolicyFile, LoadError> {
        let LoadedPolicy { value, json, document, engine } =
            loaded.map_err(|errors| LoadError::Invalid { file: file.to_path_buf(), errors })?;
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
    load::unchecked_json(&text, syntax_of(file, &text))
        .map_err(|errors| LoadError::Invalid { file: file.to_path_buf(), errors })
}

/// The syntax of `file`'s text: by its extension, else by the text (see [`Syntax::of`]).
pub fn syntax_of(file: &Path, text: &str) -> Syntax {
    Syntax::of(&file.to_string_lossy(), text)
}

fn read_text(file: &Path) -> Result<String, LoadError> {
    let bytes = read_input(file).map_err(|source| LoadError::Read { file: file.to_path_buf(), source })?;
    String::from_utf8(bytes).map_err(|_| LoadError::invalid(file, ".", "the file is not UTF-8 text"))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    #[test]
    fn errors_name_the_file_and_every_path() {
        let file = Path::new("bad.yaml");
        let text = "trustDomains: []\npolicies:\n  - name: a\n    action: ALOW\n  - name: a\n";
        let e = PolicyFile::from_text(file, text, syntax_of(file, text)).unwrap_err().to_string();
        assert!(e.contains("bad.yaml: policies[0].action: "), "{e}");
        assert!(e.contains("bad.yaml: trustDomains: ") || e.contains("bad.yaml: invalid: 1 error"), "{e}");
        assert!(e.lines().last().unwrap().starts_with("bad.yaml: invalid: "), "{e}");
    }

    #[test]
    fn unreadable_and_non_utf8_files_name_the_file() {
        let missing = PolicyFile::load(Path::new("/nonexistent/peerguard/policy.yaml")).unwrap_err();
        assert!(matches!(missing, LoadError::Read { .. }), "{missing}");
        assert!(missing.to_string().contains("/nonexistent/peerguard/policy.yaml"), "{missing}");
        let dir = tempfile::tempdir().unwrap();
        let latin1 = dir.path().join("latin1.yaml");
        std::fs::write(&latin1, b"policies:\n  - name: caf\xe9\n").unwrap();
        let e = PolicyFile::load(&latin1).unwrap_err();
        assert!(e.to_string().contains("latin1.yaml: .: the file is not UTF-8 text"), "{e}");
    }

    #[test]
    fn the_syntax_of_a_file_follows_its_extension() {
        assert_eq!(syntax_of(Path::new("/d/p.json"), "a: b"), Syntax::Json);
        assert_eq!(syntax_of(Path::new("-"), "{}"), Syntax::Json);
        assert_eq!(syntax_of(Path::new("x.test.yaml (inline policy)"), "mtls: strict"), Syntax::Yaml);
    }
}
