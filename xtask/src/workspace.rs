//! Where the workspace and its build outputs are.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result};
use serde::Deserialize;

use crate::cmd;

/// The parts of `cargo metadata --no-deps` that xtask needs.
#[derive(Deserialize)]
pub struct Metadata {
    pub target_directory: PathBuf,
    pub packages: Vec<Package>,
}

#[derive(Deserialize)]
pub struct Package {
    pub name: String,
    pub targets: Vec<Target>,
}

#[derive(Deserialize)]
pub struct Target {
    pub name: String,
    pub kind: Vec<String>,
}

/// The repository root: xtask lives one level below it.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits inside the workspace")
        .to_path_buf()
}

/// A `cargo` command that runs in the workspace root.
pub fn cargo<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut command = cmd::command("cargo", args);
    command.current_dir(root());
    command
}

/// Reads the workspace metadata (honours CARGO_TARGET_DIR, unlike a hard-coded `target/`).
pub fn metadata() -> Result<Metadata> {
    let json = cmd::capture(&mut cargo([
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
    ]))?;
    serde_json::from_str(&json).context("cannot parse `cargo metadata`")
}

impl Metadata {
    /// Absolute path of a release binary.
    pub fn release_bin(&self, name: &str) -> PathBuf {
        self.target_directory.join("release").join(name)
    }

    /// True if `package` declares a binary target called `bin`.
    pub fn has_bin(&self, package: &str, bin: &str) -> bool {
        self.packages
            .iter()
            .filter(|p| p.name == package)
            .flat_map(|p| &p.targets)
            .any(|t| t.name == bin && t.kind.iter().any(|k| k == "bin"))
    }
}
