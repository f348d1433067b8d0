//! `just bench`: peerguard against no filter, native RBAC, Lua and the wasm floor, in one
//! interleaved run against a real Envoy (`--concurrency 1`, mTLS, direct_response).
//!
//! Each round starts every configuration's Envoy in turn (A B C … A B C …), measures it under a
//! closed-loop mTLS load, and stops it. Figures are medians over rounds; ratios are computed within
//! a round first, so slow drift of a shared machine cancels out.

pub mod certs;
pub mod chart;
pub mod configs;
pub mod envoy;
pub mod hist;
pub mod load;
pub mod report;
pub mod upstream;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::{json, Value};

use peerguard_e2e::{envoy_bin, repo_root};

use crate::certs::Pki;
use crate::configs::{Config, Kind, Shape, UpstreamLoad};

/// `$CARGO_TARGET_DIR/bench`, else `<repo>/target/bench`.
pub fn default_out_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target"));
    let target = if target.is_relative() { repo_root().join(target) } else { target };
    target.join("bench")
}

/// How to run.
#[derive(Clone, Debug, Serialize)]
pub struct Options {
    pub mode: String,
    pub rounds: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub connections: usize,
    pub threads: usize,
    /// Rule counts for the scale configurations; the first is the "same policy" size.
    pub scale: Vec<usize>,
    /// Only these configuration ids (all when empty).
    pub only: Vec<String>,
    pub out_dir: PathBuf,
    pub peerguard_wasm: PathBuf,
    pub floor_wasm: PathBuf,
    /// Entries in the CRL of the full-certificate configuration.
    pub crl_entries: usize,
    /// Also run RBAC's matcher form, the rule shapes, the floor with N reads and the latency
    /// mode (see [`Options::scale_and_latency_configs`]).
    pub extended: bool,
}

impl Options {
    /// `just bench`: 3 rounds of 8 s per configuration (about 7 minutes on 2 cores).
    pub fn full() -> Options {
        let dist = repo_root().join("dist");
        let env_path =
            |k: &str, d: PathBuf| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from).unwrap_or(d);
        Options {
            mode: "full".into(),
            rounds: 3,
            warmup: Duration::from_millis(1500),
            duration: Duration::from_secs(8),
            connections: 16,
            threads: 2,
            scale: vec![10, 1_000, 10_000],
            only: Vec::new(),
            out_dir: default_out_dir(),
            peerguard_wasm: peerguard_e2e::repo::wasm_default_path(),
            floor_wasm: env_path("PEERGUARD_FLOOR_WASM", dist.join("floor.wasm")),
            crl_entries: 10_000,
            extended: true,
        }
    }

    /// `just bench --quick`: about a minute.
    pub fn quick() -> Options {
        Options {
            mode: "quick".into(),
            rounds: 2,
            warmup: Duration::from_millis(400),
            duration: Duration::from_millis(1500),
            ..Options::full()
        }
    }

    /// The harness smoke test: two configurations, one short round.
    pub fn smoke(out_dir: &Path) -> Options {
        Options {
            mode: "smoke".into(),
            rounds: 1,
            warmup: Duration::from_millis(200),
            duration: Duration::from_millis(600),
            connections: 4,
            threads: 1,
            scale: vec![10],
            only: vec!["none".into(), "peerguard-10".into()],
            out_dir: out_dir.to_path_buf(),
            ..Options::full()
        }
    }

    pub fn configs(&self) -> Vec<Config> {
        let base = self.scale.first().copied().unwrap_or(10);
        let mut out = vec![
            Config::new(Kind::NoFilter, 0),
            Config::new(Kind::WasmFloor, 0),
            Config::new(Kind::Rbac, base),
            Config::new(Kind::Lua, base),
            Config::new(Kind::Peerguard, base),
            Config::new(Kind::PeerguardCertChecks, base),
            Config::new(Kind::PeerguardFullCert, base),
        ];
        for &n in self.scale.iter().skip(1) {
            out.push(Config::new(Kind::Rbac, n));
            out.push(Config::new(Kind::Peerguard, n));
        }
        out.extend(self.native_configs());
        if self.extended {
            out.extend(self.scale_and_latency_configs());
        }
        if !self.only.is_empty() {
            out.retain(|c| self.only.contains(&c.id));
        }
        out
    }
}

impl Options {
    /// The native floor, the native build at every scale, beside RBAC `rules` and (extended) RBAC `matcher`, and
    /// with the full certificate checks at the first scale.
    pub fn native_configs(&self) -> Vec<Config> {
        let mut out = vec![Config::new(Kind::NativeFloor, 0)];
        out.extend(self.scale.iter().map(|&n| Config::new(Kind::PeerguardNative, n)));
        let base = self.scale.first().copied().unwrap_or(10);
        out.push(Config::new(Kind::PeerguardNativeFullCert, base));
        out
    }

    /// RBAC at its best (the matcher's exact map) at every scale, peerguard's other rule shapes
    /// at every scale, the floor filter making 2..4 property reads (per host call cost), and the
    /// latency mode: no filter at its maximum through the upstream, then no filter, the floor and
    /// peerguard at half that rate.
    pub fn scale_and_latency_configs(&self) -> Vec<Config> {
        let mut out = Vec::new();
        for &n in &self.scale {
            out.push(Config::new(Kind::RbacMatcher, n));
        }
        for shape in Shape::ALL {
            for &n in &self.scale {
                out.push(Config::new(Kind::PeerguardShape(shape), n));
            }
        }
        for reads in 2..=4 {
            out.push(Config::new(Kind::WasmFloorReads, reads));
        }
        let base = self.scale.first().copied().unwrap_or(10);
        out.push(Config::via_upstream(Kind::NoFilter, 0, UpstreamLoad::Max));
        out.push(Config::via_upstream(Kind::NoFilter, 0, UpstreamLoad::HalfOfMax));
        out.push(Config::via_upstream(Kind::WasmFloor, 0, UpstreamLoad::HalfOfMax));
        out.push(Config::via_upstream(Kind::Peerguard, base, UpstreamLoad::HalfOfMax));
        out
    }
}

/// One measurement of one configuration.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    pub round: usize,
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Server Envoy CPU time (user + system, all threads) per request, in microseconds.
    pub cpu_us_per_req: f64,
    /// Server Envoy CPU time over wall time (1.0 = one core busy).
    pub envoy_cpu: f64,
    /// The load generator's CPU time over wall time.
    pub client_cpu: f64,
    pub rss_kib: u64,
    /// Envoy spawn until the first 200 on the listener.
    pub start_ms: f64,
    /// peerguard's on_configure calls (one per VM: main thread and worker) and their total time.
    pub configure_calls: usize,
    pub configure_ms: f64,
    pub ok: u64,
    pub non_200: u64,
    pub errors: u64,
}

/// Medians over rounds; ratios are per-round ratios, then the median.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub cpu_us_per_req: f64,
    pub envoy_cpu: f64,
    pub client_cpu: f64,
    pub rss_kib: f64,
    pub start_ms: f64,
    pub configure_ms: f64,
    pub ratio_to_no_filter: Option<f64>,
    pub ratio_to_rbac_same_size: Option<f64>,
    pub ratio_to_wasm_floor: Option<f64>,
    /// Per-core capacity against the floor: the floor's CPU µs/request over this one's. Less
    /// sensitive than throughput to other load on a shared machine.
    pub cpu_ratio_to_wasm_floor: Option<f64>,
    /// The same two against the native floor (a dynamic module doing the wasm floor's work).
    pub ratio_to_native_floor: Option<f64>,
    pub cpu_ratio_to_native_floor: Option<f64>,
}

/// One configuration's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct ConfigResult {
    #[serde(flatten)]
    pub config: Config,
    /// `ok`, `skipped` (not available in this build) or `failed`.
    pub status: String,
    pub note: Option<String>,
    pub samples: Vec<Sample>,
    pub summary: Option<Summary>,
}

/// Everything `peerguard-bench` found.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub machine: Value,
    pub options: Options,
    pub wasm_bytes: u64,
    pub floor_wasm_bytes: Option<u64>,
    pub results: Vec<ConfigResult>,
    pub targets: Vec<report::Target>,
    pub elapsed_secs: f64,
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn machine_info() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model =
        cpuinfo.lines().find_map(|l| l.strip_prefix("model name")).map(|l| l.trim_start_matches([' ', '\t', ':']));
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let envoy_version = envoy_bin()
        .ok()
        .and_then(|b| std::process::Command::new(b).arg("--version").output().ok())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let git = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(repo_root())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    json!({
        "cpu": model, "cores": cores, "loadavg_at_start": load.trim(), "envoy": envoy_version, "git": git,
        "unix_time": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
    })
}

/// Everything a configuration needs that does not change between rounds.
struct Prepared {
    config: Config,
    /// The bootstrap, or why this configuration cannot run.
    bootstrap: Result<Value, String>,
    /// Something the report must say even though the configuration runs.
    note: Option<String>,
}

fn prepare(opts: &Options, pki: &Pki, config: &Config) -> Result<Prepared> {
    let pg_wasm = opts.peerguard_wasm.display().to_string();
    let filters: Result<Vec<Value>, String> = match config.kind {
        Kind::NoFilter => Ok(vec![]),
        Kind::WasmFloor => {
            if opts.floor_wasm.is_file() {
                Ok(vec![configs::wasm_filter("floor", &opts.floor_wasm.display().to_string(), "")])
            } else {
                Err(format!("{} is missing: run `scripts/build-wasm.sh floor`", opts.floor_wasm.display()))
            }
        }
        Kind::Rbac => Ok(vec![configs::rbac_filter(config.rules)]),
        Kind::RbacMatcher => Ok(vec![configs::rbac_matcher_filter(config.rules)]),
        Kind::WasmFloorReads => {
            if opts.floor_wasm.is_file() {
                let path = opts.floor_wasm.display().to_string();
                Ok(vec![configs::wasm_filter("floor", &path, &config.rules.to_string())])
            } else {
                Err(format!("{} is missing: run `scripts/build-wasm.sh floor`", opts.floor_wasm.display()))
            }
        }
        Kind::PeerguardShape(shape) => {
            let policy = configs::shape_policy(shape, config.rules).to_string();
            match peerguard_policy::Engine::from_json(&policy) {
                Ok(_) => Ok(vec![configs::wasm_filter("peerguard", &pg_wasm, &policy)]),
                Err(e) => Err(format!("the engine refuses the policy: {e}")),
            }
        }
        Kind::Lua => Ok(vec![configs::lua_filter(config.rules)]),
        Kind::Peerguard => Ok(vec![configs::wasm_filter(
            "peerguard",
            &pg_wasm,
            &configs::peerguard_policy(config.rules, None).to_string(),
        )]),
        Kind::NativeFloor => {
            let lib = peerguard_e2e::repo::native_dir().join(format!("lib{}.so", configs::NATIVE_FLOOR_MODULE));
            if lib.is_file() {
                Ok(vec![configs::native_floor_filter()])
            } else {
                Err(format!("{} is missing: run `scripts/build-native.sh floor`", lib.display()))
            }
        }
        Kind::PeerguardNative => match peerguard_e2e::envoy::native_path() {
            Ok(_) => Ok(vec![configs::native_filter(&configs::peerguard_policy(config.rules, None).to_string())]),
            Err(e) => Err(format!("{e:#}")),
        },
        Kind::PeerguardCertChecks | Kind::PeerguardFullCert | Kind::PeerguardNativeFullCert => {
            let facts = peerguard_policy::CertFacts::from_der(&pki.client_der)
                .map_err(|e| anyhow::anyhow!("parse the client certificate: {e:?}"))?;
            let base = json!({
                "maxLifetime": "25h",
                "minRemaining": "5m",
                "requireClientAuth": true,
                "rejectSelfSigned": true,
                "keyTypes": ["ecdsaP256"],
                "issuers": [facts.issuer],
                "spkiPins": [facts.spki_sha256_b64],
                "certPins": [facts.sha256_hex],
            });
            // The full configuration asks for a CRL of `crl_entries`; when the engine refuses that
            // (an input limit, say), the largest smaller CRL it accepts is measured and the
            // refusal is reported, never hidden.
            let full = matches!(config.kind, Kind::PeerguardFullCert | Kind::PeerguardNativeFullCert);
            let sizes: Vec<usize> = if full {
                [opts.crl_entries, 5_000, 2_000, 1_000].into_iter().filter(|&n| n <= opts.crl_entries).collect()
            } else {
                vec![0]
            };
            let mut refusals = Vec::new();
            let mut chosen = None;
            for n in sizes {
                let mut cert = base.clone();
                if full {
                    cert["trustAnchors"] = json!([pki.ca_pem]);
                    cert["crls"] = json!([pki.crl_pem(n)?]);
                    cert["revocation"] = json!({"depth": "chain", "unknownStatus": "deny"});
                }
                let policy = configs::peerguard_policy(config.rules, Some(cert)).to_string();
                // The native engine is the module's code: if it refuses the policy, the module
                // would answer 503 config_invalid, and numbers for that would be fake.
                match peerguard_policy::Engine::from_json(&policy) {
                    Ok(_) => {
                        chosen = Some((n, policy));
                        break;
                    }
                    Err(errors) => refusals.push(format!(
                        "with a {n}-entry CRL the engine refuses the policy ({})",
                        errors.iter().map(|e| format!("{}: {}", e.path, e.message)).collect::<Vec<_>>().join("; ")
                    )),
                }
            }
            let mut config = config.clone();
            let note = (!refusals.is_empty()).then(|| refusals.join("; "));
            let filters = match chosen {
                Some((n, policy)) => {
                    if config.kind == Kind::PeerguardFullCert && n != opts.crl_entries {
                        config.label =
                            format!("peerguard, {} rules + full cert checks (chain, {n}-entry CRL)", config.rules);
                    } else if full && n != opts.crl_entries {
                        config.label = format!("{} ({n}-entry CRL)", config.label);
                    }
                    if config.kind == Kind::PeerguardNativeFullCert {
                        Ok(vec![configs::native_filter(&policy)])
                    } else {
                        Ok(vec![configs::wasm_filter("peerguard", &pg_wasm, &policy)])
                    }
                }
                None => Err(format!("not available: {}", note.clone().unwrap_or_default())),
            };
            let native = config.kind == Kind::PeerguardNativeFullCert;
            let bootstrap =
                filters.map(|f| if native { envoy::bootstrap_with_xfcc(pki, &f) } else { envoy::bootstrap(pki, &f) });
            return Ok(Prepared { config, bootstrap, note });
        }
    };
    Ok(Prepared { config: config.clone(), bootstrap: filters.map(|f| envoy::bootstrap(pki, &f)), note: None })
}

const PATH: &str = "/api/bench";

fn measure(
    opts: &Options,
    pki: &Pki,
    bootstrap: &Value,
    dir: &Path,
    round: usize,
    rate: Option<f64>,
) -> Result<Sample> {
    let tls = pki.client_config()?;
    // Generous, but a hung Envoy cannot outlive the run: startup, then the measured window.
    let timeout = envoy::STARTUP_LIMIT + opts.warmup + opts.duration + Duration::from_secs(60);
    let (envoy, first) = envoy::Envoy::start(bootstrap, dir, &tls, PATH, timeout)?;
    if first.status != 200 {
        bail!(
            "the first request got {} ({:?}), not 200; log tail:\n{}",
            first.status,
            first.body_text().trim(),
            envoy.log_tail()
        );
    }
    let start_ms = envoy.start_to_first_200.as_secs_f64() * 1e3;
    let ticks = envoy::clock_ticks();
    let spec = load::LoadSpec {
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], envoy.port)),
        connections: opts.connections,
        threads: opts.threads,
        start: Instant::now() + Duration::from_millis(20),
        warmup: opts.warmup,
        duration: opts.duration,
        path: PATH.into(),
        tls,
        rate,
    };
    // CPU is sampled exactly at the window's edges, on a thread of its own.
    let (w0, w1) = (spec.start + spec.warmup, spec.start + spec.warmup + spec.duration);
    let pid = envoy.pid.to_string();
    let sampler = std::thread::spawn(move || -> Result<(u64, u64, u64, u64)> {
        let sleep_until = |t: Instant| {
            if let Some(d) = t.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
        };
        sleep_until(w0);
        let (e0, c0) = (envoy::cpu_ticks(&pid)?, envoy::cpu_ticks("self")?);
        sleep_until(w1);
        Ok((e0, envoy::cpu_ticks(&pid)?, c0, envoy::cpu_ticks("self")?))
    });
    let r = load::run(&spec)?;
    let (e0, e1, c0, c1) = sampler.join().map_err(|_| anyhow::anyhow!("sampler panicked"))??;
    let rss_kib = envoy::rss_kib(envoy.pid)?;
    let (configure_calls, configure_ms) = envoy.configure_times();
    drop(envoy);
    let secs = r.window_secs;
    let total = (r.ok + r.non_200).max(1) as f64;
    let envoy_cpu_s = (e1 - e0) as f64 / ticks;
    Ok(Sample {
        round,
        rps: r.ok as f64 / secs,
        p50_us: r.latency.quantile(0.50) as f64 / 1e3,
        p99_us: r.latency.quantile(0.99) as f64 / 1e3,
        cpu_us_per_req: envoy_cpu_s * 1e6 / total,
        envoy_cpu: envoy_cpu_s / secs,
        client_cpu: (c1 - c0) as f64 / ticks / secs,
        rss_kib,
        start_ms,
        configure_calls,
        configure_ms,
        ok: r.ok,
        non_200: r.non_200,
        errors: r.errors,
    })
}

/// Runs every configuration for `opts.rounds` interleaved rounds. Progress goes to stderr.
pub fn run(opts: &Options) -> Result<Report> {
    let started = Instant::now();
    let machine = machine_info();
    if !opts.peerguard_wasm.is_file() {
        bail!("{} is missing: run `just build`", opts.peerguard_wasm.display());
    }
    envoy_bin()?;
    std::fs::create_dir_all(&opts.out_dir).with_context(|| format!("create {}", opts.out_dir.display()))?;
    let work = tempfile::Builder::new().prefix("peerguard-bench-").tempdir()?;
    let pki = Pki::create(work.path())?;
    let configs = opts.configs();
    // One upstream for the whole run, when the latency mode is in it.
    let upstream = match configs.iter().any(|c| c.upstream.is_some()) {
        true => Some(upstream::Upstream::start()?),
        false => None,
    };
    let mut prepared = Vec::new();
    for c in configs {
        let mut p = prepare(opts, &pki, &c)?;
        if let (Some(u), Ok(b)) = (&upstream, &mut p.bootstrap) {
            if c.upstream.is_some() {
                *b = upstream::route_to_upstream(b.clone(), u.port);
            }
        }
        prepared.push(p);
    }
    let mut results: Vec<ConfigResult> = prepared
        .iter()
        .map(|p| ConfigResult {
            config: p.config.clone(),
            status: if p.bootstrap.is_ok() { "ok".into() } else { "skipped".into() },
            note: p.bootstrap.as_ref().err().cloned().or_else(|| p.note.clone()),
            samples: Vec::new(),
            summary: None,
        })
        .collect();
    for round in 1..=opts.rounds {
        // The no-filter maximum through the upstream in this round; paced rows run at half of it.
        let mut upstream_max: Option<f64> = None;
        for (p, res) in prepared.iter().zip(results.iter_mut()) {
            let Ok(bootstrap) = &p.bootstrap else { continue };
            if res.status != "ok" {
                continue;
            }
            let rate = match p.config.upstream {
                Some(UpstreamLoad::HalfOfMax) => match upstream_max {
                    Some(max) => Some(max / 2.0),
                    None => {
                        res.status = "skipped".into();
                        res.note = Some("no no-filter maximum through the upstream in this round".into());
                        continue;
                    }
                },
                _ => None,
            };
            eprint!("round {round}/{}: {:<22} ", opts.rounds, p.config.id);
            let dir = work.path().join(format!("{}-r{round}", p.config.id));
            match measure(opts, &pki, bootstrap, &dir, round, rate) {
                Ok(s) => {
                    if p.config.upstream == Some(UpstreamLoad::Max) {
                        upstream_max = Some(s.rps);
                    }
                    eprintln!(
                        "{:>9.0} rps  p50 {:>7.0} µs  p99 {:>7.0} µs  {:>6.1} µs CPU/req  envoy {:>3.0}% client {:>3.0}%  start {:>5.0} ms{}",
                        s.rps,
                        s.p50_us,
                        s.p99_us,
                        s.cpu_us_per_req,
                        s.envoy_cpu * 100.0,
                        s.client_cpu * 100.0,
                        s.start_ms,
                        if s.non_200 + s.errors > 0 { format!("  ({} non-200, {} errors)", s.non_200, s.errors) } else { String::new() }
                    );
                    res.samples.push(s);
                }
                Err(e) => {
                    eprintln!("FAILED");
                    res.status = "failed".into();
                    res.note = Some(format!("{e:#}"));
                }
            }
        }
    }
    report::summarize(&mut results);
    let wasm_bytes = std::fs::metadata(&opts.peerguard_wasm)?.len();
    let floor_wasm_bytes = std::fs::metadata(&opts.floor_wasm).ok().map(|m| m.len());
    let targets = report::targets(&results, wasm_bytes);
    Ok(Report {
        machine,
        options: opts.clone(),
        wasm_bytes,
        floor_wasm_bytes,
        results,
        targets,
        elapsed_secs: started.elapsed().as_secs_f64(),
    })
}
