//! Replays every committed seed (`fuzz/seeds/<target>/`) and every crash ever found
//! (`fuzz/regressions/<target>/`) through the target bodies, one test per target.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use peerguard_fuzz::TARGETS;

/// `fuzz/`, where seeds, regressions and the libFuzzer manifest live.
fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The regular files directly under `fuzz/<kind>/<target>/`, sorted; none when the folder is absent.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join(kind).join(target);
    let mut files: Vec<PathBuf> = match fs::read_dir(&dir) {
        Ok(entries) => entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file()).collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_owned()
    }
}

/// Runs every input of `target`; fails naming each file whose run panicked, with its message.
fn replay(target: &str) {
    let Some(&(_, run)) = TARGETS.iter().find(|(name, _)| *name == target) else {
        panic!("no target named {target} in peerguard_fuzz::TARGETS");
    };
    let seeds = inputs("seeds", target);
    assert!(!seeds.is_empty(), "fuzz/seeds/{target}/ has no inputs");
    let mut failures = Vec::new();
    let all: Vec<PathBuf> = seeds.into_iter().chain(inputs("regressions", target)).collect();
    for file in &all {
        let data = fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| run(&data))) {
            failures.push(format!("{}: {}", file.display(), panic_message(payload.as_ref())));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} inputs of target {target} fail (reproduce one with `cargo +nightly fuzz run -O -a --fuzz-dir fuzz {target} FILE`):\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

#[test]
fn replay_policy_compile() {
    replay("policy_compile");
}

#[test]
fn replay_xfcc_bind() {
    replay("xfcc_bind");
}

#[test]
fn replay_cert_prepare() {
    replay("cert_prepare");
}

#[test]
fn replay_path_normalize() {
    replay("path_normalize");
}

#[test]
fn replay_decide() {
    replay("decide");
}

/// Every target has a replay test above, a libFuzzer binary in fuzz/Cargo.toml and a seed
/// folder, and no seed or regression folder belongs to a target that does not exist.
#[test]
fn targets_seeds_and_binaries_agree() {
    let names: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
    let manifest = fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    let this_file = include_str!("replay.rs");
    for name in &names {
        assert!(manifest.contains(&format!("name = \"{name}\"")), "fuzz/Cargo.toml has no [[bin]] {name}");
        assert!(fuzz_dir().join(format!("fuzz_targets/{name}.rs")).is_file(), "no fuzz/fuzz_targets/{name}.rs");
        assert!(this_file.contains(&format!("fn replay_{name}()")), "no replay test for {name}");
        assert!(fuzz_dir().join("seeds").join(name).is_dir(), "no fuzz/seeds/{name}/");
    }
    for kind in ["seeds", "regressions"] {
        for entry in fs::read_dir(fuzz_dir().join(kind)).unwrap().filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() {
                assert!(names.contains(&name.as_str()), "fuzz/{kind}/{name}/ belongs to no target");
            }
        }
    }
}
