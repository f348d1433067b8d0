//! The module users load must stay within 1 MiB (`just build` prints its size): V8 compiles the
//! whole module before the first request on every Envoy start, so each KiB is start-up time, and
//! some registries and Istio's WasmPlugin fetch path are tuned for small modules. Fails (never
//! skips) when the module was not built: `just build`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

/// 1 MiB, on both toolchains `scripts/build-wasm.sh` may pick.
const LIMIT: u64 = 1024 * 1024;

#[test]
fn the_filter_module_is_at_most_one_mib() {
    let path = peerguard_e2e::repo::wasm_path().unwrap_or_else(|e| panic!("{e:#} (build it with `just build`)"));
    let bytes = std::fs::metadata(&path).unwrap().len();
    let wasm = std::fs::read(&path).unwrap();
    assert_eq!(&wasm[..4], b"\0asm", "{} is not a wasm module", path.display());
    assert!(
        bytes <= LIMIT,
        "{} is {bytes} bytes, over the {LIMIT}-byte limit by {}: see the README's \"Performance\" section for what each dependency costs",
        path.display(),
        bytes - LIMIT
    );
}
