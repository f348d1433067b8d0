//! The engine's inputs about the peer (`Peer`, `PeerAttributes`, `PreparedCert`) and its output, the [`Decision`].

use std::sync::Arc;

use crate::cert::CertFacts;
use crate::certreq::StaticVerdict;
use crate::identity::Identity;
use crate::reason::Reason;

/// The connection attributes Envoy gives without the full certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerAttributes {
    /// `connection.uri_san_peer_certificate` (Envoy gives the first URI SAN only).
    pub uri_san: Option<String>,
    /// `connection.dns_san_peer_certificate` (the first DNS SAN).
    pub dns_san: Option<String>,
    /// `connection.subject_peer_certificate`, RFC 4514.
    pub subject: Option<String>,
    /// The XFCC element Envoy bound to this connection (`Hash` equal to its digest) lists two or
    /// more SPIFFE URI SANs: the attributes show only the first, so the identity is ambiguous
    /// (`invalid_identity`, as with the full certificate).
    pub several_spiffe_uris: bool,
}

/// A parsed certificate with its time-independent verdicts, cached per connection digest.
#[derive(Debug)]
pub struct PreparedCert {
    /// The parsed facts.
    pub facts: CertFacts,
    /// Identity, or `invalid_identity`.
    pub identity: Result<Option<Arc<Identity>>, Reason>,
    /// `[global, certificateRules[0], certificateRules[1], ...]`; `None` where no requirement is set.
    pub(crate) verdicts: Vec<Option<StaticVerdict>>,
    /// The cache entry must not be used at or after this time.
    pub valid_until: i64,
}

/// What the engine knows of the peer.
pub enum Peer<'a> {
    /// No verified peer certificate on the connection.
    None,
    /// A peer certificate that could not be parsed.
    Unparseable,
    /// Only Envoy's connection attributes (no full certificate available).
    Attributes(&'a PeerAttributes),
    /// A full, parsed certificate.
    Certificate(&'a PreparedCert),
    /// Under `identity: [linkerdHeader]`: every copy of `l5d-client-id` on a request from a
    /// listed Linkerd proxy (never empty: no header is [`Peer::None`]). The filter passes
    /// [`Peer::None`] for a request from any other address, whatever it sent.
    LinkerdClientId(&'a [String]),
}

/// What happens to the request. Every deny and would-deny carries its reason, so no caller
/// has to invent one for a state that cannot exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The request proceeds.
    Allow,
    /// The request is refused, for this reason.
    Deny(Reason),
    /// The request proceeds, but would have been refused for this reason: `mode: dryRun`, a
    /// policy's `dryRun`, or an invalid path that only dry-run or AUDIT policies read.
    WouldDeny(Reason),
}

/// The outcome of one request: the verdict and what the logs and metrics say about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Allow, deny or would-deny, with the reason.
    pub verdict: Verdict,
    /// The policy or certificate rule behind the reason, or the ALLOW policy that allowed.
    pub policy: Option<Arc<str>>,
    /// The peer's identity, when there is one (shared with the cached certificate, not copied).
    pub identity: Option<Arc<Identity>>,
    /// AUDIT policies that matched.
    pub audit: Vec<Arc<str>>,
    /// The certificate is within `minRemaining` of expiry.
    pub expiring: bool,
    /// When the request proceeds and its path had to be put in normal form: the `:path` to send
    /// upstream (normal form plus the query as sent), so that the upstream receives exactly
    /// what the rules matched.
    pub path_rewrite: Option<String>,
    /// Why the path has no normal form, with the reason `invalid_path`.
    pub path_error: Option<crate::path::PathError>,
}

impl Decision {
    /// An allow with nothing to report (yet).
    pub(crate) fn allow() -> Decision {
        Decision {
            verdict: Verdict::Allow,
            policy: None,
            identity: None,
            audit: Vec::new(),
            expiring: false,
            path_rewrite: None,
            path_error: None,
        }
    }

    /// A deny for `reason`, with nothing else to report.
    pub(crate) fn deny(reason: Reason) -> Decision {
        Decision { verdict: Verdict::Deny(reason), ..Decision::allow() }
    }

    /// Whether the request proceeds (an allow or a would-deny).
    pub fn allowed(&self) -> bool {
        !matches!(self.verdict, Verdict::Deny(_))
    }

    /// The deny or would-deny reason.
    pub fn reason(&self) -> Option<Reason> {
        match self.verdict {
            Verdict::Allow => None,
            Verdict::Deny(r) | Verdict::WouldDeny(r) => Some(r),
        }
    }

    /// Whether the reason was not enforced (a would-deny).
    pub fn dry_run(&self) -> bool {
        matches!(self.verdict, Verdict::WouldDeny(_))
    }

    /// A deny for an invalid configuration.
    pub fn config_invalid() -> Decision {
        Decision::deny(Reason::ConfigInvalid)
    }

    /// The principal, if any.
    pub fn principal(&self) -> Option<&str> {
        self.identity.as_ref().map(|i| i.principal.as_str())
    }
}
