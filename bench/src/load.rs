//! The load generator: keep-alive HTTP/1.1 over rustls with a client certificate, N connections on
//! a few mio event-loop threads, a closed loop (one request in flight per connection), fixed duration.
//! With a `rate`, each connection instead sends on a fixed schedule (rate / connections per
//! second, still one request in flight) and latency counts from the scheduled time, so a slow
//! response also charges the requests it delayed.
//!
//! Latency is measured from handing the request to TLS until the full response is parsed. Only
//! responses completed inside the measurement window count; the warm-up (handshakes, first
//! requests) is discarded.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

use crate::hist::Histogram;

/// What to run.
#[derive(Clone)]
pub struct LoadSpec {
    pub addr: SocketAddr,
    pub connections: usize,
    pub threads: usize,
    /// The load starts at `start`; responses count from `start + warmup` to `start + warmup + duration`.
    pub start: Instant,
    pub warmup: Duration,
    pub duration: Duration,
    pub path: String,
    pub tls: Arc<ClientConfig>,
    /// Requests per second over all connections; `None` for the closed loop.
    pub rate: Option<f64>,
}

/// What came back.
#[derive(Debug, Default)]
pub struct LoadResult {
    /// 200 responses completed inside the window.
    pub ok: u64,
    /// Non-200 responses inside the window.
    pub non_200: u64,
    /// Connection failures (any time), each followed by a reconnect.
    pub errors: u64,
    /// The window in seconds.
    pub window_secs: f64,
    pub latency: Histogram,
}

struct Conn {
    sock: TcpStream,
    tls: ClientConnection,
    buf: Vec<u8>,
    sent_at: Instant,
    in_flight: bool,
    /// Paced mode: when the next request is due.
    next_at: Option<Instant>,
}

/// Runs the load and returns the merged result.
pub fn run(spec: &LoadSpec) -> Result<LoadResult> {
    let threads = spec.threads.clamp(1, spec.connections.max(1));
    let mut handles = Vec::new();
    for t in 0..threads {
        let n = spec.connections / threads + usize::from(t < spec.connections % threads);
        let spec = spec.clone();
        handles.push(
            std::thread::Builder::new()
                .name(format!("load-{t}"))
                .spawn(move || run_thread(&spec, n))
                .context("spawn load thread")?,
        );
    }
    let mut out = LoadResult { window_secs: spec.duration.as_secs_f64(), ..LoadResult::default() };
    for h in handles {
        let r = h.join().map_err(|_| anyhow!("load thread panicked"))??;
        out.ok += r.ok;
        out.non_200 += r.non_200;
        out.errors += r.errors;
        out.latency.merge(&r.latency);
    }
    Ok(out)
}

fn request_bytes(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: bench\r\nuser-agent: peerguard-bench\r\n\r\n").into_bytes()
}

fn connect(spec: &LoadSpec, poll: &Poll, token: Token) -> Result<Conn> {
    let std_sock = std::net::TcpStream::connect_timeout(&spec.addr, Duration::from_secs(5))
        .with_context(|| format!("connect {}", spec.addr))?;
    std_sock.set_nodelay(true)?;
    std_sock.set_nonblocking(true)?;
    let mut sock = TcpStream::from_std(std_sock);
    poll.registry().register(&mut sock, token, Interest::READABLE | Interest::WRITABLE)?;
    let name = ServerName::try_from("localhost").context("server name")?;
    let tls = ClientConnection::new(spec.tls.clone(), name).context("TLS client")?;
    Ok(Conn { sock, tls, buf: Vec::with_capacity(1024), sent_at: Instant::now(), in_flight: false, next_at: None })
}

/// A complete response at the front of `buf`: (status, total length).
fn parse_response(buf: &[u8]) -> Option<Result<(u16, usize)>> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = &buf[..end];
    let text = std::str::from_utf8(head).ok();
    let Some(text) = text else { return Some(Err(anyhow!("non-UTF-8 response head"))) };
    let status = text.get(9..12).and_then(|s| s.parse::<u16>().ok());
    let Some(status) = status else { return Some(Err(anyhow!("bad status line: {text:?}"))) };
    let mut len = 0usize;
    for line in text.split("\r\n").skip(1) {
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            } else if k.eq_ignore_ascii_case("transfer-encoding") {
                return Some(Err(anyhow!("chunked responses are not supported by the bench client")));
            }
        }
    }
    if buf.len() < end + len {
        return None;
    }
    Some(Ok((status, end + len)))
}

fn run_thread(spec: &LoadSpec, n: usize) -> Result<LoadResult> {
    let mut out = LoadResult::default();
    if n == 0 {
        return Ok(out);
    }
    let req = request_bytes(&spec.path);
    let window_start = spec.start + spec.warmup;
    let window_end = window_start + spec.duration;
    // Requests still in flight at the end get this long to finish before they are abandoned.
    let hard_end = window_end + Duration::from_secs(2);
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(256);
    let mut conns: Vec<Conn> = Vec::with_capacity(n);
    // Paced: each connection sends every `interval`, the connections spread over one interval.
    let interval = spec.rate.filter(|r| *r > 0.0).map(|r| Duration::from_secs_f64(spec.connections.max(1) as f64 / r));
    if let Some(wait) = spec.start.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
    for i in 0..n {
        let mut c = connect(spec, &poll, Token(i))?;
        match interval {
            Some(iv) => c.next_at = Some(Instant::now() + iv.mul_f64(i as f64 / n as f64)),
            None => {
                c.tls.writer().write_all(&req)?;
                c.sent_at = Instant::now();
                c.in_flight = true;
                flush(&mut c)?;
            }
        }
        conns.push(c);
    }
    let mut tmp = vec![0u8; 16 * 1024];
    loop {
        let now = Instant::now();
        if now >= hard_end || (now >= window_end && conns.iter().all(|c| !c.in_flight)) {
            break;
        }
        let mut wait = Duration::from_millis(20);
        for c in conns.iter_mut() {
            let Some(due) = c.next_at else { continue };
            if due <= now && now < window_end {
                c.next_at = None;
                c.tls.writer().write_all(&req)?;
                // Latency counts from the schedule, not from when the loop got round to it.
                c.sent_at = due;
                c.in_flight = true;
                flush(c)?;
            } else if due > now {
                wait = wait.min(due - now);
            }
        }
        poll.poll(&mut events, Some(wait))?;
        for ev in events.iter() {
            let i = ev.token().0;
            let Some(c) = conns.get_mut(i) else { continue };
            match service(c, &mut tmp, &req, window_start, window_end, interval, &mut out) {
                Ok(()) => {}
                Err(_) => {
                    out.errors += 1;
                    let _ = poll.registry().deregister(&mut c.sock);
                    if Instant::now() < window_end {
                        // Brief pause so a dead server does not turn this into a busy loop.
                        std::thread::sleep(Duration::from_millis(10));
                        let mut fresh = connect(spec, &poll, Token(i))?;
                        fresh.tls.writer().write_all(&req)?;
                        fresh.sent_at = Instant::now();
                        fresh.in_flight = true;
                        flush(&mut fresh)?;
                        *c = fresh;
                    } else {
                        c.in_flight = false;
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Moves TLS records to the socket until it would block.
fn flush(c: &mut Conn) -> Result<()> {
    while c.tls.wants_write() {
        match c.tls.write_tls(&mut c.sock) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn service(
    c: &mut Conn,
    tmp: &mut [u8],
    req: &[u8],
    window_start: Instant,
    window_end: Instant,
    interval: Option<Duration>,
    out: &mut LoadResult,
) -> Result<()> {
    // Edge-triggered: drain the socket completely.
    loop {
        match c.tls.read_tls(&mut c.sock) {
            Ok(0) => return Err(anyhow!("server closed the connection")),
            Ok(_) => {
                c.tls.process_new_packets().context("TLS")?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e.into()),
        }
    }
    loop {
        match c.tls.reader().read(tmp) {
            Ok(0) => return Err(anyhow!("TLS stream closed")),
            Ok(k) => c.buf.extend_from_slice(&tmp[..k]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e.into()),
        }
    }
    while let Some(parsed) = parse_response(&c.buf) {
        let (status, len) = parsed?;
        c.buf.drain(..len);
        let now = Instant::now();
        if c.in_flight && now >= window_start && now <= window_end {
            if status == 200 {
                out.ok += 1;
            } else {
                out.non_200 += 1;
            }
            out.latency.record(u64::try_from(now.duration_since(c.sent_at).as_nanos()).unwrap_or(u64::MAX));
        }
        c.in_flight = false;
        if let Some(iv) = interval {
            c.next_at = Some(c.sent_at + iv);
        } else if now < window_end {
            c.tls.writer().write_all(req)?;
            c.sent_at = Instant::now();
            c.in_flight = true;
        }
    }
    flush(c)
}
