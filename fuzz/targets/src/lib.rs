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

/// Context for assertion messages, formatted only when an assertion fails (targets run millions
/// of times, and most of them would otherwise format a `Debug` string they never print).
pub(crate) struct Lazy<F: Fn(&mut std::fmt::Formatter<'_>) -> std::fmt::Result>(pub(crate) F);

impl<F: Fn(&mut std::fmt::Formatter<'_>) -> std::fmt::Result> std::fmt::Display for Lazy<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (self.0)(f)
    }
}

#[cfg(test)]
mod tests {
    use super::Lazy;

    #[test]
    fn lazy_context_formats_what_it_wraps() {
        let n = 42;
        assert_eq!(Lazy(|f| write!(f, "n={n:?}")).to_string(), "n=42");
    }
}
