//! A minimal HTTP/1.1 client over rustls (ring), optionally presenting a client certificate.
//!
//! Hand-rolled on purpose: tests need raw paths and raw (even non-UTF-8) header bytes, and one
//! request per connection (`Connection: close`) keeps every case independent.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::upstream::Echo;

/// One request. Header values are bytes so tests can send non-UTF-8 values.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Sent verbatim as the request target.
    pub path: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn new(method: &str, path: &str) -> Self {
        Self { method: method.to_string(), path: path.to_string(), headers: Vec::new(), body: Vec::new() }
    }

    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.as_bytes().to_vec()));
        self
    }

    pub fn header_bytes(mut self, name: &str, value: &[u8]) -> Self {
        self.headers.push((name.to_string(), value.to_vec()));
        self
    }

    pub fn body(mut self, body: &[u8]) -> Self {
        self.body = body.to_vec();
        self
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Lowercased names, in arrival order.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header with this name (case-insensitive), lossily decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `x-peerguard-reason` header, if any.
    pub fn reason(&self) -> Option<String> {
        self.header("x-peerguard-reason")
    }

    /// Parses the body as the echo upstream's JSON report of what it saw.
    pub fn echo(&self) -> Result<Echo> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!("response (status {}) is not an upstream echo: {:?}", self.status, self.body_text())
        })
    }
}

/// How to connect: plaintext, or TLS trusting one CA and optionally presenting a client cert.
#[derive(Clone)]
pub struct Client {
    tls: Option<Arc<ClientConfig>>,
    server_name: String,
    timeout: Duration,
}

impl Client {
    /// Plain TCP, no TLS.
    pub fn plaintext() -> Self {
        Self { tls: None, server_name: "localhost".into(), timeout: Duration::from_secs(20) }
    }

    /// TLS trusting `ca_pem`, presenting no client certificate.
    pub fn tls(ca_pem: &Path) -> Result<Self> {
        let config = builder(ca_pem)?.with_no_client_auth();
        Ok(Self::from_config(config))
    }

    /// TLS trusting `ca_pem`, presenting `cert_pem` (leaf first, then any intermediates) and `key_pem`.
    pub fn mtls(ca_pem: &Path, cert_pem: &Path, key_pem: &Path) -> Result<Self> {
        let chain = CertificateDer::pem_file_iter(cert_pem)
            .with_context(|| format!("read {}", cert_pem.display()))?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("parse {}", cert_pem.display()))?;
        let key = PrivateKeyDer::from_pem_file(key_pem).with_context(|| format!("read key {}", key_pem.display()))?;
        let config = builder(ca_pem)?.with_client_auth_cert(chain, key).context("client certificate and key")?;
        Ok(Self::from_config(config))
    }

    fn from_config(config: ClientConfig) -> Self {
        Self::with_tls_config(Arc::new(config))
    }

    /// TLS with a ready-made rustls configuration (the bench builds its own, with its client certificate).
    pub fn with_tls_config(config: Arc<ClientConfig>) -> Self {
        Self { tls: Some(config), server_name: "localhost".into(), timeout: Duration::from_secs(20) }
    }

    /// SNI / verified server name (default `localhost`).
    pub fn server_name(mut self, name: &str) -> Self {
        self.server_name = name.to_string();
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends `req` to 127.0.0.1:`port` and reads the response to EOF.
    pub fn send(&self, port: u16, req: &Request) -> Result<Response> {
        self.send_to(SocketAddr::from(([127, 0, 0, 1], port)), req)
    }

    /// Sends `req` to `addr` (any loopback address, e.g. a mesh workload's 127.0.0.3) and reads
    /// the response to EOF.
    pub fn send_to(&self, addr: SocketAddr, req: &Request) -> Result<Response> {
        let sock = TcpStream::connect_timeout(&addr, self.timeout).with_context(|| format!("connect {addr}"))?;
        sock.set_read_timeout(Some(self.timeout))?;
        sock.set_write_timeout(Some(self.timeout))?;
        // Without it, Nagle plus delayed ACKs add ~40 ms to every TLS request.
        sock.set_nodelay(true)?;
        let wire = encode(req, &self.server_name);
        let raw = match &self.tls {
            None => {
                let mut sock = sock;
                sock.write_all(&wire)?;
                read_to_eof(&mut sock)?
            }
            Some(config) => {
                let name = ServerName::try_from(self.server_name.clone()).context("server name")?;
                let conn = ClientConnection::new(config.clone(), name).context("TLS client")?;
                let mut tls = StreamOwned::new(conn, sock);
                tls.write_all(&wire).context("TLS write")?;
                tls.flush()?;
                read_to_eof(&mut tls)?
            }
        };
        parse_response_bytes(&raw)
    }

    /// Convenience: `GET path`.
    pub fn get(&self, port: u16, path: &str) -> Result<Response> {
        self.send(port, &Request::get(path))
    }
}

fn builder(ca_pem: &Path) -> Result<rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_pem).with_context(|| format!("read CA {}", ca_pem.display()))? {
        roots.add(cert.context("parse CA PEM")?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots))
}

fn encode(req: &Request, host: &str) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(format!("{} {} HTTP/1.1\r\n", req.method, req.path).as_bytes());
    let has = |n: &str| req.headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(n));
    if !has("host") {
        out.extend_from_slice(format!("host: {host}\r\n").as_bytes());
    }
    for (name, value) in &req.headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if !req.body.is_empty() && !has("content-length") {
        out.extend_from_slice(format!("content-length: {}\r\n", req.body.len()).as_bytes());
    }
    out.extend_from_slice(b"connection: close\r\n\r\n");
    out.extend_from_slice(&req.body);
    out
}

/// Reads until EOF or until a complete response has arrived, whichever comes first. Waiting
/// for EOF alone costs a second per local reply: Envoy keeps the connection open for its
/// `delayed_close_timeout` (1 s) after a `connection: close` response it generated itself.
fn read_to_eof(r: &mut impl Read) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match r.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if response_complete(&buf) {
                    break;
                }
            }
            // A peer that closes without close_notify: keep what arrived.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !buf.is_empty() => break,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !buf.is_empty() => break,
            Err(e) => return Err(e).context("read response"),
        }
    }
    Ok(buf)
}

/// Whether `raw` holds a whole response: the head, then a body of `content-length` bytes or a
/// chunked body up to its last chunk. Without either, only EOF ends the response.
fn response_complete(raw: &[u8]) -> bool {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let body = &raw[end + 4..];
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else { continue };
        match name.trim() {
            "content-length" => return value.trim().parse::<usize>().is_ok_and(|len| body.len() >= len),
            "transfer-encoding" if value.contains("chunked") => {
                return body.ends_with(b"0\r\n\r\n") && parse_response_bytes(raw).is_ok()
            }
            _ => {}
        }
    }
    false
}

/// Parses a complete raw HTTP/1.1 response (head and body).
pub fn parse_response_bytes(raw: &[u8]) -> Result<Response> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("incomplete response ({} bytes): {:?}", raw.len(), String::from_utf8_lossy(raw)))?;
    let head = &raw[..end];
    let mut rest = &raw[end + 4..];
    let mut lines = head.split(|b| *b == b'\n');
    let status_line = String::from_utf8_lossy(lines.next().unwrap_or_default());
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?
        .parse()
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let mut headers = Vec::new();
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            bail!("bad header line {:?}", String::from_utf8_lossy(line));
        };
        let name = String::from_utf8_lossy(&line[..colon]).trim().to_ascii_lowercase();
        let value = line[colon + 1..].trim_ascii().to_vec();
        headers.push((name, value));
    }
    let find =
        |n: &str| headers.iter().find(|(h, _)| h == n).map(|(_, v)| String::from_utf8_lossy(v).to_ascii_lowercase());
    let body = if find("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut body = Vec::new();
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n").ok_or_else(|| anyhow!("truncated chunked body"))?;
            let size_text = String::from_utf8_lossy(&rest[..nl]);
            let size_hex = size_text.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_hex, 16).with_context(|| format!("chunk size {size_hex:?}"))?;
            rest = &rest[nl + 2..];
            if size == 0 {
                break;
            }
            if rest.len() < size {
                bail!("truncated chunk");
            }
            body.extend_from_slice(&rest[..size]);
            rest = rest.get(size + 2..).unwrap_or_default();
        }
        body
    } else if let Some(len) = find("content-length") {
        let len: usize = len.trim().parse().context("content-length")?;
        rest.get(..len).ok_or_else(|| anyhow!("truncated body: want {len}, have {}", rest.len()))?.to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response { status, headers, body })
}
