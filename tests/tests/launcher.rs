//! The test kit's Envoy launcher against a real Envoy: readiness, ports, failure messages, and that
//! no Envoy outlives its hard timeout or its handle.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{Duration, Instant};

use peerguard_e2e::launcher::Launch;
use serde_json::{json, Value};

/// A listener on 127.0.0.1 port 0 whose only route answers 200 itself.
fn direct_response_listener(name: &str) -> Value {
    json!({
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": name,
                "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
                    {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": name}}}
                ]}]},
                "http_filters": [{
                    "name": "envoy.filters.http.router",
                    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
                }]
            }
        }]}]
    })
}

fn bootstrap(listeners: &[&str]) -> String {
    json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {"listeners": listeners.iter().map(|l| direct_response_listener(l)).collect::<Vec<_>>()}
    })
    .to_string()
}

/// Whether `pid` is gone (or a zombie waiting to be reaped): it runs no code any more.
fn is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().next()) == Some("Z"),
    }
}

fn wait_gone(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if is_gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    is_gone(pid)
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_owned()
}

#[test]
fn listeners_bound_to_port_zero_are_read_back_by_name_and_the_first_is_the_port() {
    let dir = tempfile::tempdir().unwrap();
    let envoy = Launch::new(dir.path()).start_bootstrap("envoy.json", &bootstrap(&["first", "second"])).unwrap();
    let ports = envoy.listener_ports().unwrap();
    assert_eq!(ports.len(), 2, "{ports:?}");
    assert_ne!(ports["first"], ports["second"]);
    assert_eq!(envoy.port(), ports["first"]);
    assert_eq!(envoy.listener_port("second").unwrap(), ports["second"]);
    let err = envoy.listener_port("third").unwrap_err().to_string();
    assert!(err.contains("no listener \"third\""), "{err}");
    // The ports are real: each listener answers with its own name.
    let resp = peerguard_e2e::client::Client::plaintext().get(ports["second"], "/").unwrap();
    assert_eq!((resp.status, resp.body_text()), (200, "second".to_owned()));
    assert!(dir.path().join("envoy.log").is_file() && dir.path().join("envoy.admin").is_file());
}

#[test]
fn envoy_runs_under_its_timeout_wrapper_and_drop_stops_both_by_pid() {
    let dir = tempfile::tempdir().unwrap();
    let envoy = Launch::new(dir.path()).name("dropped").start_bootstrap("dropped.json", &bootstrap(&["l"])).unwrap();
    let (wrapper, inner) = (envoy.pid(), envoy.envoy_pid().expect("Envoy under the wrapper"));
    assert_eq!(comm(wrapper), "timeout");
    assert_eq!(comm(inner), "envoy");
    assert!(envoy.admin().is_live());
    drop(envoy);
    assert!(is_gone(inner), "Envoy {inner} still runs after drop");
    assert!(is_gone(wrapper), "the wrapper {wrapper} still runs after drop");
}

#[test]
fn a_leaked_envoy_still_dies_at_its_hard_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let envoy = Launch::new(dir.path())
        .timeout(Duration::from_secs(3))
        .start_bootstrap("envoy.json", &bootstrap(&["l"]))
        .unwrap();
    let inner = envoy.envoy_pid().expect("Envoy under the wrapper");
    let admin = envoy.admin();
    assert!(admin.is_live());
    // No Drop runs: only the deadline (the `timeout` wrapper and the watchdog) can stop it.
    std::mem::forget(envoy);
    assert!(wait_gone(inner, Duration::from_secs(20)), "Envoy {inner} outlived its 3 s hard timeout");
    assert!(!admin.is_live());
}

#[test]
fn a_bootstrap_envoy_rejects_fails_the_start_with_the_log_tail() {
    let dir = tempfile::tempdir().unwrap();
    let bad = json!({"admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {"clusters": [{"name": "c", "type": "NO_SUCH_TYPE"}]}});
    let err = match Launch::new(dir.path()).name("bad").start_bootstrap("bad.json", &bad.to_string()) {
        Ok(_) => panic!("Envoy started on a bootstrap with an unknown cluster type"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("\"bad\"") && err.contains("exited during startup"), "{err}");
    assert!(err.contains("NO_SUCH_TYPE"), "the log tail should show Envoy's own complaint: {err}");
    assert!(err.contains(&dir.path().join("bad.json").display().to_string()), "{err}");
}

#[test]
fn a_config_file_runs_from_its_working_directory_with_extra_arguments() {
    // A relative path in the config resolves against `cwd`, as for a user running from the repository root.
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().join("root");
    std::fs::create_dir_all(&cwd).unwrap();
    let access_log = json!([{"name": "envoy.access_loggers.file", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
        "path": "access.log"}}]);
    let mut doc: Value = serde_json::from_str(&bootstrap(&["l"])).unwrap();
    doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["access_log"] =
        access_log;
    let config = dir.path().join("cfg.json");
    std::fs::write(&config, doc.to_string()).unwrap();
    let envoy = Launch::new(&dir.path().join("logs"))
        .name("raw")
        .cwd(&cwd)
        .arg("--drain-time-s")
        .arg("1")
        .start(&config)
        .unwrap();
    assert_eq!(envoy.config_path(), config.as_path());
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", envoy.envoy_pid().unwrap())).unwrap();
    let args: Vec<String> = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    assert!(args.windows(2).any(|w| w == ["--drain-time-s", "1"]), "{args:?}");
    assert!(args.windows(2).any(|w| w == ["--concurrency", "1"]), "{args:?}");
    peerguard_e2e::client::Client::plaintext().get(envoy.port(), "/").unwrap();
    drop(envoy);
    assert!(Path::new(&cwd.join("access.log")).is_file(), "the relative access log path did not resolve in cwd");
}
