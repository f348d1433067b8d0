//! The Envoy admin API client: plain-HTTP GETs on the admin address, for the launcher, the tests and the bench.
//!
//! Requests go through the kit's HTTP client ([`crate::client`]), so there is one response parser
//! (and one chunked decoder: Envoy's admin answers `/stats`, `/listeners` and `/ready` chunked).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::client::{Client, Request};

/// An Envoy admin API at a known address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admin {
    addr: SocketAddr,
}

impl Admin {
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// GET `path`; returns status and body (any status: callers decide what a non-200 means).
    pub fn get(&self, path: &str) -> Result<(u16, String)> {
        admin_get(self.addr, path)
    }

    /// GET `path`, where anything but 200 is an error.
    pub fn get_ok(&self, path: &str) -> Result<String> {
        let (status, body) = self.get(path)?;
        if status != 200 {
            bail!("admin {path} returned {status}: {body}");
        }
        Ok(body)
    }

    /// Whether `/ready` answers 200 `LIVE` (the server finished initialising its listeners).
    pub fn is_live(&self) -> bool {
        matches!(self.get("/ready"), Ok((200, body)) if body.trim() == "LIVE")
    }

    /// Every active listener with its port on 127.0.0.1, in the order `/listeners` lists them.
    pub fn listeners(&self) -> Result<Vec<(String, u16)>> {
        let body = self.get_ok("/listeners?format=json")?;
        let v: Value = serde_json::from_str(&body).context("parse /listeners")?;
        let mut out = Vec::new();
        for l in v["listener_statuses"].as_array().into_iter().flatten() {
            if let (Some(name), Some(port)) =
                (l["name"].as_str(), l["local_address"]["socket_address"]["port_value"].as_u64())
            {
                out.push((name.to_owned(), u16::try_from(port)?));
            }
        }
        Ok(out)
    }

    /// Every listener's port, by listener name.
    pub fn listener_ports(&self) -> Result<HashMap<String, u16>> {
        Ok(self.listeners()?.into_iter().collect())
    }

    /// The port of the listener named `name`.
    pub fn listener_port(&self, name: &str) -> Result<u16> {
        let listeners = self.listeners()?;
        listeners
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| *p)
            .ok_or_else(|| anyhow!("no listener {name:?} among {listeners:?}"))
    }

    /// `/stats?filter=REGEX` as text (`name: value` lines).
    pub fn stats(&self, filter: &str) -> Result<String> {
        self.get_ok(&format!("/stats?filter={}", url_escape(filter)))
    }

    /// The value of one counter or gauge by exact name, if present.
    pub fn stat(&self, name: &str) -> Result<Option<u64>> {
        // The regex only narrows what Envoy sends; the exact comparison below decides. Each
        // character but ASCII letters and digits becomes `.`, so no name is read as regex syntax.
        let pattern: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '.' }).collect();
        let body = self.stats(&format!("^{pattern}$"))?;
        Ok(body.lines().find_map(|l| {
            let (n, v) = l.split_once(": ")?;
            if n == name {
                v.trim().parse().ok()
            } else {
                None
            }
        }))
    }
}

/// GET `path` on an Envoy admin API at `admin`; returns status and body.
pub fn admin_get(admin: SocketAddr, path: &str) -> Result<(u16, String)> {
    let resp = Client::plaintext()
        .server_name("admin")
        .timeout(Duration::from_secs(10))
        .send_to(admin, &Request::get(path))
        .with_context(|| format!("admin GET {path} on {admin}"))?;
    Ok((resp.status, resp.body_text()))
}

fn url_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;

    /// Serves `response` once to the first connection on a free 127.0.0.1 port; returns that
    /// address and a handle yielding the request line the server received.
    fn serve_once(response: Vec<u8>) -> (SocketAddr, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "client closed before sending its request");
                req.extend_from_slice(&buf[..n]);
            }
            s.write_all(&response).unwrap();
            String::from_utf8_lossy(&req).lines().next().unwrap_or_default().to_owned()
        });
        (addr, handle)
    }

    #[test]
    fn a_chunked_body_is_decoded_even_when_a_chunk_splits_a_utf8_character() {
        // "é" is C3 A9: the first chunk ends after C3, the second starts with A9. A chunk
        // extension (`;ext=1`) must be ignored, and the trailing CRLF of each chunk dropped.
        let mut resp = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        resp.extend_from_slice(b"4;ext=1\r\nabc\xC3\r\n");
        resp.extend_from_slice(b"3\r\n\xA9de\r\n");
        resp.extend_from_slice(b"0\r\n\r\n");
        let (addr, server) = serve_once(resp);
        let (status, body) = admin_get(addr, "/stats?filter=x").unwrap();
        assert_eq!(server.join().unwrap(), "GET /stats?filter=x HTTP/1.1");
        assert_eq!(status, 200);
        assert_eq!(body, "abcéde");
    }

    #[test]
    fn a_truncated_chunked_body_is_an_error_not_a_short_body() {
        let resp = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n10\r\nonly-ten-b".to_vec();
        let (addr, server) = serve_once(resp);
        let err = admin_get(addr, "/ready").unwrap_err();
        server.join().unwrap();
        assert!(format!("{err:#}").contains("truncated"), "{err:#}");
    }

    #[test]
    fn get_ok_turns_a_non_200_into_an_error_naming_path_and_status() {
        let resp = b"HTTP/1.1 404 Not Found\r\ncontent-length: 7\r\n\r\nmissing".to_vec();
        let (addr, server) = serve_once(resp);
        let err = Admin::new(addr).get_ok("/nope").unwrap_err();
        server.join().unwrap();
        assert_eq!(err.to_string(), "admin /nope returned 404: missing");
    }

    #[test]
    fn stat_matches_the_exact_name_only() {
        // What the loose filter lets through (`a-b-c`, a longer name) must not be taken for it.
        let body = "a-b-c: 9\na.b.c.d: 7\na.b.c: 5\n";
        let resp = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len()).into_bytes();
        let (addr, server) = serve_once(resp);
        assert_eq!(Admin::new(addr).stat("a.b.c").unwrap(), Some(5));
        // The filter sent is the anchored name, its dots matching any character.
        assert_eq!(server.join().unwrap(), "GET /stats?filter=%5Ea.b.c%24 HTTP/1.1");
    }

    #[test]
    fn listeners_keep_the_order_of_the_admin_api() {
        let body = r#"{"listener_statuses":[
            {"name":"b","local_address":{"socket_address":{"address":"127.0.0.1","port_value":2}}},
            {"name":"a","local_address":{"socket_address":{"address":"127.0.0.1","port_value":1}}}]}"#;
        let resp = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len()).into_bytes();
        let (addr, server) = serve_once(resp);
        assert_eq!(Admin::new(addr).listeners().unwrap(), [("b".to_owned(), 2), ("a".to_owned(), 1)]);
        server.join().unwrap();
    }
}
