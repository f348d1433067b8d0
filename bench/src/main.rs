//! `peerguard-bench`: runs the interleaved benchmark and prints the markdown table.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use peerguard_bench::{report, run, Options};

const USAGE: &str = "usage: peerguard-bench [--quick] [--rounds N] [--duration SECS] [--warmup SECS] \
[--connections N] [--threads N] [--scale 10,1000,10000] [--only id,id] [--out DIR]
  ids: none wasm-floor rbac-N lua-N peerguard-N peerguard-certs-N peerguard-full-N native-floor native-N native-full-N rbac-matcher-N
  env: ENVOY_BIN, PEERGUARD_WASM (dist/peerguard.wasm), PEERGUARD_FLOOR_WASM (dist/floor.wasm),
       PEERGUARD_NATIVE_DIR (dist, holding libpeerguard_native.so from `just build-native`
       and libpeerguard_floor_native.so from `scripts/build-native.sh floor`)";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut opts = if args.iter().any(|a| a == "--quick") { Options::quick() } else { Options::full() };
    let mut it = args.iter();
    let secs = |v: Option<&String>| -> Result<Duration> {
        let v: f64 = v.context("missing value")?.parse().context("seconds")?;
        Ok(Duration::from_secs_f64(v))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => {}
            "--rounds" => opts.rounds = it.next().context("--rounds N")?.parse()?,
            "--duration" => opts.duration = secs(it.next())?,
            "--warmup" => opts.warmup = secs(it.next())?,
            "--connections" => opts.connections = it.next().context("--connections N")?.parse()?,
            "--threads" => opts.threads = it.next().context("--threads N")?.parse()?,
            "--scale" => {
                opts.scale =
                    it.next().context("--scale LIST")?.split(',').map(|s| s.parse()).collect::<Result<_, _>>()?
            }
            "--only" => opts.only = it.next().context("--only LIST")?.split(',').map(String::from).collect(),
            "--out" => opts.out_dir = PathBuf::from(it.next().context("--out DIR")?),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if opts.rounds == 0 || opts.connections == 0 || opts.scale.is_empty() {
        bail!("--rounds, --connections and --scale must be positive\n{USAGE}");
    }
    let r = run(&opts)?;
    let files = report::write_outputs(&r)?;
    println!("{}", report::markdown(&r));
    for f in files {
        eprintln!("wrote {}", f.display());
    }
    Ok(())
}
