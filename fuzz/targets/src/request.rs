//! The one place that turns fuzzed request parts into the engine's request input and decides.

use peerguard_policy::{Decision, Engine, Peer, Request};

/// A request's attributes, borrowed from the fuzz input.
#[derive(Clone, Copy)]
pub(crate) struct Parts<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub host: &'a str,
    pub port: Option<u32>,
    pub sni: Option<&'a str>,
    pub headers: &'a [(String, String)],
}

/// Decides `parts` for `peer` at `now`.
pub(crate) fn decide(engine: &Engine, parts: &Parts<'_>, peer: &Peer<'_>, now: i64) -> Decision {
    let headers = parts.headers.to_vec();
    let req = Request {
        method: parts.method,
        path: parts.path,
        host: parts.host,
        port: parts.port,
        sni: parts.sni,
        headers: &headers,
    };
    engine.decide(&req, peer, now)
}
