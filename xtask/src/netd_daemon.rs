//! A throwaway netd daemon with its own state dir, socket and bpffs pins, driven through the CLI.
//! Used by the demo and the bench; it stops the daemon by PID and removes its files when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _, Result};

use crate::netns::Netns;
use crate::process::Background;
use crate::{cmd, interrupt};

/// How long the daemon may take to create its socket and answer.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct NetdDaemon {
    bin: PathBuf,
    socket: PathBuf,
    /// Holds the state store, the socket and the daemon's log; removed on drop.
    work_dir: PathBuf,
    /// This daemon's pin directory; removing it detaches whatever the daemon left attached.
    bpffs: PathBuf,
    process: Option<Background>,
}

impl NetdDaemon {
    /// Starts `netd daemon` in the current netns, or in `/run/netns/<netns>` through nsenter
    /// (not `ip netns exec`, which remounts /sys and hides bpffs), and waits until it answers.
    pub fn start(
        bin: &Path,
        work_dir: PathBuf,
        bpffs: PathBuf,
        netns: Option<&str>,
    ) -> Result<Self> {
        Self::start_with_args(bin, work_dir, bpffs, netns, &[])
    }

    /// Like [`NetdDaemon::start`], with further daemon flags after the ones every daemon gets
    /// (e.g. `--uplink`, which the bench must always name: the default is the host's route).
    pub fn start_with_args(
        bin: &Path,
        work_dir: PathBuf,
        bpffs: PathBuf,
        netns: Option<&str>,
        extra_args: &[String],
    ) -> Result<Self> {
        std::fs::create_dir_all(&work_dir)
            .with_context(|| format!("cannot create {}", work_dir.display()))?;
        let mut daemon = Self {
            bin: bin.to_path_buf(),
            socket: work_dir.join("netd.sock"),
            work_dir,
            bpffs,
            process: None,
        };
        let mut command = match netns {
            Some(netns) => {
                let mut nsenter = Command::new("nsenter");
                nsenter.arg(format!("--net=/run/netns/{netns}")).arg(bin);
                nsenter
            }
            None => Command::new(bin),
        };
        command
            .arg("daemon")
            .arg("--state-dir")
            .arg(daemon.work_dir.join("state"))
            .arg("--socket")
            .arg(&daemon.socket)
            .arg("--bpffs")
            .arg(&daemon.bpffs)
            .args(extra_args);
        let log = daemon.work_dir.join("daemon.log");
        daemon.process = Some(Background::spawn("netd daemon", &mut command, &log)?);
        daemon.wait_until_ready()?;
        Ok(daemon)
    }

    /// Runs the CLI, printing the command and what it printed.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        interrupt::check()?;
        let output = cmd::output(&mut self.cli_command(args)).map_err(|e| self.with_log(e))?;
        print!("{output}");
        Ok(output)
    }

    /// Best-effort cleanup through the daemon (so it can clean its maps): removes the
    /// sandboxes, then the networks, reporting failures and going on. Does nothing if the
    /// daemon is gone; the callers' guards remove what is left.
    pub fn remove_all(&mut self, sandboxes: &[Netns], networks: &[&str]) {
        if !self.is_running() {
            return;
        }
        let sandbox_rms = sandboxes.iter().map(|s| ["sandbox", "rm", s.name()]);
        let network_rms = networks.iter().map(|n| ["network", "rm", n]);
        for args in sandbox_rms.chain(network_rms) {
            if let Err(error) = self.cli(&args) {
                eprintln!("cleanup: {error:#}");
            }
        }
    }

    /// Runs the CLI silently: for timing loops, where printing would be noise.
    pub fn cli_quiet(&self, args: &[&str]) -> Result<String> {
        interrupt::check()?;
        cmd::capture(&mut self.cli_command(args))
    }

    /// The daemon's PID (nsenter execs it, so it is the daemon itself), e.g. to read its RSS.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Background::pid)
    }

    /// The daemon's API socket (e.g. for a CNI config that names it).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn is_running(&mut self) -> bool {
        self.process
            .as_mut()
            .is_some_and(|p| p.ensure_running().is_ok())
    }

    fn cli_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.bin);
        command.arg("--socket").arg(&self.socket).args(args);
        command
    }

    /// Polls for the socket and a successful `network ls`, as the contract describes readiness.
    fn wait_until_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            interrupt::check()?;
            if let Some(Err(exited)) = self.process.as_mut().map(Background::ensure_running) {
                return Err(self.with_log(exited));
            }
            if self.socket.exists()
                && cmd::succeeds(&mut self.cli_command(&["network", "ls", "-q"]))
            {
                println!("daemon is ready");
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.with_log(anyhow!("daemon not ready after {READY_TIMEOUT:?}")));
            }
            sleep(Duration::from_millis(100));
        }
    }

    /// Adds the end of the daemon's log to an error: the log is the only clue when the daemon fails.
    pub fn with_log(&self, error: anyhow::Error) -> anyhow::Error {
        let log = std::fs::read_to_string(self.work_dir.join("daemon.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        if tail.is_empty() {
            error
        } else {
            error.context(format!("daemon log (last lines):\n{tail}"))
        }
    }

    /// Stops the daemon (SIGTERM by PID, SIGKILL after 10 s). Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop(Duration::from_secs(10));
        }
    }
}

impl Drop for NetdDaemon {
    fn drop(&mut self) {
        self.stop();
        if self.bpffs.exists() {
            println!("removing pins under {}", self.bpffs.display());
            if let Err(error) = std::fs::remove_dir_all(&self.bpffs) {
                eprintln!("cleanup: cannot remove {}: {error}", self.bpffs.display());
            }
        }
        let _ = std::fs::remove_dir_all(&self.work_dir);
    }
}
