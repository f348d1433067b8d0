//! The engine's side of CRL sources (docs/policy.md "CRL sources"): the filter fetches, the engine checks and installs.

use crate::chain::{CrlInfo, CrlInstalled, CrlSourceSpec, SourceSlot};
use crate::engine::Engine;

impl Engine {
    /// Every slot, in a stable order: the `certificate` block's, then each certificate rule's.
    fn source_slots(&self) -> impl Iterator<Item = (&crate::chain::ChainVerifier, usize, &SourceSlot)> {
        let blocks = self.certificate.iter().chain(self.cert_rules.iter().map(|r| &r.require));
        blocks
            .filter_map(|b| b.chain())
            .flat_map(|chain| chain.sources().iter().enumerate().map(move |(i, s)| (chain, i, s)))
    }

    /// The CRL sources the filter must fetch; an index into this list names a source.
    pub fn crl_sources(&self) -> Vec<&CrlSourceSpec> {
        self.source_slots().map(|(_, _, s)| &s.spec).collect()
    }

    /// Checks `body`, the response the filter fetched for source `source`, and installs it when it
    /// is good. `Err` says why it was refused; the last good CRL then stays in force. When
    /// [`CrlInstalled::changed`], cached verdicts may rest on the replaced CRL: the caller must
    /// drop them (start a new [`crate::CertCache`]).
    pub fn install_crl(&self, source: usize, body: &[u8]) -> Result<CrlInstalled, String> {
        match self.source_slots().nth(source) {
            Some((chain, i, _)) => chain.install(i, body),
            None => Err(format!("no CRL source {source}")),
        }
    }

    /// What the CRL installed for `source` holds, if one is.
    pub fn crl_info(&self, source: usize) -> Option<CrlInfo> {
        self.source_slots().nth(source).and_then(|(_, _, s)| s.info())
    }
}

/// Two sources with one name would share their metrics: refused, naming the second.
pub(crate) fn duplicate_names<'a>(
    blocks: impl Iterator<Item = &'a crate::certreq::CompiledRequirements>,
) -> Vec<crate::error::ConfigError> {
    let mut seen: Vec<&str> = Vec::new();
    let mut errors = Vec::new();
    for s in blocks.filter_map(|b| b.chain()).flat_map(|c| c.sources()) {
        if seen.contains(&s.spec.name.as_str()) {
            errors.push(crate::error::ConfigError::new(
                format!("{}.name", s.spec.at),
                format!("another CRL source is already named {:?}; give each source its own name", s.spec.name),
            ));
        } else {
            seen.push(&s.spec.name);
        }
    }
    errors
}
