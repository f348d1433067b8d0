//! Where the test kit finds things: the repository root, the Envoy binary and the built filter module.
//!
//! One definition each, used by the end-to-end tests, the CLI's tests and `bench/`. A missing
//! Envoy or module is an error saying how to get it, never a reason to skip.

use std::path::PathBuf;

use anyhow::{bail, Result};

/// The repository root (the parent of the `tests/` crate's directory).
pub fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// The Envoy binary: `$ENVOY_BIN`, else `<repo>/.tools/envoy/envoy`. Missing is an error.
pub fn envoy_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("ENVOY_BIN").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        bail!("Envoy not found: ENVOY_BIN={} does not exist; run `just envoy` or set ENVOY_BIN", p.display());
    }
    let p = repo_root().join(".tools/envoy/envoy");
    if p.is_file() {
        return Ok(p);
    }
    bail!("Envoy not found: run `just envoy` or set ENVOY_BIN (looked for {})", p.display())
}

/// Where the filter module is expected: `$PEERGUARD_WASM`, else `<repo>/dist/peerguard.wasm`,
/// whether or not it was built yet (the bench records the path before it checks it).
pub fn wasm_default_path() -> PathBuf {
    match std::env::var_os("PEERGUARD_WASM").filter(|p| !p.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => repo_root().join("dist/peerguard.wasm"),
    }
}

/// The filter module at [`wasm_default_path`]. Missing is an error.
pub fn wasm_path() -> Result<PathBuf> {
    let p = wasm_default_path();
    if p.is_file() {
        Ok(p)
    } else {
        bail!("peerguard wasm not found at {}: run `just build` (or set PEERGUARD_WASM)", p.display())
    }
}

/// Which build of the filter the end-to-end tests run: `PEERGUARD_BUILD=wasm` (the default) or
/// `native` (the dynamic module, `just build-native`). Anything else is an error, never a
/// silent fallback to one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Build {
    /// dist/peerguard.wasm in Envoy's Wasm filter (V8).
    Wasm,
    /// dist/libpeerguard_native.so as an Envoy dynamic module.
    Native,
}

impl Build {
    /// The build chosen by `PEERGUARD_BUILD`.
    pub fn from_env() -> Result<Build> {
        match std::env::var("PEERGUARD_BUILD").ok().as_deref().map(str::trim) {
            None | Some("") | Some("wasm") => Ok(Build::Wasm),
            Some("native") => Ok(Build::Native),
            Some(other) => bail!("PEERGUARD_BUILD={other}: expected wasm or native"),
        }
    }
}

/// The directory Envoy searches for the native module (`ENVOY_DYNAMIC_MODULES_SEARCH_PATH`):
/// `$PEERGUARD_NATIVE_DIR`, else `<repo>/dist`.
pub fn native_dir() -> PathBuf {
    match std::env::var_os("PEERGUARD_NATIVE_DIR").filter(|p| !p.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => repo_root().join("dist"),
    }
}

/// The native module in [`native_dir`]. Missing is an error.
pub fn native_path() -> Result<PathBuf> {
    let p = native_dir().join("libpeerguard_native.so");
    if p.is_file() {
        Ok(p)
    } else {
        bail!(
            "peerguard native module not found at {}: run `just build-native` (or set PEERGUARD_NATIVE_DIR)",
            p.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_root_is_the_workspace_root() {
        let root = repo_root();
        assert!(root.join("Cargo.toml").is_file(), "{}", root.display());
        assert!(root.join("tests/Cargo.toml").is_file(), "{}", root.display());
    }
}
