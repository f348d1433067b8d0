//! CRL sources, the filter's side: fetch each source's CRL through its Envoy cluster on the root context's tick and hand it to the engine (docs/policy.md "CRL sources").
//!
//! The engine decides whether a CRL is good; this module only schedules fetches, sends the
//! validators of the last good response (`If-None-Match`, `If-Modified-Since`), refuses a body
//! over `maxBytes` without reading it, and counts. A failed or refused fetch keeps the CRL in
//! force; the next one is tried one `refresh` later.

use std::collections::HashMap;

use peerguard_policy::{CrlSourceSpec, Engine};

use crate::stats::{names, LazyIds, Stats};

/// Sends one HTTP call through a cluster; returns the call's token.
pub trait HttpCaller {
    fn dispatch(&self, cluster: &str, headers: Vec<(&str, &str)>, timeout_secs: u64) -> Result<u32, String>;
}

/// The real host (proxy-wasm).
#[cfg(feature = "proxy-wasm")]
pub struct HostCaller;

#[cfg(feature = "proxy-wasm")]
impl HttpCaller for HostCaller {
    fn dispatch(&self, cluster: &str, headers: Vec<(&str, &str)>, timeout_secs: u64) -> Result<u32, String> {
        proxy_wasm::hostcalls::dispatch_http_call(
            cluster,
            headers,
            None,
            Vec::new(),
            std::time::Duration::from_secs(timeout_secs),
        )
        .map_err(|s| format!("{s:?}"))
    }
}

/// One response, as the host gives it.
pub struct Response<'a> {
    /// Response headers; empty when the call failed (timeout, connection refused, no cluster).
    pub headers: Vec<(String, String)>,
    pub body_size: usize,
    /// Reads the body (called only when it is within `maxBytes`).
    pub read_body: &'a dyn Fn(usize) -> Option<Vec<u8>>,
}

#[derive(Clone, Debug)]
struct Source {
    spec: CrlSourceSpec,
    next_due: i64,
    in_flight: bool,
    etag: Option<String>,
    last_modified: Option<String>,
    /// The body of the CRL in force, to re-install it into the engine of a reloaded policy.
    last_good: Option<Vec<u8>>,
}

/// The fetch state of every CRL source of the current policy.
#[derive(Debug, Default)]
pub struct CrlFetcher {
    sources: Vec<Source>,
    calls: HashMap<u32, usize>,
    ids: LazyIds,
}

/// The counters each source has (`peerguard.crl_source.<name>.<what>`), for a host that must
/// define every metric up front (the native build).
pub const SOURCE_COUNTERS: [&str; 4] = ["fetch_ok", "fetch_failed", "fetch_not_modified", "rejected"];
/// The gauges each source has, likewise.
pub const SOURCE_GAUGES: [&str; 3] = ["age_seconds", "entries", "next_update"];

/// The name of one of a source's metrics.
pub fn metric(spec: &CrlSourceSpec, what: &str) -> String {
    format!("{}{}.{what}", names::CRL_SOURCE, spec.name)
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

impl CrlFetcher {
    /// The fetcher for a newly loaded policy. A source that the previous policy also had (same
    /// cluster, path and authority) gets its last good CRL back, checked again by the new
    /// engine, so that a reload never forgets a revocation; every source is fetched at once.
    pub fn for_engine(engine: Option<&Engine>, previous: CrlFetcher, now: i64) -> CrlFetcher {
        let Some(engine) = engine else {
            return CrlFetcher { ids: previous.ids, ..CrlFetcher::default() };
        };
        let mut sources = Vec::new();
        for (i, spec) in engine.crl_sources().into_iter().enumerate() {
            let mut s = Source {
                spec: spec.clone(),
                next_due: now,
                in_flight: false,
                etag: None,
                last_modified: None,
                last_good: None,
            };
            let same = |p: &&Source| {
                p.spec.cluster == spec.cluster && p.spec.path == spec.path && p.spec.authority == spec.authority
            };
            if let Some(old) = previous.sources.iter().find(same) {
                if let Some(body) = &old.last_good {
                    if engine.install_crl(i, body).is_ok() {
                        s.etag = old.etag.clone();
                        s.last_modified = old.last_modified.clone();
                        s.last_good = Some(body.clone());
                    }
                }
            }
            sources.push(s);
        }
        CrlFetcher { sources, calls: HashMap::new(), ids: previous.ids }
    }

    /// The CRL in force of each source, in the policy's order: what the native build's worker
    /// threads install into their own engines.
    pub fn last_good(&self) -> Vec<Option<&[u8]>> {
        self.sources.iter().map(|s| s.last_good.as_deref()).collect()
    }

    /// Copies this fetcher's sources (validators and CRL in force) into `memory`, replacing the
    /// same source (cluster, path and authority) there. The native build keeps such a memory per
    /// process, since a new filter config never receives the old one's fetcher.
    pub fn remember_into(&self, memory: &mut CrlFetcher) {
        for s in self.sources.iter().filter(|s| s.last_good.is_some()) {
            memory.sources.retain(|m| {
                !(m.spec.cluster == s.spec.cluster
                    && m.spec.path == s.spec.path
                    && m.spec.authority == s.spec.authority)
            });
            memory.sources.push(s.clone());
        }
    }

    /// The sources of `self` as a previous fetcher for [`CrlFetcher::for_engine`], without calls
    /// in flight or metric ids (those belong to the filter config that made them).
    pub fn memory(&self) -> CrlFetcher {
        CrlFetcher { sources: self.sources.clone(), calls: HashMap::new(), ids: LazyIds::default() }
    }

    /// Whether the policy has CRL sources (the root context then ticks).
    pub fn has_sources(&self) -> bool {
        !self.sources.is_empty()
    }

    /// Starts the fetches that are due, and refreshes the gauges of every source.
    pub fn tick(&mut self, engine: &Engine, http: &dyn HttpCaller, stats: &dyn Stats, now: i64) {
        for (i, s) in self.sources.iter_mut().enumerate() {
            if let Some(info) = engine.crl_info(i) {
                self.ids.gauge(
                    stats,
                    &metric(&s.spec, "age_seconds"),
                    u64::try_from(now - info.this_update).unwrap_or(0),
                );
                self.ids.gauge(stats, &metric(&s.spec, "entries"), info.entries as u64);
                self.ids.gauge(stats, &metric(&s.spec, "next_update"), u64::try_from(info.next_update).unwrap_or(0));
            }
            if s.in_flight || now < s.next_due {
                continue;
            }
            s.next_due = now.saturating_add(i64::try_from(s.spec.refresh_secs).unwrap_or(i64::MAX));
            let mut headers: Vec<(&str, &str)> = vec![
                (":method", "GET"),
                (":path", &s.spec.path),
                (":authority", &s.spec.authority),
                ("accept", "application/pkix-crl, application/x-pem-file"),
            ];
            if let Some(etag) = &s.etag {
                headers.push(("if-none-match", etag));
            }
            if let Some(lm) = &s.last_modified {
                headers.push(("if-modified-since", lm));
            }
            match http.dispatch(&s.spec.cluster, headers, s.spec.timeout_secs) {
                Ok(token) => {
                    s.in_flight = true;
                    self.calls.insert(token, i);
                }
                Err(e) => {
                    log::warn!("peerguard: CRL source {}: cannot call cluster {:?}: {e}", s.spec.name, s.spec.cluster);
                    self.ids.count(stats, &metric(&s.spec, "fetch_failed"), 1);
                }
            }
        }
    }

    /// Handles the response to call `token`. Returns true when a new CRL was installed: then
    /// cached verdicts may rest on the replaced one and must be dropped.
    pub fn on_response(&mut self, token: u32, engine: &Engine, resp: Response<'_>, stats: &dyn Stats) -> bool {
        // A call of a previous policy's fetcher: that policy is gone.
        let Some(i) = self.calls.remove(&token) else {
            return false;
        };
        let Some(s) = self.sources.get_mut(i) else {
            return false;
        };
        s.in_flight = false;
        let status = header(&resp.headers, ":status").and_then(|v| v.parse::<u16>().ok());
        let fail = |ids: &LazyIds, spec: &CrlSourceSpec, why: &str| {
            log::warn!("peerguard: CRL source {}: fetch failed ({why}); the CRL in force stays", spec.name);
            ids.count(stats, &metric(spec, "fetch_failed"), 1);
            false
        };
        match status {
            None => fail(&self.ids, &s.spec, "no response: timeout, connection failure or unknown cluster"),
            Some(304) => {
                self.ids.count(stats, &metric(&s.spec, "fetch_not_modified"), 1);
                false
            }
            Some(200) if resp.body_size as u64 > s.spec.max_bytes => {
                fail(&self.ids, &s.spec, &format!("{} bytes is over maxBytes ({})", resp.body_size, s.spec.max_bytes))
            }
            Some(200) => {
                let Some(body) = (resp.read_body)(resp.body_size) else {
                    return fail(&self.ids, &s.spec, "empty body");
                };
                match engine.install_crl(i, &body) {
                    Ok(installed) => {
                        self.ids.count(stats, &metric(&s.spec, "fetch_ok"), 1);
                        s.etag = header(&resp.headers, "etag").map(str::to_owned);
                        s.last_modified = header(&resp.headers, "last-modified").map(str::to_owned);
                        if installed.changed {
                            log::info!(
                                "peerguard: CRL source {}: installed CRL number {} ({} entries, nextUpdate {})",
                                s.spec.name,
                                installed.info.number,
                                installed.info.entries,
                                installed.info.next_update
                            );
                            s.last_good = Some(body);
                        }
                        installed.changed
                    }
                    Err(why) => {
                        log::warn!("peerguard: CRL source {}: CRL refused: {why}; the CRL in force stays", s.spec.name);
                        self.ids.count(stats, &metric(&s.spec, "rejected"), 1);
                        false
                    }
                }
            }
            Some(other) => fail(&self.ids, &s.spec, &format!("HTTP status {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code
    use std::cell::RefCell;

    use super::*;
    use crate::stats::fake::FakeStats;

    const CA: &str = include_str!("../../policy/tests/fixtures/crl-source/ca.pem");
    const CRL_1: &str = include_str!("../../policy/tests/fixtures/crl-source/crl-1-empty.pem");
    const CRL_2: &str = include_str!("../../policy/tests/fixtures/crl-source/crl-2-revokes-a.pem");

    /// One dispatched call: cluster, headers, timeout.
    type Call = (String, Vec<(String, String)>, u64);

    #[derive(Default)]
    struct FakeHttp {
        calls: RefCell<Vec<Call>>,
        refuse: bool,
    }

    impl HttpCaller for FakeHttp {
        fn dispatch(&self, cluster: &str, headers: Vec<(&str, &str)>, timeout: u64) -> Result<u32, String> {
            if self.refuse {
                return Err("BadArgument".to_owned());
            }
            let mut calls = self.calls.borrow_mut();
            let h = headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            calls.push((cluster.to_owned(), h, timeout));
            Ok(calls.len() as u32)
        }
    }

    fn engine() -> Engine {
        let policy = serde_json::json!({"certificate": {"trustAnchors": [CA], "crlSources": [
            {"name": "ca", "cluster": "crl-server", "path": "/ca.crl", "refresh": "10s", "timeout": "2s", "maxBytes": 2000}]}});
        Engine::from_json(&policy.to_string()).unwrap()
    }

    fn respond(
        f: &mut CrlFetcher,
        e: &Engine,
        s: &FakeStats,
        token: u32,
        status: &str,
        extra: &[(&str, &str)],
        body: &str,
    ) -> bool {
        let mut headers = vec![(":status".to_owned(), status.to_owned())];
        headers.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let bytes = body.as_bytes().to_vec();
        let read = move |n: usize| Some(bytes[..n].to_vec());
        f.on_response(token, e, Response { headers, body_size: body.len(), read_body: &read }, s)
    }

    #[test]
    fn fetches_on_schedule_with_validators_of_the_last_good_response() {
        let (e, http, s) = (engine(), FakeHttp::default(), FakeStats::default());
        let mut f = CrlFetcher::for_engine(Some(&e), CrlFetcher::default(), 100);
        f.tick(&e, &http, &s, 100);
        f.tick(&e, &http, &s, 105); // in flight: no second call
        assert_eq!(http.calls.borrow().len(), 1);
        let (cluster, headers, timeout) = http.calls.borrow()[0].clone();
        assert_eq!((cluster.as_str(), timeout), ("crl-server", 2));
        assert!(headers.contains(&(":path".to_owned(), "/ca.crl".to_owned())));
        assert!(headers.contains(&(":authority".to_owned(), "crl-server".to_owned())));
        assert!(!headers.iter().any(|(k, _)| k.starts_with("if-")));
        assert!(respond(&mut f, &e, &s, 1, "200", &[("ETag", "\"v1\""), ("Last-Modified", "Mon")], CRL_1));
        assert_eq!(s.value("peerguard.crl_source.ca.fetch_ok"), Some(1));
        f.tick(&e, &http, &s, 109);
        assert_eq!(http.calls.borrow().len(), 1, "not due before one refresh");
        f.tick(&e, &http, &s, 110);
        let headers = http.calls.borrow()[1].1.clone();
        assert!(headers.contains(&("if-none-match".to_owned(), "\"v1\"".to_owned())));
        assert!(headers.contains(&("if-modified-since".to_owned(), "Mon".to_owned())));
        assert!(!respond(&mut f, &e, &s, 2, "304", &[], ""));
        assert_eq!(s.value("peerguard.crl_source.ca.fetch_not_modified"), Some(1));
        assert_eq!(s.value("peerguard.crl_source.ca.entries"), Some(0));
        assert_eq!(
            s.value("peerguard.crl_source.ca.age_seconds"),
            Some(u64::try_from(110 - e.crl_info(0).unwrap().this_update).unwrap_or(0))
        );
    }

    #[test]
    fn failures_and_refusals_keep_the_crl_in_force_and_are_counted() {
        let (e, http, s) = (engine(), FakeHttp::default(), FakeStats::default());
        let mut f = CrlFetcher::for_engine(Some(&e), CrlFetcher::default(), 0);
        f.tick(&e, &http, &s, 0);
        assert!(respond(&mut f, &e, &s, 1, "200", &[("etag", "x")], CRL_2));
        for (t, (status, body)) in [("500", ""), ("200", "garbage"), ("200", CRL_1)].into_iter().enumerate() {
            f.tick(&e, &http, &s, 10 * (t as i64 + 1));
            assert!(!respond(&mut f, &e, &s, t as u32 + 2, status, &[], body));
        }
        // A timeout: no headers at all.
        f.tick(&e, &http, &s, 40);
        let read = |_: usize| None;
        assert!(!f.on_response(5, &e, Response { headers: Vec::new(), body_size: 0, read_body: &read }, &s));
        // Over maxBytes: refused without reading the body.
        f.tick(&e, &http, &s, 50);
        let read = |_: usize| -> Option<Vec<u8>> { panic!("read an oversized body") };
        let headers = vec![(":status".to_owned(), "200".to_owned())];
        assert!(!f.on_response(6, &e, Response { headers, body_size: 2001, read_body: &read }, &s));
        assert_eq!(s.value("peerguard.crl_source.ca.fetch_failed"), Some(3));
        assert_eq!(s.value("peerguard.crl_source.ca.rejected"), Some(2), "garbage, then CRLNumber 1 after 2");
        assert_eq!(e.crl_info(0).unwrap().number, "2");
        // An unknown token (a previous policy's call) changes nothing.
        assert!(!respond(&mut f, &e, &s, 99, "200", &[], CRL_2));
        let refusing = FakeHttp { refuse: true, ..FakeHttp::default() };
        f.tick(&e, &refusing, &s, 60);
        assert_eq!(s.value("peerguard.crl_source.ca.fetch_failed"), Some(4));
    }

    #[test]
    fn a_reload_keeps_the_last_good_crl_of_the_same_source() {
        let (e, http, s) = (engine(), FakeHttp::default(), FakeStats::default());
        let mut f = CrlFetcher::for_engine(Some(&e), CrlFetcher::default(), 0);
        f.tick(&e, &http, &s, 0);
        respond(&mut f, &e, &s, 1, "200", &[("etag", "x")], CRL_2);
        let reloaded = engine();
        let mut f2 = CrlFetcher::for_engine(Some(&reloaded), f, 5);
        assert_eq!(reloaded.crl_info(0).unwrap().number, "2");
        f2.tick(&reloaded, &http, &s, 5);
        assert_eq!(http.calls.borrow().len(), 2, "fetched at once after a reload");
        assert!(http.calls.borrow()[1].1.contains(&("if-none-match".to_owned(), "x".to_owned())));
    }
}
