//! A private dockerd inside the bench's host namespace: its own data root, exec root, pidfile,
//! API socket and config file under the bench's directory, the vfs storage driver, `--bip` on a
//! private subnet and its containers under a cgroup parent of the bench's. Driven with Debian's
//! /usr/bin/docker (20.10, the daemon's version; /usr/local/bin/docker may be another one).
//!
//! On drop it removes every container and user-defined network (through dockerd, so that
//! drivers and docker-proxy processes clean up), then stops dockerd by its PID; dockerd stops
//! the containerd it started. What still runs after that is the [`super::host::EngineHost`]'s
//! to kill.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};

use super::exec;
use super::host;
use crate::netns::Netns;
use crate::process::Background;
use crate::{cmd, interrupt};

const DOCKERD: &str = "/usr/sbin/dockerd";
const DOCKER: &str = "/usr/bin/docker";
const SYSTEM_CONTAINERD: &str = "/run/containerd/containerd.sock";
/// dockerd's start (containerd included) on a slow machine.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Any one docker CLI call; a container start normally takes well under a second.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Removing many containers at once (each with up to 200 docker-proxy processes).
const REMOVE_TIMEOUT: Duration = Duration::from_secs(180);

pub struct Dockerd {
    dir: PathBuf,
    socket: PathBuf,
    process: Option<Background>,
}

impl Dockerd {
    /// Starts dockerd in `netns` (nsenter execs it, so the PID is dockerd's) and waits until its
    /// API answers.
    pub fn start(netns: &Netns, dir: PathBuf, bip: &str, cgroup_parent: &str) -> Result<Self> {
        for program in [DOCKERD, DOCKER] {
            if !Path::new(program).exists() {
                bail!("{program} is missing: run `cargo xtask install` (Debian package docker.io)");
            }
        }
        // dockerd 20.10 uses a running system containerd instead of starting its own: the
        // bench's containers would then be the machine's containerd's.
        if Path::new(SYSTEM_CONTAINERD).exists() {
            bail!("{SYSTEM_CONTAINERD} exists: dockerd would use the machine's containerd instead of its own");
        }
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        // An empty config file of its own: /etc/docker/daemon.json must not change the setup.
        let config = dir.join("daemon.json");
        std::fs::write(&config, "{}\n")
            .with_context(|| format!("cannot write {}", config.display()))?;
        let mut dockerd = Self {
            socket: dir.join("docker.sock"),
            dir,
            process: None,
        };
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net=/run/netns/{}", netns.name()))
            .arg(DOCKERD)
            .arg("--data-root")
            .arg(dockerd.dir.join("data"))
            .arg("--exec-root")
            .arg(dockerd.dir.join("exec"))
            .arg("--pidfile")
            .arg(dockerd.dir.join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", dockerd.socket.display()))
            .arg("--config-file")
            .arg(&config)
            .args(["--storage-driver", "vfs", "--bip", bip])
            .args(["--cgroup-parent", cgroup_parent]);
        let log = dockerd.dir.join("dockerd.log");
        dockerd.process = Some(Background::spawn("dockerd", &mut command, &log)?);
        dockerd.wait_until_ready()?;
        Ok(dockerd)
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Background::pid)
    }

    /// `/usr/bin/docker -H unix://<socket> <args>`.
    fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut command = Command::new(DOCKER);
        command
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args);
        command
    }

    /// Runs `docker <args>` silently, bounded; errors name it without `-H`.
    fn call(&self, args: &[&str], timeout: Duration) -> Result<exec::Finished> {
        let label = format!("docker {}", args.join(" "));
        exec::run(&mut self.command(args), &label, timeout)
    }

    /// Like `call`, also after Ctrl-C: cleanup must still run.
    fn cleanup_call(&self, args: &[&str], timeout: Duration) -> Result<exec::Finished> {
        let label = format!("docker {}", args.join(" "));
        exec::run_anyway(&mut self.command(args), &label, timeout)
    }

    /// A setup step: printed, bounded, with dockerd's log on failure.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        println!("$ {}", cmd::display(&self.command(args)));
        let stdout = self
            .call(args, CALL_TIMEOUT)
            .map_err(|e| self.with_log(e))?
            .stdout;
        if !stdout.is_empty() {
            println!("{stdout}");
        }
        Ok(stdout)
    }

    /// `docker run -d <args>`, timed (wall time of the CLI call); returns the container ID.
    pub fn run_detached(&self, args: &[&str]) -> Result<(Duration, String)> {
        let mut all = vec!["run", "-d"];
        all.extend(args);
        let finished = self.call(&all, CALL_TIMEOUT)?;
        let id = finished
            .stdout
            .lines()
            .last()
            .unwrap_or_default()
            .to_string();
        if id.is_empty() {
            bail!("`docker run -d` printed no container ID");
        }
        Ok((finished.elapsed, id))
    }

    /// `docker rm -f` of these containers (untimed).
    pub fn remove(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut args = vec!["rm", "-f"];
        args.extend(ids.iter().map(String::as_str));
        self.call(&args, REMOVE_TIMEOUT)?;
        Ok(())
    }

    /// The docker-proxy processes dockerd runs (its children), with their RSS in MiB.
    pub fn proxies(&self) -> Vec<(u32, f64)> {
        let Some(dockerd) = self.pid() else {
            return Vec::new();
        };
        children_of(dockerd)
            .into_iter()
            .filter(|&pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|comm| comm.trim() == "docker-proxy")
            })
            .map(|pid| (pid, rss_mib(pid).unwrap_or(0.0)))
            .collect()
    }

    /// The daemon's version, e.g. "20.10.24+dfsg1".
    pub fn version(&self) -> String {
        self.call(
            &["version", "--format", "{{.Server.Version}}"],
            CALL_TIMEOUT,
        )
        .map(|f| f.stdout)
        .unwrap_or_else(|e| format!("unknown ({e:#})"))
    }

    fn wait_until_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            interrupt::check()?;
            if let Some(Err(exited)) = self.process.as_mut().map(Background::ensure_running) {
                return Err(self.with_log(exited));
            }
            if self.socket.exists() && self.call(&["version"], Duration::from_secs(10)).is_ok() {
                println!("dockerd is ready");
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.with_log(anyhow!("dockerd not ready after {READY_TIMEOUT:?}")));
            }
            sleep(Duration::from_millis(200));
        }
    }

    /// Adds the end of dockerd's log (without the gRPC chatter) to an error.
    pub fn with_log(&self, error: anyhow::Error) -> anyhow::Error {
        let log = std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log
            .lines()
            .filter(|line| !line.contains("module=grpc"))
            .collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n");
        if tail.is_empty() {
            error
        } else {
            error.context(format!("dockerd log (last lines):\n{tail}"))
        }
    }

    /// Removes all containers and user-defined networks, reporting failures and going on.
    fn remove_all(&self) {
        let listed = self.cleanup_call(&["ps", "-aq"], CALL_TIMEOUT);
        match listed {
            Ok(listed) => {
                let ids: Vec<&str> = listed.stdout.split_whitespace().collect();
                if !ids.is_empty() {
                    println!("removing {} docker containers", ids.len());
                    let mut args = vec!["rm", "-f"];
                    args.extend(ids);
                    if let Err(error) = self.cleanup_call(&args, REMOVE_TIMEOUT) {
                        eprintln!("cleanup: {error:#}");
                    }
                }
            }
            Err(error) => eprintln!("cleanup: {error:#}"),
        }
        println!("$ docker network prune -f");
        if let Err(error) = self.cleanup_call(&["network", "prune", "-f"], CALL_TIMEOUT) {
            eprintln!("cleanup: {error:#}");
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let Some(mut process) = self.process.take() else {
            return;
        };
        if process.ensure_running().is_ok() {
            self.remove_all();
        }
        // dockerd stops its containerd on SIGTERM; without containers that takes a second.
        process.stop(Duration::from_secs(30));
        // Should dockerd have died without stopping it, its containerd (and any shim) has our
        // exec root in its command line: the EngineHost kills it then. Say so here, where it is
        // clear why.
        let left = host::processes_mentioning(&self.dir.join("exec"));
        if !left.is_empty() {
            eprintln!("dockerd left processes behind: {left:?} (killed at cleanup)");
        }
    }
}

/// Direct children of `parent`, from /proc/*/stat (dockerd spawns from many threads, so the
/// per-thread `children` files would each show only some).
pub fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| parent_pid(&stat))
                == Some(parent)
        })
        .collect()
}

/// The PPID field of /proc/PID/stat; the command name before it may contain spaces and
/// parentheses, so parsing starts after the last ')'.
fn parent_pid(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Resident memory of a process in MiB (None once it is gone).
pub fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_parent_pid() {
        assert_eq!(parent_pid("42 (docker-proxy) S 7 42 42 0"), Some(7));
        assert_eq!(parent_pid("43 (a) b) S 9 43"), Some(9));
        assert_eq!(parent_pid("garbage"), None);
    }
}
