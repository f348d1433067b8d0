//! The dynamic module's filter, in safe Rust: configs, per-thread workers, and the [`Host`] that Envoy's ABI callbacks provide to the shared request glue.
//!
//! The decision is the Wasm filter's own code: [`peerguard_filter::request::Worker`] with the
//! same counters, audit lines, identity header and deny response. What differs is only how the
//! facts are read (ABI callbacks instead of proxy-wasm host calls) and the threading: a Wasm VM
//! runs on one worker thread, while one dynamic-module config serves every worker thread. So each
//! thread builds its own [`Worker`] for a config on its first request, and a stream keeps the
//! worker it started with: a reload (a new config from LDS or ECDS) never changes the policy of a
//! request in flight (docs/policy.md "Reloading the policy").
#![forbid(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::Duration;

use peerguard_filter::audit::AuditLimiter;
use peerguard_filter::configure;
use peerguard_filter::crl_fetch::{self, CrlFetcher, HttpCaller, Response};
use peerguard_filter::expiry::{ExpiryObserver, ExpiryTracker};
use peerguard_filter::host::Host;
use peerguard_filter::metrics::Counters;
use peerguard_filter::request::{Clock, Verdict, Worker, CERT_CACHE_CAPACITY};
use peerguard_filter::stats::{names, MetricType, Stats};
use peerguard_policy::{CertCache, ConfigErrors, Engine};

use crate::ffi::{self, Attribute, ConfigScheduler, EnvoyConfig, EnvoyFilter, LogLevel, MetricKind};

/// Crate version and git revision of the filter glue, as the Wasm build logs it.
pub const BUILD: &str = peerguard_filter::BUILD;

/// One filter config (one `DynamicModuleFilter` in a listener, or one ECDS version of it).
pub struct Config {
    /// The policy text, compiled again by each worker thread that serves this config.
    policy: Vec<u8>,
    /// The policy compiled in `config_new`, handed to the first worker thread, so that one
    /// thread does not compile it twice.
    first: Mutex<Option<Result<Engine, ConfigErrors>>>,
    /// Counter ids, all defined in `config_new` (Envoy freezes the config's stats after it).
    counters: Mutex<Counters>,
    /// The CRL source and expiry metrics, also defined in `config_new`.
    metrics: MetricTable,
    /// What the main thread's tick works on.
    main: Mutex<MainThread>,
    /// The CRLs the main thread accepted, for the worker threads to install.
    crls: PublishedCrls,
    /// Per-identity expiry ([`process_expiry`]), fed by every worker thread and reported by the
    /// tick: unlike the Wasm build (one tracker per VM, so per worker), the gauges are the process's.
    expiry: Arc<Mutex<ExpiryTracker>>,
    /// The thread that posts the tick to the main thread once a second.
    ticker: Mutex<Option<Ticker>>,
}

/// The main thread's state of a config: CRL fetching and the expiry report settings.
struct MainThread {
    /// A copy of the policy that validates fetched CRLs (`Engine::install_crl`); only compiled
    /// when the policy has CRL sources.
    engine: Option<Engine>,
    fetcher: CrlFetcher,
    /// `metrics.peerCertExpiry`: `maxIdentities` and the window in seconds.
    expiry: (usize, i64),
}

/// CRLs accepted on the main thread, by source index; `generation` changes with every install,
/// so a worker thread compares one integer per new stream and installs only when it moved.
#[derive(Default)]
struct PublishedCrls {
    generation: AtomicU64,
    bodies: Mutex<Vec<Option<Arc<[u8]>>>>,
}

/// One HTTP stream: the worker that was current when it began.
pub struct FilterHandle {
    worker: Rc<Worker>,
}

/// A worker thread's copy of a config: its worker, and the CRL generation installed into it.
struct ThreadWorker {
    config: Weak<Config>,
    worker: Rc<Worker>,
    crl_generation: Cell<u64>,
}

thread_local! {
    /// This thread's workers, one per live config.
    static WORKERS: RefCell<Vec<ThreadWorker>> = const { RefCell::new(Vec::new()) };
    /// The audit rate limit is per worker thread, as it is per Wasm VM, and outlives reloads.
    static AUDIT: Rc<RefCell<AuditLimiter>> = Rc::default();
    /// The clock requests read; set from the system clock at the start of each request.
    static CLOCK: Rc<Clock> = Rc::default();
}

/// The CRL sources of every config, kept across configs: a new config (a reload) starts from the
/// last good CRL of a source it shares with an earlier one, so a reload never forgets a
/// revocation (docs/policy.md "CRL sources").
fn crl_memory() -> MutexGuard<'static, CrlFetcher> {
    static MEMORY: OnceLock<Mutex<CrlFetcher>> = OnceLock::new();
    lock(MEMORY.get_or_init(Mutex::default))
}

/// Locks a mutex. A poisoned one (a panic on another thread, caught at the FFI boundary) still
/// holds consistent data for everything here, and refusing it would stop CRLs and expiry for good.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Once per process, when Envoy loads the module.
pub fn program_init() {
    if log::set_logger(&EnvoyLog).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
    log::info!("peerguard {BUILD} (native dynamic module) loaded");
}

/// A new filter config: defines every metric, compiles the policy once to report errors and
/// warnings as the Wasm filter does on `on_configure`, and starts the tick. An invalid policy
/// still gives a config: every request is then answered 503 `config_invalid`, as in the Wasm
/// build (refusing the config would make Envoy reject the listener update and keep serving the
/// old policy silently).
pub fn config_new(envoy: &EnvoyConfig, _name: &[u8], raw: &[u8]) -> Arc<Config> {
    let host = ConfigHost(envoy);
    let counters = Counters::define_all(&host);
    let engine = configure::compile(raw);
    if let Ok(e) = &engine {
        for name in e.policy_names() {
            counters.define_policy(&host, name);
        }
    }
    let now = unix_now();
    configure::report(&engine, BUILD, &counters, &host, now);
    let metrics = MetricTable::define(envoy, engine.as_ref().ok());
    let expiry = engine.as_ref().map_or((0, 0), |e| {
        let o = e.peer_cert_expiry();
        (o.max_identities, o.window_secs)
    });
    // The main thread's own copy validates fetched CRLs; workers install what it accepted.
    let main_engine = match &engine {
        Ok(e) if !e.crl_sources().is_empty() => configure::compile(raw).ok(),
        _ => None,
    };
    let memory = crl_memory().memory();
    let fetcher = CrlFetcher::for_engine(main_engine.as_ref(), memory, now);
    let crls = PublishedCrls::default();
    publish(&crls, &fetcher);
    let ticker = if engine.is_ok() { envoy.scheduler().map(Ticker::start) } else { None };
    if engine.is_ok() && ticker.is_none() {
        log::error!("peerguard: no config scheduler: CRL sources and expiry gauges stay as they are");
    }
    Arc::new(Config {
        policy: raw.to_vec(),
        first: Mutex::new(Some(engine)),
        counters: Mutex::new(counters),
        metrics,
        main: Mutex::new(MainThread { engine: main_engine, fetcher, expiry }),
        crls,
        expiry: process_expiry(),
        ticker: Mutex::new(ticker),
    })
}

impl Config {
    /// Envoy is done with this config: the tick stops (and its scheduler is deleted) now, even
    /// if streams still hold the config.
    pub fn shutdown(&self) {
        // Dropping the ticker stops and joins its thread, then deletes the scheduler.
        drop(lock(&self.ticker).take());
    }
}

/// Hands the fetcher's CRLs in force to the worker threads.
fn publish(crls: &PublishedCrls, fetcher: &CrlFetcher) {
    let bodies: Vec<Option<Arc<[u8]>>> = fetcher.last_good().into_iter().map(|b| b.map(Arc::from)).collect();
    if bodies.iter().all(Option::is_none) {
        return;
    }
    *lock(&crls.bodies) = bodies;
    crls.generation.fetch_add(1, Ordering::Release);
}

/// The tick, on Envoy's main thread once a second: CRL fetches that are due, CRL gauges, and the
/// expiry gauges.
pub fn config_tick(config: &Config, envoy: &EnvoyConfig) {
    let now = unix_now();
    let stats = NativeStats { envoy, table: &config.metrics };
    let mut main = lock(&config.main);
    let MainThread { engine, fetcher, expiry: (max_identities, window) } = &mut *main;
    if let Some(engine) = engine {
        fetcher.tick(engine, &ConfigCaller(envoy), &stats, now);
    }
    lock(&config.expiry).update(&stats, *max_identities, *window, now);
}

/// A CRL fetch answered (or failed), on the main thread.
pub fn config_callout_done(
    config: &Config,
    envoy: &EnvoyConfig,
    callout_id: u64,
    headers: Vec<(String, String)>,
    body_size: usize,
    read_body: &dyn Fn(usize) -> Option<Vec<u8>>,
) {
    let stats = NativeStats { envoy, table: &config.metrics };
    let mut main = lock(&config.main);
    let MainThread { engine: Some(engine), fetcher, .. } = &mut *main else {
        return;
    };
    // Ids past u32 never match a call of ours (the fetcher's tokens are u32).
    let Ok(token) = u32::try_from(callout_id) else {
        return;
    };
    if fetcher.on_response(token, engine, Response { headers, body_size, read_body }, &stats) {
        publish(&config.crls, fetcher);
        fetcher.remember_into(&mut crl_memory());
    }
}

/// HTTP calls of the CRL fetcher, as config callouts on the main thread.
struct ConfigCaller<'a>(&'a EnvoyConfig);

impl HttpCaller for ConfigCaller<'_> {
    fn dispatch(&self, cluster: &str, headers: Vec<(&str, &str)>, timeout_secs: u64) -> Result<u32, String> {
        let id =
            self.0.http_callout(cluster, &headers, timeout_secs.saturating_mul(1000)).map_err(|code| match code {
                1 => "Envoy refused the request: a required header is missing".to_owned(),
                2 => "no such cluster".to_owned(),
                4 => "Envoy could not create the request (no healthy host?)".to_owned(),
                other => format!("Envoy refused the call (http_callout_init_result {other})"),
            })?;
        u32::try_from(id).map_err(|_| format!("callout id {id} is out of range"))
    }
}

/// Posts the tick to the main thread once a second until stopped.
struct Ticker {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Deleted (dropped) only after the thread that commits to it has ended.
    scheduler: Option<Arc<ConfigScheduler>>,
}

/// How often the tick runs, as in the Wasm build (filter/src/wasm.rs).
const TICK: Duration = Duration::from_secs(1);

impl Ticker {
    fn start(scheduler: ConfigScheduler) -> Ticker {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let scheduler = Arc::new(scheduler);
        let (s, st) = (scheduler.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("peerguard-tick".into())
            .spawn(move || {
                let (flag, wake) = &*st;
                let mut stopped = lock(flag);
                for event in 0u64.. {
                    if *stopped {
                        break;
                    }
                    // The first tick at once: CRL sources are fetched as soon as the config is in.
                    s.commit(event);
                    stopped = match wake.wait_timeout(stopped, TICK) {
                        Ok((g, _)) => g,
                        Err(poisoned) => poisoned.into_inner().0,
                    };
                }
            })
            .map_err(|e| log::error!("peerguard: cannot start the tick thread: {e}"))
            .ok();
        Ticker { stop, thread, scheduler: Some(scheduler) }
    }
}

impl Drop for Ticker {
    /// Stops the thread, waits for it, then deletes the scheduler.
    fn drop(&mut self) {
        let (flag, wake) = &*self.stop;
        *lock(flag) = true;
        wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // The thread has ended: nothing commits any more, so the scheduler can go.
        self.scheduler = None;
    }
}

/// The CRL source and expiry metrics of a config. Envoy accepts definitions only in
/// `config_new`, so every name a source can use is defined there, and the per-principal expiry
/// gauge is one gauge with a `principal` label (Envoy makes a stat per label value): in
/// Prometheus it reads `peerguard_peer_cert_expiry_seconds{principal="..."}`, as the Wasm build's.
struct MetricTable {
    /// Plain metrics by name: kind and Envoy id.
    plain: HashMap<String, (MetricType, usize)>,
    /// The labelled per-principal expiry gauge.
    principal_gauge: Option<usize>,
}

/// What an id handed out by [`Stats::define`] stands for: a name, resolved against the config
/// of each call. Envoy's ids are per config, while the expiry tracker (one per process) keeps the
/// ids it was given across reloads; the same stat name is the same Envoy stat in every config.
#[derive(Clone, PartialEq, Eq)]
enum Handed {
    Plain(MetricType, String),
    /// The expiry gauge with this (encoded) principal as its label value.
    Principal(String),
}

fn handed() -> MutexGuard<'static, Vec<Handed>> {
    static HANDED: OnceLock<Mutex<Vec<Handed>>> = OnceLock::new();
    lock(HANDED.get_or_init(Mutex::default))
}

/// The labelled expiry gauge's name and label.
const PRINCIPAL_GAUGE: (&str, &str) = ("peerguard.peer_cert_expiry.seconds", "principal");

fn kind(t: MetricType) -> MetricKind {
    match t {
        MetricType::Counter => MetricKind::Counter,
        MetricType::Gauge => MetricKind::Gauge,
        MetricType::Histogram => MetricKind::Histogram,
    }
}

impl MetricTable {
    fn define(envoy: &EnvoyConfig, engine: Option<&Engine>) -> MetricTable {
        let mut wanted: Vec<(MetricType, String)> = vec![
            (MetricType::Counter, names::PEER_CERT_EXPIRY_LEFT_OUT.to_owned()),
            (MetricType::Gauge, names::PEER_CERT_EXPIRY_IDENTITIES.to_owned()),
            (MetricType::Histogram, names::PEER_CERT_REMAINING.to_owned()),
        ];
        for spec in engine.map(Engine::crl_sources).unwrap_or_default() {
            wanted.extend(crl_fetch::SOURCE_COUNTERS.iter().map(|w| (MetricType::Counter, crl_fetch::metric(spec, w))));
            wanted.extend(crl_fetch::SOURCE_GAUGES.iter().map(|w| (MetricType::Gauge, crl_fetch::metric(spec, w))));
        }
        let mut plain = HashMap::new();
        for (t, name) in wanted {
            match envoy.define(kind(t), &name, &[]) {
                Some(id) => {
                    plain.insert(name, (t, id));
                }
                None => log::warn!("peerguard: Envoy refused metric {name}"),
            }
        }
        let principal_gauge = envoy.define(MetricKind::Gauge, PRINCIPAL_GAUGE.0, &[PRINCIPAL_GAUGE.1]);
        MetricTable { plain, principal_gauge }
    }
}

/// [`Stats`] on a config's predefined metrics, for the CRL fetcher and the expiry tracker.
struct NativeStats<'a> {
    envoy: &'a EnvoyConfig,
    table: &'a MetricTable,
}

impl Stats for NativeStats<'_> {
    fn define(&self, t: MetricType, name: &str) -> Option<u32> {
        let wanted = match self.table.plain.get(name) {
            Some((defined, _)) if *defined == t => Handed::Plain(t, name.to_owned()),
            Some(_) => return None,
            None => {
                let (prefix, suffix) = names::PEER_CERT_EXPIRY;
                let principal = name.strip_prefix(prefix).and_then(|n| n.strip_suffix(suffix))?;
                if t != MetricType::Gauge {
                    return None;
                }
                self.table.principal_gauge?;
                Handed::Principal(principal.to_owned())
            }
        };
        let mut all = handed();
        let at = match all.iter().position(|h| *h == wanted) {
            Some(i) => i,
            None => {
                all.push(wanted);
                all.len() - 1
            }
        };
        u32::try_from(at).ok()
    }

    fn record(&self, id: u32, value: u64) {
        let entry = handed().get(id as usize).cloned();
        match entry {
            Some(Handed::Plain(t, name)) => {
                if let Some((_, id)) = self.table.plain.get(&name) {
                    self.envoy.record(kind(t), *id, &[], value);
                }
            }
            Some(Handed::Principal(principal)) => {
                if let Some(id) = self.table.principal_gauge {
                    self.envoy.record(MetricKind::Gauge, id, &[&principal], value);
                }
            }
            None => {}
        }
    }

    fn add(&self, id: u32, n: u64) {
        if let Some(Handed::Plain(MetricType::Counter, name)) = handed().get(id as usize).cloned() {
            if let Some((_, id)) = self.table.plain.get(&name) {
                self.envoy.record(MetricKind::Counter, *id, &[], n);
            }
        }
    }
}

/// The expiry tracker of the process: every config's workers feed it and every config's tick
/// reports it, so a reload neither forgets the principals seen nor leaves their gauges stale
/// (a principal that leaves the window is set to 0, as in the Wasm build).
fn process_expiry() -> Arc<Mutex<ExpiryTracker>> {
    static EXPIRY: OnceLock<Arc<Mutex<ExpiryTracker>>> = OnceLock::new();
    EXPIRY.get_or_init(Arc::default).clone()
}

/// The process-wide expiry tracker, as the request glue sees it.
struct SharedExpiry(Arc<Mutex<ExpiryTracker>>);

impl ExpiryObserver for SharedExpiry {
    fn observe(&self, principal: &str, not_after: i64, now: i64) {
        self.0.observe(principal, not_after, now);
    }
    fn certificate_seen(&self, not_after: i64, now: i64) {
        self.0.certificate_seen(not_after, now);
    }
}

/// A new stream: this thread's worker for `config`, built on the thread's first stream of it,
/// with the CRLs the main thread accepted since this thread last looked.
pub fn filter_new(config: &Arc<Config>) -> FilterHandle {
    FilterHandle { worker: worker_for(config) }
}

fn worker_for(config: &Arc<Config>) -> Rc<Worker> {
    WORKERS.with(|cell| {
        let mut workers = cell.borrow_mut();
        let at = match workers.iter().position(|w| std::ptr::eq(w.config.as_ptr(), Arc::as_ptr(config))) {
            Some(i) => i,
            None => {
                // Configs Envoy destroyed leave with their workers (streams still running keep theirs).
                workers.retain(|w| w.config.strong_count() > 0);
                workers.push(new_worker(config));
                workers.len() - 1
            }
        };
        let Some(w) = workers.get(at) else {
            return new_worker(config).worker;
        };
        let published = config.crls.generation.load(Ordering::Acquire);
        if w.crl_generation.get() != published {
            install_crls(&w.worker, &lock(&config.crls.bodies));
            w.crl_generation.set(published);
        }
        w.worker.clone()
    })
}

fn new_worker(config: &Arc<Config>) -> ThreadWorker {
    let engine = lock(&config.first).take().unwrap_or_else(|| configure::compile(&config.policy));
    let counters = lock(&config.counters).clone();
    let worker = Rc::new(Worker {
        engine,
        cache: RefCell::new(CertCache::new(CERT_CACHE_CAPACITY)),
        attributes: RefCell::default(),
        counters: Rc::new(counters),
        audit: AUDIT.with(Rc::clone),
        ignore_peer_certificate_attribute: false,
        expiry: Rc::new(SharedExpiry(config.expiry.clone())),
        clock: CLOCK.with(Rc::clone),
    });
    ThreadWorker { config: Arc::downgrade(config), worker, crl_generation: Cell::new(0) }
}

/// Installs the main thread's CRLs into a worker's engine (each is checked again, as in any
/// install); a new one drops the cached verdicts that may rest on the CRL it replaces.
fn install_crls(worker: &Worker, bodies: &[Option<Arc<[u8]>>]) {
    let Ok(engine) = &worker.engine else {
        return;
    };
    let mut changed = false;
    for (i, body) in bodies.iter().enumerate() {
        if let Some(body) = body {
            match engine.install_crl(i, body) {
                Ok(installed) => changed |= installed.changed,
                Err(e) => log::warn!("peerguard: worker refused the CRL of source {i}: {e}"),
            }
        }
    }
    if changed {
        *worker.cache.borrow_mut() = CertCache::new(CERT_CACHE_CAPACITY);
    }
}

impl FilterHandle {
    /// Request headers: decide; `true` lets the request continue, `false` means a local reply
    /// was sent.
    pub fn on_request_headers(&self, envoy: &EnvoyFilter) -> bool {
        let host = NativeHost(envoy);
        self.worker.clock.set(host.now_unix());
        self.worker.on_request_headers(&host) == Verdict::Continue
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The host during a request: Envoy's ABI callbacks for one stream.
struct NativeHost<'a>(&'a EnvoyFilter);

impl Host for NativeHost<'_> {
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        let attribute = match path {
            ["filter_state", key] => return self.0.filter_state(key),
            // proxy-wasm gives an integer property as 8 little-endian bytes; the glue reads that.
            ["destination", "port"] => {
                return self.0.attribute_int(Attribute::DestinationPort).map(|p| p.to_le_bytes().to_vec())
            }
            ["source", "address"] => Attribute::SourceAddress,
            ["connection", "requested_server_name"] => Attribute::ConnectionRequestedServerName,
            ["connection", "subject_peer_certificate"] => Attribute::ConnectionSubjectPeerCertificate,
            ["connection", "dns_san_peer_certificate"] => Attribute::ConnectionDnsSanPeerCertificate,
            ["connection", "uri_san_peer_certificate"] => Attribute::ConnectionUriSanPeerCertificate,
            ["connection", "sha256_peer_certificate_digest"] => Attribute::ConnectionSha256PeerCertificateDigest,
            // Not in the ABI (notably `connection.peer_certificate`): the certificate comes
            // from the digest-bound XFCC element, as on an Envoy older than 1.38.
            _ => return None,
        };
        self.0.attribute_string(attribute)
    }

    fn request_header(&self, name: &str) -> Option<Vec<u8>> {
        self.0.request_header(name)
    }

    fn request_header_values(&self, name: &str) -> Vec<Vec<u8>> {
        self.0.request_header_values(name)
    }

    fn set_request_header(&self, name: &str, value: Option<&str>) {
        self.0.set_request_header(name, value);
        // The route must be chosen on the path that is sent upstream (the Wasm host clears the
        // route cache itself when a header changes).
        if name == ":path" {
            self.0.clear_route_cache();
        }
    }

    fn send_response(&self, status: u32, headers: &[(&str, &str)], body: &[u8]) {
        self.0.send_response(status, headers, body);
    }

    fn now_unix(&self) -> i64 {
        unix_now()
    }

    fn increment_metric(&self, id: u32) {
        self.0.increment_counter(id);
    }

    fn define_counter(&self, _name: &str) -> Option<u32> {
        // Envoy freezes a config's stats once it is built; every counter is defined in
        // `config_new` (see `Counters::define_policy`).
        None
    }
}

/// The host while Envoy builds a config: only counters can be defined.
struct ConfigHost<'a>(&'a EnvoyConfig);

impl Host for ConfigHost<'_> {
    fn property(&self, _path: &[&str]) -> Option<Vec<u8>> {
        None
    }
    fn request_header(&self, _name: &str) -> Option<Vec<u8>> {
        None
    }
    fn request_header_values(&self, _name: &str) -> Vec<Vec<u8>> {
        Vec::new()
    }
    fn set_request_header(&self, _name: &str, _value: Option<&str>) {}
    fn send_response(&self, _status: u32, _headers: &[(&str, &str)], _body: &[u8]) {}
    fn now_unix(&self) -> i64 {
        unix_now()
    }
    fn increment_metric(&self, id: u32) {
        self.0.increment_counter(id);
    }
    fn define_counter(&self, name: &str) -> Option<u32> {
        self.0.define_counter(name)
    }
}

/// `log` to Envoy's log: audit lines and configuration messages read as in the Wasm build.
struct EnvoyLog;

fn level(l: log::Level) -> LogLevel {
    match l {
        log::Level::Error => LogLevel::Error,
        log::Level::Warn => LogLevel::Warn,
        log::Level::Info => LogLevel::Info,
        log::Level::Debug => LogLevel::Debug,
        log::Level::Trace => LogLevel::Trace,
    }
}

impl log::Log for EnvoyLog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        ffi::log_enabled(level(metadata.level()))
    }
    fn log(&self, record: &log::Record<'_>) {
        let l = level(record.level());
        if ffi::log_enabled(l) {
            ffi::log(l, &record.args().to_string());
        }
    }
    fn flush(&self) {}
}
