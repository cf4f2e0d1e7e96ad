//! podman with the CNI backend, run inside the bench's host namespace with everything of its own
//! under the bench's directory: storage (vfs), run root, tmp dir and file locks, a private
//! containers.conf (CONTAINERS_CONF) whose `cni_plugin_dirs` is a directory of symlinks (Debian's
//! reference plugins and, for netd, target/release/netd-cni as `netd`), and the CNI
//! configs in a directory of its own.
//!
//! On drop it removes every container (CNI DEL runs then, so netd must still be up), and what
//! podman would leave outside the bench's directory if that failed: the containers' network
//! namespaces in /run/netns and libcni's cached results in /var/lib/cni/results.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _, Result};

use super::exec::{EngineCli, CALL_TIMEOUT, REMOVE_TIMEOUT};
use crate::cmd;
use crate::netns::Netns;

const PODMAN: &str = "/usr/bin/podman";
/// Debian's containernetworking-plugins.
const CNI_PLUGINS: &str = "/usr/lib/cni";
/// What the baseline conflist (the one `podman network create` writes) uses.
const BASELINE_PLUGINS: [&str; 6] = [
    "bridge",
    "portmap",
    "firewall",
    "tuning",
    "host-local",
    "loopback",
];
/// Where libcni caches ADD results (podman 4.3 does not let it be moved).
const CNI_CACHE: &str = "/var/lib/cni/results";

pub struct Podman {
    netns: String,
    dir: PathBuf,
    cgroup_parent: String,
    /// CNI network names, for libcni's cache files.
    networks: Vec<String>,
}

impl Podman {
    pub fn setup(netns: &Netns, dir: PathBuf, cgroup_parent: &str) -> Result<Self> {
        if !Path::new(PODMAN).exists() {
            bail!("{PODMAN} is missing: run `cargo xtask install` (Debian package podman)");
        }
        for sub in ["cni", "cni-bin", "cni-data", "tmp", "root", "runroot"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
        }
        let podman = Self {
            netns: netns.name().to_string(),
            dir,
            cgroup_parent: cgroup_parent.to_string(),
            networks: Vec::new(),
        };
        for plugin in BASELINE_PLUGINS {
            let target = Path::new(CNI_PLUGINS).join(plugin);
            if !target.exists() {
                bail!(
                    "{} is missing: run `cargo xtask install` (Debian package \
                     containernetworking-plugins)",
                    target.display()
                );
            }
            podman.add_plugin(plugin, &target)?;
        }
        let d = podman.dir.display();
        let containers_conf = format!(
            "# Written by `cargo xtask bench` for its own podman; removed after the run.\n\
             [containers]\n\
             default_ulimits = []\n\
             [network]\n\
             network_backend = \"cni\"\n\
             cni_plugin_dirs = [\"{d}/cni-bin\"]\n\
             network_config_dir = \"{d}/cni\"\n\
             [engine]\n\
             cgroup_manager = \"cgroupfs\"\n\
             events_logger = \"file\"\n\
             events_logfile_path = \"{d}/events.log\"\n\
             tmp_dir = \"{d}/tmp\"\n\
             lock_type = \"file\"\n"
        );
        let storage_conf = format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{d}/root\"\nrunroot = \"{d}/runroot\"\n"
        );
        for (file, text) in [
            ("containers.conf", containers_conf),
            ("storage.conf", storage_conf),
        ] {
            let path = podman.dir.join(file);
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(podman)
    }

    /// Makes `target` available to podman as CNI plugin type `name`.
    pub fn add_plugin(&self, name: &str, target: &Path) -> Result<()> {
        let link = self.dir.join("cni-bin").join(name);
        std::os::unix::fs::symlink(target, &link)
            .with_context(|| format!("cannot link {} to {}", link.display(), target.display()))
    }

    /// Writes a CNI network config list; `name` must be the conflist's own "name".
    pub fn add_network(&mut self, name: &str, conflist: &serde_json::Value) -> Result<()> {
        let path = self.dir.join("cni").join(format!("{name}.conflist"));
        std::fs::write(&path, serde_json::to_string_pretty(conflist)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}:\n{conflist}", path.display());
        self.networks.push(name.to_string());
        Ok(())
    }

    pub fn cni_data_dir(&self) -> PathBuf {
        self.dir.join("cni-data")
    }

    /// The network namespaces (bind mounts under /run/netns) of all containers.
    fn sandboxes(&self) -> Vec<PathBuf> {
        let Ok(listed) = self.cleanup_call(&["ps", "-aq"], CALL_TIMEOUT) else {
            return Vec::new();
        };
        let ids: Vec<&str> = listed.stdout.split_whitespace().collect();
        if ids.is_empty() {
            return Vec::new();
        }
        let mut args = vec!["inspect", "--format", "{{.NetworkSettings.SandboxKey}}"];
        args.extend(ids);
        self.cleanup_call(&args, CALL_TIMEOUT)
            .map(|f| f.stdout.lines().map(PathBuf::from).collect())
            .unwrap_or_default()
    }
}

impl EngineCli for Podman {
    const NAME: &'static str = "podman";
    const VERSION_FORMAT: &'static str = "{{.Client.Version}}";
    const REMOVE_OPTIONS: &'static [&'static str] = &["-t", "0"];

    /// `podman <global options of ours> <args>` in the host namespace.
    fn command(&self, args: &[&str]) -> Command {
        let d = &self.dir;
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net=/run/netns/{}", self.netns))
            .arg(PODMAN)
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("runroot"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .args(["--storage-driver", "vfs", "--network-backend", "cni"])
            .arg("--cni-config-dir")
            .arg(d.join("cni"))
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"])
            .env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .args(args);
        command
    }

    /// Its containers go under the bench's cgroup parent.
    fn run_options(&self) -> Vec<&str> {
        vec!["--cgroup-parent", &self.cgroup_parent]
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let sandboxes = self.sandboxes();
        if !sandboxes.is_empty() {
            println!("removing {} podman containers", sandboxes.len());
        }
        if let Err(error) = self.cleanup_call(&["rm", "-f", "-a", "-t", "0"], REMOVE_TIMEOUT) {
            eprintln!("cleanup: {error:#}");
        }
        for sandbox in sandboxes {
            let name = sandbox
                .strip_prefix("/run/netns")
                .ok()
                .and_then(Path::to_str);
            if let (Some(name), true) = (name, sandbox.exists()) {
                eprintln!("cleanup: podman left its netns {name}");
                let _ = cmd::run(&mut cmd::command("ip", ["netns", "del", name]));
            }
        }
        let cached = std::fs::read_dir(CNI_CACHE)
            .map(|entries| entries.filter_map(|e| e.ok()).collect::<Vec<_>>())
            .unwrap_or_default();
        for entry in cached {
            let file = entry.file_name().to_string_lossy().into_owned();
            if self
                .networks
                .iter()
                .any(|network| file.starts_with(&format!("{network}-")))
            {
                eprintln!("cleanup: removing libcni's cached {CNI_CACHE}/{file}");
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}
