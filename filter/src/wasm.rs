//! The proxy-wasm bindings: the root context compiles the policy once per `on_configure`; each
//! HTTP context asks the shared [`Worker`] for a decision.

use std::cell::RefCell;
use std::rc::Rc;

use peerguard_policy::CertCache;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

use crate::audit::AuditLimiter;
use crate::crl_fetch::{CrlFetcher, HostCaller, Response};
use crate::expiry::ExpiryTracker;
use crate::host::Host as _;
use crate::host::ProxyWasmHost;
use crate::metrics::Counters;
use crate::request::{Clock, Verdict, Worker, CERT_CACHE_CAPACITY};
use crate::stats::HostStats;
use crate::BUILD;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(PeerguardRoot::new()) });
}}

thread_local! {
    /// The CRL sources of every root context this VM has had: a reloaded policy starts from the
    /// last good CRL of a source it shares with an earlier one, so a reload never forgets a
    /// revocation (docs/policy.md "CRL sources"). Envoy gives each new plugin config (an ECDS or
    /// LDS update) a new root context in the same VM, which starts with an empty fetcher.
    static CRL_MEMORY: RefCell<CrlFetcher> = RefCell::default();
    /// The VM's expiry tracker, for the same reason: a new root context must keep reporting the
    /// principals seen under the old one, and set their gauges to 0 when they leave the window.
    static EXPIRY: Rc<RefCell<ExpiryTracker>> = Rc::default();
}

/// Options of the VM (`vm_config.configuration`), as opposed to the policy (`configuration`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VmOptions {
    /// Behave as on an Envoy older than 1.38, which has no `connection.peer_certificate`:
    /// the certificate then comes only from a digest-bound XFCC element. For compatibility tests.
    ///
    /// It ships in the production module on purpose: the end-to-end tests must run the very
    /// module users load, not a test build. It only hides evidence, exactly as an older Envoy
    /// does (the always-on certificate checks are skipped, explicit ones deny with
    /// `certificate_unavailable`), and it is set in `vm_config` by whoever controls Envoy, not by
    /// the policy.
    #[serde(default)]
    pub emulate_envoy_without_peer_certificate: bool,
}

/// The root context: owns the current [`Worker`] and replaces it on every configuration.
pub struct PeerguardRoot {
    worker: Rc<Worker>,
    options: VmOptions,
    counters: Rc<Counters>,
    audit: Rc<RefCell<AuditLimiter>>,
    /// CRL sources of the current policy (docs/policy.md "CRL sources").
    crls: CrlFetcher,
    /// Per-identity expiry gauges: the VM's ([`EXPIRY`]), kept across reloads, as the gauges
    /// themselves are.
    expiry: Rc<RefCell<ExpiryTracker>>,
    /// The clock every request reads, set on configure and on each tick.
    clock: Rc<Clock>,
}

/// How often the root context ticks: it reads the clock requests use (never more than 2 s
/// stale, docs/policy.md "Performance"), CRL sources are due on whole seconds of their `refresh`,
/// and the expiry gauges follow within a second.
const TICK: std::time::Duration = std::time::Duration::from_secs(1);

impl PeerguardRoot {
    fn new() -> PeerguardRoot {
        let counters = Rc::new(Counters::default());
        let audit = Rc::new(RefCell::new(AuditLimiter::default()));
        let clock = Rc::new(Clock::default());
        let worker = Rc::new(Worker {
            engine: Err(peerguard_policy::ConfigErrors::one(".", "no configuration received yet")),
            cache: RefCell::new(CertCache::new(1)),
            attributes: RefCell::default(),
            counters: counters.clone(),
            audit: audit.clone(),
            ignore_peer_certificate_attribute: false,
            expiry: Rc::new(RefCell::new(ExpiryTracker::default())),
            clock: clock.clone(),
        });
        PeerguardRoot {
            worker,
            options: VmOptions::default(),
            counters,
            audit,
            crls: CrlFetcher::default(),
            expiry: EXPIRY.with(Rc::clone),
            clock,
        }
    }
}

impl Context for PeerguardRoot {
    fn on_http_call_response(&mut self, token_id: u32, _num_headers: usize, body_size: usize, _num_trailers: usize) {
        let Ok(engine) = &self.worker.engine else {
            return;
        };
        let headers =
            proxy_wasm::hostcalls::get_map(proxy_wasm::types::MapType::HttpCallResponseHeaders).unwrap_or_default();
        let read_body = |n: usize| {
            proxy_wasm::hostcalls::get_buffer(proxy_wasm::types::BufferType::HttpCallResponseBody, 0, n).ok().flatten()
        };
        if self.crls.on_response(token_id, engine, Response { headers, body_size, read_body: &read_body }, &HostStats) {
            // Cached verdicts may rest on the replaced CRL (docs/policy.md "CRL sources").
            *self.worker.cache.borrow_mut() = CertCache::new(CERT_CACHE_CAPACITY);
            CRL_MEMORY.with(|m| self.crls.remember_into(&mut m.borrow_mut()));
        }
    }
}

impl RootContext for PeerguardRoot {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        log::info!("peerguard {BUILD} starting");
        let raw = proxy_wasm::hostcalls::get_buffer(proxy_wasm::types::BufferType::VmConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        if !raw.is_empty() {
            match serde_json::from_slice::<VmOptions>(&raw) {
                Ok(o) => self.options = o,
                // The VM options are not the policy; a bad one is logged and the defaults kept.
                Err(e) => log::error!("peerguard: ignoring invalid vm_config.configuration: {e}"),
            }
        }
        self.counters = Rc::new(Counters::define_all(&ProxyWasmHost));
        true
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        self.clock.set(ProxyWasmHost.now_unix());
        let config =
            proxy_wasm::hostcalls::get_buffer(proxy_wasm::types::BufferType::PluginConfiguration, 0, usize::MAX)
                .ok()
                .flatten()
                .unwrap_or_default();
        let engine = crate::configure::compile(&config);
        crate::configure::report(&engine, BUILD, &self.counters, &ProxyWasmHost, self.clock.now());
        // A reload always starts a fresh certificate cache: cached verdicts belong to the old policy.
        self.worker = Rc::new(Worker {
            engine,
            cache: RefCell::new(CertCache::new(CERT_CACHE_CAPACITY)),
            attributes: RefCell::default(),
            counters: self.counters.clone(),
            audit: self.audit.clone(),
            ignore_peer_certificate_attribute: self.options.emulate_envoy_without_peer_certificate,
            expiry: self.expiry.clone(),
            clock: self.clock.clone(),
        });
        let now = self.clock.now();
        // An ECDS update gives Envoy a new plugin, so a new root context in this VM: the last good
        // CRLs come from the VM's memory, not from this root context's fetcher alone.
        // (`on_http_call_response` remembers every CRL it installs.)
        let previous = CRL_MEMORY.with(|m| m.borrow().memory());
        self.crls = CrlFetcher::for_engine(self.worker.engine.as_ref().ok(), previous, now);
        // The tick runs whatever the policy (with no CRL source too): requests read its clock.
        if let Err(e) = proxy_wasm::hostcalls::set_tick_period(TICK) {
            log::error!(
                "peerguard: cannot set the tick period ({e:?}): the clock, CRL sources and expiry gauges stay as they are"
            );
        }
        // Returning true keeps the plugin loaded, so the 503 answer does not depend on
        // Envoy's fail_open setting.
        true
    }

    fn on_tick(&mut self) {
        let now = ProxyWasmHost.now_unix();
        self.clock.set(now);
        let Ok(engine) = &self.worker.engine else {
            return;
        };
        self.crls.tick(engine, &HostCaller, &HostStats, now);
        let opts = engine.peer_cert_expiry();
        self.expiry.borrow_mut().update(&HostStats, opts.max_identities, opts.window_secs, now);
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(PeerguardHttp { worker: self.worker.clone() }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One HTTP stream; holds the worker that was current when the stream began, so a reload
/// never changes the policy a request is decided under.
pub struct PeerguardHttp {
    worker: Rc<Worker>,
}

impl Context for PeerguardHttp {}

impl HttpContext for PeerguardHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        match self.worker.on_request_headers(&ProxyWasmHost) {
            Verdict::Continue => Action::Continue,
            Verdict::Replied => Action::Pause,
        }
    }
}
