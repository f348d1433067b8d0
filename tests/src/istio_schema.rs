//! Validates Kubernetes manifests against Istio's published CRD schemas (vendored in `istio/crds/`).
//!
//! The CRD's `openAPIV3Schema` is handed to the `jsonschema` crate as is, with two adjustments
//! that make it behave like the API server under `kubectl apply` (strict field validation):
//! unknown fields are rejected unless the schema preserves them, and `apiVersion`, `kind` and
//! `metadata` are checked at the top. CEL rules (`x-kubernetes-validations`) are not evaluated;
//! see `istio/crds/README.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use crate::repo_root;

/// One CRD: group, kind, and the schema of each served version.
pub struct Crd {
    pub group: String,
    pub kind: String,
    pub versions: BTreeMap<String, Value>,
}

/// All vendored CRDs, by kind.
pub struct Schemas {
    pub crds: BTreeMap<String, Crd>,
}

/// Istio's API groups: a manifest in one of these must have a vendored CRD.
pub fn is_istio_group(api_version: &str) -> bool {
    api_version.split('/').next().is_some_and(|g| g.ends_with(".istio.io"))
}

impl Schemas {
    /// Loads every `*.yaml` CRD in `<repo>/istio/crds`.
    pub fn load() -> Result<Self> {
        Self::load_dir(&repo_root().join("istio/crds"))
    }

    pub fn load_dir(dir: &Path) -> Result<Self> {
        let mut crds = BTreeMap::new();
        for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            for doc in load_yaml_docs(&path)? {
                if doc["kind"] != "CustomResourceDefinition" {
                    continue;
                }
                let spec = &doc["spec"];
                let kind = spec["names"]["kind"].as_str().ok_or_else(|| anyhow!("{}: no kind", path.display()))?;
                let mut versions = BTreeMap::new();
                for v in spec["versions"].as_array().into_iter().flatten() {
                    if v["served"] != true {
                        continue;
                    }
                    let name = v["name"].as_str().unwrap_or_default().to_string();
                    versions.insert(name, v["schema"]["openAPIV3Schema"].clone());
                }
                crds.insert(
                    kind.to_string(),
                    Crd {
                        group: spec["group"].as_str().unwrap_or_default().to_string(),
                        kind: kind.to_string(),
                        versions,
                    },
                );
            }
        }
        if crds.is_empty() {
            bail!("no CRDs in {}", dir.display());
        }
        Ok(Self { crds })
    }

    /// Validates one resource; returns every error, each with its JSON pointer.
    pub fn validate(&self, doc: &Value) -> Result<(), Vec<String>> {
        let kind = doc["kind"].as_str().unwrap_or_default();
        let api_version = doc["apiVersion"].as_str().unwrap_or_default();
        let Some(crd) = self.crds.get(kind) else {
            return Err(vec![format!("no vendored CRD for kind {kind:?} ({api_version})")]);
        };
        let Some((group, version)) = api_version.split_once('/') else {
            return Err(vec![format!("apiVersion {api_version:?} is not GROUP/VERSION")]);
        };
        if group != crd.group {
            return Err(vec![format!("apiVersion group {group:?} is not {:?}", crd.group)]);
        }
        let Some(schema) = crd.versions.get(version) else {
            let served: Vec<_> = crd.versions.keys().collect();
            return Err(vec![format!("{kind} {version} is not a served version (served: {served:?})")]);
        };
        let schema = strict_root(schema, api_version, kind);
        let validator = match jsonschema::options().build(&schema) {
            Ok(v) => v,
            Err(e) => return Err(vec![format!("the CRD schema does not compile: {e}")]),
        };
        let errors: Vec<String> = validator.iter_errors(doc).map(|e| format!("{}: {}", e.instance_path(), e)).collect();
        let mut errors = errors;
        errors.extend(cel_equivalents(kind, doc));
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// The schema with unknown fields refused (recursively) and the top-level fields checked.
fn strict_root(schema: &Value, api_version: &str, kind: &str) -> Value {
    let mut s = schema.clone();
    close_objects(&mut s);
    if let Some(props) = s.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert("apiVersion".into(), json!({"const": api_version}));
        props.insert("kind".into(), json!({"const": kind}));
        props.insert(
            "metadata".into(),
            json!({"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 253, "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"},
                "namespace": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"}
            }}),
        );
    }
    let req = s.as_object_mut().map(|o| o.entry("required").or_insert_with(|| json!([])));
    if let Some(Value::Array(r)) = req {
        for k in ["apiVersion", "kind", "metadata"] {
            r.push(json!(k));
        }
    }
    s
}

/// Adds `additionalProperties: false` to every object schema with `properties`, unless it
/// preserves unknown fields or already says what extra properties may be.
fn close_objects(v: &mut Value) {
    match v {
        Value::Object(o) => {
            let preserve = o.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
            if o.contains_key("properties") && !o.contains_key("additionalProperties") && !preserve {
                o.insert("additionalProperties".into(), Value::Bool(false));
            }
            for (_, child) in o.iter_mut() {
                close_objects(child);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(close_objects),
        _ => {}
    }
}

/// The CEL rules of these CRDs that a shipped manifest could plausibly break, checked by hand.
fn cel_equivalents(kind: &str, doc: &Value) -> Vec<String> {
    let spec = &doc["spec"];
    let mut errors = Vec::new();
    if kind == "WasmPlugin" {
        let n = ["selector", "targetRef", "targetRefs"].iter().filter(|k| spec.get(**k).is_some()).count();
        if n > 1 {
            errors.push("/spec: only one of targetRefs or selector can be set".into());
        }
        let url = spec["url"].as_str().unwrap_or_default();
        if !["oci://", "http://", "https://", "file://"].iter().any(|p| url.starts_with(p)) {
            errors.push("/spec/url: url must have schema one of [http, https, file, oci]".into());
        }
    }
    if kind == "TrafficExtension" {
        if spec.get("selector").is_some() && spec.get("targetRefs").is_some() {
            errors.push("/spec: only one of targetRefs or selector can be set".into());
        }
        if spec.get("wasm").is_some() == spec.get("lua").is_some() {
            errors.push("/spec: exactly one of wasm or lua must be set".into());
        }
        if let Some(url) = spec["wasm"]["url"].as_str() {
            if !["oci://", "http://", "https://", "file://"].iter().any(|p| url.starts_with(p)) {
                errors.push("/spec/wasm/url: url must have schema one of [http, https, file, oci]".into());
            }
        }
        for (i, t) in spec["targetRefs"].as_array().into_iter().flatten().enumerate() {
            if t["namespace"].as_str().is_some_and(|n| !n.is_empty()) {
                errors.push(format!(
                    "/spec/targetRefs/{i}/namespace: cross namespace referencing is not currently supported"
                ));
            }
        }
    }
    if kind == "PeerAuthentication"
        && spec.get("portLevelMtls").is_some()
        && spec["selector"]["matchLabels"].as_object().is_none_or(|m| m.is_empty())
    {
        errors.push("/spec: portLevelMtls requires selector".into());
    }
    errors
}

/// Every YAML document in a file, as JSON values (empty documents skipped).
pub fn load_yaml_docs(path: &Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    parse_yaml_docs(&text).with_context(|| format!("parse {}", path.display()))
}

pub fn parse_yaml_docs(text: &str) -> Result<Vec<Value>> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for de in serde_yaml::Deserializer::from_str(text) {
        let v = Value::deserialize(de)?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}

/// Every `*.yaml` under `dir`, recursively, sorted.
pub fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("read {}", d.display()))? {
            let p = entry?.path();
            if p.is_dir() {
                stack.push(p);
            } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}
