//! Per-identity peer certificate expiry: the earliest notAfter of each principal seen recently, as gauges (docs/policy.md "Metrics").
//!
//! Only the `maxIdentities` principals closest to expiry get a gauge with a value; every other
//! principal that once had one is set to 0 ("not reported"), since proxy-wasm cannot delete a
//! stat. Every gauge is an Envoy stat for the life of the process, so at most
//! [`GAUGE_NAMES_PER_IDENTITY`] × `maxIdentities` distinct principals ever get a gauge name; past
//! that, a principal is counted as left out even when it is among the closest.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use crate::stats::MetricType;

use crate::stats::{names, LazyIds, Stats};

/// Distinct gauge names per reported identity over the life of the VM.
pub const GAUGE_NAMES_PER_IDENTITY: usize = 4;

/// Most principals tracked at once, whatever the window: beyond it the entry seen least recently
/// is dropped. Bounds memory under a flood of distinct identities.
pub const MAX_TRACKED: usize = 50_000;

#[derive(Clone, Copy, Debug)]
struct Seen {
    /// Earliest notAfter among the certificates seen in the window.
    not_after: i64,
    last_seen: i64,
}

/// What the filter knows about recently seen principals, and which gauges it has set.
#[derive(Debug, Default)]
pub struct ExpiryTracker {
    seen: HashMap<String, Seen>,
    /// Gauge id per principal that was ever reported.
    gauges: HashMap<String, Option<u32>>,
    /// The principals whose gauge holds a value now.
    shown: HashSet<String>,
    /// The principals left out at the last update.
    left_out: HashSet<String>,
    changed: bool,
    ids: LazyIds,
    /// Remaining lifetimes seen since the last update, for the histogram: requests make no
    /// metric host calls of their own here, the tick records them.
    pending: Vec<u64>,
    /// When the gauges are written again even if nothing changed.
    next_full: i64,
}

/// Every this many seconds the gauges are written again: with several Envoy workers, each
/// writes the gauges of what it saw, and one worker's 0 for a principal that left its own window
/// is overwritten by a worker that still sees it.
pub const REWRITE_SECS: i64 = 10;

/// Most remaining-lifetime samples kept between two ticks; more are dropped.
const MAX_PENDING: usize = 10_000;

/// `principal` as one stats-name suffix that the `principal` tag regex captures whole: ASCII
/// letters, digits, `.`, `-`, `_` and `/` (every character of a SPIFFE ID path and trust domain)
/// stay as they are, every other byte becomes `%XX`, `%` included. Percent-encoding is
/// injective, so two principals never share a gauge.
pub fn encode_principal(principal: &str) -> String {
    let mut out = String::with_capacity(principal.len());
    for b in principal.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The gauge name of one principal: `peerguard.peer_cert_expiry.<encoded>.seconds`; the tag regex
/// cuts `.<encoded>` out, so Prometheus sees `peerguard_peer_cert_expiry_seconds{principal=...}`.
pub fn gauge_name(principal: &str) -> String {
    format!("{}{}{}", names::PEER_CERT_EXPIRY.0, encode_principal(principal), names::PEER_CERT_EXPIRY.1)
}

/// Where requests report what they saw: the Wasm build's tracker is the VM's own (one thread); the
/// native build shares one tracker between Envoy's worker threads, so its gauges are per process.
pub trait ExpiryObserver {
    /// See [`ExpiryTracker::observe`].
    fn observe(&self, principal: &str, not_after: i64, now: i64);
    /// See [`ExpiryTracker::certificate_seen`].
    fn certificate_seen(&self, not_after: i64, now: i64);
}

impl ExpiryObserver for RefCell<ExpiryTracker> {
    fn observe(&self, principal: &str, not_after: i64, now: i64) {
        self.borrow_mut().observe(principal, not_after, now);
    }
    fn certificate_seen(&self, not_after: i64, now: i64) {
        self.borrow_mut().certificate_seen(not_after, now);
    }
}

impl ExpiryObserver for Mutex<ExpiryTracker> {
    fn observe(&self, principal: &str, not_after: i64, now: i64) {
        // A poisoned lock only means another thread panicked mid-update: the data is still a
        // valid tracker, and losing the gauges would be worse than a half-applied observation.
        self.lock().unwrap_or_else(std::sync::PoisonError::into_inner).observe(principal, not_after, now);
    }
    fn certificate_seen(&self, not_after: i64, now: i64) {
        self.lock().unwrap_or_else(std::sync::PoisonError::into_inner).certificate_seen(not_after, now);
    }
}

impl ExpiryTracker {
    /// A principal presented a certificate valid until `not_after` at `now`.
    pub fn observe(&mut self, principal: &str, not_after: i64, now: i64) {
        match self.seen.get_mut(principal) {
            Some(s) => {
                if not_after < s.not_after {
                    s.not_after = not_after;
                    self.changed = true;
                }
                s.last_seen = now;
            }
            None => {
                if self.seen.len() >= MAX_TRACKED {
                    if let Some(oldest) = self.seen.iter().min_by_key(|(_, s)| s.last_seen).map(|(k, _)| k.clone()) {
                        self.seen.remove(&oldest);
                    }
                }
                self.seen.insert(principal.to_owned(), Seen { not_after, last_seen: now });
                self.changed = true;
            }
        }
    }

    /// Drops principals not seen within `window` of `now`, then sets the gauges of the
    /// `max_identities` closest to expiry and zeroes the others. Cheap when nothing changed.
    pub fn update(&mut self, m: &dyn Stats, max_identities: usize, window: i64, now: i64) {
        for v in std::mem::take(&mut self.pending) {
            self.ids.histogram(m, names::PEER_CERT_REMAINING, v);
        }
        let before = self.seen.len();
        self.seen.retain(|_, s| now.saturating_sub(s.last_seen) <= window);
        if !self.changed && self.seen.len() == before && now < self.next_full {
            return;
        }
        self.changed = false;
        self.next_full = now.saturating_add(REWRITE_SECS);
        let mut order: Vec<(&String, &Seen)> = self.seen.iter().collect();
        // Closest to expiry first; ties by principal, so the choice is stable.
        order.sort_by(|a, b| a.1.not_after.cmp(&b.1.not_after).then_with(|| a.0.cmp(b.0)));
        let name_budget = max_identities.saturating_mul(GAUGE_NAMES_PER_IDENTITY);
        let mut shown = HashSet::new();
        let mut left_out = HashSet::new();
        for (principal, s) in order {
            let slot = shown.len() < max_identities;
            let id = match self.gauges.get(principal.as_str()) {
                Some(id) => *id,
                None if slot && self.gauges.len() < name_budget => {
                    let id = m.define(MetricType::Gauge, &gauge_name(principal));
                    self.gauges.insert(principal.clone(), id);
                    id
                }
                None => None,
            };
            match id {
                Some(id) if slot => {
                    m.record(id, u64::try_from(s.not_after).unwrap_or(0));
                    shown.insert(principal.clone());
                }
                _ => {
                    left_out.insert(principal.clone());
                }
            }
        }
        // Zero what is no longer reported: 0 reads as "not among the reported identities".
        for principal in self.shown.difference(&shown) {
            if let Some(Some(id)) = self.gauges.get(principal) {
                m.record(*id, 0);
            }
        }
        let newly_left_out = left_out.difference(&self.left_out).count();
        if newly_left_out > 0 {
            self.ids.count(m, names::PEER_CERT_EXPIRY_LEFT_OUT, newly_left_out as u64);
        }
        self.ids.gauge(m, names::PEER_CERT_EXPIRY_IDENTITIES, shown.len() as u64);
        self.shown = shown;
        self.left_out = left_out;
    }

    /// A peer certificate was seen for the first time (a certificate cache miss): its remaining
    /// lifetime goes into the histogram at the next update.
    pub fn certificate_seen(&mut self, not_after: i64, now: i64) {
        if self.pending.len() < MAX_PENDING {
            self.pending.push(u64::try_from(not_after.saturating_sub(now)).unwrap_or(0));
        }
    }

    /// How many principals are tracked.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no principal is tracked.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code
    use super::*;
    use crate::stats::fake::FakeStats;

    #[test]
    fn principals_encode_injectively_and_spiffe_ids_stay_readable() {
        assert_eq!(encode_principal("cluster.local/ns/default/sa/sleep"), "cluster.local/ns/default/sa/sleep");
        assert_eq!(encode_principal("a b"), "a%20b");
        assert_eq!(encode_principal("a%20b"), "a%2520b");
        assert_eq!(encode_principal("CN=\"x\":y"), "CN%3D%22x%22%3Ay");
        assert_eq!(encode_principal("é"), "%C3%A9");
        assert_eq!(gauge_name("td/ns/a"), "peerguard.peer_cert_expiry.td/ns/a.seconds");
    }

    #[test]
    fn the_n_closest_to_expiry_are_reported_the_rest_counted_and_zeroed_when_they_leave() {
        let m = FakeStats::default();
        let mut t = ExpiryTracker::default();
        t.observe("td/ns/a", 3000, 0);
        t.observe("td/ns/b", 1000, 0);
        t.observe("td/ns/c", 2000, 0);
        t.observe("td/ns/b", 5000, 1); // a later certificate: the earliest stays
        t.update(&m, 2, 60, 10);
        assert_eq!(m.value("peerguard.peer_cert_expiry.td/ns/b.seconds"), Some(1000));
        assert_eq!(m.value("peerguard.peer_cert_expiry.td/ns/c.seconds"), Some(2000));
        assert_eq!(m.value("peerguard.peer_cert_expiry.td/ns/a.seconds"), None, "never defined");
        assert_eq!(m.value(names::PEER_CERT_EXPIRY_LEFT_OUT), Some(1));
        // Nothing new: no second count, also when the gauges are written again.
        t.update(&m, 2, 60, 20);
        assert_eq!(m.value(names::PEER_CERT_EXPIRY_LEFT_OUT), Some(1));
        // Another worker zeroed b meanwhile: the periodic rewrite restores it.
        m.record(m.define(MetricType::Gauge, "peerguard.peer_cert_expiry.td/ns/b.seconds").unwrap(), 0);
        t.update(&m, 2, 60, 25);
        assert_eq!(m.value("peerguard.peer_cert_expiry.td/ns/b.seconds"), Some(0), "not yet due");
        t.update(&m, 2, 60, 30);
        assert_eq!(m.value("peerguard.peer_cert_expiry.td/ns/b.seconds"), Some(1000));
        // b and c leave the window; a is reported, b and c are zeroed.
        t.observe("td/ns/a", 3000, 50);
        t.update(&m, 2, 60, 100);
        assert_eq!(t.len(), 1);
        assert_eq!(m.value("peerguard.peer_cert_expiry.td/ns/a.seconds"), Some(3000));
        assert_eq!(m.value("peerguard.peer_cert_expiry.td/ns/b.seconds"), Some(0));
        assert_eq!(m.value("peerguard.peer_cert_expiry.td/ns/c.seconds"), Some(0));
        assert_eq!(m.value(names::PEER_CERT_EXPIRY_IDENTITIES), Some(1));
    }

    #[test]
    fn gauge_names_are_bounded_over_the_life_of_the_vm() {
        let m = FakeStats::default();
        let mut t = ExpiryTracker::default();
        for i in 0..20 {
            // Each principal is seen alone and then leaves the window.
            t.observe(&format!("td/ns/p{i}"), 1000, i * 100);
            t.update(&m, 1, 10, i * 100 + 1);
        }
        assert_eq!(m.defined_with_prefix(names::PEER_CERT_EXPIRY.0), GAUGE_NAMES_PER_IDENTITY);
        assert_eq!(m.value(names::PEER_CERT_EXPIRY_LEFT_OUT), Some(20 - GAUGE_NAMES_PER_IDENTITY as u64));
    }

    #[test]
    fn zero_identities_reports_none_and_counts_all() {
        let m = FakeStats::default();
        let mut t = ExpiryTracker::default();
        t.observe("td/ns/a", 3000, 0);
        t.update(&m, 0, 60, 1);
        assert_eq!(m.defined_with_prefix(names::PEER_CERT_EXPIRY.0), 0);
        assert_eq!(m.value(names::PEER_CERT_EXPIRY_LEFT_OUT), Some(1));
    }

    #[test]
    fn remaining_lifetime_goes_into_the_histogram_on_the_tick_never_negative() {
        let m = FakeStats::default();
        let mut t = ExpiryTracker::default();
        t.certificate_seen(7200, 1000);
        t.certificate_seen(10, 1000);
        assert!(m.histogram(names::PEER_CERT_REMAINING).is_empty(), "recorded on the tick");
        t.update(&m, 10, 60, 1000);
        assert_eq!(m.histogram(names::PEER_CERT_REMAINING), vec![6200, 0]);
    }
}
