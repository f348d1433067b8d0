//! The Envoy JSON that runs this filter: the Wasm HTTP filter's config and the stats tag extractors.
//!
//! `peerguard render envoy`, the e2e launcher, the Istio-shaped test configs and the bench all
//! build their Envoy configs from these plain functions (no host calls), so that what the tests
//! run is what users deploy, and the tag extractors cannot drift from [`STATS_TAGS`].

use serde_json::{json, Value};

use crate::metrics::STATS_TAGS;

/// Type URL of Envoy's Wasm HTTP filter config (`envoy.extensions.filters.http.wasm.v3.Wasm`).
pub const WASM_TYPE_URL: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
/// Type URL of the `google.protobuf.StringValue` that carries the plugin and VM configurations.
pub const STRING_VALUE_TYPE_URL: &str = "type.googleapis.com/google.protobuf.StringValue";
/// The Wasm runtime the filter is built and tested for.
pub const V8_RUNTIME: &str = "envoy.wasm.runtime.v8";
/// The name the filter, its plugin, root context and VM get unless a deployment names them.
pub const DEFAULT_NAME: &str = "peerguard";

/// One peerguard plugin in Envoy's Wasm HTTP filter.
#[derive(Clone, Copy, Debug)]
pub struct WasmFilter<'a> {
    /// `config.name`: the plugin's name in Envoy's logs.
    pub name: &'a str,
    /// `config.root_id`: which root context of the module runs the plugin.
    pub root_id: &'a str,
    /// `vm_config.vm_id`: plugins with the same VM id and code share one VM. `None` leaves it out,
    /// as istiod does for a WasmPlugin.
    pub vm_id: Option<&'a str>,
    /// The module file (`vm_config.code.local.filename`).
    pub wasm: &'a str,
    /// The plugin configuration: the policy, as a JSON string.
    pub configuration: &'a str,
    /// `vm_config.configuration`: the filter's VM options, as a JSON string.
    pub vm_configuration: Option<&'a str>,
}

impl<'a> WasmFilter<'a> {
    /// The plugin [`DEFAULT_NAME`] (also its root id and VM id) running `wasm` with the policy
    /// `configuration`.
    pub fn new(wasm: &'a str, configuration: &'a str) -> WasmFilter<'a> {
        WasmFilter {
            name: DEFAULT_NAME,
            root_id: DEFAULT_NAME,
            vm_id: Some(DEFAULT_NAME),
            wasm,
            configuration,
            vm_configuration: None,
        }
    }

    /// The same plugin under `name`, which also becomes its root id and VM id.
    pub fn named(self, name: &'a str) -> WasmFilter<'a> {
        WasmFilter { name, root_id: name, vm_id: Some(name), ..self }
    }

    /// The filter's `typed_config` (also the body of an ECDS `TypedExtensionConfig`). It never
    /// fails open: if the VM cannot start or the plugin crashes, Envoy refuses the request rather
    /// than pass it unchecked (an invalid policy is the filter's own 503 `config_invalid`,
    /// docs/policy.md "Decision order").
    pub fn typed_config(&self) -> Value {
        let mut vm = json!({
            "runtime": V8_RUNTIME,
            "code": {"local": {"filename": self.wasm}}
        });
        if let Some(id) = self.vm_id {
            vm["vm_id"] = id.into();
        }
        if let Some(c) = self.vm_configuration {
            vm["configuration"] = string_value(c);
        }
        json!({
            "@type": WASM_TYPE_URL,
            "config": {
                "name": self.name,
                "root_id": self.root_id,
                "vm_config": vm,
                "configuration": string_value(self.configuration),
                "fail_open": false
            }
        })
    }

    /// The entry for an HCM's `http_filters`, named `filter_name`.
    pub fn http_filter(&self, filter_name: &str) -> Value {
        json!({"name": filter_name, "typed_config": self.typed_config()})
    }
}

/// Type URL of Envoy's dynamic-module HTTP filter config
/// (`envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter`).
pub const NATIVE_TYPE_URL: &str =
    "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter";
/// `dynamic_module_config.name` of the native build: Envoy loads `libpeerguard_native.so` from
/// `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`.
pub const NATIVE_MODULE_NAME: &str = "peerguard_native";
/// The environment variable that tells Envoy where dynamic modules are.
pub const NATIVE_SEARCH_PATH_ENV: &str = "ENVOY_DYNAMIC_MODULES_SEARCH_PATH";
/// The stats namespace of the native build's counters: the Wasm build's, so that both builds
/// publish the very same stats (`wasmcustom.peerguard.allowed`, `peerguard_allowed` in
/// Prometheus), [`STATS_TAGS`] apply unchanged, and dashboards and alerts need no second copy.
pub const NATIVE_METRICS_NAMESPACE: &str = "wasmcustom";

/// The Envoy runtime flag that drops a dynamic module's stats namespace in `/stats/prometheus`.
/// Envoy 1.40 strips the `wasmcustom` namespace of a Wasm filter always, but a dynamic module's
/// loaded by name only under this flag (off by default): without it the native build's counters
/// read `envoy_wasmcustom_peerguard_allowed` instead of `peerguard_allowed`.
pub const NATIVE_STRIP_PREFIX_FLAG: &str = "envoy.reloadable_features.dynamic_modules_strip_custom_stat_prefix";

/// The bootstrap's `layered_runtime` for the native build: [`NATIVE_STRIP_PREFIX_FLAG`] on, so
/// that Prometheus sees the Wasm build's metric names and the shipped rules and dashboard apply.
pub fn native_layered_runtime() -> Value {
    json!({"layers": [{"name": "peerguard-native", "static_layer": {NATIVE_STRIP_PREFIX_FLAG: true}}]})
}

/// peerguard as an Envoy dynamic module (`native/`), running the policy `configuration`.
#[derive(Clone, Copy, Debug)]
pub struct NativeFilter<'a> {
    /// The policy, as a JSON string (the same text the Wasm filter gets).
    pub configuration: &'a str,
}

impl NativeFilter<'_> {
    /// The filter's `typed_config` (also the body of an ECDS `TypedExtensionConfig`).
    /// `do_not_close` keeps the library loaded when its last config goes: worker threads hold
    /// per-thread state of the module until they exit.
    pub fn typed_config(&self) -> Value {
        json!({
            "@type": NATIVE_TYPE_URL,
            "dynamic_module_config": {
                "name": NATIVE_MODULE_NAME,
                "do_not_close": true,
                "metrics_namespace": NATIVE_METRICS_NAMESPACE
            },
            "filter_name": DEFAULT_NAME,
            "filter_config": string_value(self.configuration)
        })
    }

    /// The entry for an HCM's `http_filters`, named `filter_name`.
    pub fn http_filter(&self, filter_name: &str) -> Value {
        json!({"name": filter_name, "typed_config": self.typed_config()})
    }
}

fn string_value(s: &str) -> Value {
    json!({"@type": STRING_VALUE_TYPE_URL, "value": s})
}

/// The bootstrap's `stats_config.stats_tags`: [`STATS_TAGS`] as Envoy `TagSpecifier`s, so that
/// the reason and policy the filter encodes in its counter names become Prometheus labels.
pub fn stats_tags() -> Value {
    Value::Array(STATS_TAGS.iter().map(|(tag, regex)| json!({"tag_name": tag, "regex": regex})).collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code
    use super::*;

    #[test]
    fn the_policy_and_vm_options_are_string_values_and_the_filter_fails_closed() {
        let f =
            WasmFilter { vm_configuration: Some(r#"{"a":1}"#), ..WasmFilter::new("/m.wasm", r#"{"mode":"enforce"}"#) };
        let c = &f.typed_config()["config"];
        assert_eq!(f.typed_config()["@type"], WASM_TYPE_URL);
        assert_eq!(c["configuration"], json!({"@type": STRING_VALUE_TYPE_URL, "value": r#"{"mode":"enforce"}"#}));
        assert_eq!(c["vm_config"]["configuration"]["value"], r#"{"a":1}"#);
        assert_eq!(c["vm_config"]["code"]["local"]["filename"], "/m.wasm");
        assert_eq!(c["fail_open"], false);
        assert_eq!(
            (&c["name"], &c["root_id"], &c["vm_config"]["vm_id"]),
            (&json!("peerguard"), &json!("peerguard"), &json!("peerguard"))
        );
    }

    #[test]
    fn named_renames_plugin_root_and_vm_and_no_vm_id_leaves_it_out() {
        let f = WasmFilter::new("/m.wasm", "{}").named("pg-1");
        let c = &f.http_filter("peerguard")["typed_config"]["config"];
        assert_eq!(
            (&c["name"], &c["root_id"], &c["vm_config"]["vm_id"]),
            (&json!("pg-1"), &json!("pg-1"), &json!("pg-1"))
        );
        let istio = WasmFilter { vm_id: None, ..f };
        assert!(istio.typed_config()["config"]["vm_config"].get("vm_id").is_none());
        assert!(istio.typed_config()["config"]["vm_config"].get("configuration").is_none());
    }

    #[test]
    fn the_native_filter_loads_libpeerguard_native_with_the_policy_as_a_string_value() {
        let c = NativeFilter { configuration: r#"{"mtls":"strict"}"# }.http_filter("peerguard");
        assert_eq!(c["typed_config"]["@type"], NATIVE_TYPE_URL);
        assert_eq!(c["typed_config"]["dynamic_module_config"]["name"], "peerguard_native");
        assert_eq!(c["typed_config"]["dynamic_module_config"]["metrics_namespace"], "wasmcustom");
        assert_eq!(
            c["typed_config"]["filter_config"],
            json!({"@type": STRING_VALUE_TYPE_URL, "value": r#"{"mtls":"strict"}"#})
        );
    }

    #[test]
    fn stats_tags_are_the_metrics_extractors() {
        let tags = stats_tags();
        assert_eq!(tags.as_array().map(Vec::len), Some(STATS_TAGS.len()));
        for (got, (name, regex)) in tags.as_array().into_iter().flatten().zip(STATS_TAGS) {
            assert_eq!(got, &json!({"tag_name": name, "regex": regex}));
        }
    }
}
