//! Runs Envoy on a ready-made config file (a shipped `envoy/*.yaml`, a mesh sidecar, an
//! Istio-shaped bootstrap), where [`crate::envoy::Envoy`] generates its own bootstrap.
//!
//! Callers hand it configs without fixed ports: listeners and admin bind port 0 (see
//! `standalone::rewrite_ports`), or a port the OS just reported free, and the real ports are
//! read back from the admin API ([`RawEnvoy::listener_port`]).
//! Each instance runs under coreutils `timeout` (when present) and is stopped on drop:
//! SIGTERM by PID, then SIGKILL.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::envoy::envoy_bin;

/// A running Envoy started from a config file.
pub struct RawEnvoy {
    pub name: String,
    child: Child,
    admin: SocketAddr,
    log_path: PathBuf,
    pub config_path: PathBuf,
}

impl RawEnvoy {
    /// Starts `envoy -c config` with working directory `cwd` (relative paths in the config
    /// resolve there), logging to `<logdir>/<name>.log`, and waits until the admin API says LIVE.
    pub fn start(name: &str, config: &Path, cwd: &Path, logdir: &Path, limit: Duration) -> Result<Self> {
        let bin = envoy_bin()?;
        std::fs::create_dir_all(logdir)?;
        let log_path = logdir.join(format!("{name}.log"));
        let admin_path = logdir.join(format!("{name}.admin"));
        let _ = std::fs::remove_file(&admin_path);
        let log = File::create(&log_path).with_context(|| format!("create {}", log_path.display()))?;
        let mut cmd = if Path::new("/usr/bin/timeout").exists() {
            let mut c = Command::new("/usr/bin/timeout");
            c.args(["--foreground", "--kill-after=5", &limit.as_secs().max(1).to_string()]).arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        cmd.arg("-c")
            .arg(config)
            .args(["--concurrency", "1", "--disable-hot-restart", "-l", "info"])
            .arg("--admin-address-path")
            .arg(&admin_path)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = cmd.spawn().with_context(|| format!("spawn {}", bin.display()))?;
        let mut e = RawEnvoy {
            name: name.to_string(),
            child,
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            log_path,
            config_path: config.to_path_buf(),
        };
        e.wait_ready(&admin_path, Duration::from_secs(60))?;
        Ok(e)
    }

    fn wait_ready(&mut self, admin_path: &Path, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                bail!("Envoy {} exited during startup ({status}); log:\n{}", self.name, self.log_tail(30));
            }
            if Instant::now() > deadline {
                bail!("Envoy {} not ready in time; log:\n{}", self.name, self.log_tail(30));
            }
            if self.admin.port() == 0 {
                if let Ok(a) = std::fs::read_to_string(admin_path).unwrap_or_default().trim().parse() {
                    self.admin = a;
                }
            }
            if self.admin.port() != 0 {
                if let Ok((200, body)) = self.admin_get("/ready") {
                    if body.trim() == "LIVE" {
                        return Ok(());
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// GET on the admin API; returns status and body.
    pub fn admin_get(&self, path: &str) -> Result<(u16, String)> {
        crate::envoy::admin_get(self.admin, path)
    }

    /// The port of the listener named `name`, from `/listeners`.
    pub fn listener_port(&self, name: &str) -> Result<u16> {
        let (_, body) = self.admin_get("/listeners?format=json")?;
        let v: Value = serde_json::from_str(&body).context("parse /listeners")?;
        let port = v["listener_statuses"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["name"] == name)
            .and_then(|l| l["local_address"]["socket_address"]["port_value"].as_u64())
            .ok_or_else(|| anyhow!("no listener {name:?} in /listeners: {body}"))?;
        Ok(u16::try_from(port)?)
    }

    /// The value of one counter by exact name (0 when absent).
    pub fn counter(&self, name: &str) -> Result<u64> {
        let (_, body) = self.admin_get("/stats?usedonly")?;
        Ok(body
            .lines()
            .find_map(|l| l.split_once(": ").filter(|(n, _)| *n == name).and_then(|(_, v)| v.trim().parse().ok()))
            .unwrap_or(0))
    }

    pub fn log(&self) -> String {
        std::fs::read(&self.log_path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Stops Envoy (also done on drop).
    pub fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for RawEnvoy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `envoy --mode validate -c config` (working directory `cwd`); returns Envoy's output on failure.
pub fn validate(config: &Path, cwd: &Path) -> Result<()> {
    let bin = envoy_bin()?;
    let out = Command::new(&bin)
        .args(["--mode", "validate", "--disable-hot-restart", "-l", "warn", "-c"])
        .arg(config)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {}", bin.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        bail!(
            "envoy --mode validate -c {} failed ({}):\n{}{}",
            config.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}
