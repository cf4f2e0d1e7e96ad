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
