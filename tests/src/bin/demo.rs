//! `cargo run -p peerguard-e2e --bin demo [-- --up [--for SECONDS]]`: the peerguard demo against a real Envoy.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use peerguard_e2e::demo::{cases, federation_cases, Case, Stack, StackOptions, DEMO_POLICY};

struct Args {
    up: bool,
    hold: Duration,
}

fn parse_args() -> Result<Args> {
    let mut args = Args { up: false, hold: Duration::from_secs(3600) };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--up" => args.up = true,
            "--for" => {
                let v = it.next().context("--for needs SECONDS")?;
                args.hold = Duration::from_secs(v.parse().context("--for SECONDS")?);
            }
            "-h" | "--help" => {
                println!("usage: demo [--up [--for SECONDS]]\n  --up   keep Envoy running after the cases (Ctrl-C to stop; default 3600 s)");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("demo failed: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<bool> {
    let args = parse_args()?;
    let timeout = if args.up { args.hold + Duration::from_secs(60) } else { Duration::from_secs(120) };
    // Installed before anything starts, so Ctrl-C at any point still runs the Drops that stop Envoy.
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    ctrlc::set_handler(move || s2.store(true, Ordering::SeqCst)).context("install Ctrl-C handler")?;
    println!("==> starting echo upstream and Envoy with peerguard (demo policy)");
    let stack = Stack::start(StackOptions { timeout: Some(timeout), ..StackOptions::default() })?;
    println!(
        "    envoy (pid {}) listening on https://127.0.0.1:{} (admin http://{}), files in {}",
        stack.envoy.envoy_pid().unwrap_or(stack.envoy.pid()),
        stack.port(),
        stack.envoy.admin_addr(),
        stack.dir().display()
    );
    println!();

    let mut rows = run_cases(&stack, &cases());
    // Federation: a second trust domain with its own CA, in its own Envoy (docs/policy.md
    // "Trust bundles").
    println!("==> starting a second Envoy for the federation cases (cluster.local and partner.example, each with its own CA)");
    let federation = Stack::federation(Some(Duration::from_secs(120)))?;
    rows.extend(run_cases(&federation, &federation_cases()));
    drop(federation);
    // Revocation: a CRL source served from loopback; the served CRL changes, no reload
    // (docs/policy.md "CRL sources").
    println!("==> starting a third Envoy for the revocation cases (a CRL source refreshed every second)");
    for step in peerguard_e2e::demo_revocation::run(Duration::from_secs(120))? {
        let result = match step.result {
            Ok(()) => "OK".to_string(),
            Err(e) => format!("FAIL ({e})"),
        };
        let reason = step.reason.unwrap_or_else(|| "-".into());
        rows.push([step.identity, "GET /api/items".into(), step.status.to_string(), reason, result, step.name.into()]);
    }
    println!();
    let header = ["case", "identity", "request", "status", "reason", "result"];
    let table: Vec<[String; 6]> = rows
        .iter()
        .map(|r| [r[5].clone(), r[0].clone(), r[1].clone(), r[2].clone(), r[3].clone(), r[4].clone()])
        .collect();
    let mut widths = header.map(str::len);
    for r in &table {
        for (w, c) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells.iter().zip(widths.iter()).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("| {} |", parts.join(" | "));
    };
    line(header.to_vec());
    println!("|{}|", widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("|"));
    for r in &table {
        line(r.iter().map(String::as_str).collect());
    }
    let failed = table.iter().filter(|r| !r[5].starts_with("OK")).count();
    println!();
    println!("{} passed, {} failed", table.len() - failed, failed);

    if args.up && !stop.load(Ordering::SeqCst) {
        hold(&stack, args.hold, &stop)?;
    }
    if failed > 0 {
        eprintln!("Envoy log tail:\n{}", stack.envoy.log_tail(30));
    }
    Ok(failed == 0)
}

fn hold(stack: &Stack, hold: Duration, stop: &AtomicBool) -> Result<()> {
    let dir = stack.dir();
    let port = stack.port();
    let ca = stack.ca.cert_path.display().to_string();
    println!();
    println!(
        "==> the stack is up; try (policy: {} bytes of JSON, see {}):",
        DEMO_POLICY.len(),
        stack.envoy.config_path().display()
    );
    for (name, _, _) in peerguard_e2e::demo::IDENTITIES {
        let id = stack.identity(name)?;
        println!(
            "curl -si --cacert {ca} --cert {} --key {} --resolve localhost:{port}:127.0.0.1 https://localhost:{port}/api/items",
            id.cert_path.display(),
            id.key_path.display()
        );
    }
    println!("curl -si --cacert {ca} --resolve localhost:{port}:127.0.0.1 https://localhost:{port}/api/items   # no client cert");
    println!("curl -s http://{}/stats | grep -i peerguard", stack.envoy.admin_addr());
    println!("tail -f {}", stack.envoy.log_path().display());
    println!("(files in {}; Ctrl-C or {} s to stop)", dir.display(), hold.as_secs());

    let deadline = Instant::now() + hold;
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("==> stopping");
    Ok(())
}

/// One table row per case: identity, request, status, reason, result, case name.
fn run_cases(stack: &Stack, cases: &[Case]) -> Vec<[String; 6]> {
    cases
        .iter()
        .map(|case| {
            let req = case.request();
            let mut request = format!("{} {}", req.method, req.path);
            for (n, v) in case.headers {
                request.push_str(&format!(" +{n}: {v}"));
            }
            match stack.send(case.identity, &req) {
                Ok(resp) => {
                    let reason = resp.reason().unwrap_or_else(|| "-".into());
                    let result = match case.check(&resp) {
                        Ok(()) => "OK".to_string(),
                        Err(e) => format!("FAIL ({e})"),
                    };
                    [case.identity_label(), request, resp.status.to_string(), reason, result, case.name.into()]
                }
                Err(e) => {
                    [case.identity_label(), request, "-".into(), "-".into(), format!("FAIL ({e:#})"), case.name.into()]
                }
            }
        })
        .collect()
}
