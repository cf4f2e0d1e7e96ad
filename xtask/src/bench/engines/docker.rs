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
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

use super::exec::{EngineCli, CALL_TIMEOUT, REMOVE_TIMEOUT};
use super::host;
use crate::bench::procfs::rss_mib;
use crate::netd_daemon::{wait_until_ready, with_log_tail};
use crate::netns::Netns;
use crate::process::Background;

const DOCKERD: &str = "/usr/sbin/dockerd";
const DOCKER: &str = "/usr/bin/docker";
const SYSTEM_CONTAINERD: &str = "/run/containerd/containerd.sock";
/// dockerd's start (containerd included) on a slow machine.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

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
        let mut process = Background::spawn("dockerd", &mut command, &log)?;
        let ready = wait_until_ready(
            "dockerd",
            &mut process,
            READY_TIMEOUT,
            Duration::from_millis(200),
            || {
                dockerd.socket.exists()
                    && dockerd.call(&["version"], Duration::from_secs(10)).is_ok()
            },
            |error| dockerd.explain(error),
        );
        // Held before failing, so that Drop stops it.
        dockerd.process = Some(process);
        ready?;
        Ok(dockerd)
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Background::pid)
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

impl EngineCli for Dockerd {
    const NAME: &'static str = "docker";
    /// The daemon's version, e.g. "20.10.24+dfsg1".
    const VERSION_FORMAT: &'static str = "{{.Server.Version}}";

    /// `/usr/bin/docker -H unix://<socket> <args>`.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(DOCKER);
        command
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args);
        command
    }

    /// Adds the end of dockerd's log (without the gRPC chatter) to an error.
    fn explain(&self, error: anyhow::Error) -> anyhow::Error {
        let log = self.dir.join("dockerd.log");
        with_log_tail(error, "dockerd", &log, 15, |line| {
            !line.contains("module=grpc")
        })
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
