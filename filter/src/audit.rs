//! One JSON audit line per deny, would-deny and AUDIT match, rate-limited per worker.

use peerguard_policy::{rfc3339, Decision, PreparedCert};
use serde_json::json;

/// Lines allowed per window, per worker.
pub const AUDIT_LINES_PER_WINDOW: u32 = 100;
/// Window length, seconds.
pub const AUDIT_WINDOW_SECS: i64 = 1;

/// A fixed-window limiter that remembers how much it dropped.
#[derive(Debug, Default)]
pub struct AuditLimiter {
    window_start: i64,
    emitted: u32,
    suppressed: u64,
}

impl AuditLimiter {
    /// Whether a line may be written at `now`; when a new window opens after drops, also
    /// returns how many lines were suppressed so the caller can report it.
    pub fn admit(&mut self, now: i64) -> (bool, u64) {
        let mut report = 0;
        if now >= self.window_start + AUDIT_WINDOW_SECS {
            self.window_start = now;
            self.emitted = 0;
            report = std::mem::take(&mut self.suppressed);
        }
        if self.emitted < AUDIT_LINES_PER_WINDOW {
            self.emitted += 1;
            (true, report)
        } else {
            self.suppressed += 1;
            (false, report)
        }
    }
}

/// The request facts an audit line carries.
pub struct AuditRequest<'a> {
    /// `:method`
    pub method: &'a str,
    /// `:path`
    pub path: &'a str,
    /// `:authority`
    pub host: &'a str,
    /// `x-request-id`
    pub request_id: Option<&'a str>,
}

/// The line written when a window opens after lines were dropped: how many, and since when.
pub fn suppressed_line(now: i64, suppressed: u64) -> String {
    json!({
        "peerguard": "audit_suppressed",
        "time": rfc3339(now),
        "suppressed": suppressed,
        "limitPerWindow": AUDIT_LINES_PER_WINDOW,
        "windowSeconds": AUDIT_WINDOW_SECS,
    })
    .to_string()
}

/// Renders one audit line. Never includes the certificate itself (nor any key), only its serial,
/// digest, subject, issuer and notAfter. Times are RFC 3339 UTC.
pub fn audit_line(
    now: i64,
    decision_label: &str,
    decision: &Decision,
    policy: Option<&str>,
    req: &AuditRequest<'_>,
    cert: Option<&PreparedCert>,
) -> String {
    let ident = decision.identity.as_ref();
    json!({
        "peerguard": "audit",
        "time": rfc3339(now),
        "decision": decision_label,
        "reason": decision.reason().map(|r| r.code()),
        "policy": policy,
        "principal": ident.map(|i| i.principal.as_str()),
        "trustDomain": ident.and_then(|i| i.trust_domain.as_deref()),
        // The principal as the peer stated it, when a trust-domain alias matched it as the main
        // trust domain's (docs/policy.md "Trust-domain aliases").
        "presentedPrincipal": ident.and_then(|i| i.presented.as_deref()),
        "method": req.method,
        "path": req.path,
        "host": req.host,
        "certSerial": cert.map(|c| c.facts.serial_hex.as_str()),
        "certSha256": cert.map(|c| c.facts.sha256_hex.as_str()),
        "certSubject": cert.map(|c| c.facts.subject.as_str()),
        "certIssuer": cert.map(|c| c.facts.issuer.as_str()),
        "certNotAfter": cert.map(|c| rfc3339(c.facts.not_after)),
        "requestId": req.request_id,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_drops_past_the_window_budget_and_reports_the_count() {
        let mut l = AuditLimiter::default();
        for _ in 0..AUDIT_LINES_PER_WINDOW {
            assert_eq!(l.admit(10), (true, 0));
        }
        assert_eq!(l.admit(10), (false, 0));
        assert_eq!(l.admit(10), (false, 0));
        assert_eq!(l.admit(11), (true, 2));
        assert_eq!(l.admit(11), (true, 0));
    }

    #[test]
    fn suppressed_line_reports_the_count() {
        let v: serde_json::Value = serde_json::from_str(&suppressed_line(0, 42)).unwrap();
        assert_eq!(v["peerguard"], "audit_suppressed");
        assert_eq!(v["suppressed"], 42);
        assert_eq!(v["time"], "1970-01-01T00:00:00Z");
    }
}
