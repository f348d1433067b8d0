//! Runs Envoy on a ready-made config file (a shipped `envoy/*.yaml`, a mesh sidecar, an
//! Istio-shaped bootstrap), where [`crate::envoy::Envoy`] generates its own bootstrap.
//!
//! Callers hand it configs without fixed ports: listeners and admin bind port 0 (see
//! `standalone::rewrite_ports`), or a port the OS just reported free, and the real ports are
//! read back from the admin API ([`Envoy::listener_port`]).
//! Each instance is started by [`crate::launcher::Launch`]: under coreutils `timeout`, and
//! stopped on drop (SIGTERM by PID, then SIGKILL).

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;

pub use crate::launcher::validate;
use crate::launcher::{Envoy, Launch};

/// A running Envoy started from a config file: an [`Envoy`] (admin API, log, ports, stop) with
/// the name and file it was started from.
pub struct RawEnvoy {
    pub name: String,
    pub config_path: PathBuf,
    envoy: Envoy,
}

impl RawEnvoy {
    /// Starts `envoy -c config` with working directory `cwd` (relative paths in the config
    /// resolve there), logging to `<logdir>/<name>.log`, and waits until the admin API says LIVE.
    /// `limit` is the instance's hard timeout.
    pub fn start(name: &str, config: &Path, cwd: &Path, logdir: &Path, limit: Duration) -> Result<Self> {
        let envoy = Launch::new(logdir).name(name).cwd(cwd).timeout(limit).start(config)?;
        Ok(Self { name: name.to_string(), config_path: config.to_path_buf(), envoy })
    }
}

impl Deref for RawEnvoy {
    type Target = Envoy;

    fn deref(&self) -> &Envoy {
        &self.envoy
    }
}

impl DerefMut for RawEnvoy {
    fn deref_mut(&mut self) -> &mut Envoy {
        &mut self.envoy
    }
}
