//! The cgroup socket hooks (connect4, sendmsg4, recvmsg4, getpeername4): attached as bpf
//! links and pinned under `<bpffs>/links`, so they outlive the daemon like the maps. A
//! restarted daemon attaches its freshly loaded programs and renames the new pins over
//! the old ones: the old links lose their last reference and detach, with no moment
//! where no hook runs (both rewrite alike, and the second finds nothing left to do).

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use aya::programs::links::FdLink;
use aya::programs::{CgroupAttachMode, CgroupSockAddr};
use aya::Ebpf;

use super::loader::SOCK_PROGRAMS;

/// Subdirectory of `<bpffs>` holding the link pins.
pub const LINKS_DIR: &str = "links";

/// statfs magic of a cgroup2 mount (linux/magic.h).
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// The cgroup2 root: /sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on hybrid ones.
pub fn cgroup2_root() -> anyhow::Result<PathBuf> {
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| is_cgroup2(p))
        .context(
            "no cgroup2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified; name one with --cgroup",
        )
}

fn is_cgroup2(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|fs| fs.filesystem_type().0 == CGROUP2_SUPER_MAGIC)
}

pub fn attach(ebpf: &mut Ebpf, cgroup: &Path, bpffs: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        is_cgroup2(cgroup),
        "{} is not a cgroup v2 directory (the socket hooks need one)",
        cgroup.display()
    );
    let cgroup_dir =
        File::open(cgroup).with_context(|| format!("opening cgroup {}", cgroup.display()))?;
    let links_dir = bpffs.join(LINKS_DIR);
    std::fs::create_dir_all(&links_dir)
        .with_context(|| format!("creating {}", links_dir.display()))?;
    for name in SOCK_PROGRAMS {
        let prog: &mut CgroupSockAddr = ebpf
            .program_mut(name)
            .with_context(|| format!("{name} missing from the object"))?
            .try_into()?;
        // Links on a cgroup always allow others beside them; the mode must be "single" (0).
        let id = prog
            .attach(&cgroup_dir, CgroupAttachMode::Single)
            .with_context(|| format!("attaching {name} to cgroup {}", cgroup.display()))?;
        let link: FdLink = prog
            .take_link(id)?
            .try_into()
            .with_context(|| format!("{name}: the kernel gave no bpf link"))?;
        let pin = links_dir.join(name);
        // bpffs refuses names with a dot.
        let staged = links_dir.join(format!("{name}_new"));
        let _ = std::fs::remove_file(&staged);
        link.pin(&staged)
            .with_context(|| format!("pinning {}", staged.display()))?;
        std::fs::rename(&staged, &pin).with_context(|| format!("replacing {}", pin.display()))?;
    }
    Ok(())
}
