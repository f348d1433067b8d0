//! Summaries, target checks, the markdown table and the files under `target/bench/`.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::configs::Kind;
use crate::{median, ConfigResult, Report, Summary};

/// One target from the product principles or the benchmark issue.
#[derive(Clone, Debug, Serialize)]
pub struct Target {
    pub name: String,
    pub want: String,
    pub got: String,
    /// `None` when it could not be measured in this run.
    pub met: Option<bool>,
    /// Whether the 2026-11-29 principles replaced this issue target.
    pub superseded: bool,
}

fn find<'a>(results: &'a [ConfigResult], id: &str) -> Option<&'a ConfigResult> {
    results.iter().find(|r| r.config.id == id && !r.samples.is_empty())
}

/// Median over rounds of `a.rps / b.rps` within each round.
fn ratio(a: &ConfigResult, b: &ConfigResult, f: impl Fn(&crate::Sample) -> f64) -> Option<f64> {
    let v: Vec<f64> =
        a.samples.iter().filter_map(|s| b.samples.iter().find(|t| t.round == s.round).map(|t| f(s) / f(t))).collect();
    (!v.is_empty()).then(|| median(v))
}

/// Fills each result's summary.
pub fn summarize(results: &mut [ConfigResult]) {
    let snapshot: Vec<ConfigResult> = results.to_vec();
    let none = find(&snapshot, "none");
    let floor = find(&snapshot, "wasm-floor");
    let native_floor = find(&snapshot, "native-floor");
    for r in results.iter_mut() {
        if r.samples.is_empty() {
            continue;
        }
        let col = |f: fn(&crate::Sample) -> f64| median(r.samples.iter().map(f).collect());
        let rbac = match r.config.kind {
            Kind::NoFilter | Kind::WasmFloor | Kind::NativeFloor | Kind::Rbac => None,
            _ => find(&snapshot, &format!("rbac-{}", r.config.rules)),
        };
        let rps = |s: &crate::Sample| s.rps;
        let summary = Summary {
            rps: col(|s| s.rps),
            p50_us: col(|s| s.p50_us),
            p99_us: col(|s| s.p99_us),
            cpu_us_per_req: col(|s| s.cpu_us_per_req),
            envoy_cpu: col(|s| s.envoy_cpu),
            client_cpu: col(|s| s.client_cpu),
            rss_kib: col(|s| s.rss_kib as f64),
            start_ms: col(|s| s.start_ms),
            configure_ms: col(|s| s.configure_ms),
            ratio_to_no_filter: none.and_then(|n| ratio(r, n, rps)),
            ratio_to_rbac_same_size: rbac.and_then(|b| ratio(r, b, rps)),
            ratio_to_wasm_floor: floor.and_then(|f| ratio(r, f, rps)),
            cpu_ratio_to_wasm_floor: floor.and_then(|f| ratio(r, f, |s| 1.0 / s.cpu_us_per_req)),
            ratio_to_native_floor: native_floor.and_then(|f| ratio(r, f, rps)),
            cpu_ratio_to_native_floor: native_floor.and_then(|f| ratio(r, f, |s| 1.0 / s.cpu_us_per_req)),
        };
        r.summary = Some(summary);
    }
}

fn fmt_ratio(v: Option<f64>) -> String {
    match v {
        Some(x) if x >= 10.0 => format!("{x:.0}×"),
        Some(x) if x >= 0.1 => format!("{x:.2}×"),
        Some(x) => format!("{x:.4}×"),
        None => "–".into(),
    }
}

fn check(name: &str, want: &str, got: Option<(f64, String)>, ok: impl Fn(f64) -> bool, superseded: bool) -> Target {
    match got {
        Some((v, text)) => Target { name: name.into(), want: want.into(), got: text, met: Some(ok(v)), superseded },
        None => Target { name: name.into(), want: want.into(), got: "not measured".into(), met: None, superseded },
    }
}

/// The targets of the product principles (2026-11-29) and the benchmark issue.
pub fn targets(results: &[ConfigResult], wasm_bytes: u64) -> Vec<Target> {
    let pg10 = find(results, "peerguard-10");
    let pg10k = find(results, "peerguard-10000");
    let floor = find(results, "wasm-floor");
    let none = find(results, "none");
    let rbac10 = find(results, "rbac-10");
    let rbac10k = find(results, "rbac-10000");
    let certs = find(results, "peerguard-certs-10");
    let full = find(results, "peerguard-full-10");
    let rps = |s: &crate::Sample| s.rps;
    let pair = |a: Option<&ConfigResult>, b: Option<&ConfigResult>| a.zip(b).and_then(|(a, b)| ratio(a, b, rps));
    let x = |v: Option<f64>| v.map(|v| (v, format!("{v:.3}×")));
    let mut out = vec![
        check("peerguard vs wasm floor, 10 rules", "≥ 0.95×", x(pair(pg10, floor)), |v| v >= 0.95, false),
        check("10,000 rules vs 10 rules (peerguard)", "≥ 0.90×", x(pair(pg10k, pg10)), |v| v >= 0.90, false),
        check(
            "same two, by CPU µs/request (robust to a busy machine)",
            "≥ 0.95× / ≥ 0.90×",
            pg10.zip(floor).zip(pg10k).and_then(|((a, f), k)| {
                let cpu = |s: &crate::Sample| 1.0 / s.cpu_us_per_req;
                let (v1, v2) = (ratio(a, f, cpu)?, ratio(k, a, cpu)?);
                Some((f64::from(u8::from(v1 >= 0.95 && v2 >= 0.90)), format!("{v1:.3}× floor; 10k/10 {v2:.3}×")))
            }),
            |v| v > 0.5,
            false,
        ),
        check("peerguard vs RBAC, 10,000 rules", "≥ 1×", x(pair(pg10k, rbac10k)), |v| v >= 1.0, false),
        check(
            ".wasm size",
            "≤ 1 MiB",
            Some((wasm_bytes as f64, format!("{} KiB", wasm_bytes.div_ceil(1024)))),
            |v| v <= 1024.0 * 1024.0,
            false,
        ),
    ];
    // Plugin start: what the 10,000-rule peerguard adds to Envoy's own start (spawn → first 200).
    let start = |r: Option<&ConfigResult>| r.and_then(|r| r.summary.as_ref()).map(|s| s.start_ms);
    let start_delta = start(pg10k).zip(start(none)).map(|(a, b)| a - b);
    out.push(check(
        "plugin start, 10,000 rules (added to Envoy's start)",
        "≤ 200 ms",
        start_delta.map(|v| (v, format!("{v:.0} ms"))),
        |v| v <= 200.0,
        false,
    ));
    let configure = |r: Option<&ConfigResult>| {
        r.and_then(|r| {
            let calls = r.samples.first()?.configure_calls;
            let ms = r.summary.as_ref()?.configure_ms;
            (calls > 0).then(|| {
                (ms / calls as f64, format!("{:.0} ms per call × {calls} calls (one per VM)", ms / calls as f64))
            })
        })
    };
    out.push(check(
        "on_configure, 10,000 rules (from the plugin's log)",
        "≤ 200 ms",
        configure(pg10k),
        |v| v <= 200.0,
        false,
    ));
    let cert_overhead = |r: Option<&ConfigResult>| {
        r.zip(pg10)
            .and_then(|(a, b)| ratio(b, a, |s| s.rps))
            .map(|v| (v - 1.0, format!("{:+.1}% rps cost", (v - 1.0) * 100.0)))
    };
    out.push(check("full cert checks on a cached cert vs SAN-only", "≤ 5%", cert_overhead(full), |v| v <= 0.05, false));
    out.push(check(
        "cert checks without chain/CRL on a cached cert vs SAN-only (partial)",
        "≤ 5%",
        cert_overhead(certs),
        |v| v <= 0.05,
        false,
    ));
    out.push(check("peerguard vs no filter, 10 rules", "≥ 0.90×", x(pair(pg10, none)), |v| v >= 0.90, true));
    out.push(check("peerguard vs RBAC, 10 rules", "≥ 0.95×", x(pair(pg10, rbac10)), |v| v >= 0.95, true));
    let p99 = |r: Option<&ConfigResult>| r.and_then(|r| r.summary.as_ref()).map(|s| s.p99_us);
    let p99_added = p99(pg10).zip(p99(none)).map(|(a, b)| (a - b) / 1e3);
    out.push(check(
        "p99 added over no filter, 10 rules",
        "≤ 0.1 ms",
        p99_added.map(|v| (v, format!("{v:.3} ms"))),
        |v| v <= 0.1,
        true,
    ));
    out.extend(scale_and_latency_targets(results));
    out.extend(native_targets(results));
    out
}

/// Median over rounds of `f(a) - f(b)` within each round.
fn added(a: Option<&ConfigResult>, b: Option<&ConfigResult>, f: fn(&crate::Sample) -> f64) -> Option<f64> {
    a.zip(b).and_then(|(a, b)| {
        let v: Vec<f64> = a
            .samples
            .iter()
            .filter_map(|s| b.samples.iter().find(|t| t.round == s.round).map(|t| f(s) - f(t)))
            .collect();
        (!v.is_empty()).then(|| median(v))
    })
}

/// The native build's targets (extra Envoy CPU µs per request over no filter, round by round),
/// and where that goes: the native floor is what any dynamic module costs, the rest is peerguard's.
pub fn native_targets(results: &[ConfigResult]) -> Vec<Target> {
    let cpu = |s: &crate::Sample| s.cpu_us_per_req;
    let none = find(results, "none");
    let floor = find(results, "native-floor");
    let sizes = [10, 1_000, 10_000];
    let over = |base: Option<&ConfigResult>, prefix: &str| -> Vec<(usize, f64)> {
        sizes.iter().filter_map(|&n| Some((n, added(find(results, &format!("{prefix}{n}")), base, cpu)?))).collect()
    };
    let list = |v: &[(usize, f64)]| v.iter().map(|(n, d)| format!("{n}: {d:+.1} µs")).collect::<Vec<_>>().join(", ");
    let native = over(none, "native-");
    let matcher = over(none, "rbac-matcher-");
    let mut out = Vec::new();
    let ends: Vec<f64> = native.iter().filter(|(n, _)| *n == 10 || *n == 10_000).map(|p| p.1).collect();
    out.push(check(
        "peerguard native over no filter, 10 and 10,000 rules (Envoy CPU/req)",
        "≤ +10 µs",
        (ends.len() == 2).then(|| (ends.iter().copied().fold(f64::MIN, f64::max), list(&native))),
        |v| v <= 10.0,
        false,
    ));
    // Size by size, where both ran in the same rounds.
    let vs_matcher: Vec<(usize, f64, f64)> =
        native.iter().filter_map(|&(n, a)| matcher.iter().find(|m| m.0 == n).map(|m| (n, a, m.1))).collect();
    out.push(check(
        "peerguard native vs RBAC matcher at every size (extra Envoy CPU/req)",
        "cheaper",
        (!vs_matcher.is_empty()).then(|| {
            let worst = vs_matcher.iter().map(|&(_, a, m)| a - m).fold(f64::MIN, f64::max);
            let text = vs_matcher.iter().map(|(n, a, m)| format!("{n}: {a:+.1} vs {m:+.1} µs")).collect::<Vec<_>>();
            (worst, text.join(", "))
        }),
        |v| v < 0.0,
        false,
    ));
    out.push(Target {
        name: "native floor over no filter (what any dynamic module costs: 1 attribute read, 1 header set)".into(),
        want: "evidence".into(),
        got: added(floor, none, cpu).map_or("not measured".into(), |d| format!("{d:+.1} µs Envoy CPU/req")),
        met: None,
        superseded: false,
    });
    let own = over(floor, "native-");
    out.push(Target {
        name: "peerguard native over the native floor (peerguard's own work per request)".into(),
        want: "evidence".into(),
        got: if own.is_empty() { "not measured".into() } else { list(&own) },
        met: None,
        superseded: false,
    });
    out
}

/// Targets of the rows [`crate::Options::scale_and_latency_configs`] adds: RBAC at its best,
/// rule shapes at scale, memory and start-up at 10,000 rules, the cost of one host call and the
/// latency added through a real upstream.
pub fn scale_and_latency_targets(results: &[ConfigResult]) -> Vec<Target> {
    let rps = |s: &crate::Sample| s.rps;
    let pair = |a: Option<&ConfigResult>, b: Option<&ConfigResult>| a.zip(b).and_then(|(a, b)| ratio(a, b, rps));
    let x = |v: Option<f64>| v.map(|v| (v, format!("{v:.3}×")));
    let sum = |r: Option<&ConfigResult>| r.and_then(|r| r.summary.clone());
    let mut out = Vec::new();
    let pg10k = find(results, "peerguard-10000");
    // RBAC's better form at 10,000 principals, round by round.
    let best = pg10k.and_then(|pg| {
        let v: Vec<f64> = pg
            .samples
            .iter()
            .filter_map(|s| {
                let best = ["rbac-10000", "rbac-matcher-10000"]
                    .iter()
                    .filter_map(|id| find(results, id))
                    .filter_map(|r| r.samples.iter().find(|t| t.round == s.round).map(|t| t.rps))
                    .fold(f64::NAN, f64::max);
                best.is_finite().then(|| s.rps / best)
            })
            .collect();
        (!v.is_empty()).then(|| median(v))
    });
    out.push(check(
        "peerguard vs RBAC at its best (rules or matcher map), 10,000 rules",
        "≥ 1×",
        x(best),
        |v| v >= 1.0,
        false,
    ));
    for shape in crate::configs::Shape::ALL {
        let base = find(results, &format!("shape-{}-10", shape.name()));
        for n in [1_000, 10_000] {
            let r = find(results, &format!("shape-{}-{n}", shape.name()));
            out.push(check(
                &format!("{} rules: {n} vs 10 (Envoy rps)", shape.name()),
                "≥ 0.90×",
                x(pair(r, base)),
                |v| v >= 0.90,
                false,
            ));
        }
    }
    let none = sum(find(results, "none"));
    let pg10 = sum(find(results, "peerguard-10"));
    let k = sum(pg10k);
    out.push(check(
        "start-up, 10,000 rules, over no filter (spawn → first 200)",
        "≤ 500 ms",
        k.as_ref().zip(none.as_ref()).map(|(a, b)| a.start_ms - b.start_ms).map(|v| (v, format!("{v:.0} ms"))),
        |v| v <= 500.0,
        false,
    ));
    out.push(check(
        "RSS, 10,000 rules over 10 rules (one worker)",
        "≤ 25 MiB",
        k.as_ref()
            .zip(pg10.as_ref())
            .map(|(a, b)| (a.rss_kib - b.rss_kib) / 1024.0)
            .map(|v| (v, format!("{v:.1} MiB"))),
        |v| v <= 25.0,
        false,
    ));
    // CPU µs per request of the floor making N = 1..4 property reads: the slope is one host call.
    let reads: Vec<(f64, f64)> = std::iter::once(find(results, "wasm-floor").map(|r| (1.0, r)))
        .chain((2..=4).map(|n| find(results, &format!("wasm-floor-reads-{n}")).map(|r| (f64::from(n), r))))
        .flatten()
        .filter_map(|(n, r)| r.summary.as_ref().map(|s| (n, s.cpu_us_per_req)))
        .collect();
    if reads.len() >= 2 {
        let m = reads.len() as f64;
        let (sx, sy) = reads.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
        let (sxx, sxy) = reads.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x * x, b + x * y));
        let slope = (m * sxy - sx * sy) / (m * sxx - sx * sx);
        let floor_cpu = reads[0].1;
        out.push(Target {
            name: "one more property read (slope of floor CPU µs/req over N = 1..4 reads)".into(),
            want: "evidence".into(),
            got: format!("{slope:.2} µs ({:.1}% of the floor's {floor_cpu:.1} µs)", slope / floor_cpu * 100.0),
            met: None,
            superseded: false,
        });
    }
    // Added latency through the upstream at half the no-filter maximum, round by round.
    let base = find(results, "none-upstream");
    for (id, what) in [("peerguard-10-upstream", "peerguard, 10 rules"), ("wasm-floor-upstream", "wasm floor")] {
        let r = find(results, id);
        let (p50, p99) = (added(r, base, |s| s.p50_us), added(r, base, |s| s.p99_us));
        out.push(Target {
            name: format!("latency added by {what} via a loopback upstream at 50% of max"),
            want: "report (p50 / p99)".into(),
            got: match (p50, p99) {
                (Some(a), Some(b)) => format!("+{a:.0} µs p50 / +{b:.0} µs p99"),
                _ => "not measured".into(),
            },
            met: None,
            superseded: false,
        });
    }
    out
}

/// The markdown report: the table, then the targets.
pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| Configuration | rps | p50 µs | p99 µs | Envoy CPU µs/req | RSS MiB | start ms | × no filter | × RBAC same size | × wasm floor | × floor by CPU/req | × native floor | × native floor by CPU/req |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for c in &r.results {
        match &c.summary {
            Some(m) => {
                let _ = writeln!(
                    s,
                    "| {} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} | {:.0} | {} | {} | {} | {} | {} | {} |",
                    c.config.label,
                    m.rps,
                    m.p50_us,
                    m.p99_us,
                    m.cpu_us_per_req,
                    m.rss_kib / 1024.0,
                    m.start_ms,
                    fmt_ratio(m.ratio_to_no_filter),
                    fmt_ratio(m.ratio_to_rbac_same_size),
                    fmt_ratio(m.ratio_to_wasm_floor),
                    fmt_ratio(m.cpu_ratio_to_wasm_floor),
                    fmt_ratio(m.ratio_to_native_floor),
                    fmt_ratio(m.cpu_ratio_to_native_floor),
                );
            }
            None => {
                let note = c.note.as_deref().unwrap_or("").lines().next().unwrap_or("");
                let _ = writeln!(
                    s,
                    "| {} | {}: {} | | | | | | | | | | | |",
                    c.config.label,
                    c.status,
                    note.replace('|', "/")
                );
            }
        }
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "`.wasm`: {} bytes ({} KiB); floor module: {}. Mode `{}`: {} rounds × {:.1} s (+{:.1} s warm-up), {} connections on {} client threads; {:.0} s in all.",
        r.wasm_bytes,
        r.wasm_bytes.div_ceil(1024),
        r.floor_wasm_bytes.map_or("–".into(), |b| format!("{} KiB", b.div_ceil(1024))),
        r.options.mode,
        r.options.rounds,
        r.options.duration.as_secs_f64(),
        r.options.warmup.as_secs_f64(),
        r.options.connections,
        r.options.threads,
        r.elapsed_secs,
    );
    let _ = writeln!(
        s,
        "Machine: {} × {}, load average at start {}; {}.",
        r.machine["cores"],
        r.machine["cpu"].as_str().unwrap_or("?"),
        r.machine["loadavg_at_start"].as_str().unwrap_or("?"),
        r.machine["envoy"].as_str().unwrap_or("Envoy ?").split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "| Target | Want | Got | Met |");
    let _ = writeln!(s, "|---|---|---|---|");
    for t in &r.targets {
        let met = match t.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "–",
        };
        let name = if t.superseded { format!("{} (issue target, superseded)", t.name) } else { t.name.clone() };
        let _ = writeln!(s, "| {name} | {} | {} | {met} |", t.want, t.got);
    }
    // A server that did not get (nearly) a whole core was sharing the machine: its throughput
    // understates it, while CPU µs/request stays meaningful.
    let starved: Vec<String> = r
        .results
        .iter()
        .flat_map(|c| c.samples.iter().map(move |s| (c, s)))
        .filter(|(_, s)| s.envoy_cpu < 0.9 && s.rps > 1000.0)
        .map(|(c, s)| format!("{} round {} ({:.0}%)", c.config.id, s.round, s.envoy_cpu * 100.0))
        .collect();
    if !starved.is_empty() {
        let _ = writeln!(
            s,
            "\nThe server Envoy got less than 90% of a core in: {}. Another process was using the CPU; prefer the CPU µs/request columns for these.",
            starved.join(", ")
        );
    }
    for c in r.results.iter().filter(|c| c.note.is_some()) {
        let _ = writeln!(s, "\n{} ({}): {}", c.config.id, c.status, c.note.as_deref().unwrap_or(""));
    }
    s
}

/// Writes `results.json`, `results.md` and `throughput-vs-rules.png` into the output directory.
pub fn write_outputs(r: &Report) -> Result<Vec<PathBuf>> {
    let dir = &r.options.out_dir;
    std::fs::create_dir_all(dir)?;
    let json = dir.join("results.json");
    std::fs::write(&json, serde_json::to_vec_pretty(r)?).with_context(|| format!("write {}", json.display()))?;
    let md = dir.join("results.md");
    std::fs::write(&md, markdown(r))?;
    let png = dir.join("throughput-vs-rules.png");
    crate::chart::draw(r, &png)?;
    Ok(vec![json, md, png])
}
