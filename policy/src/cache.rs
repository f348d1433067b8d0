//! A bounded per-worker cache of prepared certificates, keyed by the connection's SHA-256 digest.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use crate::decision::PreparedCert;

/// Prepared certificates by lower-case hex DER digest. Entries expire after their
/// `valid_until` (inclusive: never after the certificate's notAfter, a trust anchor's notAfter or
/// the next status change of a CRL the verdict relied on; an already expired certificate's entry
/// lives until the time it was prepared, so it is not re-parsed per request, and expiry itself
/// is checked on every request); the oldest entry is evicted when the cache is full. A policy
/// reload must start a new cache.
#[derive(Debug)]
pub struct CertCache {
    map: HashMap<String, Rc<PreparedCert>>,
    order: VecDeque<String>,
    capacity: usize,
}

impl CertCache {
    /// A cache holding at most `capacity` certificates.
    pub fn new(capacity: usize) -> CertCache {
        CertCache { map: HashMap::new(), order: VecDeque::new(), capacity: capacity.max(1) }
    }

    /// The entry for `digest`, unless it has expired at `now`.
    pub fn get(&mut self, digest: &str, now: i64) -> Option<Rc<PreparedCert>> {
        let entry = self.map.get(digest)?;
        if now > entry.valid_until {
            self.map.remove(digest);
            self.order.retain(|k| k != digest);
            return None;
        }
        Some(entry.clone())
    }

    /// Stores a prepared certificate and returns the shared handle.
    pub fn insert(&mut self, digest: String, prepared: PreparedCert) -> Rc<PreparedCert> {
        let rc = Rc::new(prepared);
        if self.map.insert(digest.clone(), rc.clone()).is_none() {
            self.order.push_back(digest);
        }
        while self.map.len() > self.capacity {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.map.remove(&oldest);
                }
                None => break,
            }
        }
        rc
    }

    /// Number of cached certificates.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
