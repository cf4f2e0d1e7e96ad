//! Engine CLI calls (docker, podman) with a deadline and their wall time.
//!
//! A hung engine must not stall the bench: each call runs in a thread that waits for it, and the
//! caller gives up after a timeout, killing that one child by its PID. The wall time is taken
//! from just before the spawn to the moment the child exits, the same way for every side.

use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};

use crate::interrupt;

/// A finished call: how long it took and what it printed on stdout (trimmed).
pub struct Finished {
    pub elapsed: Duration,
    pub stdout: String,
}

/// Runs silently; fails on a non-zero exit (with what it printed) or after `timeout`. Errors
/// name the command `line`: engine calls carry long global options that would drown what failed.
pub fn run(command: &mut Command, line: &str, timeout: Duration) -> Result<Finished> {
    interrupt::check()?;
    run_anyway(command, line, timeout)
}

/// Like [`run`], also after Ctrl-C: for cleanup, which must still remove what the run made.
pub fn run_anyway(command: &mut Command, line: &str, timeout: Duration) -> Result<Finished> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let child = command
        .spawn()
        .with_context(|| format!("cannot start `{line}`"))?;
    let pid = child.id();
    let (sender, receiver) = mpsc::channel::<(std::io::Result<Output>, Duration)>();
    std::thread::spawn(move || {
        let output = child.wait_with_output();
        let _ = sender.send((output, started.elapsed()));
    });
    let (output, elapsed) = match receiver.recv_timeout(timeout) {
        Ok(finished) => finished,
        Err(_) => {
            // Still our unreaped child (the thread reaps it), so the PID cannot be reused yet.
            // SAFETY: plain kill(2) on the PID of our own child.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            let _ = receiver.recv_timeout(Duration::from_secs(5));
            bail!("`{line}` did not finish within {timeout:?} (killed)");
        }
    };
    let output = output.map_err(|e| anyhow!("`{line}`: {e}"))?;
    if !output.status.success() {
        // Some failures say why only on stdout (e.g. ping inside `podman exec`).
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let said = [stderr.trim(), stdout.trim()]
            .into_iter()
            .filter(|text| !text.is_empty())
            .collect::<Vec<_>>()
            .join(" / ");
        bail!("`{line}` failed ({}): {said}", output.status);
    }
    Ok(Finished {
        elapsed,
        stdout: String::from_utf8_lossy(&output.stdout).trim().to_string(),
    })
}
