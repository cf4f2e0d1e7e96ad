//! A cgroup v2 directory of the bench's own: netd's socket hooks are attached there instead of
//! the root, so they see only the bench's clients, never other processes of the machine.

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

use anyhow::{Context as _, Result};

pub struct Cgroup {
    path: PathBuf,
}

impl Cgroup {
    /// Creates `<cgroup2 mount>/<name>`; the mount is read from /proc/self/mounts, because it is
    /// /sys/fs/cgroup on unified hosts and /sys/fs/cgroup/unified on hybrid ones (like this VM).
    pub fn create(name: &str) -> Result<Self> {
        let mounts = std::fs::read_to_string("/proc/self/mounts")
            .context("cannot read /proc/self/mounts")?;
        let root = mounts
            .lines()
            .find_map(|line| {
                let mut fields = line.split_whitespace();
                let (_source, target, fstype) = (fields.next(), fields.next(), fields.next());
                (fstype == Some("cgroup2")).then_some(PathBuf::from(target?))
            })
            .context("no cgroup2 mount in /proc/self/mounts")?;
        let path = root.join(name);
        std::fs::create_dir(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Cgroup {
    /// rmdir fails while a process is still inside; clients end within their `timeout`, so a
    /// few retries suffice.
    fn drop(&mut self) {
        for _ in 0..50 {
            if std::fs::remove_dir(&self.path).is_ok() || !self.path.exists() {
                return;
            }
            sleep(Duration::from_millis(100));
        }
        eprintln!("cleanup: cannot remove cgroup {}", self.path.display());
    }
}
