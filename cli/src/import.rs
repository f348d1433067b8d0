//! `peerguard import`: Istio AuthorizationPolicy resources in, a peerguard policy document out.
//!
//! The `spec` of an AuthorizationPolicy is already peerguard's policy shape
//! (<https://istio.io/latest/docs/reference/config/security/authorization-policy/>); what is left
//! is the Kubernetes envelope: the name, the namespace, the workload selector and the dry-run
//! annotation.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use peerguard_cli::policy_file::PolicyFile;
use peerguard_policy::ConfigError;
use serde::Deserialize;
use serde_yaml::{Mapping, Value};

use crate::{read_text, Failure, EXIT_INVALID};

#[derive(Args)]
pub(crate) struct ImportArgs {
    /// Istio AuthorizationPolicy YAML, one or many `---` documents (`-` for stdin)
    file: PathBuf,
    /// Print JSON (as WasmPlugin pluginConfig takes it) instead of YAML
    #[arg(long)]
    json: bool,
}

/// Istio's dry-run switch lives in an annotation, not in the spec.
const DRY_RUN_ANNOTATION: &str = "istio.io/dry-run";

/// One converted AuthorizationPolicy, with where it came from for error messages.
struct Imported {
    origin: String,
    policy: Mapping,
}

pub(crate) fn run(args: &ImportArgs) -> Result<ExitCode, Failure> {
    let text = read_text(&args.file)?;
    let file = args.file.display().to_string();
    let mut resources: Vec<(String, Value)> = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(&text).enumerate() {
        let value = Value::deserialize(de).map_err(|e| Failure(format!("{file}: document {}: {e}", i + 1)))?;
        collect(format!("document {}", i + 1), value, &mut resources);
    }

    let mut errors: Vec<String> = Vec::new();
    let mut imported: Vec<Imported> = Vec::new();
    for (origin, resource) in resources {
        match convert(&origin, &resource) {
            Ok(Some(p)) => imported.push(p),
            Ok(None) => {}
            Err(mut errs) => errors.append(&mut errs),
        }
    }

    // Each policy must compile on its own; errors name the Istio field (`spec.rules[0]...`).
    for p in &imported {
        let doc = Value::Mapping(Mapping::from_iter([(
            Value::from("policies"),
            Value::Sequence(vec![Value::Mapping(p.policy.clone())]),
        )]));
        if let Err(errs) = compile(&doc) {
            for e in errs {
                let path = e.path.strip_prefix("policies[0]").map_or(e.path.clone(), |rest| format!("spec{rest}"));
                errors.push(format!("{}: {path}: {}", p.origin, e.message));
            }
        }
    }
    if imported.is_empty() && errors.is_empty() {
        errors.push("no AuthorizationPolicy found".to_owned());
    }
    let document = Value::Mapping(Mapping::from_iter([(
        Value::from("policies"),
        Value::Sequence(imported.iter().map(|p| Value::Mapping(p.policy.clone())).collect()),
    )]));
    if errors.is_empty() {
        // Together, too: names must be unique across the document.
        if let Err(errs) = compile(&document) {
            errors.extend(errs.into_iter().map(|e| format!("{}: {}", e.path, e.message)));
        }
    }
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("{file}: {e}");
        }
        eprintln!("{file}: not imported: {} error{}", errors.len(), if errors.len() == 1 { "" } else { "s" });
        return Ok(ExitCode::from(EXIT_INVALID));
    }

    let out = if args.json {
        serde_json::to_string_pretty(&document).map_err(|e| Failure(format!("cannot print JSON: {e}")))?
    } else {
        let yaml = serde_yaml::to_string(&document).map_err(|e| Failure(format!("cannot print YAML: {e}")))?;
        format!("# Imported by `peerguard import` from {file}\n{yaml}")
    };
    println!("{}", out.trim_end());
    Ok(ExitCode::SUCCESS)
}

/// Compiles an imported document with the loader every command uses.
fn compile(doc: &Value) -> Result<(), Vec<ConfigError>> {
    let value =
        serde_json::to_value(doc).map_err(|e| vec![ConfigError::new(".", format!("cannot convert to JSON: {e}"))])?;
    PolicyFile::from_value(Path::new("imported"), value).map(|_| ()).map_err(|e| e.into_config_errors().0)
}

/// Flattens `kind: List` (what `kubectl get -o yaml` prints) into its items; drops empty documents.
fn collect(origin: String, value: Value, out: &mut Vec<(String, Value)>) {
    if value.is_null() {
        return;
    }
    if value.get("kind").and_then(Value::as_str) == Some("List") {
        if let Some(Value::Sequence(items)) = value.get("items") {
            for (i, item) in items.iter().enumerate() {
                collect(format!("{origin}, items[{i}]"), item.clone(), out);
            }
            return;
        }
    }
    out.push((origin, value));
}

fn convert(origin: &str, resource: &Value) -> Result<Option<Imported>, Vec<String>> {
    let kind = resource.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = resource.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str);
    if kind != "AuthorizationPolicy" {
        let what = if kind.is_empty() { "a document without kind".to_owned() } else { format!("kind {kind}") };
        eprintln!("warning: {origin}: skipping {what}{}", name.map(|n| format!(" ({n})")).unwrap_or_default());
        return Ok(None);
    }
    let api = resource.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if !api.starts_with("security.istio.io/") {
        eprintln!("warning: {origin}: apiVersion {api:?} is not security.istio.io/*; converting it anyway");
    }
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return Err(vec![format!("{origin}: metadata.name is missing")]);
    };
    let namespace = resource.get("metadata").and_then(|m| m.get("namespace")).and_then(Value::as_str);
    let full_name = match namespace {
        Some(ns) if !ns.is_empty() => format!("{ns}.{name}"),
        _ => name.to_owned(),
    };
    let origin = format!("{origin} ({full_name})");

    let empty = Mapping::new();
    let spec = match resource.get("spec") {
        None | Some(Value::Null) => &empty,
        Some(Value::Mapping(m)) => m,
        Some(_) => return Err(vec![format!("{origin}: spec is not a mapping")]),
    };
    let mut errors = Vec::new();
    let mut policy = Mapping::new();
    policy.insert(Value::from("name"), Value::from(full_name.as_str()));
    let action = spec.get("action").cloned().unwrap_or_else(|| Value::from("ALLOW"));
    match action.as_str() {
        Some("ALLOW" | "DENY" | "AUDIT") => {}
        Some("CUSTOM") => errors.push(format!(
            "{origin}: spec.action: CUSTOM (external authorization through spec.provider) is not supported; \
             keep this policy in Istio"
        )),
        _ => errors.push(format!("{origin}: spec.action: {action:?} is not ALLOW, DENY, AUDIT or CUSTOM")),
    }
    policy.insert(Value::from("action"), action);
    let dry_run = resource
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(DRY_RUN_ANNOTATION))
        .and_then(|v| v.as_str().map(|s| s.eq_ignore_ascii_case("true")).or(v.as_bool()))
        .unwrap_or(false);
    if dry_run {
        policy.insert(Value::from("dryRun"), Value::from(true));
    }

    for (key, value) in spec {
        let key = key.as_str().unwrap_or("");
        match key {
            "action" => {}
            "rules" => {
                policy.insert(Value::from("rules"), value.clone());
            }
            "selector" | "targetRef" | "targetRefs" => eprintln!(
                "note: {origin}: dropped spec.{key}: in peerguard the WasmPlugin's selector/targetRefs \
                 decide which workloads run the filter, so every imported policy applies wherever it runs"
            ),
            "provider" => {
                // Reported with the CUSTOM action above; a provider without it is still wrong.
                if action_is_not_custom(spec) {
                    errors.push(format!(
                        "{origin}: spec.provider: only meaningful with action CUSTOM, which is not supported"
                    ));
                }
            }
            other => {
                errors.push(format!("{origin}: spec.{other}: not an AuthorizationPolicy field peerguard supports"))
            }
        }
    }
    if errors.is_empty() {
        Ok(Some(Imported { origin, policy }))
    } else {
        Err(errors)
    }
}

fn action_is_not_custom(spec: &Mapping) -> bool {
    spec.get("action").and_then(Value::as_str) != Some("CUSTOM")
}
