//! The bodies of peerguard's fuzz targets, written once for the libFuzzer binaries and the replay tests.
//!
//! Each module has a `run(&[u8])` that never returns an error: it returns on input it does not
//! care about and asserts the target's property on the rest, so a failed assertion is a finding.
//! `fuzz/fuzz_targets/*.rs` wrap these for libFuzzer (nightly, `just fuzz`); `tests/replay.rs`
//! runs every committed seed and regression through them on stable (`cargo test --workspace`).

pub mod cert_prepare;
pub mod decide;
mod fixtures;
pub mod path_normalize;
pub mod policy_compile;
mod request;
pub mod xfcc_bind;

/// A target's name (its directory under `fuzz/seeds` and `fuzz/regressions`, its libFuzzer
/// binary) and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, in the order `just fuzz` runs them.
pub const TARGETS: [Target; 5] = [
    ("policy_compile", policy_compile::run),
    ("xfcc_bind", xfcc_bind::run),
    ("cert_prepare", cert_prepare::run),
    ("path_normalize", path_normalize::run),
    ("decide", decide::run),
];
