//! Compiling the value lists of sources, operations and conditions (patterns, paths, hosts, ports) into matchers.

use super::{is_trust_domain, Compiler};
use crate::config::{PathNormalization, PortValue};
use crate::namespace::NamespaceMatcher;
use crate::pattern::{Pattern, StringMatcher};
use crate::rule::{parse_port, PathMatcher};
use crate::template::{self, PathTemplate};

impl Compiler {
    pub(super) fn patterns(&mut self, values: &[String], path: &str, lowercase: bool) -> Vec<Pattern> {
        crate::pattern::parse_list(values, path, lowercase, &mut self.errors)
    }

    pub(super) fn strings(
        &mut self,
        values: &Option<Vec<String>>,
        path: &str,
        lowercase: bool,
    ) -> Option<StringMatcher> {
        values.as_ref().map(|v| StringMatcher::new(self.patterns(v, path, lowercase)))
    }

    pub(super) fn namespaces(&mut self, values: &Option<Vec<String>>, path: &str) -> Option<NamespaceMatcher> {
        values.as_ref().map(|v| NamespaceMatcher::new(self.patterns(v, path, false)))
    }

    /// Principal patterns; one that names a trust-domain alias is compiled to the main trust
    /// domain (docs/policy.md "Trust-domain aliases").
    pub(super) fn principals(&mut self, values: &Option<Vec<String>>, path: &str) -> Option<StringMatcher> {
        let mapped = self.aliased(values, crate::alias::TrustDomainAliases::principal_pattern);
        self.strings(mapped.as_ref().unwrap_or(values), path, false)
    }

    /// `values` with every entry mapped through `map` when aliases are configured.
    pub(super) fn aliased(
        &self,
        values: &Option<Vec<String>>,
        map: fn(&crate::alias::TrustDomainAliases, &str) -> String,
    ) -> Option<Option<Vec<String>>> {
        let aliases = self.aliases.as_ref()?;
        Some(values.as_ref().map(|v| v.iter().map(|p| map(aliases, p)).collect()))
    }

    pub(super) fn trust_domain_patterns(&mut self, values: &Option<Vec<String>>, path: &str) -> Option<StringMatcher> {
        for (i, v) in values.iter().flatten().enumerate() {
            let literal = v.trim_start_matches('*').trim_end_matches('*');
            if !literal.is_empty() && !is_trust_domain(literal) {
                self.error(
                    format!("{path}[{i}]"),
                    format!("{v:?} can never match a SPIFFE trust domain (lower-case letters, digits, '.', '-', '_')"),
                );
            }
        }
        let mapped = self.aliased(values, crate::alias::TrustDomainAliases::trust_domain_pattern);
        self.strings(mapped.as_ref().unwrap_or(values), path, false)
    }

    /// Path patterns are matched against the normal form (docs/policy.md "Paths"), so one
    /// that is not itself in normal form could never match. Istio path templates (`{*}`,
    /// `{**}`) are compiled apart.
    pub(super) fn paths(&mut self, values: &Option<Vec<String>>, path: &str) -> Option<PathMatcher> {
        let values = values.as_ref()?;
        self.reads_paths = true;
        self.enforces_paths |= self.enforcing;
        let mut templates = Vec::new();
        for (i, p) in values.iter().enumerate() {
            let at = format!("{path}[{i}]");
            if template::is_template(p) {
                match PathTemplate::parse(p) {
                    Ok(t) => {
                        if self.path_normalization != PathNormalization::None {
                            let problems: Vec<String> = t
                                .literals()
                                .filter_map(|l| {
                                    crate::path::pattern_problem(l, false, false, self.allow_path_parameters)
                                        .or_else(|| (l == "." || l == "..").then(|| "a '.' or '..' segment".to_owned()))
                                })
                                .collect();
                            if let Some(problem) = problems.first() {
                                self.error(at.clone(), format!("{p:?} can never match a normalized path: {problem}"));
                            }
                        }
                        templates.push(t);
                    }
                    Err(e) => self.error(at, e.to_string()),
                }
                continue;
            }
            if !(p.starts_with('/') || p.starts_with('*')) {
                self.error(at, format!("{p:?} can never match: paths start with '/'"));
                continue;
            }
            if p.contains(['{', '}']) {
                self.error(at, format!("{p:?}: '{{' and '}}' are allowed only in Istio path templates, as whole segments {{*}} or {{**}}"));
                continue;
            }
            if self.path_normalization == PathNormalization::None {
                continue;
            }
            let (open_left, open_right) = (p.starts_with('*') && p != "*", p.ends_with('*'));
            let text = p.trim_start_matches('*').trim_end_matches('*');
            if let Some(problem) = crate::path::pattern_problem(text, open_left, open_right, self.allow_path_parameters)
            {
                self.error(at, format!("{p:?} can never match a normalized path: {problem}"));
            }
        }
        if values.is_empty() {
            self.non_empty(values, path, "remove the field, or use [\"*\"] to mean any value");
        }
        // Indices in error paths must stay those of the document, so patterns are parsed here.
        let mut patterns = Vec::with_capacity(values.len());
        for (i, v) in values.iter().enumerate().filter(|(_, v)| !template::is_template(v)) {
            match Pattern::parse(v) {
                Ok(p) => patterns.push(p),
                Err(e) => self.error(format!("{path}[{i}]"), e.to_string()),
            }
        }
        Some(PathMatcher { strings: StringMatcher::new(patterns), templates })
    }

    /// Hosts are compared lower-case, with one trailing dot of the request's host removed, so a
    /// pattern ending in `.` (before an optional `*`) could never match.
    pub(super) fn hosts(&mut self, values: &Option<Vec<String>>, path: &str) -> Option<StringMatcher> {
        for (i, h) in values.iter().flatten().enumerate() {
            let name = crate::request::split_host_port(h).0;
            if name.len() > 1 && name.ends_with('.') && !h.ends_with('*') {
                self.error(
                    format!("{path}[{i}]"),
                    format!("{h:?} can never match: one trailing dot of the request's host is removed before matching; write it without the dot"),
                );
            }
        }
        self.strings(values, path, true)
    }

    pub(super) fn ports(&mut self, values: &Option<Vec<PortValue>>, path: &str) -> Option<Vec<u32>> {
        let values = values.as_ref()?;
        self.non_empty(values, path, "remove the field to match any port");
        let mut out = Vec::with_capacity(values.len());
        for (i, v) in values.iter().enumerate() {
            let parsed = match v {
                PortValue::Number(n) => u32::try_from(*n).ok().filter(|n| *n <= 65535),
                PortValue::Text(t) => parse_port(t),
            };
            match parsed {
                Some(p) => out.push(p),
                None => self.error(
                    format!("{path}[{i}]"),
                    "not a port: decimal digits, 0-65535, as Istio's validation accepts (no patterns)",
                ),
            }
        }
        Some(out)
    }
}
