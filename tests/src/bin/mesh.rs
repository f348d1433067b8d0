//! `just mesh`: the local mesh's call matrix; exits 0 only when it matches the policies.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let root = peerguard_e2e::repo_root();
    // `just mesh` builds the CLI first; PEERGUARD_BIN overrides, CARGO_TARGET_DIR is respected.
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let peerguard =
        std::env::var_os("PEERGUARD_BIN").map(PathBuf::from).unwrap_or_else(|| target.join("debug/peerguard"));
    let workdir = root.join("target/mesh");
    let _ = std::fs::remove_dir_all(&workdir);
    match peerguard_e2e::mesh::run(&peerguard, &workdir) {
        Ok(rows) => {
            print!("{}", peerguard_e2e::mesh::table(&rows));
            let failed = rows.iter().filter(|r| !r.ok()).count();
            println!(
                "\n{} passed, {} failed (sidecar configs, certs and Envoy logs in {})",
                rows.len() - failed,
                failed,
                workdir.display()
            );
            if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("mesh: {e:#}");
            ExitCode::from(2)
        }
    }
}
