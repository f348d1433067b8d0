//! An HTTP/1.1 echo server on 127.0.0.1 that reports which request (and headers) reached it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// What the upstream saw, and what it echoes back as the JSON response body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Echo {
    pub method: String,
    pub path: String,
    /// Lowercased header name → value; repeated headers are joined with `,`.
    pub headers: BTreeMap<String, String>,
}

impl Echo {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
}

/// A running echo server. Stops on drop.
pub struct EchoServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Echo>>>,
    accept: Option<JoinHandle<()>>,
}

impl EchoServer {
    /// Binds 127.0.0.1:0 and serves until dropped.
    pub fn start() -> Result<Self> {
        Self::bind("127.0.0.1:0")
    }

    /// Binds `addr` (e.g. `127.0.0.2:8080` for a mesh workload) and serves until dropped.
    pub fn bind(addr: &str) -> Result<Self> {
        let listener = TcpListener::bind(addr).with_context(|| format!("bind echo upstream on {addr}"))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop2, seen2) = (stop.clone(), seen.clone());
        let accept = std::thread::Builder::new()
            .name("echo-accept".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if stop2.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let seen = seen2.clone();
                    let _ = std::thread::Builder::new().name("echo-conn".into()).spawn(move || {
                        let _ = serve(conn, &seen);
                    });
                }
            })
            .context("spawn echo accept thread")?;
        Ok(Self { addr, stop, seen, accept: Some(accept) })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every request that reached the upstream so far, oldest first.
    pub fn seen(&self) -> Vec<Echo> {
        self.seen.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Number of requests that reached the upstream so far.
    pub fn count(&self) -> usize {
        self.seen.lock().map(|v| v.len()).unwrap_or_default()
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept() so the thread sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn serve(conn: TcpStream, seen: &Mutex<Vec<Echo>>) -> Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    // The head and the body go out in two writes: without this, Nagle and delayed ACKs add ~40 ms.
    conn.set_nodelay(true)?;
    let mut writer = conn.try_clone()?;
    let mut reader = BufReader::new(conn);
    loop {
        let Some((echo, keep_alive)) = read_request(&mut reader)? else {
            return Ok(());
        };
        if let Ok(mut v) = seen.lock() {
            v.push(echo.clone());
        }
        let body = serde_json::to_vec(&echo)?;
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}\r\n",
            body.len(),
            if keep_alive { "" } else { "connection: close\r\n" }
        );
        writer.write_all(head.as_bytes())?;
        writer.write_all(&body)?;
        writer.flush()?;
        if !keep_alive {
            let _ = writer.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

/// Reads one request; `None` on a clean EOF before the request line.
fn read_request(r: &mut BufReader<TcpStream>) -> Result<Option<(Echo, bool)>> {
    let mut line = Vec::new();
    if r.read_until(b'\n', &mut line)? == 0 {
        return Ok(None);
    }
    let request_line = String::from_utf8_lossy(&line).trim_end().to_string();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let version = parts.next().unwrap_or_default().to_string();
    if method.is_empty() || path.is_empty() {
        bail!("bad request line {request_line:?}");
    }
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 {
            bail!("EOF in headers");
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            break;
        }
        let Some((name, value)) = text.split_once(':') else {
            bail!("bad header line {text:?}");
        };
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim().to_string();
        headers
            .entry(name)
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    // Drain any body so keep-alive stays in sync.
    if headers.get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        loop {
            line.clear();
            r.read_until(b'\n', &mut line)?;
            let size_text = String::from_utf8_lossy(&line);
            let size_hex = size_text.trim().split(';').next().unwrap_or("0");
            let size = usize::from_str_radix(size_hex, 16).context("chunk size")?;
            let mut chunk = vec![0u8; size + 2];
            r.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
        }
    } else if let Some(len) = headers.get("content-length") {
        let len: u64 = len.parse().context("content-length")?;
        std::io::copy(&mut r.by_ref().take(len), &mut std::io::sink())?;
    }
    let conn_hdr = headers.get("connection").map(|v| v.to_ascii_lowercase()).unwrap_or_default();
    let keep_alive = if version == "HTTP/1.0" { conn_hdr.contains("keep-alive") } else { !conn_hdr.contains("close") };
    Ok(Some((Echo { method, path, headers }, keep_alive)))
}
