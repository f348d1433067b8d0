//! `just compose-local`: the docker-compose topology of envoy/ without Docker; exits 0 only when every call answers as documented.

use std::process::ExitCode;

fn main() -> ExitCode {
    let logdir = peerguard_e2e::repo_root().join("target/compose-local");
    match peerguard_e2e::standalone::run(&logdir) {
        Ok(calls) => {
            print!("{}", peerguard_e2e::standalone::table(&calls));
            let failed = calls.iter().filter(|c| !c.ok()).count();
            println!("\n{} passed, {} failed (Envoy logs in {})", calls.len() - failed, failed, logdir.display());
            if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("compose-local: {e:#}");
            ExitCode::from(2)
        }
    }
}
