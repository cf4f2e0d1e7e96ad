//! `cargo xtask install`: installs what a fresh Debian 12 machine lacks, idempotently.
//! Every item says either "present" or what it installs; anything that cannot be installed fails the run.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context as _, Result};

use crate::cmd;

/// Debian packages: the LLVM that bpf-linker links against, and the tools tests, demo and bench run.
const APT_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "iputils-ping",
    "ethtool",
    "iperf3",
    "sockperf",
    "bpftool",
    "tcpdump",
    "iptables",
    "iproute2",
    "util-linux", // nsenter
    // Container engines for the Docker/CNI/podman integration tests. Installed without
    // starting their services (see [`NoServiceStarts`]): the tests run their own dockerd.
    "docker.io", // dockerd, containerd, runc, the docker CLI and docker-proxy
    "podman",
    "busybox-static", // the only image the tests use (no registry needed)
    "containernetworking-plugins", // CNI bridge/portmap/host-local in /usr/lib/cni
    // The cluster store of the overlay tests and bench (they start their own etcd), and
    // protoc, which the etcd client crate needs to build.
    "etcd-server",
    "etcd-client", // etcdctl
    "protobuf-compiler",
];

/// bpf-linker must be built against LLVM 22 (not older than nightly rustc's LLVM); see shared/TOOLCHAIN.md.
const LLVM_BIN: &str = "/usr/lib/llvm-22/bin";
const BPF_LINKER_VERSION: &str = "0.13.0";
const BPFFS: &str = "/sys/fs/bpf";

/// Debian's hook that invoke-rc.d asks before starting a service; exit 101 means "not now".
const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";
/// podman's settings: its runc cannot raise rlimits here, so the default ulimits must be empty.
const CONTAINERS_CONF: &str = "/etc/containers/containers.conf";
/// The busybox-static binary (Debian puts it in /bin).
const BUSYBOX: &str = "/bin/busybox";
/// Root filesystem tarball of the tests' only container image (`docker import`, `podman import`);
/// the test harness reads the same path (tests/src/harness/engines.rs).
pub const BUSYBOX_TAR: &str = "/var/cache/netd-tests/busybox-rootfs.tar";
/// Applets the tests use; every other applet busybox knows is linked as well.
const BUSYBOX_APPLETS: &[&str] = &[
    "sh", "ping", "nc", "wget", "httpd", "hostname", "ip", "ifconfig", "nslookup", "sleep", "cat",
    "echo", "ls", "ps", "kill", "true", "false", "udhcpc", "route",
];

pub fn run() -> Result<()> {
    println!("== install: checking what this machine lacks");
    nightly_rust_src()?;
    apt_packages()?;
    docker_proxy()?;
    containers_conf()?;
    busybox_image()?;
    bpf_linker()?;
    bpffs_mounted()?;
    println!("== install: done");
    Ok(())
}

/// `-Z build-std=core` for the BPF target needs the standard library's source.
fn nightly_rust_src() -> Result<()> {
    let installed = cmd::capture(&mut cmd::command(
        "rustup",
        ["component", "list", "--toolchain", "nightly", "--installed"],
    ))
    .context("the `nightly` toolchain is needed for the eBPF crate")?;
    if installed.lines().any(|line| line.starts_with("rust-src")) {
        println!("rust-src (nightly): present");
        return Ok(());
    }
    println!("rust-src (nightly): installing");
    cmd::run(&mut cmd::command(
        "rustup",
        ["component", "add", "rust-src", "--toolchain", "nightly"],
    ))
}

fn apt_packages() -> Result<()> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|package| {
            let present = is_deb_installed(package);
            if present {
                println!("{package}: present");
            }
            !present
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!("installing Debian packages: {}", missing.join(" "));
    // Only refresh the package lists when something must be installed: keeps reruns fast and offline-safe.
    cmd::run(apt_get().arg("update"))?;
    {
        let _no_starts = NoServiceStarts::new()?;
        cmd::run(
            apt_get()
                .args(["install", "-y", "--no-install-recommends"])
                .args(&missing),
        )?;
    }
    let still_missing: Vec<&str> = missing
        .into_iter()
        .filter(|p| !is_deb_installed(p))
        .collect();
    if !still_missing.is_empty() {
        bail!("apt-get did not install: {}", still_missing.join(" "));
    }
    Ok(())
}

fn apt_get() -> Command {
    let mut apt = Command::new("apt-get");
    apt.env("DEBIAN_FRONTEND", "noninteractive");
    apt
}

/// A temporary `policy-rc.d` that forbids starting services (docker.io and containerd would
/// start theirs in the machine's own network namespace otherwise). Removed on drop, also after a
/// failed apt-get, and only if this run created it.
struct NoServiceStarts {
    /// The file this run wrote, to remove on drop.
    created: Option<std::path::PathBuf>,
}

impl NoServiceStarts {
    fn new() -> Result<Self> {
        Self::at(Path::new(POLICY_RC_D))
    }

    fn at(path: &Path) -> Result<Self> {
        if path.exists() {
            println!("{}: present, left as it is", path.display());
            return Ok(NoServiceStarts { created: None });
        }
        println!(
            "{}: writing `exit 101` while apt-get runs (no service starts)",
            path.display()
        );
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o755)
            .open(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let guard = NoServiceStarts {
            created: Some(path.to_path_buf()),
        };
        f.write_all(b"#!/bin/sh\n# written by `cargo xtask install` for the duration of apt-get\nexit 101\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        // invoke-rc.d runs it: executable whatever the umask.
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
        Ok(guard)
    }
}

impl Drop for NoServiceStarts {
    fn drop(&mut self) {
        if let Some(path) = self.created.take() {
            match std::fs::remove_file(&path) {
                Ok(()) => println!("{}: removed", path.display()),
                Err(e) => eprintln!("cannot remove {}: {e}", path.display()),
            }
        }
    }
}

fn is_deb_installed(package: &str) -> bool {
    cmd::capture(&mut cmd::command(
        "dpkg-query",
        ["-W", "-f=${Status}", package],
    ))
    .is_ok_and(|status| status.trim() == "install ok installed")
}

/// Where the bench finds docker-proxy: Debian's docker.io path first; the second path is where
/// earlier versions of this command extracted it, still honoured on machines that have it.
pub const DOCKER_PROXIES: [&str; 2] = ["/usr/sbin/docker-proxy", "/usr/local/sbin/docker-proxy"];

/// The bench's localhost baseline runs `docker-proxy` by itself; docker.io (an [`APT_PACKAGES`]
/// entry) ships it.
fn docker_proxy() -> Result<()> {
    match DOCKER_PROXIES.iter().find(|path| Path::new(path).exists()) {
        Some(path) => {
            println!("docker-proxy: present ({path})");
            Ok(())
        }
        None => {
            bail!("docker-proxy is in none of {DOCKER_PROXIES:?} although docker.io is installed")
        }
    }
}

/// podman's runc cannot raise rlimits on this kind of machine: `default_ulimits = []` in
/// `[containers]`, added only when the file does not set `default_ulimits` yet.
fn containers_conf() -> Result<()> {
    let current = match std::fs::read_to_string(CONTAINERS_CONF) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {CONTAINERS_CONF}")),
    };
    let Some(text) = with_default_ulimits(&current) else {
        println!("{CONTAINERS_CONF} default_ulimits: present");
        return Ok(());
    };
    println!("{CONTAINERS_CONF}: adding `default_ulimits = []` to [containers]");
    std::fs::create_dir_all("/etc/containers")?;
    std::fs::write(CONTAINERS_CONF, text).with_context(|| format!("cannot write {CONTAINERS_CONF}"))
}

/// `current` with `default_ulimits = []` added to its `[containers]` table (created at the
/// end if missing); `None` if it already sets `default_ulimits`.
fn with_default_ulimits(current: &str) -> Option<String> {
    let sets_ulimits = current.lines().any(|line| {
        let line = line.trim_start();
        !line.starts_with('#') && line.split('=').next().map(str::trim) == Some("default_ulimits")
    });
    if sets_ulimits {
        return None;
    }
    let mut lines: Vec<&str> = current.lines().collect();
    let setting = "default_ulimits = []";
    match lines.iter().position(|l| l.trim() == "[containers]") {
        Some(i) => lines.insert(i + 1, setting),
        None => {
            if lines.last().is_some_and(|l| !l.trim().is_empty()) {
                lines.push("");
            }
            lines.push("[containers]");
            lines.push(setting);
        }
    }
    let mut text = lines.join("\n");
    text.push('\n');
    Some(text)
}

/// Builds [`BUSYBOX_TAR`] (when missing): a root filesystem with busybox-static, a link for
/// every applet in /bin, minimal /etc files and the mount point directories.
fn busybox_image() -> Result<()> {
    let tar = Path::new(BUSYBOX_TAR);
    if tar.exists() {
        println!("busybox image {BUSYBOX_TAR}: present");
        return Ok(());
    }
    println!("busybox image {BUSYBOX_TAR}: building from {BUSYBOX}");
    let dir = tar.parent().context("the tarball path has a parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let scratch = dir.join(format!("rootfs.{}", std::process::id()));
    let partial = dir.join(format!("busybox-rootfs.tar.{}", std::process::id()));
    let result = build_busybox_rootfs(&scratch).and_then(|()| {
        cmd::run(&mut cmd::command(
            "tar",
            [
                "--numeric-owner",
                "--owner=0",
                "--group=0",
                "-C",
                scratch.to_str().context("utf-8 path")?,
                "-cf",
                partial.to_str().context("utf-8 path")?,
                ".",
            ],
        ))?;
        std::fs::rename(&partial, tar)
            .with_context(|| format!("cannot move the tarball to {BUSYBOX_TAR}"))
    });
    let _ = std::fs::remove_dir_all(&scratch);
    let _ = std::fs::remove_file(&partial);
    result
}

fn build_busybox_rootfs(root: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(root);
    for d in ["bin", "etc", "tmp", "proc", "sys", "dev", "root", "var/run"] {
        std::fs::create_dir_all(root.join(d))
            .with_context(|| format!("cannot create {}/{d}", root.display()))?;
    }
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777))?;
    std::fs::copy(BUSYBOX, root.join("bin/busybox"))
        .with_context(|| format!("cannot copy {BUSYBOX} (is busybox-static installed?)"))?;
    let listed = cmd::capture(&mut cmd::command(BUSYBOX, ["--list"]))?;
    let mut applets: std::collections::BTreeSet<&str> = listed
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && !a.contains('/') && *a != "busybox")
        .collect();
    applets.extend(BUSYBOX_APPLETS);
    for applet in applets {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))
            .with_context(|| format!("cannot link applet {applet}"))?;
    }
    for (file, text) in [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
        ("etc/hosts", ""),
        ("etc/resolv.conf", ""),
    ] {
        std::fs::write(root.join(file), text)
            .with_context(|| format!("cannot write {}/{file}", root.display()))?;
    }
    Ok(())
}

/// The linker aya-build uses for the eBPF crate; `cargo install` builds it (about 2 minutes).
fn bpf_linker() -> Result<()> {
    if cmd::succeeds(&mut cmd::command("bpf-linker", ["--version"]))
        || cargo_bin("bpf-linker").exists()
    {
        println!("bpf-linker: present");
        return Ok(());
    }
    println!("bpf-linker: installing {BPF_LINKER_VERSION} against LLVM 22 (takes about 2 minutes)");
    // Without LLVM 22's bin directory first on PATH the link fails with `unable to find library -lLLVM`.
    let path = format!("{LLVM_BIN}:{}", std::env::var("PATH").unwrap_or_default());
    cmd::run(
        cmd::command(
            "cargo",
            [
                "install",
                "bpf-linker",
                "--version",
                BPF_LINKER_VERSION,
                "--no-default-features",
                "--features",
                "llvm-22",
            ],
        )
        .env("PATH", path),
    )?;
    if !cargo_bin("bpf-linker").exists() {
        bail!(
            "cargo install finished but {} is missing",
            cargo_bin("bpf-linker").display()
        );
    }
    Ok(())
}

fn cargo_bin(name: &str) -> std::path::PathBuf {
    let cargo_home = std::env::var("CARGO_HOME")
        .unwrap_or_else(|_| format!("{}/.cargo", std::env::var("HOME").unwrap_or_default()));
    Path::new(&cargo_home).join("bin").join(name)
}

/// netd pins its maps and links under bpffs; without the mount pins cannot outlive the daemon.
fn bpffs_mounted() -> Result<()> {
    if is_bpffs_mounted()? {
        println!("bpffs at {BPFFS}: present");
        return Ok(());
    }
    println!("bpffs at {BPFFS}: mounting");
    cmd::run(&mut cmd::command("mount", ["-t", "bpf", "bpf", BPFFS]))?;
    if !is_bpffs_mounted()? {
        bail!("mounting bpffs at {BPFFS} did not take effect");
    }
    Ok(())
}

fn is_bpffs_mounted() -> Result<bool> {
    let mounts =
        std::fs::read_to_string("/proc/self/mounts").context("cannot read /proc/self/mounts")?;
    Ok(mounts.lines().any(|line| {
        let mut fields = line.split_whitespace();
        let (_source, target, fstype) = (fields.next(), fields.next(), fields.next());
        target == Some(BPFFS) && fstype == Some("bpf")
    }))
}

#[cfg(test)]
mod tests {
    use super::{with_default_ulimits, NoServiceStarts};

    #[test]
    fn policy_rc_d_is_temporary_and_only_ours_is_removed() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("xtask-policy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("policy-rc.d");
        {
            let _guard = NoServiceStarts::at(&path).unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(text.starts_with("#!/bin/sh\n") && text.ends_with("exit 101\n"));
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o755);
        }
        assert!(!path.exists(), "the guard removes the file it wrote");
        std::fs::write(&path, "exit 0\n").unwrap();
        drop(NoServiceStarts::at(&path).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "exit 0\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn default_ulimits_is_added_once() {
        assert_eq!(
            with_default_ulimits("").as_deref(),
            Some("[containers]\ndefault_ulimits = []\n")
        );
        assert_eq!(
            with_default_ulimits("[engine]\ncgroup_manager = \"cgroupfs\"\n").as_deref(),
            Some("[engine]\ncgroup_manager = \"cgroupfs\"\n\n[containers]\ndefault_ulimits = []\n")
        );
        assert_eq!(
            with_default_ulimits("[containers]\n# default_ulimits = [\"nofile=1:2\"]\nlog_driver = \"k8s-file\"\n[engine]\n")
                .as_deref(),
            Some("[containers]\ndefault_ulimits = []\n# default_ulimits = [\"nofile=1:2\"]\nlog_driver = \"k8s-file\"\n[engine]\n")
        );
        assert_eq!(
            with_default_ulimits("[containers]\ndefault_ulimits = []\n"),
            None
        );
        assert_eq!(
            with_default_ulimits("[containers]\n  default_ulimits=[\"nofile=1024:1024\"]\n"),
            None
        );
    }
}
