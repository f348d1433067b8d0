//! One JSON audit line per deny, would-deny and AUDIT match, rate-limited per worker.

use peerguard_policy::{Decision, PreparedCert};
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

/// Formats Unix seconds as an RFC 3339 UTC timestamp (`2026-11-29T08:15:00Z`).
///
/// Done by hand from the host clock's seconds: the wasm build has no time zone database and
/// needs none, and the conversion is Howard Hinnant's `civil_from_days`
/// (<https://howardhinnant.github.io/date_algorithms.html#civil_from_days>).
pub fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
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
    fn rfc3339_formats_utc_from_unix_seconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_800_000_000), "2027-01-15T08:00:00Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn suppressed_line_reports_the_count() {
        let v: serde_json::Value = serde_json::from_str(&suppressed_line(0, 42)).unwrap();
        assert_eq!(v["peerguard"], "audit_suppressed");
        assert_eq!(v["suppressed"], 42);
        assert_eq!(v["time"], "1970-01-01T00:00:00Z");
    }
}
