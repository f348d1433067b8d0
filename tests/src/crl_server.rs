//! A CRL distribution point on 127.0.0.1 for the CRL source tests: serves one body (replaceable while it runs) with an ETag, answers `If-None-Match` with 304, and can be stopped.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

#[derive(Default)]
struct State {
    body: Mutex<Vec<u8>>,
    /// Bumped on every [`CrlServer::serve`], so the ETag changes with the content.
    version: AtomicUsize,
    requests: AtomicUsize,
    not_modified: AtomicUsize,
    conditional: AtomicUsize,
}

/// A running CRL server. Stops (and refuses connections) on [`CrlServer::stop`] or drop.
pub struct CrlServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    state: Arc<State>,
    accept: Option<JoinHandle<()>>,
}

impl CrlServer {
    /// Binds 127.0.0.1 on a free port and serves `body` at every path.
    pub fn start(body: &[u8]) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").context("bind CRL server")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(State::default());
        *state.body.lock().map_err(|_| anyhow::anyhow!("poisoned"))? = body.to_vec();
        let (stop2, state2) = (stop.clone(), state.clone());
        let accept = std::thread::Builder::new()
            .name("crl-server".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if stop2.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(conn) = conn {
                        let _ = answer(conn, &state2);
                    }
                }
            })
            .context("spawn CRL server thread")?;
        Ok(Self { addr, stop, state, accept: Some(accept) })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Serves `body` from now on (a new ETag).
    pub fn serve(&self, body: &[u8]) {
        if let Ok(mut b) = self.state.body.lock() {
            *b = body.to_vec();
        }
        self.state.version.fetch_add(1, Ordering::SeqCst);
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Requests that carried `If-None-Match`.
    pub fn conditional_requests(&self) -> usize {
        self.state.conditional.load(Ordering::SeqCst)
    }

    /// 304 answers so far.
    pub fn not_modified(&self) -> usize {
        self.state.not_modified.load(Ordering::SeqCst)
    }

    /// Stops serving: the port refuses connections afterwards.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

impl Drop for CrlServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn answer(conn: TcpStream, state: &State) -> Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut writer = conn.try_clone()?;
    let mut reader = BufReader::new(conn);
    let mut if_none_match = None;
    let mut line = String::new();
    reader.read_line(&mut line)?; // request line
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.trim().eq_ignore_ascii_case("if-none-match") {
                if_none_match = Some(v.trim().to_owned());
            }
        }
    }
    state.requests.fetch_add(1, Ordering::SeqCst);
    let etag = format!("\"v{}\"", state.version.load(Ordering::SeqCst));
    if if_none_match.is_some() {
        state.conditional.fetch_add(1, Ordering::SeqCst);
    }
    if if_none_match.as_deref() == Some(etag.as_str()) {
        state.not_modified.fetch_add(1, Ordering::SeqCst);
        write!(writer, "HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
        return Ok(());
    }
    let body = state.body.lock().map(|b| b.clone()).unwrap_or_default();
    write!(
        writer,
        "HTTP/1.1 200 OK\r\nContent-Type: application/x-pem-file\r\nETag: {etag}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    writer.write_all(&body)?;
    Ok(())
}
