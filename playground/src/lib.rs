//! The peerguard playground: the policy engine compiled to wasm32 with wasm-bindgen, for a static page (playground/www).
//!
//! The page sends JSON and gets JSON: [`evaluate`] decides one request with the same engine calls
//! as `peerguard check` and the filter; [`presets`] lists the shipped example policies with a
//! request each. Nothing here runs in Envoy: the filter does not depend on this crate.
#![forbid(unsafe_code)]

pub mod certs;
pub mod evaluate;
pub mod presets;

use wasm_bindgen::prelude::wasm_bindgen;

/// Decides one request: `input` is an [`evaluate::Input`] as JSON, the answer an
/// [`evaluate::Output`] as JSON.
#[wasm_bindgen]
pub fn evaluate(input: &str) -> String {
    let output = match serde_json::from_str::<evaluate::Input>(input) {
        Ok(i) => evaluate::evaluate(&i),
        Err(e) => evaluate::Output {
            input_errors: vec![evaluate::Problem { path: String::from("(input)"), message: e.to_string() }],
            ..evaluate::Output::default()
        },
    };
    serde_json::to_string(&output)
        .unwrap_or_else(|e| format!("{{\"inputErrors\":[{{\"path\":\"(output)\",\"message\":{:?}}}]}}", e.to_string()))
}

/// The presets, as a JSON list of [`presets::Preset`].
#[wasm_bindgen]
pub fn presets() -> String {
    serde_json::to_string(&presets::all()).unwrap_or_else(|_| String::from("[]"))
}

/// The crate version, shown in the page's footer.
#[wasm_bindgen]
pub fn version() -> String {
    String::from(env!("CARGO_PKG_VERSION"))
}
