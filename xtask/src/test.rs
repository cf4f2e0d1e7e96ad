//! `cargo xtask test`: the whole suite, as `.ci/run` runs it.
//!
//! Every step runs even if an earlier one failed, so one run shows all problems; the exit
//! status is non-zero if any step failed.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::{cmd, install, interrupt, workspace};

/// The kernel-side crate: built for the BPF target only, never for the host.
const EBPF_CRATE: &str = "netd-ebpf";
const BPF_TARGET: &str = "bpfel-unknown-none";

pub fn run() -> Result<()> {
    let started = Instant::now();
    install::run()?;
    let metadata = workspace::metadata()?;
    let netd_bin = metadata.release_bin("netd");
    let cni_bin = metadata.release_bin("netd-cni");

    let steps: Vec<(&str, Command)> = vec![
        ("rustfmt", workspace::cargo(["fmt", "--all", "--check"])),
        (
            "clippy (host crates)",
            workspace::cargo([
                "clippy",
                "--workspace",
                "--exclude",
                EBPF_CRATE,
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
        ),
        ("clippy (eBPF crate, BPF target)", ebpf_clippy()),
        (
            "release build of netd",
            workspace::cargo(["build", "--release", "-p", "netd"]),
        ),
        // Runtimes find a CNI plugin by its `type` in their plugin directories.
        ("install of the CNI plugin", install_cni_plugin(&cni_bin)),
        ("tests", {
            let mut test = workspace::cargo([
                "test",
                "--release",
                "--workspace",
                "--exclude",
                EBPF_CRATE,
                "--no-fail-fast",
            ]);
            // Integration tests drive the CLI as a user would, through this binary.
            test.env("NETD_BIN", &netd_bin);
            test
        }),
    ];

    let mut failed = Vec::new();
    for (name, mut command) in steps {
        interrupt::check()?;
        println!("\n== {name}");
        let step_started = Instant::now();
        let result = cmd::run(&mut command);
        let took = minutes_seconds(step_started.elapsed());
        match result {
            Ok(()) => println!("== {name}: ok ({took})"),
            Err(error) => {
                println!("== {name}: FAILED ({took}): {error:#}");
                failed.push(name);
            }
        }
    }

    if !failed.is_empty() {
        println!("\nFAILED steps: {}", failed.join(", "));
    }
    println!(
        "xtask test finished in {}",
        minutes_seconds(started.elapsed())
    );
    if !failed.is_empty() {
        // Exit here rather than return an error: the elapsed time stays the last line, and
        // nothing is left to clean up.
        std::process::exit(1);
    }
    Ok(())
}

/// Lints the eBPF crate the way aya-build compiles it: nightly, BPF target, core built from source.
/// No extra RUSTFLAGS: aya-ebpf's build script sets `bpf_target_arch` itself (from the host arch)
/// when the `--cfg` that aya-build passes to the real build is absent.
fn ebpf_clippy() -> Command {
    workspace::cargo([
        "+nightly",
        "clippy",
        "-p",
        EBPF_CRATE,
        "--target",
        BPF_TARGET,
        "-Z",
        "build-std=core",
        "--",
        "-D",
        "warnings",
    ])
}

/// `netd-cni` as `netd` (its CNI type) and under its own name, in the directories libcni
/// runtimes search: /opt/cni/bin (containerd, CRI-O) and /usr/lib/cni (Debian's podman).
fn install_cni_plugin(built: &std::path::Path) -> Command {
    let mut script = String::from("set -e\n");
    for target in CNI_PLUGIN_PATHS {
        script.push_str(&format!("install -D -m 0755 \"$1\" {target}\n"));
    }
    let mut command = Command::new("sh");
    command.args(["-c", &script, "sh"]).arg(built);
    command
}

const CNI_PLUGIN_PATHS: [&str; 3] = [
    "/opt/cni/bin/netd",
    "/opt/cni/bin/netd-cni",
    "/usr/lib/cni/netd",
];

fn minutes_seconds(elapsed: Duration) -> String {
    let seconds = elapsed.as_secs();
    format!("{}m{:02}s", seconds / 60, seconds % 60)
}
