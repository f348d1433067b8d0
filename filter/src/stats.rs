//! Gauges, histograms and counters defined at run time (CRL sources, peer certificate expiry), behind a trait so that they can be tested natively.

use std::cell::RefCell;
use std::collections::HashMap;

/// The kinds of metric the filter defines, as both hosts (proxy-wasm, Envoy's dynamic-module ABI)
/// know them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricType {
    /// Only ever increases.
    Counter,
    /// Set to a value.
    Gauge,
    /// Records a distribution.
    Histogram,
}

/// Metric names of the CRL sources and the expiry gauges. As in [`crate::metrics::names`], a
/// label value is part of the name and the [`crate::metrics::STATS_TAGS`] extractors make it a
/// tag.
pub mod names {
    /// `peerguard.crl_source.<name>.<what>`, tag `source`: counters `fetch_ok`, `fetch_failed`,
    /// `fetch_not_modified`, `rejected`; gauges `age_seconds` (now - thisUpdate of the CRL in
    /// force), `entries`, `next_update` (Unix seconds), `crl_number` (low 64 bits).
    pub const CRL_SOURCE: &str = "peerguard.crl_source.";
    /// `peerguard.peer_cert_expiry.<principal>.seconds`, tag `principal`: the earliest notAfter
    /// (Unix seconds) of a principal seen in the window; 0 once it is no longer reported.
    pub const PEER_CERT_EXPIRY: (&str, &str) = ("peerguard.peer_cert_expiry.", ".seconds");
    /// Counter: principals left out of the expiry gauges (each time one stops being reported
    /// or is first seen outside the `maxIdentities` closest).
    pub const PEER_CERT_EXPIRY_LEFT_OUT: &str = "peerguard.peer_cert_expiry_left_out";
    /// Gauge: how many principals have an expiry gauge with a value now.
    pub const PEER_CERT_EXPIRY_IDENTITIES: &str = "peerguard.peer_cert_expiry_identities";
    /// Histogram: seconds from first sight to notAfter of each peer certificate (per worker,
    /// once per certificate cache entry).
    pub const PEER_CERT_REMAINING: &str = "peerguard.peer_cert_remaining_seconds";
}

/// Defining and recording metrics.
pub trait Stats {
    /// Defines (or finds) a metric; `None` when the host refuses.
    fn define(&self, kind: MetricType, name: &str) -> Option<u32>;
    /// Sets a gauge, or records a histogram value.
    fn record(&self, id: u32, value: u64);
    /// Adds to a counter.
    fn add(&self, id: u32, n: u64);
}

/// The real host (proxy-wasm).
#[cfg(feature = "proxy-wasm")]
pub struct HostStats;

#[cfg(feature = "proxy-wasm")]
impl Stats for HostStats {
    fn define(&self, kind: MetricType, name: &str) -> Option<u32> {
        let kind = match kind {
            MetricType::Counter => proxy_wasm::types::MetricType::Counter,
            MetricType::Gauge => proxy_wasm::types::MetricType::Gauge,
            MetricType::Histogram => proxy_wasm::types::MetricType::Histogram,
        };
        proxy_wasm::hostcalls::define_metric(kind, name).ok()
    }
    fn record(&self, id: u32, value: u64) {
        let _ = proxy_wasm::hostcalls::record_metric(id, value);
    }
    fn add(&self, id: u32, n: u64) {
        let _ = proxy_wasm::hostcalls::increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX));
    }
}

/// Metric ids defined on first use, by name.
#[derive(Debug, Default)]
pub struct LazyIds(RefCell<HashMap<String, Option<u32>>>);

impl LazyIds {
    /// The id of `name`, defining it the first time.
    pub fn get(&self, s: &dyn Stats, kind: MetricType, name: &str) -> Option<u32> {
        if let Some(id) = self.0.borrow().get(name) {
            return *id;
        }
        let id = s.define(kind, name);
        self.0.borrow_mut().insert(name.to_owned(), id);
        id
    }

    /// Sets gauge `name`.
    pub fn gauge(&self, s: &dyn Stats, name: &str, value: u64) {
        if let Some(id) = self.get(s, MetricType::Gauge, name) {
            s.record(id, value);
        }
    }

    /// Adds `n` to counter `name`.
    pub fn count(&self, s: &dyn Stats, name: &str, n: u64) {
        if let Some(id) = self.get(s, MetricType::Counter, name) {
            s.add(id, n);
        }
    }

    /// Records `value` in histogram `name`.
    pub fn histogram(&self, s: &dyn Stats, name: &str, value: u64) {
        if let Some(id) = self.get(s, MetricType::Histogram, name) {
            s.record(id, value);
        }
    }
}

#[cfg(test)]
pub(crate) mod fake {
    use super::*;

    /// Records every definition and value by name.
    #[derive(Debug, Default)]
    pub struct FakeStats {
        names: RefCell<Vec<(MetricType, String)>>,
        values: RefCell<HashMap<u32, u64>>,
        histograms: RefCell<HashMap<u32, Vec<u64>>>,
    }

    impl Stats for FakeStats {
        fn define(&self, kind: MetricType, name: &str) -> Option<u32> {
            let mut names = self.names.borrow_mut();
            if let Some(i) = names.iter().position(|(_, n)| n == name) {
                return u32::try_from(i).ok();
            }
            names.push((kind, name.to_owned()));
            u32::try_from(names.len() - 1).ok()
        }
        fn record(&self, id: u32, value: u64) {
            let kind = self.names.borrow()[id as usize].0;
            if kind == MetricType::Histogram {
                self.histograms.borrow_mut().entry(id).or_default().push(value);
            } else {
                self.values.borrow_mut().insert(id, value);
            }
        }
        fn add(&self, id: u32, n: u64) {
            *self.values.borrow_mut().entry(id).or_default() += n;
        }
    }

    impl FakeStats {
        fn id(&self, name: &str) -> Option<u32> {
            self.names.borrow().iter().position(|(_, n)| n == name).and_then(|i| u32::try_from(i).ok())
        }
        /// A gauge's or counter's value; `None` when never defined.
        pub fn value(&self, name: &str) -> Option<u64> {
            let id = self.id(name)?;
            Some(self.values.borrow().get(&id).copied().unwrap_or(0))
        }
        /// Every value recorded in a histogram.
        pub fn histogram(&self, name: &str) -> Vec<u64> {
            self.id(name).and_then(|id| self.histograms.borrow().get(&id).cloned()).unwrap_or_default()
        }
        /// How many metrics were defined whose name starts with `prefix`.
        pub fn defined_with_prefix(&self, prefix: &str) -> usize {
            self.names.borrow().iter().filter(|(_, n)| n.starts_with(prefix)).count()
        }
    }
}
