//! Counters in Envoy's stats, defined through proxy-wasm.

use std::cell::RefCell;
use std::collections::HashMap;

use peerguard_policy::Reason;

use crate::host::Host;

/// Metric ids; an id of `None` means the host refused the definition (native tests, or an
/// old host), and increments are skipped.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    allowed: Option<u32>,
    denied: Option<u32>,
    would_deny: Option<u32>,
    audit: Option<u32>,
    config_errors: Option<u32>,
    cert_expiring: Option<u32>,
    denied_by_reason: HashMap<Reason, u32>,
    would_deny_by_reason: HashMap<Reason, u32>,
    /// Per-policy counters, defined on a policy's first match rather than at configure time:
    /// defining 10,000 stats in `on_configure` would slow every policy load.
    policy_matches: RefCell<HashMap<String, Option<u32>>>,
}

fn inc(host: &dyn Host, id: Option<u32>) {
    if let Some(id) = id {
        host.increment_metric(id);
    }
}

/// Metric names. Envoy shows them under the `wasmcustom.` prefix in `/stats`; in
/// `/stats/prometheus` it strips that custom namespace (and adds no `envoy_` prefix), so
/// `peerguard.allowed` is scraped as `peerguard_allowed`.
///
/// The per-reason and per-policy counters put the label value in the name
/// (`peerguard.denied.reason.<code>`, `peerguard.policy.<name>.matched`). Envoy turns that into a
/// real tag only with the [`STATS_TAGS`] extractors in the bootstrap's `stats_config`; then
/// Prometheus sees `peerguard_denied_reason{reason="no_matching_allow"}` and
/// `peerguard_policy_matched{policy="frontend-reads-api"}`. Without them each name is its own
/// counter, which still works, only without labels.
pub mod names {
    /// Requests allowed.
    pub const ALLOWED: &str = "peerguard.allowed";
    /// Requests denied.
    pub const DENIED: &str = "peerguard.denied";
    /// Requests that would have been denied in dry run.
    pub const WOULD_DENY: &str = "peerguard.would_deny";
    /// AUDIT policy matches.
    pub const AUDIT: &str = "peerguard.audit";
    /// Invalid configurations received.
    pub const CONFIG_ERRORS: &str = "peerguard.config_errors";
    /// Requests whose certificate was within `minRemaining` of expiry.
    pub const CERT_EXPIRING: &str = "peerguard.cert_expiring";
    /// Denied requests of one reason: `peerguard.denied.reason.<code>`, tag `reason`.
    pub const DENIED_REASON_PREFIX: &str = "peerguard.denied.reason.";
    /// Would-deny (dry run) of one reason: `peerguard.would_deny.reason.<code>`, tag `reason`.
    pub const WOULD_DENY_REASON_PREFIX: &str = "peerguard.would_deny.reason.";
    /// Requests a named policy or certificate rule decided or audited:
    /// `peerguard.policy.<name>.matched`, tag `policy`. Characters other than ASCII letters,
    /// digits, `-` and `_` in the name become `_`, so a name never adds a stats path segment.
    pub const POLICY_MATCHED: (&str, &str) = ("peerguard.policy.", ".matched");
}

/// Envoy `stats_config.stats_tags` entries (tag name, regex) that turn the name-encoded labels
/// into tags. In each regex the first group is cut out of the name, the second is the value
/// (Envoy's `TagSpecifier` convention). The single source: [`crate::envoy_config::stats_tags`]
/// renders them for `peerguard render envoy`, the e2e launcher and the bench, and a test checks
/// the copies in `envoy/*.yaml` and `istio/` against them.
///
/// `source` labels the CRL source metrics (`peerguard.crl_source.<name>.<what>`, see
/// [`crate::stats::names`]); `principal` labels the expiry gauges
/// (`peerguard.peer_cert_expiry.<principal>.seconds`, the principal percent-encoded by
/// [`crate::expiry::encode_principal`], whose output is exactly the characters of the class).
pub const STATS_TAGS: [(&str, &str); 4] = [
    ("reason", r"^wasmcustom\.peerguard\.(?:denied|would_deny)\.reason(\.(\w+))$"),
    ("policy", r"^wasmcustom\.peerguard\.policy(\.([\w-]+))\.matched$"),
    ("source", r"^wasmcustom\.peerguard\.crl_source(\.([\w-]+))\.\w+$"),
    ("principal", r"^wasmcustom\.peerguard\.peer_cert_expiry(\.([\w.%/-]+))\.seconds$"),
];

impl Counters {
    /// Defines the fixed counters and one per reason.
    pub fn define_all(host: &dyn Host) -> Counters {
        let define = |name: &str| host.define_counter(name);
        let mut c = Counters {
            allowed: define(names::ALLOWED),
            denied: define(names::DENIED),
            would_deny: define(names::WOULD_DENY),
            audit: define(names::AUDIT),
            config_errors: define(names::CONFIG_ERRORS),
            cert_expiring: define(names::CERT_EXPIRING),
            ..Counters::default()
        };
        for r in Reason::ALL {
            if let Some(id) = define(&format!("{}{}", names::DENIED_REASON_PREFIX, r.code())) {
                c.denied_by_reason.insert(r, id);
            }
            if let Some(id) = define(&format!("{}{}", names::WOULD_DENY_REASON_PREFIX, r.code())) {
                c.would_deny_by_reason.insert(r, id);
            }
        }
        c
    }

    /// The stat name of a policy's match counter; characters Envoy's tag regex does not
    /// accept become `_`.
    fn policy_metric_name(name: &str) -> String {
        let safe: String =
            name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
        format!("{}{safe}{}", names::POLICY_MATCHED.0, names::POLICY_MATCHED.1)
    }

    /// An allowed request.
    pub fn allowed(&self, host: &dyn Host) {
        inc(host, self.allowed);
    }

    /// A denied request.
    pub fn denied(&self, host: &dyn Host, reason: Reason) {
        inc(host, self.denied);
        inc(host, self.denied_by_reason.get(&reason).copied());
    }

    /// A would-deny in dry run.
    pub fn would_deny(&self, host: &dyn Host, reason: Reason) {
        inc(host, self.would_deny);
        inc(host, self.would_deny_by_reason.get(&reason).copied());
    }

    /// An AUDIT policy matched.
    pub fn audit(&self, host: &dyn Host) {
        inc(host, self.audit);
    }

    /// A configuration failed validation.
    pub fn config_error(&self, host: &dyn Host) {
        inc(host, self.config_errors);
    }

    /// A certificate within `minRemaining` of expiry was seen.
    pub fn cert_expiring(&self, host: &dyn Host) {
        inc(host, self.cert_expiring);
    }

    /// Defines the match counter of a named policy or certificate rule now, for a host that
    /// allows no definitions after configuration (Envoy's dynamic modules freeze their stats
    /// once the filter config is built).
    pub fn define_policy(&self, host: &dyn Host, name: &str) {
        let mut ids = self.policy_matches.borrow_mut();
        if !ids.contains_key(name) {
            let id = host.define_counter(&Counters::policy_metric_name(name));
            ids.insert(name.to_owned(), id);
        }
    }

    /// A named policy or certificate rule decided (or audited) a request.
    pub fn policy_matched(&self, host: &dyn Host, name: &str) {
        let id = {
            let mut ids = self.policy_matches.borrow_mut();
            match ids.get(name) {
                Some(id) => *id,
                None => {
                    let id = host.define_counter(&Counters::policy_metric_name(name));
                    ids.insert(name.to_owned(), id);
                    id
                }
            }
        };
        inc(host, id);
    }
}
