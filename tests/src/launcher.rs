//! The one way the test kit starts Envoy: a bootstrap file, a hard timeout, readiness from the admin API, kill by PID.
//!
//! Every Envoy that the end-to-end tests, the mesh and compose checks, the differential test and
//! the bench start goes through [`Launch`]:
//! - it runs under coreutils `timeout` (found on `PATH`), so it dies at its deadline even if the
//!   process that started it is killed without running `Drop`; a watchdog thread enforces the
//!   same deadline from inside this process;
//! - `--admin-address-path` reports the admin address, so the admin can bind port 0; the start
//!   returns once `/ready` says `LIVE`, or fails with the tail of Envoy's log;
//! - [`Envoy`] stops it on drop: SIGTERM by PID, then SIGKILL, then wait.
//!
//! Listeners should bind port 0 (or a port the OS just reported free); [`Envoy::listener_port`]
//! and [`Envoy::port`] read the real ports back.

use std::collections::HashMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::admin::Admin;
use crate::repo::envoy_bin;

/// The hard limit on one Envoy's lifetime unless the caller sets one: `$PEERGUARD_E2E_TIMEOUT_SECS`,
/// else 300 s.
pub fn default_timeout() -> Duration {
    let secs = std::env::var("PEERGUARD_E2E_TIMEOUT_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    Duration::from_secs(secs)
}

/// How to start one Envoy. Files go to `workdir`: `<name>.log` (stdout and stderr), `<name>.admin`
/// (the admin address) and, for [`Launch::start_bootstrap`], the bootstrap itself.
#[derive(Debug, Clone)]
pub struct Launch {
    name: String,
    workdir: PathBuf,
    cwd: Option<PathBuf>,
    timeout: Duration,
    ready_within: Duration,
    poll: Duration,
    log_level: String,
    component_log_level: Option<String>,
    concurrency: u32,
    args: Vec<String>,
}

impl Launch {
    /// Named `envoy`, in `workdir`: one worker (`--concurrency 1`), log level `info`, hard timeout
    /// [`default_timeout`], up to 60 s to become ready.
    pub fn new(workdir: &Path) -> Self {
        Self {
            name: "envoy".into(),
            workdir: workdir.to_path_buf(),
            cwd: None,
            timeout: default_timeout(),
            ready_within: Duration::from_secs(60),
            poll: Duration::from_millis(50),
            log_level: "info".into(),
            component_log_level: None,
            concurrency: 1,
            args: Vec::new(),
        }
    }

    /// Names the instance in messages and in its file names (several can share one `workdir`).
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    /// Envoy's working directory, where relative paths in its config resolve (default: inherited).
    pub fn cwd(mut self, dir: &Path) -> Self {
        self.cwd = Some(dir.to_path_buf());
        self
    }

    /// The hard limit on this instance's lifetime, from spawn (rounded up to whole seconds).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long to wait for `/ready` to say `LIVE` before giving up.
    pub fn ready_within(mut self, limit: Duration) -> Self {
        self.ready_within = limit;
        self
    }

    /// How often to poll for readiness (default 50 ms; the bench times startup, so it polls faster).
    pub fn poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// Envoy's `-l`.
    pub fn log_level(mut self, level: &str) -> Self {
        self.log_level = level.into();
        self
    }

    /// Envoy's `--component-log-level`, e.g. `wasm:debug`.
    pub fn component_log_level(mut self, levels: Option<&str>) -> Self {
        self.component_log_level = levels.map(str::to_owned);
        self
    }

    /// Envoy's `--concurrency` (worker threads).
    pub fn concurrency(mut self, workers: u32) -> Self {
        self.concurrency = workers;
        self
    }

    /// One more argument for Envoy, after the ones this launcher sets (e.g. `--base-id`, `--drain-time-s`).
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Writes `bootstrap` (YAML or JSON text) to `<workdir>/<file_name>` and starts Envoy on it.
    pub fn start_bootstrap(&self, file_name: &str, bootstrap: &str) -> Result<Envoy> {
        std::fs::create_dir_all(&self.workdir).with_context(|| format!("create {}", self.workdir.display()))?;
        let config = self.workdir.join(file_name);
        std::fs::write(&config, bootstrap).with_context(|| format!("write {}", config.display()))?;
        self.start(&config)
    }

    /// Starts `envoy -c config` and waits until it is ready.
    pub fn start(&self, config: &Path) -> Result<Envoy> {
        let bin = envoy_bin()?;
        let wrapper = timeout_bin()?;
        std::fs::create_dir_all(&self.workdir).with_context(|| format!("create {}", self.workdir.display()))?;
        let log_path = self.workdir.join(format!("{}.log", self.name));
        let admin_path = self.workdir.join(format!("{}.admin", self.name));
        let _ = std::fs::remove_file(&admin_path);
        let log = File::create(&log_path).with_context(|| format!("create {}", log_path.display()))?;
        // `--foreground` keeps Envoy in our process group, so a terminal Ctrl-C reaches it too;
        // `timeout` still forwards SIGTERM to Envoy and SIGKILLs it 5 s after the deadline.
        let mut cmd = Command::new(wrapper);
        cmd.args(["--foreground", "--kill-after=5"])
            .arg(self.timeout.as_secs_f64().ceil().max(1.0).to_string())
            .arg(&bin)
            .arg("-c")
            .arg(config)
            .args(["--concurrency", &self.concurrency.to_string()])
            // No shared memory: nothing to collide with between parallel instances, nothing leaked.
            .arg("--disable-hot-restart")
            .arg("--admin-address-path")
            .arg(&admin_path)
            .args(["-l", &self.log_level])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        native_search_path(&mut cmd);
        if let Some(c) = &self.component_log_level {
            cmd.args(["--component-log-level", c]);
        }
        cmd.args(&self.args);
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        let spawned = Instant::now();
        let child = cmd.spawn().with_context(|| format!("spawn {}", bin.display()))?;
        let pid = child.id();
        let child = Arc::new(Mutex::new(child));

        let (tx, rx) = mpsc::channel::<()>();
        let wd_child = child.clone();
        let timeout = self.timeout;
        let watchdog = std::thread::Builder::new()
            .name(format!("envoy-watchdog-{pid}"))
            .spawn(move || {
                if let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(timeout) {
                    eprintln!("envoy pid {pid}: hard timeout of {timeout:?} reached, killing it");
                    terminate(&wd_child, pid);
                }
            })
            .context("spawn watchdog")?;

        let mut envoy = Envoy {
            name: self.name.clone(),
            child,
            pid,
            envoy_pid: None,
            spawned,
            stop_watchdog: Some(tx),
            watchdog: Some(watchdog),
            admin: Admin::new(SocketAddr::from(([127, 0, 0, 1], 0))),
            listener_port: 0,
            log_path,
            config_path: config.to_path_buf(),
        };
        // On error, `envoy` drops here and is stopped.
        envoy.wait_ready(&admin_path, self.ready_within, self.poll)?;
        Ok(envoy)
    }
}

/// A running Envoy. Stopped on drop, or when its hard timeout expires.
pub struct Envoy {
    name: String,
    child: Arc<Mutex<Child>>,
    /// The spawned process: the `timeout` wrapper.
    pid: u32,
    /// Envoy's own process, the wrapper's child, once ready.
    envoy_pid: Option<u32>,
    spawned: Instant,
    stop_watchdog: Option<mpsc::Sender<()>>,
    watchdog: Option<JoinHandle<()>>,
    admin: Admin,
    listener_port: u16,
    log_path: PathBuf,
    config_path: PathBuf,
}

impl Envoy {
    fn exited(&self) -> Option<String> {
        let mut c = self.child.lock().ok()?;
        match c.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            _ => None,
        }
    }

    fn fail(&self, what: &str) -> anyhow::Error {
        anyhow!(
            "Envoy {:?} (pid {}) {what}; config {}; log tail:\n{}",
            self.name,
            self.pid,
            self.config_path.display(),
            self.log_tail(40)
        )
    }

    fn wait_ready(&mut self, admin_path: &Path, limit: Duration, poll: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                return Err(self.fail(&format!("exited during startup ({status})")));
            }
            if Instant::now() > deadline {
                return Err(self.fail(&format!("was not ready within {limit:?}")));
            }
            if self.admin.addr().port() == 0 {
                if let Ok(addr) = std::fs::read_to_string(admin_path).unwrap_or_default().trim().parse() {
                    self.admin = Admin::new(addr);
                }
            }
            if self.admin.addr().port() != 0 && self.admin.is_live() {
                break;
            }
            std::thread::sleep(poll);
        }
        self.envoy_pid = child_of(self.pid);
        let listeners = self.admin.listeners().map_err(|e| self.fail(&format!("has no readable listeners ({e:#})")))?;
        self.listener_port = listeners.first().map_or(0, |(_, port)| *port);
        Ok(())
    }

    /// The name given at launch (`envoy` unless set).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The port of the first listener `/listeners` reported at startup (0 when there was none).
    pub fn port(&self) -> u16 {
        self.listener_port
    }

    /// Every listener's port on 127.0.0.1, by listener name (asked now).
    pub fn listener_ports(&self) -> Result<HashMap<String, u16>> {
        self.admin.listener_ports()
    }

    /// The port of the listener named `name` (asked now).
    pub fn listener_port(&self, name: &str) -> Result<u16> {
        self.admin.listener_port(name)
    }

    pub fn admin(&self) -> Admin {
        self.admin
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.addr()
    }

    /// GET on the admin API; returns status and body.
    pub fn admin_get(&self, path: &str) -> Result<(u16, String)> {
        self.admin.get(path)
    }

    /// `/stats?filter=REGEX` as text (`name: value` lines).
    pub fn stats(&self, filter: &str) -> Result<String> {
        self.admin.stats(filter)
    }

    /// The value of one counter or gauge by exact name, if present.
    pub fn stat(&self, name: &str) -> Result<Option<u64>> {
        self.admin.stat(name)
    }

    /// PID of the spawned process: the `timeout` wrapper around Envoy. Signals sent to it reach Envoy.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// PID of the Envoy process itself (for /proc sampling of its CPU time and memory), when it
    /// could be found under the wrapper.
    pub fn envoy_pid(&self) -> Option<u32> {
        self.envoy_pid
    }

    /// When the process was spawned (to time startup against the first answer on a listener).
    pub fn spawned_at(&self) -> Instant {
        self.spawned
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Everything Envoy logged so far.
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Waits (up to `limit`) for a log line containing `needle`; returns that line.
    pub fn wait_for_log(&self, needle: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(line) = self.log().lines().find(|l| l.contains(needle)) {
                return Some(line.to_string());
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops Envoy now (also done on drop).
    pub fn stop(&mut self) {
        if let Some(tx) = self.stop_watchdog.take() {
            let _ = tx.send(());
        }
        terminate(&self.child, self.pid);
        if let Some(h) = self.watchdog.take() {
            let _ = h.join();
        }
    }

    /// Blocks until Envoy exits on its own (or is killed by its timeout).
    pub fn wait(&mut self) -> Result<()> {
        while self.exited().is_none() {
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `envoy --mode validate -c config` (working directory `cwd`) under the same `timeout`
/// wrapper, with a 120 s limit; returns Envoy's output on failure.
pub fn validate(config: &Path, cwd: &Path) -> Result<()> {
    let bin = envoy_bin()?;
    let mut cmd = Command::new(timeout_bin()?);
    native_search_path(&mut cmd);
    let out = cmd
        .args(["--kill-after=5", "120"])
        .arg(&bin)
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

/// Lets Envoy find the native module (dynamic module `peerguard_native`) in
/// [`crate::repo::native_dir`], unless the caller's environment already says where to look.
fn native_search_path(cmd: &mut Command) {
    use peerguard_filter::envoy_config::NATIVE_SEARCH_PATH_ENV;
    if std::env::var_os(NATIVE_SEARCH_PATH_ENV).is_none() {
        cmd.env(NATIVE_SEARCH_PATH_ENV, crate::repo::native_dir());
    }
}

/// Stops the wrapper `pid` and the Envoy under it: SIGTERM to the wrapper (which forwards it),
/// then after 3 s SIGKILL to Envoy and to the wrapper (a killed wrapper forwards nothing), then wait.
fn terminate(child: &Mutex<Child>, pid: u32) {
    let Ok(mut c) = child.lock() else { return };
    if matches!(c.try_wait(), Ok(Some(_))) {
        return;
    }
    signal("TERM", pid);
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if matches!(c.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Asked while the wrapper is unreaped, so the child found is still Envoy, not a reused PID.
    if let Some(envoy) = child_of(pid) {
        signal("KILL", envoy);
    }
    let _ = c.kill();
    let _ = c.wait();
}

fn signal(name: &str, pid: u32) {
    let _ = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The (first) child process of `pid`, from /proc.
fn child_of(pid: u32) -> Option<u32> {
    if let Ok(children) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        return children.split_whitespace().next().and_then(|c| c.parse().ok());
    }
    // Kernels without CONFIG_PROC_CHILDREN: scan every process's parent (field 4 of /proc/P/stat,
    // the second after the parenthesised command name).
    std::fs::read_dir("/proc").ok()?.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()).find(|p| {
        std::fs::read_to_string(format!("/proc/{p}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse::<u32>().ok())
            == Some(pid)
    })
}

/// coreutils `timeout`, from `PATH`. Required: it is what stops Envoy when the process that started
/// it is killed without running `Drop`.
fn timeout_bin() -> Result<PathBuf> {
    which("timeout").ok_or_else(|| {
        anyhow!(
            "coreutils `timeout` not found on PATH: every Envoy the test kit starts runs under it, so \
             that it cannot outlive a killed test; install coreutils"
        )
    })
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(name)).find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_of_finds_the_child_under_a_timeout_wrapper_and_terminate_stops_both() {
        let timeout_bin = which("timeout").expect("coreutils timeout on PATH");
        let sleep_bin = which("sleep").expect("coreutils sleep on PATH");
        let wrapper = Command::new(timeout_bin)
            .args(["--foreground", "--kill-after=1", "20"])
            .arg(sleep_bin)
            .arg("30")
            .spawn()
            .unwrap();
        let wrapper_pid = wrapper.id();
        let comm = |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs(5);
        // Right after the fork the child is still `timeout`; it becomes `sleep` at exec.
        let child = loop {
            if let Some(c) = child_of(wrapper_pid).filter(|c| comm(*c).trim() == "sleep") {
                break c;
            }
            assert!(Instant::now() < deadline, "no sleep under the timeout wrapper");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(child_of(child), None, "sleep has no child");
        let wrapper = Mutex::new(wrapper);
        terminate(&wrapper, wrapper_pid);
        assert!(wrapper.lock().unwrap().try_wait().unwrap().is_some(), "wrapper still running after terminate");
        // The wrapper waits for its child before it exits, so the child is gone (or a zombie about
        // to be reaped by init), never still sleeping.
        let state = std::fs::read_to_string(format!("/proc/{child}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().next().map(str::to_owned)));
        assert!(matches!(state.as_deref(), None | Some("Z")), "sleep {child} survived: state {state:?}");
    }

    #[test]
    fn which_finds_a_program_on_path_and_not_a_made_up_one() {
        assert!(which("sh").is_some());
        assert!(which("no-such-program-peerguard").is_none());
    }
}
