//! The latency mode's upstream: a keep-alive HTTP/1.1 server on loopback that answers every
//! request with a fixed 200 (a thread per connection, as Envoy opens only a few), and the
//! bootstrap change that routes the listener to it instead of answering directly.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value};

/// The upstream; stopped (and its accept thread joined) on drop.
pub struct Upstream {
    pub port: u16,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Upstream {
    /// Binds 127.0.0.1 on a port the OS picks.
    pub fn start() -> Result<Upstream> {
        let listener = TcpListener::bind("127.0.0.1:0").context("bind the upstream")?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let accept = std::thread::Builder::new().name("upstream".into()).spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(c) = conn {
                    let _ = std::thread::Builder::new().name("upstream-conn".into()).spawn(move || serve(c));
                }
            }
        })?;
        Ok(Upstream { port, stop, accept: Some(accept) })
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&([127, 0, 0, 1], self.port).into(), Duration::from_secs(1));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

/// Answers requests without bodies (the bench sends GETs) until the peer closes or idles 30 s.
fn serve(conn: TcpStream) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = conn.set_nodelay(true);
    let Ok(mut writer) = conn.try_clone() else { return };
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    loop {
        // Headers up to the blank line.
        let mut got = false;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    let _ = writer.shutdown(Shutdown::Both);
                    return;
                }
                Ok(_) => {}
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
            got = true;
        }
        if got
            && writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok").is_err()
        {
            return;
        }
    }
}

/// `bootstrap` with its only route sent to the upstream on `port` (HTTP/1.1, keep-alive).
pub fn route_to_upstream(mut bootstrap: Value, port: u16) -> Value {
    let hcm = &mut bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    hcm["route_config"]["virtual_hosts"][0]["routes"] =
        json!([{"match": {"prefix": "/"}, "route": {"cluster": "upstream"}}]);
    bootstrap["static_resources"]["clusters"] = json!([{
        "name": "upstream",
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": "upstream", "endpoints": [{"lb_endpoints": [{"endpoint": {"address":
            {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}
    }]);
    bootstrap
}
