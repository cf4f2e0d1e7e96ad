//! A throwaway netd daemon with its own state dir, socket and bpffs pins, driven through the CLI.
//! Used by the demo and the bench; it stops the daemon by PID and removes its files when dropped.
//! How it waits for the daemon and reports its log serves the bench's dockerd too.

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
        let mut process = Background::spawn("netd daemon", &mut command, &log)?;
        // Polls for the socket and a successful `network ls`, as the contract describes readiness.
        let ready = wait_until_ready(
            "daemon",
            &mut process,
            READY_TIMEOUT,
            Duration::from_millis(100),
            || {
                daemon.socket.exists()
                    && cmd::succeeds(&mut daemon.cli_command(&["network", "ls", "-q"]))
            },
            |error| daemon.with_log(error),
        );
        // Held before failing, so that Drop stops it.
        daemon.process = Some(process);
        ready?;
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

    /// Adds the end of the daemon's log to an error: the log is the only clue when the daemon fails.
    pub fn with_log(&self, error: anyhow::Error) -> anyhow::Error {
        with_log_tail(
            error,
            "daemon",
            &self.work_dir.join("daemon.log"),
            20,
            |_| true,
        )
    }

    /// Stops the daemon (SIGTERM by PID, SIGKILL after 10 s). Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop(Duration::from_secs(10));
        }
    }
}

/// Polls until `answers` holds, every `poll`. Fails through `with_log` if `process` exits first
/// or after `timeout`; not on Ctrl-C, which is no fault of the daemon.
pub fn wait_until_ready(
    name: &str,
    process: &mut Background,
    timeout: Duration,
    poll: Duration,
    answers: impl Fn() -> bool,
    with_log: impl Fn(anyhow::Error) -> anyhow::Error,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        interrupt::check()?;
        if let Err(exited) = process.ensure_running() {
            return Err(with_log(exited));
        }
        if answers() {
            println!("{name} is ready");
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(with_log(anyhow!("{name} not ready after {timeout:?}")));
        }
        sleep(poll);
    }
}

/// Adds the last `count` lines of `log` that `keep` accepts to an error, as `name`'s log.
pub fn with_log_tail(
    error: anyhow::Error,
    name: &str,
    log: &Path,
    count: usize,
    keep: impl Fn(&str) -> bool,
) -> anyhow::Error {
    let log = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = log.lines().filter(|line| keep(line)).collect();
    let tail = lines[lines.len().saturating_sub(count)..].join("\n");
    if tail.is_empty() {
        error
    } else {
        error.context(format!("{name} log (last lines):\n{tail}"))
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
