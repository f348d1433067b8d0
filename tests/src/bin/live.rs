//! `cargo run -p peerguard-e2e --bin live -- init|reload|rotate ...`: drives the files that the
//! live-reload Envoy config (`envoy/live-reload.yaml`) watches, so a policy or the server
//! certificate can change while Envoy runs. `just live-init`, `just reload` and `just rotate` call it.
//!
//! Every write is atomic (temp file + rename, or a `..data` symlink swap): Envoy's directory
//! watch sees one move and never a half-written file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use peerguard_e2e::envoy::{rotate_cert_dir, write_ecds, write_server_sds, ECDS_FILE, SDS_FILE};

const USAGE: &str = "usage:
  live init   [--dir DIR] [--policy FILE] [--cert PEM --key PEM] [--wasm FILE]
  live reload POLICY [--dir DIR] [--wasm FILE]
  live rotate CERT_PEM KEY_PEM [--dir DIR]

  DIR defaults to .run/live (relative to the repository root, where Envoy runs), holding
  ecds/peerguard.yaml (the plugin config), sds/server.yaml (the server secret) and server-certs/.
  POLICY is a peerguard policy document, YAML or JSON; it is embedded as the plugin configuration.";

struct Opts {
    dir: PathBuf,
    wasm: PathBuf,
    policy: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    positional: Vec<String>,
}

fn parse(args: impl Iterator<Item = String>) -> Result<Opts> {
    let mut o = Opts {
        dir: PathBuf::from(".run/live"),
        wasm: PathBuf::from("dist/peerguard.wasm"),
        policy: PathBuf::from("envoy/policy.yaml"),
        cert: PathBuf::from("envoy/certs/server.pem"),
        key: PathBuf::from("envoy/certs/server-key.pem"),
        positional: Vec::new(),
    };
    let mut it = args;
    while let Some(a) = it.next() {
        let mut val = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match a.as_str() {
            "--dir" => o.dir = val("--dir")?.into(),
            "--wasm" => o.wasm = val("--wasm")?.into(),
            "--policy" => o.policy = val("--policy")?.into(),
            "--cert" => o.cert = val("--cert")?.into(),
            "--key" => o.key = val("--key")?.into(),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            s if s.starts_with("--") => bail!("unknown option {s:?}\n{USAGE}"),
            _ => o.positional.push(a),
        }
    }
    Ok(o)
}

/// The policy as the JSON string the filter receives (YAML is converted, keys kept as written).
fn policy_json(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let value: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(_) => {
            serde_yaml::from_str(&text).with_context(|| format!("{} is neither JSON nor YAML", path.display()))?
        }
    };
    Ok(serde_json::to_string(&value)?)
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))
}

fn run() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let cmd = args.next().unwrap_or_default();
    let o = parse(args)?;
    let ecds = o.dir.join("ecds").join(ECDS_FILE);
    let certs = o.dir.join("server-certs");
    match (cmd.as_str(), o.positional.as_slice()) {
        ("init", []) => {
            write_ecds(&ecds, &policy_json(&o.policy)?, &o.wasm)?;
            let (cert, key) = rotate_cert_dir(&certs, &read(&o.cert)?, &read(&o.key)?)?;
            write_server_sds(&o.dir.join("sds").join(SDS_FILE), &cert, &key)?;
            println!("wrote {} (policy {}) and {}", ecds.display(), o.policy.display(), o.dir.join("sds").display());
        }
        ("reload", [policy]) => {
            write_ecds(&ecds, &policy_json(Path::new(policy))?, &o.wasm)?;
            println!("swapped {} to {policy}; Envoy applies it to new requests", ecds.display());
        }
        ("rotate", [cert, key]) => {
            rotate_cert_dir(&certs, &read(Path::new(cert))?, &read(Path::new(key))?)?;
            println!("rotated {} to {cert}", certs.display());
        }
        _ => bail!("{USAGE}"),
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("live: {e:#}");
            ExitCode::from(2)
        }
    }
}
