//! The engines' host: a "host" namespace where dockerd, podman and the netd daemon run, joined by
//! one veth pair (the uplink netd is told about) to an "outside" namespace that has nothing else.
//! The host's default route points into the outside namespace, so nothing can reach the machine's
//! real network.
//!
//! It also owns everything the engines leave behind at paths of ours, and removes it when
//! dropped, after the engines' own guards ran: processes still in the bench's cgroups or started
//! with the bench's directory on their command line (containerd, shims, conmon), mounts under
//! that directory, the bench's cgroups in every hierarchy, stray files (the plugin socket).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use crate::bench::uplink::Uplink;
use crate::netns::Netns;

/// The uplink in the host namespace; its peer is `eth0` in the outside namespace.
pub const UPLINK: &str = "up0";
const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 214, 8, 1);
const OUTSIDE_IP: Ipv4Addr = Ipv4Addr::new(10, 214, 8, 2);
const HOST_UPLINK: Uplink = Uplink {
    name: UPLINK,
    host_ips: &[HOST_IP],
    outside_ip: OUTSIDE_IP,
    prefix: 24,
};

pub struct EngineHost {
    pub host: Netns,
    _outside: Netns,
    /// The engines' state (data roots, sockets, configs, logs); removed on drop.
    dir: PathBuf,
    /// Cgroup names (relative to each hierarchy's root) the bench's engines put processes in.
    cgroups: Vec<String>,
    /// Files outside `dir` that exist only for this run.
    files: Vec<PathBuf>,
}

impl EngineHost {
    pub fn setup(prefix: &str, dir: PathBuf) -> Result<Self> {
        let host = Netns::create(&format!("{prefix}eh"))?;
        let outside = Netns::create(&format!("{prefix}eo"))?;
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let engine_host = Self {
            host,
            _outside: outside,
            dir,
            cgroups: Vec::new(),
            files: Vec::new(),
        };
        HOST_UPLINK.create(&engine_host.host, &engine_host._outside)?;
        Ok(engine_host)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Records a cgroup name (e.g. an engine's `--cgroup-parent`) to empty and remove on drop.
    pub fn own_cgroup(&mut self, name: &str) {
        self.cgroups.push(name.trim_start_matches('/').to_string());
    }

    /// Records a file outside the bench's directory to remove on drop.
    pub fn own_file(&mut self, path: PathBuf) {
        self.files.push(path);
    }

    /// Creates `<cgroup2 root>/<name>` (removed on drop): netd attaches its socket hooks there
    /// instead of the root, so they never see the machine's other processes.
    pub fn create_cgroup2(&mut self, name: &str) -> Result<PathBuf> {
        let root = hierarchies()
            .into_iter()
            .find(|(_, v2)| *v2)
            .map(|(path, _)| path)
            .context("no cgroup2 mount in /proc/self/mounts")?;
        let path = root.join(name);
        std::fs::create_dir(&path).with_context(|| format!("cannot create {}", path.display()))?;
        self.own_cgroup(name);
        Ok(path)
    }

    /// Processes that belong to this run but outlived their engine: in one of its cgroups, or
    /// started with its directory on the command line. Killed by PID.
    fn kill_leftovers(&self) {
        let mut pids: Vec<u32> = Vec::new();
        for (root, _) in hierarchies() {
            for name in &self.cgroups {
                collect_cgroup_procs(&root.join(name), &mut pids, 0);
            }
        }
        pids.extend(processes_mentioning(&self.dir));
        let me = std::process::id();
        pids.retain(|&pid| pid != me);
        pids.sort_unstable();
        pids.dedup();
        if pids.is_empty() {
            return;
        }
        for &pid in &pids {
            let what = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            eprintln!("cleanup: killing leftover {} (pid {pid})", what.trim());
            // SAFETY: kill(2) on a PID we just found in our own cgroups or with our directory
            // on its command line.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while pids
            .iter()
            .any(|pid| Path::new(&format!("/proc/{pid}")).exists())
            && Instant::now() < deadline
        {
            sleep(Duration::from_millis(50));
        }
    }

    fn remove_cgroups(&self) {
        for (root, _) in hierarchies() {
            for name in &self.cgroups {
                let path = root.join(name);
                if !path.exists() {
                    continue;
                }
                // rmdir fails while the kernel still tears down an exited process's cgroup
                // membership; a few retries suffice.
                let mut removed = false;
                for _ in 0..50 {
                    remove_cgroup_tree(&path, 0);
                    if !path.exists() {
                        removed = true;
                        break;
                    }
                    sleep(Duration::from_millis(100));
                }
                if !removed {
                    eprintln!("cleanup: cannot remove cgroup {}", path.display());
                }
            }
        }
    }
}

impl Drop for EngineHost {
    fn drop(&mut self) {
        self.kill_leftovers();
        let left = unmount_under(&self.dir);
        self.remove_cgroups();
        for file in &self.files {
            if file.exists() {
                if let Err(error) = std::fs::remove_file(file) {
                    eprintln!("cleanup: cannot remove {}: {error}", file.display());
                }
            }
        }
        if left.is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            // Never descend into something still mounted.
            eprintln!(
                "cleanup: {} left in place: still mounted: {}",
                self.dir.display(),
                left.join(", ")
            );
        }
        // Then the namespaces go (the fields drop after this).
    }
}

/// Mount points of cgroup hierarchies, and whether each is cgroup2.
fn hierarchies() -> Vec<(PathBuf, bool)> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_source, target, fstype) = (fields.next()?, fields.next()?, fields.next()?);
            match fstype {
                "cgroup" => Some((PathBuf::from(target), false)),
                "cgroup2" => Some((PathBuf::from(target), true)),
                _ => None,
            }
        })
        .collect()
}

/// PIDs in a cgroup and its descendants (bounded depth: engines nest two or three levels).
fn collect_cgroup_procs(dir: &Path, pids: &mut Vec<u32>, depth: u32) {
    if depth > 8 {
        return;
    }
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        pids.extend(
            text.split_whitespace()
                .filter_map(|pid| pid.parse::<u32>().ok()),
        );
    }
    for child in subdirectories(dir) {
        collect_cgroup_procs(&child, pids, depth + 1);
    }
}

/// rmdir of a cgroup and its descendants, deepest first (cgroups are removed with rmdir only).
fn remove_cgroup_tree(dir: &Path, depth: u32) {
    if depth > 8 {
        return;
    }
    for child in subdirectories(dir) {
        remove_cgroup_tree(&child, depth + 1);
    }
    let _ = std::fs::remove_dir(dir);
}

fn subdirectories(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok())
                .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
                .map(|entry| entry.path())
                .collect()
        })
        .unwrap_or_default()
}

/// PIDs whose command line names `dir` (our unique per-run directory) in any argument.
pub fn processes_mentioning(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                cmdline
                    .split(|&byte| byte == 0)
                    .any(|arg| String::from_utf8_lossy(arg).contains(needle.as_str()))
            })
        })
        .collect()
}

/// Unmounts (lazily, deepest first) every mount point under `dir`; returns those that stay.
fn unmount_under(dir: &Path) -> Vec<String> {
    let mut points = mount_points_under(dir);
    points.sort_by_key(|point| std::cmp::Reverse(point.len()));
    for point in &points {
        println!("unmounting {point}");
        let Ok(path) = std::ffi::CString::new(point.as_str()) else {
            continue;
        };
        // SAFETY: umount2(2) with a valid NUL-terminated path.
        if unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) } != 0 {
            eprintln!(
                "cleanup: cannot unmount {point}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    mount_points_under(dir)
}

fn mount_points_under(dir: &Path) -> Vec<String> {
    let prefix = format!("{}/", dir.to_string_lossy().trim_end_matches('/'));
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mount_path)
        .filter(|point| point.starts_with(&prefix))
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as octal escapes (`\040`).
fn unescape_mount_path(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(index) = rest.find('\\') {
        out.push_str(&rest[..index]);
        let code = rest.get(index + 1..index + 4);
        match code.and_then(|code| u8::from_str_radix(code, 8).ok()) {
            Some(byte) => {
                out.push(byte as char);
                rest = &rest[index + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[index + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo_paths() {
        assert_eq!(unescape_mount_path("/tmp/a\\040b"), "/tmp/a b");
        assert_eq!(unescape_mount_path("/tmp/plain"), "/tmp/plain");
    }
}
