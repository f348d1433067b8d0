//! The one runner of the real `peerguard` binary for the CLI's integration tests: arguments, an optional working directory and standard input, and the exit code with both streams.

// Each test binary includes this module and uses a part of it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// What one run of `peerguard` did: the exit code (-1 when a signal ended it) and both streams.
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// The single JSON value printed alone on one line (`check` prints exactly one).
    pub fn json(&self) -> Value {
        let lines: Vec<&str> = self.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "expected exactly one line: {:?} (stderr {:?})", self.stdout, self.stderr);
        serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}: {:?} (stderr {:?})", lines[0], self.stderr))
    }
}

/// Runs `peerguard args` in `cwd` (else this process's), with `stdin` written to it (else none).
/// Standard output must be UTF-8: every command prints text.
pub fn run(args: &[&str], cwd: Option<&Path>, stdin: Option<&[u8]>) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_peerguard"));
    cmd.args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("peerguard {args:?} did not start: {e}"));
    // Written from a thread so that a binary printing before it has read all of its input cannot
    // fill the pipes both ways; the pipe closes when the thread ends, which is the end of input.
    let writer = stdin.map(|input| {
        let (mut pipe, input) = (child.stdin.take().unwrap(), input.to_vec());
        std::thread::spawn(move || pipe.write_all(&input))
    });
    let out = child.wait_with_output().unwrap();
    if let Some(w) = writer {
        w.join().unwrap().unwrap_or_else(|e| panic!("peerguard {args:?}: writing stdin: {e}"));
    }
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout)
            .unwrap_or_else(|e| panic!("peerguard {args:?}: stdout is not UTF-8: {e}")),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `peerguard args` in this directory without input.
pub fn peerguard(args: &[&str]) -> Out {
    run(args, None, None)
}

/// `peerguard args` run in `dir` (for commands that resolve relative paths).
pub fn peerguard_in(dir: &Path, args: &[&str]) -> Out {
    run(args, Some(dir), None)
}

/// `peerguard args` that must succeed: exit 0, else the failure names the arguments and both streams.
pub fn ok(args: &[&str]) -> Out {
    let out = peerguard(args);
    assert_eq!(out.code, 0, "peerguard {args:?} failed:\nstdout: {}\nstderr: {}", out.stdout, out.stderr);
    out
}

/// A path as the `&str` argument the runner takes (test paths are UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Writes `text` to `dir/name` (creating parent directories) and returns its path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}
