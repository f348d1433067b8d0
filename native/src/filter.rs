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

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex, Weak};

use peerguard_filter::audit::AuditLimiter;
use peerguard_filter::configure;
use peerguard_filter::host::Host;
use peerguard_filter::metrics::Counters;
use peerguard_filter::request::{Clock, Verdict, Worker, CERT_CACHE_CAPACITY};
use peerguard_policy::{CertCache, ConfigErrors, Engine};

use crate::ffi::{self, Attribute, EnvoyConfig, EnvoyFilter, LogLevel};

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
}

/// One HTTP stream: the worker that was current when it began.
pub struct FilterHandle {
    worker: Rc<Worker>,
}

thread_local! {
    /// This thread's workers, one per live config.
    static WORKERS: RefCell<Vec<(Weak<Config>, Rc<Worker>)>> = const { RefCell::new(Vec::new()) };
    /// The audit rate limit is per worker thread, as it is per Wasm VM, and outlives reloads.
    static AUDIT: Rc<RefCell<AuditLimiter>> = Rc::default();
    /// The clock requests read; set from the system clock at the start of each request.
    static CLOCK: Rc<Clock> = Rc::default();
}

/// Once per process, when Envoy loads the module.
pub fn program_init() {
    if log::set_logger(&EnvoyLog).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
    log::info!("peerguard {BUILD} (native dynamic module) loaded");
}

/// A new filter config: defines every counter, compiles the policy once to report errors and
/// warnings as the Wasm filter does on `on_configure`. An invalid policy still gives a config:
/// every request is then answered 503 `config_invalid`, as in the Wasm build (refusing the config
/// would make Envoy reject the listener update and keep serving the old policy silently).
pub fn config_new(envoy: &EnvoyConfig, _name: &[u8], raw: &[u8]) -> Arc<Config> {
    let host = ConfigHost(envoy);
    let counters = Counters::define_all(&host);
    let engine = compile(raw);
    if let Ok(e) = &engine {
        for name in e.policy_names() {
            counters.define_policy(&host, name);
        }
    }
    configure::report(&engine, BUILD, &counters, &host, host.now_unix());
    Arc::new(Config { policy: raw.to_vec(), first: Mutex::new(Some(engine)), counters: Mutex::new(counters) })
}

/// The policy as the Wasm build compiles it, except that `crlSources` is refused: this build does
/// not fetch CRLs, and running without them would leave revocation to `unknownStatus` (`allow`
/// unless set), so a policy that relies on them fails closed with 503 `config_invalid`.
fn compile(raw: &[u8]) -> Result<Engine, ConfigErrors> {
    let engine = configure::compile(raw)?;
    if engine.crl_sources().is_empty() {
        Ok(engine)
    } else {
        Err(ConfigErrors::one(
            ".certificate.crlSources",
            "the native build does not fetch CRL sources; use the Wasm build, or certificate.crls",
        ))
    }
}

/// A new stream: this thread's worker for `config`, built on the thread's first stream of it.
pub fn filter_new(config: &Arc<Config>) -> FilterHandle {
    FilterHandle { worker: worker_for(config) }
}

fn worker_for(config: &Arc<Config>) -> Rc<Worker> {
    WORKERS.with(|cell| {
        let mut workers = cell.borrow_mut();
        if let Some((_, w)) = workers.iter().find(|(c, _)| std::ptr::eq(c.as_ptr(), Arc::as_ptr(config))) {
            return w.clone();
        }
        // Configs Envoy destroyed leave with their workers (streams still running keep theirs).
        workers.retain(|(c, _)| c.strong_count() > 0);
        let engine = match config.first.lock() {
            Ok(mut first) => first.take(),
            Err(_) => None,
        }
        .unwrap_or_else(|| compile(&config.policy));
        let counters = match config.counters.lock() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let worker = Rc::new(Worker {
            engine,
            cache: RefCell::new(CertCache::new(CERT_CACHE_CAPACITY)),
            counters: Rc::new(counters),
            audit: AUDIT.with(Rc::clone),
            ignore_peer_certificate_attribute: false,
            expiry: Rc::default(),
            clock: CLOCK.with(Rc::clone),
        });
        workers.push((Arc::downgrade(config), worker.clone()));
        worker
    })
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
