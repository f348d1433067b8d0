//! Behind Linkerd: which downstream addresses may speak for the client through `l5d-client-id`.
//!
//! docs/policy.md "Behind Linkerd": the linkerd-proxy next to Envoy ends mTLS, removes any
//! `l5d-client-id` the client sent, sets its own, and forwards over loopback. The header is
//! therefore believed only on a connection from one of `linkerd.proxyAddresses`; from anywhere
//! else the filter removes it and the request has no principal.

use core::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// The name of Linkerd's client identity header.
pub const CLIENT_ID_HEADER: &str = "l5d-client-id";

/// The `linkerd` block of the policy document.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LinkerdOptions {
    /// CIDRs (or single addresses) of the linkerd-proxy; `127.0.0.1/32` and `::1/128` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_addresses: Option<Vec<String>>,
}

/// One `proxyAddresses` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    fn parse(s: &str) -> Option<Cidr> {
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip.parse::<IpAddr>().ok()?, Some(p)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            // Decimal digits only: no sign, no spaces.
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok()?,
            Some(_) => return None,
        };
        (prefix <= max).then_some(Cidr { network: ip, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// The compiled `identity: [linkerdHeader]` mode.
#[derive(Debug)]
pub struct LinkerdHeaderMode {
    proxies: Vec<Cidr>,
}

impl LinkerdHeaderMode {
    /// Compiles `linkerd` for `identity: [linkerdHeader]`.
    pub fn compile(options: Option<&LinkerdOptions>, errors: &mut Vec<ConfigError>) -> LinkerdHeaderMode {
        let Some(list) = options.and_then(|o| o.proxy_addresses.as_ref()) else {
            return LinkerdHeaderMode {
                proxies: vec![
                    Cidr { network: IpAddr::from([127, 0, 0, 1]), prefix: 32 },
                    Cidr { network: IpAddr::from([0, 0, 0, 0, 0, 0, 0, 1]), prefix: 128 },
                ],
            };
        };
        if list.is_empty() {
            errors.push(ConfigError::new(
                "linkerd.proxyAddresses",
                "empty list trusts no proxy, so no request would ever have a principal; remove the field for 127.0.0.1/32 and ::1/128",
            ));
        }
        let mut proxies = Vec::new();
        for (i, entry) in list.iter().enumerate() {
            match Cidr::parse(entry) {
                Some(c) => proxies.push(c),
                None => errors.push(ConfigError::new(
                    format!("linkerd.proxyAddresses[{i}]"),
                    format!("{entry:?} is not an IP address or CIDR, e.g. 127.0.0.1/32 or ::1/128"),
                )),
            }
        }
        LinkerdHeaderMode { proxies }
    }

    /// Whether Envoy's `source.address` (`ip:port`, `[v6]:port`) is a listed proxy. An address
    /// with port 0 is refused: Envoy gives one when the address came from `x-forwarded-for` or
    /// another header (`use_remote_address: false`, `xff_num_trusted_hops`), never for a real
    /// TCP peer, and a header is what a client controls.
    pub fn is_proxy(&self, source_address: &str) -> bool {
        let Ok(addr) = source_address.parse::<SocketAddr>() else { return false };
        if addr.port() == 0 {
            return false;
        }
        // A dual-stack listener may report an IPv4 peer as ::ffff:a.b.c.d.
        let ip = match addr.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        self.proxies.iter().any(|c| c.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn mode(list: Option<&[&str]>) -> (LinkerdHeaderMode, Vec<ConfigError>) {
        let opts = list.map(|l| LinkerdOptions { proxy_addresses: Some(l.iter().map(|s| (*s).to_owned()).collect()) });
        let mut errors = Vec::new();
        (LinkerdHeaderMode::compile(opts.as_ref(), &mut errors), errors)
    }

    #[test]
    fn loopback_is_the_default_proxy_and_nothing_else() {
        let (m, errors) = mode(None);
        assert!(errors.is_empty());
        assert!(m.is_proxy("127.0.0.1:41234"));
        assert!(m.is_proxy("[::1]:41234"));
        assert!(m.is_proxy("[::ffff:127.0.0.1]:41234"));
        for other in [
            "127.0.0.2:41234",
            "10.0.0.1:41234",
            "[::2]:1",
            "127.0.0.1:0",
            "127.0.0.1",
            "",
            "localhost:80",
            "127.0.0.1:99999",
        ] {
            assert!(!m.is_proxy(other), "{other}");
        }
    }

    #[test]
    fn configured_cidrs_replace_the_default() {
        let (m, errors) = mode(Some(&["10.1.0.0/16", "fd00::5"]));
        assert!(errors.is_empty(), "{errors:?}");
        assert!(m.is_proxy("10.1.255.3:4143"));
        assert!(!m.is_proxy("10.2.0.1:4143"));
        assert!(m.is_proxy("[fd00::5]:4143"));
        assert!(!m.is_proxy("[fd00::6]:4143"));
        assert!(!m.is_proxy("127.0.0.1:4143"), "the default is replaced, not extended");
        let (all, _) = mode(Some(&["0.0.0.0/0"]));
        assert!(all.is_proxy("192.0.2.1:1"));
    }

    #[test]
    fn bad_entries_are_errors_with_their_path() {
        let (_, errors) = mode(Some(&["127.0.0.1/33", "::1/129", "10.0.0.0/+8", "10.0.0.0/", "host", "127.0.0.1/32"]));
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "linkerd.proxyAddresses[0]",
                "linkerd.proxyAddresses[1]",
                "linkerd.proxyAddresses[2]",
                "linkerd.proxyAddresses[3]",
                "linkerd.proxyAddresses[4]"
            ]
        );
        let (_, errors) = mode(Some(&[]));
        assert_eq!(errors[0].path, "linkerd.proxyAddresses");
    }
}
