//! Engine CLI calls (docker, podman) with a deadline and their wall time, and what both engines'
//! CLIs offer the bench ([`EngineCli`]).
//!
//! A hung engine must not stall the bench: each call runs in a thread that waits for it, and the
//! caller gives up after a timeout, killing that one child by its PID. The wall time is taken
//! from just before the spawn to the moment the child exits, the same way for every side.

use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};

use crate::{cmd, interrupt};

/// Any one engine CLI call; a container start normally takes well under a second.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Removing many containers at once (each with up to 200 docker-proxy processes).
pub const REMOVE_TIMEOUT: Duration = Duration::from_secs(180);

/// An engine's CLI, with global options that point it at the bench's own daemon or state.
pub trait EngineCli {
    /// How messages name the program: the global options would drown what failed.
    const NAME: &'static str;
    /// The `version --format` template for the version worth reporting.
    const VERSION_FORMAT: &'static str;
    /// What `rm -f` takes besides the container IDs.
    const REMOVE_OPTIONS: &'static [&'static str] = &[];

    /// `<program> <global options> <args>`.
    fn command(&self, args: &[&str]) -> Command;

    /// What `run -d` takes before the caller's arguments.
    fn run_options(&self) -> Vec<&str> {
        Vec::new()
    }

    /// Adds what the engine logged to a failed setup step, where it keeps a log of ours.
    fn explain(&self, error: anyhow::Error) -> anyhow::Error {
        error
    }

    /// Runs `<NAME> <args>` silently, bounded.
    fn call(&self, args: &[&str], timeout: Duration) -> Result<Finished> {
        let line = format!("{} {}", Self::NAME, args.join(" "));
        run(&mut self.command(args), &line, timeout)
    }

    /// Like `call`, also after Ctrl-C: cleanup must still run.
    fn cleanup_call(&self, args: &[&str], timeout: Duration) -> Result<Finished> {
        let line = format!("{} {}", Self::NAME, args.join(" "));
        run_anyway(&mut self.command(args), &line, timeout)
    }

    /// A setup step: printed and bounded.
    fn cli(&self, args: &[&str]) -> Result<String> {
        println!("$ {}", cmd::display(&self.command(args)));
        let stdout = self
            .call(args, CALL_TIMEOUT)
            .map_err(|e| self.explain(e))?
            .stdout;
        if !stdout.is_empty() {
            println!("{stdout}");
        }
        Ok(stdout)
    }

    /// `run -d <args>`, timed (wall time of the CLI call); returns the container ID.
    fn run_detached(&self, args: &[&str]) -> Result<(Duration, String)> {
        let mut all = vec!["run", "-d"];
        all.extend(self.run_options());
        all.extend(args);
        let finished = self.call(&all, CALL_TIMEOUT)?;
        let id = finished
            .stdout
            .lines()
            .last()
            .unwrap_or_default()
            .to_string();
        if id.is_empty() {
            bail!("`{} run -d` printed no container ID", Self::NAME);
        }
        Ok((finished.elapsed, id))
    }

    /// `rm -f` of these containers (untimed).
    fn remove(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut args = vec!["rm", "-f"];
        args.extend(Self::REMOVE_OPTIONS);
        args.extend(ids.iter().map(String::as_str));
        self.call(&args, REMOVE_TIMEOUT)?;
        Ok(())
    }

    fn version(&self) -> String {
        self.call(&["version", "--format", Self::VERSION_FORMAT], CALL_TIMEOUT)
            .map(|f| f.stdout)
            .unwrap_or_else(|e| format!("unknown ({e:#})"))
    }
}

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
