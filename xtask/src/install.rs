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
];

/// bpf-linker must be built against LLVM 22 (not older than nightly rustc's LLVM); see shared/TOOLCHAIN.md.
const LLVM_BIN: &str = "/usr/lib/llvm-22/bin";
const BPF_LINKER_VERSION: &str = "0.13.0";
const BPFFS: &str = "/sys/fs/bpf";

pub fn run() -> Result<()> {
    println!("== install: checking what this machine lacks");
    nightly_rust_src()?;
    apt_packages()?;
    docker_proxy()?;
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
    cmd::run(
        apt_get()
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing),
    )?;
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

fn is_deb_installed(package: &str) -> bool {
    cmd::capture(&mut cmd::command(
        "dpkg-query",
        ["-W", "-f=${Status}", package],
    ))
    .is_ok_and(|status| status.trim() == "install ok installed")
}

/// Where the bench finds docker-proxy: Debian's docker.io path, else where [`docker_proxy`] puts it.
pub const DOCKER_PROXIES: [&str; 2] = ["/usr/sbin/docker-proxy", "/usr/local/sbin/docker-proxy"];

/// The bench's localhost baseline runs `docker-proxy` by itself. It ships in Debian's docker.io,
/// but installing that package would also bring dockerd, containerd and runc (and try to start
/// them), so only this one binary is taken out of the downloaded package.
fn docker_proxy() -> Result<()> {
    if DOCKER_PROXIES.iter().any(|path| Path::new(path).exists()) {
        println!("docker-proxy: present");
        return Ok(());
    }
    let target = DOCKER_PROXIES[1];
    println!("docker-proxy: extracting it from Debian's docker.io package into {target}");
    let scratch = std::env::temp_dir().join(format!("xtask-docker-io-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    let result = extract_docker_proxy(&scratch, target);
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn extract_docker_proxy(scratch: &Path, target: &str) -> Result<()> {
    let download =
        |apt: &mut Command| cmd::run(apt.args(["download", "docker.io"]).current_dir(scratch));
    if download(&mut apt_get()).is_err() {
        // A fresh machine's package lists may not know the package yet.
        cmd::run(apt_get().arg("update"))?;
        download(&mut apt_get())?;
    }
    let deb = std::fs::read_dir(scratch)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .context("apt-get download docker.io left no .deb")?;
    let tree = scratch.join("tree");
    cmd::run(&mut cmd::command(
        "dpkg-deb",
        [
            std::ffi::OsStr::new("-x"),
            deb.as_os_str(),
            tree.as_os_str(),
        ],
    ))?;
    let binary = tree.join("usr/sbin/docker-proxy");
    if !binary.exists() {
        bail!("{} has no usr/sbin/docker-proxy", deb.display());
    }
    std::fs::create_dir_all("/usr/local/sbin")?;
    std::fs::copy(&binary, target).with_context(|| format!("cannot install {target}"))?;
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
