//! Leaving nothing behind: per-test cleanup, sweeping what killed runs left, and making
//! sure bpffs is mounted.
use std::fs::File;
use std::path::Path;

use super::{run, BPFFS_ROOT, BPF_FS_MAGIC, NAME_TAG};

/// Removes every netns (and with it every veth and tc filter) and the bpffs directory of
/// test `id`.
pub(super) fn cleanup(id: &str) {
    let _ = std::fs::remove_dir_all(Path::new(BPFFS_ROOT).join(id));
    let prefix = format!("{id}-");
    if let Ok(dir) = std::fs::read_dir("/run/netns") {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix) {
                let r = run("ip", &["netns", "delete", &name]);
                if !r.success() {
                    eprintln!("cleanup of {id}: {r}");
                }
            }
        }
    }
}

/// The pid encoded in a name of this suite (`ndt<hex pid>x<n>...`).
fn tag_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(NAME_TAG)?;
    let (hex, tail) = rest.split_once('x')?;
    let n_end = tail
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(tail.len());
    if n_end == 0 || !(tail.len() == n_end || tail[n_end..].starts_with('-')) {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

/// Removes what earlier, killed runs of this suite left behind (their pid is gone).
pub(super) fn sweep_stale() {
    let mut ids = std::collections::BTreeSet::new();
    for dir in ["/run/netns", BPFFS_ROOT] {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = tag_pid(&name) {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    let id = name.split('-').next().unwrap_or(&name).to_string();
                    ids.insert(id);
                }
            }
        }
    }
    for id in ids {
        eprintln!("netd-tests: removing leftovers of dead run {id}");
        cleanup(&id);
    }
}

fn fs_magic(path: &str) -> Option<i64> {
    let c = std::ffi::CString::new(path).ok()?;
    // SAFETY: statfs(2) with a valid C string and a zeroed out-struct.
    unsafe {
        let mut s: libc::statfs = std::mem::zeroed();
        (libc::statfs(c.as_ptr(), &mut s) == 0).then_some(s.f_type as i64)
    }
}

/// Mounts bpffs on /sys/fs/bpf if nothing is mounted there yet (serialized across test
/// processes with a lock file so two runs never stack mounts).
pub(super) fn ensure_bpffs() {
    if fs_magic(BPFFS_ROOT) == Some(BPF_FS_MAGIC) {
        return;
    }
    let lock = File::create("/tmp/netd-tests-bpffs.lock").expect("create bpffs lock");
    use std::os::fd::AsRawFd;
    // SAFETY: flock(2) on a file we own; released when `lock` is dropped.
    unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    if fs_magic(BPFFS_ROOT) != Some(BPF_FS_MAGIC) {
        let r = run("mount", &["-t", "bpf", "bpf", BPFFS_ROOT]);
        assert!(r.success(), "cannot mount bpffs on {BPFFS_ROOT}: {r}");
    }
    assert_eq!(
        fs_magic(BPFFS_ROOT),
        Some(BPF_FS_MAGIC),
        "{BPFFS_ROOT} is not bpffs"
    );
}

#[cfg(test)]
mod tests {
    use super::tag_pid;

    #[test]
    fn tags_parse() {
        assert_eq!(tag_pid("ndt1f2ax3"), Some(0x1f2a));
        assert_eq!(tag_pid("ndt1f2ax3-h"), Some(0x1f2a));
        assert_eq!(tag_pid("ndt1f2ax-h"), None);
        assert_eq!(tag_pid("ndtzzx3"), None);
        assert_eq!(tag_pid("nd3fa9c1e2b4d0"), None);
        assert_eq!(tag_pid("ndt12x3y"), None);
    }
}
